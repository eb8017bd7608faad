/// <reference types="node" />
/**
 * Remote paths: `/Docs/a.txt` is resolved from the root by listing each
 * folder's children and matching names by their comparison key, as the
 * server does (docs/api.md, "Names"); an argument that is a node id
 * (`nod_…`) is used as is.
 *
 * @module
 */
import type { DriveClient } from "../client";
import { nameKey } from "../shared/names";
import type { Node } from "../shared/schemas/nodes";
import { CliError, EXIT } from "./output";

/** True for a node id rather than a path. */
export function isNodeId(arg: string): boolean {
	return /^nod_[A-Za-z0-9_-]+$/.test(arg);
}

/** The parts of a remote path: `/Docs//a.txt/` is `["Docs", "a.txt"]`. */
export function pathParts(path: string): string[] {
	return path.split("/").filter((part) => part !== "" && part !== ".");
}

/** Every page of a paginated list. */
export async function listAll<T>(client: DriveClient, path: string, query: Record<string, string> = {}): Promise<T[]> {
	const items: T[] = [];
	let cursor: string | undefined;
	do {
		const page = await client.json<{ items: T[]; next_cursor: string | null }>("GET", path, { query: { ...query, limit: 1000, cursor } });
		items.push(...page.items);
		cursor = page.next_cursor ?? undefined;
	} while (cursor !== undefined);
	return items;
}

/** The live children of a folder. */
export function children(client: DriveClient, folderId: string): Promise<Node[]> {
	return listAll<Node>(client, `/v1/nodes/${encodeURIComponent(folderId)}/children`);
}

/** The child of `folderId` whose name has the same key as `name`, if any. */
export async function childNamed(client: DriveClient, folderId: string, name: string): Promise<Node | undefined> {
	const key = nameKey(name);
	return (await children(client, folderId)).find((child) => nameKey(child.name) === key);
}

function notFound(path: string): CliError {
	return new CliError("NOT_FOUND", `no such file or folder: ${path}`, EXIT.notFound);
}

/** Resolves a path or id to its node; throws NOT_FOUND (exit 4) when a part does not exist. */
export async function resolve(client: DriveClient, arg: string): Promise<Node> {
	if (isNodeId(arg)) return client.json<Node>("GET", `/v1/nodes/${encodeURIComponent(arg)}`);
	let node = await client.json<Node>("GET", "/v1/nodes/root");
	for (const part of pathParts(arg)) {
		if (node.type !== "folder") throw notFound(arg);
		const next = await childNamed(client, node.id, part);
		if (next === undefined) throw notFound(arg);
		node = next;
	}
	return node;
}

/** Resolves a path that must be a folder. */
export async function resolveFolder(client: DriveClient, arg: string): Promise<Node> {
	const node = await resolve(client, arg);
	if (node.type !== "folder") throw new CliError("INVALID_REQUEST", `not a folder: ${arg}`);
	return node;
}

/**
 * Splits a path into its existing parent folder and the last name, for
 * commands that create or rename: `/Docs/new` is (`/Docs`, `new`).
 */
export async function parentAndName(client: DriveClient, path: string): Promise<{ parent: Node; name: string }> {
	const parts = pathParts(path);
	const name = parts.pop();
	if (name === undefined) throw new CliError("INVALID_REQUEST", "the root has no name", EXIT.usage);
	return { parent: await resolveFolder(client, `/${parts.join("/")}`), name };
}
