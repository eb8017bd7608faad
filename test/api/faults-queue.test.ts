/**
 * Failure playbooks (docs/operations.md, "Failure playbooks"; ADR 0033): the
 * queue consumer failing. With D1 or R2 failing under it, the api worker's
 * consumer retries the batch's messages instead of acknowledging them;
 * nothing is lost or done twice, and a later run succeeds. (After
 * max_retries the queue moves a message to its dead letter queue, per
 * wrangler.toml; the dead letter consumers are drilled here too.)
 */
import { createExecutionContext, createMessageBatch, getQueueResult } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { afterEach, describe, expect, inject, it } from "vitest";
import { blockObjectKey } from "../../src/shared/blocks";
import { runBatch } from "../../src/shared/db/batch";
import { clearFaults, faultsFired, setFaults } from "../../src/shared/drills";
import worker from "../../workers/api/index";
import { allShards, enqueueCandidates, settleTombstones, STALE_TOMBSTONE_MS } from "../../workers/api/services/gc";
import { startRuns, type GcUnit } from "../../workers/api/services/gc-queue";
import { redriveWebhooks, REDRIVE_AFTER_MS, type DeliveryMessage } from "../../workers/api/services/webhook-fanout";
import type { FanOutKick } from "../../workers/notify/contract";
import { Harness, type TestUser } from "../support/harness";
import { api, bytesEqual, randomBytes, shardOfUser, signup, upload } from "./helpers";

const RECEIVER = inject("webhookReceiver");
const HOUR = 3_600_000;

afterEach(() => {
	clearFaults();
});

/** A queue binding that records what is sent. */
class RecordingQueue<T> {
	sent: T[] = [];
	async send(body: T): Promise<void> {
		this.sent.push(body);
	}
	async sendBatch(messages: { body: T }[]): Promise<void> {
		this.sent.push(...messages.map((m) => m.body));
	}
	take(): T[] {
		const out = this.sent;
		this.sent = [];
		return out;
	}
}

/** The api worker's bindings with recording webhook queues, and a harness over them. */
function stackEnv() {
	const deliver = new RecordingQueue<DeliveryMessage>();
	const fanout = new RecordingQueue<FanOutKick>();
	const bindings = { ...env, WEBHOOK_ALLOW_LOOPBACK: "true", WEBHOOK_DELIVER: deliver, WEBHOOK_FANOUT: fanout } as unknown as Env;
	const harness = new Harness(async (request) => worker.fetch(request, bindings, createExecutionContext()), "http://drive.test");
	return { bindings, deliver, fanout, harness };
}

/** Hands `bodies` to the consumer of `queue`, as the queue would; what it acknowledged and retried. */
async function consume<T>(queue: string, bodies: T[], bindings: Env = env): Promise<{ acked: string[]; retried: string[] }> {
	const batch = createMessageBatch<T>(
		queue,
		bodies.map((body, i) => ({ id: `m${i}`, timestamp: new Date(), attempts: 1, body })),
	);
	const ctx = createExecutionContext();
	await (worker.queue as (b: MessageBatch<T>, e: Env) => Promise<void>)(batch, bindings);
	const result = await getQueueResult(batch, ctx);
	return { acked: result.explicitAcks, retried: result.retryMessages.map((m) => m.msgId) };
}

async function shardOf(user: TestUser): Promise<number> {
	const row = await env.DIRECTORY.prepare("SELECT shard FROM users WHERE id = ?").bind(user.id).first<{ shard: number }>();
	return row?.shard ?? 0;
}

async function deliveries(user: TestUser): Promise<{ id: string; status: string; attempts: number }[]> {
	const db = await shardOfUser(user.id);
	const { results } = await db
		.prepare("SELECT id, status, attempts FROM webhook_deliveries WHERE user_id = ? ORDER BY id")
		.bind(user.id)
		.all<{ id: string; status: string; attempts: number }>();
	return results;
}

