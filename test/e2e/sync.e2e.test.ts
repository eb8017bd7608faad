/// <reference types="node" />
/**
 * Realtime sync end to end: Node clients (fetch and the `ws` WebSocket
 * client) against the real local stack, as desktop sync clients use it.
 */
import { createHash, randomBytes } from "node:crypto";
import { afterEach, describe, expect, inject, it } from "vitest";
import WebSocket from "ws";

const BASE = inject("baseUrl");
const PASSWORD = "correct horse battery staple";

interface NodeBody {
	id: string;
	type: "file" | "folder";
	name: string;
	parent_id: string | null;
	version_id: string | null;
	content_hash: string | null;
	trashed: boolean;
	conflict_of: string | null;
}
interface Commit {
	node: NodeBody;
	version: { id: string };
	conflict: { node_id: string; reason: string } | null;
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
}

interface Device {
	userId: string;
	email: string;
	token: string;
	deviceId: string;
	rootId: string;
}

async function api<T>(
	path: string,
	token: string | null,
	init: { method?: string; json?: unknown; body?: Uint8Array | string; headers?: Record<string, string> } = {},
): Promise<{ status: number; body: T }> {
	const headers: Record<string, string> = { ...init.headers };
	if (token !== null) headers.Authorization = `Bearer ${token}`;
	let payload: string | Uint8Array | undefined = init.body;
	if (init.json !== undefined) {
		headers["Content-Type"] = "application/json";
		payload = JSON.stringify(init.json);
	}
	const res = await fetch(`${BASE}${path}`, { method: init.method ?? "GET", headers, body: payload });
	const text = await res.text();
	return { status: res.status, body: (text === "" ? null : JSON.parse(text)) as T };
}

async function signup(deviceName = "device 0"): Promise<Device> {
	const email = `sync-${Date.now()}-${Math.random().toString(36).slice(2, 8)}@example.com`;
	const s = await api<{ user: { id: string }; access_token: string; device_id: string }>("/v1/auth/signup", null, {
		method: "POST",
		json: { email, password: PASSWORD, device_name: deviceName },
	});
	expect(s.status).toBe(201);
	const root = await api<NodeBody>("/v1/nodes/root", s.body.access_token);
	return { userId: s.body.user.id, email, token: s.body.access_token, deviceId: s.body.device_id, rootId: root.body.id };
}

/** Another device of the same user: a second login. */
async function login(of: Device, deviceName: string): Promise<Device> {
	const s = await api<{ access_token: string; device_id: string }>("/v1/auth/login", null, {
		method: "POST",
		json: { email: of.email, password: PASSWORD, device_name: deviceName },
	});
	expect(s.status).toBe(200);
	return { ...of, token: s.body.access_token, deviceId: s.body.device_id };
}

function upload(
	d: Device,
	parentId: string,
	name: string,
	data: Uint8Array | string,
	ifMatch?: string,
): Promise<{ status: number; body: Commit }> {
	const params = new URLSearchParams({ parent_id: parentId, name });
	return api<Commit>(`/v1/files/content?${params}`, d.token, {
		method: "PUT",
		body: data,
		headers: ifMatch === undefined ? {} : { "If-Match": ifMatch },
	});
}

async function mkdir(d: Device, parentId: string, name: string): Promise<NodeBody> {
	const res = await api<NodeBody>("/v1/folders", d.token, { method: "POST", json: { parent_id: parentId, name } });
	expect(res.status).toBe(201);
	return res.body;
}

async function changes(d: Device, cursor: string | null, limit = 500): Promise<{ status: number; body: ChangesPage & ErrorBody }> {
	const params = new URLSearchParams({ limit: String(limit) });
	if (cursor !== null) params.set("cursor", cursor);
	return api(`/v1/changes?${params}`, d.token);
}

async function latest(d: Device): Promise<string> {
	const res = await api<{ cursor: string }>("/v1/changes/latest", d.token);
	expect(res.status).toBe(200);
	return res.body.cursor;
}

async function download(d: Device, id: string): Promise<Buffer> {
	const res = await fetch(`${BASE}/v1/files/${id}/content`, { headers: { Authorization: `Bearer ${d.token}` } });
	expect(res.status).toBe(200);
	return Buffer.from(await res.arrayBuffer());
}

