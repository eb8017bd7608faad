/**
 * The webhook fan-out (docs/decisions/0028-webhooks.md): the journal is the
 * outbox. A kick from the user's hub says "the journal advanced"; the fan-out
 * reads it from each enabled endpoint's cursor, creates one delivery per
 * wanted event, moves the cursors, and queues the new deliveries. All of it
 * in one D1 batch, with ids made from (endpoint, seq): a duplicated or
 * replayed kick creates nothing twice, and a lost one leaves the cursor
 * behind for the cron's re-kick.
 */
import { isUserMoved } from "../../../src/shared/db/moved";
import { shardAt } from "../../../src/shared/db/shards";
import { newId } from "../../../src/shared/ids";
import {
	eventTypeOf,
	SHARE_EVENT_TYPES,
	shareEvent,
	wants,
	type ActivityRow,
	type JournalRow,
	type WebhookPayload,
} from "../../../src/shared/webhooks/events";
import type { ChangeKind } from "../../../src/shared/schemas/sync";
import type { FanOutKick } from "../../notify/contract";
import { runBatch } from "../../../src/shared/db/batch";

/** A message on the `drive-webhook-deliver` queue: one delivery to attempt. */
export interface DeliveryMessage {
	id: string;
	user: string;
	shard: number;
	/** The delivery's generation when the message was sent (absent: 0); a re-send moves it, and older messages post nothing. */
	gen?: number;
}

/** Journal changes one kick reads; a kick that finds more sends its successor. */
export const FANOUT_PAGE = 200;

const ENABLED_ENDPOINTS = `SELECT e.id, e.event_types, e.enqueued_through_seq, e.activity_through,
		(SELECT COALESCE(MAX(pruned_through), 0) FROM journal_state WHERE user_id = ?1) AS pruned
	FROM webhook_endpoints e WHERE e.user_id = ?1 AND e.status = 'enabled'`;

/**
 * ?1 user, ?2 limit: the journal after the lowest cursor of the user's
 * enabled endpoints (a cursor below the pruned journal counts as its floor),
 * read in the same batch (one snapshot) as the endpoints.
 */
const JOURNAL_AFTER = `SELECT user_id, seq, kind, node, created_at, reason, previous FROM changes
	WHERE user_id = ?1 AND seq > (SELECT MIN(MAX(e.enqueued_through_seq, (SELECT COALESCE(MAX(pruned_through), 0) FROM journal_state WHERE user_id = ?1)))
		FROM webhook_endpoints e WHERE e.user_id = ?1 AND e.status = 'enabled')
	ORDER BY seq LIMIT ?2`;

/**
 * ?1 user, ?2 limit: share events of the activity log after the lowest
 * share cursor. Only the user's hub writes them, one batch after the other,
 * so their ids increase in the order they land; the api's own activity rows
 * (links) are skipped, and never move a cursor.
 */
const ACTIVITY_AFTER = `SELECT id, user_id, at, event, actor_type, actor_id, node_id, share_id, details,
		(SELECT COALESCE(MAX(seq), 0) FROM changes WHERE user_id = ?1) AS journal_seq
	FROM activity WHERE user_id = ?1 AND event LIKE 'share.%'
		AND id > (SELECT MIN(e.activity_through) FROM webhook_endpoints e WHERE e.user_id = ?1 AND e.status = 'enabled')
	ORDER BY id LIMIT ?2`;

/** ?1 user, ?2 JSON [[id, endpoint, seq, type, payload]], ?3 now (ms), ?4 now (ISO): the deliveries not made yet. */
const INSERT_DELIVERIES = `INSERT OR IGNORE INTO webhook_deliveries
		(id, user_id, endpoint_id, seq, type, payload, status, attempts, next_attempt_at, created_at, updated_at)
	SELECT j.value ->> 0, ?1, j.value ->> 1, j.value ->> 2, j.value ->> 3, j.value ->> 4, 'pending', 0, ?3, ?4, ?4 FROM json_each(?2) j
	RETURNING id`;

