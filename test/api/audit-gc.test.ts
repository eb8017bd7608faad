/**
 * Regression tests for the audit's findings on block collection (H2, H4,
 * M9, M10, L9 in /work/shared/notes/audit.md; docs/decisions/0017).
 *
 * Races are staged, never timed: the collector runs against the real BLOBS
 * binding behind a wrapper that can hold one call (GatedBucket), and the
 * test does what the race needs while it is held. Where a test must wait for
 * the worker to have stored a block, it waits for R2 to show it.
 */
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { blockObjectKey } from "../../src/shared/blocks";
import { chunkBoundaries } from "../../src/shared/chunking";
import { openShard, shardBinding, shardCount } from "../../src/shared/db/shards";
import { runHousekeeping as housekeeping } from "../../workers/api/scheduled";
import { collectBlocks, GC_CANDIDATES_PER_SHARD, readGcClock } from "../../workers/api/services/gc";
import { inlineSink } from "../../workers/api/services/gc-queue";
import { ingestAndCommit } from "../../workers/api/services/ingest";
import { cleanupUploads } from "../../workers/api/services/uploads";
import { Journal } from "../../workers/notify/journal";
import { Sharing } from "../../workers/notify/sharing";
import { Usage } from "../../workers/notify/usage";
import { commitUpload } from "../../workers/notify/tree-ops";
import {
	blobKeys,
	bytesEqual,
	call,
	download,
	expectError,
	expectJson,
	listAll,
	put,
	randomBytes,
	sha256,
	shardOfUser,
	signup,
	withQuota,
	type TestUser,
} from "./helpers";

const MiB = 1024 * 1024;
const HOUR = 3_600_000;

interface Block {
	hash: string;
	bytes: Uint8Array;
}

let seed = 0x6c00;

async function block(size = 64 * 1024): Promise<Block> {
	const bytes = randomBytes(size, seed++);
	return { hash: await sha256(bytes), bytes };
}

interface Status {
	upload_id: string;
	missing: string[];
}

async function createSession(user: TestUser, name: string, blocks: Block[], extra: Record<string, unknown> = {}): Promise<Status> {
	const size = blocks.reduce((n, b) => n + b.bytes.byteLength, 0);
	const listed = blocks.map((b) => ({ hash: b.hash, size: b.bytes.byteLength }));
	const res = await call("/v1/uploads", {
		method: "POST",
		token: user.token,
		body: JSON.stringify({ parent_id: user.rootId, name, size, blocks: listed, ...extra }),
	});
	return expectJson<Status>(res, 201);
}

async function sendBlock(user: TestUser, uploadId: string, b: Block): Promise<void> {
	const res = await call(`/v1/uploads/${uploadId}/blocks/${b.hash}`, { method: "PUT", token: user.token, body: b.bytes });
	if (res.status !== 204) throw new Error(`PUT block: ${res.status} ${await res.text()}`);
}

async function cancel(user: TestUser, uploadId: string): Promise<void> {
	const res = await call(`/v1/uploads/${uploadId}`, { method: "DELETE", token: user.token });
	if (res.status !== 204) throw new Error(`DELETE upload: ${res.status} ${await res.text()}`);
}

/** A session that received `blocks` and was then cancelled: their only record is that session. */
async function abandoned(blocks: Block[]): Promise<void> {
	const user = await signup();
	const session = await createSession(user, "abandoned.bin", blocks);
	for (const b of blocks) await sendBlock(user, session.upload_id, b);
	await cancel(user, session.upload_id);
}

/**
 * Commits a session as a client does: a 409 MISSING_BLOCKS is answered by
 * sending what it lists and committing again. Returns every status.
 */