const sha256 = (data: Uint8Array | string) => createHash("sha256").update(data).digest("hex");

/** An open sync socket that records its frames. */
class SyncSocket {
	readonly frames: Frame[] = [];
	closed: number | null = null;
	#wakers: (() => void)[] = [];

	constructor(readonly ws: WebSocket) {
		ws.on("message", (data) => {
			const text = String(data);
			let frame: Frame;
			try {
				frame = JSON.parse(text) as Frame;
			} catch {
				// The runtime's auto-response to the text "ping" is the text "pong".
				frame = { type: `text:${text}` };
			}
			this.frames.push(frame);
			for (const w of this.#wakers.splice(0)) w();
		});
		ws.on("close", (code) => {
			this.closed = code;
			for (const w of this.#wakers.splice(0)) w();
		});
	}

	/** The first frame from index `from` on that satisfies `match`. */
	async next(match: (f: Frame) => boolean, from = 0, ms = 5000): Promise<Frame> {
		const deadline = Date.now() + ms;
		for (;;) {
			const found = this.frames.slice(from).find(match);
			if (found) return found;
			if (Date.now() > deadline) throw new Error(`no matching frame within ${ms} ms: ${JSON.stringify(this.frames)}`);
			await new Promise<void>((r) => {
				const t = setTimeout(r, 100);
				this.#wakers.push(() => {
					clearTimeout(t);
					r();
				});
			});
		}
	}
}

const open: WebSocket[] = [];
afterEach(() => {
	for (const ws of open.splice(0)) ws.terminate();
});

/** Opens a WebSocket with `ticket`; resolves with the socket or the HTTP status that refused it. */
function dial(ticket: string): Promise<{ socket: SyncSocket } | { status: number }> {
	return new Promise((resolve, reject) => {
		const ws = new WebSocket(`${BASE.replace(/^http/, "ws")}/v1/sync/ws?ticket=${encodeURIComponent(ticket)}`);
		open.push(ws);
		const socket = new SyncSocket(ws);
		ws.once("open", () => resolve({ socket }));
		ws.once("unexpected-response", (_req, res) => {
			resolve({ status: res.statusCode ?? 0 });
			res.resume();
			ws.terminate();
		});
		ws.once("error", reject);
	});
}

async function ticketOf(d: Device): Promise<string> {
	const t = await api<{ ticket: string }>("/v1/sync/ticket", d.token, { method: "POST" });
	expect(t.status).toBe(200);
	return t.body.ticket;
}

async function connect(d: Device): Promise<{ socket: SyncSocket; hello: string }> {
	const dialed = await dial(await ticketOf(d));
	if (!("socket" in dialed)) throw new Error(`upgrade refused with ${dialed.status}`);
	const hello = await dialed.socket.next((f) => f.type === "hello");
	return { socket: dialed.socket, hello: hello.cursor ?? "" };
}

/** Every entry after `cursor`, paging by `limit`; also the number of pages. */
async function pullAll(d: Device, cursor: string, limit: number): Promise<{ entries: Entry[]; cursor: string; pages: number }> {
	const entries: Entry[] = [];
	let pages = 0;
	for (;;) {
		const res = await changes(d, cursor, limit);
		expect(res.status).toBe(200);
		pages++;
		expect(res.body.entries.length).toBeLessThanOrEqual(limit);
		entries.push(...res.body.entries);
		cursor = res.body.cursor;
		if (!res.body.has_more) return { entries, cursor, pages };
		expect(res.body.entries.length).toBe(limit);
	}
}

