/**
 * The change journal, long poll and sync WebSocket (docs/api.md, "Sync: the
 * change journal"), inside workerd against real local D1
 * and the user's real UserHub.
 */
import { MAX_SOCKETS_PER_DEVICE } from "../../workers/notify/sync-channel";
import { abortAllDurableObjects } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { decodeJournalCursor } from "../../src/shared/journal";
import { runHousekeeping } from "../../workers/api/scheduled";
import { dropUnits } from "../../workers/api/services/gc-queue";
import { expectError, runAuthSuite } from "../support/envelope";
import { clockPast, isFrame, type ChangeEntry, type ErrorBody, type SyncSocket, type TestUser } from "../support/harness";
import { api } from "./helpers";

const folder = (user: TestUser, parentId: string, name: string) => api.mkdir(user, parentId, name);

/** PUT content, asserting 201. */
const put = (user: TestUser, parentId: string, name: string, data: string) => api.upload(user, parentId, name, data);

/**
 * A refused upgrade's status and code. The hub answers these itself, so its
 * envelope does not carry the request's id (workers/notify/user-hub.ts
 * errorJson): only the code is checked here.
 */
async function expectRefused(res: Response, status: number, code: string): Promise<void> {
	expect(res.status).toBe(status);
	expect(((await res.json()) as ErrorBody).error.code).toBe(code);
}

function upgrade(ticket: string): Promise<Response> {
	return api.request(`/v1/sync/ws?ticket=${encodeURIComponent(ticket)}`, { headers: { Upgrade: "websocket" } });
}

async function connect(user: TestUser): Promise<SyncSocket> {
	return (await api.connect(user)).socket;
}

/** The journal positions of every `changes` frame a socket got so far. */
const changePositions = (s: SyncSocket) => s.frames.filter(isFrame("changes")).map((f) => decodeJournalCursor(f.cursor));

describe("GET /v1/changes", () => {
	it("starts from the beginning without a cursor and pages by cursor with has_more", async () => {
		const user = await api.signup();
		const made: string[] = [];
		for (let i = 0; i < 5; i++) made.push((await folder(user, user.rootId, `f${i}`)).id);
		const all = await api.page(user, null);
		expect(all.entries.map((e) => e.node.id)).toEqual(made);
		expect(all.entries.map((e) => e.kind)).toEqual(Array(5).fill("created"));
		expect(all.has_more).toBe(false);

		const seen: ChangeEntry[] = [];
		let cursor: string | null = null;
		const pages: boolean[] = [];
		for (;;) {
			const p = await api.page(user, cursor, 2);
			expect(p.entries.length).toBeLessThanOrEqual(2);
			seen.push(...p.entries);
			pages.push(p.has_more);
			cursor = p.cursor;
			if (!p.has_more) break;
		}
		expect(pages).toEqual([true, true, false]);
		expect(seen.map((e) => e.seq)).toEqual(all.entries.map((e) => e.seq));
		expect(cursor).toBe(all.cursor);
		expect(cursor).toBe(await api.latest(user));

		// At the end: an empty page that keeps the cursor.
		const end = await api.page(user, cursor);
		expect(end).toEqual({ entries: [], cursor, has_more: false });
	});

	it("answers an empty journal and a limit of exactly the remaining entries without has_more", async () => {
		const user = await api.signup();
		const start = await api.latest(user);
		expect(await api.page(user, start)).toEqual({ entries: [], cursor: start, has_more: false });
		await folder(user, user.rootId, "a");
		await folder(user, user.rootId, "b");
		const p = await api.page(user, start, 2);
		expect(p.entries).toHaveLength(2);
		expect(p.has_more).toBe(false);
	});

	it("refuses a garbage cursor with 400 and a limit out of range with 400", async () => {
		const user = await api.signup();
		for (const bad of ["garbage", "c1_!!!", "c1_" + btoa("nonsense")])
			await expectError(await api.changes(user, bad), 400, "INVALID_REQUEST");
		for (const limit of [0, 1001]) expect((await api.changes(user, null, limit)).status).toBe(400);
	});

	it("answers 410 CURSOR_RESET to another user's cursor, and nothing of theirs leaks", async () => {
		const alice = await api.signup();
		const bob = await api.signup();
		await folder(alice, alice.rootId, "secret");
		const aliceCursor = (await api.page(alice, null)).cursor;
		const res = await api.changes(bob, aliceCursor);
		const err = await expectError(res, 410, "CURSOR_RESET");
		expect(JSON.stringify(err)).not.toContain("secret");
		expect((await api.longpoll(bob, aliceCursor, 1)).status).toBe(410);
	});

	it("answers 410 to a cursor ahead of the journal", async () => {
		const user = await api.signup();
		const ahead = "c1_" + btoa(`${user.id}:99999`).replace(/=+$/, "");
		await expectError(await api.changes(user, ahead), 410, "CURSOR_RESET");
	});
});

