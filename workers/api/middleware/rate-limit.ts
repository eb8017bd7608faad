/**
 * Coarse rate limits per route class (docs/decisions/0027-storage-lifecycle.md,
 * decision 6): one `[[ratelimits]]` binding per class, counted per user, or
 * per client address before sign-in and on public links. Every answer of a
 * limited class advertises its policy; a refusal is 429 RATE_LIMITED with
 * Retry-After and `RateLimit` (https://datatracker.ietf.org/doc/draft-ietf-httpapi-ratelimit-headers/11/).
 */
import type { Context } from "hono";
import { createMiddleware } from "hono/factory";
import {
	policyField,
	RATE_LIMIT_POLICIES,
	rateLimitClass,
	rateLimitField,
	secondsToReset,
	type RateLimitPartition,
} from "../../../src/shared/rate-limits";
import { ApiError } from "../errors";
import type { AppEnv } from "../env";
import { clientAddress } from "../services/throttle";
import { verifyAccessToken } from "../services/tokens";

export const RATE_LIMIT_HEADERS = ["RateLimit-Policy", "RateLimit"];

export const rateLimit = createMiddleware<AppEnv>(async (c, next) => {
	const name = rateLimitClass(c.req.method, new URL(c.req.url).pathname.replace(/^\/v1/, ""));
	if (name === null) return next();
	const policy = RATE_LIMIT_POLICIES[name];
	const advertised = policyField(name, policy);
	const key = await partitionKey(c, policy.partition);
	// No key: a request without a valid token from a local stack's loopback
	// address, which every local client shares (services/throttle.ts).
	if (key !== null && !(await c.env[policy.binding].limit({ key })).success) {
		const seconds = secondsToReset(policy.period, Date.now());
		throw new ApiError("RATE_LIMITED", `too many ${name} requests; retry in ${seconds} s`, [{ retry_after_seconds: seconds }], {
			"RateLimit-Policy": advertised,
			RateLimit: rateLimitField(name, 0, seconds),
		});
	}
	await next();
	// A WebSocket upgrade's answer cannot be rebuilt without losing its socket.
	if (c.res.status === 101) return;
	const headers: Record<string, string> = { "RateLimit-Policy": advertised };
	// On write and upload routes a 429 is the hub's exact write budget (workers/notify/usage.ts) saying when to retry.
	const retryAfter = Number(c.res.headers.get("Retry-After"));
	if (c.res.status === 429 && (name === "write" || name === "upload") && retryAfter > 0)
		headers.RateLimit = rateLimitField(name, 0, retryAfter);
	setHeaders(c, headers);
});

/** What the request counts against: its user when it carries a valid access token, else its address; null when neither is known. */
async function partitionKey(c: Context<AppEnv>, partition: RateLimitPartition): Promise<string | null> {
	if (partition === "user") {
		const token = /^Bearer\s+(\S+)$/i.exec(c.req.header("Authorization") ?? "")?.[1];
		const claims = token === undefined ? null : await verifyAccessToken(c.env, token);
		if (claims !== null) return `user:${claims.userId}`;
	}
	const address = clientAddress(c.req.header("CF-Connecting-IP"));
	return address === null ? null : `address:${address}`;
}

/** Sets `headers` on the answer, copying it first when its headers are immutable (a fetched or cached response). */
function setHeaders(c: Context<AppEnv>, headers: Record<string, string>): void {
	try {
		for (const [name, value] of Object.entries(headers)) c.res.headers.set(name, value);
	} catch {
		const copy = new Response(c.res.body, c.res);
		for (const [name, value] of Object.entries(headers)) copy.headers.set(name, value);
		c.res = copy;
	}
}
