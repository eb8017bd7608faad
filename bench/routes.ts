/**
 * Baselines for `npm run bench` under /_bench, mounted by bench/worker.ts
 * only: the production app (workers/api/app.ts) never has them.
 */
import { Hono } from "hono";
import { Chunker, chunkBoundaries, chunkerScanner } from "../src/shared/chunking";
import { blockObjectKey } from "../src/shared/blocks";
import { runBatch } from "../src/shared/db/batch";
import { slices } from "../src/shared/db/lists";
import { shardCount } from "../src/shared/db/shards";
import { MAX_REQUEST_BYTES } from "../src/shared/limits";
import type { AppEnv } from "../workers/api/env";
import { keyRing, STORE_CONCURRENCY } from "../workers/api/services/block-store";
import { byobChunks } from "../workers/api/services/body";
import { allShards, enqueueCandidates, GC_GRACE_MS } from "../workers/api/services/gc";
import { runUnit, startRuns, type GcUnit } from "../workers/api/services/gc-queue";
import { ingest } from "../workers/api/services/ingest";
import { d1Times } from "./d1-timing";

export const benchRoutes = new Hono<AppEnv>();

/** The api worker's D1 queries and their time per binding since the last reset (`?reset=1` zeroes them): the capacity section's per-request cost. */
benchRoutes.get("/d1-times", (c) => c.json(d1Times(c.req.query("reset") === "1")));

/** Raw R2 put of the request body: the ceiling our upload path is compared with. */
benchRoutes.put("/raw/:key", async (c) => {
	const length = Number(c.req.header("Content-Length"));
	const body = c.req.raw.body;
	if (!body || !Number.isFinite(length)) return c.text("Content-Length required", 400);
	const started = Date.now();
	const object = await c.env.BLOBS.put(`bench/${c.req.param("key")}`, body.pipeThrough(new FixedLengthStream(length)));
	return c.json({ size: object?.size ?? 0, ms: Date.now() - started });
});

/** One read of a shard (the user_usage row of nobody), nothing else: what one D1 round trip costs a request, the ceiling of any read that touches D1. */
benchRoutes.get("/d1", async (c) => {
	const row = await c.env.SHARD_0.prepare("SELECT version_bytes FROM user_usage WHERE user_id = ?1").bind("usr_nobody").first();
	return c.json({ found: row !== null });
});

/**
 * The body stored as 1 MiB R2 objects, three puts in flight, nothing else:
 * what the block layout (one object per ~1 MiB block) costs in storage alone,
 * so the report can separate that from our own work (hash, chunk, encrypt,
 * commit). Not the baseline, which is one put of the whole body.
 */
benchRoutes.put("/raw-blocks/:key", async (c) => {
	const body = c.req.raw.body;
	if (!body) return c.text("body required", 400);
	const inFlight = new Set<Promise<unknown>>();
	let objects = 0;
	let size = 0;
	for await (const piece of byobChunks(body)) {
		while (inFlight.size >= STORE_CONCURRENCY) await Promise.race(inFlight);
		const put: Promise<unknown> = c.env.BLOBS.put(`bench/${c.req.param("key")}/${objects++}`, piece.slice()).finally(() =>
			inFlight.delete(put),
		);
		inFlight.add(put);
		size += piece.byteLength;
	}
	await Promise.all(inFlight);
	return c.json({ size, objects });
});

/** Reads and discards the body: what receiving alone costs (time and memory). */
benchRoutes.put("/drain", async (c) => {
	let bytes = 0;
	const reader = c.req.raw.body?.getReader();
	for (;;) {
		if (!reader) break;
		const { done, value } = await reader.read();
		if (done) break;
		bytes += value.byteLength;
	}
	return c.json({ bytes });
});

/** Like /drain, reading into one reused buffer (BYOB): how much of receiving's memory is per-chunk garbage. */
benchRoutes.put("/drain-byob", async (c) => {
	let bytes = 0;
	const body = c.req.raw.body;
	if (body) {
		const reader = body.getReader({ mode: "byob" });
		let buffer = new ArrayBuffer(1 << 20);
		for (;;) {
			const { done, value } = await reader.read(new Uint8Array(buffer));
			if (done || !value) break;
			bytes += value.byteLength;
			buffer = value.buffer;
		}
	}
	return c.json({ bytes });
});

/**
 * The upload pipeline (chunk, hash, encrypt) with an R2 that discards
 * writes: separates our processing cost from the storage simulator's.
 */
