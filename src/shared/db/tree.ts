/**
 * Reads of a user's tree in their shard, used by the api worker (listings,
 * paths) and by the UserHub (checks before a commit). Every query is scoped by
 * user_id: a node of another user is indistinguishable from a missing one.
 */
import { and, asc, desc, eq, gte, isNull, lt, or, sql } from "drizzle-orm";
import type { TargetView } from "../commit/plan";
import type { BlockRef } from "./mappers";
import { nodes, versionBlocks, versions, type NodeRow, type VersionRow } from "./schema";
import type { ShardDb } from "./shards";
import { Columns } from "./static";
import { MAX_FOLDER_DEPTH } from "../limits";

// The reads every request makes are static SQL (static.ts explains why).
const NODE = new Columns(nodes);
const FIND_NODE = `SELECT ${NODE.list("n")} FROM nodes n WHERE n.user_id = ?1 AND n.id = ?2 LIMIT 1`;
const FIND_LIVE_CHILD = `SELECT ${NODE.list("n")} FROM nodes n
	WHERE n.user_id = ?1 AND n.parent_id = ?2 AND n.name_key = ?3 AND n.trashed_at IS NULL LIMIT 1`;
const LOAD_TARGET = `SELECT ${NODE.list("p", "p_")}, ${NODE.list("c", "c_")}, ${NODE.list("e", "e_")} FROM nodes p
	LEFT JOIN nodes c ON c.user_id = p.user_id AND c.parent_id = p.id AND c.name_key = ?3 AND c.trashed_at IS NULL
	LEFT JOIN versions v ON v.user_id = p.user_id AND v.id = ?4
	LEFT JOIN nodes e ON e.user_id = p.user_id AND e.id = v.node_id AND e.type = 'file'
	WHERE p.user_id = ?1 AND p.id = ?2 LIMIT 1`;
/** ?1 user, ?2 JSON [[parent id, name key, base version id or ""], …]: LOAD_TARGET for many commits, one row each, `idx` their position. */
const LOAD_TARGETS = `WITH t(idx, parent_id, name_key, base) AS (
		SELECT key, json_extract(value, '$[0]'), json_extract(value, '$[1]'), json_extract(value, '$[2]') FROM json_each(?2))
	SELECT t.idx AS idx, ${NODE.list("p", "p_")}, ${NODE.list("c", "c_")}, ${NODE.list("e", "e_")} FROM t
	LEFT JOIN nodes p ON p.user_id = ?1 AND p.id = t.parent_id
	LEFT JOIN nodes c ON c.user_id = ?1 AND c.parent_id = p.id AND c.name_key = t.name_key AND c.trashed_at IS NULL
	LEFT JOIN versions v ON v.user_id = ?1 AND v.id = t.base
	LEFT JOIN nodes e ON e.user_id = ?1 AND e.id = v.node_id AND e.type = 'file'`;
// name_key is unique among live siblings, so it alone is a stable keyset cursor. Two
// statements, not `?3 IS NULL OR …`: a later page must seek in the index, not scan from the first child.
const LIST_CHILDREN = `SELECT ${NODE.list("n")} FROM nodes n
	WHERE n.user_id = ?1 AND n.parent_id = ?2 AND n.trashed_at IS NULL ORDER BY n.name_key LIMIT ?3`;
const LIST_CHILDREN_AFTER = `SELECT ${NODE.list("n")} FROM nodes n
	WHERE n.user_id = ?1 AND n.parent_id = ?2 AND n.trashed_at IS NULL AND n.name_key > ?4 ORDER BY n.name_key LIMIT ?3`;
const ANCESTRY = `WITH RECURSIVE chain(id, name, parent_id, trashed, depth) AS (
		SELECT id, name, parent_id, trashed_at IS NOT NULL, 0 FROM nodes WHERE user_id = ?1 AND id = ?2
		UNION ALL
		SELECT n.id, n.name, n.parent_id, n.trashed_at IS NOT NULL, chain.depth + 1
		FROM nodes n JOIN chain ON n.id = chain.parent_id
		WHERE n.user_id = ?1 AND chain.depth <= ${MAX_FOLDER_DEPTH}
	)
	SELECT id, name, parent_id, trashed FROM chain ORDER BY depth DESC`;

/** The statement of {@link findNode}, for a batch. */
export function findNodeStatement(db: ShardDb, userId: string, id: string): D1PreparedStatement {
	return db.$client.prepare(FIND_NODE).bind(userId, id);
}

/** The node of a {@link findNodeStatement} or {@link listChildrenStatement} row, as a D1 batch returns it. */
export function readNode(values: Record<string, unknown>): NodeRow | null {
	return NODE.readNamed(values);
}

/** The node, trashed or not, or null when the user has no such node. */
export async function findNode(db: ShardDb, userId: string, id: string): Promise<NodeRow | null> {
	const [row] = await findNodeStatement(db, userId, id).raw();
	return row ? NODE.read(row) : null;
}

