/**
 * Delivering webhooks (docs/decisions/0028-webhooks.md): one POST per
 * attempt, signed per Standard Webhooks, behind the SSRF guard, never
 * following a redirect, given 15 s. The retry schedule is ours, through
 * `msg.retry({ delaySeconds })`; the delivery's row says what happened, and
 * each attempt is logged with its status, duration and the first 1 KB of the
 * answer.
 *
 * A delivery is claimed before it is attempted, so a duplicated message posts
 * once; a claim that outlives its attempt (a crash) expires, and the cron
 * sends the delivery again.
 */
import { parseRetryAfter } from "../../../src/client/http";
import { shardAt } from "../../../src/shared/db/shards";
import { runBatch } from "../../../src/shared/db/batch";
import type { WebhookEndpointRow } from "../../../src/shared/db/schema";
import { changeEvent, wants, type JournalRow, type WebhookPayload } from "../../../src/shared/webhooks/events";
import { webhookHeaders } from "../../../src/shared/webhooks/signing";
import { checkWebhookTarget, webhookTargetPolicy } from "../../../src/shared/webhooks/target";
import { keyRing } from "./block-store";
import { ENDPOINT_DISABLED, sendEvent, type DeliveryMessage } from "./webhook-fanout";
import { signingSecrets } from "./webhook-endpoints";

/**
 * Seconds to wait after each failed attempt: 11 attempts over about 2.5 days
 * (Standard Webhooks' and Svix's shape). Queues delay a message by at most
 * 12 hours.
 */
export const RETRY_SCHEDULE_SECONDS: readonly number[] = [5, 300, 1_800, 7_200, 18_000, 36_000, 43_200, 43_200, 43_200, 21_600];

/** Longest delay Queues accepts for a message. */
const MAX_DELAY_SECONDS = 43_200;

/** How long an attempt holds its delivery: above the timeout, with room for the bookkeeping. */
export const CLAIM_MS = 60_000;

/** No answer within this long is a failed attempt. */
export const ATTEMPT_TIMEOUT_MS = 15_000;

/** An endpoint whose every delivery failed for this long is disabled (Svix's rule). */
export const DISABLE_AFTER_MS = 5 * 86_400_000;

/**
 * A failure this long after the previous one starts a new run of failures:
 * an endpoint that failed once days ago and then had nothing to receive is
 * not failing now. The schedule's longest wait is 12 hours, so a delivery
 * failing for good fails at least twice a day.
 */
export const FAILING_RUN_GAP_MS = 86_400_000;

/** Bytes of an answer kept in the attempt log. */
export const RESPONSE_SNIPPET_BYTES = 1_024;

/** The delay before the next attempt after `failed` failed attempts (1-based), or null when the schedule is spent. */
export function retryDelaySeconds(failed: number, retryAfterSeconds: number | null, random = Math.random()): number | null {
	const base = RETRY_SCHEDULE_SECONDS[failed - 1];
	if (base === undefined) return null;
	// ±20 % jitter, so endpoints that failed together do not retry together.
	const jittered = Math.round(base * (0.8 + 0.4 * random));
	return Math.min(MAX_DELAY_SECONDS, Math.max(1, jittered, retryAfterSeconds ?? 0));
}

/** Retry-After in whole seconds, or null: the client library's parser (delta or HTTP date). */
function retryAfterSeconds(value: string | null): number | null {
	const ms = parseRetryAfter(value);
	return ms === undefined ? null : Math.ceil(ms / 1000);
}

// A consumer batch's messages of one shard are claimed, loaded and settled
// with one statement each, whatever their number: lists go in as one JSON
// parameter (src/shared/db/lists.ts).

/**
 * ?1 JSON [[id, generation]], ?2 claimed until, ?3 now (ms), ?4 now (ISO):
 * takes the pending deliveries no other attempt holds, of the messages'
 * generations (an older message of a re-sent delivery takes nothing). A
 * user who moved away is skipped: their old shard's fence would refuse the
 * whole claim (docs/decisions/0034).
 */
const CLAIM = `UPDATE webhook_deliveries SET claimed_until = ?2, attempts = attempts + 1, updated_at = ?4
	WHERE (id, generation) IN (SELECT j.value ->> 0, j.value ->> 1 FROM json_each(?1) j)
		AND status = 'pending' AND (claimed_until IS NULL OR claimed_until < ?3)
		AND user_id NOT IN (SELECT user_id FROM moved_users)
	RETURNING id, user_id, endpoint_id, seq, type, payload, attempts, failures`;
