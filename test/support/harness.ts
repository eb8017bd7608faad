/**
 * One typed client of Drive's HTTP API for every test project: inside
 * workerd over the api worker's `exports.default.fetch`, and from Node over
 * `fetch` against the local stack (`inject("baseUrl")`). Bodies are typed
 * with the wire schemas of src/shared/schemas, never redeclared.
 *
 * Runs in both runtimes, so it imports neither `node:` nor `cloudflare:`
 * modules: the Node WebSocket client is passed in as a {@link Dialer}.
 */
import type { z } from "@hono/zod-openapi";
import type { ErrorBody } from "../../src/shared/errors";
import type { Me as MeSchema, Session } from "../../src/shared/schemas/auth";
import type { CommitResult, Node, NodePage as NodePageSchema, NodeWithPath as NodeWithPathSchema } from "../../src/shared/schemas/nodes";
import type {
	ChangeEntry,
	ChangesPage as ChangesPageSchema,
	ConflictPage as ConflictPageSchema,
	LatestCursor,
	LongpollResult as LongpollResultSchema,
	ServerMessage,
	SyncTicket,
} from "../../src/shared/schemas/sync";
import type {
	AppendBlocksResult as AppendBlocksResultSchema,
	BlockSpec,
	CreateUploadBody,
	UploadStatus as UploadStatusSchema,
} from "../../src/shared/schemas/uploads";

export type { ChangeEntry, CommitResult, ErrorBody, Node, ServerMessage, Session };
export type { Version, Conflict } from "../../src/shared/schemas/nodes";
export type NodeWithPath = z.infer<typeof NodeWithPathSchema>;
export type NodePage = z.infer<typeof NodePageSchema>;
export type ChangesPage = z.infer<typeof ChangesPageSchema>;
export type ConflictPage = z.infer<typeof ConflictPageSchema>;
export type LongpollResult = z.infer<typeof LongpollResultSchema>;
export type UploadStatus = z.infer<typeof UploadStatusSchema>;
export type AppendBlocksResult = z.infer<typeof AppendBlocksResultSchema>;
export type Me = z.infer<typeof MeSchema>;
/** The body of POST /v1/uploads as a client writes it (defaults may be left out). */
export type CreateUpload = z.input<typeof CreateUploadBody>;
export type { BlockSpec };

/** The password every test account is created with. */
export const PASSWORD = "correct horse battery";

/**
 * How long a helper waits for something that must happen (a frame, a close)
 * before it fails with what it saw instead of hanging. Only a hang guard:
 * nothing correct takes this long, and no test depends on it being short.
 */
export const HANG_GUARD_MS = 60_000;

/** What the harness sends requests through. */
export type FetchLike = (request: Request) => Promise<Response>;

/** A parsed answer: the JSON body (null when there is none) typed as the success shape of the route. */
export interface Reply<T> {
	status: number;
	headers: Headers;
	body: T;
	/** The raw body, for failure messages. */
	text: string;
}

/** A signed-in device of a test account. */
export interface TestUser {
	id: string;
	email: string;
	token: string;
	refresh: string;
	deviceId: string;
	rootId: string;
}

/** A request body the harness sends as is. */
export type Body = Uint8Array | string | ReadableStream<Uint8Array> | Blob;

/** What a request carries besides its path. */
export interface RequestOptions {
	method?: string;
	/** Sent as `Authorization: Bearer`; null or undefined sends none. */
	token?: string | null;
	/** A JSON body (sets Content-Type). */
	json?: unknown;
	body?: Body;
	headers?: Record<string, string>;
}

/** The pieces of a WebSocket the sync tests use; both workerd's and the `ws` package's fit. */
export interface SocketLike {
	send(data: string | ArrayBuffer | Uint8Array): void;
	close(code?: number, reason?: string): void;
	addEventListener(type: "message", listener: (event: { data: unknown }) => void): void;
	addEventListener(type: "close", listener: (event: { code: number; reason: string }) => void): void;
}

/** Opens the sync WebSocket at `url`: the socket, or the HTTP status that refused the upgrade. */
export type Dialer = (url: string) => Promise<{ socket: SocketLike } | { status: number; text: string }>;

