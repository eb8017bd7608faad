/**
 * The harness inside workerd, over the api worker's default export, and the
 * white-box reads only this project can make (D1 shards, the R2 bucket).
 */
import { createExecutionContext, waitOnExecutionContext } from "cloudflare:test";
import { env, exports } from "cloudflare:workers";
import { shardBinding } from "../../src/shared/db/shards";
import worker from "../../workers/api/index";
import { expectOk, Harness, parse, type Body, type Reply, type TestUser } from "../support/harness";

/** The api worker, called in-process. */
export const api = new Harness((request) => exports.default.fetch(request), "http://drive.test");

/** The api worker over another env (a binding or var swapped), answering once its background work (waitUntil) is done. */
export function apiOver(workerEnv: Env): Harness {
	return new Harness(async (request) => {
		const ctx = createExecutionContext();
		const res = await worker.fetch(request, workerEnv, ctx);
		await waitOnExecutionContext(ctx);
		return res;
	}, "http://drive.test");
}

/**
 * Sets the user's quota as an operator would, and signs in a new device of
 * theirs, which sees the quota at once. (A device already signed in sees it
 * within the 30 s of the api's caller cache, docs/decisions/0030.)
 */
export async function withQuota(user: TestUser, bytes: number): Promise<TestUser> {
	await env.DIRECTORY.prepare("UPDATE users SET quota_bytes = ? WHERE id = ?").bind(bytes, user.id).run();
	return api.login(user, "Quota check");
}

/** The D1 database of the shard the directory assigned to this user. */
export async function shardOfUser(userId: string): Promise<D1Database> {
	const row = await env.DIRECTORY.prepare("SELECT shard FROM users WHERE id = ?").bind(userId).first<{ shard: number }>();
	if (!row) throw new Error(`no user ${userId} in the directory`);
	return shardBinding(env, row.shard);
}

/** Runs the user's purges under way to their end, as the hub's alarm does in the background. */
export async function settlePurges(userId: string): Promise<void> {
	const done = await env.USER_HUB.getByName(userId).runPurges();
	if (!done.ok) throw new Error(`purges failed: ${done.error.code}`);
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

// ---- Request-shaped conveniences on the harness, for the audit regression files ----

export type { TestUser } from "../support/harness";
export { expectError } from "../support/envelope";
export { bytesEqual, randomBytes, sha256 } from "../support/bytes";

/** `api.request` with fetch's shape; a string body is JSON unless it says otherwise. */
export function call(
	path: string,
	init: { method?: string; token?: string; headers?: Record<string, string>; body?: Body } = {},
): Promise<Response> {
	const headers = { ...init.headers };
	if (typeof init.body === "string" && !Object.keys(headers).some((h) => h.toLowerCase() === "content-type"))
		headers["Content-Type"] = "application/json";
	return api.request(path, { method: init.method, token: init.token, headers, body: init.body });
}

/** The JSON body of `res`, asserting its status. */
export async function expectJson<T = Record<string, unknown>>(res: Response, status: number): Promise<T> {
	return expectOk((await parse<T>(res)) as Reply<T>, status);
}

/** Signs up a fresh user. */
export const signup = (deviceName?: string): Promise<TestUser> => api.signup(deviceName);

/** Creates a folder (asserting 201). */
export const mkdir = (user: TestUser, parentId: string, name: string) => api.mkdir(user, parentId, name);

/** PUT content, raw. */
export function put(user: TestUser, parentId: string, name: string, data: Body, headers: Record<string, string> = {}): Promise<Response> {
	const params = new URLSearchParams({ parent_id: parentId, name });
	return api.request(`/v1/files/content?${params}`, { method: "PUT", token: user.token, body: data, headers });
}

/** PUT content, asserting `status`. */
export const upload = (user: TestUser, parentId: string, name: string, data: Body, status = 201, headers: Record<string, string> = {}) =>
	api.upload(user, parentId, name, data, { status, headers });

/** GET content, asserting `status`. */
export const download = (user: TestUser, id: string, headers: Record<string, string> = {}, status = 200) =>
	api.download(user, id, { headers, status });

/** Every live child of a folder. */
export const listAll = (user: TestUser, folderId: string) => api.listAll(user, folderId);

/** GET /v1/nodes/:id (asserting 200). */
export const getNode = (user: TestUser, id: string) => api.node(user, id);