async function webhookUser(stack: ReturnType<typeof stackEnv>): Promise<{ user: TestUser; kick: FanOutKick; hook: string }> {
	const user = await signup();
	const hook = `f${Date.now().toString(36)}${Math.random().toString(36).slice(2, 8)}`;
	const made = await stack.harness.call("/v1/webhooks", { method: "POST", token: user.token, json: { url: `${RECEIVER}/hook/${hook}` } });
	expect(made.status, made.text).toBe(201);
	return { user, kick: { user: user.id, shard: await shardOf(user) }, hook };
}

/** A user with an endpoint and a new file, whose fan-out kick fails once with `effect` on the deliveries' write: retried, not acknowledged. */
async function fanOutFailing(effect: "error" | "after") {
	const stack = stackEnv();
	const { user, kick } = await webhookUser(stack);
	await upload(user, user.rootId, "a.txt", "a");
	setFaults([{ target: "d1.batch", effect, binding: `SHARD_${kick.shard}`, match: "INSERT OR IGNORE INTO webhook_deliveries" }]);
	expect(await consume("drive-webhook-fanout", [kick], stack.bindings)).toEqual({ acked: [], retried: ["m0"] });
	return { stack, user, kick };
}

describe("the webhook fan-out consumer failing", () => {
	it("retries the kick when its D1 write fails, and the later run makes each delivery once", async () => {
		const { stack, user, kick } = await fanOutFailing("error");
		expect(faultsFired()).toEqual([1]);
		expect(await deliveries(user)).toEqual([]);
		expect(stack.deliver.take()).toEqual([]);

		clearFaults();
		expect(await consume("drive-webhook-fanout", [kick], stack.bindings)).toEqual({ acked: ["m0"], retried: [] });
		const made = await deliveries(user);
		expect(made).toHaveLength(1);
		expect(stack.deliver.take().map((m) => m.id)).toEqual(made.map((d) => d.id));
	});

	it("loses nothing when the write landed but its answer was lost: the retry makes no second delivery, the cron sends the first", async () => {
		const { stack, user, kick } = await fanOutFailing("after");
		clearFaults();
		expect(await consume("drive-webhook-fanout", [kick], stack.bindings)).toEqual({ acked: ["m0"], retried: [] });
		const made = await deliveries(user);
		expect(made).toHaveLength(1);
		expect(stack.deliver.take()).toEqual([]);
		// The delivery was never queued: the cron's redrive finds it overdue and sends it.
		await redriveWebhooks(stack.bindings, kick.shard, Date.now() + REDRIVE_AFTER_MS + 60_000);
		expect(
			stack.deliver
				.take()
				.filter((m) => m.user === user.id)
				.map((m) => m.id),
		).toEqual(made.map((d) => d.id));
	});
});

describe("the webhook delivery consumer failing", () => {
	it("retries the message when D1 fails, posts nothing, and the later run posts once", async () => {
		const stack = stackEnv();
		const { user, kick, hook } = await webhookUser(stack);
		await upload(user, user.rootId, "c.txt", "c");
		await consume("drive-webhook-fanout", [kick], stack.bindings);
		const messages = stack.deliver.take();
		expect(messages).toHaveLength(1);

		setFaults([{ target: "d1.batch", effect: "error", binding: `SHARD_${kick.shard}`, times: 0 }]);
		expect(await consume("drive-webhook-deliver", messages, stack.bindings)).toEqual({ acked: [], retried: ["m0"] });
		expect((await deliveries(user))[0]).toMatchObject({ status: "pending", attempts: 0 });

		clearFaults();
		expect(await consume("drive-webhook-deliver", messages, stack.bindings)).toEqual({ acked: ["m0"], retried: [] });
		expect((await deliveries(user))[0]).toMatchObject({ status: "succeeded", attempts: 1 });
		const received = (await (await fetch(`${RECEIVER}/_control/${hook}/received?count=1`)).json()) as unknown[];
		expect(received).toHaveLength(1);
	});

	it("retries a dead letter whose D1 write fails, then marks the delivery failed", async () => {
		const stack = stackEnv();
		const { user, kick } = await webhookUser(stack);
		await upload(user, user.rootId, "d.txt", "d");
		await consume("drive-webhook-fanout", [kick], stack.bindings);
		const messages = stack.deliver.take();
		setFaults([
			{ target: "d1.query", effect: "error", binding: `SHARD_${kick.shard}`, match: "UPDATE webhook_deliveries SET status = 'failed'" },
		]);
		expect(await consume("drive-webhook-dlq", messages, stack.bindings)).toEqual({ acked: [], retried: ["m0"] });
		expect((await deliveries(user))[0]).toMatchObject({ status: "pending" });
		clearFaults();
		expect(await consume("drive-webhook-dlq", messages, stack.bindings)).toEqual({ acked: ["m0"], retried: [] });
		expect((await deliveries(user))[0]).toMatchObject({ status: "failed" });
	});
});

