/**
 * Reads of the conflicted-copy list: the caller's own copies, and the copies
 * the caller made in trees shared with them (docs/api.md, "Commits and
 * conflicts").
 */
import { and, desc, eq, isNotNull, isNull, lt, or } from "drizzle-orm";
import { z } from "zod";
import { inList } from "../../../src/shared/db/lists";
import { toNode } from "../../../src/shared/db/mappers";
import { nodes, type NodeRow } from "../../../src/shared/db/schema";
import type { ShardDb } from "../../../src/shared/db/shards";
import { Columns } from "../../../src/shared/db/static";
import { findNode } from "../../../src/shared/db/tree";
import { ok, type Result } from "../../../src/shared/errors";
import { MAX_FOLDER_DEPTH } from "../../../src/shared/limits";
import type { ConflictPage } from "../../../src/shared/schemas/sync";
import type { Caller } from "../env";
import { asSeen, incomingShares, ownerScope, type Incoming, type MemberView } from "./access";
import { decodeCursor, encodeCursor } from "./cursors";
import { shardFor } from "./hub";

const ConflictsCursor = z.object({ t: z.string(), i: z.string() });

type Position = { createdAt: string; id: string } | null;

interface Listed {
	copy: NodeRow;
	original: NodeRow | null;
	/** How the caller sees a copy in someone else's tree; null for their own. */
	view: MemberView | null;
}

/**
 * One page of unresolved conflicted copies, newest first, each with the file
 * it lost against: the caller's own, merged by (created_at, id) with those
 * the caller authored in trees shared with them, so one cursor pages through
 * both. A shared copy appears as the caller sees it (under their mount).
 */
export async function conflictPage(env: Env, caller: Caller, limit: number, cursor?: string): Promise<Result<ConflictPage>> {
	const after = cursor === undefined ? ok(null) : decodeCursor(cursor, ConflictsCursor);
	if (!after.ok) return after;
	const position = after.value === null ? null : { createdAt: after.value.t, id: after.value.i };
	const own = (await listOpenConflicts(shardFor(env, caller), caller.userId, limit + 1, position)).map((r) => ({ ...r, view: null }));
	const rows = [...own, ...(await authoredElsewhere(env, caller, limit + 1, position))]
		.sort((a, b) => newerFirst(a.copy, b.copy))
		.slice(0, limit + 1);
	const page = rows.slice(0, limit);
	const last = page.at(-1);
	return ok({
		items: page.map((r) => {
			const seen = { view: r.view };
			return { node: asSeen(seen, toNode(r.copy)), conflicts_with: r.original ? asSeen(seen, toNode(r.original)) : null };
		}),
		next_cursor: rows.length > limit && last ? encodeCursor({ t: last.copy.createdAt, i: last.copy.id }) : null,
	});
}

function newerFirst(a: NodeRow, b: NodeRow): number {
	if (a.createdAt !== b.createdAt) return a.createdAt < b.createdAt ? 1 : -1;
	return a.id < b.id ? 1 : a.id > b.id ? -1 : 0;
}

const NODE_COLUMNS = new Columns(nodes);

// Live, unresolved copies in ?1's tree whose head version ?2 wrote, under a share ?2 is still a member of, with those shares' ids.
const AUTHORED_COPIES = `WITH RECURSIVE copies AS (
		SELECT n.* FROM nodes n JOIN versions v ON v.id = n.head_version_id
		WHERE n.user_id = ?1 AND n.conflict_of IS NOT NULL AND n.trashed_at IS NULL AND v.author_id = ?2
			AND (?3 IS NULL OR n.created_at < ?3 OR (n.created_at = ?3 AND n.id < ?4))
	),
	chain(copy_id, id, parent_id, depth) AS (
		SELECT id, id, parent_id, 0 FROM copies
		UNION ALL
		SELECT chain.copy_id, n.id, n.parent_id, chain.depth + 1 FROM nodes n JOIN chain ON n.id = chain.parent_id
		WHERE n.user_id = ?1 AND chain.depth <= ${MAX_FOLDER_DEPTH}
	)
	SELECT ${NODE_COLUMNS.list("c")}, json_group_array(s.id) AS share_ids
	FROM copies c JOIN chain ON chain.copy_id = c.id
	JOIN shares s ON s.owner_id = ?1 AND s.node_id = chain.id
	JOIN share_members m ON m.share_id = s.id AND m.member_id = ?2 AND m.removed_at IS NULL
	GROUP BY c.user_id, c.id ORDER BY c.created_at DESC, c.id DESC LIMIT ?5`;