/** ?1 JSON delivery ids: their endpoints. */
const ENDPOINTS_OF = `SELECT * FROM webhook_endpoints
	WHERE id IN (SELECT endpoint_id FROM webhook_deliveries WHERE id IN (SELECT value FROM json_each(?1)))`;
/** ?1 JSON delivery ids: the journal rows their events are built from. */
const CHANGES_OF = `SELECT d.id AS delivery_id, c.user_id, c.seq, c.kind, c.node, c.created_at, c.reason, c.previous
	FROM webhook_deliveries d JOIN changes c ON c.user_id = d.user_id AND c.seq = d.seq
	WHERE d.id IN (SELECT value FROM json_each(?1))`;

/** ?1 JSON [[delivery, n, at, status, error, ms, response]]. */
const INSERT_ATTEMPTS = `INSERT OR REPLACE INTO webhook_attempts (delivery_id, n, at, status, error, duration_ms, response)
	SELECT j.value ->> 0, j.value ->> 1, j.value ->> 2, j.value ->> 3, j.value ->> 4, j.value ->> 5, j.value ->> 6 FROM json_each(?1) j`;
/** ?1 JSON [[id, status, next attempt (ms), last status, last error, failures]], ?2 now (ISO). */
const SETTLE = `UPDATE webhook_deliveries SET status = j.value ->> 1, next_attempt_at = j.value ->> 2, claimed_until = NULL,
		last_status = j.value ->> 3, last_error = j.value ->> 4, failures = j.value ->> 5, updated_at = ?2
	FROM json_each(?1) j WHERE webhook_deliveries.id = j.value ->> 0`;
const SUCCEEDED = `UPDATE webhook_endpoints SET failing_since = NULL, last_success_at = ?2 WHERE id = ?1`;
/** ?1 id, ?2 now (ISO), ?3 a failure before this ends the run (ISO): a run of failures with a day's pause in it starts again. */
const FAILED = `UPDATE webhook_endpoints SET
	failing_since = CASE WHEN failing_since IS NULL OR last_failure_at IS NULL OR last_failure_at < ?3 THEN ?2 ELSE failing_since END,
	last_failure_at = ?2 WHERE id = ?1`;
/** ?1 id, ?2 reason, ?3 now (ISO), ?4 failing since at most (ISO; gone: any). */
const DISABLE = `UPDATE webhook_endpoints SET status = 'disabled', disabled_reason = ?2, disabled_at = ?3, updated_at = ?3
	WHERE id = ?1 AND status = 'enabled' AND (?2 = 'gone' OR (failing_since IS NOT NULL AND failing_since <= ?4))
	RETURNING id, user_id, url`;

interface Claimed {
	id: string;
	user_id: string;
	endpoint_id: string;
	seq: number | null;
	type: string;
	payload: string | null;
	attempts: number;
	failures: number;
}

/** What one attempt found. */
export interface AttemptOutcome {
	status: number | null;
	error: string | null;
	durationMs: number;
	response: string | null;
	retryAfter: number | null;
}

/** Reads at most `limit` bytes of a body as text, then lets the rest go. */
async function readSnippet(res: Response, limit: number): Promise<string | null> {
	if (!res.body) return null;
	const reader = res.body.getReader();
	const chunks: Uint8Array[] = [];
	let size = 0;
	try {
		while (size < limit) {
			const { done, value } = await reader.read();
			if (done) break;
			chunks.push(value);
			size += value.byteLength;
		}
	} finally {
		await reader.cancel().catch(() => undefined);
	}
	const all = new Uint8Array(size);
	let at = 0;
	for (const c of chunks) {
		all.set(c, at);
		at += c.byteLength;
	}
	return new TextDecoder().decode(all.slice(0, limit));
}

