/** Node routes: root, folders, children, node with path, rename and move, trash and restore (docs/api.md, "Nodes"). */
import { describe, expect, it } from "vitest";
import { expectError, runAuthSuite } from "../support/envelope";
import { clockPast, expectOk, type Node, type NodePage, type Reply, type TestUser } from "../support/harness";
import { api, blobCount, journal } from "./helpers";

const createFolder = (user: TestUser, parentId: string, name: string) => api.createFolder(user, parentId, name);
const patch = (user: TestUser, id: string, changes: { name?: string; parent_id?: string }) => api.patchNode(user, id, changes);
const remove = (user: TestUser, id: string) => api.trash(user, id);
const restore = (user: TestUser, id: string) => api.restore(user, id);
const put = (user: TestUser, parentId: string, name: string, data: string) => api.putContent(user, parentId, name, data);

async function trashPage(user: TestUser, query = ""): Promise<NodePage> {
	return expectOk(await api.call<NodePage>(`/v1/trash${query}`, { token: user.token }), 200);
}

const names = (nodes: Node[]) => nodes.map((n) => n.name);
/**
 * The trash orders, and restores, by the millisecond of each trash: before
 * the next one, let the clock move past this one (a condition, not a pause).
 */
const tick = () => clockPast(new Date().toISOString());

/** Every name rule of src/shared/names.ts, one bad example each. */
const INVALID_NAMES: [rule: string, name: string][] = [
	["empty", ""],
	["slash", "a/b"],
	["NUL", "a\u0000b"],
	["control character", "tab\there"],
	["DEL", "del\u007f"],
	["reserved device name", "CON"],
	["reserved name in lower case with an extension", "con.txt"],
	["reserved printer port", "LPT1"],
	["reserved port with a superscript digit", "COM\u00b9"],
	["trailing dot", "report."],
	["trailing space", "report "],
	["dot", "."],
	["dot dot", ".."],
	["more than 255 UTF-8 bytes of ASCII", "a".repeat(256)],
	["more than 255 UTF-8 bytes in 128 characters", "\u00e9".repeat(128)],
	["colon", "a:b"],
	["asterisk", "a*b"],
	["question mark", "a?b"],
	["double quote", 'a"b'],
	["less-than", "a<b"],
	["greater-than", "a>b"],
	["pipe", "a|b"],
	["backslash", "a\\b"],
	["lone surrogate", "a\ud800b"],
];

