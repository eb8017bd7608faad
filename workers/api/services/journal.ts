/** Reading and pruning the change journal in a user's shard. */
import { and, asc, eq, gt, sql } from "drizzle-orm";
import { runBatch } from "../../../src/shared/db/batch";
import { MOVED_DETAIL } from "../../../src/shared/db/moved";
import { changes } from "../../../src/shared/db/schema";
import type { ShardDb } from "../../../src/shared/db/shards";
import { fail, ok, type Result } from "../../../src/shared/errors";
import { decodeJournalCursor, encodeJournalCursor } from "../../../src/shared/journal";
import type { ChangeEntry, ChangeReason, ChangesPage } from "../../../src/shared/schemas/sync";

/**
 * The journal's extent: the newest seq and the highest seq pruned away; and
 * whether the user moved out of this shard (its journal is a frozen copy then).
 */
export async function journalBounds(db: ShardDb, userId: string): Promise<{ latest: number; prunedThrough: number; moved: boolean }> {
	const rows = await db.all<{ latest: number; pruned: number; moved: number }>(sql`
		SELECT
			(SELECT COALESCE(MAX(seq), 0) FROM changes WHERE user_id = ${userId}) AS latest,
			(SELECT COALESCE(MAX(pruned_through), 0) FROM journal_state WHERE user_id = ${userId}) AS pruned,
			EXISTS (SELECT 1 FROM moved_users WHERE user_id = ${userId}) AS moved`);
	const prunedThrough = rows[0]?.pruned ?? 0;
	// Everything may have been pruned: the journal still ends where it ended.
	return { latest: Math.max(rows[0]?.latest ?? 0, prunedThrough), prunedThrough, moved: rows[0]?.moved === 1 };
}

/**
 * Resolves a client cursor to a seq. No cursor means "from the beginning",
 * which only exists while nothing has been pruned. A cursor of another user,
 * from before the retained journal, or from beyond its end (say, after a
 * restore from backup) answers CURSOR_RESET: the client must list again.
 */
export async function resolveCursor(
	db: ShardDb,
	userId: string,
	cursor: string | undefined,
): Promise<Result<{ seq: number; latest: number }>> {
	const bounds = await journalBounds(db, userId);
	// A device reading a frozen copy would miss (or, ahead of it, reset over) what the new shard has (docs/decisions/0034).
	if (bounds.moved) return fail("UNAVAILABLE", "the account moved to another database; send the request again", [MOVED_DETAIL]);
	const reset = (why: string) =>
		fail("CURSOR_RESET", `${why}; list the tree again from GET /v1/changes/latest (see docs/api.md, "Sync")`, [
			{ latest_seq: bounds.latest },
		]);
	if (cursor === undefined) {
		if (bounds.prunedThrough > 0) return reset("the start of the journal has expired");
		return ok({ seq: 0, latest: bounds.latest });
	}
	const position = decodeJournalCursor(cursor);
	if (position === null) return fail("INVALID_REQUEST", "cursor is not a journal cursor", [{ field: "cursor" }]);
	if (position.userId !== userId) return reset("the cursor belongs to another account");
	if (position.seq < bounds.prunedThrough) return reset("the cursor is older than the retained journal");
	if (position.seq > bounds.latest) return reset("the cursor is ahead of the journal");
	return ok({ seq: position.seq, latest: bounds.latest });
}

/** The page of changes after `cursor` (the beginning without one), oldest first, with the cursor to continue from. */
export async function changesPage(db: ShardDb, userId: string, cursor: string | undefined, limit: number): Promise<Result<ChangesPage>> {
	const from = await resolveCursor(db, userId, cursor);
	if (!from.ok) return from;
	const rows = await readChanges(db, userId, from.value.seq, limit + 1);
	const entries = rows.slice(0, limit);
	const seq = entries.at(-1)?.seq ?? from.value.seq;
	return ok({ entries, cursor: encodeJournalCursor({ userId, seq }), has_more: rows.length > limit });
}

/** The cursor of the user's newest change. */
export async function latestCursor(db: ShardDb, userId: string): Promise<string> {
	const { latest } = await journalBounds(db, userId);
	return encodeJournalCursor({ userId, seq: latest });
}

/** Up to `limit` entries after `afterSeq`, oldest first. */
export async function readChanges(db: ShardDb, userId: string, afterSeq: number, limit: number): Promise<ChangeEntry[]> {
	const rows = await db
		.select()
		.from(changes)
		.where(and(eq(changes.userId, userId), gt(changes.seq, afterSeq)))
		.orderBy(asc(changes.seq))
		.limit(limit);
	return rows.map((r) => ({
		seq: r.seq,
		kind: r.kind,
		node: JSON.parse(r.node) as ChangeEntry["node"],
		created_at: r.createdAt,
		...(r.reason ? { reason: r.reason as ChangeReason } : {}),
	}));
}

/**
 * Drops journal entries older than `cutoff` from one shard, remembering per
 * user how far it pruned so that older cursors are reset rather than
 * silently skipping changes. A user who moved away is left to the move's
 * cleanup: the fence refuses writes of their rows (docs/decisions/0034).
 */
export async function pruneJournal(db: ShardDb, cutoff: string): Promise<void> {
	await runBatch(db.$client, [
		db.run(sql`INSERT INTO journal_state (user_id, pruned_through)
			SELECT user_id, MAX(seq) FROM changes WHERE created_at < ${cutoff}
				AND user_id NOT IN (SELECT user_id FROM moved_users) GROUP BY user_id
			ON CONFLICT (user_id) DO UPDATE SET pruned_through = MAX(pruned_through, excluded.pruned_through)`),
		db.delete(changes).where(sql`${changes.createdAt} < ${cutoff}`),
	]);
}
