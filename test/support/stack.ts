/// <reference types="node" />
/**
 * The e2e tests' side of the local stack (Node only): the harness over
 * `fetch` and the `ws` client, a second stack for tests that kill theirs,
 * and reads of the stack's on-disk state (miniflare's SQLite files). The
 * stack itself is started by scripts/local-stack.mjs.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { createCipheriv, createHash } from "node:crypto";
import { cpSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { inject } from "vitest";
import WebSocket from "ws";
import { chunkBoundaries } from "../../src/shared/chunking";
import { freePort, groupMembers, snapshotTree, stopStack, wranglerEnv } from "../../scripts/local-stack.mjs";
import { HANG_GUARD_MS, Harness, type Dialer, type SocketLike } from "./harness";

declare module "vitest" {
	export interface ProvidedContext {
		/** Origin of the shared stack's api worker, e.g. http://127.0.0.1:40123. */
		baseUrl: string;
		/** The shared stack's `--persist-to` directory (its D1, R2 and Durable Object state). */
		persistTo: string;
		/** A copy of the shared stack's state taken right after it came up: migrated, empty. */
		template: string;
		/** The source tree the shared stack runs from. */
		stackTree: string;
		/** The file global-setup writes once the shared stack is up (or failed to come up): a {@link StackReady}. */
		stackReady: string;
	}
}

/** What global-setup reports once the shared stack is up: its `wrangler dev` command line, or why it failed. */
export type StackReady = { command: string[] } | { error: string };

/**
 * Waits until the shared stack is up (global-setup starts it in the
 * background); throws global-setup's error if it did not come up.
 */
export async function stackReady(): Promise<{ command: string[] }> {
	const file = inject("stackReady");
	// Migrations and wrangler dev take tens of seconds, and minutes on a loaded machine.
	const guard = Date.now() + 600_000;
	while (!existsSync(file)) {
		if (Date.now() > guard) throw new Error("the local stack did not come up within 10 minutes (hang guard)");
		await new Promise((resolve) => setTimeout(resolve, 100));
	}
	const state = JSON.parse(readFileSync(file, "utf8")) as StackReady;
	if ("error" in state) throw new Error(`the local stack did not come up:\n${state.error}`);
	return state;
}

/**
 * Opens the sync socket with the `ws` client, which (unlike fetch) reports
 * the status of a refused upgrade. `closeTimeout: 0`: the close code is the
 * server's close frame; waiting for the TCP close after it adds nothing a
 * test reads (wrangler dev's proxy keeps the connection ~10 s).
 */
export const wsDialer: Dialer = (url) =>
	new Promise((resolve, reject) => {
		// ws 8.18+ takes closeTimeout; @types/ws does not list it yet.
		const options: WebSocket.ClientOptions & { closeTimeout: number } = { closeTimeout: 0 };
		const ws = new WebSocket(url.replace(/^http/, "ws"), options);
		let refused = false;
		ws.once("open", () => resolve({ socket: ws as unknown as SocketLike }));
		ws.once("unexpected-response", (_req, res) => {
			refused = true;
			let text = "";
			res.on("data", (d: Buffer) => (text += d.toString()));
			res.on("end", () => {
				resolve({ status: res.statusCode ?? 0, text });
				ws.terminate();
			});
		});
		// Terminating a refused upgrade reports "closed before the connection was established": not news.
		ws.on("error", (err) => {
			if (!refused) reject(err);
		});
	});

/** The harness against the shared stack. */
export function stackHarness(baseUrl = inject("baseUrl")): Harness {
	return new Harness((request) => fetch(request), baseUrl, wsDialer);
}

// ---- test data ------------------------------------------------------------------

/** `size` deterministic incompressible bytes (AES-256-CTR keystream of `seed`), at native speed. */
export function generate(size: number, seed: string): Buffer {
	const cipher = createCipheriv("aes-256-ctr", createHash("sha256").update(seed).digest(), Buffer.alloc(16));
	return cipher.update(Buffer.alloc(size));
}

/**
 * `size` bytes as a stream of 1 MiB pieces made on demand by `piece(n)`, so
 * that a test never holds a large body in memory.
 */
function pieceStream(size: number, piece: (n: number) => Uint8Array): ReadableStream<Uint8Array> {
	let sent = 0;
	return new ReadableStream<Uint8Array>({
		pull(controller) {
			const n = Math.min(1 << 20, size - sent);
			if (n === 0) {
				controller.close();
				return;
			}
			sent += n;
			controller.enqueue(piece(n));
		},
	});
}

/**
 * `size` bytes of {@link generate}'s keystream for `seed`, as a stream;
 * `onPiece` sees each piece as it is handed out (to hash what was sent).
 */
