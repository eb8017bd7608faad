/** planCommit's create-only rule (docs/api.md, "Commits and conflicts"), on views built by hand. */
import { describe, expect, it } from "vitest";
import type { NodeRow } from "../db/schema";
import { nameKey } from "../names";
import { intentOf, planCommit, type TargetView } from "./plan";

const NOW = "2026-12-04T00:00:00.000Z";

function row(id: string, type: "file" | "folder", name: string, fields: Partial<NodeRow> = {}): NodeRow {
	return {
		id,
		userId: "usr_1",
		parentId: "nod_root",
		type,
		name,
		nameKey: nameKey(name),
		size: 0,
		headVersionId: type === "file" ? `ver_${id}` : null,
		contentHash: null,
		createdAt: NOW,
		modifiedAt: NOW,
		trashedAt: null,
		trashRootId: null,
		conflictOf: null,
		mountShareId: null,
		purgeStartedAt: null,
		...fields,
	};
}

const folder = row("nod_root", "folder", "", { parentId: null });
const view = (child: NodeRow | null): TargetView => ({ parent: folder, child, edited: null, refuge: null });
const createOnly = (onConflict: "copy" | "fail") =>
	intentOf({ name: "a.txt", key: "a.txt" }, { baseVersionId: null, onConflict, createOnly: true });

describe("planCommit with createOnly", () => {
	it("creates at a free name", () => {
		expect(planCommit(view(null), createOnly("copy"))).toEqual({ ok: true, value: { kind: "new", parentId: folder.id, name: "a.txt" } });
	});

	it("never gives a live file at the name a version: a copy beside it, or VERSION_CONFLICT", () => {
		const theirs = row("nod_theirs", "file", "a.txt");
		expect(planCommit(view(theirs), createOnly("copy"))).toEqual({
			ok: true,
			value: { kind: "copy", parentId: folder.id, name: "a.txt", winner: theirs },
		});
		const failed = planCommit(view(theirs), createOnly("fail"));
		expect(failed.ok).toBe(false);
		if (!failed.ok) {
			expect(failed.error.code).toBe("VERSION_CONFLICT");
			expect(failed.error.details).toEqual([{ node_id: theirs.id, head_version_id: theirs.headVersionId }]);
		}
	});

	it("keeps NAME_TAKEN for a folder at the name", () => {
		const taken = planCommit(view(row("nod_dir", "folder", "a.txt")), createOnly("copy"));
		expect(taken.ok ? null : taken.error.code).toBe("NAME_TAKEN");
	});

	it("changes nothing without it: last writer wins", () => {
		const theirs = row("nod_theirs", "file", "a.txt");
		const plain = intentOf({ name: "a.txt", key: "a.txt" }, { baseVersionId: null, onConflict: "copy" });
		expect(planCommit(view(theirs), plain)).toEqual({ ok: true, value: { kind: "version", file: theirs, change: "updated" } });
	});
});
