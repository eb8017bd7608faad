/// <reference types="node" />
/**
 * The sync loop (ADR 0029): pull R to the newest journal entry, scan L,
 * plan, run the plan with S checkpointed after each action, and again until
 * a plan is empty. Every round starts from observations, so a crash, a
 * dropped connection or a refused action anywhere only means another round.
 * `watch` keeps it running, woken by the sync WebSocket (long poll as the
 * fallback) and a file watcher, with periodic rescans as the truth.
 */
import { lstat, readdir, rm, stat } from "node:fs/promises";
import { join } from "node:path";
import { isRetryableStatus, SourceChangedError, type DriveClient } from "../../client";
import { DriveApiError } from "../../client";
import { plan, type Action, type LocalItem, type Plan } from "../planner";

type UploadAction = Extract<Action, { kind: "upload" }>;
type DownloadAction = Extract<Action, { kind: "download" }>;
import { STATE_DIR, type SyncState } from "../state";
import { BATCH_LIMITS } from "../../client/batch";
import { Executor, Refused, Skip, type EmitEvent } from "./execute";
import { RemoteMirror, RootGoneError } from "./remote";
import { scan, type ScannedItem } from "./scan";
import { DiskWatcher } from "./watcher";

/** Plans in one run before it stops and lets the caller report (the planner converges in far fewer). */
const MAX_ROUNDS = 100;
/** Transfers (or batches of small files) in flight at once: small downloads spend most of their time waiting on the server and on fsync. */
const TRANSFERS = Number(process.env.DRIVE_SYNC_TRANSFERS ?? 8);
/** Small files per batch request, and their bytes: a few requests in flight keep the hub busy without one huge request. */
const BATCH_FILES = 128;
const BATCH_BYTES = 8 * 1024 * 1024;

export interface EngineOptions {
	client: DriveClient;
	state: SyncState;
	/** The local folder, absolute. */
	root: string;
	deviceName: string;
	emit: EmitEvent;
	/** Runs deletions the mass-delete guard held back. */
	force?: boolean;
	/** Small files move in batches (`POST /v1/files/batch`, `POST /v1/files/batch/content`); false moves each on its own. */
	batch?: boolean;
	/** Full rescans while watching, in ms (default 60 s): the watcher is a hint, the scan is the truth. */
	rescanMs?: number;
}

export interface RunResult {
	cursor: string;
	/** Actions that ran in this run. */
	actions: number;
	/** Problems left after the run. */
	problems: number;
	held: Plan["held"];
	/** False when the round limit stopped a run that still had work. */
	settled: boolean;
}

/** The synced folder is not the one that was linked (a different disk mounted, or the marker missing). */
export class RootChangedError extends Error {
	override readonly name = "RootChangedError";
}

/** True for failures that a later round may not see: the network, 5xx, 429. */
export function isTransient(err: unknown): boolean {
	if (err instanceof DriveApiError) return isRetryableStatus(err.status);
	if (err instanceof RootGoneError || err instanceof RootChangedError) return false;
	const code = (err as { code?: unknown } | undefined)?.code;
	// fetch fails with a TypeError; sockets with these codes; the CLI's token refresh with UNAVAILABLE.
	return (
		err instanceof TypeError ||
		(err as Error | undefined)?.name === "AbortError" ||
		(typeof code === "string" && ["ECONNRESET", "ECONNREFUSED", "ETIMEDOUT", "EPIPE", "UNAVAILABLE"].includes(code))
	);
}

/** What the server deleted stays in `.drive/trash/` this long, like the server's own trash. */
const LOCAL_TRASH_DAYS = 30;

/** Removes entries of `dir` last modified more than `days` ago. */
async function pruneOlderThan(dir: string, days: number): Promise<void> {
	const cutoff = Date.now() - days * 86_400_000;
	const names = await readdir(dir).catch(() => [] as string[]);
	for (const name of names) {
		const st = await stat(join(dir, name)).catch(() => null);
		if (st !== null && st.mtimeMs < cutoff) await rm(join(dir, name), { recursive: true, force: true });
	}
}

/** The disk changed under an action (the source edited during its upload, a file or folder removed): a skip, not a failure. */
function isLocalRace(err: unknown): boolean {
	if (err instanceof SourceChangedError) return true;
	const code = (err as NodeJS.ErrnoException | undefined)?.code;
	return code === "ENOENT" || code === "ENOTDIR" || code === "EISDIR" || code === "ENOTEMPTY" || code === "EEXIST";
}

