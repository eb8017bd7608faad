/**
 * A user's webhook endpoints (docs/api.md, "Webhooks"; docs/decisions/0028):
 * registration behind the SSRF guard, signing secrets encrypted at rest and
 * shown once, rotation with a day of overlap. The rows live in the user's
 * shard beside the journal they deliver from.
 */
import { and, asc, eq } from "drizzle-orm";
import { runBatch } from "../../../src/shared/db/batch";
import { fromBase64Url, toBase64Url, type KeyRing } from "../../../src/shared/crypto";
import { webhookEndpoints, type WebhookEndpointRow } from "../../../src/shared/db/schema";
import type { ShardDb } from "../../../src/shared/db/shards";
import { fail, ok, type Result } from "../../../src/shared/errors";
import { newId } from "../../../src/shared/ids";
import type { WebhookEndpoint } from "../../../src/shared/schemas/webhooks";
import { newWebhookSecret } from "../../../src/shared/webhooks/signing";
import { checkWebhookTarget, webhookTargetPolicy } from "../../../src/shared/webhooks/target";
import type { Caller } from "../env";
import { keyRing } from "./block-store";
import { hubFor, shardFor } from "./hub";
import { journalBounds } from "./journal";
import { ENDPOINT_DISABLED, reopenDeliveries } from "./webhook-fanout";

/** Endpoints one user may have. */
export const MAX_ENDPOINTS_PER_USER = 10;

/** After a rotation, the previous secret signs too for this long, so receivers can switch without losing a delivery. */
export const PREVIOUS_SECRET_TTL_MS = 24 * 3_600_000;

const SECRET_PURPOSE = "webhook-secret";

/** Encrypts a signing secret for its endpoint's row: `keyId:base64url(iv ‖ ciphertext)`, bound to the endpoint's id. */
export async function sealSecret(ring: KeyRing, endpointId: string, secret: string): Promise<string> {
	const key = await ring.deriveSecretKey(ring.currentKeyId, SECRET_PURPOSE);
	const iv = crypto.getRandomValues(new Uint8Array(12));
	const additionalData = new TextEncoder().encode(endpointId);
	const sealed = new Uint8Array(
		await crypto.subtle.encrypt({ name: "AES-GCM", iv, additionalData }, key, new TextEncoder().encode(secret)),
	);
	const out = new Uint8Array(iv.length + sealed.length);
	out.set(iv);
	out.set(sealed, iv.length);
	return `${ring.currentKeyId}:${toBase64Url(out)}`;
}

/** Decrypts what {@link sealSecret} stored; throws if it was tampered with or its key left the ring. */
export async function openSecret(ring: KeyRing, endpointId: string, stored: string): Promise<string> {
	const at = stored.indexOf(":");
	const bytes = fromBase64Url(stored.slice(at + 1));
	const key = await ring.deriveSecretKey(stored.slice(0, at), SECRET_PURPOSE);
	const additionalData = new TextEncoder().encode(endpointId);
	const plain = await crypto.subtle.decrypt({ name: "AES-GCM", iv: bytes.slice(0, 12), additionalData }, key, bytes.slice(12));
	return new TextDecoder().decode(plain);
}

/** The secrets that sign a delivery now: the current one, and the previous one during a rotation's overlap. */
export async function signingSecrets(ring: KeyRing, row: WebhookEndpointRow, now = Date.now()): Promise<string[]> {
	const secrets = [await openSecret(ring, row.id, row.secret)];
	if (row.previousSecret && row.previousSecretUntil && Date.parse(row.previousSecretUntil) > now)
		secrets.push(await openSecret(ring, row.id, row.previousSecret));
	return secrets;
}

export function toWebhookEndpoint(row: WebhookEndpointRow, secret?: string, now = Date.now()): WebhookEndpoint {
	const overlap = row.previousSecret !== null && row.previousSecretUntil !== null && Date.parse(row.previousSecretUntil) > now;
	return {
		id: row.id,
		url: row.url,
		description: row.description,
		event_types: row.eventTypes === null ? null : (JSON.parse(row.eventTypes) as string[]),
		status: row.status,
		disabled_reason: (row.disabledReason as WebhookEndpoint["disabled_reason"]) ?? null,
		disabled_at: row.disabledAt,
		failing_since: row.failingSince,
		last_success_at: row.lastSuccessAt,
		previous_secret_expires_at: overlap ? row.previousSecretUntil : null,
		created_at: row.createdAt,
		updated_at: row.updatedAt,
		...(secret !== undefined && { secret }),
	};
}