describe("two devices with WebSockets", () => {
	it("device B gets a changes frame for A's upload and reads the new entry from /v1/changes", async () => {
		const a = await signup("laptop");
		const b = await login(a, "phone");
		const sa = await connect(a);
		const sb = await connect(b);
		expect(sb.hello).toBe(await latest(b));

		const fromA = sa.socket.frames.length;
		const fromB = sb.socket.frames.length;
		const data = randomBytes(1000);
		const put = await upload(a, a.rootId, "photo.jpg", data);
		expect(put.status).toBe(201);

		const frame = await sb.socket.next((f) => f.type === "changes", fromB);
		const page = await changes(b, sb.hello);
		expect(page.status).toBe(200);
		expect(page.body.entries).toHaveLength(1);
		expect(page.body.entries[0]).toMatchObject({
			kind: "created",
			node: { id: put.body.node.id, name: "photo.jpg", version_id: put.body.version.id, content_hash: sha256(data) },
		});
		expect(frame.cursor).toBe(page.body.cursor);
		// The device that made the change is told too.
		expect((await sa.socket.next((f) => f.type === "changes", fromA)).cursor).toBe(page.body.cursor);
		// And B can fetch the bytes the entry names.
		expect((await download(b, put.body.node.id)).equals(data)).toBe(true);
	});

	it("answers a JSON ping with a pong and the text ping with pong", async () => {
		const a = await signup();
		const { socket } = await connect(a);
		const from = socket.frames.length;
		socket.ws.send(JSON.stringify({ type: "ping" }));
		expect(await socket.next((f) => f.type === "pong", from)).toEqual({ type: "pong" });
		const next = socket.frames.length;
		socket.ws.send("ping");
		await socket.next((f) => f.type === "text:pong", next);
	});

	it("closes a device's socket with 4001 when it signs out", async () => {
		const a = await signup("laptop");
		const b = await login(a, "phone");
		const sa = await connect(a);
		const sb = await connect(b);
		const closed = new Promise<number>((r) => sb.socket.ws.once("close", (code) => r(code)));
		expect((await api("/v1/auth/logout", b.token, { method: "POST" })).status).toBe(204);
		expect(await closed).toBe(4001);
		expect(sa.socket.closed).toBeNull();
	});
});

describe("a device that was offline", () => {
	it("catches up on 50 changes by cursor, in order, missing nothing (pages of 7)", async () => {
		const a = await signup("online");
		const offline = await login(a, "offline");
		const from = await latest(offline);

		// 50 changes of every kind; remember each one's node id and kind.
		const expected: [string, string][] = [];
		const dirs: NodeBody[] = [];
		for (let i = 0; i < 5; i++) {
			const d = await mkdir(a, a.rootId, `dir-${i}`);
			dirs.push(d);
			expected.push([d.id, "created"]);
		}
		const fileIds: { id: string; version: string }[] = [];
		for (let i = 0; i < 15; i++) {
			const put = await upload(a, dirs[i % 5]?.id ?? a.rootId, `f-${i}.txt`, `content ${i}`);
			expect(put.status).toBe(201);
			fileIds.push({ id: put.body.node.id, version: put.body.version.id });
			expected.push([put.body.node.id, "created"]);
		}
		for (let i = 0; i < 10; i++) {
			const f = fileIds[i];
			if (!f) throw new Error("missing file");
			const put = await upload(a, dirs[i % 5]?.id ?? a.rootId, `f-${i}.txt`, `edited ${i}`, f.version);
			expect(put.status).toBe(200);
			expected.push([f.id, "updated"]);
		}
		for (let i = 0; i < 10; i++) {
			const f = fileIds[i + 5];
			if (!f) throw new Error("missing file");
			const res = await api(`/v1/nodes/${f.id}`, a.token, {
				method: "PATCH",
				json: { name: `moved-${i}.txt`, parent_id: dirs[(i + 1) % 5]?.id },
			});
			expect(res.status).toBe(200);
			expected.push([f.id, "moved"]);
		}
		for (let i = 0; i < 5; i++) {
			const d = dirs[i];
			if (!d) throw new Error("missing dir");
			expect((await api(`/v1/nodes/${d.id}`, a.token, { method: "DELETE" })).status).toBe(200);
			expected.push([d.id, "trashed"]);
		}
		for (let i = 0; i < 5; i++) {
			const d = dirs[i];
			if (!d) throw new Error("missing dir");
			expect((await api(`/v1/nodes/${d.id}/restore`, a.token, { method: "POST" })).status).toBe(200);
			expected.push([d.id, "restored"]);
		}
		expect(expected).toHaveLength(50);

		const pulled = await pullAll(offline, from, 7);
		expect(pulled.pages).toBe(8);
		expect(pulled.entries.map((e) => [e.node.id, e.kind])).toEqual(expected);
		const seqs = pulled.entries.map((e) => e.seq);
		const first = seqs[0] ?? 0;
		expect(seqs).toEqual(seqs.map((_, i) => first + i));
		expect(pulled.cursor).toBe(await latest(a));
	});
});