// Without a token, every sync route answers 401: openapi.test.ts walks them all.
runAuthSuite(api, "GET /v1/changes", () => ({ path: "/v1/changes" }));

describe("journal entries", () => {
	it("records every kind of change the API can make, with contiguous seqs", async () => {
		const user = await api.signup();
		const dir = await folder(user, user.rootId, "dir");
		const first = await put(user, dir.id, "a.txt", "one");
		const second = await api.putContent(user, dir.id, "a.txt", "two", { ifMatch: first.version.id });
		expect(second.status).toBe(200);
		expect((await api.patchNode(user, first.node.id, { name: "b.txt" })).status).toBe(200);
		expect((await api.trash(user, dir.id)).status).toBe(200);
		expect((await api.restore(user, dir.id)).status).toBe(200);

		const all = await api.page(user, null);
		expect(all.entries.map((e) => e.kind)).toEqual(["created", "created", "updated", "moved", "trashed", "restored"]);
		const seqs = all.entries.map((e) => e.seq);
		expect(seqs).toEqual(seqs.map((_, i) => (seqs[0] ?? 0) + i));
		expect(seqs[0]).toBe(1);
		// Each entry carries the node as it was right after the change.
		expect(all.entries[3]?.node).toMatchObject({ id: first.node.id, name: "b.txt" });
		expect(all.entries[4]?.node).toMatchObject({ id: dir.id, trashed: true });
		expect(all.entries[5]?.node).toMatchObject({ id: dir.id, trashed: false });
		// "deleted" (a purge) has no route yet, so it cannot appear here.
	});
});