/** Posts a signed body once. Never throws: a failure is an outcome. */
export async function postWebhook(url: string, headers: Record<string, string>, body: string): Promise<AttemptOutcome> {
	const started = Date.now();
	try {
		const res = await fetch(url, {
			method: "POST",
			headers: { "content-type": "application/json", "user-agent": "Drive-Webhooks/1", ...headers },
			body,
			// A 3xx is a failure: following it would let a public URL bounce us to a private one.
			redirect: "manual",
			signal: AbortSignal.timeout(ATTEMPT_TIMEOUT_MS),
		});
		const response = await readSnippet(res, RESPONSE_SNIPPET_BYTES);
		const ok = res.status >= 200 && res.status < 300;
		return {
			status: res.status,
			error: ok
				? null
				: res.status >= 300 && res.status < 400
					? `redirect to ${res.headers.get("location") ?? "?"} not followed`
					: `HTTP ${res.status}`,
			durationMs: Date.now() - started,
			response,
			retryAfter: retryAfterSeconds(res.headers.get("retry-after")),
		};
	} catch (err) {
		const timedOut = err instanceof Error && (err.name === "TimeoutError" || err.name === "AbortError");
		return {
			status: null,
			error: timedOut
				? `no answer within ${ATTEMPT_TIMEOUT_MS / 1000} s`
				: `connection failed: ${err instanceof Error ? err.message : String(err)}`,
			durationMs: Date.now() - started,
			response: null,
			retryAfter: null,
		};
	}
}

/**
 * Posts in flight at once per invocation: Workers let an invocation wait on
 * 6 connections, and a 7th would wait in line with its 15 s already running.
 */
export const POSTS_AT_ONCE = 6;

/** A counting semaphore: at most `size` holders at once. */
function limiter(size: number): <T>(work: () => Promise<T>) => Promise<T> {
	let free = size;
	const waiting: (() => void)[] = [];
	return async (work) => {
		if (free > 0) free--;
		else await new Promise<void>((resolve) => waiting.push(resolve));
		try {
			return await work();
		} finally {
			const next = waiting.shift();
			if (next) next();
			else free++;
		}
	};
}

/** Consumes `drive-webhook-deliver`: each shard's messages are claimed in one batch and settled in another. */
export async function consumeDeliveries(batch: MessageBatch<DeliveryMessage>, env: Env, now = Date.now()): Promise<void> {
	const byShard = new Map<number, Message<DeliveryMessage>[]>();
	for (const message of batch.messages) byShard.set(message.body.shard, [...(byShard.get(message.body.shard) ?? []), message]);
	const posting = limiter(POSTS_AT_ONCE);
	await Promise.all(
		[...byShard].map(async ([shard, messages]) => {
			try {
				await deliverShard(env, shard, messages, posting, now);
			} catch (err) {
				// Nothing was acknowledged: every message comes back, after the claims it holds have expired.
				console.error(JSON.stringify({ webhooks: "deliver", shard, error: String(err) }));
				for (const m of messages) m.retry({ delaySeconds: Math.ceil(CLAIM_MS / 1000) });
			}
		}),
	);
}

/** What becomes of one message once its shard's bookkeeping landed. */
type Verdict = { ack: true } | { ack: false; delaySeconds: number };