async function commitLikeAClient(user: TestUser, uploadId: string, blocks: Block[]): Promise<{ statuses: number[]; nodeId: string }> {
	const byHash = new Map(blocks.map((b) => [b.hash, b]));
	const statuses: number[] = [];
	for (let round = 0; round < 4; round++) {
		const res = await call(`/v1/uploads/${uploadId}/commit`, { method: "POST", token: user.token, body: "{}" });
		statuses.push(res.status);
		if (res.status === 201 || res.status === 200)
			return { statuses, nodeId: (await expectJson<{ node: { id: string } }>(res, res.status)).node.id };
		const refusal = await expectError(res, 409, "MISSING_BLOCKS");
		for (const hash of refusal.error.details as string[]) {
			const b = byHash.get(hash);
			if (!b) throw new Error(`asked for unknown block ${hash}`);
			await sendBlock(user, uploadId, b);
		}
	}
	throw new Error(`never committed: ${statuses.join(", ")}`);
}

function concat(blocks: Block[]): Uint8Array {
	const out = new Uint8Array(blocks.reduce((n, b) => n + b.bytes.byteLength, 0));
	let at = 0;
	for (const b of blocks) {
		out.set(b.bytes, at);
		at += b.bytes.byteLength;
	}
	return out;
}

async function exists(hash: string): Promise<boolean> {
	return (await env.BLOBS.head(blockObjectKey(hash))) !== null;
}

/** The env the workers see, with another R2 binding or broken shards. */
function withBindings(overrides: Record<string, unknown>): Env {
	return { ...env, ...overrides } as Env;
}

/** A cron run whose collector units run at once, against `runEnv`'s bindings. */
function runHousekeeping(runEnv: Env, now: number): Promise<void> {
	return housekeeping(runEnv, now, inlineSink(runEnv, runEnv.BLOBS));
}

type Op = "head" | "delete";

/**
 * The real BLOBS binding, except that the next call of an operation on a
 * chosen key can be held until the test releases it, and operations can be
 * made to fail.
 */
class GatedBucket {
	readonly #holds: { op: Op; key: string; reached: () => void; released: Promise<void> }[] = [];
	readonly failing = new Set<Op>();
	/** Delete, then fail, as a Worker that dies right after R2 answered would. */
	failAfterDelete = false;

	constructor(private readonly inner: R2Bucket) {}

	/** Holds the next `op` on `key`: `reached` resolves once it is held, and it proceeds after `release()`. */
	hold(op: Op, key: string): { reached: Promise<void>; release: () => void } {
		let reached = (): void => undefined;
		let release = (): void => undefined;
		const reachedP = new Promise<void>((r) => (reached = r));
		const released = new Promise<void>((r) => (release = r));
		this.#holds.push({ op, key, reached, released });
		return { reached: reachedP, release };
	}

	async head(key: string): Promise<R2Object | null> {
		await this.#pass("head", [key]);
		return this.inner.head(key);
	}

	async delete(keys: string | string[]): Promise<void> {
		const list = Array.isArray(keys) ? keys : [keys];
		await this.#pass("delete", list);
		await this.inner.delete(list);
		if (this.failAfterDelete) throw new Error("the Worker died after R2 deleted (test)");
	}

	get(key: string): Promise<R2ObjectBody | null> {
		return this.inner.get(key);
	}

	put(key: string, value: ArrayBuffer | ArrayBufferView | string | null): Promise<R2Object | null> {
		return this.inner.put(key, value);
	}

	list(options?: R2ListOptions): Promise<R2Objects> {
		return this.inner.list(options);
	}

	get binding(): R2Bucket {
		return this as unknown as R2Bucket;
	}

	async #pass(op: Op, keys: string[]): Promise<void> {
		if (this.failing.has(op) && keys.some((k) => k.startsWith("blocks/"))) throw new Error(`R2 ${op} is unavailable (test)`);
		const i = this.#holds.findIndex((h) => h.op === op && keys.includes(h.key));
		const hold = i >= 0 ? this.#holds.splice(i, 1)[0] : undefined;
		if (!hold) return;
		hold.reached();
		await hold.released;
	}
}

/**
 * Runs the housekeeping cron at `times` one after the other, until one run
 * is held by `held` (that run is returned, still pending, wrapped so that
 * returning it does not wait for it) or all have run.
 */
