/**
 * The shard databases: SHARD_0 .. SHARD_{n-1} in both workers' configs. The
 * directory says which shard holds each user (docs/decisions/0002).
 */
import { drizzle, type DrizzleD1Database } from "drizzle-orm/d1";

export type ShardDb = DrizzleD1Database & { $client: D1Database };

/** How many shards the config binds. */
export function shardCount(env: object): number {
	let n = 0;
	while (`SHARD_${n}` in env) n++;
	return n;
}

/** The D1 binding of shard `index`; throws on a bad index (a bug, not input). */
export function shardBinding(env: object, index: number): D1Database {
	const db = (env as Record<string, unknown>)[`SHARD_${index}`];
	if (!db || typeof db !== "object" || !("prepare" in db)) throw new Error(`no D1 binding SHARD_${index}`);
	return db as D1Database;
}

/** Wraps a shard's D1 binding for drizzle. */
export function openShard(d1: D1Database): ShardDb {
	return wrapD1(d1);
}

/** Wraps any D1 binding for drizzle, once per binding: building the wrapper is not free, and every request needs one. */
export function wrapD1(d1: D1Database): DrizzleD1Database & { $client: D1Database } {
	let db = wrapped.get(d1);
	if (db === undefined) {
		db = drizzle(d1);
		wrapped.set(d1, db);
	}
	return db;
}

const wrapped = new WeakMap<D1Database, DrizzleD1Database & { $client: D1Database }>();

/** Shard `index` of `env`, ready for queries. */
export function shardAt(env: object, index: number): ShardDb {
	return openShard(shardBinding(env, index));
}

/**
 * The shard that keeps a block's own bookkeeping (collector candidates found
 * by listing, its storage tier): the hash spreads blocks evenly, and every
 * worker finds the same shard without a lookup.
 */
export function blockShardIndex(hash: string, count: number): number {
	return Number.parseInt(hash.slice(0, 8), 16) % count;
}
