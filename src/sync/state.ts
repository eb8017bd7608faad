/// <reference types="node" />
/**
 * The sync client's state database, `<root>/.drive/state.db`: the three
 * trees of ADR 0029 (remote R, local L, synced S) plus what a restart needs
 * (meta, in-flight transfers, problem items). It stores observations, never
 * a queue of pending work: the planner derives the work from the trees.
 */
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import type * as Sqlite from "node:sqlite";
import type { DatabaseSync as Database, SQLInputValue } from "node:sqlite";
import { createRequire } from "node:module";
import type { LocalItem, NodeType, RemoteItem, SyncedItem } from "./planner";

/** The folder in the synced root that holds the state; its presence is the root marker. */
export const STATE_DIR = ".drive";

/** Bumped with every schema change; `openState` refuses a database from a newer client. */
export const SCHEMA_VERSION = 2;

/**
 * Keys of the meta table: the link (server, account, remote folder, the root's
 * device number), the journal cursor, and what a running engine reports to
 * `drive status` (its pid, state, last idle time, held deletions).
 */
export type MetaKey =
	| "server"
	| "user_id"
	| "remote_root_id"
	| "cursor"
	| "device_id"
	| "device_name"
	| "root_dev"
	| "engine_pid"
	| "engine_state"
	| "last_idle_at"
	| "held";

export type TransferKind = "upload" | "download";

/** A side effect in flight, remembered so that a restart resumes it instead of starting over. */
export interface Transfer {
	id: number;
	kind: TransferKind;
	nodeId: string | null;
	path: string;
	/** The If-Match version of an upload, or the version a download fetches. */
	baseVersion: string | null;
	uploadId: string | null;
	tmpPath: string | null;
	bytesDone: number;
	/** The local fingerprint (size, mtime, inode, hash) the transfer started from: a changed source starts over. */
	sig: string | null;
	attempts: number;
	nextTryAt: number;
	lastError: string | null;
}

/**
 * An item that cannot be synced, shown by `drive status`. `plan` problems
 * (names the server refuses, symlinks) come back with every plan until the
 * item changes; `action` problems are failed actions, retried with backoff.
 */
export interface Problem {
	path: string;
	code: string;
	message: string;
	since: number;
	origin: ProblemOrigin;
}

export type ProblemOrigin = "plan" | "action";

const SCHEMA = `
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE remote (
	node_id TEXT PRIMARY KEY, parent_id TEXT, name TEXT NOT NULL, type TEXT NOT NULL,
	version_id TEXT, content_hash TEXT, size INTEGER NOT NULL
);
CREATE INDEX remote_parent ON remote (parent_id);
CREATE TABLE local (
	path TEXT PRIMARY KEY, dev TEXT, ino TEXT, size INTEGER NOT NULL, mtime_ns TEXT,
	type TEXT NOT NULL, content_hash TEXT
);
CREATE TABLE synced (
	node_id TEXT PRIMARY KEY, path TEXT NOT NULL, type TEXT NOT NULL, version_id TEXT,
	content_hash TEXT, size INTEGER NOT NULL, ino TEXT, mtime_ns TEXT
);
-- Not unique: a node moved on disk keeps its old S path until the server has the move, and another node may take that path meanwhile.
CREATE INDEX synced_path ON synced (path);
CREATE TABLE transfer (
	id INTEGER PRIMARY KEY, kind TEXT NOT NULL, node_id TEXT, path TEXT NOT NULL, base_version TEXT,
	upload_id TEXT, tmp_path TEXT, bytes_done INTEGER NOT NULL DEFAULT 0, sig TEXT,
	attempts INTEGER NOT NULL DEFAULT 0, next_try_at INTEGER NOT NULL DEFAULT 0, last_error TEXT
);
CREATE TABLE problem (
	path TEXT PRIMARY KEY, code TEXT NOT NULL, message TEXT NOT NULL, since INTEGER NOT NULL, origin TEXT NOT NULL DEFAULT 'plan'
);
`;

/** Forward-only upgrades: `UPGRADES[n]` takes schema n to n + 1. */
const UPGRADES: Record<number, string> = {
	1: "ALTER TABLE problem ADD COLUMN origin TEXT NOT NULL DEFAULT 'plan';",
};

