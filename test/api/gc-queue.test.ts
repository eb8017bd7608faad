/**
 * The block collector's units on the `drive-gc` queue (docs/decisions/0027):
 * the cron schedules them, the api worker's consumer runs them, and the
 * orphan listing finds objects nothing recorded. Units are driven through the
 * real consumer (createMessageBatch) or run at once (inlineSink), with the
 * policy's clock in the unit: never timed.
 */
import { createExecutionContext, createMessageBatch, getQueueResult } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { blockObjectKey } from "../../src/shared/blocks";
import { shardCount } from "../../src/shared/db/shards";
import worker from "../../workers/api/index";
import { allShards, enqueueCandidates, LIST_FROM, sweep, uploadedTimes } from "../../workers/api/services/gc";
import {
	BLOCK_PREFIXES,
	inlineSink,
	runUnit,
	scheduleCollection,
	startRuns,
	SWEEP_UNIT_CANDIDATES,
	type GcUnit,
} from "../../workers/api/services/gc-queue";
import { runBatch } from "../../src/shared/db/batch";
import { randomBytes, shardOfUser, signup, upload } from "./helpers";

const HOUR = 3_600_000;

let seed = 0x9c00;

/** A random block hash starting with `prefix` (two hex digits), if given. */
function randomHash(prefix = ""): string {
	const bytes = randomBytes(32, seed++);
	const hex = Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
	return prefix + hex.slice(prefix.length);
}

/** Objects stored straight into BLOBS, as a PUT killed before its commit leaves them: no record anywhere. */
async function strayObjects(hashes: string[]): Promise<void> {
	for (const hash of hashes) await env.BLOBS.put(blockObjectKey(hash), randomBytes(256, seed++));
}

async function exists(hash: string): Promise<boolean> {
	return (await env.BLOBS.head(blockObjectKey(hash))) !== null;
}

/** A block a user's committed file references. */
async function referencedBlock(): Promise<string> {
	const user = await signup();
	await upload(user, user.rootId, "kept.bin", randomBytes(4096, seed++));
	const shard = await shardOfUser(user.id);
	const row = await shard.prepare("SELECT hash FROM user_blocks WHERE user_id = ?").bind(user.id).first<{ hash: string }>();
	if (!row) throw new Error("the upload references no block");
	return row.hash;
}

/** The units a cron run at `now` schedules, without running them. */
async function scheduled(now: number): Promise<GcUnit[]> {
	const units: GcUnit[] = [];
	await scheduleCollection(env, async (sent) => void units.push(...sent), now);
	return units;
}

interface RunRow {
	examined: number;
	deleted: number;
	queued: number;
	finished_at: string | null;
}

async function progressOf(task: string, prefix: string): Promise<RunRow | null> {
	return env.DIRECTORY.prepare("SELECT examined, deleted, queued, finished_at FROM lifecycle_runs WHERE task = ? AND prefix = ?")
		.bind(task, prefix)
		.first<RunRow>();
}

/** Delivers `units` to the api worker's queue consumer, as the queue would, and returns what it acknowledged and retried. */
async function deliver(units: GcUnit[]): Promise<{ acked: string[]; retried: string[] }> {
	const batch = createMessageBatch<GcUnit>(
		"drive-gc",
		units.map((body, i) => ({ id: `m${i}`, timestamp: new Date(), attempts: 1, body })),
	);
	const ctx = createExecutionContext();
	await worker.queue(batch, env);
	const result = await getQueueResult(batch, ctx);
	return { acked: result.explicitAcks, retried: result.retryMessages.map((m) => m.msgId) };
}

describe("collector units on the queue", () => {
	it("the cron schedules one sweep per shard and, once a week, a listing of every prefix", async () => {
		const now = Date.now() + 30 * 86_400_000;
		const first = await scheduled(now);
		expect(first.filter((u) => u.kind === "sweep").map((u) => (u.kind === "sweep" ? u.shard : -1))).toEqual(
			Array.from({ length: shardCount(env) }, (_, i) => i),
		);
		expect(first.filter((u) => u.kind === "scan").map((u) => (u.kind === "scan" ? u.prefix : ""))).toEqual(BLOCK_PREFIXES);
		expect((await scheduled(now + HOUR)).every((u) => u.kind === "sweep")).toBe(true);
		expect((await scheduled(now + 8 * 86_400_000)).some((u) => u.kind === "scan")).toBe(true);
	});

	it("a sweep unit delivered to the consumer deletes unreferenced candidates, spares referenced ones, and reports progress", async () => {
		const kept = await referencedBlock();
		const garbage = [randomHash(), randomHash(), randomHash()];
		await strayObjects(garbage);
		const [home] = allShards(env);
		if (!home) throw new Error("no shard");
		const queuedAt = Date.now();
		await runBatch(home.$client, enqueueCandidates(home, [...garbage, kept], queuedAt));

		const now = queuedAt + 2 * HOUR;
		const units = (await scheduled(now)).filter((u) => u.kind === "sweep" && u.shard === 0);
		expect(units).toHaveLength(1);
		const { acked, retried } = await deliver(units);
		expect(acked).toEqual(["m0"]);
		expect(retried).toEqual([]);

		for (const hash of garbage) expect(await exists(hash)).toBe(false);
		expect(await exists(kept)).toBe(true);
		const row = await progressOf("sweep", "shard/0");
		expect(row?.examined).toBeGreaterThanOrEqual(4);
		expect(row?.deleted).toBeGreaterThanOrEqual(3);
		expect(row?.finished_at).not.toBeNull();
	});

	it("a sweep unit that took as many candidates as it may sends its successor, which finishes the run", async () => {
		const shards = allShards(env);
		const shard = Math.min(2, shards.length - 1);
		const home = shards[shard];
		if (!home) throw new Error("no shard");
		const queuedAt = Date.now();
		const hashes = Array.from({ length: SWEEP_UNIT_CANDIDATES + 1 }, () => randomHash());
		await runBatch(home.$client, enqueueCandidates(home, hashes, queuedAt));
		const now = queuedAt + 2 * HOUR;
		const unit: GcUnit = { kind: "sweep", shard, started: new Date(now).toISOString(), now };
		await startRuns(env, [unit]);

		const sent: GcUnit[] = [];
		const capture = async (units: GcUnit[]) => void sent.push(...units);
		await runUnit(env, env.BLOBS, unit, capture);
		expect(sent).toEqual([unit]);
		expect((await progressOf("sweep", `shard/${shard}`))?.finished_at).toBeNull();
		await runUnit(env, env.BLOBS, unit, capture);
		expect(sent).toHaveLength(1);
		const row = await progressOf("sweep", `shard/${shard}`);
		expect(row?.examined).toBeGreaterThanOrEqual(hashes.length);
		expect(row?.finished_at).not.toBeNull();
	});

	it("a unit that fails is retried by the queue, not acknowledged", async () => {
		const unit: GcUnit = { kind: "sweep", shard: shardCount(env) + 5, started: new Date().toISOString() };
		expect(await deliver([unit])).toEqual({ acked: [], retried: ["m0"] });
	});
});