describe("journal retention", () => {
	const MONTH_AND_A_DAY = 31 * 86_400_000;

	it("resets a cursor older than the retained journal, and the start of the journal, with 410", async () => {
		const user = await api.signup();
		await folder(user, user.rootId, "old-1");
		await folder(user, user.rootId, "old-2");
		const early = (await api.page(user, null, 1)).cursor;

		await runHousekeeping(env, Date.now() + MONTH_AND_A_DAY, dropUnits);

		await expectError(await api.changes(user, early), 410, "CURSOR_RESET");
		await expectError(await api.changes(user, null), 410, "CURSOR_RESET");
		expect((await api.longpoll(user, early, 1)).status).toBe(410);
	});

	// With every entry pruned, the journal must still end where it ended, or
	// this cursor would count as "ahead of the journal".
	it("keeps a cursor at the newest pruned entry valid, and a commit after pruning is seen from it", async () => {
		const user = await api.signup();
		await folder(user, user.rootId, "old");
		const head = await api.latest(user);
		await runHousekeeping(env, Date.now() + MONTH_AND_A_DAY, dropUnits);
		// The cursor has missed nothing: it must keep working.
		expect((await api.changes(user, head)).status).toBe(200);
		const after = await folder(user, user.rootId, "new");
		const next = await api.page(user, head);
		expect(next.entries.map((e) => e.node.id)).toEqual([after.id]);
	});

	// The reset recipe of docs/api.md ("Sync") must not loop on 410 once every entry is pruned.
	it("after everything is pruned, /changes/latest answers a cursor that can be followed", async () => {
		const user = await api.signup();
		await folder(user, user.rootId, "old-1");
		await folder(user, user.rootId, "old-2");
		const beforePrune = await api.latest(user);

		await runHousekeeping(env, Date.now() + MONTH_AND_A_DAY, dropUnits);

		// The client's recipe: take the latest cursor, list the tree, follow from there.
		const fresh = await api.latest(user);
		expect((await api.changes(user, fresh)).status).toBe(200);
		expect(fresh).toBe(beforePrune);
		const after = await folder(user, user.rootId, "new");
		const next = await api.page(user, fresh);
		expect(next.entries.map((e) => e.node.id)).toEqual([after.id]);
		expect(next.entries[0]?.seq).toBe(3);
	});

	// A hub that restarts after its user's journal was pruned must number new
	// changes above the pruned ones, or they land below every cursor, unseen.
	it("numbers changes after the pruned ones even when the hub restarts after pruning", async () => {
		const user = await api.signup();
		await folder(user, user.rootId, "old-1");
		await folder(user, user.rootId, "old-2");
		const head = await api.latest(user);
		await runHousekeeping(env, Date.now() + MONTH_AND_A_DAY, dropUnits);

		// What an eviction or a deploy does to the hub.
		await abortAllDurableObjects();
		await folder(user, user.rootId, "after-restart");

		const p = await api.page(user, head);
		expect(p.entries.map((e) => [e.seq, e.node.name])).toEqual([[3, "after-restart"]]);
	});

	// A trash keeps the node's modified_at; the entry must still carry the time
	// of the change, or housekeeping prunes it (and resets cursors) too early.
	it("stamps a trashed entry with the time of the trash, so retention counts from then", async () => {
		const user = await api.signup();
		const dir = await folder(user, user.rootId, "dir");
		const cursor = await api.latest(user);
		// The trash must happen in a later millisecond than the creation, or
		// the two stamps could not be told apart.
		await clockPast(dir.modified_at);
		const before = new Date().toISOString();
		expect((await api.trash(user, dir.id)).status).toBe(200);
		const p = await api.page(user, cursor);
		expect(p.entries.map((e) => e.kind)).toEqual(["trashed"]);
		expect(p.entries[0]?.node.modified_at).toBe(dir.modified_at);
		expect((p.entries[0]?.created_at ?? "") >= before).toBe(true);
	});
});

describe("GET /v1/changes/longpoll", () => {
	// The longest timeout: a poll that waited instead would answer changes:false, after 108 s at the earliest.
	it("answers changes:true at once when the cursor is behind", async () => {
		const user = await api.signup();
		const start = await api.latest(user);
		await folder(user, user.rootId, "x");
		const res = await api.longpoll(user, start, 120);
		expect(res.status).toBe(200);
		expect(res.body).toEqual({ changes: true });
	});

	it("answers changes:false when the timeout runs out, and not before it (less up to 10 % jitter)", async () => {
		const user = await api.signup();
		const cursor = await api.latest(user);
		const t0 = Date.now();
		const res = await api.longpoll(user, cursor, 1);
		// A lower bound only: a busy machine makes the wait longer, never shorter.
		expect(Date.now() - t0).toBeGreaterThanOrEqual(850);
		expect(res.status).toBe(200);
		expect(res.body).toEqual({ changes: false });
	});

	it("keeps waiting while nothing changes, and answers changes:true after a commit", async () => {
		const user = await api.signup();
		const start = await api.latest(user);
		let settled = false;
		const poll = api.longpoll(user, start, 120).finally(() => (settled = true));
		// A second poll that times out: until it does, nothing has changed, so the first must still be waiting.
		expect((await api.longpoll(user, start, 1)).body).toEqual({ changes: false });
		expect(settled).toBe(false);
		await put(user, user.rootId, "wake.txt", "w");
		const res = await poll;
		expect(res.status).toBe(200);
		expect(res.body).toEqual({ changes: true });
	});

	it("validates its query", async () => {
		const user = await api.signup();
		const cursor = encodeURIComponent(await api.latest(user));
		const poll = (query: string) => api.request(`/v1/changes/longpoll?${query}`, { token: user.token });
		await expectError(await poll("timeout=5"), 400, "INVALID_REQUEST");
		await expectError(await poll(`cursor=${cursor}&timeout=0`), 400, "INVALID_REQUEST");
		await expectError(await poll(`cursor=${cursor}&timeout=121`), 400, "INVALID_REQUEST");
		await expectError(await poll("cursor=garbage&timeout=1"), 400, "INVALID_REQUEST");
	});
});

