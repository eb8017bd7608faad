/**
 * Deleting forever in the background (docs/decisions/0027): a purge first
 * marks its trashed item, which hides it from the trash and makes it
 * unrestorable, and answers at once; the hub then deletes it chunk by chunk
 * in its queue, the item itself last with a `deleted` journal entry. The
 * mark lives in D1, so a purge cut short by a crash resumes from it.
 */
import { sql } from "drizzle-orm";
import { notFound } from "../../src/shared/commit/failures";
import { runBatch } from "../../src/shared/db/batch";
import { inList } from "../../src/shared/db/lists";
import { toNode } from "../../src/shared/db/mappers";
import type { NodeRow } from "../../src/shared/db/schema";
import { findNode } from "../../src/shared/db/tree";
import { fail, ok, type Result } from "../../src/shared/errors";
import type { NodeOutcome } from "./contract";
import type { Tree } from "./tree-ops";
import { releaseVersions } from "./version-ops";

/** Nodes deleted per D1 batch while purging: each batch stays small, whatever the size of the tree. */
export const PURGE_NODES_PER_BATCH = 200;

/**
 * Starts deleting forever an item listed in the trash, with everything
 * trashed together with it. Marking it again changes nothing.
 */
export async function startPurge(tree: Tree, input: { nodeId: string; now?: string }): Promise<Result<NodeOutcome>> {
	const { db, userId } = tree;
	const root = await findNode(db, userId, input.nodeId);
	if (!root) return notFound("node");
	if (root.trashedAt === null || root.trashRootId !== root.id)
		return fail("INVALID_REQUEST", "only an item listed in the trash can be deleted forever; move it to the trash first", [
			{ field: "id" },
		]);
	if (root.purgeStartedAt !== null) return ok({ node: toNode(root) });
	const now = input.now ?? new Date().toISOString();
	await db.run(sql`UPDATE nodes SET purge_started_at = ${now} WHERE user_id = ${userId} AND id = ${root.id} AND purge_started_at IS NULL`);
	return ok({ node: toNode({ ...root, purgeStartedAt: now }) });
}

/** Starts deleting forever every item in the trash (one statement); returns how many it marked. */
export async function startEmptyTrash(tree: Tree): Promise<Result<{ deleted: number }>> {
	const now = new Date().toISOString();
	const marked = await tree.db.run(
		sql`UPDATE nodes SET purge_started_at = ${now} WHERE user_id = ${tree.userId} AND trash_root_id = id AND purge_started_at IS NULL`,
	);
	return ok({ deleted: marked.meta.changes });
}

/**
 * Runs one chunk of the oldest purge under way: up to
 * PURGE_NODES_PER_BATCH nodes inside the item, or, once none is left, the
 * item itself with its `deleted` entry. Returns false when no purge is left.
 */
export async function purgeChunk(tree: Tree): Promise<boolean> {
	const { db, userId } = tree;
	const [root] = await db.all<{ id: string }>(
		sql`SELECT id FROM nodes WHERE user_id = ${userId} AND purge_started_at IS NOT NULL AND trash_root_id = id ORDER BY purge_started_at, id LIMIT 1`,
	);
	if (!root) return false;
	const inside = await db.all<{ id: string }>(
		sql`SELECT id FROM nodes WHERE trash_root_id = ${root.id} AND user_id = ${userId} AND id != ${root.id} LIMIT ${PURGE_NODES_PER_BATCH}`,
	);
	if (inside.length > 0) {
		await purgeBatch(
			tree,
			inside.map((r) => r.id),
			null,
		);
		return true;
	}
	const row = await findNode(db, userId, root.id);
	if (row) await purgeBatch(tree, [row.id], row);
	return true;
}

/** Whether a purge is under way (marked and not finished). */
export async function purgePending(tree: Tree): Promise<boolean> {
	const [row] = await tree.db.all<{ id: string }>(
		sql`SELECT id FROM nodes WHERE user_id = ${tree.userId} AND purge_started_at IS NOT NULL LIMIT 1`,
	);
	return row !== undefined;
}

/** Deletes the nodes `ids` (all trashed) with their versions; with `journalled`, the batch also journals its deletion. */
async function purgeBatch(tree: Tree, ids: string[], journalled: NodeRow | null): Promise<void> {
	const { db, userId } = tree;
	const { bytes, statements } = await releaseVersions(tree, inList(sql`node_id`, ids));
	statements.push(db.run(sql`DELETE FROM nodes WHERE user_id = ${userId} AND ${inList(sql`id`, ids)}`));
	const all = [...statements, tree.usage.change(-bytes, -ids.length)];
	try {
		if (journalled) await tree.journal.apply(all, "deleted", journalled);
		else await runBatch(db.$client, all);
	} catch (err) {
		tree.usage.forget();
		throw err;
	}
	tree.usage.landed(-bytes, -ids.length);
}