describe("nodes: happy path", () => {
	it("gives every user a root folder", async () => {
		const user = await api.signup();
		const root = expectOk(await api.call<Node>("/v1/nodes/root", { token: user.token }), 200);
		expect(root).toMatchObject({
			id: user.rootId,
			type: "folder",
			parent_id: null,
			trashed: false,
			size: null,
			version_id: null,
			content_hash: null,
		});
		const withPath = await api.node(user, user.rootId);
		expect(withPath.path).toBe("/");
		expect(withPath.ancestors).toEqual([]);
		expect(await api.listAll(user, user.rootId)).toEqual([]);
	});

	it("creates many folders under one parent in one request, answering each name on its own", async () => {
		const user = await api.signup();
		await api.mkdir(user, user.rootId, "Taken");
		const names = ["Alpha", "Taken", "bad/name", "Beta", "alpha"];
		const before = (await journal(user.id)).length;
		const reply = await api.call<{ items: ({ node: Node } | { error: { code: string } })[] }>("/v1/folders/batch", {
			method: "POST",
			token: user.token,
			json: { parent_id: user.rootId, names },
		});
		const { items } = expectOk(reply, 200);
		expect(items.map((item) => ("node" in item ? item.node.name : item.error.code))).toEqual([
			"Alpha",
			"NAME_TAKEN",
			"INVALID_REQUEST",
			"Beta",
			"NAME_TAKEN",
		]);
		expect((await api.listAll(user, user.rootId)).map((node) => node.name).sort()).toEqual(["Alpha", "Beta", "Taken"]);
		// One journal entry per folder made, none for a refusal.
		expect((await journal(user.id)).length).toBe(before + 2);
		// A parent that is not there is one 404, and bad bodies are 400s; none of them makes anything.
		const missing = await api.call("/v1/folders/batch", {
			method: "POST",
			token: user.token,
			json: { parent_id: "nod_missing", names: ["x"] },
		});
		await expectError(missing, 404, "NOT_FOUND");
		for (const json of [
			{ parent_id: user.rootId, names: [] },
			{ parent_id: user.rootId, names: Array(1001).fill("n") },
			{ parent_id: user.rootId },
		])
			await expectError(await api.call("/v1/folders/batch", { method: "POST", token: user.token, json }), 400, "INVALID_REQUEST");
		expect((await journal(user.id)).length).toBe(before + 2);
	});

	it("creates a folder with 201 and lists it under its parent", async () => {
		const user = await api.signup();
		const res = await createFolder(user, user.rootId, "Photos");
		const folder = expectOk(res, 201);
		expect(folder).toMatchObject({ type: "folder", name: "Photos", parent_id: user.rootId, trashed: false, size: null, version_id: null });
		expect(folder.id).toMatch(/^nod_/);
		expect(Date.parse(folder.created_at)).not.toBeNaN();
		const children = await api.listAll(user, user.rootId);
		expect(children).toEqual([folder]);
	});

	it("stores names in NFC", async () => {
		const user = await api.signup();
		const folder = await api.mkdir(user, user.rootId, "Cafe\u0301");
		expect(folder.name).toBe("Caf\u00e9");
		expect((await api.node(user, folder.id)).name).toBe("Caf\u00e9");
	});

	it("accepts a name of exactly 255 UTF-8 bytes and names other systems allow", async () => {
		const user = await api.signup();
		for (const name of ["a".repeat(255), "\u00e9".repeat(127) + "a", ".hidden", "CONSOLE", "con-game", "file.tar.gz", "Ünïcödé ✓ 日本"]) {
			await api.mkdir(user, user.rootId, name);
		}
	});

	it("paginates children with limit=2 by name, case-insensitively, and ends with next_cursor null", async () => {
		const user = await api.signup();
		await api.mkdir(user, user.rootId, "banana");
		await api.upload(user, user.rootId, "Apple", "a");
		await api.mkdir(user, user.rootId, "cherry");
		await api.upload(user, user.rootId, "Date", "d");
		await api.mkdir(user, user.rootId, "apricot");
		const pages: NodePage[] = [];
		let cursor: string | null = null;
		do {
			const q: string = cursor === null ? "" : `&cursor=${encodeURIComponent(cursor)}`;
			const page: NodePage = expectOk(
				await api.call<NodePage>(`/v1/nodes/${user.rootId}/children?limit=2${q}`, { token: user.token }),
				200,
			);
			pages.push(page);
			cursor = page.next_cursor;
		} while (cursor !== null && pages.length < 10);
		expect(pages.map((p) => names(p.items))).toEqual([["Apple", "apricot"], ["banana", "cherry"], ["Date"]]);
		expect(pages.map((p) => p.next_cursor === null)).toEqual([false, false, true]);
	});

	it("answers next_cursor null when the last page is exactly full", async () => {
		const user = await api.signup();
		for (const n of ["a", "b", "c", "d"]) await api.mkdir(user, user.rootId, n);
		const first = expectOk(await api.call<NodePage>(`/v1/nodes/${user.rootId}/children?limit=2`, { token: user.token }), 200);
		expect(first.next_cursor).not.toBeNull();
		const second = expectOk(
			await api.call<NodePage>(`/v1/nodes/${user.rootId}/children?limit=2&cursor=${encodeURIComponent(first.next_cursor ?? "")}`, {
				token: user.token,
			}),
			200,
		);
		expect(names(second.items)).toEqual(["c", "d"]);
		expect(second.next_cursor).toBeNull();
	});

	it("returns a node with its path and its ancestors from the root", async () => {
		const user = await api.signup();
		const docs = await api.mkdir(user, user.rootId, "Docs");
		const year = await api.mkdir(user, docs.id, "2026");
		const file = (await api.upload(user, year.id, "report.pdf", "%PDF")).node;
		const got = await api.node(user, file.id);
		expect(got).toMatchObject({
			id: file.id,
			type: "file",
			name: "report.pdf",
			parent_id: year.id,
			size: 4,
			path: "/Docs/2026/report.pdf",
		});
		expect(got.ancestors).toEqual([
			{ id: user.rootId, name: "" },
			{ id: docs.id, name: "Docs" },
			{ id: year.id, name: "2026" },
		]);
		expect((await api.node(user, year.id)).path).toBe("/Docs/2026");
	});

	it("renames a node and keeps its id", async () => {
		const user = await api.signup();
		const folder = await api.mkdir(user, user.rootId, "Old");
		const renamed = expectOk(await patch(user, folder.id, { name: "New" }), 200);
		expect(renamed).toMatchObject({ id: folder.id, name: "New", parent_id: user.rootId });
		expect(names(await api.listAll(user, user.rootId))).toEqual(["New"]);
	});

	it("allows a rename that only changes case", async () => {
		const user = await api.signup();
		const file = (await api.upload(user, user.rootId, "Report.txt", "r")).node;
		const renamed = expectOk(await patch(user, file.id, { name: "REPORT.txt" }), 200);
		expect(renamed.name).toBe("REPORT.txt");
		expect(names(await api.listAll(user, user.rootId))).toEqual(["REPORT.txt"]);
	});

	it("moves a folder with its subtree, updating the paths below it", async () => {
		const user = await api.signup();
		const a = await api.mkdir(user, user.rootId, "A");
		const b = await api.mkdir(user, user.rootId, "B");
		const inner = await api.mkdir(user, a.id, "inner");
		const file = (await api.upload(user, inner.id, "f.txt", "f")).node;
		const moved = expectOk(await patch(user, a.id, { parent_id: b.id }), 200);
		expect(moved).toMatchObject({ id: a.id, parent_id: b.id, name: "A" });
		expect((await api.node(user, file.id)).path).toBe("/B/A/inner/f.txt");
		expect(names(await api.listAll(user, user.rootId))).toEqual(["B"]);
		// Move and rename at once.
		const both = expectOk(await patch(user, file.id, { parent_id: user.rootId, name: "g.txt" }), 200);
		expect(both).toMatchObject({ parent_id: user.rootId, name: "g.txt" });
		expect((await api.node(user, file.id)).path).toBe("/g.txt");
	});

	it("deletes a folder together with its subtree", async () => {
		const user = await api.signup();
		const folder = await api.mkdir(user, user.rootId, "Project");
		const sub = await api.mkdir(user, folder.id, "src");
		const file = (await api.upload(user, sub.id, "main.ts", "x")).node;
		const keep = await api.mkdir(user, user.rootId, "Keep");
		const trashed = expectOk(await remove(user, folder.id), 200);
		expect(trashed).toMatchObject({ id: folder.id, trashed: true });
		expect((await api.node(user, sub.id)).trashed).toBe(true);
		expect((await api.node(user, file.id)).trashed).toBe(true);
		expect((await api.node(user, keep.id)).trashed).toBe(false);
		expect(names(await api.listAll(user, user.rootId))).toEqual(["Keep"]);
		// The name is free again.
		await api.mkdir(user, user.rootId, "Project");
	});

	it("lists only the deleted roots in the trash, newest first, paginated", async () => {
		const user = await api.signup();
		const folder = await api.mkdir(user, user.rootId, "F");
		await api.mkdir(user, folder.id, "child");
		await api.upload(user, folder.id, "child.txt", "c");
		const a = (await api.upload(user, user.rootId, "a.txt", "a")).node;
		const b = (await api.upload(user, user.rootId, "b.txt", "b")).node;
		expectOk(await remove(user, a.id), 200);
		await tick();
		expectOk(await remove(user, folder.id), 200);
		await tick();
		expectOk(await remove(user, b.id), 200);
		const first = await trashPage(user, "?limit=2");
		expect(names(first.items)).toEqual(["b.txt", "F"]);
		expect(first.items.every((n) => n.trashed)).toBe(true);
		expect(first.next_cursor).not.toBeNull();
		const second = await trashPage(user, `?limit=2&cursor=${encodeURIComponent(first.next_cursor ?? "")}`);
		expect(names(second.items)).toEqual(["a.txt"]);
		expect(second.next_cursor).toBeNull();
		expect(names((await trashPage(user)).items)).toEqual(["b.txt", "F", "a.txt"]);
	});

	it("restores exactly the subtree deleted with a folder; an item deleted earlier stays in the trash", async () => {
		const user = await api.signup();
		const folder = await api.mkdir(user, user.rootId, "F");
		const sub = await api.mkdir(user, folder.id, "sub");
		const deep = (await api.upload(user, sub.id, "deep.txt", "d")).node;
		const early = (await api.upload(user, folder.id, "early.txt", "e")).node;
		const late = (await api.upload(user, folder.id, "late.txt", "l")).node;
		expectOk(await remove(user, early.id), 200);
		await tick();
		expectOk(await remove(user, folder.id), 200);
		const restored = expectOk(await restore(user, folder.id), 200);
		expect(restored).toMatchObject({ id: folder.id, name: "F", parent_id: user.rootId, trashed: false });
		for (const id of [sub.id, deep.id, late.id]) expect((await api.node(user, id)).trashed).toBe(false);
		expect((await api.node(user, early.id)).trashed).toBe(true);
		expect(names(await api.listAll(user, folder.id))).toEqual(["late.txt", "sub"]);
		expect(names((await trashPage(user)).items)).toEqual(["early.txt"]);
		// And the early item can still be restored on its own, back into F.
		const back = expectOk(await restore(user, early.id), 200);
		expect(back).toMatchObject({ parent_id: folder.id, name: "early.txt", trashed: false });
		expect((await trashPage(user)).items).toEqual([]);
	});

	it("restores under a ' (restored)' name when the name was taken meanwhile", async () => {
		const user = await api.signup();
		const old = (await api.upload(user, user.rootId, "notes.txt", "old")).node;
		expectOk(await remove(user, old.id), 200);
		const replacement = (await api.upload(user, user.rootId, "notes.txt", "new")).node;
		expect(replacement.id).not.toBe(old.id);
		const restored = expectOk(await restore(user, old.id), 200);
		expect(restored).toMatchObject({ id: old.id, name: "notes (restored).txt", parent_id: user.rootId, trashed: false });
		expect(names(await api.listAll(user, user.rootId))).toEqual(["notes (restored).txt", "notes.txt"]);
	});

	it("restores to the root when the node's folder is itself in the trash", async () => {
		const user = await api.signup();
		const folder = await api.mkdir(user, user.rootId, "Parent");
		const file = (await api.upload(user, folder.id, "orphan.txt", "o")).node;
		expectOk(await remove(user, file.id), 200);
		expectOk(await remove(user, folder.id), 200);
		const restored = expectOk(await restore(user, file.id), 200);
		expect(restored).toMatchObject({ id: file.id, parent_id: user.rootId, trashed: false });
		expect(names(await api.listAll(user, user.rootId))).toEqual(["orphan.txt"]);
		expect((await api.node(user, folder.id)).trashed).toBe(true);
	});

	it("treats deleting a trashed node and restoring a live node as no-ops", async () => {
		const user = await api.signup();
		const folder = await api.mkdir(user, user.rootId, "Twice");
		expectOk(await remove(user, folder.id), 200);
		const before = (await journal(user.id)).length;
		expect(expectOk(await remove(user, folder.id), 200).trashed).toBe(true);
		expectOk(await restore(user, folder.id), 200);
		expect(expectOk(await restore(user, folder.id), 200).trashed).toBe(false);
		expect((await journal(user.id)).length).toBe(before + 1);
	});

	it("journals every change with contiguous sequence numbers from 1", async () => {
		const user = await api.signup();
		const folder = await api.mkdir(user, user.rootId, "J");
		expectOk(await patch(user, folder.id, { name: "J2" }), 200);
		expectOk(await remove(user, folder.id), 200);
		expectOk(await restore(user, folder.id), 200);
		const rows = await journal(user.id);
		expect(rows.map((r) => r.seq)).toEqual([1, 2, 3, 4]);
		expect(rows.map((r) => r.kind)).toEqual(["created", "moved", "trashed", "restored"]);
		expect(rows.every((r) => r.node_id === folder.id)).toBe(true);
		expect((JSON.parse(rows[1]?.node ?? "{}") as Node).name).toBe("J2");
		expect((JSON.parse(rows[2]?.node ?? "{}") as Node).trashed).toBe(true);
	});
});

