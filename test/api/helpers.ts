/** Test helpers: calling the api worker in-process and signing users up. */
import { exports } from "cloudflare:workers";

export const BASE = "http://drive.test";

/** Calls the api worker's default export. */
export function call(path: string, init: RequestInit & { token?: string } = {}): Promise<Response> {
	const headers = new Headers(init.headers);
	if (init.token) headers.set("Authorization", `Bearer ${init.token}`);
	if (init.body !== undefined && typeof init.body === "string" && !headers.has("Content-Type")) headers.set("Content-Type", "application/json");
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
	const res = await call("/v1/auth/signup", { method: "POST", body: JSON.stringify({ email, password: "correct horse battery", device_name: deviceName }) });
	if (res.status !== 201) throw new Error(`signup failed: ${res.status} ${await res.text()}`);
	const s = await body(res);
	const root = await body(await call("/v1/nodes/root", { token: s.access_token }));
	return { id: s.user.id, email, token: s.access_token, refresh: s.refresh_token, deviceId: s.device_id, rootId: root.id };
}

/** Uploads bytes with PUT content. */
export function put(user: TestUser, parentId: string, name: string, data: Uint8Array | string, headers: Record<string, string> = {}, query = ""): Promise<Response> {
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