/** A frame of the sync socket: a server message, or plain text (the runtime's "pong"). */
export type Frame = ServerMessage | string;

/** Matches frames of one `type`. */
export const isFrame =
	<K extends ServerMessage["type"]>(type: K) =>
	(f: Frame): f is Extract<ServerMessage, { type: K }> =>
		typeof f === "object" && f.type === type;

/** An open sync socket that records every frame and lets a test wait for one, or for the close. */
export class SyncSocket {
	readonly frames: Frame[] = [];
	/** Set once the socket closed. */
	closeEvent: { code: number; reason: string } | null = null;
	readonly closed: Promise<{ code: number; reason: string }>;
	#wake: (() => void)[] = [];

	constructor(readonly socket: SocketLike) {
		let onClose: (e: { code: number; reason: string }) => void = () => undefined;
		this.closed = new Promise((resolve) => (onClose = resolve));
		socket.addEventListener("message", (event) => {
			const text = typeof event.data === "string" ? event.data : new TextDecoder().decode(event.data as ArrayBuffer);
			let frame: Frame = text;
			try {
				frame = JSON.parse(text) as ServerMessage;
			} catch {
				// The runtime's auto-response to the text "ping" is the text "pong".
			}
			this.frames.push(frame);
			this.#notify();
		});
		socket.addEventListener("close", (event) => {
			this.closeEvent = { code: event.code, reason: event.reason };
			onClose(this.closeEvent);
			this.#notify();
		});
	}

	/** How many frames have arrived: pass it to {@link next} to wait only for later ones. */
	mark(): number {
		return this.frames.length;
	}

	/** The first frame from index `from` on that satisfies `match`, as soon as it arrives. */
	next<F extends Frame>(match: (f: Frame) => f is F, from?: number): Promise<F>;
	next(match: (f: Frame) => boolean, from?: number): Promise<Frame>;
	async next(match: (f: Frame) => boolean, from = 0): Promise<Frame> {
		const guard = Date.now() + HANG_GUARD_MS;
		for (;;) {
			const found = this.frames.slice(from).find(match);
			if (found !== undefined) return found;
			if (this.closeEvent !== null)
				throw new Error(`the socket closed (${this.closeEvent.code}) first; frames: ${JSON.stringify(this.frames)}`);
			const left = guard - Date.now();
			if (left <= 0) throw new Error(`no matching frame after ${HANG_GUARD_MS} ms (hang guard); frames: ${JSON.stringify(this.frames)}`);
			await new Promise<void>((resolve) => {
				const timer = setTimeout(resolve, left);
				this.#wake.push(() => {
					clearTimeout(timer);
					resolve();
				});
			});
		}
	}

	/** Resolves with the close code and reason once the socket closed. */
	async waitClosed(): Promise<{ code: number; reason: string }> {
		let timer: ReturnType<typeof setTimeout> | undefined;
		const guard = new Promise<never>((_, reject) => {
			timer = setTimeout(() => reject(new Error(`the socket did not close within ${HANG_GUARD_MS} ms (hang guard)`)), HANG_GUARD_MS);
		});
		try {
			return await Promise.race([this.closed, guard]);
		} finally {
			clearTimeout(timer);
		}
	}

	send(data: string | Uint8Array): void {
		this.socket.send(data);
	}

	close(code = 1000, reason = "done"): void {
		this.socket.close(code, reason);
	}

	#notify(): void {
		for (const wake of this.#wake.splice(0)) wake();
	}
}

let accounts = 0;

/** A fresh address for a test account. */
export function uniqueEmail(tag = "user"): string {
	return `${tag}-${Date.now()}-${accounts++}-${Math.random().toString(36).slice(2, 8)}@example.com`;
}

/** Base64 of UTF-8 text (tus metadata). */
function base64(text: string): string {
	return btoa(String.fromCharCode(...new TextEncoder().encode(text)));
}

/** The typed client. */
export class Harness {
	constructor(
		readonly fetcher: FetchLike,
		readonly baseUrl: string,
		private readonly dialer?: Dialer,
	) {}