describe("eight devices committing against the same base", () => {
	it("has exactly one winner and seven conflicted copies, and all eight contents come back byte-exact", async () => {
		const first = await signup("device 0");
		const devices = [first, ...(await Promise.all([1, 2, 3, 4, 5, 6, 7].map((i) => login(first, `device ${i}`))))];
		const base = await upload(first, first.rootId, "shared.bin", randomBytes(4096));
		expect(base.status).toBe(201);
		const contents = devices.map((_, i) => randomBytes(20_000 + i * 1000));

		const results = await Promise.all(
			devices.map((d, i) => upload(d, first.rootId, "shared.bin", contents[i] ?? "", base.body.version.id)),
		);

		const statuses = results.map((r) => r.status).sort();
		expect(statuses).toEqual([200, 201, 201, 201, 201, 201, 201, 201]);
		const winner = results.find((r) => r.status === 200);
		expect(winner?.body.node.id).toBe(base.body.node.id);
		expect(winner?.body.conflict).toBeNull();
		const copies = results.filter((r) => r.status === 201);
		for (const c of copies) {
			expect(c.body.conflict).toEqual({ node_id: base.body.node.id, reason: "stale_base" });
			expect(c.body.node.name).toMatch(/^shared \(conflicted copy device \d \d{4}-\d{2}-\d{2} \d{6}\)( \d+)?\.bin$/);
		}
		expect(new Set(copies.map((c) => c.body.node.id)).size).toBe(7);

		for (const [i, r] of results.entries()) {
			const got = await download(first, r.body.node.id);
			expect(got.equals(Buffer.from(contents[i] ?? ""))).toBe(true);
		}

		const listed = await api<{ items: { node: NodeBody; conflicts_with: NodeBody | null }[] }>("/v1/conflicts?limit=100", first.token);
		expect(listed.status).toBe(200);
		expect(listed.body.items).toHaveLength(7);
		expect(new Set(listed.body.items.map((i) => i.node.id))).toEqual(new Set(copies.map((c) => c.body.node.id)));
		for (const item of listed.body.items) expect(item.conflicts_with?.id).toBe(base.body.node.id);
	});
});

describe("an edit racing a delete", () => {
	it("survives: the deleted file comes back with the edit, and the other device sees it in the journal", async () => {
		const a = await signup("deleter");
		const b = await login(a, "editor");
		const put = await upload(a, a.rootId, "notes.md", "original");
		const cursor = await latest(a);
		const [deleted, edit] = await Promise.all([
			api<NodeBody>(`/v1/nodes/${put.body.node.id}`, a.token, { method: "DELETE" }),
			upload(b, b.rootId, "notes.md", "edited on the phone", put.body.version.id),
		]);
		expect(deleted.status).toBe(200);
		expect(edit.status).toBe(200);
		expect(edit.body.node.id).toBe(put.body.node.id);
		expect((await download(a, put.body.node.id)).toString()).toBe("edited on the phone");

		// Make the order deterministic for the rest: delete, then edit on the version B holds.
		const again = await upload(a, a.rootId, "notes-2.md", "v1");
		expect((await api(`/v1/nodes/${again.body.node.id}`, a.token, { method: "DELETE" })).status).toBe(200);
		const revived = await upload(b, b.rootId, "notes-2.md", "v2 from the phone", again.body.version.id);
		expect(revived.status).toBe(200);
		expect(revived.body.node).toMatchObject({ id: again.body.node.id, trashed: false });
		expect((await download(a, again.body.node.id)).toString()).toBe("v2 from the phone");
		const pulled = await pullAll(a, cursor, 100);
		const last = pulled.entries.filter((e) => e.node.id === again.body.node.id).map((e) => [e.kind, e.node.trashed]);
		expect(last).toEqual([
			["created", false],
			["trashed", true],
			["restored", false],
		]);
	});
});

