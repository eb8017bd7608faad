/**
 * What the api remembers of the directory, per isolate, so that the one
 * directory database is off the path of authenticated requests
 * (docs/decisions/0030): whether a device is still signed in (with its
 * user's shard, email and quota), and the shard and quota of the owners of
 * shared items.
 *
 * An entry younger than FRESH_MS is used as is. Up to TTL_MS it is still
 * used, and read again in the background, so a device in use never waits on
 * the directory. Older, the request waits for a read; if that read fails, an
 * entry younger than STALE_IF_ERROR_MS is used rather than failing the
 * request. Reads go to any read replica (D1 Sessions API,
 * "first-unconstrained"); a row a replica does not have yet is read again
 * from the primary. DIRECTORY_CACHE = "off" reads the primary every time.
 */
import { waitUntil } from "cloudflare:workers";

/** Younger than this, an entry is used without reading the directory. */
export const FRESH_MS = 15_000;
/** Older than this, an entry is read again before it is used: the most a sign-out in another isolate lags. */
export const TTL_MS = 30_000;
/** While the directory fails, an entry this young is still used: no older than an access token lives. */
export const STALE_IF_ERROR_MS = 15 * 60_000;
const MAX_ENTRIES = 10_000;

/** The clock the caches age by; tests move it instead of waiting. */
export const directoryClock = { now: (): number => Date.now() };

/** Runs work after the answer (ExecutionContext.waitUntil). */
export type Background = (work: Promise<unknown>) => void;

/** A connection to the directory for reads: the primary, or a session that any replica may serve. */
export type DirectoryReader = D1Database | D1DatabaseSession;

interface DirectoryEnv {
	DIRECTORY: D1Database;
	DIRECTORY_CACHE?: string;
}

/** Whether the caches are on (DIRECTORY_CACHE is anything but "off"). */
export function directoryCacheOn(env: { DIRECTORY_CACHE?: string }): boolean {
	return env.DIRECTORY_CACHE !== "off";
}

/** Reads from the nearest replica, and from the primary when the replica has no row (it may not have a new one yet). */
async function readNearest<T>(env: DirectoryEnv, read: (db: DirectoryReader) => Promise<T | null>): Promise<T | null> {
	return (await read(env.DIRECTORY.withSession("first-unconstrained"))) ?? read(env.DIRECTORY);
}

interface Entry<T> {
	value: T;
	userId: string;
	at: number;
	refreshing: boolean;
}

const caches: DirectoryCache<unknown>[] = [];

/** Drops everything every cache of this isolate holds about a user (after their shard changes, say). */
export function forgetUser(userId: string): void {
	for (const cache of caches) cache.forgetUser(userId);
}

/** One kind of directory fact, by key, remembered per isolate. */
export class DirectoryCache<T> {
	readonly #entries = new Map<string, Entry<T>>();
	readonly #pending = new Map<string, Promise<T | null>>();
	// Bumped by every forget: a read that started before one does not store what it read.
	#generation = 0;

	constructor() {
		caches.push(this as DirectoryCache<unknown>);
	}

	/**
	 * The fact at `key` (about `userId`), from memory or `read`; null when
	 * `read` finds none (not remembered). Throws when the directory fails and
	 * nothing young enough is remembered.
	 */
	async get(
		env: DirectoryEnv,
		key: string,
		userId: string,
		read: (db: DirectoryReader) => Promise<T | null>,
		background: Background = waitUntil,
	): Promise<T | null> {
		if (!directoryCacheOn(env)) return read(env.DIRECTORY);
		const now = directoryClock.now();
		const entry = this.#entries.get(key);
		const age = entry === undefined ? Infinity : now - entry.at;
		if (entry !== undefined && age < TTL_MS) {
			if (age >= FRESH_MS && !entry.refreshing) {
				entry.refreshing = true;
				background(
					this.#load(env, key, userId, read, now).catch((err: unknown) => {
						entry.refreshing = false;
						console.warn(JSON.stringify({ event: "directory_refresh_failed", error: String(err) }));
					}),
				);
			}
			return entry.value;
		}
		try {
			return await this.#load(env, key, userId, read, now);
		} catch (err) {
			if (entry !== undefined && age < STALE_IF_ERROR_MS) return entry.value;
			throw err;
		}
	}

	/** Drops the entry at `key`. */
	forget(key: string): void {
		this.#generation++;
		this.#entries.delete(key);
	}

	/** Drops every entry about `userId`. */
	forgetUser(userId: string): void {
		this.#generation++;
		for (const [key, entry] of this.#entries) if (entry.userId === userId) this.#entries.delete(key);
	}

	/** One read per key at a time: concurrent requests of a device that is not remembered share it. */
	#load(env: DirectoryEnv, key: string, userId: string, read: (db: DirectoryReader) => Promise<T | null>, now: number) {
		let pending = this.#pending.get(key);
		if (pending === undefined) {
			const generation = this.#generation;
			pending = readNearest(env, read)
				.then((value) => {
					if (generation === this.#generation) this.#store(key, userId, value, now);
					return value;
				})
				.finally(() => this.#pending.delete(key));
			this.#pending.set(key, pending);
		}
		return pending;
	}

	#store(key: string, userId: string, value: T | null, now: number): void {
		this.#entries.delete(key);
		if (value === null) return;
		// Insertion order is age order: drop the oldest when full.
		if (this.#entries.size >= MAX_ENTRIES) this.#entries.delete(this.#entries.keys().next().value ?? "");
		this.#entries.set(key, { value, userId, at: now, refreshing: false });
	}
}
