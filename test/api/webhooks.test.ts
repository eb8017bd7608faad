/**
 * Webhooks inside workerd (docs/decisions/0028-webhooks.md): the fan-out and
 * the delivery consumer run on real local D1 and post to a real receiver on
 * 127.0.0.1 (test/api/global-setup.ts). The queues' messages are handed to
 * the consumers here (createMessageBatch), so retries are checked through
 * the delays the consumer asks the queue for, not by waiting. The notify
 * worker has no fan-out producer in this project: the hub's kick is the
 * stack's (test/e2e/webhooks.e2e.test.ts); here the tests kick.
 */
import { createExecutionContext, createMessageBatch, getQueueResult } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { Webhook as StandardWebhook } from "standardwebhooks";
import { Webhook as SvixWebhook } from "svix";
import { describe, expect, inject, it } from "vitest";
import { encodeJournalCursor } from "../../src/shared/journal";
import type { WebhookEndpoint } from "../../src/shared/schemas/webhooks";
import type { ChangeEventData, WebhookPayload } from "../../src/shared/webhooks/events";
import worker from "../../workers/api/index";
import { RETRY_SCHEDULE_SECONDS } from "../../workers/api/services/webhook-delivery";
import { deliveryIdOf, redriveWebhooks, type DeliveryMessage } from "../../workers/api/services/webhook-fanout";
import type { FanOutKick } from "../../workers/notify/contract";
import { Harness, type TestUser } from "../support/harness";
import type { Received, Scripted } from "../support/webhook-receiver";
import { api, expectError, journal, shardOfUser, signup, upload } from "./helpers";

const RECEIVER = inject("webhookReceiver");
const TRAP_PORT = inject("webhookTrapPort");

/** A queue binding that records what is sent, so the test hands each message to the consumer itself. */
class RecordingQueue<T> {
	sent: { body: T; delaySeconds?: number }[] = [];
	async send(body: T, options?: { delaySeconds?: number }): Promise<void> {
		this.sent.push({ body, ...options });
	}
	async sendBatch(messages: { body: T; delaySeconds?: number }[]): Promise<void> {
		this.sent.push(...messages);
	}
	take(): T[] {
		const bodies = this.sent.map((m) => m.body);
		this.sent = [];
		return bodies;
	}
}

/** The api worker's bindings with recording queues; `loopback` admits the receiver on 127.0.0.1. */
function stackEnv(loopback: boolean) {
	const deliver = new RecordingQueue<DeliveryMessage>();
	const fanout = new RecordingQueue<FanOutKick>();
	const bindings = {
		...env,
		WEBHOOK_ALLOW_LOOPBACK: loopback ? "true" : "false",
		WEBHOOK_DELIVER: deliver,
		WEBHOOK_FANOUT: fanout,
	} as unknown as Env;
	const harness = new Harness(async (request) => worker.fetch(request, bindings, createExecutionContext()), "http://drive.test");
	return { bindings, deliver, fanout, harness };
}
type Stack = ReturnType<typeof stackEnv>;

let names = 0;
/** A receiver path of the test's own, with scripted answers. */
async function hook(answers: Scripted[] = []): Promise<{ url: string; name: string }> {
	const name = `t${Date.now().toString(36)}${(names++).toString(36)}${Math.random().toString(36).slice(2, 6)}`;
	if (answers.length > 0) await fetch(`${RECEIVER}/_control/${name}/script`, { method: "POST", body: JSON.stringify(answers) });
	return { url: `${RECEIVER}/hook/${name}`, name };
}

async function receivedOn(name: string, count: number): Promise<Received[]> {
	return (await fetch(`${RECEIVER}/_control/${name}/received?count=${count}`)).json();
}

async function trapConnections(): Promise<number> {
	return ((await (await fetch(`${RECEIVER}/_control/trap`)).json()) as { connections: number }).connections;
}

async function createEndpoint(stack: Stack, user: TestUser, body: Record<string, unknown>): Promise<WebhookEndpoint & { secret: string }> {
	const res = await stack.harness.call<WebhookEndpoint & { secret: string }>("/v1/webhooks", {
		method: "POST",
		token: user.token,
		json: body,
	});
	expect(res.status, res.text).toBe(201);
	return res.body;
}

