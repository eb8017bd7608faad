/** Reads of the conflicted-copy list. */
import { and, desc, eq, inArray, isNotNull, isNull, lt, or } from "drizzle-orm";
import { nodes, type NodeRow } from "../../../src/shared/db/schema";
import type { ShardDb } from "../../../src/shared/db/tree";

/** Unresolved, live conflicted copies, newest first, each with its original (null if that is gone). */
export async function listOpenConflicts(
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
					.where(and(eq(nodes.userId, userId), inArray(nodes.id, ids)));
	const byId = new Map(originals.map((o) => [o.id, o]));
	return copies.map((copy) => ({ copy, original: copy.conflictOf === null ? null : (byId.get(copy.conflictOf) ?? null) }));
}