async function runUntilHeld(runEnv: Env, times: number[], held: Promise<void>): Promise<{ run: Promise<void> } | null> {
	for (const t of times) {
		const run = runHousekeeping(runEnv, t);
		const outcome = await Promise.race([run.then(() => "ran" as const), held.then(() => "held" as const)]);
		if (outcome === "held") return { run };
	}
	return null;
}

/**
 * Cron runs past the grace period of every object the test wrote, two hours
 * apart (the collector takes a candidate an hour after it was queued), and
 * well before the test's live uploads expire.
 */
function cronTimes(count = 3): number[] {
	const start = Date.now() + 2 * HOUR;
	return Array.from({ length: count }, (_, i) => start + i * 2 * HOUR);
}

/** A block only a cancelled session had, and a cron run held at the collector's `op` on it; `finish` lets the run end. */
async function sweepHeldAt(op: Op): Promise<{ x: Block; finish: () => Promise<void> }> {
	const x = await block();
	await abandoned([x]);
	const gated = new GatedBucket(env.BLOBS);
	const held = gated.hold(op, blockObjectKey(x.hash));
	const holding = await runUntilHeld(withBindings({ BLOBS: gated.binding }), cronTimes(), held.reached);
	if (!holding) throw new Error(`no cron run reached the ${op} of the block`);
	const { run } = holding;
	return {
		x,
		finish: async () => {
			held.release();
			await run;
		},
	};
}

async function housekeepingAt(times: number[], runEnv: Env = env): Promise<void> {
	for (const t of times) await runHousekeeping(runEnv, t);
}

/** Waits until R2 holds an object under `key` other than the one tagged `etag` (or any, for null). */
async function untilWritten(key: string, etag: string | null): Promise<void> {
	for (;;) {
		const head = await env.BLOBS.head(key);
		if (head && head.etag !== etag) return;
	}
}

/** A PUT content whose body the test writes piece by piece. */
function streamedPut(
	user: TestUser,
	name: string,
	headers: Record<string, string> = {},
): { writer: WritableStreamDefaultWriter<Uint8Array>; response: Promise<Response> } {
	const { readable, writable } = new TransformStream<Uint8Array, Uint8Array>();
	const params = new URLSearchParams({ parent_id: user.rootId, name });
	const response = call(`/v1/files/content?${params}`, { method: "PUT", token: user.token, body: readable, headers });
	return { writer: writable.getWriter(), response };
}

async function write(writer: WritableStreamDefaultWriter<Uint8Array>, data: Uint8Array, from: number, to: number): Promise<void> {
	for (let at = from; at < to; at += MiB) await writer.write(data.slice(at, Math.min(to, at + MiB)));
}

/** The blocks the server's chunker cuts `data` into. */
async function chunksOf(data: Uint8Array): Promise<Block[]> {
	const out: Block[] = [];
	let at = 0;
	for (const length of chunkBoundaries(data)) {
		const bytes = data.slice(at, at + length);
		out.push({ hash: await sha256(bytes), bytes });
		at += length;
	}
	return out;
}

