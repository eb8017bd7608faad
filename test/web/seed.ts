/// <reference types="node" />
/**
 * Data for browser tests, made through the API with plain fetch from Node
 * (the UI path is not what such a test is about): a token for an account
 * the page signed up, folders, files.
 */
import { expect } from "vitest";
import { baseUrl, PASSWORD } from "./browser";

export interface Seeded {
	id: string;
	name: string;
	version_id: string | null;
	parent_id: string | null;
}

/** A bearer token for `email` (another device of the account the page uses). */
export async function tokenFor(email: string): Promise<string> {
	const res = await fetch(`${baseUrl()}/v1/auth/login`, {
		method: "POST",
		headers: { "Content-Type": "application/json" },
		body: JSON.stringify({ email, password: PASSWORD, device_name: "test seeder" }),
	});
	expect(res.status).toBe(200);
	return ((await res.json()) as { access_token: string }).access_token;
}

export async function apiJson<T>(token: string, method: string, path: string, body?: unknown, status = [200, 201]): Promise<T> {
	const res = await fetch(`${baseUrl()}${path}`, {
		method,
		headers: { Authorization: `Bearer ${token}`, ...(body === undefined ? {} : { "Content-Type": "application/json" }) },
		...(body === undefined ? {} : { body: JSON.stringify(body) }),
	});
	const text = await res.text();
	if (!status.includes(res.status)) throw new Error(`${method} ${path}: ${res.status} ${text}`);
	return (text === "" ? null : JSON.parse(text)) as T;
}

export async function rootId(token: string): Promise<string> {
	return (await apiJson<Seeded>(token, "GET", "/v1/nodes/root")).id;
}

export function mkdir(token: string, parentId: string, name: string): Promise<Seeded> {
	return apiJson<Seeded>(token, "POST", "/v1/folders", { parent_id: parentId, name });
}

/** Creates `names` under `parentId` in one request (POST /v1/folders/batch); fails unless every one was made. */
export async function mkdirMany(token: string, parentId: string, names: string[]): Promise<Seeded[]> {
	const { items } = await apiJson<{ items: ({ node: Seeded } | { error: { code: string } })[] }>(token, "POST", "/v1/folders/batch", {
		parent_id: parentId,
		names,
	});
	return items.map((item) => {
		if (!("node" in item)) throw new Error(`a seeded folder was refused: ${item.error.code}`);
		return item.node;
	});
}

/** PUT content; `ifMatch` makes it an edit of that version (a stale one becomes a conflicted copy). */
export async function putFile(
	token: string,
	parentId: string,
	name: string,
	text: string,
	ifMatch?: string,
): Promise<{ node: Seeded; version: { id: string }; conflict: { node_id: string } | null }> {
	const query = new URLSearchParams({ parent_id: parentId, name });
	const res = await fetch(`${baseUrl()}/v1/files/content?${query}`, {
		method: "PUT",
		headers: { Authorization: `Bearer ${token}`, ...(ifMatch === undefined ? {} : { "If-Match": ifMatch }) },
		body: text,
	});
	const answer = await res.text();
	if (res.status !== 200 && res.status !== 201) throw new Error(`PUT ${name}: ${res.status} ${answer}`);
	return JSON.parse(answer) as { node: Seeded; version: { id: string }; conflict: { node_id: string } | null };
}