	/** The absolute URL of `path` (an absolute URL passes through). */
	url(path: string): string {
		return new URL(path, this.baseUrl).toString();
	}

	/** Sends a request and answers the raw response. */
	request(path: string, options: RequestOptions = {}): Promise<Response> {
		const headers = new Headers(options.headers);
		if (options.token) headers.set("Authorization", `Bearer ${options.token}`);
		let body: Body | undefined = options.body;
		if (options.json !== undefined) {
			body = JSON.stringify(options.json);
			if (!headers.has("Content-Type")) headers.set("Content-Type", "application/json");
		}
		// Node's fetch streams a request body only in half-duplex mode.
		const init = { method: options.method ?? "GET", headers, body, duplex: "half" } as RequestInit;
		return this.fetcher(new Request(this.url(path), init));
	}

	/** Sends a request and parses its answer; the body is typed as the route's success shape. */
	async call<T>(path: string, options: RequestOptions = {}): Promise<Reply<T>> {
		return parse<T>(await this.request(path, options));
	}

	// ---- accounts -------------------------------------------------------------

	/** Signs up a fresh account (asserting 201) and fetches its root folder. */
	async signup(deviceName = "Test laptop", email = uniqueEmail()): Promise<TestUser> {
		const s = expectOk(
			await this.call<Session>("/v1/auth/signup", { method: "POST", json: { email, password: PASSWORD, device_name: deviceName } }),
			201,
		);
		const root = await this.node({ token: s.access_token }, "root");
		return { id: s.user.id, email: s.user.email, token: s.access_token, refresh: s.refresh_token, deviceId: s.device_id, rootId: root.id };
	}

	/** Signs `user` in on another device (asserting 200). */
	async login(user: TestUser, deviceName: string, headers: Record<string, string> = {}): Promise<TestUser> {
		const s = expectOk(
			await this.call<Session>("/v1/auth/login", {
				method: "POST",
				json: { email: user.email, password: PASSWORD, device_name: deviceName },
				headers,
			}),
			200,
		);
		return { ...user, token: s.access_token, refresh: s.refresh_token, deviceId: s.device_id };
	}

	/** GET /v1/me. */
	me(user: Pick<TestUser, "token">): Promise<Reply<Me>> {
		return this.call<Me>("/v1/me", { token: user.token });
	}

	// ---- nodes ----------------------------------------------------------------

	createFolder(user: Pick<TestUser, "token">, parentId: string, name: string): Promise<Reply<Node>> {
		return this.call<Node>("/v1/folders", { method: "POST", token: user.token, json: { parent_id: parentId, name } });
	}

	/** Creates a folder, asserting 201. */
	async mkdir(user: Pick<TestUser, "token">, parentId: string, name: string): Promise<Node> {
		return expectOk(await this.createFolder(user, parentId, name), 201);
	}

	/** GET /v1/nodes/:id (or "root"), asserting 200. */
	async node(user: Pick<TestUser, "token">, id: string): Promise<NodeWithPath> {
		return expectOk(await this.call<NodeWithPath>(`/v1/nodes/${id}`, { token: user.token }), 200);
	}

	/** PATCH /v1/nodes/:id: rename and/or move. */
	patchNode(user: Pick<TestUser, "token">, id: string, change: { name?: string; parent_id?: string }): Promise<Reply<Node>> {
		return this.call<Node>(`/v1/nodes/${id}`, { method: "PATCH", token: user.token, json: change });
	}

	/** DELETE /v1/nodes/:id: moves the node to the trash. */
	trash(user: Pick<TestUser, "token">, id: string): Promise<Reply<Node>> {
		return this.call<Node>(`/v1/nodes/${id}`, { method: "DELETE", token: user.token });
	}

	restore(user: Pick<TestUser, "token">, id: string): Promise<Reply<Node>> {
		return this.call<Node>(`/v1/nodes/${id}/restore`, { method: "POST", token: user.token });
	}