/** The URL as the guard sees it, or INVALID_REQUEST saying why it is refused. */
function checkedUrl(env: Env, raw: string): Result<string> {
	const verdict = checkWebhookTarget(raw, webhookTargetPolicy(env));
	if (!verdict.ok)
		return fail("INVALID_REQUEST", `this webhook URL is refused: ${verdict.reason}`, [{ field: "url", reason: "target_refused" }]);
	return ok(verdict.url.href);
}

/** Tells the user's hub that their endpoints changed, so that it kicks the fan-out (or stops). The cron covers a failure. */
async function tellHub(env: Env, userId: string): Promise<void> {
	try {
		await hubFor(env, userId).webhooksChanged();
	} catch (err) {
		console.error(JSON.stringify({ webhooks: "hub", user: userId, error: String(err) }));
	}
}

export interface EndpointInput {
	url: string;
	event_types?: string[] | undefined;
	description: string;
}

export async function createEndpoint(env: Env, caller: Caller, input: EndpointInput, now = Date.now()): Promise<Result<WebhookEndpoint>> {
	const url = checkedUrl(env, input.url);
	if (!url.ok) return url;
	const db = shardFor(env, caller);
	const id = newId("whk", now);
	const secret = newWebhookSecret();
	const at = new Date(now).toISOString();
	// Events start with the next change: the journal and the activity log before it are history, not news.
	const { latest } = await journalBounds(db, caller.userId);
	const activity = await db.$client
		.prepare("SELECT COALESCE(MAX(id), '') AS id FROM activity WHERE user_id = ?1")
		.bind(caller.userId)
		.first<{ id: string }>();
	const row: WebhookEndpointRow = {
		id,
		userId: caller.userId,
		url: url.value,
		description: input.description,
		eventTypes: input.event_types ? JSON.stringify([...new Set(input.event_types)]) : null,
		secret: await sealSecret(keyRing(env), id, secret),
		previousSecret: null,
		previousSecretUntil: null,
		status: "enabled",
		disabledReason: null,
		disabledAt: null,
		enqueuedThroughSeq: latest,
		activityThrough: activity?.id ?? "",
		failingSince: null,
		lastFailureAt: null,
		lastSuccessAt: null,
		createdAt: at,
		updatedAt: at,
	};
	// The count and the insert in one statement: two requests at once cannot both take the tenth place.
	const columns = Object.keys(row) as (keyof WebhookEndpointRow)[];
	const names = columns.map((k) => webhookEndpoints[k].name);
	const inserted = await db.$client
		.prepare(
			`INSERT INTO webhook_endpoints (${names.join(", ")}) SELECT ${names.map((_, i) => `?${i + 1}`).join(", ")}
			WHERE (SELECT COUNT(*) FROM webhook_endpoints WHERE user_id = ?${names.indexOf("user_id") + 1}) < ${MAX_ENDPOINTS_PER_USER} RETURNING id`,
		)
		.bind(...columns.map((k) => row[k]))
		.first<{ id: string }>();
	if (!inserted)
		return fail("INVALID_REQUEST", `an account has at most ${MAX_ENDPOINTS_PER_USER} webhook endpoints; delete one first`, [
			{ reason: "too_many_endpoints", limit: MAX_ENDPOINTS_PER_USER },
		]);
	await tellHub(env, caller.userId);
	return ok(toWebhookEndpoint(row, secret, now));
}

export async function listEndpoints(env: Env, caller: Caller): Promise<WebhookEndpoint[]> {
	const rows = await shardFor(env, caller)
		.select()
		.from(webhookEndpoints)
		.where(eq(webhookEndpoints.userId, caller.userId))
		.orderBy(asc(webhookEndpoints.createdAt), asc(webhookEndpoints.id));
	return rows.map((row) => toWebhookEndpoint(row));
}

/** One of the caller's endpoints; another user's, and an unknown id, answer the same 404. */
export async function ownEndpoint(db: ShardDb, userId: string, id: string): Promise<Result<WebhookEndpointRow>> {
	const rows = await db
		.select()
		.from(webhookEndpoints)
		.where(and(eq(webhookEndpoints.userId, userId), eq(webhookEndpoints.id, id)))
		.limit(1);
	const row = rows[0];
	return row ? ok(row) : fail("NOT_FOUND", "no such webhook endpoint");
}

export interface EndpointChanges {
	url?: string | undefined;
	event_types?: string[] | null | undefined;
	description?: string | undefined;
	status?: "enabled" | "disabled" | undefined;
}

