/**
 * Moving a user's rows from one shard to another (docs/decisions/0034). The
 * user's UserHub runs these steps as one job of its queue, so no change of
 * the user interleaves: fence the old shard, copy, check, (the hub switches
 * the directory), and much later clean the old shard up.
 *
 * Every step may run again after a crash: the fence is an upsert, the copy
 * clears the user's rows in the target before writing them again, and the
 * cleanup deletes in chunks until nothing is left.
 */
import type { ShardDb } from "../../src/shared/db/shards";

/** Where the user's rows of one table are, in terms of ?1 = the user's id. */
interface TableRows {
	table: string;
	/** The rows' filter. */
	where: string;
	/** The primary key: the copy's order and the cleanup's chunks. */
	key: string[];
}

const OWN = (column: string) => `${column} = ?1`;
const THROUGH = (column: string, parent: string) => `${column} IN (SELECT id FROM ${parent} WHERE user_id = ?1)`;

/**
 * Every table holding rows of one user, parents before children (the copy's
 * order; the cleanup goes backwards). Per-shard tables (gc_clock,
 * gc_candidates, doomed_blocks, block_tiers, sweep_cursors, commit_guard)
 * hold no user's rows and stay.
 */
export const USER_TABLES: readonly TableRows[] = [
	{ table: "nodes", where: OWN("user_id"), key: ["id"] },
	{ table: "versions", where: OWN("user_id"), key: ["id"] },
	{ table: "version_blocks", where: THROUGH("version_id", "versions"), key: ["version_id", "offset"] },
	{ table: "user_blocks", where: OWN("user_id"), key: ["user_id", "hash"] },
	{ table: "changes", where: OWN("user_id"), key: ["user_id", "seq"] },
	{ table: "journal_state", where: OWN("user_id"), key: ["user_id"] },
	{ table: "uploads", where: OWN("user_id"), key: ["id"] },
	{ table: "upload_blocks", where: THROUGH("upload_id", "uploads"), key: ["upload_id", "idx"] },
	{ table: "upload_received", where: THROUGH("upload_id", "uploads"), key: ["upload_id", "hash"] },
	{ table: "upload_since", where: THROUGH("upload_id", "uploads"), key: ["upload_id"] },
	{ table: "user_usage", where: OWN("user_id"), key: ["user_id"] },
	{ table: "activity", where: OWN("user_id"), key: ["user_id", "id"] },
	{ table: "shares", where: OWN("owner_id"), key: ["id"] },
	{ table: "share_members", where: OWN("owner_id"), key: ["share_id", "member_id"] },
	{ table: "share_outbox", where: OWN("owner_id"), key: ["id"] },
	{ table: "incoming_shares", where: OWN("user_id"), key: ["user_id", "share_id"] },
	{ table: "webhook_endpoints", where: OWN("user_id"), key: ["id"] },
	{ table: "webhook_deliveries", where: OWN("user_id"), key: ["id"] },
	{ table: "webhook_attempts", where: THROUGH("delivery_id", "webhook_deliveries"), key: ["delivery_id", "n"] },
];

/** Rows read per page of the copy. */
const PAGE_ROWS = 500;
/** JSON bytes per insert statement: far below D1's 2 MB per bound value. */
const SLICE_BYTES = 512 * 1024;
/** Rows deleted per statement of the cleanup. */
const CLEANUP_ROWS = 2000;

type Row = Record<string, unknown>;

/** Fences the user's rows in the old shard: from now on their inserts and updates there fail with USER_MOVED. */
export async function fence(source: ShardDb, userId: string, to: number, now: string): Promise<void> {
	await source.$client
		.prepare(
			`INSERT INTO moved_users (user_id, to_shard, moved_at, cleaning) VALUES (?1, ?2, ?3, 0)
				ON CONFLICT (user_id) DO UPDATE SET to_shard = excluded.to_shard, moved_at = excluded.moved_at, cleaning = 0`,
		)
		.bind(userId, to, now)
		.run();
}

/** Lifts the fence, for a move abandoned before the directory switched. */
export async function unfence(source: ShardDb, userId: string): Promise<void> {
	await source.$client.prepare("DELETE FROM moved_users WHERE user_id = ?1").bind(userId).run();
}

/**
 * Copies every row of the user from `source` into `target`, after clearing
 * what a cut-short copy (or an earlier stay in `target`) left there.
 * @returns rows copied per table.
 */
export async function copyUser(source: ShardDb, target: ShardDb, userId: string): Promise<Record<string, number>> {
	await clearTarget(target, userId);
	const outboxShift = await shareOutboxShift(source, target, userId);
	const copied: Record<string, number> = {};
	for (const spec of USER_TABLES) {
		let n = 0;
		for (let offset = 0; ; offset += PAGE_ROWS) {
			// The source is fenced, so its rows hold still between pages.
			const { results } = await source.$client
				.prepare(`SELECT * FROM ${spec.table} WHERE ${spec.where} ORDER BY ${quoted(spec.key)} LIMIT ?2 OFFSET ?3`)
				.bind(userId, PAGE_ROWS, offset)
				.all<Row>();
			if (results.length === 0) break;
			const rows = results.map((row) => adjust(spec.table, row, outboxShift));
			await target.$client.batch(insertStatements(target, spec.table, rows));
			n += rows.length;
			if (results.length < PAGE_ROWS) break;
		}
		copied[spec.table] = n;
	}
	return copied;
}

