/**
 * The change journal, long poll and sync WebSocket (API.md "Commits,
 * conflicts and the change journal"), inside workerd against real local D1
 * and the user's real UserHub.
 */
import { abortAllDurableObjects } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { runHousekeeping } from "../../workers/api/scheduled";
import { body, call, put, signup, type TestUser } from "./helpers";

interface NodeBody {
	id: string;
	type: "file" | "folder";
	name: string;
	parent_id: string | null;
	version_id: string | null;
	content_hash: string | null;
	trashed: boolean;
}
interface Entry {
	seq: number;
	kind: string;
	node: NodeBody;
}
interface ChangesPage {
	entries: Entry[];
	cursor: string;
	has_more: boolean;
}
interface ErrorBody {
	error: { code: string; message: string };
}
interface Frame {
	type: string;
	cursor?: string;
	message?: string;
}

async function latest(user: TestUser): Promise<string> {
	const res = await call("/v1/changes/latest", { token: user.token });
	expect(res.status).toBe(200);
	return (await body<{ cursor: string }>(res)).cursor;
}

async function changes(user: TestUser, cursor: string | null, limit?: number): Promise<Response> {
	const params = new URLSearchParams();
	if (cursor !== null) params.set("cursor", cursor);
	if (limit !== undefined) params.set("limit", String(limit));
	return call(`/v1/changes?${params}`, { token: user.token });
}

async function page(user: TestUser, cursor: string | null, limit?: number): Promise<ChangesPage> {
	const res = await changes(user, cursor, limit);
	expect(res.status).toBe(200);
	return body<ChangesPage>(res);
}

async function folder(user: TestUser, parentId: string, name: string): Promise<NodeBody> {
	const res = await call("/v1/folders", { method: "POST", token: user.token, body: JSON.stringify({ parent_id: parentId, name }) });
	expect(res.status).toBe(201);
	return body<NodeBody>(res);
}

async function login(user: TestUser, deviceName: string): Promise<TestUser> {
	const res = await call("/v1/auth/login", {
		method: "POST",
		body: JSON.stringify({ email: user.email, password: "correct horse battery", device_name: deviceName }),
	});
	expect(res.status).toBe(200);
	const s = await body<{ access_token: string; refresh_token: string; device_id: string }>(res);
	return { ...user, token: s.access_token, refresh: s.refresh_token, deviceId: s.device_id };
}

async function ticket(user: TestUser): Promise<string> {
	const res = await call("/v1/sync/ticket", { method: "POST", token: user.token });
	expect(res.status).toBe(200);
	const t = await body<{ ticket: string; expires_in: number }>(res);
	expect(t.expires_in).toBeGreaterThan(0);
	return t.ticket;
}

function upgrade(t: string): Promise<Response> {
	return call(`/v1/sync/ws?ticket=${encodeURIComponent(t)}`, { headers: { Upgrade: "websocket" } });
}

/** A client socket that records every frame and can wait for one. */
class Client {
	readonly frames: (Frame | string)[] = [];
	closed: { code: number; reason: string } | null = null;
	#listeners: (() => void)[] = [];

	constructor(readonly ws: WebSocket) {
		ws.accept();
		ws.addEventListener("message", (e) => {
			const text = typeof e.data === "string" ? e.data : new TextDecoder().decode(e.data);
			let frame: Frame | string = text;
			try {
				frame = JSON.parse(text) as Frame;
			} catch {
				// "pong" by auto-response is plain text.
			}
			this.frames.push(frame);
			this.#notify();
		});
		ws.addEventListener("close", (e) => {
			this.closed = { code: e.code, reason: e.reason };
			this.#notify();
		});
	}

	/** Resolves with the first frame from index `from` on that satisfies `match`. */
	async next(match: (f: Frame | string) => boolean, from = 0, ms = 2000): Promise<Frame | string> {
		const deadline = Date.now() + ms;
		for (;;) {
			const found = this.frames.slice(from).find(match);
			if (found !== undefined) return found;
			if (Date.now() > deadline) throw new Error(`no matching frame within ${ms} ms; got ${JSON.stringify(this.frames)}`);
			await new Promise<void>((r) => {
				const t = setTimeout(r, 50);
				this.#listeners.push(() => {
					clearTimeout(t);
					r();
				});
			});
		}
	}

	async waitClosed(ms = 2000): Promise<{ code: number; reason: string }> {
		const deadline = Date.now() + ms;
		while (this.closed === null) {
			if (Date.now() > deadline) throw new Error("the socket did not close");
			await new Promise((r) => setTimeout(r, 20));
		}
		return this.closed;
	}

	#notify(): void {
		const ls = this.#listeners.splice(0);
		for (const l of ls) l();
	}
}