/** ?1 JSON endpoint ids, ?2 seq: cursors only move forward, so a late, replayed kick cannot move one back. */
const ADVANCE_JOURNAL = `UPDATE webhook_endpoints SET enqueued_through_seq = MAX(enqueued_through_seq, ?2) WHERE id IN (SELECT value FROM json_each(?1))`;
/** ?1 JSON endpoint ids, ?2 activity id. */
const ADVANCE_ACTIVITY = `UPDATE webhook_endpoints SET activity_through = MAX(activity_through, ?2) WHERE id IN (SELECT value FROM json_each(?1))`;

/** The Standard Webhooks message id of a journal event to an endpoint: the same however often it is made. */
export function deliveryIdOf(endpointId: string, seq: number | string): string {
	return `msg_${endpointId.slice(endpointId.indexOf("_") + 1)}_${seq}`;
}

/** Queues deliveries (at most 100 messages per call). */
export async function queueDeliveries(env: Env, messages: DeliveryMessage[], delaySeconds = 0): Promise<void> {
	for (let i = 0; i < messages.length; i += 100)
		await env.WEBHOOK_DELIVER.sendBatch(messages.slice(i, i + 100).map((body) => ({ body, ...(delaySeconds > 0 && { delaySeconds }) })));
}

/**
 * Creates and queues the deliveries of the user's journal changes and share
 * events past their endpoints' cursors, up to {@link FANOUT_PAGE} of each:
 * one batch of reads, one of writes.
 * @returns true when more wait (send the kick again).
 */
export async function fanOut(env: Env, kick: FanOutKick, now = Date.now()): Promise<boolean> {
	const db = shardAt(env, kick.shard).$client;
	const [found, journal, activity] = await runBatch(db, [
		db.prepare(ENABLED_ENDPOINTS).bind(kick.user),
		db.prepare(JOURNAL_AFTER).bind(kick.user, FANOUT_PAGE),
		db.prepare(ACTIVITY_AFTER).bind(kick.user, FANOUT_PAGE),
	]);
	const endpoints = (found?.results ?? []) as EndpointCursors[];
	const changes = (journal?.results ?? []) as (JournalRow & { kind: ChangeKind })[];
	const shares = (activity?.results ?? []) as (ActivityRow & { journal_seq: number })[];
	if (endpoints.length === 0 || (changes.length === 0 && shares.length === 0)) return false;
	// A delivery: [id, endpoint, seq, type, payload]. Journal events are built from their row at each attempt; share events carry theirs.
	const wanted: [string, string, number | null, string, string | null][] = [];
	for (const endpoint of endpoints) {
		const filters = endpoint.event_types === null ? null : (JSON.parse(endpoint.event_types) as string[]);
		// A cursor below the pruned journal (an endpoint off for weeks) skips ahead: the seqs in the events show the receiver the gap.
		const cursor = Math.max(endpoint.enqueued_through_seq, endpoint.pruned);
		for (const change of changes) {
			if (change.seq <= cursor) continue;
			const type = eventTypeOf(change.kind, JSON.parse(change.node) as { type: "file" | "folder"; conflict_of: string | null });
			if (wants(filters, type)) wanted.push([deliveryIdOf(endpoint.id, change.seq), endpoint.id, change.seq, type, null]);
		}
		for (const row of shares) {
			if (row.id <= endpoint.activity_through || !SHARE_EVENT_TYPES.has(row.event)) continue;
			const event = shareEvent(row, row.journal_seq);
			if (wants(filters, event.type))
				wanted.push([
					deliveryIdOf(endpoint.id, row.id.slice(row.id.indexOf("_") + 1)),
					endpoint.id,
					null,
					event.type,
					JSON.stringify(event),
				]);
		}
	}
	const ids = JSON.stringify(endpoints.map((e) => e.id));
	const lastChange = changes[changes.length - 1];
	const lastShare = shares[shares.length - 1];
	const results = await runBatch(db, [
		...(wanted.length > 0 ? [db.prepare(INSERT_DELIVERIES).bind(kick.user, JSON.stringify(wanted), now, new Date(now).toISOString())] : []),
		...(lastChange ? [db.prepare(ADVANCE_JOURNAL).bind(ids, lastChange.seq)] : []),
		...(lastShare ? [db.prepare(ADVANCE_ACTIVITY).bind(ids, lastShare.id)] : []),
	]);
	// Only the rows this batch inserted: a duplicated or concurrent kick queues nothing twice.
	const made = wanted.length > 0 ? (results[0]?.results as { id: string }[]) : [];
	await queueDeliveries(
		env,
		made.map((r) => ({ id: r.id, user: kick.user, shard: kick.shard })),
	);
	return changes.length === FANOUT_PAGE || shares.length === FANOUT_PAGE;
}

