/**
 * Moving a user to another shard (docs/decisions/0034, docs/operations.md
 * "Moving a user to another shard"): the operator route, the copy, the old
 * shard's fence, the devices' cursors across the move, a move cut short by a
 * failing target shard, and the cleanup after the grace.
 */
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { shardBinding, shardCount } from "../../src/shared/db/shards";
import { USER_TABLES } from "../../workers/notify/move-ops";
import { decodeJournalCursor } from "../../src/shared/journal";
import { expectOk, isFrame, type ChangeEntry, type TestUser } from "../support/harness";
import { api, call, expectError, expectJson, randomBytes, sha256, signup } from "./helpers";
import { journalUntil, mountIn, share } from "./sharing";

const OPS = { Authorization: "Bearer test-ops-secret" };

interface MoveStatus {
	shard: number;
	moving: { from: number; to: number } | null;
	cleanups: { shard: number; due: number }[];
}

function move(userId: string, to: unknown, headers: Record<string, string> = OPS): Promise<Response> {
	return call(`/__ops/users/${userId}/move`, { method: "POST", headers, body: JSON.stringify({ to }) });
}

async function shardIndex(userId: string): Promise<number> {
	const row = await env.DIRECTORY.prepare("SELECT shard FROM users WHERE id = ?").bind(userId).first<{ shard: number }>();
	if (!row) throw new Error(`no user ${userId}`);
	return row.shard;
}

/** The user's rows per table in shard `index`. */
async function rowCounts(index: number, userId: string): Promise<Record<string, number>> {
	const db = shardBinding(env, index);
	const out: Record<string, number> = {};
	for (const spec of USER_TABLES) {
		const row = await db.prepare(`SELECT COUNT(*) AS n FROM ${spec.table} WHERE ${spec.where}`).bind(userId).first<{ n: number }>();
		out[spec.table] = row?.n ?? 0;
	}
	return out;
}

/** Every entry after `cursor`, in pages of `limit`; the cursor after them. */
async function pull(device: TestUser, cursor: string | null, limit = 500): Promise<{ entries: ChangeEntry[]; cursor: string }> {
	const entries: ChangeEntry[] = [];
	for (;;) {
		const page = await api.page(device, cursor, limit);
		entries.push(...page.entries);
		cursor = page.cursor;
		if (!page.has_more) return { entries, cursor };
	}
}

const seqs = (entries: ChangeEntry[]) => entries.map((e) => e.seq);
const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i);