	children(user: Pick<TestUser, "token">, folderId: string, query: Record<string, string> = {}): Promise<Reply<NodePage>> {
		const q = new URLSearchParams(query).toString();
		return this.call<NodePage>(`/v1/nodes/${folderId}/children${q === "" ? "" : `?${q}`}`, { token: user.token });
	}

	/** Every live child of a folder, following next_cursor. */
	async listAll(user: Pick<TestUser, "token">, folderId: string, limit = 1000): Promise<Node[]> {
		const out: Node[] = [];
		let cursor: string | null = null;
		do {
			const query: Record<string, string> = { limit: String(limit) };
			if (cursor !== null) query.cursor = cursor;
			const page = expectOk(await this.children(user, folderId, query), 200);
			out.push(...page.items);
			cursor = page.next_cursor;
		} while (cursor !== null);
		return out;
	}

	// ---- content --------------------------------------------------------------

	/** PUT /v1/files/content. `query` adds parameters (on_conflict). */
	putContent(
		user: Pick<TestUser, "token">,
		parentId: string,
		name: string,
		data: Body,
		options: { ifMatch?: string; headers?: Record<string, string>; query?: Record<string, string> } = {},
	): Promise<Reply<CommitResult>> {
		const params = new URLSearchParams({ parent_id: parentId, name, ...options.query });
		const headers = { ...options.headers };
		if (options.ifMatch !== undefined) headers["If-Match"] = options.ifMatch;
		return this.call<CommitResult>(`/v1/files/content?${params}`, { method: "PUT", token: user.token, body: data, headers });
	}

	/** PUT /v1/files/content, asserting `status` (201 by default); returns the commit. */
	async upload(
		user: Pick<TestUser, "token">,
		parentId: string,
		name: string,
		data: Body,
		options: { status?: number; ifMatch?: string; headers?: Record<string, string>; query?: Record<string, string> } = {},
	): Promise<CommitResult> {
		return expectOk(await this.putContent(user, parentId, name, data, options), options.status ?? 201);
	}

	/** GET /v1/files/:id/content, asserting `status`; the response (headers) and its bytes. */
	async download(
		user: Pick<TestUser, "token">,
		id: string,
		options: { headers?: Record<string, string>; versionId?: string; status?: number } = {},
	): Promise<{ res: Response; bytes: Uint8Array }> {
		const query = options.versionId === undefined ? "" : `?version_id=${encodeURIComponent(options.versionId)}`;
		const res = await this.request(`/v1/files/${id}/content${query}`, { token: user.token, headers: options.headers });
		const status = options.status ?? 200;
		if (res.status !== status) throw new Error(`download of ${id}: expected ${status}, got ${res.status}: ${await res.text()}`);
		return { res, bytes: new Uint8Array(await res.arrayBuffer()) };
	}

	/** A file's content as text, asserting 200. */
	async text(user: Pick<TestUser, "token">, id: string, versionId?: string): Promise<string> {
		const { bytes } = await this.download(user, id, versionId === undefined ? {} : { versionId });
		return new TextDecoder().decode(bytes);
	}

	// ---- upload sessions ------------------------------------------------------

	createUpload(user: Pick<TestUser, "token">, body: CreateUpload | Record<string, unknown>): Promise<Reply<UploadStatus>> {
		return this.call<UploadStatus>("/v1/uploads", { method: "POST", token: user.token, json: body });
	}

	uploadStatus(user: Pick<TestUser, "token">, uploadId: string): Promise<Reply<UploadStatus>> {
		return this.call<UploadStatus>(`/v1/uploads/${uploadId}`, { token: user.token });
	}

	/** PUT one block. */
	putBlock(
		user: Pick<TestUser, "token">,
		uploadId: string,
		hash: string,
		bytes: Body,
		headers: Record<string, string> = {},
	): Promise<Response> {
		return this.request(`/v1/uploads/${uploadId}/blocks/${hash}`, { method: "PUT", token: user.token, body: bytes, headers });
	}

