/**
 * Hot-path SQL written once. drizzle builds a query's SQL string (and maps
 * its columns) on every call, and on the small-request path that building
 * cost more CPU than the rest of the request (BENCHMARKS.md, "Small
 * requests"). The queries every authenticated read and every small commit
 * run are therefore static strings, bound per call; rows come back as arrays
 * in a column order fixed here and are read with the schema's own column
 * mappers, so they are the same rows drizzle would return.
 */
import { getTableColumns, type InferSelectModel, type Table } from "drizzle-orm";

/** A table's columns in a fixed order: the SELECT list for an alias, and a reader of rows in that order. */
export class Columns<T extends Table> {
	readonly #columns: [key: string, column: ReturnType<typeof getTableColumns>[string]][];

	constructor(table: T) {
		this.#columns = Object.entries(getTableColumns(table));
	}

	/** `col1, col2, …` in this order, for an INSERT. */
	names(): string {
		return this.#columns.map(([, c]) => c.name).join(", ");
	}

	/** `?1, ?2, …`, one per column, for an INSERT's VALUES. */
	slots(): string {
		return this.#columns.map((_, i) => `?${i + 1}`).join(", ");
	}

	/** A row's values in this order, as the driver stores them (booleans as 0 and 1); for an INSERT bound with {@link slots}. */
	values(row: InferSelectModel<T>): unknown[] {
		const record = row as Record<string, unknown>;
		return this.#columns.map(([key, column]) => {
			const value = record[key];
			return value === null || value === undefined ? null : column.mapToDriverValue(value);
		});
	}

	/** How many values a row of this table takes in a raw result. */
	get count(): number {
		return this.#columns.length;
	}

	/** `alias.col1, alias.col2, …` in this order; with a prefix, each named `<prefix>col` (several aliases of one table in a row). */
	list(alias: string, prefix = ""): string {
		return this.#columns.map(([, c]) => (prefix ? `${alias}.${c.name} AS ${prefix}${c.name}` : `${alias}.${c.name}`)).join(", ");
	}

	/** The row that starts at `offset` of a raw result row, or null when its first column (the key) is NULL (an outer join that found nothing). */
	read(values: unknown[], offset = 0): InferSelectModel<T> | null {
		if (values[offset] === null || values[offset] === undefined) return null;
		const row: Record<string, unknown> = {};
		this.#columns.forEach(([key, column], i) => {
			const value = values[offset + i];
			row[key] = value === null ? null : column.mapFromDriverValue(value);
		});
		return row as InferSelectModel<T>;
	}

	/** The row of a result row keyed by column name (what a D1 batch returns). */
	readNamed(values: Record<string, unknown>, prefix = ""): InferSelectModel<T> | null {
		return this.read(this.#columns.map(([, c]) => values[prefix + c.name]));
	}
}