describe("orphans", () => {
	it("an object nothing recorded is queued after 24 hours and deleted after the grace period; referenced blocks of its prefix stay", async () => {
		const kept = await referencedBlock();
		const prefix = kept.slice(0, 2);
		const orphans = [randomHash(prefix), randomHash(prefix)];
		await strayObjects(orphans);
		const written = Date.now();
		const sink = inlineSink(env);
		const orphanUnit = (now: number): GcUnit => ({
			kind: "scan",
			prefix: `blocks/${prefix}/`,
			started: new Date(now).toISOString(),
			now,
		});
		const sweeps = (now: number): GcUnit[] =>
			Array.from({ length: shardCount(env) }, (_, shard): GcUnit => ({ kind: "sweep", shard, started: new Date(now).toISOString(), now }));

		// A day has not passed: an upload may still commit them.
		await runUnit(env, env.BLOBS, orphanUnit(written + 23 * HOUR), sink);
		await sink(sweeps(written + 23 * HOUR + 2 * HOUR));
		for (const hash of orphans) expect(await exists(hash)).toBe(true);

		// Found after a day, but only candidates: swept once they have waited the grace period.
		const found = written + 25 * HOUR;
		await startRuns(env, [orphanUnit(found)]);
		await runUnit(env, env.BLOBS, orphanUnit(found), sink);
		expect((await progressOf("scan", `blocks/${prefix}/`))?.queued).toBe(orphans.length);
		await sink(sweeps(found + 30 * 60_000));
		for (const hash of orphans) expect(await exists(hash)).toBe(true);

		await sink(sweeps(found + 2 * HOUR));
		for (const hash of orphans) expect(await exists(hash)).toBe(false);
		expect(await exists(kept)).toBe(true);
	});
});

/** BLOBS, counting the heads and listings a sweep makes. */
function countingBucket(): { bucket: R2Bucket; heads: () => number; lists: () => number } {
	let heads = 0;
	let lists = 0;
	const bucket = new Proxy(env.BLOBS, {
		get(target, p) {
			if (p === "head") return (key: string) => (heads++, target.head(key));
			if (p === "list") return (options?: R2ListOptions) => (lists++, target.list(options));
			const value: unknown = Reflect.get(target, p);
			return typeof value === "function" ? (value as (...a: unknown[]) => unknown).bind(target) : value;
		},
	});
	return { bucket, heads: () => heads, lists: () => lists };
}

describe("uploaded times by listing", () => {
	it("many candidates of one prefix are read from a listing, not a head each, with the same verdicts", async () => {
		const prefix = "7d";
		const hashes = Array.from({ length: LIST_FROM + 10 }, () => randomHash(prefix));
		const few = [randomHash("3a"), randomHash("3a")];
		await strayObjects([...hashes, ...few]);
		const counted = countingBucket();
		const times = await uploadedTimes(counted.bucket, [...hashes, ...few, randomHash(prefix)]);
		expect(counted.lists()).toBe(1);
		expect(counted.heads()).toBe(few.length);
		expect([...times.keys()].sort()).toEqual([...hashes, ...few].sort());
		for (const hash of hashes) expect(times.get(hash)).toBe((await env.BLOBS.head(blockObjectKey(hash)))?.uploaded.getTime());

		// Within the grace period every one is spared; past it, every one goes.
		const shards = allShards(env);
		const home = shards[1] ?? shards[0];
		if (!home) throw new Error("no shard");
		const spared = await sweep({ shards, home, bucket: counted.bucket, now: Date.now(), graceMs: HOUR }, hashes);
		expect(spared.deleted).toEqual([]);
		const swept = await sweep({ shards, home, bucket: counted.bucket, now: Date.now() + 2 * HOUR, graceMs: HOUR }, hashes);
		expect(swept.deleted.sort()).toEqual([...hashes].sort());
		expect(counted.heads()).toBe(few.length);
		for (const hash of hashes) expect(await exists(hash)).toBe(false);
	});
});