describe("H2: upload cleanup", () => {
	it("H2: removes more than 100 dead uploads of one shard, and collects their blocks over later runs", async () => {
		const user = await signup();
		const blocks: Block[] = [];
		const ids: string[] = [];
		for (let i = 0; i < 120; i++) {
			const b = await block(1024);
			const session = await createSession(user, `dead-${i}.bin`, [b]);
			await sendBlock(user, session.upload_id, b);
			await cancel(user, session.upload_id);
			blocks.push(b);
			ids.push(session.upload_id);
		}
		const shard = await shardOfUser(user.id);
		const [first, ...later] = cronTimes(4);
		await runHousekeeping(env, first as number);
		const left = await shard.prepare("SELECT COUNT(*) AS n FROM uploads WHERE user_id = ?").bind(user.id).first<{ n: number }>();
		expect(left?.n).toBe(0);
		await housekeepingAt(later);
		for (const b of blocks) expect(await exists(b.hash)).toBe(false);
	});

	it("H2: a shard that fails skips nothing in the other shards", async () => {
		let user = await signup();
		for (let i = 0; i < 40 && (await shardIndexOf(user)) === 0; i++) user = await signup();
		expect(await shardIndexOf(user)).toBeGreaterThan(0);
		const b = await block();
		const session = await createSession(user, "dead.bin", [b]);
		await sendBlock(user, session.upload_id, b);
		await cancel(user, session.upload_id);

		const broken = (): never => {
			throw new Error("SHARD_0 is unavailable (test)");
		};
		const runEnv = withBindings({ SHARD_0: { prepare: broken, batch: broken, exec: broken, dump: broken, withSession: broken } });
		await expect(runHousekeeping(runEnv, Date.now())).rejects.toThrow();
		const shard = await shardOfUser(user.id);
		const row = await shard.prepare("SELECT COUNT(*) AS n FROM uploads WHERE id = ?").bind(session.upload_id).first<{ n: number }>();
		expect(row?.n).toBe(0);
	});
});

async function shardIndexOf(user: TestUser): Promise<number> {
	const row = await env.DIRECTORY.prepare("SELECT shard FROM users WHERE id = ?").bind(user.id).first<{ shard: number }>();
	return row?.shard ?? -1;
}

describe("M10: candidates survive failures", () => {
	it("M10: blocks of removed uploads are still collected after R2 failed in earlier runs", async () => {
		const b = await block();
		await abandoned([b]);
		const failing = new GatedBucket(env.BLOBS);
		failing.failing.add("head").add("delete");
		const [t1, t2, t3, t4] = cronTimes(4) as [number, number, number, number];
		for (const t of [t1, t2]) await runHousekeeping(withBindings({ BLOBS: failing.binding }), t).catch(() => undefined);
		expect(await exists(b.hash)).toBe(true);
		await housekeepingAt([t3, t4]);
		expect(await exists(b.hash)).toBe(false);
	});

	it("M10: a sweep that dies after R2 deleted loses nothing, and a session that sent the block meanwhile sends it again", async () => {
		const x = await block();
		await abandoned([x]);
		const [t1, t2] = cronTimes(2) as [number, number];
		await cleanupUploads(env, env.BLOBS, t1);
		const dying = new GatedBucket(env.BLOBS);
		dying.failAfterDelete = true;
		const report = await collectBlocks(env, dying.binding, { now: t2 });
		expect(report.failures.length).toBeGreaterThanOrEqual(1);
		expect(await exists(x.hash)).toBe(false);

		// A session sends the block again while the dead sweep's tombstones are pending.
		const user = await signup();
		const session = await createSession(user, "after-crash.bin", [x]);
		await sendBlock(user, session.upload_id, x);
		const early = await call(`/v1/uploads/${session.upload_id}/commit`, { method: "POST", token: user.token, body: "{}" });
		expect((await expectError(early, 409, "MISSING_BLOCKS")).error.details).toEqual([x.hash]);

		// An hour later the next run settles them: recorded as deleted, queued again.
		for (let i = 0; i < shardCount(env); i++)
			await shardBinding(env, i).prepare("UPDATE doomed_blocks SET doomed_at = '2000-01-01T00:00:00.000Z' WHERE deleted_seq IS NULL").run();
		const next = await collectBlocks(env, env.BLOBS, { now: Date.now() + 2 * HOUR });
		expect(next.recovered).toBeGreaterThanOrEqual(1);
		const { nodeId } = await commitLikeAClient(user, session.upload_id, [x]);
		expect(bytesEqual((await download(user, nodeId)).bytes, x.bytes)).toBe(true);
	});
});

