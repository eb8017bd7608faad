/**
 * Webhooks through the running stack (wrangler dev, both workers, local
 * Queues): the hub kicks the fan-out after a commit, the api worker's
 * consumers create and post the deliveries, and a receiver on 127.0.0.1
 * checks them with the `standardwebhooks` and `svix` packages. The stack
 * runs with WEBHOOK_ALLOW_LOOPBACK=true (test/e2e/stack-worker.mjs); the
 * guard's default is tested in test/api/webhooks.test.ts.
 */
import { Webhook as StandardWebhook } from "standardwebhooks";
import { Webhook as SvixWebhook } from "svix";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import type { WebhookDelivery, WebhookEndpoint } from "../../src/shared/schemas/webhooks";
import type { ChangeEventData, WebhookPayload } from "../../src/shared/webhooks/events";
import { signWebhook } from "../../src/shared/webhooks/signing";
import { HANG_GUARD_MS, type TestUser } from "../support/harness";
import { stackHarness } from "../support/stack";
import { WebhookReceiver, type Received, type Scripted } from "../support/webhook-receiver";

const h = stackHarness();
const receiver = new WebhookReceiver();

beforeAll(async () => {
	await receiver.start();
});
afterAll(async () => {
	await receiver.stop();
});

let hooks = 0;
async function endpointFor(user: TestUser, answers: Scripted[] = [], extra: Record<string, unknown> = {}) {
	const name = `e2e${hooks++}`;
	receiver.script(name, answers);
	const res = await h.call<WebhookEndpoint & { secret: string }>("/v1/webhooks", {
		method: "POST",
		token: user.token,
		json: { url: receiver.hook(name), ...extra },
	});
	expect(res.status, res.text).toBe(201);
	return { name, endpoint: res.body };
}

function headersOf(got: Received) {
	return {
		"webhook-id": got.headers["webhook-id"] ?? "",
		"webhook-timestamp": got.headers["webhook-timestamp"] ?? "",
		"webhook-signature": got.headers["webhook-signature"] ?? "",
	};
}

/** Polls `read` until `done` holds: the delivery log is written after the receiver answers. */
async function until<T>(read: () => Promise<T>, done: (value: T) => boolean): Promise<T> {
	const deadline = Date.now() + HANG_GUARD_MS;
	for (;;) {
		const value = await read();
		if (done(value)) return value;
		if (Date.now() > deadline) throw new Error(`condition not met (hang guard): ${JSON.stringify(value)}`);
		await new Promise((r) => setTimeout(r, 100));
	}
}

