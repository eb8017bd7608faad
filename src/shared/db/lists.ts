/**
 * Lists of values in SQL. D1 allows at most 100 bound parameters per
 * statement (developers.cloudflare.com/d1/platform/limits), so a list is
 * never bound value by value: it travels as ONE JSON parameter that
 * `json_each` unpacks. A bound value may be at most 2,000,000 bytes, so long
 * lists go in slices of {@link JSON_EACH_ROWS}.
 */
import { sql, type SQL, type SQLWrapper } from "drizzle-orm";

/** Items per JSON parameter: 2,000 rows of hashes and offsets stay far below D1's 2 MB per value. */
export const JSON_EACH_ROWS = 2000;

/** `column IN (…values)` with one bound parameter, whatever the list's length. */
export function inList(column: SQLWrapper, values: readonly (string | number)[]): SQL {
	return sql`${column} IN (SELECT value FROM json_each(${JSON.stringify(values)}))`;
}

/** `values` in slices of at most `size` (default {@link JSON_EACH_ROWS}), for one statement each. */
export function* slices<T>(values: readonly T[], size = JSON_EACH_ROWS): Generator<T[]> {
	for (let i = 0; i < values.length; i += size) yield values.slice(i, i + size);
}
