/**
 * The drizzle schema (src/shared/db/schema.ts) against the migrations the
 * setup file applied: every drizzle table exists with the same columns, keys
 * and indexes, and round-trips a row through drizzle. Tables are discovered
 * from the schema module, so a new table is covered without editing this file.
 */
import { env } from "cloudflare:workers";
import type { D1Migration } from "cloudflare:test";
import { and, eq, getTableColumns, is } from "drizzle-orm";
import { drizzle } from "drizzle-orm/d1";
import { getTableConfig, SQLiteTable, type SQLiteColumn } from "drizzle-orm/sqlite-core";
import { describe, expect, it } from "vitest";
import * as schema from "../../src/shared/db/schema";
import { shardBinding, shardCount } from "../../src/shared/db/shards";

const testEnv = env as unknown as Env & { TEST_DIRECTORY_MIGRATIONS: D1Migration[]; TEST_SHARD_MIGRATIONS: D1Migration[] };

const TABLES = Object.values(schema as Record<string, unknown>).filter((value): value is SQLiteTable => is(value, SQLiteTable));
const byName = new Map(TABLES.map((t) => [getTableConfig(t).name, t]));

type Kind = "directory" | "shard";
const DATABASES: Record<Kind, D1Database> = { directory: env.DIRECTORY, shard: env.SHARD_0 };

/** Tables that belong to the platform, not to our migrations. */
const isInternal = (name: string) => name.startsWith("sqlite_") || name.startsWith("_cf_") || name === "d1_migrations";

async function tableNames(db: D1Database): Promise<string[]> {
	const { results } = await db.prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name").all<{ name: string }>();
	return results.map((r) => r.name).filter((n) => !isInternal(n));
}

async function kindOf(table: string): Promise<Kind> {
	for (const kind of ["directory", "shard"] as const) if ((await tableNames(DATABASES[kind])).includes(table)) return kind;
	throw new Error(`table ${table} is in schema.ts but in no migration`);
}

type ColumnInfo = { name: string; type: string; notnull: number; pk: number };
type IndexInfo = { name: string; unique: number; origin: string; partial: number };

/** A value a column accepts, distinct per table and column; foreign keys get the referenced row's value. */
function sampleValue(table: string, column: SQLiteColumn): string | number | boolean {
	const fk = foreignKeyOf(table, column.name);
	if (fk) {
		const target = byName.get(fk.table);
		const targetColumn = target ? Object.values(getTableColumns(target)).find((c) => c.name === fk.column) : undefined;
		if (!targetColumn) throw new Error(`${table}.${column.name} references unknown ${fk.table}.${fk.column}`);
		return sampleValue(fk.table, targetColumn);
	}
	if (column.enumValues && column.enumValues.length > 0) return column.enumValues[0] as string;
	if (column.dataType === "boolean") return true;
	if (column.getSQLType().toLowerCase().startsWith("integer")) {
		let h = 7;
		for (const ch of `${table}.${column.name}`) h = (h * 31 + ch.charCodeAt(0)) % 100_000;
		return h + 1;
	}
	return `${table}.${column.name}`;
}

function foreignKeyOf(table: string, column: string): { table: string; column: string } | null {
	const t = byName.get(table);
	if (!t) return null;
	for (const fk of getTableConfig(t).foreignKeys) {
		const ref = fk.reference();
		const i = ref.columns.findIndex((c) => c.name === column);
		const foreign = ref.foreignColumns[i];
		if (i >= 0 && foreign) return { table: getTableConfig(ref.foreignTable).name, column: foreign.name };
	}
	return null;
}

/** Tables in an order where every referenced table comes first. */
function insertionOrder(): SQLiteTable[] {
	const done = new Set<string>();
	const out: SQLiteTable[] = [];
	const visit = (t: SQLiteTable) => {
		const name = getTableConfig(t).name;
		if (done.has(name)) return;
		done.add(name);
		for (const fk of getTableConfig(t).foreignKeys) visit(fk.reference().foreignTable);
		out.push(t);
	};
	TABLES.forEach(visit);
	return out;
}

/** The primary-key column names, whether declared on a column or as a composite key. */
function primaryKeyColumns(t: SQLiteTable): string[] {
	const config = getTableConfig(t);
	const single = config.columns.filter((c) => c.primary).map((c) => c.name);
	const composite = config.primaryKeys.flatMap((pk) => pk.columns.map((c) => c.name));
	return [...single, ...composite];
}