export async function updateEndpoint(
	env: Env,
	caller: Caller,
	id: string,
	input: EndpointChanges,
	now = Date.now(),
): Promise<Result<WebhookEndpoint>> {
	const db = shardFor(env, caller);
	const found = await ownEndpoint(db, caller.userId, id);
	if (!found.ok) return found;
	const at = new Date(now).toISOString();
	const set: Partial<WebhookEndpointRow> = { updatedAt: at };
	if (input.url !== undefined) {
		const url = checkedUrl(env, input.url);
		if (!url.ok) return url;
		set.url = url.value;
	}
	if (input.event_types !== undefined) set.eventTypes = input.event_types === null ? null : JSON.stringify([...new Set(input.event_types)]);
	if (input.description !== undefined) set.description = input.description;
	const reenabling = input.status === "enabled" && found.value.status === "disabled";
	if (reenabling) {
		// The guard may have changed since the URL was registered.
		if (set.url === undefined) {
			const url = checkedUrl(env, found.value.url);
			if (!url.ok) return url;
		}
		// Re-enabled: a fresh start. Events from while it was off follow, as far as the journal still holds them.
		Object.assign(set, { status: "enabled", disabledReason: null, disabledAt: null, failingSince: null, lastFailureAt: null });
	} else if (input.status === "disabled" && found.value.status === "enabled") {
		Object.assign(set, { status: "disabled", disabledReason: "user", disabledAt: at });
	}
	const rows = await db
		.update(webhookEndpoints)
		.set(set)
		.where(and(eq(webhookEndpoints.userId, caller.userId), eq(webhookEndpoints.id, id)))
		.returning();
	const row = rows[0];
	if (!row) return fail("NOT_FOUND", "no such webhook endpoint");
	if (reenabling) {
		// Deliveries that met it disabled (retries under way, events while it was off) go out again.
		const { results } = await db.$client
			.prepare(
				"SELECT id FROM webhook_deliveries WHERE endpoint_id = ?1 AND status = 'failed' AND last_error = ?2 AND updated_at >= ?3 ORDER BY created_at LIMIT 1000",
			)
			.bind(id, ENDPOINT_DISABLED, found.value.disabledAt ?? "")
			.all<{ id: string }>();
		await reopenDeliveries(
			env,
			caller.shard,
			caller.userId,
			id,
			results.map((r) => r.id),
			now,
		);
	}
	if (set.status !== undefined) await tellHub(env, caller.userId);
	return ok(toWebhookEndpoint(row, undefined, now));
}

/** Deletes an endpoint and its delivery log. Deliveries on their way find no endpoint and stop. */
export async function deleteEndpoint(env: Env, caller: Caller, id: string): Promise<Result<void>> {
	const db = shardFor(env, caller);
	const found = await ownEndpoint(db, caller.userId, id);
	if (!found.ok) return found;
	await runBatch(db.$client, [
		// An update first: a moved user's old shard skips deletes but refuses updates (docs/decisions/0034).
		db.$client.prepare("UPDATE webhook_endpoints SET updated_at = updated_at WHERE user_id = ?1 AND id = ?2").bind(caller.userId, id),
		db.$client
			.prepare("DELETE FROM webhook_attempts WHERE delivery_id IN (SELECT id FROM webhook_deliveries WHERE endpoint_id = ?1)")
			.bind(id),
		db.$client.prepare("DELETE FROM webhook_deliveries WHERE endpoint_id = ?1").bind(id),
		db.$client.prepare("DELETE FROM webhook_endpoints WHERE user_id = ?1 AND id = ?2").bind(caller.userId, id),
	]);
	await tellHub(env, caller.userId);
	return ok(undefined);
}

/** A new signing secret, shown once; the previous one keeps signing for {@link PREVIOUS_SECRET_TTL_MS}. */
export async function rotateSecret(env: Env, caller: Caller, id: string, now = Date.now()): Promise<Result<WebhookEndpoint>> {
	const db = shardFor(env, caller);
	const found = await ownEndpoint(db, caller.userId, id);
	if (!found.ok) return found;
	const secret = newWebhookSecret();
	const rows = await db
		.update(webhookEndpoints)
		.set({
			secret: await sealSecret(keyRing(env), id, secret),
			previousSecret: found.value.secret,
			previousSecretUntil: new Date(now + PREVIOUS_SECRET_TTL_MS).toISOString(),
			updatedAt: new Date(now).toISOString(),
		})
		.where(and(eq(webhookEndpoints.userId, caller.userId), eq(webhookEndpoints.id, id), eq(webhookEndpoints.secret, found.value.secret)))
		.returning();
	const row = rows[0];
	if (!row) return fail("VERSION_CONFLICT", "the secret was rotated at the same moment; rotate again if you need a new one");
	return ok(toWebhookEndpoint(row, secret, now));
}