/** Counts the user's rows per table in both shards; the names of the tables that differ. */
export async function differences(source: ShardDb, target: ShardDb, userId: string): Promise<string[]> {
	const [a, b] = await Promise.all([counts(source, userId), counts(target, userId)]);
	return USER_TABLES.map((spec) => spec.table).filter((table) => a[table] !== b[table]);
}

/**
 * Deletes the user's rows from the old shard, children before their parents
 * (a child is found through its parent), at most `statements` deletes of a
 * chunk each; true once none is left. The fence stays: a writer that still
 * believes the user lives here keeps being refused.
 */
export async function cleanUp(source: ShardDb, userId: string, statements = 200): Promise<boolean> {
	await source.$client.prepare("UPDATE moved_users SET cleaning = 1 WHERE user_id = ?1").bind(userId).run();
	let budget = statements;
	for (const spec of [...USER_TABLES].reverse()) {
		for (;;) {
			if (budget-- <= 0) return false;
			const result = await source.$client
				.prepare(
					`DELETE FROM ${spec.table} WHERE (${quoted(spec.key)}) IN (SELECT ${quoted(spec.key)} FROM ${spec.table} WHERE ${spec.where} LIMIT ?2)`,
				)
				.bind(userId, CLEANUP_ROWS)
				.run();
			if (result.meta.changes < CLEANUP_ROWS) break;
		}
	}
	return true;
}

/** Removes the user's rows (and a fence of an earlier move away) from the shard the user moves into. */
async function clearTarget(target: ShardDb, userId: string): Promise<void> {
	// The fence's row first: while it is there, its triggers skip these deletes.
	await target.$client.batch([
		target.$client.prepare("DELETE FROM moved_users WHERE user_id = ?1").bind(userId),
		...[...USER_TABLES].reverse().map((spec) => target.$client.prepare(`DELETE FROM ${spec.table} WHERE ${spec.where}`).bind(userId)),
	]);
}

/**
 * share_outbox ids are numbered per shard: the owner's rows keep their order
 * and gaps, shifted above every id the target holds, and each member's
 * delivered_id moves with them.
 */
async function shareOutboxShift(source: ShardDb, target: ShardDb, userId: string): Promise<number> {
	const [lowest, highest] = await Promise.all([
		source.$client.prepare("SELECT MIN(id) AS id FROM share_outbox WHERE owner_id = ?1").bind(userId).first<{ id: number | null }>(),
		target.$client.prepare("SELECT MAX(id) AS id FROM share_outbox").first<{ id: number | null }>(),
	]);
	if (lowest?.id == null || highest?.id == null) return 0;
	return Math.max(0, highest.id + 1 - lowest.id);
}

/** A row as it goes into the target shard. */
function adjust(table: string, row: Row, outboxShift: number): Row {
	switch (table) {
		case "share_outbox":
			return { ...row, id: Number(row.id) + outboxShift };
		case "share_members":
			return { ...row, delivered_id: Number(row.delivered_id) + outboxShift };
		case "upload_since":
			// The old shard's collector clock means nothing in the target: 0 refuses
			// every block with a tombstone there, so those are sent again (docs/decisions/0017).
			return { ...row, seq: 0 };
		default:
			return row;
	}
}

/**
 * INSERT OR REPLACE statements for `rows`, each list as one JSON parameter
 * (src/shared/db/lists.ts), sliced by size. A guard row frames them: copying
 * a user's block references is no new reference, so only a block a
 * collector run is deleting right now refuses it (the move then fails and
 * runs again), not one deleted long ago (docs/decisions/0017).
 */
function insertStatements(target: ShardDb, table: string, rows: Row[]): D1PreparedStatement[] {
	const columns = Object.keys(rows[0] ?? {});
	const select = columns.map((c) => `json_extract(value, '$."${c}"')`).join(", ");
	const sql = `INSERT OR REPLACE INTO ${table} (${quoted(columns)}) SELECT ${select} FROM json_each(?1)`;
	const statements: D1PreparedStatement[] = [];
	let slice: Row[] = [];
	let bytes = 0;
	for (const row of rows) {
		const size = JSON.stringify(row).length;
		if (slice.length > 0 && bytes + size > SLICE_BYTES) {
			statements.push(target.$client.prepare(sql).bind(JSON.stringify(slice)));
			slice = [];
			bytes = 0;
		}
		slice.push(row);
		bytes += size;
	}
	if (slice.length > 0) statements.push(target.$client.prepare(sql).bind(JSON.stringify(slice)));
	if (table !== "user_blocks") return statements;
	return [
		target.$client.prepare("INSERT INTO commit_guard (since_seq) SELECT seq FROM gc_clock WHERE id = 0"),
		...statements,
		target.$client.prepare("DELETE FROM commit_guard"),
	];
}

async function counts(db: ShardDb, userId: string): Promise<Record<string, number>> {
	const results = await db.$client.batch(
		USER_TABLES.map((spec) => db.$client.prepare(`SELECT COUNT(*) AS n FROM ${spec.table} WHERE ${spec.where}`).bind(userId)),
	);
	return Object.fromEntries(USER_TABLES.map((spec, i) => [spec.table, (results[i]?.results[0] as { n: number } | undefined)?.n ?? 0]));
}

/** Column names from the schema (never input), quoted: `offset` is a keyword. */
function quoted(columns: string[]): string {
	return columns.map((c) => `"${c}"`).join(", ");
}