async function connect(user: TestUser): Promise<Client> {
	const res = await upgrade(await ticket(user));
	expect(res.status).toBe(101);
	if (!res.webSocket) throw new Error("no socket in the 101 answer");
	return new Client(res.webSocket);
}

const isType = (type: string) => (f: Frame | string) => typeof f === "object" && f.type === type;

describe("GET /v1/changes", () => {
	it("starts from the beginning without a cursor and pages by cursor with has_more", async () => {
		const user = await signup();
		const made: string[] = [];
		for (let i = 0; i < 5; i++) made.push((await folder(user, user.rootId, `f${i}`)).id);
		const all = await page(user, null);
		expect(all.entries.map((e) => e.node.id)).toEqual(made);
		expect(all.entries.map((e) => e.kind)).toEqual(Array(5).fill("created"));
		expect(all.has_more).toBe(false);

		const seen: Entry[] = [];
		let cursor: string | null = null;
		const pages: boolean[] = [];
		for (;;) {
			const p: ChangesPage = await page(user, cursor, 2);
			expect(p.entries.length).toBeLessThanOrEqual(2);
			seen.push(...p.entries);
			pages.push(p.has_more);
			cursor = p.cursor;
			if (!p.has_more) break;
		}
		expect(pages).toEqual([true, true, false]);
		expect(seen.map((e) => e.seq)).toEqual(all.entries.map((e) => e.seq));
		expect(cursor).toBe(all.cursor);
		expect(cursor).toBe(await latest(user));

		// At the end: an empty page that keeps the cursor.
		const end = await page(user, cursor);
		expect(end).toEqual({ entries: [], cursor, has_more: false });
	});

	it("answers an empty journal and a limit of exactly the remaining entries without has_more", async () => {
		const user = await signup();
		const start = await latest(user);
		expect(await page(user, start)).toEqual({ entries: [], cursor: start, has_more: false });
		await folder(user, user.rootId, "a");
		await folder(user, user.rootId, "b");
		const p = await page(user, start, 2);
		expect(p.entries).toHaveLength(2);
		expect(p.has_more).toBe(false);
	});

	it("refuses a garbage cursor with 400 and a limit out of range with 400", async () => {
		const user = await signup();
		for (const bad of ["garbage", "c1_!!!", "c1_" + btoa("nonsense")]) {
			const res = await changes(user, bad);
			expect(res.status).toBe(400);
			expect((await body<ErrorBody>(res)).error.code).toBe("INVALID_REQUEST");
		}
		for (const limit of [0, 1001]) {
			const res = await changes(user, null, limit);
			expect(res.status).toBe(400);
		}
	});

	it("answers 410 CURSOR_RESET to another user's cursor, and nothing of theirs leaks", async () => {
		const alice = await signup();
		const bob = await signup();
		await folder(alice, alice.rootId, "secret");
		const aliceCursor = (await page(alice, null)).cursor;
		const res = await changes(bob, aliceCursor);
		expect(res.status).toBe(410);
		const err = await body<ErrorBody>(res);
		expect(err.error.code).toBe("CURSOR_RESET");
		expect(JSON.stringify(err)).not.toContain("secret");
		const poll = await call(`/v1/changes/longpoll?cursor=${encodeURIComponent(aliceCursor)}&timeout=1`, { token: bob.token });
		expect(poll.status).toBe(410);
	});

	it("answers 410 to a cursor ahead of the journal", async () => {
		const user = await signup();
		const ahead = "c1_" + btoa(`${user.id}:99999`).replace(/=+$/, "");
		const res = await changes(user, ahead);
		expect(res.status).toBe(410);
		expect((await body<ErrorBody>(res)).error.code).toBe("CURSOR_RESET");
	});

	it("requires authentication", async () => {
		expect((await call("/v1/changes")).status).toBe(401);
		expect((await call("/v1/changes/latest")).status).toBe(401);
		expect((await call("/v1/changes/longpoll?cursor=x")).status).toBe(401);
		expect((await call("/v1/sync/ticket", { method: "POST" })).status).toBe(401);
	});
});