describe("M9: the sweep against uploads that need the block", () => {
	// With a declared content hash the commit goes straight to the hub; without, the api reads the blocks back first.
	it.each([
		["declares its content hash", true],
		["lets the server hash its content", false],
	])("M9: a session that sends a block between the collector's reference check and its delete keeps it (it %s)", async (_, declared) => {
		const { x, finish } = await sweepHeldAt("delete");

		// Held after the reference check, before R2's delete: another user sends the same block.
		const bob = await signup();
		const session = await createSession(bob, "raced.bin", [x], declared ? { content_hash: x.hash } : {});
		expect(session.missing).toEqual([x.hash]);
		await sendBlock(bob, session.upload_id, x);
		await finish();

		const { statuses, nodeId } = await commitLikeAClient(bob, session.upload_id, [x]);
		expect(bytesEqual((await download(bob, nodeId)).bytes, x.bytes)).toBe(true);
		// The first commit was refused: the block had been deleted after Bob sent it.
		expect(statuses[0]).toBe(409);
	});

	it("M9: a session that sends a block the collector has doomed is told to send it again, and the block is spared", async () => {
		const { x, finish } = await sweepHeldAt("head");

		const bob = await signup();
		const session = await createSession(bob, "doomed.bin", [x]);
		await sendBlock(bob, session.upload_id, x);
		const early = await call(`/v1/uploads/${session.upload_id}/commit`, { method: "POST", token: bob.token, body: "{}" });
		expect((await expectError(early, 409, "MISSING_BLOCKS")).error.details).toEqual([x.hash]);
		const status = await expectJson<Status>(await call(`/v1/uploads/${session.upload_id}`, { token: bob.token }), 200);
		expect(status.missing).toEqual([x.hash]);
		await finish();

		// The head saw Bob's write, newer than the tombstone: the block was spared.
		expect(await exists(x.hash)).toBe(true);
		const { nodeId } = await commitLikeAClient(bob, session.upload_id, [x]);
		expect(bytesEqual((await download(bob, nodeId)).bytes, x.bytes)).toBe(true);
	});

	it("M9: a PUT content whose block is deleted while its body streams is refused with 503, and its retry commits", async () => {
		const data = randomBytes(6 * MiB, seed++);
		const [x] = (await chunksOf(data)) as [Block];
		await abandoned([x]);
		const before = await env.BLOBS.head(blockObjectKey(x.hash));

		const bob = await signup();
		const { writer, response } = streamedPut(bob, "streamed.bin");
		await write(writer, data, 0, x.bytes.byteLength + 2 * MiB);
		await untilWritten(blockObjectKey(x.hash), before?.etag ?? null);
		// Bob's request has stored the block; the collector deletes it now.
		await housekeepingAt(cronTimes());
		expect(await exists(x.hash)).toBe(false);
		await write(writer, data, x.bytes.byteLength + 2 * MiB, data.byteLength);
		await writer.close();

		const refused = await response;
		await expectError(refused.clone(), 503, "BLOCKS_RECLAIMED");
		expect(refused.headers.get("Retry-After")).toBe("1");
		expect(await listAll(bob, bob.rootId)).toEqual([]);
		const retried = await expectJson<{ node: { id: string } }>(await put(bob, bob.rootId, "streamed.bin", data), 201);
		expect(bytesEqual((await download(bob, retried.node.id)).bytes, data)).toBe(true);
	});

	it("M9: a purge racing an upload that dedups onto the block never leaves the upload without it", async () => {
		const user = await signup();
		const x = await block();
		const y = await block();
		const first = await createSession(user, "first.bin", [x]);
		await sendBlock(user, first.upload_id, x);
		const kept = await commitLikeAClient(user, first.upload_id, [x]);
		// A second upload of the user lists x and need not send it: the user holds it.
		const second = await createSession(user, "second.bin", [x, y]);
		expect(second.missing).toEqual([y.hash]);
		await sendBlock(user, second.upload_id, y);

		// The purge (its route lands separately): the file goes, the user no longer holds x, x is queued.
		const shard = await shardOfUser(user.id);
		const node = await shard.prepare("SELECT head_version_id AS v FROM nodes WHERE id = ?").bind(kept.nodeId).first<{ v: string }>();
		await shard.batch([
			shard.prepare("DELETE FROM version_blocks WHERE version_id = ?").bind(String(node?.v)),
			shard.prepare("DELETE FROM versions WHERE id = ?").bind(String(node?.v)),
			shard.prepare("DELETE FROM nodes WHERE id = ?").bind(kept.nodeId),
			shard.prepare("DELETE FROM user_blocks WHERE user_id = ? AND hash = ?").bind(user.id, x.hash),
			shard.prepare("INSERT INTO gc_candidates (hash, enqueued_at) VALUES (?, '2000-01-01T00:00:00.000Z')").bind(x.hash),
		]);
		const report = await collectBlocks(env, env.BLOBS, { graceMs: 0 });
		expect(report.failures).toEqual([]);
		// The open upload that lists x keeps it.
		expect(await exists(x.hash)).toBe(true);

		const { statuses, nodeId } = await commitLikeAClient(user, second.upload_id, [x, y]);
		expect(statuses[0]).toBe(409);
		expect(bytesEqual((await download(user, nodeId)).bytes, concat([x, y]))).toBe(true);
		// Now the user holds x again: the candidate is dropped, the block stays.
		await collectBlocks(env, env.BLOBS, { graceMs: 0 });
		expect(await exists(x.hash)).toBe(true);
		const queued = await shard.prepare("SELECT COUNT(*) AS n FROM gc_candidates WHERE hash = ?").bind(x.hash).first<{ n: number }>();
		expect(queued?.n).toBe(0);
	});

	it("M9: a PUT content that stores a block while the collector is deleting it is refused in the commit's own batch, and its retry commits", async () => {
		const { x, finish } = await sweepHeldAt("delete");

		// While x is doomed and about to go, a PUT content of the same bytes stores it and commits.
		const carol = await signup();
		const refused = await put(carol, carol.rootId, "same.bin", x.bytes);
		await expectError(refused, 503, "BLOCKS_RECLAIMED");
		await finish();
		expect(await exists(x.hash)).toBe(false);
		const retried = await expectJson<{ node: { id: string } }>(await put(carol, carol.rootId, "same.bin", x.bytes), 201);
		expect(bytesEqual((await download(carol, retried.node.id)).bytes, x.bytes)).toBe(true);
	});
});