// node:sqlite prints "ExperimentalWarning: SQLite is an experimental feature" on
// first load (https://nodejs.org/api/sqlite.html, stability 1.1); silence that one
// warning only, while the module loads, and leave every other warning alone.
function loadSqlite(): typeof Sqlite {
	const original = process.emitWarning;
	process.emitWarning = ((warning: string | Error, ...rest: unknown[]) => {
		const text = typeof warning === "string" ? warning : warning.message;
		const type = typeof rest[0] === "string" ? rest[0] : (rest[0] as { type?: string } | undefined)?.type;
		if (type === "ExperimentalWarning" && /SQLite/i.test(text)) return;
		(original as (...args: unknown[]) => void).call(process, warning, ...rest);
	}) as typeof process.emitWarning;
	try {
		return createRequire(import.meta.url)("node:sqlite") as typeof Sqlite;
	} finally {
		process.emitWarning = original;
	}
}

type Row = Record<string, SQLInputValue>;
const str = (v: unknown): string | null => (v === null || v === undefined ? null : String(v));
const num = (v: unknown): number => Number(v ?? 0);

/** The typed face of state.db. Every write of more than one row goes through `transaction`. */
export class SyncState {
	readonly #db: Database;

	constructor(db: Database) {
		this.#db = db;
	}

	/** Runs `work` in one SQLite transaction (BEGIN IMMEDIATE: one writer, no upgrade deadlock); rolls back if it throws. */
	transaction<T>(work: () => T): T {
		if (this.#db.isTransaction) return work();
		this.#db.exec("BEGIN IMMEDIATE");
		try {
			const out = work();
			this.#db.exec("COMMIT");
			return out;
		} catch (err) {
			this.#db.exec("ROLLBACK");
			throw err;
		}
	}

	/** Deletes rows by primary key; `table` comes from this allow-list, never from input. */
	#deleteRows(table: "remote" | "local" | "synced", keys: Iterable<string>): void {
		const column = { remote: "node_id", local: "path", synced: "node_id" }[table];
		const stmt = this.#db.prepare(`DELETE FROM ${table} WHERE ${column} = ?`);
		this.transaction(() => {
			for (const key of keys) stmt.run(key);
		});
	}

	close(): void {
		this.#db.close();
	}

	getMeta(key: MetaKey): string | null {
		const row = this.#db.prepare("SELECT value FROM meta WHERE key = ?").get(key);
		return str(row?.value);
	}

	setMeta(key: MetaKey, value: string): void {
		this.#db.prepare("INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value").run(key, value);
	}