benchRoutes.put("/ingest-null", async (c) => {
	const nullBucket = {
		put: async (_key: string, value: ReadableStream) => {
			await new Response(value).arrayBuffer();
			return null;
		},
	} as unknown as R2Bucket;
	const started = performance.now();
	const result = await ingest(nullBucket, keyRing(c.env), c.req.raw.body, { maxBytes: MAX_REQUEST_BYTES });
	return c.json({ ok: result.ok, blocks: result.ok ? result.value.blocks.length : 0, ms: performance.now() - started });
});

/** Raw R2 get: the ceiling for downloads. */
benchRoutes.get("/raw/:key", async (c) => {
	const object = await c.env.BLOBS.get(`bench/${c.req.param("key")}`);
	if (!object) return c.text("not found", 404);
	return c.body(object.body, 200, { "Content-Length": String(object.size) });
});

/** Chunker and SHA-256 throughput inside workerd, on data generated here. */
benchRoutes.get("/chunker", async (c) => {
	const mib = Math.min(Number(c.req.query("mib") ?? "128"), 512);
	const data = new Uint8Array(mib * 1024 * 1024);
	const words = new Uint32Array(data.buffer);
	let x = 2463534242;
	for (let i = 0; i < words.length; i++) {
		x ^= x << 13;
		x ^= x >>> 17;
		x ^= x << 5;
		words[i] = x >>> 0;
	}
	// workerd freezes Date.now() during synchronous code (Spectre
	// mitigation); performance.now() advances after I/O, so each timed
	// section ends with a trivial awaited I/O.
	const tick = async () => {
		await scheduler.wait(0);
		return performance.now();
	};
	let best = { chunker: Infinity, streaming: Infinity, sha: Infinity };
	let chunks = 0;
	let streamedChunks = 0;
	for (let run = 0; run < 3; run++) {
		const t0 = await tick();
		chunks = chunkBoundaries(data).length;
		const t1 = await tick();
		// As the upload paths run it: the streaming Chunker over 1 MiB pieces,
		// with the gear loop the worker installed (workers/api/index.ts).
		const chunker = new Chunker();
		streamedChunks = 0;
		for (let at = 0; at < data.byteLength; at += 1 << 20)
			for (const _ of chunker.views(data.subarray(at, at + (1 << 20)))) streamedChunks++;
		if (chunker.finish() !== null) streamedChunks++;
		const t2 = await tick();
		await crypto.subtle.digest("SHA-256", data);
		const t3 = await tick();
		best = { chunker: Math.min(best.chunker, t1 - t0), streaming: Math.min(best.streaming, t2 - t1), sha: Math.min(best.sha, t3 - t2) };
	}
	const mb = data.byteLength / 1e6;
	return c.json({
		bytes: data.byteLength,
		chunks,
		chunker_mb_s: mb / (best.chunker / 1000),
		streaming_chunks: streamedChunks,
		streaming_mb_s: mb / (best.streaming / 1000),
		streaming_loop: chunkerScanner(),
		sha256_mb_s: mb / (best.sha / 1000),
	});
});

/** Bytes of each block object the collector's bench seeds: the sweep never reads them, so their size only costs the seeding. */
const SEED_BLOCK_BYTES = 1024;

/** Puts in flight while seeding. */
const SEED_CONCURRENCY = 8;

/**
 * `POST /_bench/gc/seed {n, prefixes?}`: n block objects in R2, each queued
 * as a collector candidate in the shard its hash falls in, both now (the
 * sweep judges them at a `now` past the grace period). Their hashes are
 * random, in the first `prefixes` of the 256 `blocks/<hh>/` prefixes (all of
 * them by default): how many of a sweep's hashes share a prefix decides
 * whether it lists or heads (services/gc.ts, LIST_FROM).
 */
benchRoutes.post("/gc/seed", async (c) => {
	const body = await c.req.json<{ n?: unknown; prefixes?: unknown }>();
	const n = Number(body.n);
	const prefixes = Number(body.prefixes ?? 256);
	if (!Number.isInteger(n) || n < 1 || n > 100_000) return c.text("n: an integer from 1 to 100000", 400);
	if (!Number.isInteger(prefixes) || prefixes < 1 || prefixes > 256) return c.text("prefixes: an integer from 1 to 256", 400);
	const started = performance.now();
	const hashes = Array.from({ length: n }, () => {
		const bytes = crypto.getRandomValues(new Uint8Array(32));
		bytes[0] = (bytes[0] as number) % prefixes;
		return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
	});
	const content = crypto.getRandomValues(new Uint8Array(SEED_BLOCK_BYTES));
	for (const group of slices(hashes, SEED_CONCURRENCY)) await Promise.all(group.map((h) => c.env.BLOBS.put(blockObjectKey(h), content)));
	const shards = allShards(c.env);
	const now = Date.now();
	const byShard = shards.map((db, i) => ({ db, mine: hashes.filter((h) => Number.parseInt(h.slice(0, 8), 16) % shards.length === i) }));
	await Promise.all(
		byShard.filter(({ mine }) => mine.length > 0).map(({ db, mine }) => runBatch(db.$client, enqueueCandidates(db, mine, now))),
	);
	return c.json({ seeded: n, ms: performance.now() - started });
});

