/**
 * Conflicts (docs/api.md, "Commits and conflicts"): stale bases
 * become conflicted copies listed by GET /v1/conflicts, edits survive deletes,
 * and racing renames and moves are serialized by the user's hub.
 */
import { describe, expect, it } from "vitest";
import { expectError, runAuthSuite } from "../support/envelope";
import { sha256 } from "../support/bytes";
import { expectOk, type ChangesPage, type CommitResult, type ConflictPage, type Node, type Reply, type TestUser } from "../support/harness";
import { api } from "./helpers";

/** PUT content, with If-Match when `ifMatch` is given; `query` adds parameters. */
function commit(
	user: TestUser,
	parentId: string,
	name: string,
	data: string,
	ifMatch?: string,
	query: Record<string, string> = {},
): Promise<Reply<CommitResult>> {
	return api.putContent(user, parentId, name, data, ifMatch === undefined ? { query } : { ifMatch, query });
}

const folder = (user: TestUser, parentId: string, name: string) => api.mkdir(user, parentId, name);
const patch = (user: TestUser, id: string, change: { name?: string; parent_id?: string }) => api.patchNode(user, id, change);
const node = (user: TestUser, id: string) => api.node(user, id);
const download = (user: TestUser, id: string) => api.text(user, id);
const latest = (user: TestUser) => api.latest(user);
/** Live nodes directly under `folderId`. */
const files = (user: TestUser, folderId: string): Promise<Node[]> => api.listAll(user, folderId);

async function conflicts(user: TestUser, query = ""): Promise<ConflictPage> {
	return expectOk(await api.call<ConflictPage>(`/v1/conflicts${query}`, { token: user.token }), 200);
}

function journal(user: TestUser, cursor?: string): Promise<ChangesPage> {
	return api.page(user, cursor ?? null);
}

function resolve(user: TestUser, id: string, keep?: string): Promise<Reply<Node>> {
	return api.call<Node>(`/v1/conflicts/${id}/resolve`, {
		method: "POST",
		token: user.token,
		...(keep === undefined ? {} : { json: { keep } }),
	});
}

/** Uploads v1, then v2 on top of it: the returned v1 id is now a stale base. */
async function edited(user: TestUser, name: string): Promise<{ id: string; v1: string; v2: string }> {
	const first = await commit(user, user.rootId, name, "version one");
	expect(first.status).toBe(201);
	const second = await commit(user, user.rootId, name, "version two", first.body.version.id);
	expect(second.status).toBe(200);
	expect(second.body.conflict).toBeNull();
	return { id: first.body.node.id, v1: first.body.version.id, v2: second.body.version.id };
}

