/** Test helpers: calling the api worker in-process and signing users up. */
import { env, exports } from "cloudflare:workers";
import { expect } from "vitest";
import { shardDb } from "../../src/shared/db/rows";
import { Harness } from "../support/harness";

/** The api worker, called in-process. */
export const api = new Harness((request) => exports.default.fetch(request), "http://drive.test");

export const BASE = "http://drive.test";

/** Calls the api worker's default export. */
export function call(path: string, init: RequestInit & { token?: string } = {}): Promise<Response> {
	const headers = new Headers(init.headers);
	if (init.token) headers.set("Authorization", `Bearer ${init.token}`);
	if (init.body !== undefined && typeof init.body === "string" && !headers.has("Content-Type"))
		headers.set("Content-Type", "application/json");
	return exports.default.fetch(new Request(`${BASE}${path}`, { ...init, headers }));
}

/** JSON body of a response, typed loosely for assertions. */
export async function body<T = Record<string, any>>(res: Response): Promise<T> {
	return (await res.json()) as T;
}

export interface TestUser {
	id: string;
	email: string;
	token: string;
	refresh: string;
	deviceId: string;
	rootId: string;
}

let counter = 0;

/** Signs up a fresh user and fetches their root folder. */
export async function signup(deviceName = "Test laptop"): Promise<TestUser> {
	const email = `user${Date.now()}-${counter++}-${Math.random().toString(36).slice(2, 8)}@example.com`;
	const res = await call("/v1/auth/signup", {
		method: "POST",
		body: JSON.stringify({ email, password: "correct horse battery", device_name: deviceName }),
	});
	if (res.status !== 201) throw new Error(`signup failed: ${res.status} ${await res.text()}`);
	const s = await body(res);
	const root = await body(await call("/v1/nodes/root", { token: s.access_token }));
	return { id: s.user.id, email, token: s.access_token, refresh: s.refresh_token, deviceId: s.device_id, rootId: root.id };
}

/**
 * Sets the user's quota as an operator would, and signs in a new device of
 * theirs, which sees the quota at once. (A device already signed in sees it
 * within the api's 5 s caller cache, docs/decisions/0010.)
 */
export async function withQuota(user: TestUser, bytes: number): Promise<TestUser> {
	await env.DIRECTORY.prepare("UPDATE users SET quota_bytes = ? WHERE id = ?").bind(bytes, user.id).run();
	const res = await call("/v1/auth/login", {
		method: "POST",
		body: JSON.stringify({ email: user.email, password: "correct horse battery", device_name: "Quota check" }),
	});
	if (res.status !== 200) throw new Error(`login failed: ${res.status} ${await res.text()}`);
	const s = await body(res);
	return { ...user, token: s.access_token, refresh: s.refresh_token, deviceId: s.device_id };
}

/** Uploads bytes with PUT content. */
export function put(
	user: TestUser,
	parentId: string,
	name: string,
	data: Uint8Array | string,
	headers: Record<string, string> = {},
	query = "",
): Promise<Response> {
	const params = new URLSearchParams({ parent_id: parentId, name });
	return call(`/v1/files/content?${params}${query}`, { method: "PUT", token: user.token, body: data, headers });
}

/** Deterministic pseudo-random bytes (xorshift32), fast for tens of MiB. */
export function randomBytes(size: number, seed = 1): Uint8Array {
	const out = new Uint8Array(size);
	const words = new Uint32Array(out.buffer, 0, Math.floor(size / 4));
	let x = seed >>> 0 || 1;
	for (let i = 0; i < words.length; i++) {
		x ^= x << 13;
		x ^= x >>> 17;
		x ^= x << 5;
		words[i] = x >>> 0;
	}
	for (let i = words.length * 4; i < size; i++) out[i] = i & 0xff;
	return out;
}

/** SHA-256 hex of bytes. */
export async function sha256(data: Uint8Array | ArrayBuffer): Promise<string> {
	const digest = await crypto.subtle.digest("SHA-256", data);
	return [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, "0")).join("");
}

// ---- added for the route-group tests ------------------------------------

/** Failure details of the error envelope, as the tests read them. */
export interface ErrorEnvelope {
	error: { code: string; message: string; request_id: string; details?: unknown[] };
}

/**
 * Asserts that `res` is the error envelope with `status` and `code`, and that
 * its request_id is the one in the `Request-Id` header. Returns the envelope.
 */
export async function expectError(res: Response, status: number, code: string): Promise<ErrorEnvelope> {
	const text = await res.text();
	if (res.status !== status) throw new Error(`expected ${status} ${code}, got ${res.status}: ${text}`);
	expect(res.headers.get("Content-Type") ?? "").toMatch(/^application\/json/);
	const parsed = JSON.parse(text) as ErrorEnvelope;
	expect(parsed.error.code).toBe(code);
	expect(typeof parsed.error.message).toBe("string");
	expect(parsed.error.request_id).toMatch(/^req_/);
	expect(res.headers.get("Request-Id")).toBe(parsed.error.request_id);
	return parsed;
}

/** Asserts a status, failing with the body for context; returns the parsed JSON. */
export async function expectJson<T = Record<string, any>>(res: Response, status: number): Promise<T> {
	const text = await res.text();
	if (res.status !== status) throw new Error(`expected ${status}, got ${res.status}: ${text}`);
	return JSON.parse(text) as T;
}