/** Backoff of a refused action, by its attempts: 1 min, doubling to 1 h. */
const refusalDelay = (attempts: number): number => Math.min(60 * 60_000, 60_000 * 2 ** (attempts - 1));

export class SyncEngine {
	readonly #o: EngineOptions;
	readonly #mirror: RemoteMirror;
	readonly rootId: string;
	/** Refused actions, by a key of what they did, with when to try again. */
	readonly #refused = new Map<string, { attempts: number; until: number; path: string }>();

	constructor(options: EngineOptions) {
		this.#o = options;
		const rootId = options.state.getMeta("remote_root_id");
		if (rootId === null) throw new RootChangedError("the folder is not linked: run drive sync --init");
		this.rootId = rootId;
		this.#mirror = new RemoteMirror(options.client, options.state, rootId);
	}

	/** The root must be the same folder (same device) it was when linked: an unmounted disk must not read as "all deleted". */
	async #checkRoot(): Promise<void> {
		const dev = this.#o.state.getMeta("root_dev");
		let st;
		try {
			st = await lstat(this.#o.root, { bigint: true });
			await lstat(`${this.#o.root}/${STATE_DIR}`);
		} catch {
			throw new RootChangedError(`${this.#o.root} or its ${STATE_DIR} folder is missing`);
		}
		if (dev !== null && dev !== String(st.dev)) throw new RootChangedError(`${this.#o.root} is on another device than when it was linked`);
	}