interface EndpointCursors {
	id: string;
	event_types: string | null;
	enqueued_through_seq: number;
	activity_through: string;
	pruned: number;
}

/** ?1 id, ?2 user, ?3 endpoint, ?4 type, ?5 payload, ?6 now (ms), ?7 now (ISO). */
const INSERT_EVENT = `INSERT INTO webhook_deliveries
		(id, user_id, endpoint_id, seq, type, payload, status, attempts, next_attempt_at, created_at, updated_at)
	VALUES (?1, ?2, ?3, NULL, ?4, ?5, 'pending', 0, ?6, ?7, ?7)`;

/**
 * Sends an event that is not a journal change (`webhook.test`,
 * `webhook.endpoint_disabled`) to the given endpoints: the delivery carries
 * its payload.
 * @returns the deliveries' ids, per endpoint, in order.
 */
export async function sendEvent(
	env: Env,
	shard: number,
	userId: string,
	endpointIds: string[],
	payload: WebhookPayload,
	now = Date.now(),
): Promise<string[]> {
	if (endpointIds.length === 0) return [];
	const db = shardAt(env, shard).$client;
	const at = new Date(now).toISOString();
	const ids = endpointIds.map(() => newId("msg", now));
	await runBatch(
		db,
		endpointIds.map((endpointId, i) =>
			db.prepare(INSERT_EVENT).bind(ids[i], userId, endpointId, payload.type, JSON.stringify(payload), now, at),
		),
	);
	await queueDeliveries(
		env,
		ids.map((id) => ({ id, user: userId, shard })),
	);
	return ids;
}

/** Consumes `drive-webhook-fanout`: one fan-out per user in the batch, however many kicks it got. */
export async function consumeFanOut(batch: MessageBatch<FanOutKick>, env: Env): Promise<void> {
	const byUser = new Map<string, { kick: FanOutKick; messages: Message<FanOutKick>[] }>();
	for (const message of batch.messages) {
		const entry = byUser.get(message.body.user) ?? { kick: message.body, messages: [] };
		entry.messages.push(message);
		byUser.set(message.body.user, entry);
	}
	await Promise.all(
		[...byUser.values()].map(async ({ kick, messages }) => {
			try {
				if (await fanOut(env, kick)) await env.WEBHOOK_FANOUT.send(kick);
				for (const m of messages) m.ack();
			} catch (err) {
				// The user moved shard: their hub kicks the fan-out again in the new one (docs/decisions/0034).
				if (isUserMoved(err)) {
					for (const m of messages) m.ack();
					return;
				}
				console.error(JSON.stringify({ webhooks: "fanout", user: kick.user, error: String(err) }));
				for (const m of messages) m.retry({ delaySeconds: 5 });
			}
		}),
	);
}

/** A pending delivery whose next attempt is this late lost its message (or its claim died with a crash): the cron sends it again. */
export const REDRIVE_AFTER_MS = 10 * 60_000;

/** Deliveries one cron run sends again per shard. */
const REDRIVE_LIMIT = 1_000;