/** Hands kicks to the fan-out consumer, as the queue would. */
async function fanOut(stack: Stack, kicks: FanOutKick[]): Promise<void> {
	const batch = createMessageBatch<FanOutKick>(
		"drive-webhook-fanout",
		kicks.map((body, i) => ({ id: `k${i}`, timestamp: new Date(), attempts: 1, body })),
	);
	const ctx = createExecutionContext();
	await worker.queue(batch, stack.bindings);
	const result = await getQueueResult(batch, ctx);
	expect(result.retryMessages).toEqual([]);
}

/** Hands delivery messages to the delivery consumer (`attempts`: the queue's count); returns what it acked and the delays it asked for. */
async function deliver(
	stack: Stack,
	messages: DeliveryMessage[],
	attempts = 1,
): Promise<{ acked: string[]; retried: { msgId: string; delaySeconds?: number }[] }> {
	const batch = createMessageBatch<DeliveryMessage>(
		"drive-webhook-deliver",
		messages.map((body, i) => ({ id: `d${i}`, timestamp: new Date(), attempts, body })),
	);
	// The plugin's result lists retried messages without their delays: record what the consumer asks of retry().
	const delays = new Map<string, number | undefined>();
	for (const message of batch.messages) {
		const retry = message.retry.bind(message);
		Object.defineProperty(message, "retry", {
			value: (options?: QueueRetryOptions) => {
				delays.set(message.id, options?.delaySeconds);
				retry(options);
			},
		});
	}
	const ctx = createExecutionContext();
	await worker.queue(batch, stack.bindings);
	const result = await getQueueResult(batch, ctx);
	return { acked: result.explicitAcks, retried: result.retryMessages.map((m) => ({ msgId: m.msgId, delaySeconds: delays.get(m.msgId) })) };
}

/** Marks every step of a delivery's retry schedule as failed: its next failure is its last. */
async function spendSchedule(user: TestUser, deliveryId: string): Promise<void> {
	const db = await shardOfUser(user.id);
	await db.prepare("UPDATE webhook_deliveries SET failures = ? WHERE id = ?").bind(RETRY_SCHEDULE_SECONDS.length, deliveryId).run();
}

async function kickOf(user: TestUser): Promise<FanOutKick> {
	const row = await env.DIRECTORY.prepare("SELECT shard FROM users WHERE id = ?").bind(user.id).first<{ shard: number }>();
	return { user: user.id, shard: row?.shard ?? -1 };
}

interface DeliveryRow {
	id: string;
	status: string;
	attempts: number;
	seq: number | null;
	type: string;
	last_status: number | null;
}

async function deliveriesOf(user: TestUser, endpointId: string): Promise<DeliveryRow[]> {
	const db = await shardOfUser(user.id);
	const { results } = await db
		.prepare("SELECT id, status, attempts, seq, type, last_status FROM webhook_deliveries WHERE endpoint_id = ? ORDER BY created_at, id")
		.bind(endpointId)
		.all<DeliveryRow>();
	return results;
}

async function endpointOf(stack: Stack, user: TestUser, id: string): Promise<WebhookEndpoint> {
	const res = await stack.harness.call<WebhookEndpoint>(`/v1/webhooks/${id}`, { token: user.token });
	expect(res.status, res.text).toBe(200);
	return res.body;
}

/** Verifies a received request with both npm libraries; throws when either refuses. */
function verifyWithLibraries(secret: string, got: Received): void {
	const headers = {
		"webhook-id": got.headers["webhook-id"] ?? "",
		"webhook-timestamp": got.headers["webhook-timestamp"] ?? "",
		"webhook-signature": got.headers["webhook-signature"] ?? "",
	};
	new StandardWebhook(secret).verify(got.body, headers);
	new SvixWebhook(secret).verify(got.body, headers);
}