describe("H4: blocks of refused or broken PUT content are collected", () => {
	/** The block objects a request added to R2. */
	async function added(before: string[]): Promise<string[]> {
		const had = new Set(before);
		return (await blobKeys("blocks/")).filter((k) => !had.has(k));
	}

	async function collectedAll(keys: string[]): Promise<void> {
		expect(keys.length).toBeGreaterThan(0);
		await housekeepingAt(cronTimes());
		for (const key of keys) expect(await env.BLOBS.head(key), key).toBeNull();
	}

	it("H4: a body cut off at the 100 MB limit answers 413 and its blocks are collected", async () => {
		const user = await signup();
		const piece = randomBytes(MiB, seed++);
		let sent = 0;
		const body = new ReadableStream<Uint8Array>({
			pull(controller) {
				if (sent >= 101 * MiB) controller.close();
				else {
					sent += MiB;
					controller.enqueue(piece.slice());
				}
			},
		});
		const before = await blobKeys("blocks/");
		const params = new URLSearchParams({ parent_id: user.rootId, name: "huge.bin" });
		await expectError(await call(`/v1/files/content?${params}`, { method: "PUT", token: user.token, body }), 413, "PAYLOAD_TOO_LARGE");
		await collectedAll(await added(before));
	});

	it("H4: a body over what the quota leaves is cut off with 507 before it is all read, and its blocks are collected", async () => {
		const user = await withQuota(await signup(), 6 * MiB);
		const data = randomBytes(32 * MiB, seed++);
		let pulled = 0;
		const body = new ReadableStream<Uint8Array>({
			pull(controller) {
				if (pulled >= data.byteLength) controller.close();
				else {
					controller.enqueue(data.slice(pulled, pulled + 256 * 1024));
					pulled += 256 * 1024;
				}
			},
		});
		const before = await blobKeys("blocks/");
		const params = new URLSearchParams({ parent_id: user.rootId, name: "over.bin" });
		await expectError(await call(`/v1/files/content?${params}`, { method: "PUT", token: user.token, body }), 507, "QUOTA_EXCEEDED");
		expect(pulled).toBeLessThan(data.byteLength / 2);
		await collectedAll(await added(before));
	});

	it("H4: a commit refused at the hub (409 NAME_TAKEN) leaves its blocks to the collector", async () => {
		const user = await signup();
		const data = randomBytes(3 * MiB, seed++);
		const [x] = (await chunksOf(data)) as [Block];
		const before = await blobKeys("blocks/");
		const { writer, response } = streamedPut(user, "taken.bin");
		await write(writer, data, 0, x.bytes.byteLength + 2 * MiB);
		await untilWritten(blockObjectKey(x.hash), null);
		// The body is streaming, past every pre-check: a folder takes the name.
		await expectJson(
			await call("/v1/folders", { method: "POST", token: user.token, body: JSON.stringify({ parent_id: user.rootId, name: "taken.bin" }) }),
			201,
		);
		await write(writer, data, x.bytes.byteLength + 2 * MiB, data.byteLength);
		await writer.close();
		await expectError(await response, 409, "NAME_TAKEN");
		await collectedAll(await added(before));
	});

	it("H4: a body that ends before its Content-Length commits nothing, and its blocks are collected", async () => {
		const user = await signup();
		const data = randomBytes(4 * MiB, seed++);
		const [x] = (await chunksOf(data)) as [Block];
		const before = await blobKeys("blocks/");
		const { writer, response } = streamedPut(user, "short.bin", { "Content-Length": String(data.byteLength) });
		await write(writer, data, 0, x.bytes.byteLength + 2 * MiB);
		await untilWritten(blockObjectKey(x.hash), null);
		// In-process, a body whose client went away looks ended (see tus.test.ts).
		await writer.close();
		await expectError(await response, 400, "INVALID_REQUEST");
		expect(await listAll(user, user.rootId)).toEqual([]);
		await collectedAll(await added(before));
	});

	it("H4: the blocks of a body that breaks mid-way (the client went away) are collected", async () => {
		// In-process calls present a broken body as ended (see tus.test.ts), so
		// the PUT's service gets the broken stream directly, as a deployed
		// Worker's request would hand it over.
		const user = await signup();
		const data = randomBytes(4 * MiB, seed++);
		const [x] = (await chunksOf(data)) as [Block];
		const before = await blobKeys("blocks/");
		const { readable, writable } = new IdentityTransformStream();
		const writer = writable.getWriter();
		const feeding = (async () => {
			await write(writer, data, 0, x.bytes.byteLength + 2 * MiB);
			await untilWritten(blockObjectKey(x.hash), null);
			await writer.abort(new Error("connection reset"));
		})();
		const shard = await shardIndexOf(user);
		const caller = { userId: user.id, email: user.email, deviceId: user.deviceId, deviceName: "Test laptop", shard, quotaBytes: 1e12 };
		const commit = {
			parentId: user.rootId,
			name: "gone.bin",
			baseVersionId: null,
			onConflict: "copy" as const,
			quotaBytes: 1e12,
			actor: { deviceId: user.deviceId, deviceName: "Test laptop" },
		};
		const blocksSince = await readGcClock(openShard(shardBinding(env, shard)));
		await expect(ingestAndCommit(env, caller, readable, commit, { maxBytes: 100_000_000, blocksSince })).rejects.toThrow(
			"connection reset",
		);
		await feeding;
		await collectedAll(await added(before));
		expect(await listAll(user, user.rootId)).toEqual([]);
	});

	it("H4: a PUT content that commits queues nothing", async () => {
		const user = await signup();
		const shard = await shardOfUser(user.id);
		const count = async () => (await shard.prepare("SELECT COUNT(*) AS n FROM gc_candidates").first<{ n: number }>())?.n;
		const queued = await count();
		await expectJson(await put(user, user.rootId, "fine.bin", randomBytes(2 * MiB, seed++)), 201);
		expect(await count()).toBe(queued);
	});
});