/** API node shape, as far as the tests look at it. */
export interface ApiNode {
	id: string;
	type: "file" | "folder";
	name: string;
	parent_id: string | null;
	size: number | null;
	version_id: string | null;
	content_hash: string | null;
	created_at: string;
	modified_at: string;
	trashed: boolean;
}

/** Creates a folder and returns it (asserting 201). */
export async function mkdir(user: TestUser, parentId: string, name: string): Promise<ApiNode> {
	const res = await call("/v1/folders", { method: "POST", token: user.token, body: JSON.stringify({ parent_id: parentId, name }) });
	return expectJson<ApiNode>(res, 201);
}

/** Uploads bytes with PUT content and returns the commit result, asserting the status. */
export async function upload(
	user: TestUser,
	parentId: string,
	name: string,
	data: Uint8Array | string,
	status = 201,
	headers: Record<string, string> = {},
	query = "",
): Promise<{
	node: ApiNode;
	version: { id: string; node_id: string; size: number; content_hash: string };
	conflict: { node_id: string; reason: string } | null;
}> {
	return expectJson(await put(user, parentId, name, data, headers, query), status);
}

/** GET /v1/nodes/:id as the user, asserting 200. */
export async function getNode(user: TestUser, id: string): Promise<ApiNode & { path: string; ancestors: { id: string; name: string }[] }> {
	return expectJson(await call(`/v1/nodes/${id}`, { token: user.token }), 200);
}

/** Every live child of a folder, following next_cursor. */
export async function listAll(user: TestUser, folderId: string, limit = 1000): Promise<ApiNode[]> {
	const out: ApiNode[] = [];
	let cursor: string | null = null;
	do {
		const q = new URLSearchParams({ limit: String(limit) });
		if (cursor !== null) q.set("cursor", cursor);
		const page: { items: ApiNode[]; next_cursor: string | null } = await expectJson(
			await call(`/v1/nodes/${folderId}/children?${q}`, { token: user.token }),
			200,
		);
		out.push(...page.items);
		cursor = page.next_cursor;
	} while (cursor !== null);
	return out;
}

/** Downloads a file's content, asserting the status; returns the response and its bytes. */
export async function download(
	user: TestUser,
	id: string,
	headers: Record<string, string> = {},
	status = 200,
): Promise<{ res: Response; bytes: Uint8Array }> {
	const res = await call(`/v1/files/${id}/content`, { token: user.token, headers });
	if (res.status !== status) throw new Error(`expected ${status}, got ${res.status}: ${await res.text()}`);
	return { res, bytes: new Uint8Array(await res.arrayBuffer()) };
}

/** The D1 database of the shard the directory assigned to this user. */
export async function shardOfUser(userId: string): Promise<D1Database> {
	const row = await env.DIRECTORY.prepare("SELECT shard FROM users WHERE id = ?").bind(userId).first<{ shard: number }>();
	if (!row) throw new Error(`no user ${userId} in the directory`);
	return shardDb(env, row.shard);
}

/** A row of the change journal. */
export interface ChangeRow {
	seq: number;
	kind: string;
	node_id: string;
	node: string;
	created_at: string;
}

/** The user's journal, oldest first, read straight from their shard. */
export async function journal(userId: string): Promise<ChangeRow[]> {
	const db = await shardOfUser(userId);
	const { results } = await db
		.prepare("SELECT seq, kind, node_id, node, created_at FROM changes WHERE user_id = ? ORDER BY seq")
		.bind(userId)
		.all<ChangeRow>();
	return results;
}

/** Every object key in the BLOBS bucket (all pages). */
export async function blobKeys(prefix?: string): Promise<string[]> {
	const keys: string[] = [];
	let cursor: string | undefined;
	for (;;) {
		const page = await env.BLOBS.list({ prefix, cursor, limit: 1000 });
		for (const o of page.objects) keys.push(o.key);
		if (!page.truncated) break;
		cursor = page.cursor;
	}
	return keys;
}

/** How many objects the BLOBS bucket holds. */
export async function blobCount(): Promise<number> {
	return (await blobKeys()).length;
}

/** The ordered block list of a version, from the user's shard. */
export async function versionBlocks(userId: string, versionId: string): Promise<{ offset: number; size: number; hash: string }[]> {
	const db = await shardOfUser(userId);
	const { results } = await db
		.prepare("SELECT offset, size, hash FROM version_blocks WHERE version_id = ? ORDER BY offset")
		.bind(versionId)
		.all<{ offset: number; size: number; hash: string }>();
	return results;
}

/** Index of `needle` in `haystack`, or -1. */
export function indexOfBytes(haystack: Uint8Array, needle: Uint8Array): number {
	if (needle.length === 0) return 0;
	const first = needle[0];
	outer: for (
		let i = haystack.indexOf(first as number);
		i !== -1 && i <= haystack.length - needle.length;
		i = haystack.indexOf(first as number, i + 1)
	) {
		for (let j = 1; j < needle.length; j++) if (haystack[i + j] !== needle[j]) continue outer;
		return i;
	}
	return -1;
}

/** True when two byte arrays hold the same bytes. */
export function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
	if (a.length !== b.length) return false;
	for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
	return true;
}
