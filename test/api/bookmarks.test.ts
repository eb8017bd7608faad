/**
 * Read-your-writes with D1 bookmarks (docs/api.md, "Read-your-writes
 * (Drive-Bookmark)"; docs/decisions/0031-read-your-writes-with-bookmarks.md),
 * inside workerd against real local D1 and the user's real UserHub. Local D1
 * has no replicas, but its bookmarks are real: these tests pin the plumbing
 * (which session each read opens, what each answer and frame carries).
 */
import { env, exports } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { DriveClient } from "../../src/client";
import { BOOKMARK_HEADER, isD1Bookmark, parseBookmarks } from "../../src/shared/bookmarks";
import { shardBinding, shardCount } from "../../src/shared/db/shards";
import { sessionsOpened } from "../../src/shared/drills";
import { isFrame, type TestUser } from "../support/harness";
import { api, expectError } from "./helpers";
import { journalUntil, mountIn, share, usersOnDifferentShards } from "./sharing";

/** The shard the directory put the user in. */
async function shardIndexOf(user: TestUser): Promise<number> {
	const row = await env.DIRECTORY.prepare("SELECT shard FROM users WHERE id = ?").bind(user.id).first<{ shard: number }>();
	if (!row) throw new Error(`no user ${user.id}`);
	return row.shard;
}

/** The shard's bookmark now, read on its primary. */
async function primaryBookmark(shard: number): Promise<string> {
	const session = shardBinding(env, shard).withSession("first-primary");
	await session.prepare("SELECT 1").first();
	const bookmark = session.getBookmark();
	if (bookmark === null) throw new Error("no bookmark after a query");
	return bookmark;
}

/** The one entry of an answer's Drive-Bookmark, asserting it is of `shard`. */
function bookmarkOf(res: { headers: Headers }, shard: number): string {
	const value = res.headers.get(BOOKMARK_HEADER);
	expect(value).not.toBeNull();
	const parsed = parseBookmarks(value ?? "");
	expect([...(parsed?.keys() ?? [])]).toEqual([shard]);
	return parsed?.get(shard) ?? "";
}

const children = (user: TestUser, headers: Record<string, string> = {}) =>
	api.request(`/v1/nodes/${user.rootId}/children`, { token: user.token, headers });

/** Sessions the api opened on `shard` since the last reset, by how they started. */
function opened(shard: number): { bookmark: number; unconstrained: number } {
	const counts = sessionsOpened(true);
	return { bookmark: counts[`SHARD_${shard} bookmark`] ?? 0, unconstrained: counts[`SHARD_${shard} first-unconstrained`] ?? 0 };
}