/** The user's root folder, or null before it exists. */
export async function findRoot(db: ShardDb, userId: string): Promise<NodeRow | null> {
	const rows = await db
		.select()
		.from(nodes)
		.where(and(eq(nodes.userId, userId), isNull(nodes.parentId)))
		.limit(1);
	return rows[0] ?? null;
}

/** The live child of `parentId` whose folded name is `key`. */
export async function findLiveChild(db: ShardDb, userId: string, parentId: string, key: string): Promise<NodeRow | null> {
	const [row] = await db.$client.prepare(FIND_LIVE_CHILD).bind(userId, parentId, key).raw();
	return row ? NODE.read(row) : null;
}

/**
 * What a commit of content into `parentId` at name `key` needs to know
 * (commit/plan.ts): the folder, what lives at the name, and for an edit the
 * file of its base version, in one query. Only an edit into a folder that is
 * in the trash costs more: the way up to the nearest live folder.
 */
export async function loadTarget(
	db: ShardDb,
	userId: string,
	parentId: string,
	key: string,
	baseVersionId: string | null,
): Promise<TargetView> {
	const { results } = await loadTargetStatement(db, userId, parentId, key, baseVersionId).all<Record<string, unknown>>();
	return readTarget(db, userId, key, baseVersionId, results[0]);
}

/**
 * {@link loadTarget} for many commits in one query (POST /v1/files/batch):
 * the list travels as one JSON parameter (lists.ts), so a batch's targets
 * cost one round trip, plus the rare edit into a folder in the trash.
 */
export async function loadTargets(
	db: ShardDb,
	userId: string,
	targets: readonly { parentId: string; key: string; baseVersionId: string | null }[],
): Promise<TargetView[]> {
	if (targets.length === 0) return [];
	const list = JSON.stringify(targets.map((t) => [t.parentId, t.key, t.baseVersionId ?? ""]));
	const { results } = await db.$client.prepare(LOAD_TARGETS).bind(userId, list).all<Record<string, unknown>>();
	const rows = new Map(results.map((row) => [Number(row.idx), row]));
	return Promise.all(targets.map((t, i) => readTarget(db, userId, t.key, t.baseVersionId, rows.get(i))));
}

/** The statement of {@link loadTarget}, for a batch; read its first row with {@link readTarget}. */
export function loadTargetStatement(
	db: ShardDb,
	userId: string,
	parentId: string,
	key: string,
	baseVersionId: string | null,
): D1PreparedStatement {
	return db.$client.prepare(LOAD_TARGET).bind(userId, parentId, key, baseVersionId ?? "");
}

/** The view from {@link loadTargetStatement}'s row (undefined when the folder does not exist). */
export async function readTarget(
	db: ShardDb,
	userId: string,
	key: string,
	baseVersionId: string | null,
	row: Record<string, unknown> | undefined,
): Promise<TargetView> {
	const parent = row ? NODE.readNamed(row, "p_") : null;
	let refuge: TargetView["refuge"] = null;
	if (parent?.type === "folder" && parent.trashedAt !== null && baseVersionId !== null) {
		const folder = await nearestLiveFolder(db, userId, parent.id);
		if (folder) refuge = { folder, child: await findLiveChild(db, userId, folder.id, key) };
	}
	const child = row ? NODE.readNamed(row, "c_") : null;
	const edited = row ? NODE.readNamed(row, "e_") : null;
	return { parent, child, edited, refuge };
}

/** The deepest folder on the way from the root down to `id` that is not in the trash. */
async function nearestLiveFolder(db: ShardDb, userId: string, id: string): Promise<NodeRow | null> {
	let refuge: string | null = null;
	for (const link of await ancestry(db, userId, id)) {
		if (link.trashed) break;
		refuge = link.id;
	}
	const folder = refuge === null ? null : await findNode(db, userId, refuge);
	return folder?.type === "folder" ? folder : null;
}

/**
 * The file a version belongs to, wherever it is now and whether or not it is
 * in the trash; null for an unknown version. Edits follow their file
 * (docs/decisions/0009), so commits look up the file of their base version.
 */
export async function findFileOfVersion(db: ShardDb, userId: string, versionId: string): Promise<NodeRow | null> {
	const version = await findVersion(db, userId, versionId);
	const file = version ? await findNode(db, userId, version.nodeId) : null;
	return file?.type === "file" ? file : null;
}

/**
 * The chain from the root down to `id` itself, in order; empty if there is
 * no such node. It stops after MAX_FOLDER_DEPTH levels, so even a cycle
 * (which the hub's serialized moves never make) could not loop the query.
 */
export async function ancestry(
	db: ShardDb,
	userId: string,
	id: string,
): Promise<{ id: string; name: string; parentId: string | null; trashed: boolean }[]> {
	// One recursive query instead of a round trip per level.
	return readAncestry((await ancestryStatement(db, userId, id).all<AncestryRow>()).results);
}