describe("journal entries", () => {
	it("records every kind of change the API can make, with contiguous seqs", async () => {
		const user = await signup();
		const dir = await folder(user, user.rootId, "dir");
		const first = await body<{ node: NodeBody; version: { id: string } }>(await put(user, dir.id, "a.txt", "one"));
		const second = await put(user, dir.id, "a.txt", "two", { "If-Match": first.version.id });
		expect(second.status).toBe(200);
		expect(
			(await call(`/v1/nodes/${first.node.id}`, { method: "PATCH", token: user.token, body: JSON.stringify({ name: "b.txt" }) })).status,
		).toBe(200);
		expect((await call(`/v1/nodes/${dir.id}`, { method: "DELETE", token: user.token })).status).toBe(200);
		expect((await call(`/v1/nodes/${dir.id}/restore`, { method: "POST", token: user.token })).status).toBe(200);

		const all = await page(user, null);
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
		const user = await signup();
		await folder(user, user.rootId, "old-1");
		await folder(user, user.rootId, "old-2");
		const early = (await page(user, null, 1)).cursor;

		await runHousekeeping(env, Date.now() + MONTH_AND_A_DAY);

		const old = await changes(user, early);
		expect(old.status).toBe(410);
		expect((await body<ErrorBody>(old)).error.code).toBe("CURSOR_RESET");
		const fromStart = await changes(user, null);
		expect(fromStart.status).toBe(410);
		expect((await body<ErrorBody>(fromStart)).error.code).toBe("CURSOR_RESET");
		const poll = await call(`/v1/changes/longpoll?cursor=${encodeURIComponent(early)}&timeout=1`, { token: user.token });
		expect(poll.status).toBe(410);
	});

	// With every entry pruned, the journal must still end where it ended, or
	// this cursor would count as "ahead of the journal".
	it("keeps a cursor at the newest pruned entry valid, and a commit after pruning is seen from it", async () => {
		const user = await signup();
		await folder(user, user.rootId, "old");
		const head = await latest(user);
		await runHousekeeping(env, Date.now() + MONTH_AND_A_DAY);
		// The cursor has missed nothing: it must keep working.
		const same = await changes(user, head);
		expect(same.status).toBe(200);
		const after = await folder(user, user.rootId, "new");
		const next = await page(user, head);
		expect(next.entries.map((e) => e.node.id)).toEqual([after.id]);
	});

	// The README's reset recipe must not loop on 410 once every entry is pruned.
	it("after everything is pruned, /changes/latest answers a cursor that can be followed", async () => {
		const user = await signup();
		await folder(user, user.rootId, "old-1");
		await folder(user, user.rootId, "old-2");
		const beforePrune = await latest(user);

		await runHousekeeping(env, Date.now() + MONTH_AND_A_DAY);

		// The client's recipe: take the latest cursor, list the tree, follow from there.
		const fresh = await latest(user);
		const followed = await changes(user, fresh);
		expect(followed.status).toBe(200);
		expect(fresh).toBe(beforePrune);
		const after = await folder(user, user.rootId, "new");
		const next = await page(user, fresh);
		expect(next.entries.map((e) => e.node.id)).toEqual([after.id]);
		expect(next.entries[0]?.seq).toBe(3);
	});

	// A hub that restarts after its user's journal was pruned must number new
	// changes above the pruned ones, or they land below every cursor, unseen.
	it("numbers changes after the pruned ones even when the hub restarts after pruning", async () => {
		const user = await signup();
		await folder(user, user.rootId, "old-1");
		await folder(user, user.rootId, "old-2");
		const head = await latest(user);
		await runHousekeeping(env, Date.now() + MONTH_AND_A_DAY);

		// What an eviction or a deploy does to the hub.
		await abortAllDurableObjects();
		await folder(user, user.rootId, "after-restart");

		const res = await changes(user, head);
		expect(res.status).toBe(200);
		const p = await body<ChangesPage>(res);
		expect(p.entries.map((e) => [e.seq, e.node.name])).toEqual([[3, "after-restart"]]);
	});

	// A trash keeps the node's modified_at; the entry must still carry the time
	// of the change, or housekeeping prunes it (and resets cursors) too early.
	it("stamps a trashed entry with the time of the trash, so retention counts from then", async () => {
		const user = await signup();
		const dir = await folder(user, user.rootId, "dir");
		const cursor = await latest(user);
		await new Promise((r) => setTimeout(r, 30));
		const before = new Date().toISOString();
		expect((await call(`/v1/nodes/${dir.id}`, { method: "DELETE", token: user.token })).status).toBe(200);
		const p = await body<{ entries: (Entry & { created_at: string })[] }>(await changes(user, cursor));
		expect(p.entries.map((e) => e.kind)).toEqual(["trashed"]);
		expect((p.entries[0]?.created_at ?? "") >= before).toBe(true);
	});
});