describe("fan-out from the journal", () => {
	it("makes one delivery per change, however many kicks arrive, with the journal's seq and a cursor", async () => {
		const stack = stackEnv(true);
		const user = await signup();
		const target = await hook();
		const endpoint = await createEndpoint(stack, user, { url: target.url });
		const commit = await upload(user, user.rootId, "report.txt", "hello");
		const kick = await kickOf(user);
		await fanOut(stack, [kick, kick, kick]);
		await fanOut(stack, [kick]);
		const messages = stack.deliver.take();
		expect(messages).toHaveLength(1);
		const entry = (await journal(user.id)).find((e) => e.node_id === commit.node.id && e.kind === "created");
		expect(messages[0]?.id).toBe(deliveryIdOf(endpoint.id, entry?.seq ?? -1));
		expect(await deliveriesOf(user, endpoint.id)).toEqual([
			expect.objectContaining({ seq: entry?.seq, type: "file.created", status: "pending" }),
		]);

		const { acked } = await deliver(stack, messages);
		expect(acked).toEqual(["d0"]);
		const [got] = await receivedOn(target.name, 1);
		if (!got) throw new Error("no request");
		verifyWithLibraries(endpoint.secret, got);
		const payload = JSON.parse(got.body) as WebhookPayload<ChangeEventData>;
		expect(payload.type).toBe("file.created");
		expect(payload.data.seq).toBe(entry?.seq);
		expect(payload.data.cursor).toBe(encodeJournalCursor({ userId: user.id, seq: entry?.seq ?? -1 }));
		expect(payload.data.node).toMatchObject({ id: commit.node.id, name: "report.txt" });
		expect(got.body).not.toContain("hello");
		expect((await deliveriesOf(user, endpoint.id))[0]).toMatchObject({ status: "succeeded", attempts: 1, last_status: 200 });
	});

	it("says where a moved file came from, and follows each endpoint's event filter", async () => {
		const stack = stackEnv(true);
		const user = await signup();
		const files = await hook();
		const folders = await hook();
		const forFiles = await createEndpoint(stack, user, { url: files.url, event_types: ["file.moved"] });
		const forFolders = await createEndpoint(stack, user, { url: folders.url, event_types: ["folder.*"] });
		const commit = await upload(user, user.rootId, "a.txt", "a");
		const folder = await api.mkdir(user, user.rootId, "Archive");
		expect((await api.patchNode(user, commit.node.id, { name: "b.txt", parent_id: folder.id })).status).toBe(200);
		await fanOut(stack, [await kickOf(user)]);
		expect((await deliveriesOf(user, forFiles.id)).map((d) => d.type)).toEqual(["file.moved"]);
		expect((await deliveriesOf(user, forFolders.id)).map((d) => d.type)).toEqual(["folder.created"]);
		await deliver(stack, stack.deliver.take());
		const [moved] = await receivedOn(files.name, 1);
		const payload = JSON.parse(moved?.body ?? "{}") as WebhookPayload<ChangeEventData>;
		expect(payload.data.previous).toEqual({ parent_id: user.rootId, name: "a.txt" });
		expect(payload.data.node).toMatchObject({ name: "b.txt", parent_id: folder.id });
	});

	it("sends share events from the owner's activity log, with where the journal stood", async () => {
		const stack = stackEnv(true);
		const owner = await signup();
		const member = await signup();
		const target = await hook();
		const endpoint = await createEndpoint(stack, owner, { url: target.url, event_types: ["share.*"] });
		const folder = await api.mkdir(owner, owner.rootId, "Team");
		const share = await stack.harness.call<{ id: string }>("/v1/shares", {
			method: "POST",
			token: owner.token,
			json: { node_id: folder.id, members: [{ email: member.email, role: "editor" }] },
		});
		expect(share.status, share.text).toBe(201);
		const kick = await kickOf(owner);
		await fanOut(stack, [kick, kick]);
		expect((await deliveriesOf(owner, endpoint.id)).map((d) => d.type).sort()).toEqual(["share.created", "share.member_added"]);
		await deliver(stack, stack.deliver.take());
		const events = (await receivedOn(target.name, 2)).map((r) => JSON.parse(r.body) as WebhookPayload<Record<string, unknown>>);
		const added = events.find((e) => e.type === "share.member_added");
		expect(added?.data).toMatchObject({ share_id: share.body.id, node_id: folder.id, details: { member: member.email, role: "editor" } });
		const latest = (await journal(owner.id)).at(-1)?.seq ?? -1;
		expect(added?.data.seq).toBe(latest);
		expect(added?.data.cursor).toBe(encodeJournalCursor({ userId: owner.id, seq: latest }));
		// Activity the api writes (a link) moves the cursor without a delivery, and the cron sees nothing behind after it.
		await fanOut(stack, [kick]);
		expect(stack.deliver.take()).toEqual([]);
		await redriveWebhooks(stack.bindings, kick.shard);
		expect(stack.fanout.take()).toEqual([]);
	});

	it("recovers a lost kick from the journal on the cron, and sends a delivery whose message was lost", async () => {
		const stack = stackEnv(true);
		const user = await signup();
		const target = await hook();
		const endpoint = await createEndpoint(stack, user, { url: target.url });
		await upload(user, user.rootId, "lost.txt", "x");
		const kick = await kickOf(user);
		// No kick reached the fan-out: the endpoint's cursor is behind the journal, and the cron sees it.
		await redriveWebhooks(stack.bindings, kick.shard);
		expect(stack.fanout.take()).toContainEqual(kick);
		await fanOut(stack, [kick]);
		const lost = stack.deliver.take();
		expect(lost).toHaveLength(1);
		// Its delivery message is lost too: once it is overdue, the cron sends it again.
		await redriveWebhooks(stack.bindings, kick.shard, Date.now() + 11 * 60_000);
		const again = stack.deliver.take().filter((m) => m.id === lost[0]?.id);
		expect(again).toEqual([expect.objectContaining({ id: lost[0]?.id, gen: 1 })]);
		// The lost message turning up late posts nothing: the re-sent one is the delivery's only chain.
		expect((await deliver(stack, lost)).acked).toEqual(["d0"]);
		await deliver(stack, again);
		const [got] = await receivedOn(target.name, 1);
		expect(got?.headers["webhook-id"]).toBe(lost[0]?.id);
		expect((await deliveriesOf(user, endpoint.id))[0]).toMatchObject({ status: "succeeded", attempts: 1 });
	});
});