describe("nodes: conditional deletes (sync clients)", () => {
	it("trashes a file only at the version the delete was based on, and a folder only while it is empty", async () => {
		const user = await api.signup();
		const folder = await api.mkdir(user, user.rootId, "Docs");
		const first = await api.upload(user, folder.id, "a.txt", "v1");
		const second = await api.upload(user, folder.id, "a.txt", "v2 from another device", { status: 200 });
		const before = (await journal(user.id)).length;

		const stale = await api.call(`/v1/nodes/${first.node.id}`, {
			method: "DELETE",
			token: user.token,
			headers: { "If-Match": `"${first.version.id}"` },
		});
		const body = await expectError(stale, 412, "PRECONDITION_FAILED");
		expect(body.error.details).toEqual([{ node_id: first.node.id, head_version_id: second.version.id }]);
		const notEmpty = await api.call(`/v1/nodes/${folder.id}?if_empty=true`, { method: "DELETE", token: user.token });
		expect((await expectError(notEmpty, 412, "PRECONDITION_FAILED")).error.details).toEqual([{ reason: "not_empty" }]);
		// Refused deletes change nothing.
		expect((await journal(user.id)).length).toBe(before);
		expect(names(await api.listAll(user, folder.id))).toEqual(["a.txt"]);

		const current = await api.call<Node>(`/v1/nodes/${first.node.id}`, {
			method: "DELETE",
			token: user.token,
			headers: { "If-Match": `"${second.version.id}"` },
		});
		expect(expectOk(current, 200).trashed).toBe(true);
		expect(
			expectOk(await api.call<Node>(`/v1/nodes/${folder.id}?if_empty=true`, { method: "DELETE", token: user.token }), 200).trashed,
		).toBe(true);
	});
});