export function randomStream(
	size: number,
	seed: string,
	onPiece: (piece: Uint8Array) => void = () => undefined,
): ReadableStream<Uint8Array> {
	const cipher = createCipheriv("aes-256-ctr", createHash("sha256").update(seed).digest(), Buffer.alloc(16));
	const zeros = Buffer.alloc(1 << 20);
	return pieceStream(size, (n) => {
		const piece = cipher.update(zeros.subarray(0, n));
		onPiece(piece);
		return new Uint8Array(piece.buffer, piece.byteOffset, piece.byteLength);
	});
}

/** `size` zero bytes as a stream, one shared piece at a time (its content never changes, so sharing it is safe). */
export function zeroStream(size: number): ReadableStream<Uint8Array> {
	const zeros = new Uint8Array(1 << 20);
	return pieceStream(size, (n) => (n === zeros.length ? zeros : zeros.subarray(0, n)));
}

export const sha256Of = (data: Uint8Array | string): string => createHash("sha256").update(data).digest("hex");

/** A block of a file as the chunker cuts it. */
export interface Block {
	hash: string;
	offset: number;
	size: number;
}

/** The content-defined blocks of `data`, in file order. */
export function blocksOf(data: Uint8Array): Block[] {
	const out: Block[] = [];
	let offset = 0;
	for (const size of chunkBoundaries(data)) {
		out.push({ hash: sha256Of(data.subarray(offset, offset + size)), offset, size });
		offset += size;
	}
	return out;
}

/** SHA-256 and length of a response body, streamed. */
export async function hashBody(res: Response): Promise<{ sha256: string; bytes: number }> {
	const hash = createHash("sha256");
	let bytes = 0;
	if (res.body !== null) {
		for await (const piece of res.body) {
			bytes += piece.byteLength;
			hash.update(piece);
		}
	}
	return { sha256: hash.digest("hex"), bytes };
}

/**
 * Waits until `check` holds, asking again after each answer (no fixed
 * pause decides anything): for effects the stack finishes after it has
 * answered, such as an overwrite's old body being deleted. Fails after the
 * hang guard, naming `what`.
 */
export async function eventually<T>(what: string, check: () => T | undefined | Promise<T | undefined>): Promise<T> {
	const guard = Date.now() + HANG_GUARD_MS;
	for (;;) {
		const value = await check();
		if (value !== undefined) return value;
		if (Date.now() > guard) throw new Error(`${what}: still not so after ${HANG_GUARD_MS} ms (hang guard)`);
		await new Promise((resolve) => setTimeout(resolve, 20));
	}
}

// ---- the stack's on-disk state ------------------------------------------------------

/** node:sqlite, loaded at run time (vite does not know the builtin). */
type SqliteModule = {
	DatabaseSync: new (
		path: string,
		options?: { readOnly?: boolean },
	) => { prepare(sql: string): { all(...params: unknown[]): unknown[] }; close(): void };
};
const sqlite = process.getBuiltinModule("node:sqlite") as SqliteModule;

/** Rows of `sql` from every SQLite file of one miniflare storage kind (e.g. "d1/miniflare-D1DatabaseObject"). */
function queryAll<T>(persistTo: string, kind: string, sql: string, ...params: unknown[]): T[] {
	const dir = join(persistTo, "v3", kind);
	const rows: T[] = [];
	for (const name of existsSync(dir) ? readdirSync(dir) : []) {
		if (!name.endsWith(".sqlite") || name === "metadata.sqlite") continue;
		const db = new sqlite.DatabaseSync(join(dir, name), { readOnly: true });
		try {
			rows.push(...(db.prepare(sql).all(...params) as T[]));
		} catch {
			// This database has no such table (the directory has no version_blocks).
		} finally {
			db.close();
		}
	}
	return rows;
}

/** A version's block list, from whichever local D1 shard holds it. */
export function versionBlocksOnDisk(persistTo: string, versionId: string): { offset: number; size: number; hash: string }[] {
	return queryAll<{ offset: number; size: number; hash: string }>(
		persistTo,
		join("d1", "miniflare-D1DatabaseObject"),
		"SELECT offset, size, hash FROM version_blocks WHERE version_id = ? ORDER BY offset",
		versionId,
	).map((r) => ({ offset: r.offset, size: r.size, hash: r.hash }));
}

/**
 * The shard the directory placed `userId` on, from the stack's local
 * directory database (read-only): no route tells a user their shard.
 */
export function userShardOnDisk(persistTo: string, userId: string): number | undefined {
	return queryAll<{ shard: number }>(persistTo, join("d1", "miniflare-D1DatabaseObject"), "SELECT shard FROM users WHERE id = ?", userId)[0]
		?.shard;
}