describe("schema: migrations", () => {
	it("finds the drizzle tables", () => {
		expect(TABLES.length).toBeGreaterThanOrEqual(9);
		expect([...byName.keys()]).toEqual(
			expect.arrayContaining([
				"users",
				"devices",
				"refresh_tokens",
				"throttle_counters",
				"nodes",
				"versions",
				"version_blocks",
				"user_blocks",
				"changes",
			]),
		);
	});

	it("has applied every migration to the directory and to every shard", async () => {
		const check = async (db: D1Database, expected: D1Migration[]) => {
			const { results } = await db.prepare("SELECT name FROM d1_migrations ORDER BY id").all<{ name: string }>();
			expect(results.map((r) => r.name)).toEqual(expected.map((m) => m.name));
		};
		await check(env.DIRECTORY, testEnv.TEST_DIRECTORY_MIGRATIONS);
		expect(shardCount(env)).toBeGreaterThanOrEqual(1);
		for (let i = 0; i < shardCount(env); i++) await check(shardBinding(env, i), testEnv.TEST_SHARD_MIGRATIONS);
	});

	it("declares every table the migrations create", async () => {
		for (const kind of ["directory", "shard"] as const) {
			for (const name of await tableNames(DATABASES[kind]))
				expect(byName.has(name), `${kind} table ${name} has no drizzle table`).toBe(true);
		}
	});

	it("keeps the directory's and the shards' tables apart", async () => {
		const directory = await tableNames(env.DIRECTORY);
		const shard = await tableNames(env.SHARD_0);
		expect(directory.filter((t) => shard.includes(t))).toEqual([]);
	});
});

describe("schema: every drizzle table", () => {
	it.each([...byName.keys()])("%s has the migration's columns, types, nullability and primary key", async (name) => {
		const table = byName.get(name) as SQLiteTable;
		const db = DATABASES[await kindOf(name)];
		const { results } = await db.prepare(`PRAGMA table_info("${name}")`).all<ColumnInfo>();
		const config = getTableConfig(table);
		expect(config.columns.map((c) => c.name).sort()).toEqual(results.map((r) => r.name).sort());
		for (const column of config.columns) {
			const info = results.find((r) => r.name === column.name);
			expect(info?.type.toLowerCase(), `${name}.${column.name} type`).toBe(column.getSQLType().toLowerCase());
			// SQLite reports notnull = 0 for a rowid table's TEXT PRIMARY KEY; drizzle marks it not null.
			const notNull = (info?.notnull ?? 0) === 1 || (info?.pk ?? 0) > 0;
			expect(notNull, `${name}.${column.name} NOT NULL`).toBe(column.notNull);
		}
		const pk = results
			.filter((r) => r.pk > 0)
			.sort((a, b) => a.pk - b.pk)
			.map((r) => r.name);
		expect(primaryKeyColumns(table)).toEqual(pk);
	});

	it.each([...byName.keys()])("%s has every index drizzle declares, and drizzle knows its unique ones", async (name) => {
		const table = byName.get(name) as SQLiteTable;
		const db = DATABASES[await kindOf(name)];
		const config = getTableConfig(table);
		const { results: indexes } = await db.prepare(`PRAGMA index_list("${name}")`).all<IndexInfo>();
		const columnsOf = async (index: string) =>
			(await db.prepare(`PRAGMA index_info("${index}")`).all<{ seqno: number; name: string }>()).results
				.sort((a, b) => a.seqno - b.seqno)
				.map((r) => r.name);

		for (const index of config.indexes) {
			const found = indexes.find((i) => i.name === index.config.name);
			expect(found, `index ${index.config.name} of ${name}`).toBeDefined();
			expect(found?.unique === 1, `index ${index.config.name} uniqueness`).toBe(index.config.unique);
			expect(found?.partial === 1, `index ${index.config.name} is partial`).toBe(index.config.where !== undefined);
			const declared = index.config.columns.map((c) => (c as SQLiteColumn).name);
			expect(await columnsOf(index.config.name)).toEqual(declared);
		}
		// A unique index drizzle does not know about would surprise an upsert or an insert.
		for (const index of indexes.filter((i) => i.unique === 1 && i.origin !== "pk")) {
			const columns = await columnsOf(index.name);
			const declaredIndex = config.indexes.some((i) => i.config.name === index.name && i.config.unique);
			const declaredColumn = columns.length === 1 && config.columns.some((c) => c.name === columns[0] && c.isUnique);
			const declaredConstraint = config.uniqueConstraints.some((u) => u.columns.map((c) => c.name).join() === columns.join());
			expect(declaredIndex || declaredColumn || declaredConstraint, `unique index ${index.name} (${columns.join(", ")}) of ${name}`).toBe(
				true,
			);
		}
	});

	it("round-trips a row of every table through drizzle", async () => {
		for (const table of insertionOrder()) {
			const name = getTableConfig(table).name;
			const db = drizzle(DATABASES[await kindOf(name)]);
			const row: Record<string, string | number | boolean> = {};
			for (const [key, column] of Object.entries(getTableColumns(table))) row[key] = sampleValue(name, column);
			await db.insert(table).values(row as typeof table.$inferInsert);
			const keys = primaryKeyColumns(table);
			const columns = getTableColumns(table);
			const where = and(
				...Object.entries(columns)
					.filter(([, c]) => keys.includes(c.name))
					.map(([key, c]) => eq(c, row[key] as string | number | boolean)),
			);
			const selected = await db.select().from(table).where(where);
			expect(selected, name).toEqual([row]);
		}
	});
});