describe("stale bases", () => {
	it("keep the losing edit as a conflicted copy named for the device and time, listed with its original", async () => {
		const user = await api.signup("Ada's laptop");
		const file = await edited(user, "report.txt");
		const stale = await commit(user, user.rootId, "report.txt", "my offline edit", file.v1);
		expect(stale.status).toBe(201);
		expect(stale.body.conflict).toEqual({ node_id: file.id, reason: "stale_base" });
		const copy = stale.body.node;
		expect(copy.id).not.toBe(file.id);
		expect(copy.name).toMatch(/^report \(conflicted copy Ada's laptop \d{4}-\d{2}-\d{2} \d{6}\)\.txt$/);
		expect(copy.conflict_of).toBe(file.id);

		// Both come back, each byte-exact.
		expect(await download(user, file.id)).toBe("version two");
		expect(await download(user, copy.id)).toBe("my offline edit");
		expect(copy.content_hash).toBe(await sha256("my offline edit"));

		const list = await conflicts(user);
		expect(list.items).toHaveLength(1);
		expect(list.items[0]?.node).toMatchObject({ id: copy.id, conflict_of: file.id });
		expect(list.items[0]?.conflicts_with).toMatchObject({ id: file.id, name: "report.txt", version_id: file.v2 });
		expect(list.next_cursor).toBeNull();
	});

	it("names two copies from the same device in the same second apart", async () => {
		const user = await api.signup();
		const file = await edited(user, "a.txt");
		const [x, y] = await Promise.all([commit(user, user.rootId, "a.txt", "x", file.v1), commit(user, user.rootId, "a.txt", "y", file.v1)]);
		expect([x?.status, y?.status]).toEqual([201, 201]);
		expect(x?.body.node.name).not.toBe(y?.body.node.name);
		expect((await conflicts(user)).items).toHaveLength(2);
	});

	it("answer 409 VERSION_CONFLICT with on_conflict=fail, and write nothing", async () => {
		const user = await api.signup();
		const file = await edited(user, "b.txt");
		const before = await latest(user);
		await expectError(await commit(user, user.rootId, "b.txt", "lost?", file.v1, { on_conflict: "fail" }), 409, "VERSION_CONFLICT");
		expect(await latest(user)).toBe(before);
		expect((await files(user, user.rootId)).map((n) => n.name)).toEqual(["b.txt"]);
		expect((await conflicts(user)).items).toEqual([]);
		// A current base with on_conflict=fail just commits.
		const ok = await commit(user, user.rootId, "b.txt", "fine", file.v2, { on_conflict: "fail" });
		expect(ok.status).toBe(200);
	});

	it("let exactly one of several commits on the same base win; the rest become copies", async () => {
		const user = await api.signup();
		const first = await commit(user, user.rootId, "race.txt", "base");
		const contents = ["r0", "r1", "r2", "r3", "r4"];
		const results = await Promise.all(contents.map((c) => commit(user, user.rootId, "race.txt", c, first.body.version.id)));
		expect(results.filter((r) => r.status === 200)).toHaveLength(1);
		expect(results.filter((r) => r.status === 201 && r.body.conflict?.node_id === first.body.node.id)).toHaveLength(4);
		for (const [i, r] of results.entries()) expect(await download(user, r.body.node.id)).toBe(contents[i]);
		expect((await conflicts(user)).items).toHaveLength(4);
	});
});

describe("GET /v1/conflicts", () => {
	it("drops a copy when it is renamed, but not when it is only moved", async () => {
		const user = await api.signup();
		const file = await edited(user, "c.txt");
		const copy = (await commit(user, user.rootId, "c.txt", "copy", file.v1)).body.node;
		const dir = await folder(user, user.rootId, "elsewhere");
		const moved = await patch(user, copy.id, { parent_id: dir.id });
		expect(moved.status).toBe(200);
		expect((await conflicts(user)).items.map((i) => i.node.id)).toEqual([copy.id]);
		const renamed = await patch(user, copy.id, { name: "c (mine).txt" });
		expect(renamed.status).toBe(200);
		expect(renamed.body.conflict_of).toBeNull();
		expect((await conflicts(user)).items).toEqual([]);
	});

	it("drops a copy when it is deleted, and restoring it does not bring the mark back", async () => {
		const user = await api.signup();
		const file = await edited(user, "d.txt");
		const copy = (await commit(user, user.rootId, "d.txt", "copy", file.v1)).body.node;
		expect((await api.trash(user, copy.id)).status).toBe(200);
		expect((await conflicts(user)).items).toEqual([]);
		expect((await api.restore(user, copy.id)).status).toBe(200);
		expect((await conflicts(user)).items).toEqual([]);
	});

	it("drops a copy marked resolved, idempotently, and journals the change", async () => {
		const user = await api.signup();
		const file = await edited(user, "e.txt");
		const copy = (await commit(user, user.rootId, "e.txt", "copy", file.v1)).body.node;
		const cursor = await latest(user);
		const res = await resolve(user, copy.id);
		expect(expectOk(res, 200)).toMatchObject({ id: copy.id, name: copy.name, conflict_of: null });
		expect((await conflicts(user)).items).toEqual([]);
		expect((await resolve(user, copy.id)).status).toBe(200);
		const j = await journal(user, cursor);
		expect(j.entries.map((e) => [e.kind, e.node.id, e.node.conflict_of])).toEqual([["updated", copy.id, null]]);
		expect(await download(user, copy.id)).toBe("copy");
	});

	it("keeps the original: the copy goes to the trash, the original is untouched, one journal entry", async () => {
		const user = await api.signup();
		const file = await edited(user, "o.txt");
		const copy = (await commit(user, user.rootId, "o.txt", "their edit", file.v1)).body.node;
		const cursor = await latest(user);
		const kept = expectOk(await resolve(user, copy.id, "original"), 200);
		expect(kept).toMatchObject({ id: file.id, version_id: file.v2 });
		expect(await download(user, file.id)).toBe("version two");
		expect(await node(user, copy.id)).toMatchObject({ trashed: true, conflict_of: null });
		expect((await conflicts(user)).items).toEqual([]);
		const j = await journal(user, cursor);
		expect(j.entries.map((e) => [e.kind, e.node.id])).toEqual([["trashed", copy.id]]);
		// Done once: a second "keep" finds nothing to settle.
		await expectError(await resolve(user, copy.id, "original"), 400, "INVALID_REQUEST");
	});

	it("keeps the copy: its content becomes the original's new version on its head, without re-sending bytes, then the copy goes to the trash", async () => {
		const user = await api.signup();
		const file = await edited(user, "q.txt");
		const copy = (await commit(user, user.rootId, "q.txt", "the edit that should win", file.v1)).body.node;
		const cursor = await latest(user);
		const kept = expectOk(await resolve(user, copy.id, "copy"), 200);
		expect(kept).toMatchObject({ id: file.id, content_hash: copy.content_hash, size: copy.size });
		expect(kept.version_id).not.toBe(file.v2);
		expect(await download(user, file.id)).toBe("the edit that should win");
		expect(await node(user, copy.id)).toMatchObject({ trashed: true, conflict_of: null });
		const history = expectOk(
			await api.call<{ items: { id: string; is_head: boolean }[] }>(`/v1/files/${file.id}/versions`, { token: user.token }),
			200,
		);
		expect(history.items.map((v) => v.id)).toEqual([kept.version_id, file.v2, file.v1]);
		const j = await journal(user, cursor);
		expect(j.entries.map((e) => [e.kind, e.node.id])).toEqual([
			["updated", file.id],
			["trashed", copy.id],
		]);
		expect((await conflicts(user)).items).toEqual([]);
	});

	it("refuses to keep a side of a file that is no conflict, and an unknown choice, changing nothing", async () => {
		const user = await api.signup();
		const plain = (await commit(user, user.rootId, "plain.txt", "x")).body.node;
		const cursor = await latest(user);
		const refused = await expectError(await resolve(user, plain.id, "copy"), 400, "INVALID_REQUEST");
		expect(refused.error.details).toEqual([{ reason: "not_a_conflict" }]);
		await expectError(await resolve(user, plain.id, "neither"), 400, "INVALID_REQUEST");
		// An empty body is "keep both", as no body is.
		const empty = { method: "POST", token: user.token, headers: { "Content-Type": "application/json" }, body: "" };
		expect((await api.call(`/v1/conflicts/${plain.id}/resolve`, empty)).status).toBe(200);
		expect(await latest(user)).toBe(cursor);
	});

	it("pages newest first", async () => {
		const user = await api.signup();
		const file = await edited(user, "p.txt");
		const copies: string[] = [];
		for (let i = 0; i < 3; i++) copies.push((await commit(user, user.rootId, "p.txt", `c${i}`, file.v1)).body.node.id);
		const first = await conflicts(user, "?limit=2");
		expect(first.items).toHaveLength(2);
		expect(first.next_cursor).not.toBeNull();
		const second = await conflicts(user, `?limit=2&cursor=${encodeURIComponent(first.next_cursor ?? "")}`);
		expect(second.next_cursor).toBeNull();
		const ids = [...first.items, ...second.items].map((i) => i.node.id);
		expect(new Set(ids)).toEqual(new Set(copies));
		expect(ids).toHaveLength(3);
	});

	it("shows nothing of another user's, and resolving their copy answers 404", async () => {
		const alice = await api.signup();
		const bob = await api.signup();
		const file = await edited(alice, "f.txt");
		const copy = (await commit(alice, alice.rootId, "f.txt", "copy", file.v1)).body.node;
		expect((await conflicts(bob)).items).toEqual([]);
		await expectError(await resolve(bob, copy.id), 404, "NOT_FOUND");
		expect((await conflicts(alice)).items).toHaveLength(1);
	});
});

// GET /v1/conflicts without a token is in openapi.test.ts's security walk.
runAuthSuite(api, "GET /v1/conflicts", () => ({ path: "/v1/conflicts" }));

describe("an edit racing a delete", () => {
	it("revives the deleted file with the edit", async () => {
		const user = await api.signup();
		const first = await commit(user, user.rootId, "g.txt", "original");
		const cursor = await latest(user);
		expect((await api.trash(user, first.body.node.id)).status).toBe(200);
		const edit = await commit(user, user.rootId, "g.txt", "edited offline", first.body.version.id);
		expect(edit.status).toBeLessThan(300);
		expect(edit.body.node).toMatchObject({ id: first.body.node.id, trashed: false });
		expect(await node(user, first.body.node.id)).toMatchObject({ trashed: false, name: "g.txt", parent_id: user.rootId });
		expect(await download(user, first.body.node.id)).toBe("edited offline");
		const j = await journal(user, cursor);
		expect(j.entries.map((e) => [e.kind, e.node.trashed])).toEqual([
			["trashed", true],
			["restored", false],
		]);
	});

	it("keeps the edit whichever of the two the hub processes first", async () => {
		const user = await api.signup();
		for (let i = 0; i < 4; i++) {
			const first = await commit(user, user.rootId, `race-${i}.txt`, "original");
			const [, edit] = await Promise.all([
				api.trash(user, first.body.node.id),
				commit(user, user.rootId, `race-${i}.txt`, `edit ${i}`, first.body.version.id),
			]);
			expect(edit.status).toBeLessThan(300);
			// The edit landed on the same file; whether it is live or in the
			// trash depends on the order, but its content is the edit.
			expect(edit.body.node.id).toBe(first.body.node.id);
			expect(await download(user, first.body.node.id)).toBe(`edit ${i}`);
		}
	});

	it("revives a file deleted with its folder into the nearest folder above that survives", async () => {
		const user = await api.signup();
		const outer = await folder(user, user.rootId, "outer");
		const inner = await folder(user, outer.id, "inner");
		const first = await commit(user, inner.id, "h.txt", "original");
		expect((await api.trash(user, inner.id)).status).toBe(200);
		// The device still believes the file lives in "inner".
		const edit = await commit(user, inner.id, "h.txt", "edited", first.body.version.id);
		expect(edit.status).toBe(200);
		expect(edit.body.node).toMatchObject({ id: first.body.node.id, parent_id: outer.id, trashed: false });
		expect(await download(user, first.body.node.id)).toBe("edited");
		// A plain add into the deleted folder is still refused.
		expect((await commit(user, inner.id, "new.txt", "x")).status).toBe(404);
	});

	// The edit lost two races at once: keep both the deleted file's newer head
	// and the edit, each the head of some file (live or in the trash).
	it("loses neither the newer head nor the edit when the deleted file had been edited meanwhile", async () => {
		const user = await api.signup();
		const file = await edited(user, "k.txt");
		expect((await api.trash(user, file.id)).status).toBe(200);
		const edit = await commit(user, user.rootId, "k.txt", "stale edit", file.v1);
		expect(edit.status).toBeLessThan(300);
		expect(edit.body.conflict).toEqual({ node_id: file.id, reason: "stale_base" });
		const heads = new Set([file.id, edit.body.node.id]);
		expect(heads.size).toBe(2);
		expect(await download(user, file.id)).toBe("version two");
		expect(await download(user, edit.body.node.id)).toBe("stale edit");
		expect((await node(user, file.id)).version_id).toBe(file.v2);
	});
});

describe("an edit racing a rename or a move", () => {
	it("follows the file to its new name and folder", async () => {
		const user = await api.signup();
		const first = await commit(user, user.rootId, "draft.txt", "v1");
		const dir = await folder(user, user.rootId, "archive");
		expect((await patch(user, first.body.node.id, { name: "final.txt", parent_id: dir.id })).status).toBe(200);
		// The device still thinks the file is root/draft.txt at v1.
		const edit = await commit(user, user.rootId, "draft.txt", "v2 edited", first.body.version.id);
		expect(edit.status).toBe(200);
		expect(edit.body.conflict).toBeNull();
		expect(edit.body.node).toMatchObject({ id: first.body.node.id, name: "final.txt", parent_id: dir.id });
		expect(await download(user, first.body.node.id)).toBe("v2 edited");
		expect((await files(user, user.rootId)).map((n) => n.name)).toEqual(["archive"]);
		expect((await conflicts(user)).items).toEqual([]);
	});

	it("never lands on another file that took the old name; a file that also changed gets a copy beside it", async () => {
		const user = await api.signup();
		const file = await edited(user, "notes.txt");
		expect((await patch(user, file.id, { name: "notes-old.txt" })).status).toBe(200);
		const squatter = await commit(user, user.rootId, "notes.txt", "someone else's notes");
		// Stale (v1 while the head is v2) and renamed: a conflicted copy beside the renamed file.
		const edit = await commit(user, user.rootId, "notes.txt", "offline edit", file.v1);
		expect(edit.status).toBe(201);
		expect(edit.body.conflict).toEqual({ node_id: file.id, reason: "stale_base" });
		expect(edit.body.node.name).toMatch(/^notes-old \(conflicted copy .+\)\.txt$/);
		expect(await download(user, squatter.body.node.id)).toBe("someone else's notes");
		expect(await download(user, file.id)).toBe("version two");
		expect(await download(user, edit.body.node.id)).toBe("offline edit");
		await expectError(
			await commit(user, user.rootId, "notes.txt", "offline edit", file.v1, { on_conflict: "fail" }),
			409,
			"VERSION_CONFLICT",
		);
	});
});

describe("an edit racing a rename: the api's pre-checks judge the file the edit follows", () => {
	it("commits with on_conflict=fail when another file took the old name", async () => {
		const user = await api.signup();
		const first = await commit(user, user.rootId, "a.txt", "v1");
		expect((await patch(user, first.body.node.id, { name: "b.txt" })).status).toBe(200);
		expect((await commit(user, user.rootId, "a.txt", "someone else's")).status).toBe(201);
		const edit = await commit(user, user.rootId, "a.txt", "v2", first.body.version.id, { on_conflict: "fail" });
		expect(edit.status).toBe(200);
		expect(edit.body.node).toMatchObject({ id: first.body.node.id, name: "b.txt" });
	});

	it("commits when a folder took the old name, through PUT content and through an upload session", async () => {
		const user = await api.signup();
		const first = await commit(user, user.rootId, "a.txt", "v1");
		expect((await patch(user, first.body.node.id, { name: "b.txt" })).status).toBe(200);
		await folder(user, user.rootId, "a.txt");
		const edit = await commit(user, user.rootId, "a.txt", "v2", first.body.version.id);
		expect(edit.status).toBe(200);
		expect(edit.body.node).toMatchObject({ id: first.body.node.id, name: "b.txt" });
		const data = new TextEncoder().encode("v3 by session");
		const hash = await sha256(data);
		const created = await api.createUpload(user, {
			parent_id: user.rootId,
			name: "a.txt",
			size: data.length,
			content_hash: hash,
			blocks: [{ offset: 0, size: data.length, hash }],
			base_version_id: edit.body.version.id,
		});
		expect(created.status).toBe(201);
	});
});

describe("racing renames and moves", () => {
	it("serializes concurrent renames: the node ends with the name journaled last, and both are journaled in order", async () => {
		const user = await api.signup();
		for (let round = 0; round < 3; round++) {
			const dir = await folder(user, user.rootId, `dir-${round}`);
			const cursor = await latest(user);
			const names = [`left-${round}`, `right-${round}`];
			const answers = await Promise.all(names.map((name) => patch(user, dir.id, { name })));
			expect(answers.map((a) => a.status)).toEqual([200, 200]);
			const j = await journal(user, cursor);
			expect(j.entries.map((e) => e.kind)).toEqual(["moved", "moved"]);
			const [a, b] = j.entries;
			expect((b?.seq ?? 0) - (a?.seq ?? 0)).toBe(1);
			expect(new Set(j.entries.map((e) => e.node.name))).toEqual(new Set(names));
			expect((await node(user, dir.id)).name).toBe(b?.node.name);
		}
	});

	it("gives a name two nodes race for to exactly one of them", async () => {
		const user = await api.signup();
		const a = await folder(user, user.rootId, "a");
		const b = await folder(user, user.rootId, "b");
		const answers = await Promise.all([patch(user, a.id, { name: "same" }), patch(user, b.id, { name: "SAME" })]);
		expect(answers.map((r) => r.status).sort()).toEqual([200, 409]);
		for (const r of answers) if (r.status === 409) await expectError(r, 409, "NAME_TAKEN");
	});

	it("never creates a cycle when two folders move into each other at once", async () => {
		const user = await api.signup();
		for (let round = 0; round < 4; round++) {
			const a = await folder(user, user.rootId, `a-${round}`);
			const b = await folder(user, user.rootId, `b-${round}`);
			const a1 = await folder(user, a.id, "inner");
			const b1 = await folder(user, b.id, "inner");
			// Round 0 and 1: each into the other; 2 and 3: each into the other's subfolder.
			const [intoA, intoB] = round < 2 ? [a.id, b.id] : [a1.id, b1.id];
			const answers = await Promise.all([patch(user, a.id, { parent_id: intoB }), patch(user, b.id, { parent_id: intoA })]);
			expect(answers.map((r) => r.status).sort()).toEqual([200, 400]);
			for (const r of answers) if (r.status === 400) await expectError(r, 400, "INVALID_REQUEST");
			// Both still hang off the root.
			const pa = await node(user, a.id);
			const pb = await node(user, b.id);
			for (const n of [pa, pb]) expect(n.path?.startsWith(`/`)).toBe(true);
			const paths = [pa.path ?? "", pb.path ?? ""].sort((x, y) => x.length - y.length);
			expect(paths[0]?.split("/")).toHaveLength(2);
			expect(paths[1]?.startsWith(`${paths[0]}/`)).toBe(true);
		}
	});

	it("refuses to move a folder into itself", async () => {
		const user = await api.signup();
		const a = await folder(user, user.rootId, "self");
		const res = await patch(user, a.id, { parent_id: a.id });
		expect(res.status).toBe(400);
	});
});
