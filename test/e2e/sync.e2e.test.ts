/// <reference types="node" />
/**
 * Realtime sync end to end: Node clients (fetch and the `ws` WebSocket
 * client) against the real local stack, as desktop sync clients use it.
 */
import { randomBytes } from "node:crypto";
import { afterEach, describe, expect, it } from "vitest";
import { decodeJournalCursor } from "../../src/shared/journal";
import { expectError } from "../support/envelope";
import { expectOk, isFrame, SyncSocket, type ChangesPage, type ConflictPage, type Node, type TestUser } from "../support/harness";
import { sha256Of, stackHarness } from "../support/stack";

const h = stackHarness();

const open: SyncSocket[] = [];
afterEach(() => {
	for (const s of open.splice(0)) s.close();
});

async function connect(d: TestUser): Promise<{ socket: SyncSocket; hello: string }> {
	const connected = await h.connect(d);
	open.push(connected.socket);
	return connected;
}

/** Dials with `ticket`: the socket, or the status that refused the upgrade. */
async function dial(ticket: string): Promise<SyncSocket | { status: number }> {
	const dialed = await h.dial(ticket);
	if (dialed instanceof SyncSocket) open.push(dialed);
	return dialed;
}

const download = async (d: TestUser, id: string): Promise<Buffer> => Buffer.from((await h.download(d, id)).bytes);

describe("two devices with WebSockets", () => {
	it("device B gets a changes frame for A's upload and reads the new entry from /v1/changes", async () => {
		const a = await h.signup("laptop");
		const b = await h.login(a, "phone");
		const sa = await connect(a);
		const sb = await connect(b);
		expect(sb.hello).toBe(await h.latest(b));

		const fromA = sa.socket.mark();
		const fromB = sb.socket.mark();
		const data = randomBytes(1000);
		const put = await h.upload(a, a.rootId, "photo.jpg", data);

		const frame = await sb.socket.next(isFrame("changes"), fromB);
		// B reads at the frame's bookmark (docs/api.md, "Read-your-writes (Drive-Bookmark)"): the answer covers it.
		expect(frame.bookmark).toMatch(/^\d+\./);
		const read = await h.call<ChangesPage>(`/v1/changes?cursor=${encodeURIComponent(sb.hello)}`, {
			token: b.token,
			headers: { "Drive-Bookmark": frame.bookmark ?? "" },
		});
		expect(read.status).toBe(200);
		expect((read.headers.get("Drive-Bookmark") ?? "") >= (frame.bookmark ?? "")).toBe(true);
		const page = read.body;
		expect(page.entries).toHaveLength(1);
		expect(page.entries[0]).toMatchObject({
			kind: "created",
			node: { id: put.node.id, name: "photo.jpg", version_id: put.version.id, content_hash: sha256Of(data) },
		});
		expect(frame.cursor).toBe(page.cursor);
		// The device that made the change is told too.
		expect((await sa.socket.next(isFrame("changes"), fromA)).cursor).toBe(page.cursor);
		// And B can fetch the bytes the entry names.
		expect((await download(b, put.node.id)).equals(data)).toBe(true);
	});

	it("answers a JSON ping with a pong and the text ping with pong", async () => {
		const a = await h.signup();
		const { socket } = await connect(a);
		const from = socket.mark();
		socket.send(JSON.stringify({ type: "ping" }));
		expect(await socket.next(isFrame("pong"), from)).toEqual({ type: "pong" });
		const next = socket.mark();
		socket.send("ping");
		await socket.next((f) => f === "pong", next);
	});

	it("closes a device's socket with 4001 when it signs out", async () => {
		const a = await h.signup("laptop");
		const b = await h.login(a, "phone");
		const sa = await connect(a);
		const sb = await connect(b);
		expect((await h.request("/v1/auth/logout", { method: "POST", token: b.token })).status).toBe(204);
		expect((await sb.socket.waitClosed()).code).toBe(4001);
		expect(sa.socket.closeEvent).toBeNull();
	});
});