describe("Drive-Bookmark on answers and requests", () => {
	it("answers a read with its shard's bookmark, and reads at a bookmark sent back", async () => {
		const user = await api.signup();
		const shard = await shardIndexOf(user);
		sessionsOpened(true);
		const first = await children(user);
		expect(first.status).toBe(200);
		const bookmark = bookmarkOf(first, shard);
		expect(isD1Bookmark(bookmark)).toBe(true);
		expect(opened(shard)).toEqual({ bookmark: 0, unconstrained: 1 });

		const again = await children(user, { [BOOKMARK_HEADER]: `${shard}.${bookmark}` });
		expect(again.status).toBe(200);
		expect(opened(shard)).toEqual({ bookmark: 1, unconstrained: 0 });
		expect(bookmarkOf(again, shard) >= bookmark).toBe(true);
	});

	it("answers a write with a bookmark newer than the one before it", async () => {
		const user = await api.signup();
		const shard = await shardIndexOf(user);
		const before = bookmarkOf(await children(user), shard);
		const made = await api.createFolder(user, user.rootId, "new");
		expect(made.status).toBe(201);
		const after = bookmarkOf(made, shard);
		expect(after > before).toBe(true);
		// Read at it, the write is there.
		const listed = await api.call<{ items: { name: string }[] }>(`/v1/nodes/${user.rootId}/children`, {
			token: user.token,
			headers: { [BOOKMARK_HEADER]: `${shard}.${after}` },
		});
		expect(listed.body.items.map((n) => n.name)).toContain("new");
	});

	it("gets the hub's bookmark after its write in the RPC answer", async () => {
		const user = await api.signup();
		const shard = await shardIndexOf(user);
		const start = await primaryBookmark(shard);
		const made = await env.USER_HUB.getByName(user.id).createFolder({ parentId: user.rootId, name: "by-rpc" });
		const end = await primaryBookmark(shard);
		expect(made.ok).toBe(true);
		const tagged = parseBookmarks((made as { bookmark?: string }).bookmark ?? "");
		const written = tagged?.get(shard) ?? "";
		expect(isD1Bookmark(written)).toBe(true);
		// After the write began, and no later than the primary once it answered.
		expect(written > start).toBe(true);
		expect(written <= end).toBe(true);
	});

	it("sends a changes frame whose bookmark GET /v1/changes reads at, and long polls answer one", async () => {
		const laptop = await api.signup("laptop");
		const phone = await api.login(laptop, "phone");
		const shard = await shardIndexOf(laptop);
		const { socket, hello } = await api.connect(laptop);
		const from = socket.mark();
		await api.upload(phone, laptop.rootId, "from-phone.txt", "p");
		const frame = await socket.next(isFrame("changes"), from);
		if (!isFrame("changes")(frame)) throw new Error("not a changes frame");
		const told = parseBookmarks(frame.bookmark ?? "")?.get(shard);
		expect(told).toBeDefined();

		sessionsOpened(true);
		const page = await api.call<{ entries: { node: { name: string } }[] }>(`/v1/changes?cursor=${encodeURIComponent(hello)}`, {
			token: laptop.token,
			headers: { [BOOKMARK_HEADER]: frame.bookmark ?? "" },
		});
		expect(page.status).toBe(200);
		expect(page.body.entries.map((e) => e.node.name)).toEqual(["from-phone.txt"]);
		expect(opened(shard)).toEqual({ bookmark: 1, unconstrained: 0 });
		expect(bookmarkOf(page, shard) >= (told ?? "")).toBe(true);

		const poll = await api.longpoll(laptop, hello, 5);
		expect(poll.body).toEqual({ changes: true });
		expect(bookmarkOf(poll, shard) >= (told ?? "")).toBe(true);
		socket.close();
	});

	it("ignores a bookmark of another shard, and an entry that is not a D1 bookmark", async () => {
		const user = await api.signup();
		const shard = await shardIndexOf(user);
		const other = (shard + 1) % shardCount(env);
		const foreign = await primaryBookmark(other);
		sessionsOpened(true);
		for (const header of [`${other}.${foreign}`, `${shard}.not-a-bookmark`, `${other}.${foreign}, 9999.${foreign}`]) {
			const res = await children(user, { [BOOKMARK_HEADER]: header });
			expect(res.status).toBe(200);
			// The caller's shard was read without a bookmark, and the answer names only that shard.
			expect(opened(shard)).toEqual({ bookmark: 0, unconstrained: 1 });
			bookmarkOf(res, shard);
		}
	});

	it("refuses a malformed Drive-Bookmark with 400 INVALID_REQUEST, and the write does not happen", async () => {
		const user = await api.signup();
		const shard = await shardIndexOf(user);
		const good = bookmarkOf(await children(user), shard);
		const malformed = [
			"garbage",
			`${shard}.`,
			`x.${good}`,
			`-1.${good}`,
			`${shard}.${good};1.${good}`,
			`${shard}.${good},`,
			Array.from({ length: 17 }, (_, i) => `${i}.${good}`).join(","),
		];
		for (const header of malformed) {
			const body = await expectError(await children(user, { [BOOKMARK_HEADER]: header }), 400, "INVALID_REQUEST");
			expect(body.error.details).toEqual([{ field: BOOKMARK_HEADER, message: expect.any(String) }]);
		}
		const refused = await api.request(`/v1/folders`, {
			method: "POST",
			token: user.token,
			json: { parent_id: user.rootId, name: "never" },
			headers: { [BOOKMARK_HEADER]: "garbage" },
		});
		await expectError(refused, 400, "INVALID_REQUEST");
		expect((await api.listAll(user, user.rootId)).map((n) => n.name)).not.toContain("never");
	});
});