describe("delivery attempts", () => {
	it("retries 500, 500, then 200: three attempts, one webhook-id, the schedule's delays, succeeded", async () => {
		const stack = stackEnv(true);
		const user = await signup();
		const target = await hook([{ status: 500 }, { status: 500 }]);
		const endpoint = await createEndpoint(stack, user, { url: target.url });
		await upload(user, user.rootId, "retry.txt", "r");
		await fanOut(stack, [await kickOf(user)]);
		const [message] = stack.deliver.take();
		if (!message) throw new Error("no delivery");

		const first = await deliver(stack, [message], 1);
		expect(first.acked).toEqual([]);
		const firstDelay = first.retried[0]?.delaySeconds ?? 0;
		expect(firstDelay).toBeGreaterThanOrEqual(Math.floor((RETRY_SCHEDULE_SECONDS[0] ?? 0) * 0.8));
		expect(firstDelay).toBeLessThanOrEqual(Math.ceil((RETRY_SCHEDULE_SECONDS[0] ?? 0) * 1.2));
		expect((await endpointOf(stack, user, endpoint.id)).failing_since).not.toBeNull();

		const second = await deliver(stack, [message], 2);
		const secondDelay = second.retried[0]?.delaySeconds ?? 0;
		expect(secondDelay).toBeGreaterThanOrEqual((RETRY_SCHEDULE_SECONDS[1] ?? 0) * 0.8);
		expect(secondDelay).toBeLessThanOrEqual((RETRY_SCHEDULE_SECONDS[1] ?? 0) * 1.2);

		const third = await deliver(stack, [message], 3);
		expect(third).toEqual({ acked: ["d0"], retried: [] });
		const requests = await receivedOn(target.name, 3);
		expect(new Set(requests.map((r) => r.headers["webhook-id"]))).toEqual(new Set([message.id]));
		for (const r of requests) verifyWithLibraries(endpoint.secret, r);
		expect(new Set(requests.map((r) => r.body)).size).toBe(1);

		const log = await stack.harness.call<{ status: string; attempts: number; attempt_log: { status: number }[] }>(
			`/v1/webhooks/${endpoint.id}/deliveries/${message.id}`,
			{ token: user.token },
		);
		expect(log.body).toMatchObject({ status: "succeeded", attempts: 3 });
		expect(log.body.attempt_log.map((a) => a.status)).toEqual([500, 500, 200]);
		expect((await endpointOf(stack, user, endpoint.id)).failing_since).toBeNull();
	});

	it("posts a duplicated message once", async () => {
		const stack = stackEnv(true);
		const user = await signup();
		const target = await hook();
		const endpoint = await createEndpoint(stack, user, { url: target.url });
		await upload(user, user.rootId, "dup.txt", "d");
		await fanOut(stack, [await kickOf(user)]);
		const [message] = stack.deliver.take();
		if (!message) throw new Error("no delivery");
		const both = await deliver(stack, [message, message]);
		expect(both.acked.sort()).toEqual(["d0", "d1"]);
		const again = await deliver(stack, [message]);
		expect(again.acked).toEqual(["d0"]);
		await receivedOn(target.name, 1);
		// A marker delivery after them: once it arrives, nothing else is on its way to this path.
		await stack.harness.call(`/v1/webhooks/${endpoint.id}/test`, { method: "POST", token: user.token });
		await deliver(stack, stack.deliver.take());
		const all = await receivedOn(target.name, 2);
		expect(all.map((r) => JSON.parse(r.body).type)).toEqual(["file.created", "webhook.test"]);
		expect((await deliveriesOf(user, endpoint.id)).find((d) => d.id === message.id)?.attempts).toBe(1);
	});

	it("honours Retry-After, and gives up once the schedule (about 2.5 days) is spent", async () => {
		const total = RETRY_SCHEDULE_SECONDS.reduce((a, b) => a + b, 0) / 86_400;
		expect(total).toBeGreaterThan(2.2);
		expect(total).toBeLessThan(2.8);
		const stack = stackEnv(true);
		const user = await signup();
		const target = await hook([{ status: 503, headers: { "retry-after": "3600" } }, { status: 500 }]);
		const endpoint = await createEndpoint(stack, user, { url: target.url });
		await upload(user, user.rootId, "busy.txt", "b");
		await fanOut(stack, [await kickOf(user)]);
		const [message] = stack.deliver.take();
		if (!message) throw new Error("no delivery");
		expect((await deliver(stack, [message], 1)).retried[0]?.delaySeconds).toBeGreaterThanOrEqual(3600);
		// The schedule's last retry: every step before it failed.
		await spendSchedule(user, message.id);
		const last = await deliver(stack, [message], RETRY_SCHEDULE_SECONDS.length + 1);
		expect(last).toEqual({ acked: ["d0"], retried: [] });
		expect((await deliveriesOf(user, endpoint.id))[0]).toMatchObject({ status: "failed", last_status: 500 });
	});

	it("a 410 disables the endpoint, and the user's other endpoints hear of it", async () => {
		const stack = stackEnv(true);
		const user = await signup();
		const gone = await hook([{ status: 410 }]);
		const other = await hook();
		const endpoint = await createEndpoint(stack, user, { url: gone.url, event_types: ["file.*"] });
		const watcher = await createEndpoint(stack, user, { url: other.url, event_types: ["webhook.endpoint_disabled"] });
		await upload(user, user.rootId, "gone.txt", "g");
		await fanOut(stack, [await kickOf(user)]);
		const result = await deliver(stack, stack.deliver.take());
		expect(result.retried).toEqual([]);
		expect(await endpointOf(stack, user, endpoint.id)).toMatchObject({ status: "disabled", disabled_reason: "gone" });
		await deliver(stack, stack.deliver.take());
		const [notice] = await receivedOn(other.name, 1);
		expect(JSON.parse(notice?.body ?? "{}")).toMatchObject({
			type: "webhook.endpoint_disabled",
			data: { endpoint_id: endpoint.id, reason: "gone" },
		});
		expect((await deliveriesOf(user, watcher.id)).map((d) => d.type)).toEqual(["webhook.endpoint_disabled"]);
		// A disabled endpoint gets nothing more; re-enabled, it catches up with what it missed.
		await upload(user, user.rootId, "later.txt", "l");
		await fanOut(stack, [await kickOf(user)]);
		expect(stack.deliver.take()).toEqual([]);
		const enabled = await stack.harness.call<WebhookEndpoint>(`/v1/webhooks/${endpoint.id}`, {
			method: "PATCH",
			token: user.token,
			json: { status: "enabled" },
		});
		expect(enabled.body).toMatchObject({ status: "enabled", disabled_reason: null });
		await fanOut(stack, [await kickOf(user)]);
		expect(stack.deliver.take()).toHaveLength(1);
	});

	it("a delivery that met its endpoint disabled goes out again when the endpoint is re-enabled", async () => {
		const stack = stackEnv(true);
		const user = await signup();
		const target = await hook();
		const endpoint = await createEndpoint(stack, user, { url: target.url });
		await upload(user, user.rootId, "paused.txt", "p");
		await fanOut(stack, [await kickOf(user)]);
		const [message] = stack.deliver.take();
		if (!message) throw new Error("no delivery");
		const patch = (json: Record<string, unknown>) =>
			stack.harness.call<WebhookEndpoint>(`/v1/webhooks/${endpoint.id}`, { method: "PATCH", token: user.token, json });
		expect((await patch({ status: "disabled" })).body).toMatchObject({ status: "disabled", disabled_reason: "user" });
		expect((await deliver(stack, [message])).acked).toEqual(["d0"]);
		expect((await deliveriesOf(user, endpoint.id))[0]?.status).toBe("failed");
		expect((await patch({ status: "enabled" })).body.status).toBe("enabled");
		const reopened = stack.deliver.take();
		expect(reopened).toEqual([expect.objectContaining({ id: message.id })]);
		await deliver(stack, reopened);
		expect((await receivedOn(target.name, 1))[0]?.headers["webhook-id"]).toBe(message.id);
		expect((await deliveriesOf(user, endpoint.id))[0]?.status).toBe("succeeded");
		// A change of URL goes through the guard like a registration, and changes nothing when refused.
		await expectError(await patch({ url: "https://10.0.0.1/hook" }), 400, "INVALID_REQUEST");
		expect((await endpointOf(stack, user, endpoint.id)).url).toBe(target.url);
	});

	it("a delivery whose messages kept crashing is marked failed by the dead letter consumer", async () => {
		const stack = stackEnv(true);
		const user = await signup();
		const target = await hook();
		const endpoint = await createEndpoint(stack, user, { url: target.url });
		await upload(user, user.rootId, "poison.txt", "x");
		await fanOut(stack, [await kickOf(user)]);
		const [message] = stack.deliver.take();
		if (!message) throw new Error("no delivery");
		const batch = createMessageBatch<DeliveryMessage>("drive-webhook-dlq", [
			{ id: "dl0", timestamp: new Date(), attempts: 1, body: message },
		]);
		await worker.queue(batch, stack.bindings);
		expect((await getQueueResult(batch, createExecutionContext())).explicitAcks).toEqual(["dl0"]);
		expect((await deliveriesOf(user, endpoint.id))[0]?.status).toBe("failed");
	});

	it("an endpoint whose every delivery failed for 5 days is disabled; a failure after a day's pause starts a new run", async () => {
		const stack = stackEnv(true);
		const user = await signup();
		const target = await hook([{ status: 500 }, { status: 500 }]);
		const endpoint = await createEndpoint(stack, user, { url: target.url });
		const db = await shardOfUser(user.id);
		const ago = (ms: number) => new Date(Date.now() - ms).toISOString();
		const failing = (since: string, last: string) =>
			db.prepare("UPDATE webhook_endpoints SET failing_since = ?, last_failure_at = ? WHERE id = ?").bind(since, last, endpoint.id).run();
		// Failed 5 days ago, then nothing to send for 2 days: this failure is a new run, not the sixth day of the old one.
		await failing(ago(5 * 86_400_000 + 60_000), ago(2 * 86_400_000));
		await upload(user, user.rootId, "paused.txt", "p");
		await fanOut(stack, [await kickOf(user)]);
		await deliver(stack, stack.deliver.take());
		const restarted = await endpointOf(stack, user, endpoint.id);
		expect(restarted.status).toBe("enabled");
		expect(Date.parse(restarted.failing_since ?? "")).toBeGreaterThan(Date.now() - 3_600_000);
		// Failing for 5 days, the last failure an hour ago: disabled.
		await failing(ago(5 * 86_400_000 + 60_000), ago(3_600_000));
		await upload(user, user.rootId, "fail.txt", "f");
		await fanOut(stack, [await kickOf(user)]);
		await deliver(stack, stack.deliver.take());
		expect(await endpointOf(stack, user, endpoint.id)).toMatchObject({ status: "disabled", disabled_reason: "failing" });
	});

	it("a 302 is a failure and its Location is never fetched", async () => {
		const stack = stackEnv(true);
		const user = await signup();
		const before = await trapConnections();
		const target = await hook([{ status: 302, headers: { location: `http://127.0.0.1:${TRAP_PORT}/stolen` } }]);
		const endpoint = await createEndpoint(stack, user, { url: target.url });
		await upload(user, user.rootId, "redirect.txt", "x");
		await fanOut(stack, [await kickOf(user)]);
		const result = await deliver(stack, stack.deliver.take());
		expect(result.retried).toHaveLength(1);
		const [delivery] = await deliveriesOf(user, endpoint.id);
		expect(delivery).toMatchObject({ status: "pending", last_status: 302 });
		expect(await trapConnections()).toBe(before);
	});
});

