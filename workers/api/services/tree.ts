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
import {
	ancestryStatement,
	type AncestryRow,
	findNodeStatement,
	findRoot,
	listChildrenStatement,
	listTrash,
	readAncestry,
	readNode,
} from "../../../src/shared/db/tree";
import { ok, type Result } from "../../../src/shared/errors";
import type { Me } from "../../../src/shared/schemas/auth";
import type { Node, NodePage, NodeWithPath } from "../../../src/shared/schemas/nodes";
import type { Caller } from "../env";
import { decodeCursor, pageOf } from "./cursors";
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
	// One round trip: both reads in one batch.
	const [found, path] = await db.$client.batch([findNodeStatement(db, userId, id), ancestryStatement(db, userId, id)]);
	const [first] = (found?.results ?? []) as Record<string, unknown>[];
	const node = first ? readNode(first) : null;
	if (!node) return notFound("node");
	const chain = readAncestry((path?.results ?? []) as AncestryRow[]);
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
	// One round trip: the folder and its page in one batch.
	const [found, listed] = await db.$client.batch([
		findNodeStatement(db, userId, folderId),
		listChildrenStatement(db, userId, folderId, limit + 1, after.value?.k ?? null),
	]);
	const [first] = (found?.results ?? []) as Record<string, unknown>[];
	const folder = first ? readNode(first) : null;
	// A mount's children are its owner's (access.ts lists them there).
	if (!folder || folder.type !== "folder" || folder.mountShareId !== null) return notFound("folder");
	const rows = ((listed?.results ?? []) as Record<string, unknown>[]).flatMap((r) => readNode(r) ?? []);
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

function page(rows: NodeRow[], limit: number, cursorOf: (last: NodeRow) => unknown): NodePage {
	return pageOf(rows, limit, toNode, cursorOf);
}

const STORED_USAGE = "SELECT version_bytes, nodes FROM user_usage WHERE user_id = ?1";
const USAGE_REPORT = `SELECT
	COALESCE((SELECT version_bytes FROM user_usage WHERE user_id = ?1), 0) AS stored,
	COALESCE((SELECT nodes FROM user_usage WHERE user_id = ?1), 0) AS nodes,
	(SELECT COALESCE(SUM(size), 0) FROM uploads WHERE user_id = ?1 AND committed_version_id IS NULL
		AND cancelled_at IS NULL AND expires_at > ?2) AS reserved,
	(SELECT COALESCE(SUM(v.size), 0) FROM nodes n JOIN versions v ON v.node_id = n.id
		WHERE n.user_id = ?1 AND n.trashed_at IS NULL AND v.id != n.head_version_id) AS history,
	(SELECT COALESCE(SUM(v.size), 0) FROM nodes n JOIN versions v ON v.node_id = n.id
		WHERE n.user_id = ?1 AND n.trashed_at IS NOT NULL) AS trash`;

/** What the user stores, as their hub keeps it: bytes of every retained version (trash included) and nodes. */
export async function storedUsage(db: ShardDb, userId: string): Promise<{ versionBytes: number; nodes: number }> {
	return readStoredUsage((await storedUsageStatement(db, userId).all<StoredUsageRow>()).results);
}

type StoredUsageRow = { version_bytes: number; nodes: number };

/** The statement of {@link storedUsage}, for a batch; read its rows with {@link readStoredUsage}. */
export function storedUsageStatement(db: ShardDb, userId: string): D1PreparedStatement {
	return db.$client.prepare(STORED_USAGE).bind(userId);
}

export function readStoredUsage(rows: StoredUsageRow[]): { versionBytes: number; nodes: number } {
	return { versionBytes: rows[0]?.version_bytes ?? 0, nodes: rows[0]?.nodes ?? 0 };
}

/** GET /v1/me's usage: what is stored, and what open uploads hold against the quota, in one read. */
export async function usageReport(db: ShardDb, userId: string, quotaBytes: number): Promise<Me["usage"]> {
	const row = await db.$client
		.prepare(USAGE_REPORT)
		.bind(userId, new Date().toISOString())
		.first<{ stored: number; nodes: number; reserved: number; history: number; trash: number }>();
	const stored = row?.stored ?? 0;
	const history = row?.history ?? 0;
	const trash = row?.trash ?? 0;
	return {
		bytes_used: stored,
		quota_bytes: quotaBytes,
		reserved_bytes: row?.reserved ?? 0,
		nodes: row?.nodes ?? 0,
		// The current versions of live files are what the other two leave, so the three always add up to bytes_used.
		files_bytes: stored - history - trash,
		versions_bytes: history,
		trash_bytes: trash,
	};
}