async function deliverShard(
	env: Env,
	shard: number,
	messages: Message<DeliveryMessage>[],
	posting: <T>(work: () => Promise<T>) => Promise<T>,
	now: number,
): Promise<void> {
	const db = shardAt(env, shard).$client;
	const at = new Date(now).toISOString();
	const ids = JSON.stringify([...new Set(messages.map((m) => m.body.id))]);
	const [claims, endpointRows, changeRows] = await runBatch(db, [
		db.prepare(CLAIM).bind(JSON.stringify(messages.map((m) => [m.body.id, m.body.gen ?? 0])), now + CLAIM_MS, now, at),
		db.prepare(ENDPOINTS_OF).bind(ids),
		db.prepare(CHANGES_OF).bind(ids),
	]);
	const claimedById = new Map(((claims?.results ?? []) as Claimed[]).map((c) => [c.id, c]));
	const endpointsById = new Map(((endpointRows?.results ?? []) as Record<string, unknown>[]).map((e) => [e.id as string, e]));
	const changesById = new Map(((changeRows?.results ?? []) as (JournalRow & { delivery_id: string })[]).map((c) => [c.delivery_id, c]));
	const attempts: unknown[][] = [];
	const settled: unknown[][] = [];
	const ring = keyRing(env);
	const policy = webhookTargetPolicy(env);
	const secrets = new Map<string, Promise<string[]>>();
	const settle: D1PreparedStatement[] = [];
	const verdicts = new Map<Message<DeliveryMessage>, Verdict>();
	const succeeded = new Set<string>();
	const failing = new Set<string>();
	const gone = new Set<string>();

	const attemptOne = async (
		claimed: Claimed,
		endpoint: Record<string, unknown> | undefined,
		change: JournalRow | undefined,
	): Promise<Verdict> => {
		const finish = (
			status: "succeeded" | "failed" | "pending",
			outcome: AttemptOutcome | null,
			nextAt: number,
			failures: number,
			error?: string,
		) => {
			if (outcome) attempts.push([claimed.id, claimed.attempts, at, outcome.status, outcome.error, outcome.durationMs, outcome.response]);
			settled.push([claimed.id, status, nextAt, outcome?.status ?? null, error ?? outcome?.error ?? null, failures]);
		};
		if (!endpoint || endpoint.status !== "enabled") {
			finish("failed", null, now, claimed.failures, endpoint ? ENDPOINT_DISABLED : "the endpoint was deleted");
			return { ack: true };
		}
		const row = endpointRow(endpoint);
		const payload = claimed.payload ?? (change ? JSON.stringify(changeEvent(change)) : null);
		if (payload === null) {
			finish("failed", null, now, claimed.failures, "the change left the journal (retention); read it with GET /v1/changes");
			return { ack: true };
		}
		const target = checkWebhookTarget(row.url, policy);
		if (!target.ok) {
			// Refused before any connection: the policy changed since registration. Retrying cannot help.
			const blocked = { status: null, error: `blocked: ${target.reason}`, durationMs: 0, response: null, retryAfter: null };
			finish("failed", blocked, now, claimed.failures + 1);
			failing.add(row.id);
			return { ack: true };
		}
		let signing = secrets.get(row.id);
		if (!signing) secrets.set(row.id, (signing = signingSecrets(ring, row, now)));
		const keys = await signing;
		const outcome = await posting(async () =>
			postWebhook(target.url.href, await webhookHeaders(keys, claimed.id, Math.floor(Date.now() / 1000), payload), payload),
		);
		if (outcome.status !== null && outcome.status >= 200 && outcome.status < 300) {
			finish("succeeded", outcome, now, claimed.failures);
			succeeded.add(row.id);
			return { ack: true };
		}
		const failures = claimed.failures + 1;
		if (outcome.status === 410) {
			finish("failed", outcome, now, failures);
			gone.add(row.id);
			return { ack: true };
		}
		failing.add(row.id);
		const delay = retryDelaySeconds(failures, outcome.retryAfter);
		if (delay === null) {
			finish("failed", outcome, now, failures);
			return { ack: true };
		}
		finish("pending", outcome, now + delay * 1000, failures);
		return { ack: false, delaySeconds: delay };
	};

	await Promise.all(
		messages.map(async (message) => {
			const claimed = claimedById.get(message.body.id);
			// Settled already, re-sent since (an older generation), or another attempt holds it (a duplicated message): nothing to do.
			if (!claimed) return message.ack();
			// One message per claim: a duplicate in the same batch finds it taken.
			claimedById.delete(message.body.id);
			try {
				verdicts.set(message, await attemptOne(claimed, endpointsById.get(claimed.endpoint_id), changesById.get(claimed.id)));
			} catch (err) {
				// A bug or a key missing from the ring: the claim expires and the delivery is tried again.
				console.error(JSON.stringify({ webhooks: "attempt", delivery: claimed.id, error: String(err) }));
				verdicts.set(message, { ack: false, delaySeconds: Math.ceil(CLAIM_MS / 1000) });
			}
		}),
	);
	if (attempts.length > 0) settle.push(db.prepare(INSERT_ATTEMPTS).bind(JSON.stringify(attempts)));
	if (settled.length > 0) settle.push(db.prepare(SETTLE).bind(JSON.stringify(settled), at));
	for (const id of succeeded) settle.push(db.prepare(SUCCEEDED).bind(id, at));
	const restartBefore = new Date(now - FAILING_RUN_GAP_MS).toISOString();
	for (const id of failing) if (!succeeded.has(id)) settle.push(db.prepare(FAILED).bind(id, at, restartBefore));
	const cutoff = new Date(now - DISABLE_AFTER_MS).toISOString();
	const disabling = [
		...[...gone].map((id) => db.prepare(DISABLE).bind(id, "gone", at, at)),
		...[...failing].filter((id) => !succeeded.has(id) && !gone.has(id)).map((id) => db.prepare(DISABLE).bind(id, "failing", at, cutoff)),
	];
	const results = settle.length + disabling.length > 0 ? await runBatch(db, [...settle, ...disabling]) : [];
	// Only now that the attempts are recorded: a message acknowledged before would be lost with its record.
	for (const [message, verdict] of verdicts) {
		if (verdict.ack) message.ack();
		else message.retry({ delaySeconds: verdict.delaySeconds });
	}
	const disabled = results
		.slice(settle.length)
		.flatMap((r) => r.results as { id: string; user_id: string; url: string }[])
		.map((r) => ({ ...r, reason: gone.has(r.id) ? "gone" : "failing" }));
	for (const endpoint of disabled) await announceDisabled(env, shard, endpoint, now);
}

