/**
 * Deleting forever in the background (docs/decisions/0027): a purge first
 * marks its trashed item, which hides it from the trash and makes it
 * unrestorable, and answers at once; the hub then deletes it chunk by chunk
 * in its queue, the item itself last with a `deleted` journal entry. The
 * mark lives in D1, so a purge cut short by a crash resumes from it.
 */
import { sql } from "drizzle-orm";
import type { ActivityActor } from "../../src/shared/activity";
import { notFound } from "../../src/shared/commit/failures";
import { runBatch } from "../../src/shared/db/batch";
import { inList } from "../../src/shared/db/lists";
import { toNode } from "../../src/shared/db/mappers";
import type { NodeRow } from "../../src/shared/db/schema";
import { findNode, findRoot } from "../../src/shared/db/tree";
import { fail, ok, type Result } from "../../src/shared/errors";
import type { NodeOutcome } from "./contract";
import type { Tree } from "./tree-ops";
import { deleteShare } from "./share-ops";
import { releaseVersions } from "./version-ops";

/** What a purge step left: more chunks, nothing, or the outbox to deliver (outside the queue) before the account's last rows. */
export type PurgeStep = "more" | "done" | "deliver";

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
 * item itself with its `deleted` entry. The root folder is last of an
 * account's purge: `accountGone` then forgets the account in the directory,
 * before its last rows go, once the members of its ended shares heard of it.
 */
export async function purgeChunk(tree: Tree, accountGone: () => Promise<void>): Promise<PurgeStep> {
	const { db, userId } = tree;
	const [root] = await db.all<{ id: string; parent_id: string | null }>(
		sql`SELECT id, parent_id FROM nodes WHERE user_id = ${userId} AND purge_started_at IS NOT NULL AND trash_root_id = id ORDER BY purge_started_at, id LIMIT 1`,
	);
	if (!root) return "done";
	const inside = await db.all<{ id: string }>(
		sql`SELECT id FROM nodes WHERE trash_root_id = ${root.id} AND user_id = ${userId} AND id != ${root.id} LIMIT ${PURGE_NODES_PER_BATCH}`,
	);
	if (inside.length > 0) {
		await purgeBatch(
			tree,
			inside.map((r) => r.id),
			null,
		);
		return "more";
	}
	// The root itself goes only with the account (docs/decisions/0027).
	if (root.parent_id === null) {
		// Members hear that the account's shares ended before its rows go.
		const [undelivered] = await db.all(sql`SELECT 1 FROM share_members WHERE owner_id = ${userId} LIMIT 1`);
		if (undelivered) return "deliver";
		await accountGone();
		await forgetAccount(tree, root.id);
		return "more";
	}
	const row = await findNode(db, userId, root.id);
	if (row) await purgeBatch(tree, [row.id], row);
	return "more";
}

/**
 * Starts deleting the user's whole tree, for account deletion: the shares
 * the user owns end (members hear it through the outbox), then every node
 * joins the root's purge, which runs like any other, the root last. Mounts
 * of other people's shares go with the tree: the api has already taken the
 * user out of those shares.
 */
export async function startAccountPurge(tree: Tree, actor: ActivityActor): Promise<Result<void>> {
	const { db, userId } = tree;
	const root = await findRoot(db, userId);
	if (!root || root.purgeStartedAt !== null) return ok(undefined);
	for (const { id } of await db.all<{ id: string }>(sql`SELECT id FROM shares WHERE owner_id = ${userId}`)) {
		const ended = await deleteShare(tree, { shareId: id, actor });
		if (!ended.ok && ended.error.code !== "NOT_FOUND") return ended;
	}
	const now = new Date().toISOString();
	await runBatch(db.$client, [
		db.run(sql`DELETE FROM incoming_shares WHERE user_id = ${userId}`),
		db.run(sql`UPDATE nodes SET trashed_at = COALESCE(trashed_at, ${now}), trash_root_id = ${root.id} WHERE user_id = ${userId}`),
		db.run(sql`UPDATE nodes SET purge_started_at = ${now} WHERE user_id = ${userId} AND id = ${root.id}`),
	]);
	return ok(undefined);
}

/**
 * The rows an account leaves in its shard once its tree is purged: its
 * journal, activity, uploads, totals and webhooks, the root last, so that a crash
 * before the end leaves the root's mark to resume from.
 */
async function forgetAccount(tree: Tree, rootId: string): Promise<void> {
	const { db, userId } = tree;
	const uploads = sql`upload_id IN (SELECT id FROM uploads WHERE user_id = ${userId})`;
	await runBatch(db.$client, [
		// Blocks an open upload received go to the collector, which spares those another user holds.
		db.run(
			sql`INSERT OR IGNORE INTO gc_candidates (hash, enqueued_at) SELECT hash, ${new Date().toISOString()} FROM upload_received WHERE ${uploads}`,
		),
		db.run(sql`DELETE FROM upload_received WHERE ${uploads}`),
		db.run(sql`DELETE FROM upload_blocks WHERE ${uploads}`),
		db.run(sql`DELETE FROM upload_since WHERE ${uploads}`),
		db.run(sql`DELETE FROM uploads WHERE user_id = ${userId}`),
		db.run(sql`DELETE FROM changes WHERE user_id = ${userId}`),
		db.run(sql`DELETE FROM journal_state WHERE user_id = ${userId}`),
		db.run(sql`DELETE FROM activity WHERE user_id = ${userId}`),
		db.run(sql`DELETE FROM user_usage WHERE user_id = ${userId}`),
		db.run(sql`DELETE FROM webhook_attempts WHERE delivery_id IN (SELECT id FROM webhook_deliveries WHERE user_id = ${userId})`),
		db.run(sql`DELETE FROM webhook_deliveries WHERE user_id = ${userId}`),
		db.run(sql`DELETE FROM webhook_endpoints WHERE user_id = ${userId}`),
		// What the ended shares left once their members heard of it.
		db.run(sql`DELETE FROM share_outbox WHERE owner_id = ${userId}`),
		db.run(sql`DELETE FROM share_members WHERE owner_id = ${userId}`),
		db.run(sql`DELETE FROM incoming_shares WHERE user_id = ${userId}`),
		db.run(sql`DELETE FROM nodes WHERE user_id = ${userId} AND id = ${rootId}`),
	]);
	tree.usage.forget();
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
