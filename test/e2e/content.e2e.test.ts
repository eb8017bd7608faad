/// <reference types="node" />
/**
 * File content end to end: a Node client with plain fetch against the real
 * local stack (wrangler dev, both workers), as an API client would use it.
 */
import { createCipheriv, createHash, type Hash } from "node:crypto";
import { beforeAll, describe, expect, inject, it } from "vitest";

const BASE = inject("baseUrl");

/** 90 MiB: the largest round size under the 100 MB (10^8 bytes) request limit. */
const SIZE = 90 * 1024 * 1024;
const MAX_REQUEST_BYTES = 100_000_000;
const PIECE = 1024 * 1024;

interface Session {
	token: string;
	rootId: string;
}

interface NodeBody {
	id: string;
	type: "file" | "folder";
	name: string;
	size: number;
	version_id: string | null;
	content_hash: string | null;
}

async function api<T>(
	path: string,
	token: string | null,
	init: { method?: string; json?: unknown } = {},
): Promise<{ status: number; body: T }> {
	const headers: Record<string, string> = {};
	if (token !== null) headers.Authorization = `Bearer ${token}`;
	if (init.json !== undefined) headers["Content-Type"] = "application/json";
	const res = await fetch(`${BASE}${path}`, {
		method: init.method ?? "GET",
		headers,
		body: init.json === undefined ? undefined : JSON.stringify(init.json),
	});
	return { status: res.status, body: (await res.json()) as T };
}

async function signup(): Promise<Session> {
	const email = `e2e-${Date.now()}-${Math.random().toString(36).slice(2, 8)}@example.com`;
	const created = await api<{ access_token: string }>("/v1/auth/signup", null, {
		method: "POST",
		json: { email, password: "correct horse battery staple", device_name: "e2e" },
	});
	expect(created.status).toBe(201);
	const root = await api<NodeBody>("/v1/nodes/root", created.body.access_token);
	expect(root.status).toBe(200);
	return { token: created.body.access_token, rootId: root.body.id };
}

/**
 * `size` pseudo-random bytes as a stream, generated on demand (AES-256-CTR
 * keystream: incompressible, deterministic per seed, and fast enough not to
 * be what the test waits for), hashed into `hash` as they are handed out, so
 * the test never holds more than one piece in memory.
 */
function randomStream(size: number, seed: string, hash: Hash): ReadableStream<Uint8Array> {
	const key = createHash("sha256").update(seed).digest();
	const cipher = createCipheriv("aes-256-ctr", key, Buffer.alloc(16));
	const zeros = Buffer.alloc(PIECE);
	let sent = 0;
	return new ReadableStream<Uint8Array>({
		pull(controller) {
			const n = Math.min(PIECE, size - sent);
			if (n === 0) {
				controller.close();
				return;
			}
			const piece = cipher.update(zeros.subarray(0, n));
			sent += n;
			hash.update(piece);
			controller.enqueue(new Uint8Array(piece.buffer, piece.byteOffset, piece.byteLength));
		},
	});
}

/** Streams a response body into a SHA-256, returning the hex digest and the byte count. */
async function hashBody(res: Response): Promise<{ sha256: string; bytes: number }> {
	const hash = createHash("sha256");
	let bytes = 0;
	const body = res.body;
	if (body === null) return { sha256: hash.digest("hex"), bytes };
	const reader = body.getReader();
	for (;;) {
		const { done, value } = await reader.read();
		if (done) break;
		bytes += value.byteLength;
		hash.update(value);
	}
	return { sha256: hash.digest("hex"), bytes };
}

/** `size` zero bytes as a stream, one shared piece at a time (its content never changes, so sharing it is safe). */
function zeroStream(size: number): ReadableStream<Uint8Array> {
	const zeros = new Uint8Array(PIECE);
	let sent = 0;
	return new ReadableStream<Uint8Array>({
		pull(controller) {
			const n = Math.min(PIECE, size - sent);
			if (n === 0) {
				controller.close();
				return;
			}
			sent += n;
			controller.enqueue(n === PIECE ? zeros : zeros.subarray(0, n));
		},
	});
}

/** PUT content with a streamed body; `length` null sends it chunked, without Content-Length. */
function putStream(
	session: Session,
	parentId: string,
	name: string,
	body: ReadableStream<Uint8Array>,
	length: number | null,
): Promise<Response> {
	const headers: Record<string, string> = { Authorization: `Bearer ${session.token}`, "Content-Type": "application/octet-stream" };
	if (length !== null) headers["Content-Length"] = String(length);
	const params = new URLSearchParams({ parent_id: parentId, name });
	// Node's fetch only streams a request body in half-duplex mode.
	return fetch(`${BASE}/v1/files/content?${params}`, { method: "PUT", headers, body, duplex: "half" } as RequestInit);
}