/** The table of loopback, private and metadata addresses, in the spellings that get past naive checks. */
const REFUSED = [
	"https://127.0.0.1/hook",
	"https://[::1]/hook",
	"https://169.254.169.254/latest/meta-data",
	"https://10.0.0.1/hook",
	"https://2130706433/hook",
	"https://0177.0.0.1/hook",
	"https://[::ffff:127.0.0.1]/hook",
	"https://localhost./hook",
	"http://127.0.0.1/hook",
];

describe("the SSRF guard (on by default)", () => {
	it.each(REFUSED)("refuses %s at registration, and creates nothing", async (url) => {
		const stack = stackEnv(false);
		const user = await signup();
		const res = await stack.harness.call("/v1/webhooks", { method: "POST", token: user.token, json: { url } });
		await expectError(res, 400, "INVALID_REQUEST");
		const list = await stack.harness.call<{ items: unknown[] }>("/v1/webhooks", { token: user.token });
		expect(list.body.items).toEqual([]);
	});

	it("refuses loopback spellings before every attempt: the listener sees no connection", async () => {
		const stack = stackEnv(false);
		const user = await signup();
		const before = await trapConnections();
		const spellings = [
			`http://127.0.0.1:${TRAP_PORT}/x`,
			`http://[::1]:${TRAP_PORT}/x`,
			`http://2130706433:${TRAP_PORT}/x`,
			`http://0177.0.0.1:${TRAP_PORT}/x`,
			`http://[::ffff:127.0.0.1]:${TRAP_PORT}/x`,
			`http://localhost.:${TRAP_PORT}/x`,
			`https://127.0.0.1:${TRAP_PORT}/x`,
		];
		// Registered while loopback was allowed (a local setting since turned off): the guard runs again before each attempt.
		const loose = stackEnv(true);
		const endpoints = [];
		for (const url of spellings) endpoints.push(await createEndpoint(loose, user, { url }));
		await upload(user, user.rootId, "ssrf.txt", "s");
		await fanOut(stack, [await kickOf(user)]);
		const messages = stack.deliver.take();
		expect(messages).toHaveLength(spellings.length);
		const result = await deliver(stack, messages);
		expect(result.retried).toEqual([]);
		for (const endpoint of endpoints) {
			const [delivery] = await deliveriesOf(user, endpoint.id);
			expect(delivery?.status).toBe("failed");
			const detail = await stack.harness.call<{ attempt_log: { error: string; status: number | null }[] }>(
				`/v1/webhooks/${endpoint.id}/deliveries/${delivery?.id}`,
				{ token: user.token },
			);
			expect(detail.body.attempt_log[0]?.status).toBeNull();
			expect(detail.body.attempt_log[0]?.error).toMatch(/^blocked: /);
		}
		expect(await trapConnections()).toBe(before);
	});
});