describe("the collector's bounds", () => {
	it("takes at most its share of candidates per shard per run, so a backlog drains over runs", async () => {
		const user = await signup();
		const shard = await shardOfUser(user.id);
		const hashes = Array.from({ length: GC_CANDIDATES_PER_SHARD + 20 }, (_, i) => `${i.toString(16).padStart(4, "0")}${"e".repeat(60)}`);
		await shard
			.prepare(
				"INSERT INTO gc_candidates (hash, enqueued_at) SELECT value, '2000-01-01T00:00:00.000Z' FROM json_each(?) WHERE true ON CONFLICT DO NOTHING",
			)
			.bind(JSON.stringify(hashes))
			.run();
		const left = async () =>
			(
				await shard
					.prepare("SELECT COUNT(*) AS n FROM gc_candidates WHERE hash IN (SELECT value FROM json_each(?))")
					.bind(JSON.stringify(hashes))
					.first<{ n: number }>()
			)?.n;
		await collectBlocks(env, env.BLOBS, { graceMs: 0 });
		expect(await left()).toBe(20);
		await collectBlocks(env, env.BLOBS, { graceMs: 0 });
		expect(await left()).toBe(0);
	});
});

/** A shard's D1 binding whose next batch is held until the test releases it. */
function holdNextBatch(inner: D1Database): { db: D1Database; reached: Promise<void>; release: () => void } {
	let reached = (): void => undefined;
	let release = (): void => undefined;
	const reachedP = new Promise<void>((r) => (reached = r));
	const released = new Promise<void>((r) => (release = r));
	let armed = true;
	const db = {
		prepare: (query: string) => inner.prepare(query),
		exec: (query: string) => inner.exec(query),
		dump: () => inner.dump(),
		withSession: (constraint?: string) => inner.withSession(constraint),
		batch: async (statements: D1PreparedStatement[]) => {
			if (armed) {
				armed = false;
				reached();
				await released;
			}
			return inner.batch(statements);
		},
	} as unknown as D1Database;
	return { db, reached: reachedP, release };
}