describe("Drive-Bookmark across shards", () => {
	it("answers a share member's write with the owner's shard's bookmark, which the member's next read of that shard starts at", async () => {
		const [owner, editor] = await usersOnDifferentShards(2);
		if (!owner || !editor) throw new Error("unreachable");
		const [ownerShard, editorShard] = [await shardIndexOf(owner), await shardIndexOf(editor)];
		const project = await api.mkdir(owner, owner.rootId, "Project");
		await share(owner, project.id, [{ user: editor, role: "editor" }]);
		const mount = mountIn(await journalUntil(editor, (es) => es.some((e) => e.node.mount !== undefined)));

		const made = await api.createFolder(editor, mount.id, "from-editor");
		expect(made.status).toBe(201);
		const entries = parseBookmarks(made.headers.get(BOOKMARK_HEADER) ?? "");
		// The owner's hub wrote it: its shard is named, beside the editor's own, which the access check read.
		expect([...(entries?.keys() ?? [])].sort()).toEqual([ownerShard, editorShard].sort());

		sessionsOpened(true);
		const listed = await api.call<{ items: { name: string }[] }>(`/v1/nodes/${mount.id}/children`, {
			token: editor.token,
			headers: { [BOOKMARK_HEADER]: made.headers.get(BOOKMARK_HEADER) ?? "" },
		});
		expect(listed.body.items.map((n) => n.name)).toContain("from-editor");
		expect(opened(ownerShard)).toMatchObject({ bookmark: 1, unconstrained: 0 });
	});
});

describe("the client library", () => {
	it("sends the newest bookmark it saw: from answers, and from a sync frame", async () => {
		const laptop = await api.signup("laptop");
		const phone = await api.login(laptop, "phone");
		const shard = await shardIndexOf(laptop);
		const sent: (string | null)[] = [];
		const client = new DriveClient({
			baseUrl: "http://drive.test",
			token: laptop.token,
			fetch: (url, init) => {
				sent.push(new Headers(init.headers).get(BOOKMARK_HEADER));
				return exports.default.fetch(new Request(url, init));
			},
		});
		expect(client.bookmark).toBe("");
		await client.json("GET", `/v1/nodes/${laptop.rootId}/children`);
		expect(sent).toEqual([null]);
		const seen = client.bookmark;
		expect(parseBookmarks(seen)?.has(shard)).toBe(true);

		await client.json("POST", "/v1/folders", { json: { parent_id: laptop.rootId, name: "mine" } });
		expect(sent[1]).toBe(seen);
		const afterWrite = client.bookmark;
		expect(afterWrite > seen).toBe(true);

		// Another device writes; the laptop hears of it on its socket and passes the frame's bookmark on.
		const { socket } = await api.connect(laptop);
		const from = socket.mark();
		await api.upload(phone, laptop.rootId, "from-phone.txt", "p");
		const frame = await socket.next(isFrame("changes"), from);
		if (!isFrame("changes")(frame)) throw new Error("not a changes frame");
		client.noteBookmark(frame.bookmark);
		expect(client.bookmark).toBe(frame.bookmark);
		expect(client.bookmark > afterWrite).toBe(true);
		await client.json("GET", "/v1/changes");
		expect(sent[2]).toBe(frame.bookmark);

		// Older news never takes a bookmark back; garbage is ignored.
		const newest = client.bookmark;
		client.noteBookmark(seen);
		client.noteBookmark("garbage");
		expect(client.bookmark).toBe(newest);
		socket.close();
	});
});
