/** Raw tus 1.0 requests against /v1/tus, for test/api/tus*.test.ts. */
import { expect } from "vitest";
import { chunkBoundaries } from "../../src/shared/chunking";
import { call, sha256, type TestUser } from "./helpers";

export const TUS = { "Tus-Resumable": "1.0.0" };
export const OCTETS = "application/offset+octet-stream";
export const KiB = 1024;
export const MiB = 1024 * KiB;

export function b64(text: string): string {
	return btoa(String.fromCharCode(...new TextEncoder().encode(text)));
}

/** Upload-Metadata naming `name` in the user's root folder, plus `extra`. */
export function metadata(user: TestUser, name: string, extra: Record<string, string> = {}): string {
	return Object.entries({ filename: name, parent_id: user.rootId, ...extra })
		.map(([k, v]) => `${k} ${b64(v)}`)
		.join(",");
}

/** POST /v1/tus; with `data`, creation-with-upload. */
export function createTus(
	user: TestUser,
	name: string,
	length: number,
	data?: Uint8Array,
	headers: Record<string, string> = {},
): Promise<Response> {
	const h: Record<string, string> = { ...TUS, "Upload-Length": String(length), "Upload-Metadata": metadata(user, name), ...headers };
	if (data !== undefined) h["Content-Type"] = OCTETS;
	return call("/v1/tus", { method: "POST", token: user.token, headers: h, body: data });
}

/** The path of a created upload, from its Location. */
export async function locationOf(res: Response): Promise<string> {
	if (res.status !== 201) throw new Error(`POST /v1/tus: ${res.status} ${await res.text()}`);
	return new URL(res.headers.get("Location") ?? "").pathname;
}

/** Creates an upload and returns its path (from Location). */
export async function start(user: TestUser, name: string, length: number, headers: Record<string, string> = {}): Promise<string> {
	return locationOf(await createTus(user, name, length, undefined, headers));
}

export function patch(
	user: TestUser,
	path: string,
	offset: number,
	data: Uint8Array | ReadableStream<Uint8Array>,
	headers: Record<string, string> = {},
): Promise<Response> {
	return call(path, {
		method: "PATCH",
		token: user.token,
		headers: { ...TUS, "Upload-Offset": String(offset), "Content-Type": OCTETS, ...headers },
		body: data,
	});
}

export function head(user: TestUser, path: string): Promise<Response> {
	return call(path, { method: "HEAD", token: user.token, headers: TUS });
}

export async function offsetOf(user: TestUser, path: string): Promise<number> {
	const res = await head(user, path);
	if (res.status !== 200) throw new Error(`HEAD ${path}: ${res.status}`);
	return Number(res.headers.get("Upload-Offset"));
}

/** Sends `data` in PATCHes ending at `ends` (ascending; the last is data.length). Returns the node id. */
export async function patchAt(user: TestUser, path: string, data: Uint8Array, ends: number[], from = 0): Promise<string> {
	let offset = from;
	let nodeId: string | null = null;
	for (const end of ends) {
		const res = await patch(user, path, offset, data.slice(offset, end));
		if (res.status !== 204) throw new Error(`PATCH ${offset}..${end}: ${res.status} ${await res.text()}`);
		expect(res.headers.get("Upload-Offset")).toBe(String(end));
		offset = end;
		nodeId = res.headers.get("Drive-Node-Id");
	}
	if (nodeId === null) throw new Error("the last PATCH did not commit");
	return nodeId;
}

/** Upload-Checksum's base64 digest of `data`. */
export async function digest(algorithm: "SHA-1" | "SHA-256", data: Uint8Array): Promise<string> {
	return btoa(String.fromCharCode(...new Uint8Array(await crypto.subtle.digest(algorithm, data))));
}

/** Cumulative cut offsets of the chunker over `data` (excluding 0, including the end). */
export function cuts(data: Uint8Array): number[] {
	let off = 0;
	return chunkBoundaries(data).map((len) => (off += len));
}

/** The expected block list of a version: chunkBoundaries over the whole data. */
export async function expectedBlocks(data: Uint8Array): Promise<{ offset: number; size: number; hash: string }[]> {
	const out = [];
	let offset = 0;
	for (const size of chunkBoundaries(data)) {
		out.push({ offset, size, hash: await sha256(data.subarray(offset, offset + size)) });
		offset += size;
	}
	return out;
}
