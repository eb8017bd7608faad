/// <reference types="node" />
/**
 * Access tokens for the CLI: reused from `credentials.json` until a minute
 * before they expire, then refreshed — by one process at a time.
 *
 * Refresh tokens rotate on use, and presenting a rotated one (outside the
 * server's 30-second retry grace) signs the device out (docs/api.md, "Auth").
 * So a refresh takes an exclusive SQLite lock on `auth.db` in the config
 * directory (`BEGIN IMMEDIATE`; the OS drops it if the process dies), reads
 * the credentials again, and refreshes only if no other process did
 * meanwhile. The lock is polled with an async backoff instead of SQLite's
 * busy timeout, which sleeps inside the call and would freeze the event loop
 * of a `drive sync --watch` (its socket, watcher and transfers) meanwhile.
 *
 * @module
 */
import { DatabaseSync } from "node:sqlite";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { DriveApiError, DriveClient, isAbortError, type FetchLike } from "../client";
import { readCredentials, writeCredentials, ensureDir, type Credentials } from "./credentials";
import { CliError, EXIT } from "./output";

/** Refresh when less than this is left, so a request does not leave with a token about to expire. */
const REFRESH_AHEAD_MS = 60_000;
/** How long a process waits for another one's refresh before giving up. */
const LOCK_WAIT_MS = 60_000;
/** The first and the longest pause between two tries of the lock. */
const LOCK_STEP_MS = { first: 10, max: 250 } as const;
/** How long the refresh request (retries included) may take while others wait for the lock. */
const REFRESH_TIMEOUT_MS = 15_000;
/** SQLite's primary result code for a lock held by another connection. */
const SQLITE_BUSY = 5;

/** The answer of `POST /v1/auth/refresh`. */
interface Refreshed {
	access_token: string;
	refresh_token: string;
	expires_in: number;
}

/** The error for "run drive login first". */
export function notSignedIn(message = "not signed in: run drive login"): CliError {
	return new CliError("UNAUTHENTICATED", message, EXIT.notSignedIn);
}

/**
 * Runs `work` while holding the config directory's refresh lock.
 *
 * @param waitMs how long to wait for another process's hold before failing
 *   with {@link EXIT.unavailable}.
 */
export async function withRefreshLock<T>(dir: string, work: () => Promise<T>, waitMs: number = LOCK_WAIT_MS): Promise<T> {
	ensureDir(dir);
	// No busy timeout: SQLite would sleep inside exec() and block the event loop; acquire() waits asynchronously instead.
	const db = new DatabaseSync(join(dir, "auth.db"), { timeout: 0 });
	try {
		await acquire(db, waitMs);
		try {
			return await work();
		} finally {
			db.exec("COMMIT");
		}
	} finally {
		db.close();
	}
}

/** Takes the write lock (`BEGIN IMMEDIATE`), retrying with a doubling pause while another connection holds it. */
async function acquire(db: DatabaseSync, waitMs: number): Promise<void> {
	const deadline = Date.now() + waitMs;
	for (let pause: number = LOCK_STEP_MS.first; ; pause = Math.min(pause * 2, LOCK_STEP_MS.max)) {
		try {
			db.exec("BEGIN IMMEDIATE");
			return;
		} catch (err) {
			if (!isBusy(err)) throw err;
		}
		const left = deadline - Date.now();
		if (left <= 0) {
			throw new CliError("UNAVAILABLE", "another drive process is still refreshing the access token: try again", EXIT.unavailable);
		}
		await sleep(Math.min(pause, left));
	}
}

function isBusy(err: unknown): boolean {
	return err instanceof Error && "errcode" in err && err.errcode === SQLITE_BUSY;
}

/** The signed-in session's tokens; {@link fetch} is the DriveClient's fetch. */
export class Tokens {
	#credentials: Credentials;
	#refreshing: Promise<string> | undefined;
	readonly #log: (line: string) => void;

	constructor(
		readonly dir: string,
		credentials: Credentials,
		log: (line: string) => void = () => {},
	) {
		this.#credentials = credentials;
		this.#log = log;
	}

	get credentials(): Credentials {
		return this.#credentials;
	}

	/** A valid access token, refreshed first if it expires within a minute. */
	async current(): Promise<string> {
		if (this.#credentials.access_expires_at - Date.now() > REFRESH_AHEAD_MS) return this.#credentials.access_token;
		return this.refresh(this.#credentials.access_token);
	}

	/**
	 * Refreshes under the lock unless another process already replaced
	 * `stale` with a token that is still good.
	 */
	async refresh(stale: string): Promise<string> {
		const held = this.#credentials;
		if (held.access_token !== stale && held.access_expires_at - Date.now() > REFRESH_AHEAD_MS) return held.access_token;
		// One refresh per process at a time: a second BEGIN IMMEDIATE in this process would block the event loop the first needs.
		this.#refreshing ??= this.#refreshLocked(stale).finally(() => {
			this.#refreshing = undefined;
		});
		return this.#refreshing;
	}

	#refreshLocked(stale: string): Promise<string> {
		return withRefreshLock(this.dir, async () => {
			const latest = readCredentials(this.dir);
			if (latest === undefined) throw notSignedIn();
			if (latest.access_token !== stale && latest.access_expires_at - Date.now() > REFRESH_AHEAD_MS) {
				this.#credentials = latest;
				return latest.access_token;
			}
			const client = new DriveClient({ baseUrl: latest.server });
			let answer: Refreshed;
			try {
				answer = await client.json<Refreshed>("POST", "/v1/auth/refresh", {
					json: { refresh_token: latest.refresh_token },
					signal: AbortSignal.timeout(REFRESH_TIMEOUT_MS),
				});
			} catch (err) {
				if (err instanceof DriveApiError && err.code === "UNAUTHENTICATED") throw notSignedIn("signed out by the server: run drive login");
				if (isAbortError(err)) throw new CliError("UNAVAILABLE", "the server did not answer the token refresh in time", EXIT.unavailable);
				throw err;
			}
			const next: Credentials = {
				...latest,
				refresh_token: answer.refresh_token,
				access_token: answer.access_token,
				access_expires_at: Date.now() + answer.expires_in * 1000,
			};
			writeCredentials(this.dir, next);
			this.#credentials = next;
			this.#log("access token refreshed");
			return next.access_token;
		});
	}

	/**
	 * A fetch that adds the access token and, when the server refuses it
	 * (`401`: revoked early, or a clock off by minutes), refreshes once and
	 * sends the request again. DriveClient only sends replayable bodies.
	 */
	readonly fetch: FetchLike = async (input, init) => {
		const token = await this.current();
		const res = await globalThis.fetch(input, withToken(init, token));
		if (res.status !== 401) return res;
		await res.body?.cancel();
		const fresh = await this.refresh(token);
		return globalThis.fetch(input, withToken(init, fresh));
	};
}

function withToken(init: RequestInit, token: string): RequestInit {
	const headers = new Headers(init.headers);
	headers.set("Authorization", `Bearer ${token}`);
	return { ...init, headers };
}