export interface AncestryRow {
	id: string;
	name: string;
	parent_id: string | null;
	trashed: number;
}

/** The statement of {@link ancestry}, for a batch; read its rows with {@link readAncestry}. */
export function ancestryStatement(db: ShardDb, userId: string, id: string): D1PreparedStatement {
	return db.$client.prepare(ANCESTRY).bind(userId, id);
}

export function readAncestry(rows: AncestryRow[]): { id: string; name: string; parentId: string | null; trashed: boolean }[] {
	return rows.map((r) => ({ id: r.id, name: r.name, parentId: r.parent_id, trashed: r.trashed === 1 }));
}

/** How many levels of folders lie below folder `id` (0 for an empty folder or a file), counting at most MAX_FOLDER_DEPTH. */
export async function subtreeHeight(db: ShardDb, userId: string, id: string): Promise<number> {
	const [row] = await db.all<{ height: number }>(sql`
		WITH RECURSIVE below(id, depth) AS (
			SELECT ${id}, 0
			UNION ALL
			SELECT n.id, below.depth + 1 FROM nodes n JOIN below ON n.parent_id = below.id
			WHERE n.user_id = ${userId} AND n.type = 'folder' AND below.depth < ${MAX_FOLDER_DEPTH}
		)
		SELECT MAX(depth) AS height FROM below`);
	return row?.height ?? 0;
}

/** One page of a folder's live children by name, after `afterKey` (null for the first page), as a statement for a batch; read its rows with {@link readNode}. */
export function listChildrenStatement(
	db: ShardDb,
	userId: string,
	parentId: string,
	limit: number,
	afterKey: string | null,
): D1PreparedStatement {
	if (afterKey === null) return db.$client.prepare(LIST_CHILDREN).bind(userId, parentId, limit);
	return db.$client.prepare(LIST_CHILDREN_AFTER).bind(userId, parentId, limit, afterKey);
}

/** One page of the trash: the nodes the user deleted, newest first. */
export async function listTrash(
	db: ShardDb,
	userId: string,
	limit: number,
	after: { trashedAt: string; id: string } | null,
): Promise<NodeRow[]> {
	return db
		.select()
		.from(nodes)
		.where(
			and(
				eq(nodes.userId, userId),
				sql`${nodes.trashRootId} = ${nodes.id}`,
				isNull(nodes.purgeStartedAt),
				after === null
					? undefined
					: or(lt(nodes.trashedAt, after.trashedAt), and(eq(nodes.trashedAt, after.trashedAt), lt(nodes.id, after.id))),
			),
		)
		.orderBy(desc(nodes.trashedAt), desc(nodes.id))
		.limit(limit);
}

/** A version of one of the user's files. */
export async function findVersion(db: ShardDb, userId: string, versionId: string): Promise<VersionRow | null> {
	const rows = await db
		.select()
		.from(versions)
		.where(and(eq(versions.userId, userId), eq(versions.id, versionId)))
		.limit(1);
	return rows[0] ?? null;
}

/** The blocks of a version that overlap bytes [start, end] (inclusive), in file order. */
export async function blocksInRange(db: ShardDb, versionId: string, start: number, end: number): Promise<BlockRef[]> {
	// The primary key (version_id, offset) serves "offset <= end"; the block
	// holding `start` may begin before it, hence the size test.
	return db
		.select({ offset: versionBlocks.offset, size: versionBlocks.size, hash: versionBlocks.hash })
		.from(versionBlocks)
		.where(
			and(
				eq(versionBlocks.versionId, versionId),
				sql`${versionBlocks.offset} <= ${end}`,
				sql`${versionBlocks.offset} + ${versionBlocks.size} > ${start}`,
			),
		)
		.orderBy(asc(versionBlocks.offset));
}

/** Up to `limit` blocks of a version that start at or after byte `from`, in file order (one range of the primary key). */
export async function blocksFrom(db: ShardDb, versionId: string, from: number, limit: number): Promise<BlockRef[]> {
	return db
		.select({ offset: versionBlocks.offset, size: versionBlocks.size, hash: versionBlocks.hash })
		.from(versionBlocks)
		.where(and(eq(versionBlocks.versionId, versionId), gte(versionBlocks.offset, from)))
		.orderBy(asc(versionBlocks.offset))
		.limit(limit);
}

/** Whether block `hash` is part of a version (the hash index finds the few versions holding it). */
export async function versionHasBlock(db: ShardDb, versionId: string, hash: string): Promise<boolean> {
	const rows = await db
		.select({ size: versionBlocks.size })
		.from(versionBlocks)
		.where(and(eq(versionBlocks.hash, hash), eq(versionBlocks.versionId, versionId)))
		.limit(1);
	return rows.length > 0;
}