describe("nodes: errors", () => {
	it.each(INVALID_NAMES)("rejects a folder name with %s (400) and writes nothing", async (_rule, name) => {
		const user = await api.signup();
		await expectError(await createFolder(user, user.rootId, name), 400, "INVALID_REQUEST");
		expect(await api.listAll(user, user.rootId)).toEqual([]);
		expect(await journal(user.id)).toEqual([]);
	});

	it("rejects every invalid name in a rename and writes nothing", async () => {
		const user = await api.signup();
		const folder = await api.mkdir(user, user.rootId, "valid");
		for (const [rule, name] of INVALID_NAMES) {
			const res = await patch(user, folder.id, { name });
			if (res.status !== 400) throw new Error(`rename to a name with ${rule} answered ${res.status}`);
			await expectError(res, 400, "INVALID_REQUEST");
		}
		expect(names(await api.listAll(user, user.rootId))).toEqual(["valid"]);
		expect((await journal(user.id)).length).toBe(1);
	});

	it("rejects every invalid name in an upload before storing anything", async () => {
		const user = await api.signup();
		const before = await blobCount();
		// A URL cannot carry a lone surrogate (URLSearchParams replaces it with U+FFFD).
		for (const [rule, name] of INVALID_NAMES.filter(([rule]) => rule !== "lone surrogate")) {
			const res = await put(user, user.rootId, name, `content for ${rule}`);
			if (res.status !== 400) throw new Error(`upload named with ${rule} answered ${res.status}`);
			await expectError(res, 400, "INVALID_REQUEST");
		}
		expect(await api.listAll(user, user.rootId)).toEqual([]);
		expect(await journal(user.id)).toEqual([]);
		expect(await blobCount()).toBe(before);
	});

	it("rejects a sibling name that differs only in case with 409 NAME_TAKEN", async () => {
		const user = await api.signup();
		await api.mkdir(user, user.rootId, "Report.txt");
		await expectError(await createFolder(user, user.rootId, "report.TXT"), 409, "NAME_TAKEN");
		await expectError(await createFolder(user, user.rootId, "Report.txt"), 409, "NAME_TAKEN");
		expect(names(await api.listAll(user, user.rootId))).toEqual(["Report.txt"]);
		expect((await journal(user.id)).length).toBe(1);
	});

	it("rejects a sibling name that differs only in Unicode normalization with 409 NAME_TAKEN", async () => {
		const user = await api.signup();
		await api.mkdir(user, user.rootId, "\u00e9t\u00e9");
		await expectError(await createFolder(user, user.rootId, "e\u0301te\u0301"), 409, "NAME_TAKEN");
		await expectError(await createFolder(user, user.rootId, "E\u0301TE\u0301"), 409, "NAME_TAKEN");
		expect((await api.listAll(user, user.rootId)).length).toBe(1);
	});

	it("allows the same name in different folders", async () => {
		const user = await api.signup();
		const a = await api.mkdir(user, user.rootId, "a");
		await api.mkdir(user, a.id, "a");
		await api.mkdir(user, user.rootId, "b");
	});

	it("rejects a rename or a move onto a taken name with 409 NAME_TAKEN", async () => {
		const user = await api.signup();
		const dest = await api.mkdir(user, user.rootId, "dest");
		await api.mkdir(user, dest.id, "Clash");
		await api.mkdir(user, user.rootId, "Other");
		const mover = await api.mkdir(user, user.rootId, "clash");
		await expectError(await patch(user, mover.id, { name: "OTHER" }), 409, "NAME_TAKEN");
		await expectError(await patch(user, mover.id, { parent_id: dest.id }), 409, "NAME_TAKEN");
		expect(await api.node(user, mover.id)).toMatchObject({ name: "clash", parent_id: user.rootId });
		expect((await journal(user.id)).length).toBe(4);
	});

	it("rejects an upload onto a folder's name, and a folder onto a file's name, with 409 NAME_TAKEN", async () => {
		const user = await api.signup();
		await api.mkdir(user, user.rootId, "Music");
		await expectError(await put(user, user.rootId, "music", "x"), 409, "NAME_TAKEN");
		await api.upload(user, user.rootId, "song.mp3", "x");
		await expectError(await createFolder(user, user.rootId, "SONG.mp3"), 409, "NAME_TAKEN");
		expect(names(await api.listAll(user, user.rootId))).toEqual(["Music", "song.mp3"]);
	});

	it("refuses to move a folder into itself or into its own descendant with 400", async () => {
		const user = await api.signup();
		const top = await api.mkdir(user, user.rootId, "top");
		const mid = await api.mkdir(user, top.id, "mid");
		const low = await api.mkdir(user, mid.id, "low");
		await expectError(await patch(user, top.id, { parent_id: top.id }), 400, "INVALID_REQUEST");
		await expectError(await patch(user, top.id, { parent_id: mid.id }), 400, "INVALID_REQUEST");
		await expectError(await patch(user, top.id, { parent_id: low.id }), 400, "INVALID_REQUEST");
		expect((await api.node(user, low.id)).path).toBe("/top/mid/low");
		expect((await journal(user.id)).length).toBe(3);
	});

	it("refuses to delete, rename or move the root with 400", async () => {
		const user = await api.signup();
		const folder = await api.mkdir(user, user.rootId, "x");
		await expectError(await remove(user, user.rootId), 400, "INVALID_REQUEST");
		await expectError(await patch(user, user.rootId, { name: "root" }), 400, "INVALID_REQUEST");
		await expectError(await patch(user, user.rootId, { parent_id: folder.id }), 400, "INVALID_REQUEST");
		expect(await api.node(user, user.rootId)).toMatchObject({ parent_id: null, trashed: false });
	});

	it("rejects a PATCH without name or parent_id, and malformed JSON, with 400", async () => {
		const user = await api.signup();
		const folder = await api.mkdir(user, user.rootId, "x");
		await expectError(await patch(user, folder.id, {}), 400, "INVALID_REQUEST");
		const malformed = { token: user.token, body: "{", headers: { "Content-Type": "application/json" } };
		await expectError(await api.request(`/v1/nodes/${folder.id}`, { method: "PATCH", ...malformed }), 400, "INVALID_REQUEST");
		await expectError(await api.request("/v1/folders", { method: "POST", ...malformed }), 400, "INVALID_REQUEST");
		await expectError(
			await api.request("/v1/folders", { method: "POST", token: user.token, json: { name: "no parent" } }),
			400,
			"INVALID_REQUEST",
		);
		expect((await journal(user.id)).length).toBe(1);
	});

	it("answers 404 for a missing node, parent or folder", async () => {
		const user = await api.signup();
		const file = (await api.upload(user, user.rootId, "f.txt", "f")).node;
		const missing = "nod_00000000000000000000000000";
		await expectError(await api.request(`/v1/nodes/${missing}`, { token: user.token }), 404, "NOT_FOUND");
		await expectError(await api.request(`/v1/nodes/${missing}/children`, { token: user.token }), 404, "NOT_FOUND");
		await expectError(await api.request(`/v1/nodes/${file.id}/children`, { token: user.token }), 404, "NOT_FOUND");
		await expectError(await createFolder(user, missing, "x"), 404, "NOT_FOUND");
		await expectError(await createFolder(user, file.id, "x"), 404, "NOT_FOUND");
		await expectError(await patch(user, missing, { name: "x" }), 404, "NOT_FOUND");
		await expectError(await remove(user, missing), 404, "NOT_FOUND");
		await expectError(await restore(user, missing), 404, "NOT_FOUND");
	});

	it("refuses to create a folder inside a trashed folder", async () => {
		const user = await api.signup();
		const folder = await api.mkdir(user, user.rootId, "gone");
		expectOk(await remove(user, folder.id), 200);
		await expectError(await createFolder(user, folder.id, "x"), 404, "NOT_FOUND");
		await expectError(await put(user, folder.id, "x.txt", "x"), 404, "NOT_FOUND");
	});

	it("writes nothing and takes no sequence number for a refused folder creation", async () => {
		// The hub folds these checks into the insert itself (one D1 round
		// trip), so each refusal must still leave the tree and journal alone.
		const user = await api.signup();
		const other = await api.signup();
		const file = (await api.upload(user, user.rootId, "f.txt", "f")).node;
		const gone = await api.mkdir(user, user.rootId, "gone");
		expectOk(await remove(user, gone.id), 200);
		const before = await journal(user.id);
		await expectError(await createFolder(user, user.rootId, "F.TXT"), 409, "NAME_TAKEN");
		await expectError(await createFolder(user, file.id, "x"), 404, "NOT_FOUND");
		await expectError(await createFolder(user, other.rootId, "x"), 404, "NOT_FOUND");
		const trashed = await expectError(await createFolder(user, gone.id, "x"), 404, "NOT_FOUND");
		expect(trashed.error.message).toContain("trash");
		expect(await journal(user.id)).toEqual(before);
		expect((await api.listAll(other, other.rootId)).length).toBe(0);
		const next = await api.mkdir(user, user.rootId, "next");
		const rows = await journal(user.id);
		expect(rows.map((r) => r.seq)).toEqual([...before.map((r) => r.seq), before.length + 1]);
		expect(rows.at(-1)?.node_id).toBe(next.id);
	});

	it("answers each of many concurrent folder creations on its own, with a gapless journal", async () => {
		// Concurrent creations share the hub's batches: a refusal inside a
		// batch must not take the others down or leave a hole in the journal.
		const user = await api.signup();
		const gone = await api.mkdir(user, user.rootId, "gone");
		expectOk(await remove(user, gone.id), 200);
		const before = (await journal(user.id)).length;
		const requests = [
			...Array.from({ length: 20 }, (_, i) => ({ parent: user.rootId, name: `unique-${i}`, expect: 201 })),
			...Array.from({ length: 6 }, (_, i) => ({ parent: user.rootId, name: i % 2 ? "Same" : "same", expect: 0 })),
			...Array.from({ length: 4 }, (_, i) => ({ parent: gone.id, name: `lost-${i}`, expect: 404 })),
		];
		const answers = await Promise.all(requests.map((r) => createFolder(user, r.parent, r.name)));
		const statuses = answers.map((a) => a.status);
		requests.forEach((r, i) => {
			if (r.expect !== 0) expect(statuses[i]).toBe(r.expect);
		});
		const same = statuses.slice(20, 26);
		expect(same.filter((s) => s === 201)).toHaveLength(1);
		expect(same.filter((s) => s === 409)).toHaveLength(5);
		const names = (await api.listAll(user, user.rootId)).map((n) => n.name.toLowerCase()).sort();
		expect(names).toEqual([...Array.from({ length: 20 }, (_, i) => `unique-${i}`), "same"].sort());
		const rows = await journal(user.id);
		expect(rows.map((r) => r.seq)).toEqual(Array.from({ length: before + 21 }, (_, i) => i + 1));
	});

	it.each(["limit=0", "limit=1001", "limit=abc", "limit=1.5", "cursor=not-a-cursor!", "cursor=e30", "cursor=eyJrIjoxfQ"])(
		"rejects children and trash queries with %s with 400",
		async (query) => {
			const user = await api.signup();
			await expectError(await api.request(`/v1/nodes/${user.rootId}/children?${query}`, { token: user.token }), 400, "INVALID_REQUEST");
			await expectError(await api.request(`/v1/trash?${query}`, { token: user.token }), 400, "INVALID_REQUEST");
		},
	);

	it("accepts limit=1 and limit=1000", async () => {
		const user = await api.signup();
		await api.mkdir(user, user.rootId, "only");
		for (const limit of [1, 1000]) {
			const page = expectOk(await api.call<NodePage>(`/v1/nodes/${user.rootId}/children?limit=${limit}`, { token: user.token }), 200);
			expect(names(page.items)).toEqual(["only"]);
			expect(page.next_cursor).toBeNull();
		}
	});
});