describe("a device that was offline", () => {
	it("catches up on 50 changes by cursor, in order, missing nothing (pages of 7)", async () => {
		const a = await h.signup("online");
		const offline = await h.login(a, "offline");
		const from = await h.latest(offline);

		// 50 changes of every kind; remember each one's node id and kind.
		const expected: [string, string][] = [];
		const dirs: Node[] = [];
		for (let i = 0; i < 5; i++) {
			const d = await h.mkdir(a, a.rootId, `dir-${i}`);
			dirs.push(d);
			expected.push([d.id, "created"]);
		}
		const fileIds: { id: string; version: string }[] = [];
		for (let i = 0; i < 15; i++) {
			const put = await h.upload(a, dirs[i % 5]?.id ?? a.rootId, `f-${i}.txt`, `content ${i}`);
			fileIds.push({ id: put.node.id, version: put.version.id });
			expected.push([put.node.id, "created"]);
		}
		for (let i = 0; i < 10; i++) {
			const f = fileIds[i];
			if (!f) throw new Error("missing file");
			await h.upload(a, dirs[i % 5]?.id ?? a.rootId, `f-${i}.txt`, `edited ${i}`, { ifMatch: f.version, status: 200 });
			expected.push([f.id, "updated"]);
		}
		for (let i = 0; i < 10; i++) {
			const f = fileIds[i + 5];
			const to = dirs[(i + 1) % 5];
			if (!f || !to) throw new Error("missing file");
			expectOk(await h.patchNode(a, f.id, { name: `moved-${i}.txt`, parent_id: to.id }), 200);
			expected.push([f.id, "moved"]);
		}
		for (const d of dirs) {
			expectOk(await h.trash(a, d.id), 200);
			expected.push([d.id, "trashed"]);
		}
		for (const d of dirs) {
			expectOk(await h.restore(a, d.id), 200);
			expected.push([d.id, "restored"]);
		}
		expect(expected).toHaveLength(50);

		const pulled = await h.pullAll(offline, from, 7);
		expect(pulled.pages).toBe(8);
		expect(pulled.entries.map((e) => [e.node.id, e.kind])).toEqual(expected);
		const seqs = pulled.entries.map((e) => e.seq);
		const first = seqs[0] ?? 0;
		expect(seqs).toEqual(seqs.map((_, i) => first + i));
		expect(pulled.cursor).toBe(await h.latest(a));
	});
});

describe("eight devices committing against the same base", () => {
	it("has exactly one winner and seven conflicted copies, and all eight contents come back byte-exact", async () => {
		const first = await h.signup("device 0");
		const devices = [first, ...(await Promise.all([1, 2, 3, 4, 5, 6, 7].map((i) => h.login(first, `device ${i}`))))];
		const base = await h.upload(first, first.rootId, "shared.bin", randomBytes(4096));
		const contents = devices.map((_, i) => randomBytes(20_000 + i * 1000));

		const results = await Promise.all(
			devices.map((d, i) => h.putContent(d, first.rootId, "shared.bin", contents[i] ?? "", { ifMatch: base.version.id })),
		);

		const statuses = results.map((r) => r.status).sort();
		expect(statuses).toEqual([200, 201, 201, 201, 201, 201, 201, 201]);
		const winner = results.find((r) => r.status === 200);
		expect(winner?.body.node.id).toBe(base.node.id);
		expect(winner?.body.conflict).toBeNull();
		const copies = results.filter((r) => r.status === 201);
		for (const c of copies) {
			expect(c.body.conflict).toEqual({ node_id: base.node.id, reason: "stale_base" });
			expect(c.body.node.name).toMatch(/^shared \(conflicted copy device \d \d{4}-\d{2}-\d{2} \d{6}\)( \d+)?\.bin$/);
		}
		expect(new Set(copies.map((c) => c.body.node.id)).size).toBe(7);

		for (const [i, r] of results.entries()) {
			const got = await download(first, r.body.node.id);
			expect(got.equals(Buffer.from(contents[i] ?? ""))).toBe(true);
		}

		const listed = expectOk(await h.call<ConflictPage>("/v1/conflicts?limit=100", { token: first.token }), 200);
		expect(listed.items).toHaveLength(7);
		expect(new Set(listed.items.map((i) => i.node.id))).toEqual(new Set(copies.map((c) => c.body.node.id)));
		for (const item of listed.items) expect(item.conflicts_with?.id).toBe(base.node.id);
	});
});

describe("an edit racing a delete", () => {
	it("survives: the deleted file comes back with the edit, and the other device sees it in the journal", async () => {
		const a = await h.signup("deleter");
		const b = await h.login(a, "editor");
		const put = await h.upload(a, a.rootId, "notes.md", "original");
		const cursor = await h.latest(a);
		const [deleted, edit] = await Promise.all([
			h.trash(a, put.node.id),
			h.putContent(b, b.rootId, "notes.md", "edited on the phone", { ifMatch: put.version.id }),
		]);
		expect(deleted.status).toBe(200);
		expect(edit.status).toBe(200);
		expect(edit.body.node.id).toBe(put.node.id);
		expect(await h.text(a, put.node.id)).toBe("edited on the phone");

		// Make the order deterministic for the rest: delete, then edit on the version B holds.
		const again = await h.upload(a, a.rootId, "notes-2.md", "v1");
		expectOk(await h.trash(a, again.node.id), 200);
		const revived = await h.upload(b, b.rootId, "notes-2.md", "v2 from the phone", { ifMatch: again.version.id, status: 200 });
		expect(revived.node).toMatchObject({ id: again.node.id, trashed: false });
		expect(await h.text(a, again.node.id)).toBe("v2 from the phone");
		const pulled = await h.pullAll(a, cursor, 100);
		const last = pulled.entries.filter((e) => e.node.id === again.node.id).map((e) => [e.kind, e.node.trashed]);
		expect(last).toEqual([
			["created", false],
			["trashed", true],
			["restored", false],
		]);
	});
});

