/**
 * An endpoint's delivery log (docs/api.md, "Webhooks"): deliveries newest
 * first with their attempts, redelivering one, recovering every failed one
 * since a seq or a time, and the test event. A redelivery keeps its
 * `webhook-id`, so a receiver that saw it already can tell.
 */
import { and, asc, desc, eq, gte, gt, lt, or } from "drizzle-orm";
import { runBatch } from "../../../src/shared/db/batch";
import type { ShardDb } from "../../../src/shared/db/shards";
import { webhookAttempts, webhookDeliveries, type WebhookDeliveryRow, type WebhookEndpointRow } from "../../../src/shared/db/schema";
import { fail, ok, type Result } from "../../../src/shared/errors";
import type { WebhookDelivery } from "../../../src/shared/schemas/webhooks";
import type { Caller } from "../env";
import { shardFor } from "./hub";
import { ownEndpoint } from "./webhook-endpoints";
import { reopenDeliveries, sendEvent } from "./webhook-fanout";

/** Deliveries one recover call sends again. */
export const MAX_RECOVER = 1_000;

export function toWebhookDelivery(row: WebhookDeliveryRow): WebhookDelivery {
	return {
		id: row.id,
		endpoint_id: row.endpointId,
		type: row.type,
		seq: row.seq,
		status: row.status,
		attempts: row.attempts,
		next_attempt_at: row.status === "pending" ? new Date(row.nextAttemptAt).toISOString() : null,
		last_status: row.lastStatus,
		last_error: row.lastError,
		created_at: row.createdAt,
		updated_at: row.updatedAt,
	};
}

const encodeCursor = (row: { createdAt: string; id: string }) => btoa(`${row.createdAt}|${row.id}`);
function decodeCursor(cursor: string): { createdAt: string; id: string } | null {
	try {
		const [createdAt, id] = atob(cursor).split("|");
		return createdAt && id ? { createdAt, id } : null;
	} catch {
		return null;
	}
}

export async function listDeliveries(
	env: Env,
	caller: Caller,
	endpointId: string,
	query: { status?: "pending" | "succeeded" | "failed" | undefined; limit: number; cursor?: string | undefined },
): Promise<Result<{ items: WebhookDelivery[]; next_cursor: string | null }>> {
	const db = shardFor(env, caller);
	const endpoint = await ownEndpoint(db, caller.userId, endpointId);
	if (!endpoint.ok) return endpoint;
	const after = query.cursor === undefined ? null : decodeCursor(query.cursor);
	if (query.cursor !== undefined && after === null)
		return fail("INVALID_REQUEST", "cursor: not a cursor of this list", [{ field: "cursor" }]);
	const rows = await db
		.select()
		.from(webhookDeliveries)
		.where(
			and(
				eq(webhookDeliveries.endpointId, endpointId),
				query.status ? eq(webhookDeliveries.status, query.status) : undefined,
				after
					? or(
							lt(webhookDeliveries.createdAt, after.createdAt),
							and(eq(webhookDeliveries.createdAt, after.createdAt), lt(webhookDeliveries.id, after.id)),
						)
					: undefined,
			),
		)
		.orderBy(desc(webhookDeliveries.createdAt), desc(webhookDeliveries.id))
		.limit(query.limit + 1);
	const more = rows.length > query.limit;
	const page = rows.slice(0, query.limit);
	const last = page[page.length - 1];
	return ok({ items: page.map(toWebhookDelivery), next_cursor: more && last ? encodeCursor(last) : null });
}

async function ownDelivery(env: Env, caller: Caller, endpointId: string, deliveryId: string): Promise<Result<WebhookDeliveryRow>> {
	const db = shardFor(env, caller);
	const endpoint = await ownEndpoint(db, caller.userId, endpointId);
	if (!endpoint.ok) return endpoint;
	const rows = await db
		.select()
		.from(webhookDeliveries)
		.where(and(eq(webhookDeliveries.id, deliveryId), eq(webhookDeliveries.endpointId, endpointId)))
		.limit(1);
	return rows[0] ? ok(rows[0]) : fail("NOT_FOUND", "no such delivery");
}