describe("the collector's consumer failing", () => {
	it("retries a sweep unit when R2 or D1 fails under it; later runs delete the garbage and keep what is referenced", async () => {
		const user = await signup();
		const kept = await upload(user, user.rootId, "kept.bin", randomBytes(4096, 0x5a));
		const db = await shardOfUser(user.id);
		const row = await db.prepare("SELECT hash FROM version_blocks WHERE version_id = ?").bind(kept.version.id).first<{ hash: string }>();
		const keptHash = row?.hash ?? "";
		const garbage = await Promise.all(
			[1, 2, 3].map(async (i) => {
				const bytes = randomBytes(32, 0x5b00 + i);
				const hash = Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
				await env.BLOBS.put(blockObjectKey(hash), randomBytes(256, 0x5c00 + i));
				return hash;
			}),
		);
		const shard = await shardOf(user);
		const home = allShards(env)[shard];
		if (!home) throw new Error("no shard");
		const queuedAt = Date.now();
		await runBatch(home.$client, enqueueCandidates(home, [...garbage, keptHash], queuedAt));
		const now = queuedAt + 2 * HOUR;
		const unit: GcUnit = { kind: "sweep", shard, started: new Date(now).toISOString(), now };
		await startRuns(env, [unit]);
		const exists = async (hash: string) => (await env.BLOBS.head(blockObjectKey(hash))) !== null;

		// R2 refuses the deletion: the unit stops there and comes back.
		setFaults([{ target: "r2.delete", effect: "error", binding: "BLOBS" }]);
		expect(await consume("drive-gc", [unit])).toEqual({ acked: [], retried: ["m0"] });
		// The shard fails every statement: back again.
		setFaults([
			{ target: "d1.batch", effect: "error", binding: `SHARD_${shard}`, times: 0 },
			{ target: "d1.query", effect: "error", binding: `SHARD_${shard}`, times: 0 },
		]);
		expect(await consume("drive-gc", [unit])).toEqual({ acked: [], retried: ["m0"] });

		clearFaults();
		expect(await consume("drive-gc", [unit])).toEqual({ acked: ["m0"], retried: [] });
		expect(await exists(keptHash)).toBe(true);
		// The failed runs left tombstones without a deletion record: the cron settles them as a dead sweep's
		// an hour on (services/gc.ts) and queues the hashes again; the next sweep deletes the garbage.
		const wall = Date.now() + STALE_TOMBSTONE_MS + 60_000;
		for (const db of allShards(env)) await settleTombstones(db, wall);
		const later = wall + 2 * HOUR;
		const next: GcUnit = { kind: "sweep", shard, started: new Date(later).toISOString(), now: later };
		await startRuns(env, [next]);
		expect(await consume("drive-gc", [next])).toEqual({ acked: ["m0"], retried: [] });
		for (const hash of garbage) expect(await exists(hash)).toBe(false);
		expect(await exists(keptHash)).toBe(true);
		const { bytes } = await api.download(user, kept.node.id);
		expect(bytesEqual(bytes, randomBytes(4096, 0x5a))).toBe(true);
	});
});
