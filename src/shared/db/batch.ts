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

/**
 * Executes `queries` in order, atomically; returns each statement's D1 result.
 * A query may also be a D1 statement already prepared and bound: hot paths
 * use static SQL, which skips drizzle's query building.
 */
export async function runBatch(d1: D1Database, queries: (BatchQuery | D1PreparedStatement)[]): Promise<D1Result[]> {
	const statements = queries.map((q) => {
		if (isPrepared(q)) return q;
		const built = q.toSQL ? q.toSQL() : q.getQuery ? q.getQuery() : null;
		if (!built) throw new TypeError("runBatch: not a drizzle query");
		return d1.prepare(built.sql).bind(...built.params);
	});
	return d1.batch(statements);
}

function isPrepared(q: BatchQuery | D1PreparedStatement): q is D1PreparedStatement {
	return typeof (q as D1PreparedStatement).bind === "function" && typeof (q as D1PreparedStatement).run === "function";
}