/** R2 calls of one kind during a sweep: how many, what they carried, and the wall time at least one was in flight. */
interface R2Calls {
	calls: number;
	keys: number;
	ms: number;
}

/**
 * `bucket` with its calls timed, for a sweep that runs alone: on the local
 * runtime's one thread, that splits the sweep's time between R2 and the rest
 * (D1 and our own code). Only what the sweep calls (head, list, delete).
 */
function timedBucket(bucket: R2Bucket, seen: Record<"head" | "list" | "delete", R2Calls>): R2Bucket {
	const active = { head: 0, list: 0, delete: 0 };
	const since = { head: 0, list: 0, delete: 0 };
	const time = async <T>(kind: keyof typeof active, keys: (result: T) => number, work: () => Promise<T>): Promise<T> => {
		if (active[kind]++ === 0) since[kind] = performance.now();
		try {
			const result = await work();
			seen[kind].keys += keys(result);
			return result;
		} finally {
			seen[kind].calls++;
			if (--active[kind] === 0) seen[kind].ms += performance.now() - since[kind];
		}
	};
	return {
		head: (key: string) =>
			time(
				"head",
				() => 1,
				() => bucket.head(key),
			),
		list: (options?: R2ListOptions) =>
			time(
				"list",
				(listed: R2Objects) => listed.objects.length,
				() => bucket.list(options),
			),
		delete: (keys: string | string[]) =>
			time(
				"delete",
				() => (Array.isArray(keys) ? keys.length : 1),
				() => bucket.delete(keys),
			),
	} as unknown as R2Bucket;
}

/**
 * `POST /_bench/gc/sweep {serial?}`: one sweep unit per shard, all at once
 * as parallel queue consumers would run them (one shard after the other
 * with `serial`, its R2 calls timed), each followed by its successors until
 * none is due; the policy's clock is past the grace period of everything
 * queued so far. The counts are the units' own progress rows (lifecycle_runs).
 */
benchRoutes.post("/gc/sweep", async (c) => {
	const body = await c.req.json<{ serial?: unknown }>();
	const serial = body.serial === true;
	const r2 = { head: { calls: 0, keys: 0, ms: 0 }, list: { calls: 0, keys: 0, ms: 0 }, delete: { calls: 0, keys: 0, ms: 0 } };
	const bucket = serial ? timedBucket(c.env.BLOBS, r2) : c.env.BLOBS;
	const now = Date.now() + 2 * GC_GRACE_MS;
	const started = new Date(now).toISOString();
	const units: GcUnit[] = Array.from({ length: shardCount(c.env) }, (_, shard) => ({ kind: "sweep", shard, started, now }));
	const t0 = performance.now();
	await startRuns(c.env, units);
	const succession = async (first: GcUnit) => {
		let next: GcUnit[] = [first];
		while (next.length > 0) {
			const sent: GcUnit[] = [];
			for (const unit of next) await runUnit(c.env, bucket, unit, async (successors) => void sent.push(...successors));
			next = sent;
		}
	};
	if (serial) for (const unit of units) await succession(unit);
	else await Promise.all(units.map(succession));
	const ms = performance.now() - t0;
	const row = await c.env.DIRECTORY.prepare(
		"SELECT SUM(examined) AS examined, SUM(deleted) AS deleted FROM lifecycle_runs WHERE task = 'sweep' AND started_at = ?1",
	)
		.bind(started)
		.first<{ examined: number; deleted: number }>();
	return c.json({ examined: row?.examined ?? 0, deleted: row?.deleted ?? 0, ms, ...(serial ? { r2 } : {}) });
});

/** `GET /_bench/gc/tombstones`: each shard's tombstones and deletion records, which every tombstone insert and every commit's guard look up. */
benchRoutes.get("/gc/tombstones", async (c) => {
	const counts = await Promise.all(
		allShards(c.env).map((db) => db.$client.prepare("SELECT COUNT(*) AS n FROM doomed_blocks").first<{ n: number }>()),
	);
	return c.json({ perShard: counts.map((row) => row?.n ?? 0) });
});
