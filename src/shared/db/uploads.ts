/** Reads of upload sessions and tus uploads, shared by the api worker and the UserHub. */
import { and, eq, sql } from "drizzle-orm";
import { uploads, type UploadRow } from "./schema";
import type { ShardDb } from "./tree";

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
 * nobody learns what anybody else stores (docs/decisions/0008).
 */
export async function missingBlocks(db: ShardDb, userId: string, uploadId: string): Promise<string[]> {
	const rows = await db.all<{ hash: string }>(sql`
		SELECT ub.hash AS hash FROM upload_blocks ub
		WHERE ub.upload_id = ${uploadId}
			AND NOT EXISTS (SELECT 1 FROM user_blocks x WHERE x.user_id = ${userId} AND x.hash = ub.hash)
			AND NOT EXISTS (SELECT 1 FROM upload_received r WHERE r.upload_id = ub.upload_id AND r.hash = ub.hash)
		GROUP BY ub.hash
		ORDER BY MIN(ub.idx)`);
	return rows.map((r) => r.hash);
}

/** The declared size of `hash` in the upload's block list, or null if it is not in it. */
export async function declaredBlockSize(db: ShardDb, uploadId: string, hash: string): Promise<number | null> {
	const rows = await db.all<{ size: number }>(sql`SELECT size FROM upload_blocks WHERE upload_id = ${uploadId} AND hash = ${hash} LIMIT 1`);
	return rows[0]?.size ?? null;
}