describe("moving a user to another shard", () => {
	it("moves a user mid-session: each device's next GET /v1/changes continues with no gap and no duplicate", async () => {
		const alice = await signup("Laptop");
		const phone = await api.login(alice, "Phone");
		const bob = await signup("Bob's laptop");
		const from = await shardIndex(alice.id);
		const to = (from + 1) % shardCount(env);

		// Files, folders, versions, trash, a share and an open upload session.
		const docs = await api.mkdir(alice, alice.rootId, "Docs");
		const report = await api.upload(alice, docs.id, "report.txt", "first draft");
		const second = await api.upload(alice, docs.id, "report.txt", "second draft", { status: 200 });
		const old = await api.upload(alice, alice.rootId, "old.txt", "to the trash");
		expectOk(await api.trash(alice, old.node.id), 200);
		await share(alice, docs.id, [{ user: bob, role: "editor" }]);
		const mount = mountIn(await journalUntil(bob, (es) => es.some((e) => e.node.mount !== undefined)));
		const blockA = randomBytes(40_000, 7);
		const blockB = randomBytes(30_000, 8);
		const session = expectOk(
			await api.createUpload(alice, {
				parent_id: alice.rootId,
				name: "big.bin",
				size: blockA.length + blockB.length,
				blocks: [
					{ hash: await sha256(blockA), size: blockA.length },
					{ hash: await sha256(blockB), size: blockB.length },
				],
			}),
			201,
		);
		expect((await api.putBlock(alice, session.upload_id, await sha256(blockA), blockA)).status).toBe(204);

		// The laptop has read everything; the phone only the first three changes.
		const laptopBefore = await pull(alice, null);
		const phoneFirst = await api.page(phone, null, 3);
		expect(seqs(phoneFirst.entries)).toEqual([1, 2, 3]);
		const latestBefore = laptopBefore.entries.at(-1)?.seq ?? 0;
		const before = await rowCounts(from, alice.id);

		// The phone also holds the sync socket: the move tells it to read again.
		const socket = (await api.connect(phone)).socket;
		await socket.next(isFrame("hello"));
		const mark = socket.mark();

		const moved = await expectJson<MoveStatus>(await move(alice.id, to), 200);
		const wake = await socket.next(isFrame("changes"), mark);
		expect(decodeJournalCursor(wake.cursor)?.seq).toBe(latestBefore);
		expect(moved).toMatchObject({ shard: to, moving: null, cleanups: [{ shard: from }] });
		expect(await shardIndex(alice.id)).toBe(to);
		// Every row went over; the old shard keeps its frozen copy until the cleanup.
		expect(await rowCounts(to, alice.id)).toEqual(before);
		expect(await rowCounts(from, alice.id)).toEqual(before);

		// Nothing new yet: the laptop's next read answers nothing, from the new shard.
		const laptopNext = await api.page(alice, laptopBefore.cursor);
		expect(laptopNext.entries).toEqual([]);
		expect(laptopNext.has_more).toBe(false);

		// A change after the move lands in the new shard only.
		const after = await api.upload(alice, alice.rootId, "after.txt", "written after the move");
		const inShard = (index: number) =>
			shardBinding(env, index).prepare("SELECT COUNT(*) AS n FROM nodes WHERE id = ?").bind(after.node.id).first<{ n: number }>();
		expect((await inShard(to))?.n).toBe(1);
		expect((await inShard(from))?.n).toBe(0);

		// Each device goes on from its own cursor: no gap, no duplicate.
		const laptopAfter = await pull(alice, laptopBefore.cursor);
		expect(seqs(laptopAfter.entries)).toEqual([latestBefore + 1]);
		expect(laptopAfter.entries[0]?.node.id).toBe(after.node.id);
		const phoneRest = await pull(phone, phoneFirst.cursor, 2);
		const phoneAll = [...phoneFirst.entries, ...phoneRest.entries];
		expect(seqs(phoneAll)).toEqual(range(1, latestBefore + 1));
		expect(phoneAll.map((e) => e.node.id)).toEqual([...laptopBefore.entries, ...laptopAfter.entries].map((e) => e.node.id));

		// Reads and downloads are right.
		expect(await api.text(alice, report.node.id)).toBe("second draft");
		expect(await api.text(alice, report.node.id, report.version.id)).toBe("first draft");
		const versions = await expectJson<{ items: { id: string }[] }>(
			await call(`/v1/files/${report.node.id}/versions`, { token: alice.token }),
			200,
		);
		expect(versions.items.map((v) => v.id).sort()).toEqual([report.version.id, second.version.id].sort());
		const trash = await expectJson<{ items: { id: string }[] }>(await call("/v1/trash", { token: alice.token }), 200);
		expect(trash.items.map((i) => i.id)).toEqual([old.node.id]);
		expectOk(await api.restore(alice, old.node.id), 200);

		// The upload session goes on where it was.
		expect((await api.putBlock(alice, session.upload_id, await sha256(blockB), blockB)).status).toBe(204);
		const big = expectOk(await api.commitUpload(alice, session.upload_id), 201);
		const { bytes } = await api.download(alice, big.node.id);
		expect(bytes).toEqual(new Uint8Array([...blockA, ...blockB]));

		// The share holds: bob reads and writes in alice's tree, now in her new shard.
		expect((await api.listAll(bob, mount.id)).map((n) => n.name)).toEqual(["report.txt"]);
		expect(await api.text(bob, report.node.id)).toBe("second draft");
		const bobs = await api.upload(bob, mount.id, "from-bob.txt", "hello");
		expect(await api.text(alice, bobs.node.id)).toBe("hello");

		socket.close();

		// The old shard refuses the user's writes.
		const oldShard = shardBinding(env, from);
		await expect(oldShard.prepare("UPDATE nodes SET name = 'x' WHERE id = ?").bind(report.node.id).run()).rejects.toThrow(/USER_MOVED/);
		await expect(
			oldShard
				.prepare("INSERT INTO user_usage (user_id, version_bytes, nodes) VALUES (?, 0, 0) ON CONFLICT (user_id) DO UPDATE SET nodes = 0")
				.bind(alice.id)
				.run(),
		).rejects.toThrow(/USER_MOVED/);
	});

	it("answers a request sent to the old shard 503 UNAVAILABLE, and the next one reaches the new shard", async () => {
		const carol = await signup();
		const from = await shardIndex(carol.id);
		const to = (from + 1) % shardCount(env);
		await expectJson(await move(carol.id, to), 200);

		// An isolate that still believes the old shard: the directory says so for a moment.
		await env.DIRECTORY.prepare("UPDATE users SET shard = ? WHERE id = ?").bind(from, carol.id).run();
		const stale = await api.login(carol, "Stale isolate");
		const body = { parent_id: carol.rootId, name: "x.bin", size: 1, blocks: [{ hash: await sha256(new Uint8Array([1])), size: 1 }] };
		const refused = await api.createUpload(stale, body);
		expect(refused.status).toBe(503);
		expect(refused.headers.get("Retry-After")).toBe("1");
		expect((refused.body as unknown as { error: { code: string } }).error.code).toBe("UNAVAILABLE");
		// Its journal too: a device never reads the frozen copy's changes.
		const journal = await call("/v1/changes", { token: stale.token });
		expect(journal.status).toBe(503);
		await expectError(journal, 503, "UNAVAILABLE");
		await env.DIRECTORY.prepare("UPDATE users SET shard = ? WHERE id = ?").bind(to, carol.id).run();
		// The refusal dropped the remembered caller: the retry reads the directory and lands in the new shard.
		const created = expectOk(await api.createUpload(stale, body), 201);
		const row = await shardBinding(env, to).prepare("SELECT user_id FROM uploads WHERE id = ?").bind(created.upload_id).first();
		expect(row).toEqual({ user_id: carol.id });
	});

	it("resumes a move cut short by a failing target shard, and completes it", async () => {
		const dave = await signup();
		const folder = await api.mkdir(dave, dave.rootId, "Work");
		await api.upload(dave, folder.id, "a.txt", "a");
		await api.upload(dave, folder.id, "a.txt", "a, again", { status: 200 });
		const cursor = (await pull(dave, null)).cursor;
		const from = await shardIndex(dave.id);
		const to = (from + 1) % shardCount(env);
		const hubs = env.USER_HUB.getByName("usr_drills");
		// The copy's third batch into the target fails.
		await hubs.drill([{ target: "d1.batch", effect: "error", binding: `SHARD_${to}`, skip: 2 }]);
		try {
			await expectError(await move(dave.id, to), 503, "UNAVAILABLE");
		} finally {
			await hubs.drill(null);
		}
		const status = await expectJson<MoveStatus>(await call(`/__ops/users/${dave.id}/move`, { headers: OPS }), 200);
		expect(status).toMatchObject({ shard: from, moving: { from, to } });
		expect(await shardIndex(dave.id)).toBe(from);

		// The next change resumes the move first, then lands in the new shard.
		const next = await api.upload(dave, folder.id, "b.txt", "b");
		expect(await shardIndex(dave.id)).toBe(to);
		const done = await expectJson<MoveStatus>(await call(`/__ops/users/${dave.id}/move`, { headers: OPS }), 200);
		expect(done).toMatchObject({ shard: to, moving: null, cleanups: [{ shard: from }] });
		// This isolate may still remember dave on the old shard: the frozen journal answers 503, the retry reads the new one.
		const stale = await call(`/v1/changes?cursor=${encodeURIComponent(cursor)}`, { token: dave.token });
		if (stale.status !== 200) await expectError(stale, 503, "UNAVAILABLE");
		const rest = await pull(dave, cursor);
		expect(rest.entries.map((e) => e.node.id)).toEqual([next.node.id]);
		const target = await rowCounts(to, dave.id);
		const source = await rowCounts(from, dave.id);
		expect(target.nodes).toBe((source.nodes ?? 0) + 1);
		expect(target.changes).toBe((source.changes ?? 0) + 1);
		expect(await api.text(dave, next.node.id)).toBe("b");
	});

	it("finishes a move whose directory switch landed but was not seen to, without copying again", async () => {
		const hank = await signup();
		const file = await api.upload(hank, hank.rootId, "h.txt", "h");
		const from = await shardIndex(hank.id);
		const to = (from + 1) % shardCount(env);
		const hubs = env.USER_HUB.getByName("usr_drills");
		// The switch commits, and its answer is lost.
		await hubs.drill([{ target: "d1.query", effect: "after", binding: "DIRECTORY", match: "UPDATE users SET shard" }]);
		try {
			await expectError(await move(hank.id, to), 503, "UNAVAILABLE");
		} finally {
			await hubs.drill(null);
		}
		expect(await shardIndex(hank.id)).toBe(to);
		// Meanwhile a request writes straight into the new shard; finishing the move must keep it.
		const body = { parent_id: hank.rootId, name: "u.bin", size: 1, blocks: [{ hash: await sha256(new Uint8Array([2])), size: 1 }] };
		const late = await api.login(hank, "Late device");
		const upload = expectOk(await api.createUpload(late, body), 201);
		const done = await expectJson<MoveStatus>(await move(hank.id, to), 200);
		expect(done).toMatchObject({ shard: to, moving: null, cleanups: [{ shard: from }] });
		const row = await shardBinding(env, to).prepare("SELECT id FROM uploads WHERE id = ?").bind(upload.upload_id).first();
		expect(row).toEqual({ id: upload.upload_id });
		expect(await api.text(hank, file.node.id)).toBe("h");
	});

	it("gives up a move whose target keeps failing: the fence lifts and the user stays where they were", async () => {
		const gina = await signup();
		const file = await api.upload(gina, gina.rootId, "stay.txt", "here");
		const from = await shardIndex(gina.id);
		const to = (from + 1) % shardCount(env);
		await expectError(await call(`/__ops/users/${gina.id}/move`, { method: "DELETE", headers: OPS }), 400, "INVALID_REQUEST");
		const hubs = env.USER_HUB.getByName("usr_drills");
		await hubs.drill([{ target: "d1.batch", effect: "error", binding: `SHARD_${to}`, times: 0 }]);
		try {
			await expectError(await move(gina.id, to), 503, "UNAVAILABLE");
			await expectError(await move(gina.id, (to + 1) % shardCount(env) === from ? to : (to + 1) % shardCount(env)), 400, "INVALID_REQUEST");
			const given = await expectJson<MoveStatus>(await call(`/__ops/users/${gina.id}/move`, { method: "DELETE", headers: OPS }), 200);
			expect(given).toMatchObject({ shard: from, moving: null });
		} finally {
			await hubs.drill(null);
		}
		expect(await shardIndex(gina.id)).toBe(from);
		expect(await shardBinding(env, from).prepare("SELECT 1 FROM moved_users WHERE user_id = ?").bind(gina.id).first()).toBeNull();
		await api.upload(gina, gina.rootId, "stay.txt", "still here", { status: 200 });
		expect(await api.text(gina, file.node.id)).toBe("still here");
	});

	it("deletes the old shard's copy after the grace, and the user keeps working", async () => {
		const erin = await signup();
		const file = await api.upload(erin, erin.rootId, "keep.txt", "kept");
		const from = await shardIndex(erin.id);
		const to = (from + 1) % shardCount(env);
		await expectJson(await move(erin.id, to), 200);
		const early = await env.USER_HUB.getByName(erin.id).cleanUpMoves();
		expect(early.ok && early.value.cleanups.length).toBe(1);
		const cleaned = await env.USER_HUB.getByName(erin.id).cleanUpMoves({ now: Date.now() + 2 * 60 * 60_000 });
		expect(cleaned.ok && cleaned.value.cleanups).toEqual([]);
		expect(Object.values(await rowCounts(from, erin.id)).every((n) => n === 0)).toBe(true);
		// The fence stays, for a writer that is later still.
		const fence = await shardBinding(env, from).prepare("SELECT to_shard FROM moved_users WHERE user_id = ?").bind(erin.id).first();
		expect(fence).toEqual({ to_shard: to });
		expect(await api.text(erin, file.node.id)).toBe("kept");

		// Moving back clears the fence in the shard it moves into.
		await expectJson(await move(erin.id, from), 200);
		expect(await shardBinding(env, from).prepare("SELECT 1 FROM moved_users WHERE user_id = ?").bind(erin.id).first()).toBeNull();
		expect(await api.text(erin, file.node.id)).toBe("kept");
		await api.upload(erin, erin.rootId, "back.txt", "back home");
	});

	it("refuses a move to the shard the user is on, to a shard that does not exist, of an unknown user, and without the secret", async () => {
		const frank = await signup();
		const here = await shardIndex(frank.id);
		await expectError(await move(frank.id, here), 400, "INVALID_REQUEST");
		await expectError(await move(frank.id, shardCount(env)), 400, "INVALID_REQUEST");
		await expectError(await move(frank.id, "one"), 400, "INVALID_REQUEST");
		await expectError(await move("usr_nobody", (here + 1) % shardCount(env)), 404, "NOT_FOUND");
		await expectError(await move(frank.id, (here + 1) % shardCount(env), { Authorization: "Bearer wrong" }), 401, "UNAUTHENTICATED");
		await expectError(await move(frank.id, (here + 1) % shardCount(env), {}), 401, "UNAUTHENTICATED");
		expect(await shardIndex(frank.id)).toBe(here);
	});
});