	/** PUT a batch of blocks, named in order by Drive-Blocks. */
	putBlocks(
		user: Pick<TestUser, "token">,
		uploadId: string,
		hashes: string[],
		bytes: Body,
		headers: Record<string, string> = {},
	): Promise<Response> {
		return this.request(`/v1/uploads/${uploadId}/blocks`, {
			method: "PUT",
			token: user.token,
			body: bytes,
			headers: { "Drive-Blocks": hashes.join(","), ...headers },
		});
	}

	appendBlockList(user: Pick<TestUser, "token">, uploadId: string, body: Record<string, unknown>): Promise<Reply<AppendBlocksResult>> {
		return this.call<AppendBlocksResult>(`/v1/uploads/${uploadId}/block-list`, { method: "POST", token: user.token, json: body });
	}

	commitUpload(user: Pick<TestUser, "token">, uploadId: string): Promise<Reply<CommitResult>> {
		return this.call<CommitResult>(`/v1/uploads/${uploadId}/commit`, { method: "POST", token: user.token, json: {} });
	}

	cancelUpload(user: Pick<TestUser, "token">, uploadId: string): Promise<Response> {
		return this.request(`/v1/uploads/${uploadId}`, { method: "DELETE", token: user.token });
	}

	// ---- tus --------------------------------------------------------------------

	/** `Upload-Metadata` naming `name` in `parentId`, plus `extra` keys. */
	tusMetadata(parentId: string, name: string, extra: Record<string, string> = {}): string {
		return Object.entries({ filename: name, parent_id: parentId, ...extra })
			.map(([k, v]) => `${k} ${base64(v)}`)
			.join(",");
	}

	/** POST /v1/tus; with `data`, creation-with-upload. */
	tusCreate(
		user: TestUser,
		name: string,
		length: number,
		options: { data?: Body; headers?: Record<string, string>; parentId?: string } = {},
	): Promise<Response> {
		const headers: Record<string, string> = {
			"Tus-Resumable": "1.0.0",
			"Upload-Length": String(length),
			"Upload-Metadata": this.tusMetadata(options.parentId ?? user.rootId, name),
			...options.headers,
		};
		if (options.data !== undefined) headers["Content-Type"] = "application/offset+octet-stream";
		return this.request("/v1/tus", { method: "POST", token: user.token, headers, body: options.data });
	}

	/** Creates a tus upload (asserting 201); its URL from Location. */
	async tusStart(user: TestUser, name: string, length: number): Promise<string> {
		const res = await this.tusCreate(user, name, length);
		if (res.status !== 201) throw new Error(`POST /v1/tus: ${res.status} ${await res.text()}`);
		return res.headers.get("Location") ?? "";
	}

	tusPatch(
		user: Pick<TestUser, "token">,
		url: string,
		offset: number,
		data: Body,
		headers: Record<string, string> = {},
	): Promise<Response> {
		return this.request(url, {
			method: "PATCH",
			token: user.token,
			headers: {
				"Tus-Resumable": "1.0.0",
				"Upload-Offset": String(offset),
				"Content-Type": "application/offset+octet-stream",
				...headers,
			},
			body: data,
		});
	}

	tusHead(user: Pick<TestUser, "token">, url: string): Promise<Response> {
		return this.request(url, { method: "HEAD", token: user.token, headers: { "Tus-Resumable": "1.0.0" } });
	}

	/** The upload's offset from HEAD, asserting 200. */
	async tusOffset(user: Pick<TestUser, "token">, url: string): Promise<number> {
		const res = await this.tusHead(user, url);
		if (res.status !== 200) throw new Error(`HEAD ${url}: ${res.status}`);
		return Number(res.headers.get("Upload-Offset"));
	}

	// ---- sync -------------------------------------------------------------------

	/** GET /v1/changes from `cursor` (from the start when null). */
	changes(user: Pick<TestUser, "token">, cursor: string | null, limit?: number): Promise<Reply<ChangesPage>> {
		const params = new URLSearchParams();
		if (cursor !== null) params.set("cursor", cursor);
		if (limit !== undefined) params.set("limit", String(limit));
		const q = params.toString();
		return this.call<ChangesPage>(`/v1/changes${q === "" ? "" : `?${q}`}`, { token: user.token });
	}