describe("the sync WebSocket", () => {
	it("says hello, then sends a changes frame whose cursor is /v1/changes' cursor", async () => {
		const user = await api.signup();
		const { socket, hello } = await api.connect(user);
		expect(hello).toBe(await api.latest(user));
		const from = socket.mark();
		await put(user, user.rootId, "a.txt", "a");
		const frame = await socket.next(isFrame("changes"), from);
		const p = await api.page(user, hello);
		expect(p.entries.map((e) => e.node.name)).toEqual(["a.txt"]);
		expect(frame).toEqual({ type: "changes", cursor: p.cursor, bookmark: expect.stringMatching(/^\d+\./) });
		socket.close();
	});

	it("tells every device of the user, and none of another user", async () => {
		const user = await api.signup("laptop");
		const phone = await api.login(user, "phone");
		const other = await api.signup();
		const [a, b, c] = await Promise.all([connect(user), connect(phone), connect(other)]);
		await put(phone, user.rootId, "from-phone.txt", "p");
		const userCursor = await api.latest(user);
		for (const s of [a, b]) await s.next((f) => isFrame("changes")(f) && f.cursor === userCursor);
		// A barrier instead of a pause: the other user's own commit reaches its
		// socket, and every frame that socket got names the other user's journal.
		await folder(other, other.rootId, "mine");
		const otherCursor = await api.latest(other);
		await c.next((f) => isFrame("changes")(f) && f.cursor === otherCursor);
		expect(changePositions(c).map((p) => p?.userId)).toEqual(changePositions(c).map(() => other.id));
		expect(changePositions(a).map((p) => p?.userId)).toEqual(changePositions(a).map(() => user.id));
		expect((await api.page(other, null)).entries.map((e) => e.node.name)).toEqual(["mine"]);
		for (const s of [a, b, c]) s.close();
	});

	it("coalesces a burst of changes into frames that end at the latest cursor, at most 4 a second", async () => {
		const user = await api.signup();
		const client = await connect(user);
		const t0 = Date.now();
		for (let i = 0; i < 10; i++) await folder(user, user.rootId, `burst-${i}`);
		const end = await api.latest(user);
		await client.next((f) => isFrame("changes")(f) && f.cursor === end);
		const elapsed = Date.now() - t0;
		const frames = client.frames.filter(isFrame("changes"));
		// Each frame carries the newest cursor at the time: later frames, later cursors.
		const seqs = changePositions(client).map((p) => p?.seq ?? -1);
		expect(seqs).toEqual([...seqs].sort((x, y) => x - y));
		expect(new Set(seqs).size).toBe(seqs.length);
		// The rate limit, as a bound a slow machine only loosens: frames are at
		// least 250 ms apart, so this window holds at most 1 + elapsed / 250 of
		// them (one more for the clock's granularity). How much a burst
		// coalesces is a figure for the bench, not a test.
		expect(frames.length).toBeLessThanOrEqual(Math.min(10, 2 + Math.floor(elapsed / 250)));
		client.close();
	});

	it("answers a JSON ping with a pong, the text ping with pong, and garbage with an error", async () => {
		const user = await api.signup();
		const client = await connect(user);
		let from = client.mark();
		client.send(JSON.stringify({ type: "ping" }));
		expect(await client.next(isFrame("pong"), from)).toEqual({ type: "pong" });
		from = client.mark();
		client.send("ping");
		expect(await client.next((f) => f === "pong", from)).toBe("pong");
		for (const garbage of ["{not json", JSON.stringify({ type: "subscribe" }), "42"]) {
			from = client.mark();
			client.send(garbage);
			const err = await client.next(isFrame("error"), from);
			expect(err).toMatchObject({ type: "error", message: expect.any(String) });
		}
		from = client.mark();
		client.send(new Uint8Array([1, 2, 3]));
		expect(await client.next(isFrame("error"), from)).toMatchObject({ type: "error" });
		// The socket survives garbage.
		from = client.mark();
		client.send(JSON.stringify({ type: "ping" }));
		await client.next(isFrame("pong"), from);
		client.close();
	});

	it("uses a ticket once: a second upgrade with it answers 401", async () => {
		const user = await api.signup();
		const { ticket, expires_in } = await api.ticket(user);
		expect(expires_in).toBeGreaterThan(0);
		const first = await upgrade(ticket);
		expect(first.status).toBe(101);
		first.webSocket?.accept();
		await expectRefused(await upgrade(ticket), 401, "UNAUTHENTICATED");
		first.webSocket?.close(1000, "done");
	});

	it("refuses unknown, forged and another user's tickets with 401", async () => {
		const alice = await api.signup();
		const bob = await api.signup();
		const bobTicket = (await api.ticket(bob)).ticket;
		const secret = bobTicket.slice(bobTicket.indexOf(".") + 1);
		const forged = [
			"garbage",
			`${alice.id}.${secret}`, // bob's secret under alice's id
			`${alice.id}.${"A".repeat(43)}`,
			`${alice.id}`,
		];
		for (const t of forged) await expectRefused(await upgrade(t), 401, "UNAUTHENTICATED");
		// bob's ticket still works for bob: the forgeries did not consume it.
		const ok = await upgrade(bobTicket);
		expect(ok.status).toBe(101);
		ok.webSocket?.accept();
		ok.webSocket?.close(1000, "done");
	});

	it("refuses a request without the upgrade header and one without a ticket", async () => {
		const user = await api.signup();
		const { ticket } = await api.ticket(user);
		await expectError(await api.request(`/v1/sync/ws?ticket=${encodeURIComponent(ticket)}`), 400, "INVALID_REQUEST");
		await expectError(await api.request("/v1/sync/ws", { headers: { Upgrade: "websocket" } }), 400, "INVALID_REQUEST");
		// The refused request did not spend the ticket.
		const ok = await upgrade(ticket);
		expect(ok.status).toBe(101);
		ok.webSocket?.accept();
		ok.webSocket?.close(1000, "done");
	});

	it("L10: a device keeps at most 10 sockets; an eleventh closes its oldest with 4002, and the newest still work", async () => {
		const user = await api.signup("laptop");
		const sockets: SyncSocket[] = [];
		for (let i = 0; i <= MAX_SOCKETS_PER_DEVICE; i++) sockets.push(await connect(user));
		const [oldest, ...rest] = sockets as [SyncSocket, ...SyncSocket[]];
		expect((await oldest.waitClosed()).code).toBe(4002);
		for (const socket of rest) {
			expect(socket.closeEvent).toBeNull();
			const from = socket.mark();
			socket.send(JSON.stringify({ type: "ping" }));
			await socket.next(isFrame("pong"), from);
			socket.close();
		}
	});

	it("closes the device's socket with 4001 when it signs out, and leaves other devices connected", async () => {
		const user = await api.signup("laptop");
		const phone = await api.login(user, "phone");
		const [a, b] = await Promise.all([connect(user), connect(phone)]);
		expect((await api.request("/v1/auth/logout", { method: "POST", token: phone.token })).status).toBe(204);
		expect((await b.waitClosed()).code).toBe(4001);
		expect(a.closeEvent).toBeNull();
		const from = a.mark();
		a.send(JSON.stringify({ type: "ping" }));
		await a.next(isFrame("pong"), from);
		// The signed-out device can no longer get a ticket.
		await expectError(await api.request("/v1/sync/ticket", { method: "POST", token: phone.token }), 401, "UNAUTHENTICATED");
		a.close();
	});
});