async function createFolder(session: Session, name: string): Promise<string> {
	const folder = await api<NodeBody>("/v1/folders", session.token, { method: "POST", json: { parent_id: session.rootId, name } });
	expect(folder.status).toBe(201);
	return folder.body.id;
}

async function childrenOf(session: Session, folderId: string): Promise<NodeBody[]> {
	const children = await api<{ items: NodeBody[] }>(`/v1/nodes/${folderId}/children`, session.token);
	expect(children.status).toBe(200);
	return children.body.items;
}

async function bytesUsed(session: Session): Promise<number> {
	const me = await api<{ usage: { bytes_used: number } }>("/v1/me", session.token);
	expect(me.status).toBe(200);
	return me.body.usage.bytes_used;
}

describe("file content through the local stack", () => {
	let session: Session;

	beforeAll(async () => {
		session = await signup();
	});

	describe("happy path", () => {
		it("stores 90 MiB streamed from a generator and streams back the same bytes", async () => {
			const sent = createHash("sha256");
			const put = await putStream(session, session.rootId, "random-90MiB.bin", randomStream(SIZE, "e2e-90MiB", sent), SIZE);
			const putBody = (await put.json()) as { node: NodeBody; version: { id: string } };
			expect(put.status, JSON.stringify(putBody)).toBe(201);
			const expected = sent.digest("hex");
			expect(putBody.node).toMatchObject({
				type: "file",
				name: "random-90MiB.bin",
				size: SIZE,
				content_hash: expected,
				version_id: putBody.version.id,
			});

			const get = await fetch(`${BASE}/v1/files/${putBody.node.id}/content`, { headers: { Authorization: `Bearer ${session.token}` } });
			expect(get.status).toBe(200);
			expect(get.headers.get("Content-Length")).toBe(String(SIZE));
			expect(get.headers.get("ETag")).toBe(`"${putBody.version.id}"`);
			const received = await hashBody(get);
			expect(received.bytes).toBe(SIZE);
			expect(received.sha256).toBe(expected);
		});
	});

	describe("errors", () => {
		it("refuses a body declared over 100,000,000 bytes with 413 and leaves nothing in the folder", async () => {
			const folder = await createFolder(session, "declared-too-large");
			const before = await bytesUsed(session);

			// The service refuses on the header alone. Locally the answer still
			// only comes once the request body is in (wrangler dev's runtime
			// does not answer early), so the declared bytes are really sent.
			const res = await putStream(session, folder, "huge.bin", zeroStream(MAX_REQUEST_BYTES + 1), MAX_REQUEST_BYTES + 1);
			const text = await res.text();
			expect(res.status, text).toBe(413);
			expect(JSON.parse(text)).toMatchObject({ error: { code: "PAYLOAD_TOO_LARGE" } });
			expect(await childrenOf(session, folder)).toEqual([]);
			expect(await bytesUsed(session)).toBe(before);
		});

		it("refuses a streamed body without Content-Length once it passes 100,000,000 bytes, leaving nothing in the folder", async () => {
			const folder = await createFolder(session, "streamed-too-large");
			const before = await bytesUsed(session);

			const res = await putStream(session, folder, "huge.bin", zeroStream(MAX_REQUEST_BYTES + 1), null);
			const text = await res.text();
			expect(res.status, text).toBe(413);
			expect(JSON.parse(text)).toMatchObject({ error: { code: "PAYLOAD_TOO_LARGE" } });
			expect(await childrenOf(session, folder)).toEqual([]);
			expect(await bytesUsed(session)).toBe(before);
		});
	});

	describe("auth", () => {
		it("refuses an upload without a token", async () => {
			const params = new URLSearchParams({ parent_id: session.rootId, name: "anonymous.bin" });
			const res = await fetch(`${BASE}/v1/files/content?${params}`, { method: "PUT", body: new Uint8Array(16) });
			expect(res.status).toBe(401);
			expect(await res.json()).toMatchObject({ error: { code: "UNAUTHENTICATED" } });
		});

		it("answers 404 to another user asking for a file's content", async () => {
			const params = new URLSearchParams({ parent_id: session.rootId, name: "private.txt" });
			const put = await fetch(`${BASE}/v1/files/content?${params}`, {
				method: "PUT",
				headers: { Authorization: `Bearer ${session.token}` },
				body: "mine",
			});
			expect(put.status).toBe(201);
			const { node } = (await put.json()) as { node: NodeBody };
			const stranger = await signup();
			const res = await fetch(`${BASE}/v1/files/${node.id}/content`, { headers: { Authorization: `Bearer ${stranger.token}` } });
			expect(res.status).toBe(404);
			expect(await res.json()).toMatchObject({ error: { code: "NOT_FOUND" } });
		});
	});
});