describe("GET /v1/changes/longpoll", () => {
	it("answers at once when the cursor is behind", async () => {
		const user = await signup();
		const start = await latest(user);
		await folder(user, user.rootId, "x");
		const t0 = Date.now();
		const res = await call(`/v1/changes/longpoll?cursor=${encodeURIComponent(start)}&timeout=30`, { token: user.token });
		expect(res.status).toBe(200);
		expect(await body(res)).toEqual({ changes: true });
		expect(Date.now() - t0).toBeLessThan(1000);
	});

	it("answers changes:false when the timeout runs out", async () => {
		const user = await signup();
		const t0 = Date.now();
		const res = await call(`/v1/changes/longpoll?cursor=${encodeURIComponent(await latest(user))}&timeout=1`, { token: user.token });
		const waited = Date.now() - t0;
		expect(res.status).toBe(200);
		expect(await body(res)).toEqual({ changes: false });
		expect(waited).toBeGreaterThanOrEqual(850);
		expect(waited).toBeLessThan(3000);
	});

	it("wakes on a commit", async () => {
		const user = await signup();
		const start = await latest(user);
		const poll = call(`/v1/changes/longpoll?cursor=${encodeURIComponent(start)}&timeout=30`, { token: user.token });
		await new Promise((r) => setTimeout(r, 100));
		const committed = put(user, user.rootId, "wake.txt", "w");
		const t0 = Date.now();
		expect((await committed).status).toBe(201);
		const res = await poll;
		expect(Date.now() - t0).toBeLessThan(1000);
		expect(await body(res)).toEqual({ changes: true });
	});

	it("validates its query", async () => {
		const user = await signup();
		const cursor = encodeURIComponent(await latest(user));
		expect((await call("/v1/changes/longpoll?timeout=5", { token: user.token })).status).toBe(400);
		expect((await call(`/v1/changes/longpoll?cursor=${cursor}&timeout=0`, { token: user.token })).status).toBe(400);
		expect((await call(`/v1/changes/longpoll?cursor=${cursor}&timeout=121`, { token: user.token })).status).toBe(400);
		expect((await call("/v1/changes/longpoll?cursor=garbage&timeout=1", { token: user.token })).status).toBe(400);
	});
});