	/** R: upserts nodes as the journal reports them (replays are harmless). */
	putRemote(items: Iterable<RemoteItem>): void {
		const stmt = this.#db.prepare(
			`INSERT INTO remote (node_id, parent_id, name, type, version_id, content_hash, size) VALUES (?, ?, ?, ?, ?, ?, ?)
			 ON CONFLICT (node_id) DO UPDATE SET parent_id = excluded.parent_id, name = excluded.name, type = excluded.type,
			 version_id = excluded.version_id, content_hash = excluded.content_hash, size = excluded.size`,
		);
		this.transaction(() => {
			for (const r of items) stmt.run(r.nodeId, r.parentId, r.name, r.type, r.versionId, r.contentHash, r.size);
		});
	}

	/** R: drops nodes that were trashed or deleted (R holds live nodes only). */
	deleteRemote(nodeIds: Iterable<string>): void {
		this.#deleteRows("remote", nodeIds);
	}

	/** R: empties the mirror, for a re-listing after `410 CURSOR_RESET` (S is kept, so nothing looks deleted). */
	clearRemote(): void {
		this.#db.exec("DELETE FROM remote");
	}

	/**
	 * R: a whole new listing and the cursor it is valid from, in one
	 * transaction, so that a crash never leaves a half-listed R (which would
	 * read as "deleted remotely" for everything not yet listed).
	 */
	replaceRemote(items: Iterable<RemoteItem>, cursor: string): void {
		this.transaction(() => {
			this.clearRemote();
			this.putRemote(items);
			this.setMeta("cursor", cursor);
		});
	}

	/** R: one page of the journal (nodes as they now are, nodes that left) and the cursor after it, in one transaction. */
	applyPage(upserts: Iterable<RemoteItem>, removals: Iterable<string>, cursor: string): void {
		this.transaction(() => {
			this.putRemote(upserts);
			this.deleteRemote(removals);
			this.setMeta("cursor", cursor);
		});
	}

	remote(): Map<string, RemoteItem> {
		const out = new Map<string, RemoteItem>();
		for (const row of this.#db.prepare("SELECT * FROM remote").all()) {
			out.set(String(row.node_id), {
				nodeId: String(row.node_id),
				parentId: str(row.parent_id),
				name: String(row.name),
				type: row.type as NodeType,
				versionId: str(row.version_id),
				contentHash: str(row.content_hash),
				size: num(row.size),
			});
		}
		return out;
	}

	/** L: records scanned entries; `dev`/`ino`/`mtimeNs` are kept as decimal strings (they exceed 2^53). */
	putLocal(items: Iterable<LocalItem & { dev?: string | null; mtimeNs?: string | null }>): void {
		const stmt = this.#db.prepare(
			`INSERT INTO local (path, dev, ino, size, mtime_ns, type, content_hash) VALUES (?, ?, ?, ?, ?, ?, ?)
			 ON CONFLICT (path) DO UPDATE SET dev = excluded.dev, ino = excluded.ino, size = excluded.size,
			 mtime_ns = excluded.mtime_ns, type = excluded.type, content_hash = excluded.content_hash`,
		);
		this.transaction(() => {
			for (const l of items) stmt.run(l.path, l.dev ?? null, l.fileId, l.size, l.mtimeNs ?? null, l.type, l.contentHash);
		});
	}

	deleteLocal(paths: Iterable<string>): void {
		this.#deleteRows("local", paths);
	}

	/** L: a whole scan replaces the previous one. */
	replaceLocal(items: Iterable<LocalItem & { dev?: string | null; mtimeNs?: string | null }>): void {
		this.transaction(() => {
			this.#db.exec("DELETE FROM local");
			this.putLocal(items);
		});
	}

	/** L with the stat fingerprint the scanner compares against, by path. */
	localStats(): Map<string, LocalItem & { dev: string | null; mtimeNs: string | null }> {
		const out = new Map<string, LocalItem & { dev: string | null; mtimeNs: string | null }>();
		for (const row of this.#db.prepare("SELECT * FROM local").all()) {
			out.set(String(row.path), {
				path: String(row.path),
				type: row.type as NodeType,
				contentHash: str(row.content_hash),
				size: num(row.size),
				fileId: str(row.ino),
				dev: str(row.dev),
				mtimeNs: str(row.mtime_ns),
			});
		}
		return out;
	}

	local(): Map<string, LocalItem> {
		return this.localStats();
	}

	/** S: the merge base of one node, written when both sides are known equal. */
	putSynced(items: Iterable<SyncedItem & { mtimeNs?: string | null }>): void {
		const stmt = this.#db.prepare(
			`INSERT INTO synced (node_id, path, type, version_id, content_hash, size, ino, mtime_ns) VALUES (?, ?, ?, ?, ?, ?, ?, ?)
			 ON CONFLICT (node_id) DO UPDATE SET path = excluded.path, type = excluded.type, version_id = excluded.version_id,
			 content_hash = excluded.content_hash, size = excluded.size, ino = excluded.ino, mtime_ns = excluded.mtime_ns`,
		);
		this.transaction(() => {
			for (const s of items) {
				stmt.run(s.nodeId, s.path, s.type, s.versionId, s.contentHash, s.size, s.fileId, s.mtimeNs ?? null);
			}
		});
	}

	deleteSynced(nodeIds: Iterable<string>): void {
		this.#deleteRows("synced", nodeIds);
	}

	synced(): Map<string, SyncedItem> {
		const out = new Map<string, SyncedItem>();
		for (const row of this.#db.prepare("SELECT * FROM synced").all()) {
			out.set(String(row.node_id), {
				nodeId: String(row.node_id),
				path: String(row.path),
				type: row.type as NodeType,
				versionId: str(row.version_id),
				contentHash: str(row.content_hash),
				size: num(row.size),
				fileId: str(row.ino),
			});
		}
		return out;
	}

	/** Remembers a transfer before its first byte moves; returns its id. */
	startTransfer(t: Omit<Transfer, "id" | "bytesDone" | "attempts" | "nextTryAt" | "lastError">): number {
		const res = this.#db
			.prepare("INSERT INTO transfer (kind, node_id, path, base_version, upload_id, tmp_path, sig) VALUES (?, ?, ?, ?, ?, ?, ?)")
			.run(t.kind, t.nodeId, t.path, t.baseVersion, t.uploadId, t.tmpPath, t.sig);
		return Number(res.lastInsertRowid);
	}

	/** Records progress or a failed attempt; only the given fields change. */
	updateTransfer(id: number, change: Partial<Pick<Transfer, "uploadId" | "bytesDone" | "attempts" | "nextTryAt" | "lastError">>): void {
		const columns: Record<keyof typeof change, string> = {
			uploadId: "upload_id",
			bytesDone: "bytes_done",
			attempts: "attempts",
			nextTryAt: "next_try_at",
			lastError: "last_error",
		};
		const sets: string[] = [];
		const values: SQLInputValue[] = [];
		for (const [key, column] of Object.entries(columns) as [keyof typeof change, string][]) {
			if (change[key] === undefined) continue;
			sets.push(`${column} = ?`);
			values.push(change[key]);
		}
		if (sets.length === 0) return;
		this.#db.prepare(`UPDATE transfer SET ${sets.join(", ")} WHERE id = ?`).run(...values, id);
	}

	finishTransfer(id: number): void {
		this.#db.prepare("DELETE FROM transfer WHERE id = ?").run(id);
	}

	transfers(): Transfer[] {
		return this.#db
			.prepare("SELECT * FROM transfer ORDER BY id")
			.all()
			.map((row: Row) => ({
				id: num(row.id),
				kind: row.kind as TransferKind,
				nodeId: str(row.node_id),
				path: String(row.path),
				baseVersion: str(row.base_version),
				uploadId: str(row.upload_id),
				tmpPath: str(row.tmp_path),
				bytesDone: num(row.bytes_done),
				sig: str(row.sig),
				attempts: num(row.attempts),
				nextTryAt: num(row.next_try_at),
				lastError: str(row.last_error),
			}));
	}

	/** Reports an item that cannot sync; an existing report keeps its `since`. */
	reportProblem(p: Omit<Problem, "since" | "origin"> & { origin?: ProblemOrigin }, now: number): void {
		this.#db
			.prepare(
				`INSERT INTO problem (path, code, message, since, origin) VALUES (?, ?, ?, ?, ?)
				 ON CONFLICT (path) DO UPDATE SET code = excluded.code, message = excluded.message, origin = excluded.origin`,
			)
			.run(p.path, p.code, p.message, now, p.origin ?? "plan");
	}

	/** Replaces every problem of `origin` with `list` (reports still present keep their `since`). */
	replaceProblems(origin: ProblemOrigin, list: Iterable<Omit<Problem, "since" | "origin">>, now: number): void {
		this.transaction(() => {
			const keep = new Set<string>();
			for (const p of list) {
				keep.add(p.path);
				this.reportProblem({ ...p, origin }, now);
			}
			for (const p of this.problems()) if (p.origin === origin && !keep.has(p.path)) this.clearProblem(p.path);
		});
	}

	clearProblem(path: string): void {
		this.#db.prepare("DELETE FROM problem WHERE path = ?").run(path);
	}

	problems(): Problem[] {
		return this.#db
			.prepare("SELECT * FROM problem ORDER BY path")
			.all()
			.map((row: Row) => ({
				path: String(row.path),
				code: String(row.code),
				message: String(row.message),
				since: num(row.since),
				origin: (row.origin === "action" ? "action" : "plan") as ProblemOrigin,
			}));
	}
}