// Every node route answers 401 without a token: openapi.test.ts walks them all.
runAuthSuite(api, "nodes", (user) => ({ path: `/v1/nodes/${user.rootId}/children` }));

describe("nodes: isolation", () => {
	it("never lets one user see or change another user's nodes (404 NOT_FOUND)", async () => {
		const owner = await api.signup();
		const intruder = await api.signup();
		const folder = await api.mkdir(owner, owner.rootId, "Private");
		const committed = await api.upload(owner, folder.id, "secret.txt", "owner's secret");
		const file = committed.node;
		const gone = (await api.upload(owner, owner.rootId, "trashed.txt", "t")).node;
		expectOk(await remove(owner, gone.id), 200);
		const mine = (await api.upload(intruder, intruder.rootId, "mine.txt", "intruder")).node;
		const before = await journal(owner.id);

		const attempts: [string, Promise<Response | Reply<unknown>>][] = [
			["GET node", api.request(`/v1/nodes/${file.id}`, { token: intruder.token })],
			["GET folder", api.request(`/v1/nodes/${folder.id}`, { token: intruder.token })],
			["GET root", api.request(`/v1/nodes/${owner.rootId}`, { token: intruder.token })],
			["GET children", api.request(`/v1/nodes/${folder.id}/children`, { token: intruder.token })],
			["GET root children", api.request(`/v1/nodes/${owner.rootId}/children`, { token: intruder.token })],
			["GET content", api.request(`/v1/files/${file.id}/content`, { token: intruder.token })],
			[
				"GET own content at their version",
				api.request(`/v1/files/${mine.id}/content?version_id=${committed.version.id}`, { token: intruder.token }),
			],
			["PATCH rename", patch(intruder, file.id, { name: "pwned.txt" })],
			["PATCH move theirs into mine", patch(intruder, file.id, { parent_id: intruder.rootId })],
			["PATCH move mine into theirs", patch(intruder, mine.id, { parent_id: folder.id })],
			["DELETE", remove(intruder, file.id)],
			["DELETE folder", remove(intruder, folder.id)],
			["restore", restore(intruder, gone.id)],
			["POST folder into theirs", createFolder(intruder, folder.id, "planted")],
			["PUT content into theirs", put(intruder, folder.id, "planted.txt", "x")],
			["PUT content into their root", put(intruder, owner.rootId, "planted.txt", "x")],
		];
		for (const [what, pending] of attempts) {
			await expectError(await pending, 404, "NOT_FOUND").catch((err: unknown) => {
				throw new Error(`${what}: ${err instanceof Error ? err.message : String(err)}`);
			});
		}

		expect(await journal(owner.id)).toEqual(before);
		expect(await api.node(owner, file.id)).toMatchObject({ name: "secret.txt", parent_id: folder.id, trashed: false });
		expect(names(await api.listAll(owner, folder.id))).toEqual(["secret.txt"]);
		expect((await api.node(owner, gone.id)).trashed).toBe(true);
		expect(names(await api.listAll(intruder, intruder.rootId))).toEqual(["mine.txt"]);
		expect(names((await trashPage(intruder)).items)).toEqual([]);
		expect(names((await trashPage(owner)).items)).toEqual(["trashed.txt"]);
	});
});
