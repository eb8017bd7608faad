/**
 * Baselines for `npm run bench` under /_bench, mounted by bench/worker.ts
 * only: the production app (workers/api/app.ts) never has them.
 */
import { Hono } from "hono";
import { Chunker, chunkBoundaries, chunkerScanner } from "../src/shared/chunking";
import { MAX_REQUEST_BYTES } from "../src/shared/limits";
import type { AppEnv } from "../workers/api/env";
import { keyRing, STORE_CONCURRENCY } from "../workers/api/services/block-store";
import { byobChunks } from "../workers/api/services/body";
import { ingest } from "../workers/api/services/ingest";

export const benchRoutes = new Hono<AppEnv>();

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