	#setState(value: "idle" | "syncing" | "offline" | "stopped"): void {
		this.#o.state.setMeta("engine_state", value);
	}

	#pruned = false;
	/** Set while watching: told the folders of each scan. */
	#watcher: DiskWatcher | null = null;

	/** Syncs until nothing is left to do (or MAX_ROUNDS plans ran). */
	async runOnce(): Promise<RunResult> {
		const { state, emit } = this.#o;
		await this.#checkRoot();
		if (!this.#pruned) {
			// Once per process: the local trash after 30 days, and partial downloads nobody resumed for a day.
			this.#pruned = true;
			await pruneOlderThan(join(this.#o.root, STATE_DIR, "trash"), LOCAL_TRASH_DAYS);
			await pruneOlderThan(join(this.#o.root, STATE_DIR, "tmp"), 1);
		}
		this.#setState("syncing");
		let actions = 0;
		let idleRounds = 0;
		for (let round = 0; round < MAX_ROUNDS && idleRounds < 3; round++) {
			const { cursor } = await this.#mirror.pull();
			const scanned = await scan(this.#o.root, state.localStats());
			// An unreadable file keeps its last observation: missing from L it would read as deleted.
			const unreadable = new Set(scanned.problems.filter((p) => p.code === "unreadable").map((p) => p.path));
			const before = state.localStats();
			const items: ScannedItem[] = [...scanned.items];
			for (const path of unreadable) {
				const old = before.get(path);
				if (old !== undefined) items.push({ ...old, dev: old.dev ?? "", mtimeNs: old.mtimeNs ?? "" });
			}
			state.replaceLocal(items);
			this.#watcher?.follow(items.filter((l) => l.type === "folder").map((l) => l.path));
			const local = new Map<string, ScannedItem>(items.map((l) => [l.path, l]));
			const synced = state.synced();
			const remote = state.remote();
			const p = plan(
				{ remote, local: local as ReadonlyMap<string, LocalItem>, synced },
				{ rootId: this.rootId, deviceName: this.#o.deviceName, now: new Date(), force: this.#o.force === true },
			);
			const now = Date.now();
			state.replaceProblems("plan", [...p.problems, ...scanned.problems], now);
			state.setMeta("held", p.held === null ? "" : JSON.stringify(p.held));
			for (const problem of p.problems) emit({ event: "problem", ...problem });
			const due = p.actions.filter((a) => (this.#refused.get(keyOf(a))?.until ?? 0) <= now);
			if (due.length === 0) {
				this.#retireRefusals(p.actions);
				this.#setState("idle");
				state.setMeta("last_idle_at", new Date().toISOString());
				return { cursor, actions, problems: state.problems().length, held: p.held, settled: true };
			}
			const done = await this.#execute(due, { remote, local, synced });
			actions += done;
			// Only skipped actions (a precondition that keeps failing): stop rather than spin; the caller tries again later.
			idleRounds = done === 0 ? idleRounds + 1 : 0;
		}
		return { cursor: state.getMeta("cursor") ?? "", actions, problems: state.problems().length, held: null, settled: false };
	}

	/** Forgets refusals whose action is no longer planned (the item changed or went away). */
	#retireRefusals(planned: Action[]): void {
		const keys = new Set(planned.map(keyOf));
		for (const [key, r] of this.#refused) {
			if (keys.has(key)) continue;
			this.#refused.delete(key);
			this.#o.state.clearProblem(r.path);
		}
	}

	/**
	 * Runs a plan in order. Transfers run a few at a time; any other action
	 * first waits for the transfers before it, since it may move or delete
	 * what they read or write.
	 */
	async #execute(
		actions: Action[],
		trees: { remote: Executor["ctx"]["remote"]; local: Map<string, ScannedItem>; synced: Executor["ctx"]["synced"] },
	): Promise<number> {
		const { state, emit } = this.#o;
		const exec = new Executor({
			client: this.#o.client,
			state,
			root: this.#o.root,
			rootId: this.rootId,
			remote: trees.remote,
			local: trees.local,
			synced: new Map(trees.synced),
			emit,
			trashStamp: new Date().toISOString().replace(/[:.]/g, "-"),
		});
		const bytes = actions.reduce(
			(sum, a) =>
				sum +
				(a.kind === "upload" ? (trees.local.get(a.path)?.size ?? 0) : a.kind === "download" ? (trees.remote.get(a.nodeId)?.size ?? 0) : 0),
			0,
		);
		emit({ event: "plan", actions: actions.length, bytes });
		let done = 0;
		let transient: unknown;
		/** Books one action's outcome: an event, a refusal with backoff, or the round's transient failure. */
		const settle = (a: Action, err: unknown, bytes?: number | void): void => {
			const key = keyOf(a);
			if (err === null) {
				done++;
				const refused = this.#refused.get(key);
				if (refused !== undefined) {
					this.#refused.delete(key);
					state.clearProblem(refused.path);
				}
				emit({ event: "action", ...describe(a), ...(typeof bytes === "number" && { bytes }) });
				return;
			}
			if (err instanceof Skip) {
				// Not a problem (the next plan decides again), but worth seeing when a run does not settle.
				emit({ event: "skipped", ...describe(a), reason: err.message });
				return;
			}
			if (isLocalRace(err)) {
				// The file changed or went away under the action: the next scan sees what is there now.
				emit({ event: "skipped", ...describe(a), reason: (err as Error).message });
				return;
			}
			if (isTransient(err)) {
				transient ??= err;
				return;
			}
			// A refusal, or anything unexpected: this item waits with backoff; it never stops the others or the loop.
			const code = err instanceof Refused ? err.code : ((err as NodeJS.ErrnoException).code ?? "ERROR");
			const message = err instanceof Error ? err.message : String(err);
			const attempts = (this.#refused.get(key)?.attempts ?? 0) + 1;
			const path = pathOf(a);
			this.#refused.set(key, { attempts, until: Date.now() + refusalDelay(attempts), path });
			state.reportProblem({ path, code, message, origin: "action" }, Date.now());
			emit({ event: "problem", path, code, message });
		};
		const one = async (a: Action): Promise<void> => {
			if (transient !== undefined) return;
			await exec.run(a).then(
				(bytes) => settle(a, null, bytes),
				(err: unknown) => settle(a, err),
			);
		};
		const batch = async (kind: "upload" | "download", group: Action[]): Promise<void> => {
			if (transient !== undefined) return;
			const outcomes =
				kind === "upload" ? await exec.uploadSmall(group as UploadAction[]) : await exec.downloadSmall(group as DownloadAction[]);
			for (const [i, a] of group.entries()) {
				const outcome = outcomes[i] ?? 0;
				if (typeof outcome === "number") settle(a, null, outcome);
				else settle(a, outcome);
			}
		};
		const inFlight = new Set<Promise<void>>();
		const start = async (work: Promise<void>): Promise<void> => {
			const p: Promise<void> = work.finally(() => inFlight.delete(p));
			inFlight.add(p);
			if (inFlight.size >= TRANSFERS) await Promise.race(inFlight);
		};
		// Small files move many to a request; a group is sent when full or when anything else comes next.
		const groups = { upload: { items: [] as Action[], bytes: 0 }, download: { items: [] as Action[], bytes: 0 } };
		const flush = async (kind?: "upload" | "download"): Promise<void> => {
			for (const k of kind === undefined ? (["upload", "download"] as const) : [kind]) {
				const g = groups[k];
				if (g.items.length === 0) continue;
				const sending = g.items;
				g.items = [];
				g.bytes = 0;
				await start(batch(k, sending));
			}
		};
		for (const a of actions) {
			if (transient !== undefined) break;
			if (a.kind === "upload" || a.kind === "download") {
				const size = (a.kind === "upload" ? trees.local.get(a.path)?.size : trees.remote.get(a.nodeId)?.size) ?? Number.POSITIVE_INFINITY;
				if (this.#o.batch !== false && size <= BATCH_LIMITS.fileBytes) {
					const g = groups[a.kind];
					if (g.items.length === BATCH_FILES || g.bytes + size > BATCH_BYTES) await flush(a.kind);
					g.items.push(a);
					g.bytes += size;
					continue;
				}
				await start(one(a));
				continue;
			}
			await flush();
			await Promise.all(inFlight);
			await one(a);
		}
		await flush();
		await Promise.all(inFlight);
		if (transient !== undefined) throw transient;
		return done;
	}

	/**
	 * Runs until `signal` aborts: a round whenever the server or the disk
	 * reports a change, every `rescanMs`, and after a failure with backoff.
	 */
	async watch(signal: AbortSignal): Promise<void> {
		const { emit } = this.#o;
		const wake = new Wakeup();
		// Ends the change channel with the loop, whether the caller stopped it or a fatal error did.
		const life = new AbortController();
		signal.addEventListener("abort", () => life.abort(), { once: true });
		const disk = new DiskWatcher(this.#o.root, () => wake.set());
		this.#watcher = disk;
		const channel = new ChangeChannel(
			this.#o.client,
			() => this.#o.state.getMeta("cursor"),
			() => wake.set(),
			life.signal,
		);
		void channel.run();
		const rescan = setInterval(() => wake.set(), this.#o.rescanMs ?? 60_000);
		signal.addEventListener("abort", () => wake.set(), { once: true });
		let failures = 0;
		let unsettled = 0;
		try {
			wake.set();
			while (!signal.aborted) {
				await wake.wait();
				if (signal.aborted) break;
				try {
					const result = await this.runOnce();
					failures = 0;
					if (result.settled) emit({ event: "idle", cursor: result.cursor, problems: result.problems, held: result.held });
					else {
						unsettled++;
						emit({ event: "unsettled", cursor: result.cursor, actions: result.actions });
						wake.after(Math.min(30_000, 250 * 2 ** Math.min(unsettled, 7)));
					}
					if (result.settled) unsettled = 0;
					const next = this.#nextRefusal();
					if (next !== null) wake.after(next - Date.now());
				} catch (err) {
					if (!isTransient(err)) throw err;
					failures++;
					this.#setState("offline");
					emit({ event: "error", code: err instanceof DriveApiError ? err.code : "UNAVAILABLE", message: (err as Error).message });
					wake.after(Math.min(30_000, 500 * 2 ** Math.min(failures - 1, 6)));
				}
			}
		} finally {
			life.abort();
			clearInterval(rescan);
			disk.close();
			this.#watcher = null;
			wake.clear();
			this.#setState("stopped");
		}
	}

	#nextRefusal(): number | null {
		let next: number | null = null;
		for (const r of this.#refused.values()) next = next === null ? r.until : Math.min(next, r.until);
		return next;
	}
}

/** A key for an action's effect, to hold back one that the server refused. */
function keyOf(a: Action): string {
	switch (a.kind) {
		case "upload":
			return `upload:${a.path}:${a.nodeId}:${a.contentHash}`;
		case "move_remote":
			return `move_remote:${a.nodeId}:${a.to}`;
		case "delete_remote":
			return `delete_remote:${a.nodeId}`;
		case "create_folder":
			return `create_folder:${a.path}`;
		default:
			return `${a.kind}:${pathOf(a)}`;
	}
}

function pathOf(a: Action): string {
	switch (a.kind) {
		case "move_remote":
			return a.to;
		case "move_local":
			return a.to;
		case "forget":
			return a.nodeId;
		default:
			return a.path;
	}
}

/** An action as an event: its kind, the local path, and where it moved from. */
function describe(a: Action): Record<string, unknown> {
	const out: Record<string, unknown> = { kind: a.kind, path: pathOf(a) };
	if (a.kind === "move_local" || a.kind === "move_remote") out.from = a.from;
	if ("nodeId" in a && a.nodeId !== null) out.node_id = a.nodeId;
	return out;
}

/** A flag the loop sleeps on, set by any wake source. */
class Wakeup {
	#set = false;
	#resolve: (() => void) | null = null;
	#timer: NodeJS.Timeout | undefined;

	set(): void {
		this.#set = true;
		this.#resolve?.();
		this.#resolve = null;
	}

	/** Sets the flag after `ms` (the earliest such time wins). */
	after(ms: number): void {
		clearTimeout(this.#timer);
		this.#timer = setTimeout(() => this.set(), Math.max(0, ms));
	}

	clear(): void {
		clearTimeout(this.#timer);
	}

	async wait(): Promise<void> {
		if (!this.#set) await new Promise<void>((resolve) => (this.#resolve = resolve));
		this.#set = false;
	}
}

/**
 * The server's change signal: the sync WebSocket (a `changes` frame whose
 * cursor differs from ours wakes the loop), reconnected with backoff; while
 * it cannot connect, long polls take its place. Frames only wake: R is
 * always read from the journal.
 */
class ChangeChannel {
	constructor(
		readonly client: DriveClient,
		readonly cursor: () => string | null,
		readonly onChange: () => void,
		readonly signal: AbortSignal,
	) {}

	async run(): Promise<void> {
		let failures = 0;
		while (!this.signal.aborted) {
			const opened = await this.#socket().catch(() => false);
			if (this.signal.aborted) return;
			failures = opened ? 0 : failures + 1;
			// Whatever happened while disconnected is in the journal: one round catches up.
			this.onChange();
			if (failures >= 3) {
				await this.#longpoll().catch(() => undefined);
				// A poll answers at once while the loop has not caught up yet: no faster than this.
				await sleep(250, this.signal);
			} else await sleep(Math.min(5_000, 250 * 2 ** failures), this.signal);
		}
	}

	/** One socket's life. @returns true if it opened. */
	async #socket(): Promise<boolean> {
		const { ticket } = await this.client.json<{ ticket: string }>("POST", "/v1/sync/ticket", { retries: 0 });
		const url = this.client.url("/v1/sync/ws", { ticket }).replace(/^http/, "ws");
		const ws = new WebSocket(url);
		return new Promise<boolean>((resolve) => {
			let opened = false;
			let quiet: NodeJS.Timeout | undefined;
			let ping: NodeJS.Timeout | undefined;
			// A socket that hears nothing (not even a pong) for 75 s is dead without a close.
			const arm = () => {
				clearTimeout(quiet);
				quiet = setTimeout(() => ws.close(), 75_000);
			};
			const finish = () => {
				clearTimeout(quiet);
				clearInterval(ping);
				this.signal.removeEventListener("abort", stop);
				resolve(opened);
			};
			const stop = () => ws.close();
			this.signal.addEventListener("abort", stop, { once: true });
			ws.addEventListener("open", () => {
				opened = true;
				arm();
				ping = setInterval(() => ws.send(JSON.stringify({ type: "ping" })), 30_000);
			});
			ws.addEventListener("message", (e) => {
				arm();
				try {
					const frame = JSON.parse(String(e.data)) as { type: string; cursor?: string; bookmark?: string };
					if (frame.type !== "changes" && frame.type !== "hello") return;
					// The next journal read then sees the change this frame announces, whichever replica serves it.
					this.client.noteBookmark(frame.bookmark);
					if (frame.cursor !== this.cursor()) this.onChange();
				} catch {
					// Not ours to understand: ignore.
				}
			});
			ws.addEventListener("close", finish);
			// close() from an error handler can raise another error while connecting: once is enough.
			let closing = false;
			ws.addEventListener("error", () => {
				if (closing) return;
				closing = true;
				try {
					ws.close();
				} catch {
					finish();
				}
			});
		});
	}

	async #longpoll(): Promise<void> {
		const cursor = this.cursor();
		if (cursor === null) return;
		const res = await this.client.json<{ changes: boolean; backoff?: number }>("GET", "/v1/changes/longpoll", {
			query: { cursor, timeout: 60 },
			signal: this.signal,
			retries: 0,
		});
		if (res.changes) this.onChange();
		if (res.backoff !== undefined) await sleep(res.backoff * 1000, this.signal);
	}
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
	return new Promise((resolve) => {
		const timer = setTimeout(done, ms);
		function done() {
			clearTimeout(timer);
			signal.removeEventListener("abort", done);
			resolve();
		}
		signal.addEventListener("abort", done, { once: true });
	});
}

export { Skip, Refused };
