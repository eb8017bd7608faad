/** A file's version history, newest first, one page at a time. Restoring goes through the user's hub. */
import { z } from "zod";
import { and, eq, sql } from "drizzle-orm";
import { notFound } from "../../../src/shared/commit/failures";
import { toVersion } from "../../../src/shared/db/mappers";
import { versions } from "../../../src/shared/db/schema";
import type { ShardDb } from "../../../src/shared/db/shards";
import { findNode } from "../../../src/shared/db/tree";
import { ok, type Result } from "../../../src/shared/errors";
import type { VersionPage } from "../../../src/shared/schemas/nodes";
import { decodeCursor, pageOf } from "./cursors";

// Commit order, exactly: the hub inserts a user's versions one at a time, so
// rowid order is commit order even within one millisecond.
const VersionCursor = z.object({ r: z.number().int() });

/** One page of a file's versions (trashed files included: their versions still download), newest first. */
export async function versionsPage(
	db: ShardDb,
	userId: string,
	fileId: string,
	limit: number,
	cursor?: string,
): Promise<Result<VersionPage>> {
	const after = cursor === undefined ? ok(null) : decodeCursor(cursor, VersionCursor);
	if (!after.ok) return after;
	const file = await findNode(db, userId, fileId);
	if (!file || file.type !== "file") return notFound("file");
	const position = after.value;
	const rows = await db
		.select({ version: versions, rowid: sql<number>`versions.rowid` })
		.from(versions)
		.where(
			and(eq(versions.userId, userId), eq(versions.nodeId, file.id), position === null ? undefined : sql`versions.rowid < ${position.r}`),
		)
		.orderBy(sql`versions.rowid DESC`)
		.limit(limit + 1);
	return ok(
		pageOf(
			rows,
			limit,
			(row) => toVersion(row.version, file.headVersionId),
			(last) => ({ r: last.rowid }),
		),
	);
}
