/**
 * Reads of the caller's tree for the nodes routes: a node with its path, a
 * folder's children and the trash, one page at a time. Writes go through the
 * user's hub.
 */
import { z } from "zod";
import { notFound } from "../../../src/shared/commit/failures";
import { toNode } from "../../../src/shared/db/mappers";
import type { NodeRow } from "../../../src/shared/db/schema";
import type { ShardDb } from "../../../src/shared/db/shards";
import { ancestry, bytesUsed, findNode, findRoot, listChildren, listTrash } from "../../../src/shared/db/tree";
import { ok, type Result } from "../../../src/shared/errors";
import type { Node, NodePage, NodeWithPath } from "../../../src/shared/schemas/nodes";
import type { Caller } from "../env";
import { decodeCursor, encodeCursor } from "./cursors";
import { hubFor, shardFor } from "./hub";

/** The caller's root folder; the hub creates it if a signup died before it did. */
export async function rootOf(env: Env, caller: Caller): Promise<Result<Node>> {
	const root = await findRoot(shardFor(env, caller), caller.userId);
	if (root) return ok(toNode(root));
	const ensured = await hubFor(env, caller.userId).ensureRoot();
	return ensured.ok ? ok(ensured.value.node) : { ok: false, error: ensured.error };
}

/** A node of the user, with its path from the root. */
export async function nodeWithPath(db: ShardDb, userId: string, id: string): Promise<Result<NodeWithPath>> {
	const node = await findNode(db, userId, id);
	if (!node) return notFound("node");
	const chain = await ancestry(db, userId, id);
	const names = chain.slice(1).map((a) => a.name);
	return ok({ ...toNode(node), path: `/${names.join("/")}`, ancestors: chain.slice(0, -1).map((a) => ({ id: a.id, name: a.name })) });
}

const ChildrenCursor = z.object({ k: z.string() });

/** One page of a folder's live children, by name. */
export async function childrenPage(
	db: ShardDb,
	userId: string,
	folderId: string,
	limit: number,
	cursor?: string,
): Promise<Result<NodePage>> {
	const after = cursor === undefined ? ok(null) : decodeCursor(cursor, ChildrenCursor);
	if (!after.ok) return after;
	const folder = await findNode(db, userId, folderId);
	if (!folder || folder.type !== "folder") return notFound("folder");
	const rows = await listChildren(db, userId, folderId, limit + 1, after.value?.k ?? null);
	return ok(page(rows, limit, (last) => ({ k: last.nameKey })));
}

const TrashCursor = z.object({ t: z.string(), i: z.string() });

/** One page of the trash, newest first. */
export async function trashPage(db: ShardDb, userId: string, limit: number, cursor?: string): Promise<Result<NodePage>> {
	const after = cursor === undefined ? ok(null) : decodeCursor(cursor, TrashCursor);
	if (!after.ok) return after;
	const position = after.value === null ? null : { trashedAt: after.value.t, id: after.value.i };
	const rows = await listTrash(db, userId, limit + 1, position);
	return ok(page(rows, limit, (last) => ({ t: last.trashedAt, i: last.id })));
}

/** The first `limit` of `rows` (which may hold one more, to tell whether a next page exists). */
function page(rows: NodeRow[], limit: number, cursorOf: (last: NodeRow) => unknown): NodePage {
	const items = rows.slice(0, limit);
	const last = items.at(-1);
	return { items: items.map(toNode), next_cursor: rows.length > limit && last ? encodeCursor(cursorOf(last)) : null };
}

/** Bytes the caller's files take. */
export function usageOf(env: Env, caller: Caller): Promise<number> {
	return bytesUsed(shardFor(env, caller), caller.userId);
}