/**
 * Opens (creating on first use) `<root>/.drive/state.db`. `create: false`
 * refuses a root without the marker folder: a vanished mount or a wrong path
 * must never look like "everything was deleted".
 */
export function openState(root: string, options: { create: boolean }): SyncState {
	const dir = join(root, STATE_DIR);
	if (options.create) mkdirSync(dir, { recursive: true });
	const { DatabaseSync } = loadSqlite();
	let db: Database;
	try {
		db = new DatabaseSync(join(dir, "state.db"), { open: true });
	} catch (err) {
		throw new Error(`${root} is not a synced folder (no ${STATE_DIR}/state.db): ${(err as Error).message}`, { cause: err });
	}
	// WAL: the status command reads while the engine writes; NORMAL is durable at each checkpoint, enough for a cache of observations.
	db.exec("PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA busy_timeout = 5000");
	const version = Number(db.prepare("PRAGMA user_version").get()?.user_version ?? 0);
	if (version > SCHEMA_VERSION) {
		db.close();
		throw new Error(`state.db has schema ${version}, newer than this client's ${SCHEMA_VERSION}: update drive`);
	}
	if (version === 0) {
		const state = new SyncState(db);
		state.transaction(() => {
			db.exec(SCHEMA);
			db.exec(`PRAGMA user_version = ${SCHEMA_VERSION}`);
		});
		return state;
	}
	const state = new SyncState(db);
	for (let v = version; v < SCHEMA_VERSION; v++) {
		state.transaction(() => {
			db.exec(UPGRADES[v] as string);
			db.exec(`PRAGMA user_version = ${v + 1}`);
		});
	}
	return state;
}
