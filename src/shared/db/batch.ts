/**
 * Runs drizzle queries as one D1 batch (one implicit transaction).
 *
 * Why not drizzle's own `db.batch`: in drizzle-orm 0.45 a raw `db.run(sql…)`
 * with parameters inside a D1 batch crashes (SQLiteRaw has no prepared
 * statement). Building each statement from its SQL and parameters works for
 * query builders and raw SQL alike.
 */
export interface BatchQuery {
	toSQL?: () => { sql: string; params: unknown[] };
	getQuery?: () => { sql: string; params: unknown[] };
}

/** Executes `queries` in order, atomically; returns each statement's D1 result. */
export async function runBatch(d1: D1Database, queries: BatchQuery[]): Promise<D1Result[]> {
	const statements = queries.map((q) => {
		const built = q.toSQL ? q.toSQL() : q.getQuery ? q.getQuery() : null;
		if (!built) throw new TypeError("runBatch: not a drizzle query");
		return d1.prepare(built.sql).bind(...built.params);
	});
	return d1.batch(statements);
}