describe("the sync WebSocket", () => {
	it("says hello, then sends a changes frame whose cursor is /v1/changes' cursor", async () => {
		const user = await signup();
		const client = await connect(user);
		const hello = await client.next(isType("hello"));
		expect(hello).toEqual({ type: "hello", cursor: await latest(user) });
		const from = client.frames.length;
		expect((await put(user, user.rootId, "a.txt", "a")).status).toBe(201);
		const frame = await client.next(isType("changes"), from);
		const p = await page(user, typeof hello === "object" ? (hello.cursor ?? null) : null);
		expect(p.entries.map((e) => e.node.name)).toEqual(["a.txt"]);
		expect(frame).toEqual({ type: "changes", cursor: p.cursor });
		client.ws.close(1000, "done");
	});

	it("tells every device of the user, and none of another user", async () => {
		const user = await signup("laptop");
		const phone = await login(user, "phone");
		const other = await signup();
		const a = await connect(user);
		const b = await connect(phone);
		const c = await connect(other);
		await Promise.all([a.next(isType("hello")), b.next(isType("hello")), c.next(isType("hello"))]);
		expect((await put(phone, user.rootId, "from-phone.txt", "p")).status).toBe(201);
		await Promise.all([a.next(isType("changes")), b.next(isType("changes"))]);
		await new Promise((r) => setTimeout(r, 300));
		expect(c.frames.filter(isType("changes"))).toEqual([]);
		for (const s of [a, b, c]) s.ws.close(1000, "done");
	});

	it("coalesces a burst of changes into a few frames that end at the latest cursor", async () => {
		const user = await signup();
		const client = await connect(user);
		await client.next(isType("hello"));
		for (let i = 0; i < 10; i++) await folder(user, user.rootId, `burst-${i}`);
		const end = await latest(user);
		await client.next((f) => typeof f === "object" && f.type === "changes" && f.cursor === end, 0, 3000);
		const frames = client.frames.filter(isType("changes"));
		expect(frames.length).toBeLessThan(10);
		client.ws.close(1000, "done");
	});

	it("answers a JSON ping with a pong, the text ping with pong, and garbage with an error", async () => {
		const user = await signup();
		const client = await connect(user);
		await client.next(isType("hello"));
		let from = client.frames.length;
		client.ws.send(JSON.stringify({ type: "ping" }));
		expect(await client.next(isType("pong"), from)).toEqual({ type: "pong" });
		from = client.frames.length;
		client.ws.send("ping");
		expect(await client.next((f) => f === "pong", from)).toBe("pong");
		for (const garbage of ["{not json", JSON.stringify({ type: "subscribe" }), "42"]) {
			from = client.frames.length;
			client.ws.send(garbage);
			const err = await client.next(isType("error"), from);
			expect(err).toMatchObject({ type: "error", message: expect.any(String) });
		}
		from = client.frames.length;
		client.ws.send(new Uint8Array([1, 2, 3]));
		expect(await client.next(isType("error"), from)).toMatchObject({ type: "error" });
		// The socket survives garbage.
		from = client.frames.length;
		client.ws.send(JSON.stringify({ type: "ping" }));
		await client.next(isType("pong"), from);
		client.ws.close(1000, "done");
	});

	it("uses a ticket once: a second upgrade with it answers 401", async () => {
		const user = await signup();
		const t = await ticket(user);
		const first = await upgrade(t);
		expect(first.status).toBe(101);
		first.webSocket?.accept();
		const second = await upgrade(t);
		expect(second.status).toBe(401);
		expect((await body<ErrorBody>(second)).error.code).toBe("UNAUTHENTICATED");
		first.webSocket?.close(1000, "done");
	});

	it("refuses unknown, forged and another user's tickets with 401", async () => {
		const alice = await signup();
		const bob = await signup();
		const bobTicket = await ticket(bob);
		const secret = bobTicket.slice(bobTicket.indexOf(".") + 1);
		const forged = [
			"garbage",
			`${alice.id}.${secret}`, // bob's secret under alice's id
			`${alice.id}.${"A".repeat(43)}`,
			`${alice.id}`,
		];
		for (const t of forged) {
			const res = await upgrade(t);
			expect(res.status, t).toBe(401);
			expect((await body<ErrorBody>(res)).error.code).toBe("UNAUTHENTICATED");
		}
		// bob's ticket still works for bob: the forgeries did not consume it.
		const ok = await upgrade(bobTicket);
		expect(ok.status).toBe(101);
		ok.webSocket?.accept();
		ok.webSocket?.close(1000, "done");
	});

	it("refuses a request without the upgrade header and one without a ticket", async () => {
		const user = await signup();
		const t = await ticket(user);
		expect((await call(`/v1/sync/ws?ticket=${encodeURIComponent(t)}`)).status).toBe(400);
		expect((await call("/v1/sync/ws", { headers: { Upgrade: "websocket" } })).status).toBe(400);
		// The refused request did not spend the ticket.
		const ok = await upgrade(t);
		expect(ok.status).toBe(101);
		ok.webSocket?.accept();
		ok.webSocket?.close(1000, "done");
	});

	it("closes the device's socket with 4001 when it signs out, and leaves other devices connected", async () => {
		const user = await signup("laptop");
		const phone = await login(user, "phone");
		const a = await connect(user);
		const b = await connect(phone);
		await Promise.all([a.next(isType("hello")), b.next(isType("hello"))]);
		expect((await call("/v1/auth/logout", { method: "POST", token: phone.token })).status).toBe(204);
		expect((await b.waitClosed()).code).toBe(4001);
		expect(a.closed).toBeNull();
		const from = a.frames.length;
		a.ws.send(JSON.stringify({ type: "ping" }));
		await a.next(isType("pong"), from);
		// The signed-out device can no longer get a ticket.
		expect((await call("/v1/sync/ticket", { method: "POST", token: phone.token })).status).toBe(401);
		a.ws.close(1000, "done");
	});
});