/** Tells the user's other endpoints (those that want it) that one was disabled; the API shows it too. */
async function announceDisabled(
	env: Env,
	shard: number,
	endpoint: { id: string; user_id: string; url: string; reason: string },
	now: number,
) {
	const db = shardAt(env, shard).$client;
	const { results } = await db
		.prepare("SELECT id, event_types FROM webhook_endpoints WHERE user_id = ?1 AND status = 'enabled' AND id != ?2")
		.bind(endpoint.user_id, endpoint.id)
		.all<{ id: string; event_types: string | null }>();
	const to = results
		.filter((r) => wants(r.event_types === null ? null : (JSON.parse(r.event_types) as string[]), "webhook.endpoint_disabled"))
		.map((r) => r.id);
	const payload: WebhookPayload = {
		type: "webhook.endpoint_disabled",
		timestamp: new Date(now).toISOString(),
		data: { user_id: endpoint.user_id, endpoint_id: endpoint.id, url: endpoint.url, reason: endpoint.reason },
	};
	await sendEvent(env, shard, endpoint.user_id, to, payload, now);
}

/** A raw endpoint row (snake_case columns) as drizzle's row type. */
function endpointRow(raw: Record<string, unknown>): WebhookEndpointRow {
	return {
		id: raw.id as string,
		userId: raw.user_id as string,
		url: raw.url as string,
		description: raw.description as string,
		eventTypes: raw.event_types as string | null,
		secret: raw.secret as string,
		previousSecret: raw.previous_secret as string | null,
		previousSecretUntil: raw.previous_secret_until as string | null,
		status: raw.status as "enabled" | "disabled",
		disabledReason: raw.disabled_reason as string | null,
		disabledAt: raw.disabled_at as string | null,
		enqueuedThroughSeq: raw.enqueued_through_seq as number,
		activityThrough: raw.activity_through as string,
		failingSince: raw.failing_since as string | null,
		lastFailureAt: raw.last_failure_at as string | null,
		lastSuccessAt: raw.last_success_at as string | null,
		createdAt: raw.created_at as string,
		updatedAt: raw.updated_at as string,
	};
}

/** Consumes `drive-webhook-dlq`: a delivery whose messages kept crashing is marked failed (a kick is logged; the cron re-kicks). */
export async function consumeDeadLetters(batch: MessageBatch<DeliveryMessage | { user: string; shard: number }>, env: Env): Promise<void> {
	const at = new Date().toISOString();
	for (const message of batch.messages) {
		const body = message.body;
		try {
			if ("id" in body) {
				await shardAt(env, body.shard)
					.$client.prepare(
						"UPDATE webhook_deliveries SET status = 'failed', claimed_until = NULL, last_error = 'delivery crashed repeatedly', updated_at = ?2 WHERE id = ?1 AND status = 'pending'",
					)
					.bind(body.id, at)
					.run();
			} else console.error(JSON.stringify({ webhooks: "fanout dead letter", user: body.user }));
			message.ack();
		} catch (err) {
			// The shard failed: this letter comes back, the others of the batch keep their answers (docs/decisions/0033-failure-handling.md).
			console.error(JSON.stringify({ webhooks: "dead letter", error: String(err) }));
			message.retry({ delaySeconds: 30 });
		}
	}
}
