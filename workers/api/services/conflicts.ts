/** Reads of the conflicted-copy list. */
import { and, desc, eq, isNotNull, isNull, lt, or } from "drizzle-orm";
import { z } from "zod";
import { inList } from "../../../src/shared/db/lists";
import { toNode } from "../../../src/shared/db/mappers";
import { nodes, type NodeRow } from "../../../src/shared/db/schema";
import type { ShardDb } from "../../../src/shared/db/shards";
import { ok, type Result } from "../../../src/shared/errors";
import type { ConflictPage } from "../../../src/shared/schemas/sync";
import { decodeCursor, encodeCursor } from "./cursors";

const ConflictsCursor = z.object({ t: z.string(), i: z.string() });

/** One page of unresolved conflicted copies, newest first, each with the file it lost against. */
export async function conflictPage(db: ShardDb, userId: string, limit: number, cursor?: string): Promise<Result<ConflictPage>> {
	const after = cursor === undefined ? ok(null) : decodeCursor(cursor, ConflictsCursor);
	if (!after.ok) return after;
	const position = after.value === null ? null : { createdAt: after.value.t, id: after.value.i };
	const rows = await listOpenConflicts(db, userId, limit + 1, position);
	const page = rows.slice(0, limit);
	const last = page.at(-1);
	return ok({
		items: page.map((r) => ({ node: toNode(r.copy), conflicts_with: r.original ? toNode(r.original) : null })),
		next_cursor: rows.length > limit && last ? encodeCursor({ t: last.copy.createdAt, i: last.copy.id }) : null,
	});
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
	const ids = [...new Set(copies.map((c) => c.conflictOf).filter((id): id is string => id !== null))];
	const originals =
		ids.length === 0
			? []
			: await db
					.select()
					.from(nodes)
					.where(and(eq(nodes.userId, userId), inList(nodes.id, ids)));
	const byId = new Map(originals.map((o) => [o.id, o]));
	return copies.map((copy) => ({ copy, original: copy.conflictOf === null ? null : (byId.get(copy.conflictOf) ?? null) }));
}