/** The local R2 bucket's objects under `prefix`: key and the id of the blob file that holds the body. */
export function r2Objects(persistTo: string, prefix: string): { key: string; blob: string }[] {
	return queryAll<{ key: string; blob_id: string }>(
		persistTo,
		join("r2", "miniflare-R2BucketObject"),
		"SELECT key, blob_id FROM _mf_objects WHERE substr(key, 1, length(?)) = ?",
		prefix,
		prefix,
	).map((r) => ({ key: r.key, blob: r.blob_id }));
}

/** Whether the blob file `blob` (a body of the local R2 bucket) is on disk. */
export function blobExists(persistTo: string, blob: string): boolean {
	const r2 = join(persistTo, "v3", "r2");
	return readdirSync(r2).some((bucket) => existsSync(join(r2, bucket, "blobs", blob)));
}

// ---- a stack of one's own ---------------------------------------------------------

/** A stack a test may kill: `wrangler dev` on a fresh copy of the shared stack's migrated, empty state. */
export interface OwnStack {
	url: string;
	persistTo: string;
	/** The running `wrangler dev` (leader of its process group). */
	child: ChildProcess;
	/** Its command line, for {@link respawn}. */
	command: string[];
	/** Runs the same command line again (same storage, same port) once the old one is gone. */
	respawn(): Promise<void>;
	/** Stops it and removes its files. */
	dispose(): Promise<void>;
}

/**
 * Starts `wrangler dev` with the shared stack's command line on another port
 * and a copy of its state taken before any test ran. No migrations run: the
 * copy has them, and `wrangler d1 migrations apply` costs tens of seconds of
 * CPU per stack.
 */
export async function startOwnStack(): Promise<OwnStack> {
	const work = mkdtempSync(join(tmpdir(), "drive-own-stack-"));
	const tree = join(work, "tree");
	const persistTo = join(work, "state");
	snapshotTree(inject("stackTree"), tree);
	// The snapshot leaves build output behind; the web app the shared stack built is served as it was.
	cpSync(join(inject("stackTree"), "web", "dist"), join(tree, "web", "dist"), { recursive: true });
	cpSync(inject("template"), persistTo, { recursive: true });
	const port = await freePort();
	const { command: shared } = await stackReady();
	const command = withOption(withOption(shared, "--port", String(port)), "--persist-to", persistTo);
	const stack: OwnStack = {
		url: `http://127.0.0.1:${port}`,
		persistTo,
		child: await spawnUntilUp(command, tree, `http://127.0.0.1:${port}`),
		command,
		respawn: async () => {
			stack.child = await spawnUntilUp(command, tree, stack.url);
		},
		dispose: async () => {
			await stopGroup(stack.child);
			rmSync(work, { recursive: true, force: true });
		},
	};
	return stack;
}

/** `argv` with `option`'s value replaced. */
function withOption(argv: string[], option: string, value: string): string[] {
	const at = argv.indexOf(option);
	if (at < 0) throw new Error(`${option} is not in ${argv.join(" ")}`);
	return [...argv.slice(0, at + 1), value, ...argv.slice(at + 2)];
}

/** Spawns `command` in its own process group and resolves once the api answers. */
async function spawnUntilUp(command: string[], cwd: string, url: string): Promise<ChildProcess> {
	const [file, ...args] = command as [string, ...string[]];
	const child = spawn(file, args, { cwd, env: wranglerEnv(), stdio: ["ignore", "pipe", "pipe"], detached: true });
	let log = "";
	child.stdout?.on("data", (d) => (log += d));
	child.stderr?.on("data", (d) => (log += d));
	const guard = Date.now() + 180_000;
	for (;;) {
		if (child.exitCode !== null) throw new Error(`wrangler dev exited with ${child.exitCode}\n${log}`);
		const up = await fetch(`${url}/v1/openapi.json`).then(
			(r) => r.ok,
			() => false,
		);
		if (up) return child;
		if (Date.now() > guard) {
			stopStack(child, "SIGKILL");
			throw new Error(`wrangler dev did not come up on ${url}\n${log}`);
		}
		await new Promise((resolve) => setTimeout(resolve, 250));
	}
}

/** Waits until no process of group `pgid` is left. */
export function groupGone(pgid: number): Promise<true> {
	return eventually(`the processes of group ${pgid} to exit`, () => (groupMembers(pgid).length === 0 ? true : undefined));
}

/** SIGTERM to the stack's process group, then SIGKILL if it lingers. */
export async function stopGroup(child: ChildProcess): Promise<void> {
	const pgid = child.pid;
	if (pgid === undefined || groupMembers(pgid).length === 0) return;
	stopStack(child, "SIGTERM");
	await groupGone(pgid).catch(async () => {
		stopStack(child, "SIGKILL");
		await groupGone(pgid);
	});
}