describe("webhooks on the running stack", () => {
	it("an upload produces file.created with the journal's seq; both libraries verify it, and refuse a changed byte or a timestamp 301 s off", async () => {
		const user = await h.signup();
		const { name, endpoint } = await endpointFor(user);
		const latest = await h.latest(user);
		const commit = await h.upload(user, user.rootId, "hello.txt", "hello, webhooks");
		const [got] = await receiver.received(name, 1);
		if (!got) throw new Error("no request");
		const payload = JSON.parse(got.body) as WebhookPayload<ChangeEventData>;
		const { entries } = await h.pullAll(user, latest);
		expect(entries).toHaveLength(1);
		expect(payload).toMatchObject({
			type: "file.created",
			data: { seq: entries[0]?.seq, node: { id: commit.node.id, name: "hello.txt" } },
		});
		// The event's cursor continues the journal right after it.
		expect((await h.page(user, payload.data.cursor)).entries).toEqual([]);

		const headers = headersOf(got);
		const sentAt = Number(headers["webhook-timestamp"]);
		const skewed = async (off: number) => ({
			...headers,
			"webhook-timestamp": String(sentAt + off),
			"webhook-signature": await signWebhook([endpoint.secret], headers["webhook-id"], sentAt + off, got.body),
		});
		const [early, late] = [await skewed(-301), await skewed(301)];
		// The libraries judge the timestamp against their clock: freeze it at the delivery's, so how long the test took never matters.
		vi.useFakeTimers({ toFake: ["Date"] });
		vi.setSystemTime(sentAt * 1000);
		try {
			for (const Library of [StandardWebhook, SvixWebhook]) {
				const verifier = new Library(endpoint.secret);
				expect(verifier.verify(got.body, headers)).toMatchObject({ type: "file.created" });
				expect(() => verifier.verify(got.body.replace("hello.txt", "hellO.txt"), headers)).toThrow();
				expect(() => verifier.verify(got.body, early)).toThrow();
				expect(() => verifier.verify(got.body, late)).toThrow();
			}
		} finally {
			vi.useRealTimers();
		}
	});

	it("sends every kind of change, one event per journal entry with consecutive seqs, and where a move came from", async () => {
		const user = await h.signup();
		const { name } = await endpointFor(user);
		const folder = await h.mkdir(user, user.rootId, "Projects");
		const first = await h.upload(user, folder.id, "plan.txt", "v1");
		await h.upload(user, folder.id, "plan.txt", "v2", { ifMatch: first.version.id, status: 200 });
		// A stale If-Match: kept as a conflicted copy.
		const copy = await h.putContent(user, folder.id, "plan.txt", "v2 elsewhere", { ifMatch: first.version.id });
		expect(copy.body.conflict, copy.text).not.toBeNull();
		expect((await h.patchNode(user, first.node.id, { name: "plan-final.txt", parent_id: user.rootId })).status).toBe(200);
		expect((await h.trash(user, first.node.id)).status).toBe(200);
		expect((await h.restore(user, first.node.id)).status).toBe(200);
		// Deliveries may arrive in any order: their seqs put them back in the journal's.
		const events = (await receiver.received(name, 7)).map((r) => JSON.parse(r.body) as WebhookPayload<ChangeEventData>);
		events.sort((a, b) => a.data.seq - b.data.seq);
		expect(events.map((e) => e.type)).toEqual([
			"folder.created",
			"file.created",
			"file.updated",
			"file.conflict_created",
			"file.moved",
			"file.trashed",
			"file.restored",
		]);
		expect(events[4]?.data.previous).toEqual({ parent_id: folder.id, name: "plan.txt" });
		const seqs = events.map((e) => e.data.seq);
		expect(seqs).toEqual(Array.from({ length: 7 }, (_, i) => (seqs[0] ?? 0) + i));
	});

	it("a 410 disables the endpoint", async () => {
		const user = await h.signup();
		const { name, endpoint } = await endpointFor(user, [{ status: 410 }]);
		await h.upload(user, user.rootId, "gone.txt", "g");
		await receiver.received(name, 1);
		const after = await until(
			async () => (await h.call<WebhookEndpoint>(`/v1/webhooks/${endpoint.id}`, { token: user.token })).body,
			(e) => e.status === "disabled",
		);
		expect(after.disabled_reason).toBe("gone");
	});

	it("a 302 is a failed attempt whose Location is never fetched; the queue retries it with the same webhook-id", async () => {
		const user = await h.signup();
		const before = receiver.trapConnections;
		const { name, endpoint } = await endpointFor(user, [{ status: 302, headers: { location: `${receiver.trapUrl}/stolen` } }]);
		await h.upload(user, user.rootId, "moved.txt", "m");
		const [first, second] = await receiver.received(name, 2);
		expect(second?.headers["webhook-id"]).toBe(first?.headers["webhook-id"]);
		const id = first?.headers["webhook-id"] ?? "";
		const delivery = await until(
			async () => (await h.call<WebhookDelivery>(`/v1/webhooks/${endpoint.id}/deliveries/${id}`, { token: user.token })).body,
			(d) => d.status === "succeeded",
		);
		expect(delivery.attempt_log?.map((a) => a.status)).toEqual([302, 200]);
		expect(delivery.attempt_log?.[0]?.error).toContain("not followed");
		expect(receiver.trapConnections).toBe(before);
	});
});