describe("cursor reset", () => {
	it("answers a foreign cursor with 410 CURSOR_RESET, and the client recovers from /changes/latest", async () => {
		const alice = await signup();
		const bob = await signup();
		await mkdir(alice, alice.rootId, "alice-only");
		const aliceCursor = (await changes(alice, null)).body.cursor;
		const res = await changes(bob, aliceCursor);
		expect(res.status).toBe(410);
		expect(res.body.error.code).toBe("CURSOR_RESET");
		expect(JSON.stringify(res.body)).not.toContain("alice-only");
		// The recipe: take the latest cursor, list the tree, follow from there.
		const fresh = await latest(bob);
		const d = await mkdir(bob, bob.rootId, "bob's");
		const followed = await changes(bob, fresh);
		expect(followed.status).toBe(200);
		expect(followed.body.entries.map((e) => e.node.id)).toEqual([d.id]);
	});

	it("answers a cursor from beyond the journal with 410 and garbage with 400", async () => {
		const a = await signup();
		const ahead = `c1_${Buffer.from(`${a.userId}:999999`).toString("base64url")}`;
		const res = await changes(a, ahead);
		expect(res.status).toBe(410);
		expect(res.body.error.code).toBe("CURSOR_RESET");
		const garbage = await changes(a, "not-a-cursor");
		expect(garbage.status).toBe(400);
		expect(garbage.body.error.code).toBe("INVALID_REQUEST");
	});
});

describe("another user", () => {
	it("gets nothing with another user's ticket, cursor or long poll, and no frames of theirs", async () => {
		const alice = await signup();
		const bob = await signup();
		const bobSocket = await connect(bob);

		// Alice's ticket with bob's id, and bob's secret under alice's id: refused, nothing consumed.
		const aliceTicket = await ticketOf(alice);
		const bobTicket = await ticketOf(bob);
		const secret = (t: string) => t.slice(t.indexOf(".") + 1);
		for (const forged of [`${bob.userId}.${secret(aliceTicket)}`, `${alice.userId}.${secret(bobTicket)}`, "nonsense"]) {
			const dialed = await dial(forged);
			expect("status" in dialed ? dialed.status : 101).toBe(401);
		}
		const used = await dial(aliceTicket);
		expect("socket" in used).toBe(true);
		// …and used once only.
		const reused = await dial(aliceTicket);
		expect("status" in reused ? reused.status : 101).toBe(401);

		// Alice's cursor and long poll are refused to bob without a word of her journal.
		await mkdir(alice, alice.rootId, "private");
		const aliceCursor = await latest(alice);
		const read = await changes(bob, aliceCursor);
		expect(read.status).toBe(410);
		const poll = await api<ErrorBody>(`/v1/changes/longpoll?cursor=${encodeURIComponent(aliceCursor)}&timeout=1`, bob.token);
		expect(poll.status).toBe(410);
		expect(JSON.stringify([read.body, poll.body])).not.toContain("private");

		// Bob's socket hears nothing of alice's commits.
		await upload(alice, alice.rootId, "alice.txt", "x");
		await new Promise((r) => setTimeout(r, 500));
		expect(bobSocket.socket.frames.filter((f) => f.type === "changes")).toEqual([]);
	});
});

describe("long poll", () => {
	it("wakes within 100 ms of a commit by another device", async () => {
		const a = await signup();
		const b = await login(a, "poller");
		const cursor = await latest(b);
		const started = Date.now();
		const poll = api<{ changes: boolean }>(`/v1/changes/longpoll?cursor=${encodeURIComponent(cursor)}&timeout=30`, b.token).then((r) => ({
			...r,
			at: Date.now(),
		}));
		await new Promise((r) => setTimeout(r, 300));
		const put = await upload(a, a.rootId, "wake.txt", "w");
		const committedAt = Date.now();
		expect(put.status).toBe(201);
		const answered = await poll;
		expect(answered.body).toEqual({ changes: true });
		expect(answered.at - started).toBeGreaterThan(250);
		// Generous against a loaded CI box; the bench reports the real figure.
		expect(answered.at - committedAt).toBeLessThan(500);
	});
});