/**
 * Copies the caller made in other owners' trees, up to `limit` per owner:
 * one query on each sharing owner's shard (the owner's rows are the truth),
 * each copy with the view of the share it is reached through.
 */
async function authoredElsewhere(env: Env, caller: Caller, limit: number, after: Position): Promise<Listed[]> {
	const incoming = await incomingShares(env, caller);
	const listed: Listed[] = [];
	for (const ownerId of new Set(incoming.map((i) => i.owner_id))) {
		const owner = await ownerScope(env, caller, ownerId);
		if (!owner) continue;
		const db = shardFor(env, owner);
		const raw = await db.$client
			.prepare(AUTHORED_COPIES)
			.bind(ownerId, caller.userId, after?.createdAt ?? null, after?.id ?? null, limit)
			.raw();
		const found = raw.flatMap((values) => {
			const copy = NODE_COLUMNS.read(values);
			const shareIds = JSON.parse(String(values[NODE_COLUMNS.count])) as string[];
			return copy ? [{ copy, shareIds }] : [];
		});
		const originals = await originalsOf(
			db,
			ownerId,
			found.map((f) => f.copy),
		);
		for (const { copy, shareIds } of found) {
			listed.push({
				copy,
				original: copy.conflictOf === null ? null : (originals.get(copy.conflictOf) ?? null),
				view: await viewThrough(env, caller, incoming, shareIds),
			});
		}
	}
	return listed;
}

/** The member's view of the share a node is reached through: one they have mounted, if any (like access.ts does). */
async function viewThrough(env: Env, caller: Caller, incoming: Incoming[], shareIds: string[]): Promise<MemberView | null> {
	const mine = incoming.filter((i) => shareIds.includes(i.share_id));
	const chosen = mine.find((i) => i.mount_id !== null) ?? mine[0];
	if (!chosen) return null;
	const mount = chosen.mount_id === null ? null : await findNode(shardFor(env, caller), caller.userId, chosen.mount_id);
	return { shareId: chosen.share_id, rootId: chosen.root_id, mount };
}

/** Unresolved, live conflicted copies, newest first, each with its original (null if that is gone). */
async function listOpenConflicts(
	db: ShardDb,
	userId: string,
	limit: number,
	after: { createdAt: string; id: string } | null,
): Promise<{ copy: NodeRow; original: NodeRow | null }[]> {
	const copies = await db
		.select()
		.from(nodes)
		.where(
			and(
				eq(nodes.userId, userId),
				isNotNull(nodes.conflictOf),
				isNull(nodes.trashedAt),
				after === null
					? undefined
					: or(lt(nodes.createdAt, after.createdAt), and(eq(nodes.createdAt, after.createdAt), lt(nodes.id, after.id))),
			),
		)
		.orderBy(desc(nodes.createdAt), desc(nodes.id))
		.limit(limit);
	const byId = await originalsOf(db, userId, copies);
	return copies.map((copy) => ({ copy, original: copy.conflictOf === null ? null : (byId.get(copy.conflictOf) ?? null) }));
}

/** The files `copies` conflict with, by id, in one query. */
async function originalsOf(db: ShardDb, userId: string, copies: NodeRow[]): Promise<Map<string, NodeRow>> {
	const ids = [...new Set(copies.map((c) => c.conflictOf).filter((id): id is string => id !== null))];
	if (ids.length === 0) return new Map();
	const originals = await db
		.select()
		.from(nodes)
		.where(and(eq(nodes.userId, userId), inList(nodes.id, ids)));
	return new Map(originals.map((o) => [o.id, o]));
}