describe("the endpoints API", () => {
	it("shows the secret once, stores it encrypted, and rotates it with a day of two signatures", async () => {
		const stack = stackEnv(true);
		const user = await signup();
		const target = await hook();
		const endpoint = await createEndpoint(stack, user, { url: target.url, description: "CI" });
		expect(endpoint.secret).toMatch(/^whsec_/);
		const row = await (
			await shardOfUser(user.id)
		)
			.prepare("SELECT secret FROM webhook_endpoints WHERE id = ?")
			.bind(endpoint.id)
			.first<{ secret: string }>();
		expect(row?.secret).not.toContain(endpoint.secret.slice(6));
		expect((await endpointOf(stack, user, endpoint.id)).secret).toBeUndefined();

		const rotated = await stack.harness.call<WebhookEndpoint & { secret: string }>(`/v1/webhooks/${endpoint.id}/rotate-secret`, {
			method: "POST",
			token: user.token,
		});
		expect(rotated.status).toBe(200);
		expect(rotated.body.secret).not.toBe(endpoint.secret);
		expect(rotated.body.previous_secret_expires_at).not.toBeNull();
		const test = await stack.harness.call(`/v1/webhooks/${endpoint.id}/test`, { method: "POST", token: user.token });
		expect(test.status).toBe(202);
		await deliver(stack, stack.deliver.take());
		const [got] = await receivedOn(target.name, 1);
		if (!got) throw new Error("no request");
		expect(got.headers["webhook-signature"]?.split(" ")).toHaveLength(2);
		verifyWithLibraries(endpoint.secret, got);
		verifyWithLibraries(rotated.body.secret, got);
	});

	it("allows 10 endpoints per account, refuses bad input, and hides other users' endpoints", async () => {
		const stack = stackEnv(true);
		const user = await signup();
		const other = await signup();
		const target = await hook();
		const ids: string[] = [];
		for (let i = 0; i < 10; i++) ids.push((await createEndpoint(stack, user, { url: `${target.url}?n=${i}` })).id);
		const eleventh = await stack.harness.call("/v1/webhooks", { method: "POST", token: user.token, json: { url: target.url } });
		await expectError(eleventh, 400, "INVALID_REQUEST");
		for (const body of [{}, { url: "not a url" }, { url: target.url, event_types: ["file.exploded"] }, { url: target.url, extra: 1 }]) {
			const res = await stack.harness.call("/v1/webhooks", { method: "POST", token: other.token, json: body });
			await expectError(res, 400, "INVALID_REQUEST");
		}
		expect((await stack.harness.call<{ items: unknown[] }>("/v1/webhooks", { token: other.token })).body.items).toEqual([]);
		for (const [method, path] of [
			["GET", `/v1/webhooks/${ids[0]}`],
			["PATCH", `/v1/webhooks/${ids[0]}`],
			["DELETE", `/v1/webhooks/${ids[0]}`],
			["GET", `/v1/webhooks/${ids[0]}/deliveries`],
			["POST", `/v1/webhooks/${ids[0]}/test`],
			["POST", `/v1/webhooks/${ids[0]}/rotate-secret`],
		] as const) {
			const res = await stack.harness.call(path, { method, token: other.token, ...(method === "PATCH" && { json: { description: "x" } }) });
			await expectError(res, 404, "NOT_FOUND");
		}
		expect((await stack.harness.call(`/v1/webhooks/${ids[0]}`, { method: "DELETE", token: user.token })).status).toBe(204);
		expect((await stack.harness.call<{ items: unknown[] }>("/v1/webhooks", { token: user.token })).body.items).toHaveLength(9);
	});

	it("redelivers one delivery with the same webhook-id, and recovers every failed one since a seq", async () => {
		const stack = stackEnv(true);
		const user = await signup();
		const target = await hook([{ status: 500 }, { status: 500 }]);
		const endpoint = await createEndpoint(stack, user, { url: target.url });
		await upload(user, user.rootId, "one.txt", "1");
		await upload(user, user.rootId, "two.txt", "2");
		await fanOut(stack, [await kickOf(user)]);
		const messages = stack.deliver.take();
		expect(messages).toHaveLength(2);
		// Both fail for good (the schedule spent).
		for (const m of messages) await spendSchedule(user, m.id);
		await deliver(stack, messages, RETRY_SCHEDULE_SECONDS.length + 1);
		const failed = await deliveriesOf(user, endpoint.id);
		expect(failed.map((d) => d.status)).toEqual(["failed", "failed"]);

		const one = await stack.harness.call<{ status: string }>(`/v1/webhooks/${endpoint.id}/deliveries/${failed[0]?.id}/redeliver`, {
			method: "POST",
			token: user.token,
		});
		expect(one.body.status).toBe("pending");
		await deliver(stack, stack.deliver.take());
		const recovered = await stack.harness.call<{ redelivering: number }>(`/v1/webhooks/${endpoint.id}/recover`, {
			method: "POST",
			token: user.token,
			json: { since_seq: 0 },
		});
		expect(recovered.body.redelivering).toBe(1);
		await deliver(stack, stack.deliver.take());
		const requests = await receivedOn(target.name, 4);
		expect(requests.slice(2).map((r) => r.headers["webhook-id"])).toEqual([failed[0]?.id, failed[1]?.id]);
		expect((await deliveriesOf(user, endpoint.id)).map((d) => d.status)).toEqual(["succeeded", "succeeded"]);
		const page = await stack.harness.call<{ items: { id: string }[] }>(`/v1/webhooks/${endpoint.id}/deliveries?status=succeeded`, {
			token: user.token,
		});
		expect(page.body.items).toHaveLength(2);
		await expectError(
			await stack.harness.call(`/v1/webhooks/${endpoint.id}/recover`, { method: "POST", token: user.token, json: {} }),
			400,
			"INVALID_REQUEST",
		);
	});
});