/** One delivery with every attempt, oldest first. */
export async function getDelivery(env: Env, caller: Caller, endpointId: string, deliveryId: string): Promise<Result<WebhookDelivery>> {
	const found = await ownDelivery(env, caller, endpointId, deliveryId);
	if (!found.ok) return found;
	const attempts = await shardFor(env, caller)
		.select()
		.from(webhookAttempts)
		.where(eq(webhookAttempts.deliveryId, deliveryId))
		.orderBy(asc(webhookAttempts.n));
	return ok({
		...toWebhookDelivery(found.value),
		attempt_log: attempts.map((a) => ({
			n: a.n,
			at: a.at,
			status: a.status,
			error: a.error,
			duration_ms: a.durationMs,
			response: a.response,
		})),
	});
}

const reopen = (env: Env, caller: Caller, endpointId: string, ids: string[], now: number) =>
	reopenDeliveries(env, caller.shard, caller.userId, endpointId, ids, now);

/** One of the caller's endpoints that may be sent to now: a disabled one answers 400. */
async function enabledEndpoint(db: ShardDb, userId: string, endpointId: string): Promise<Result<WebhookEndpointRow>> {
	const endpoint = await ownEndpoint(db, userId, endpointId);
	if (endpoint.ok && endpoint.value.status !== "enabled")
		return fail("INVALID_REQUEST", "this endpoint is disabled; enable it first (PATCH status: enabled)", [{ reason: "endpoint_disabled" }]);
	return endpoint;
}

/** Sends a delivery again, whatever its state, with the same webhook-id; its attempts go on in the same log. */
export async function redeliver(
	env: Env,
	caller: Caller,
	endpointId: string,
	deliveryId: string,
	now = Date.now(),
): Promise<Result<WebhookDelivery>> {
	const endpoint = await enabledEndpoint(shardFor(env, caller), caller.userId, endpointId);
	if (!endpoint.ok) return endpoint;
	const found = await ownDelivery(env, caller, endpointId, deliveryId);
	if (!found.ok) return found;
	await reopen(env, caller, endpointId, [deliveryId], now);
	const again = await ownDelivery(env, caller, endpointId, deliveryId);
	return again.ok ? ok(toWebhookDelivery(again.value)) : again;
}

/** Sends every failed delivery since a journal seq or a time again, oldest first, up to {@link MAX_RECOVER}. */
export async function recover(
	env: Env,
	caller: Caller,
	endpointId: string,
	since: { since_seq?: number | undefined; since?: string | undefined },
	now = Date.now(),
): Promise<Result<{ redelivering: number }>> {
	const db = shardFor(env, caller);
	const endpoint = await enabledEndpoint(db, caller.userId, endpointId);
	if (!endpoint.ok) return endpoint;
	const rows = await db
		.select({ id: webhookDeliveries.id })
		.from(webhookDeliveries)
		.where(
			and(
				eq(webhookDeliveries.endpointId, endpointId),
				eq(webhookDeliveries.status, "failed"),
				since.since_seq !== undefined ? gt(webhookDeliveries.seq, since.since_seq) : undefined,
				since.since !== undefined ? gte(webhookDeliveries.createdAt, new Date(since.since).toISOString()) : undefined,
			),
		)
		.orderBy(asc(webhookDeliveries.createdAt), asc(webhookDeliveries.id))
		.limit(MAX_RECOVER);
	return ok({
		redelivering: await reopen(
			env,
			caller,
			endpointId,
			rows.map((r) => r.id),
			now,
		),
	});
}

/** Sends a `webhook.test` event to one endpoint (whatever its filter), and returns its delivery. */
export async function sendTestEvent(env: Env, caller: Caller, endpointId: string, now = Date.now()): Promise<Result<WebhookDelivery>> {
	const endpoint = await enabledEndpoint(shardFor(env, caller), caller.userId, endpointId);
	if (!endpoint.ok) return endpoint;
	const [id] = await sendEvent(
		env,
		caller.shard,
		caller.userId,
		[endpointId],
		{ type: "webhook.test", timestamp: new Date(now).toISOString(), data: { user_id: caller.userId, endpoint_id: endpointId } },
		now,
	);
	const found = await ownDelivery(env, caller, endpointId, id ?? "");
	return found.ok ? ok(toWebhookDelivery(found.value)) : found;
}

/** The cron's share (services and scheduled.ts): prunes deliveries and attempts older than the journal keeps. */
export async function pruneDeliveries(db: ShardDb, cutoff: string): Promise<void> {
	await runBatch(db.$client, [
		db.$client
			.prepare("DELETE FROM webhook_attempts WHERE delivery_id IN (SELECT id FROM webhook_deliveries WHERE created_at < ?1)")
			.bind(cutoff),
		db.$client.prepare("DELETE FROM webhook_deliveries WHERE created_at < ?1").bind(cutoff),
	]);
}