describe("cursor reset", () => {
	it("answers a foreign cursor with 410 CURSOR_RESET, and the client recovers from /changes/latest", async () => {
		const alice = await h.signup();
		const bob = await h.signup();
		await h.mkdir(alice, alice.rootId, "alice-only");
		const aliceCursor = (await h.page(alice, null)).cursor;
		const res = await h.changes(bob, aliceCursor);
		await expectError(res, 410, "CURSOR_RESET");
		expect(res.text).not.toContain("alice-only");
		// The recipe: take the latest cursor, list the tree, follow from there.
		const fresh = await h.latest(bob);
		const d = await h.mkdir(bob, bob.rootId, "bob's");
		const followed = await h.page(bob, fresh);
		expect(followed.entries.map((e) => e.node.id)).toEqual([d.id]);
	});

	it("answers a cursor from beyond the journal with 410 and garbage with 400", async () => {
		const a = await h.signup();
		const ahead = `c1_${Buffer.from(`${a.id}:999999`).toString("base64url")}`;
		await expectError(await h.changes(a, ahead), 410, "CURSOR_RESET");
		await expectError(await h.changes(a, "not-a-cursor"), 400, "INVALID_REQUEST");
	});
});

describe("another user", () => {
	it("gets nothing with another user's ticket, cursor or long poll, and no frames of theirs", async () => {
		const alice = await h.signup();
		const bob = await h.signup();
		const bobSocket = await connect(bob);

		// Alice's ticket with bob's id, and bob's secret under alice's id: refused, nothing consumed.
		const aliceTicket = (await h.ticket(alice)).ticket;
		const bobTicket = (await h.ticket(bob)).ticket;
		const secret = (t: string) => t.slice(t.indexOf(".") + 1);
		for (const forged of [`${bob.id}.${secret(aliceTicket)}`, `${alice.id}.${secret(bobTicket)}`, "nonsense"]) {
			const dialed = await dial(forged);
			expect("status" in dialed ? dialed.status : 101).toBe(401);
		}
		expect(await dial(aliceTicket)).toBeInstanceOf(SyncSocket);
		// …and used once only.
		const reused = await dial(aliceTicket);
		expect("status" in reused ? reused.status : 101).toBe(401);

		// Alice's cursor and long poll are refused to bob without a word of her journal.
		await h.mkdir(alice, alice.rootId, "private");
		const aliceCursor = await h.latest(alice);
		const read = await h.changes(bob, aliceCursor);
		expect(read.status).toBe(410);
		const poll = await h.longpoll(bob, aliceCursor, 1);
		expect(poll.status).toBe(410);
		expect(read.text + poll.text).not.toContain("private");

		// Bob's socket hears nothing of alice's commits. A barrier rather than
		// a pause: bob's own next commit reaches his socket, and every frame
		// it got names bob's journal.
		await h.upload(alice, alice.rootId, "alice.txt", "x");
		await h.mkdir(bob, bob.rootId, "bob's");
		const bobCursor = await h.latest(bob);
		await bobSocket.socket.next((f) => isFrame("changes")(f) && f.cursor === bobCursor);
		const owners = bobSocket.socket.frames.filter(isFrame("changes")).map((f) => decodeJournalCursor(f.cursor)?.userId);
		expect(owners).toEqual(owners.map(() => bob.id));
	});
});

describe("long poll", () => {
	it("keeps waiting while nothing changes, and answers changes:true after a commit by another device", async () => {
		const a = await h.signup();
		const b = await h.login(a, "poller");
		const cursor = await h.latest(b);
		let settled = false;
		const poll = h.longpoll(b, cursor, 120).finally(() => (settled = true));
		// Until this second poll times out nothing has changed, so the first must still be waiting.
		expect((await h.longpoll(b, cursor, 1)).body).toEqual({ changes: false });
		expect(settled).toBe(false);
		await h.upload(a, a.rootId, "wake.txt", "w");
		const answered = await poll;
		expect(answered.status).toBe(200);
		expect(answered.body).toEqual({ changes: true });
	});
});
