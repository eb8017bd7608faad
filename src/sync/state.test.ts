/// <reference types="node" />
import { existsSync, mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { createRequire } from "node:module";
import type * as Sqlite from "node:sqlite";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { openState, SCHEMA_VERSION, type SyncState } from "./state";

const roots: string[] = [];
const opened: SyncState[] = [];

function freshRoot(): string {
	const root = mkdtempSync(join(tmpdir(), "drive-state-"));
	roots.push(root);
	return root;
}

function open(root: string, create = true): SyncState {
	const state = openState(root, { create });
	opened.push(state);
	return state;
}

afterEach(() => {
	for (const s of opened.splice(0)) s.close();
	for (const r of roots.splice(0)) rmSync(r, { recursive: true, force: true });
});

describe("sync state database", () => {
	it("creates .drive/state.db with the schema, and refuses a root without the marker", () => {
		const root = freshRoot();
		expect(() => open(root, false)).toThrow(/not a synced folder/);
		open(root);
		expect(existsSync(join(root, ".drive", "state.db"))).toBe(true);
		expect(SCHEMA_VERSION).toBe(2);
	});

	it("keeps the three trees, meta, transfers and problems across a reopen", () => {
		const root = freshRoot();
		const a = open(root);
		a.setMeta("cursor", "c1");
		a.setMeta("cursor", "c2");
		a.putRemote([{ nodeId: "n1", parentId: "root", name: "a.txt", type: "file", versionId: "v1", contentHash: "h1", size: 3 }]);
		a.putLocal([{ path: "a.txt", type: "file", contentHash: "h1", size: 3, fileId: "18446744073709551615", mtimeNs: "1" }]);
		a.putSynced([
			{ nodeId: "n1", path: "a.txt", type: "file", versionId: "v1", contentHash: "h1", size: 3, fileId: "18446744073709551615" },
		]);
		const id = a.startTransfer({ kind: "upload", nodeId: "n1", path: "a.txt", baseVersion: "v1", uploadId: null, tmpPath: null, sig: "s" });
		a.updateTransfer(id, { uploadId: "u1", bytesDone: 2 });
		a.reportProblem({ path: "CON", code: "invalid_name", message: "reserved" }, 5);
		a.reportProblem({ path: "CON", code: "invalid_name", message: "still reserved" }, 9);
		a.close();
		opened.pop();

		const b = open(root, false);
		expect(b.getMeta("cursor")).toBe("c2");
		expect(b.getMeta("device_id")).toBeNull();
		expect(b.remote().get("n1")?.versionId).toBe("v1");
		// Inode numbers can exceed 2^53: stored as text, they come back exact.
		expect(b.local().get("a.txt")?.fileId).toBe("18446744073709551615");
		expect(b.synced().get("n1")?.path).toBe("a.txt");
		expect(b.transfers()).toMatchObject([{ id, uploadId: "u1", bytesDone: 2, baseVersion: "v1" }]);
		expect(b.problems()).toEqual([{ path: "CON", code: "invalid_name", message: "still reserved", since: 5, origin: "plan" }]);
		b.finishTransfer(id);
		b.clearProblem("CON");
		b.deleteRemote(["n1"]);
		b.deleteLocal(["a.txt"]);
		b.deleteSynced(["n1"]);
		expect([b.transfers(), b.problems(), b.remote().size, b.local().size, b.synced().size]).toEqual([[], [], 0, 0, 0]);
	});

	it("rolls a transaction back when its work throws", () => {
		const s = open(freshRoot());
		expect(() =>
			s.transaction(() => {
				s.putRemote([{ nodeId: "n1", parentId: "root", name: "a", type: "folder", versionId: null, contentHash: null, size: 0 }]);
				s.setMeta("cursor", "c9");
				throw new Error("crash between the pull and the cursor");
			}),
		).toThrow(/crash/);
		expect(s.remote().size).toBe(0);
		expect(s.getMeta("cursor")).toBeNull();
	});

	it("lets two nodes share an S path while one of them is moving", () => {
		const s = open(freshRoot());
		s.putSynced([
			{ nodeId: "n1", path: "a", type: "file", versionId: "v1", contentHash: "h1", size: 1, fileId: "1" },
			{ nodeId: "n2", path: "a", type: "file", versionId: "v2", contentHash: "h2", size: 1, fileId: "2" },
		]);
		expect(s.synced().size).toBe(2);
	});

	const item = (nodeId: string, parentId: string | null) =>
		({ nodeId, parentId, name: nodeId, type: "folder", versionId: null, contentHash: null, size: 0 }) as const;

	it("swaps in a whole listing with its cursor, and applies a journal page with its cursor, each in one transaction", () => {
		const s = open(freshRoot());
		s.putRemote([item("stale", "root")]);
		s.replaceRemote([item("root", null), item("a", "root")], "c5");
		expect([[...s.remote().keys()].sort(), s.getMeta("cursor")]).toEqual([["a", "root"], "c5"]);
		s.applyPage([item("b", "a")], ["a"], "c6");
		expect([[...s.remote().keys()].sort(), s.getMeta("cursor")]).toEqual([["b", "root"], "c6"]);
	});

	it("replaces the plan's problems as a set and leaves failed actions' problems alone", () => {
		const s = open(freshRoot());
		s.replaceProblems("plan", [{ path: "CON", code: "invalid_name", message: "reserved" }], 1);
		s.reportProblem({ path: "big.bin", code: "QUOTA_EXCEEDED", message: "full", origin: "action" }, 2);
		s.replaceProblems("plan", [{ path: "a|b", code: "invalid_name", message: "bar" }], 3);
		expect(s.problems().map((p) => [p.path, p.origin])).toEqual([
			["a|b", "plan"],
			["big.bin", "action"],
		]);
	});

	it("upgrades a schema 1 database in place", () => {
		const root = freshRoot();
		mkdirSync(join(root, ".drive"));
		const { DatabaseSync } = createRequire(import.meta.url)("node:sqlite") as typeof Sqlite;
		const db = new DatabaseSync(join(root, ".drive", "state.db"));
		db.exec("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);");
		db.exec("CREATE TABLE problem (path TEXT PRIMARY KEY, code TEXT NOT NULL, message TEXT NOT NULL, since INTEGER NOT NULL);");
		db.exec("INSERT INTO problem VALUES ('CON', 'invalid_name', 'reserved', 1); PRAGMA user_version = 1;");
		db.close();
		const s = open(root, false);
		expect(s.problems()).toEqual([{ path: "CON", code: "invalid_name", message: "reserved", since: 1, origin: "plan" }]);
	});
});
