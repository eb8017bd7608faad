/** Reads of upload sessions and tus uploads, shared by the api worker and the UserHub. */
import { and, eq, sql } from "drizzle-orm";
import { notFound } from "../commit/failures";
import { ok, type Result } from "../errors";
import type { CommitResult } from "../schemas/nodes";
import { toNode, toVersion } from "./mappers";
import { uploads, type UploadRow } from "./schema";
import type { ShardDb } from "./shards";
import { findNode, findVersion } from "./tree";

/** The user's upload, live or not; null when there is none. */
export async function findUpload(db: ShardDb, userId: string, id: string): Promise<UploadRow | null> {
	const rows = await db
		.select()
		.from(uploads)
		.where(and(eq(uploads.userId, userId), eq(uploads.id, id)))
		.limit(1);
	return rows[0] ?? null;
}

/** True while an upload can still receive bytes or be committed. */
export function isLive(upload: UploadRow, now = Date.now()): boolean {
	return upload.cancelledAt === null && Date.parse(upload.expiresAt) > now;
}

/**
 * The distinct hashes of an upload's block list that the service must still
 * receive, in file order. A block counts as present only if this user already
 * references it or sent it for this upload: bandwidth dedup is per user, so
 * nobody learns what anybody else stores (docs/decisions/0008). With
 * `fromIdx`, only blocks from that index of the list on (a part just appended).
 */
export async function missingBlocks(db: ShardDb, userId: string, uploadId: string, fromIdx = 0): Promise<string[]> {
	const rows = await db.all<{ hash: string }>(sql`
		SELECT ub.hash AS hash FROM upload_blocks ub
		WHERE ub.upload_id = ${uploadId} AND ub.idx >= ${fromIdx}
			AND NOT EXISTS (SELECT 1 FROM user_blocks x WHERE x.user_id = ${userId} AND x.hash = ub.hash)
			AND NOT EXISTS (SELECT 1 FROM upload_received r WHERE r.upload_id = ub.upload_id AND r.hash = ub.hash)
		GROUP BY ub.hash
		ORDER BY MIN(ub.idx)`);
	return rows.map((r) => r.hash);
}

/** The sizes the upload's block list declares for `hashes`; hashes not in the list are absent from the map. */
export async function declaredBlockSizes(db: ShardDb, uploadId: string, hashes: readonly string[]): Promise<Map<string, number>> {
	const rows = await db.all<{ hash: string; size: number }>(
		sql`SELECT hash, MIN(size) AS size FROM upload_blocks WHERE upload_id = ${uploadId} AND hash IN (SELECT value FROM json_each(${JSON.stringify(hashes)})) GROUP BY hash`,
	);
	return new Map(rows.map((r) => [r.hash, r.size]));
}

/**
 * What committing an upload answered, read again from the version it wrote:
 * a retry whose first answer was lost gets the same result.
 */
export async function committedOutcome(
	db: ShardDb,
	userId: string,
	versionId: string,
): Promise<Result<CommitResult & { created: boolean }>> {
	const version = await findVersion(db, userId, versionId);
	const node = version ? await findNode(db, userId, version.nodeId) : null;
	if (!version || !node) return notFound("upload");
	// The first answer said whether the commit became a conflicted copy; a
	// replay must say so too, while the copy is still unresolved (audit L1).
	const created = version.parentVersionId === "";
	const conflict = created && node.conflictOf !== null ? { node_id: node.conflictOf, reason: "stale_base" as const } : null;
	return ok({ created, node: toNode(node), version: toVersion(version, node.headVersionId), conflict });
}