describe("L9: the cleanup racing a commit", () => {
	it("L9: an upload cancelled and cleaned up between the hub's checks and its batch commits nothing", async () => {
		const user = await signup();
		const x = await block();
		const session = await createSession(user, "late.bin", [x]);
		await sendBlock(user, session.upload_id, x);
		const row = await env.DIRECTORY.prepare("SELECT shard FROM users WHERE id = ?").bind(user.id).first<{ shard: number }>();
		const gate = holdNextBatch(shardBinding(env, row?.shard ?? 0));
		const db = openShard(gate.db);
		const tree = {
			db,
			userId: user.id,
			journal: new Journal(db, user.id, () => undefined),
			usage: new Usage(db, user.id),
			maxNodes: 1_000_000,
			folderDepths: new Map(),
			sharing: new Sharing(db, user.id, () => undefined),
		};
		const committing = commitUpload(tree, { uploadId: session.upload_id, contentHash: x.hash, hashVerified: true, quotaBytes: 1e12 });
		await gate.reached;
		await cancel(user, session.upload_id);
		await cleanupUploads(env, env.BLOBS);
		gate.release();
		const outcome = await committing;
		expect(outcome.ok).toBe(false);
		if (!outcome.ok) expect(outcome.error.code).toBe("NOT_FOUND");
		expect(await listAll(user, user.rootId)).toEqual([]);
	});
});