/** Users whose enabled endpoints are behind their journal or their share events: their kick was lost. */
const BEHIND = `SELECT DISTINCT e.user_id FROM webhook_endpoints e
	WHERE e.status = 'enabled' AND (e.enqueued_through_seq < (SELECT COALESCE(MAX(c.seq), 0) FROM changes c WHERE c.user_id = e.user_id)
		OR e.activity_through < COALESCE((SELECT a.id FROM activity a WHERE a.user_id = e.user_id AND a.event LIKE 'share.%' ORDER BY a.id DESC LIMIT 1), ''))`;

/**
 * ?1 late before (ms), ?2 now (ms), ?3 limit: overdue deliveries. Their next
 * attempt moves to now, so the next run does not send them twice, and their
 * generation moves, so the lost message, should it turn up, posts nothing.
 */
const OVERDUE = `UPDATE webhook_deliveries SET next_attempt_at = ?2, generation = generation + 1
	WHERE id IN (SELECT id FROM webhook_deliveries WHERE status = 'pending' AND next_attempt_at < ?1
		AND (claimed_until IS NULL OR claimed_until < ?2) AND user_id NOT IN (SELECT user_id FROM moved_users) LIMIT ?3)
	RETURNING id, user_id, generation`;

/**
 * The cron's part in one shard: re-kicks the fan-out for every user whose
 * endpoints are behind the journal, and sends again every delivery whose
 * message was lost. Both are idempotent, so a duplicate costs nothing.
 */
export async function redriveWebhooks(env: Env, shard: number, now = Date.now()): Promise<{ kicked: number; redriven: number }> {
	const db = shardAt(env, shard).$client;
	const { results: behind } = await db.prepare(BEHIND).all<{ user_id: string }>();
	for (let i = 0; i < behind.length; i += 100)
		await env.WEBHOOK_FANOUT.sendBatch(behind.slice(i, i + 100).map((r) => ({ body: { user: r.user_id, shard } satisfies FanOutKick })));
	const { results: overdue } = await db
		.prepare(OVERDUE)
		.bind(now - REDRIVE_AFTER_MS, now, REDRIVE_LIMIT)
		.all<{ id: string; user_id: string; generation: number }>();
	await queueDeliveries(
		env,
		overdue.map((r) => ({ id: r.id, user: r.user_id, shard, gen: r.generation })),
	);
	return { kicked: behind.length, redriven: overdue.length };
}

/** The last error of a delivery that met its endpoint disabled: re-enabling the endpoint sends those again. */
export const ENDPOINT_DISABLED = "the endpoint is disabled";

/**
 * ?1 endpoint, ?2 now (ms), ?3 now (ISO), ?4 JSON ids: back to pending with a
 * fresh retry schedule and a new generation (a message already on its way
 * posts nothing); an attempt in flight keeps its claim.
 */
const REOPEN = `UPDATE webhook_deliveries SET status = 'pending', failures = 0, generation = generation + 1, next_attempt_at = ?2, updated_at = ?3
	WHERE endpoint_id = ?1 AND id IN (SELECT value FROM json_each(?4)) AND (status != 'pending' OR claimed_until IS NULL OR claimed_until < ?2)
	RETURNING id, generation`;

/** Sends deliveries of one endpoint again (redeliver, recover, re-enable); returns how many. */
export async function reopenDeliveries(
	env: Env,
	shard: number,
	userId: string,
	endpointId: string,
	ids: string[],
	now = Date.now(),
): Promise<number> {
	if (ids.length === 0) return 0;
	const { results } = await shardAt(env, shard)
		.$client.prepare(REOPEN)
		.bind(endpointId, now, new Date(now).toISOString(), JSON.stringify(ids))
		.all<{ id: string; generation: number }>();
	await queueDeliveries(
		env,
		results.map((r) => ({ id: r.id, user: userId, shard, gen: r.generation })),
	);
	return results.length;
}