	/** One page of changes, asserting 200. */
	async page(user: Pick<TestUser, "token">, cursor: string | null, limit?: number): Promise<ChangesPage> {
		return expectOk(await this.changes(user, cursor, limit), 200);
	}

	/** Every entry after `cursor`, paging by `limit`; also the number of pages. */
	async pullAll(
		user: Pick<TestUser, "token">,
		cursor: string,
		limit = 500,
	): Promise<{ entries: ChangeEntry[]; cursor: string; pages: number }> {
		const entries: ChangeEntry[] = [];
		let pages = 0;
		for (;;) {
			const p = await this.page(user, cursor, limit);
			pages++;
			entries.push(...p.entries);
			cursor = p.cursor;
			if (!p.has_more) return { entries, cursor, pages };
		}
	}

	/** The latest cursor, asserting 200. */
	async latest(user: Pick<TestUser, "token">): Promise<string> {
		return expectOk(await this.call<z.infer<typeof LatestCursor>>("/v1/changes/latest", { token: user.token }), 200).cursor;
	}

	/** GET /v1/changes/longpoll. */
	longpoll(user: Pick<TestUser, "token">, cursor: string, timeoutSeconds: number): Promise<Reply<LongpollResult>> {
		return this.call<LongpollResult>(`/v1/changes/longpoll?cursor=${encodeURIComponent(cursor)}&timeout=${timeoutSeconds}`, {
			token: user.token,
		});
	}

	/** A sync ticket, asserting 200. */
	async ticket(user: Pick<TestUser, "token">): Promise<z.infer<typeof SyncTicket>> {
		return expectOk(await this.call<z.infer<typeof SyncTicket>>("/v1/sync/ticket", { method: "POST", token: user.token }), 200);
	}

	/** Opens the sync socket with `ticket`: the socket, or the status that refused the upgrade. */
	async dial(ticket: string): Promise<SyncSocket | { status: number; text: string }> {
		const url = this.url(`/v1/sync/ws?ticket=${encodeURIComponent(ticket)}`);
		const dialed = await (this.dialer ?? this.#fetchDialer)(url);
		return "socket" in dialed ? new SyncSocket(dialed.socket) : dialed;
	}

	/** A ticket, the socket, and its hello frame. */
	async connect(user: Pick<TestUser, "token">): Promise<{ socket: SyncSocket; hello: string }> {
		const dialed = await this.dial((await this.ticket(user)).ticket);
		if (!(dialed instanceof SyncSocket)) throw new Error(`the upgrade was refused with ${dialed.status}: ${dialed.text}`);
		const hello = await dialed.next(isFrame("hello"));
		return { socket: dialed, hello: hello.cursor };
	}

	/** The upgrade over this harness's fetch: what workerd's fetch answers (a 101 with the socket). */
	readonly #fetchDialer: Dialer = async (url) => {
		const res = await this.fetcher(new Request(url, { headers: { Upgrade: "websocket" } }));
		const ws = res.webSocket;
		if (res.status !== 101 || ws === null || ws === undefined) return { status: res.status, text: await res.text() };
		ws.accept();
		return { socket: ws as unknown as SocketLike };
	};
}

/** Parses a response: JSON when it says so, else null; the raw text too. */
export async function parse<T>(res: Response): Promise<Reply<T>> {
	const text = await res.text();
	const json = (res.headers.get("Content-Type") ?? "").includes("json") && text !== "";
	return { status: res.status, headers: res.headers, body: (json ? JSON.parse(text) : null) as T, text };
}

/** The body of `reply`, asserting its status (the failure names the body). */
export function expectOk<T>(reply: Reply<T>, status: number): T {
	if (reply.status !== status) throw new Error(`expected ${status}, got ${reply.status}: ${reply.text}`);
	return reply.body;
}

/**
 * Resolves once the wall clock reads later than `iso`: for tests whose
 * assertions need two events in different milliseconds. A condition, not a
 * duration: however busy the machine, it holds once this resolves.
 */
export async function clockPast(iso: string): Promise<void> {
	while (new Date().toISOString() <= iso) await new Promise((resolve) => setTimeout(resolve, 1));
}
