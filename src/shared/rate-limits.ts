/**
 * Coarse rate limits (docs/decisions/0027-storage-lifecycle.md, decision 6):
 * which class a request belongs to, each class's policy, and the
 * `RateLimit-Policy` / `RateLimit` fields of
 * https://datatracker.ietf.org/doc/draft-ietf-httpapi-ratelimit-headers/11/.
 * The policies below must equal the `[[ratelimits]]` blocks of wrangler.toml
 * (rate-limits.test.ts checks), since the binding cannot say its own limit.
 */

/** What a request does, for counting: each class has its own limit. */
export type RateLimitClass = "auth" | "public" | "read" | "download" | "upload" | "write" | "sync" | "webhook";

/** Who a request counts against: the signed-in user, or the client address before sign-in and for public links. */
export type RateLimitPartition = "user" | "address";

export interface RateLimitPolicy {
	/** The `[[ratelimits]]` binding that counts this class. */
	binding: RateLimitBinding;
	/** Requests allowed per window. */
	limit: number;
	/** The window, in seconds: the binding accepts 10 or 60 only. */
	period: 10 | 60;
	partition: RateLimitPartition;
}

export type RateLimitBinding =
	| "RATE_LIMIT_AUTH"
	| "RATE_LIMIT_PUBLIC"
	| "RATE_LIMIT_READ"
	| "RATE_LIMIT_DOWNLOAD"
	| "RATE_LIMIT_UPLOAD"
	| "RATE_LIMIT_WRITE"
	| "RATE_LIMIT_SYNC"
	| "RATE_LIMIT_WEBHOOK";

/**
 * Generous on purpose: they stop floods, not clients, and no test or
 * benchmark of a local stack comes near them. The hub's write budget
 * (workers/notify/usage.ts) is the exact per-user limit on changes.
 */
export const RATE_LIMIT_POLICIES: Record<RateLimitClass, RateLimitPolicy> = {
	auth: { binding: "RATE_LIMIT_AUTH", limit: 300, period: 60, partition: "address" },
	public: { binding: "RATE_LIMIT_PUBLIC", limit: 2000, period: 10, partition: "address" },
	read: { binding: "RATE_LIMIT_READ", limit: 20000, period: 10, partition: "user" },
	download: { binding: "RATE_LIMIT_DOWNLOAD", limit: 5000, period: 10, partition: "user" },
	upload: { binding: "RATE_LIMIT_UPLOAD", limit: 10000, period: 10, partition: "user" },
	write: { binding: "RATE_LIMIT_WRITE", limit: 10000, period: 10, partition: "user" },
	sync: { binding: "RATE_LIMIT_SYNC", limit: 10000, period: 10, partition: "user" },
	// Each of these makes Drive post to a URL of the user's choosing, up to 1,000 times for a recover: far tighter.
	webhook: { binding: "RATE_LIMIT_WEBHOOK", limit: 30, period: 60, partition: "user" },
};

/**
 * The class of `method` on `path` (the path below `/v1`), or null for what
 * is never limited: CORS preflights and the OpenAPI document.
 */
export function rateLimitClass(method: string, path: string): RateLimitClass | null {
	const m = method.toUpperCase();
	if (m === "OPTIONS" || path === "/openapi.json") return null;
	const reading = m === "GET" || m === "HEAD";
	if (path.startsWith("/auth/")) return "auth";
	if (path.startsWith("/l/") || path.startsWith("/dl/")) return "public";
	if (path.startsWith("/sync/") || path === "/changes" || path.startsWith("/changes/")) return "sync";
	if (path.startsWith("/uploads") || path === "/tus" || path.startsWith("/tus/") || path === "/files/batch") return "upload";
	if (/^\/files\/[^/]+\/content$/.test(path) || path === "/files/content") return reading ? "download" : m === "PUT" ? "upload" : "write";
	if (/^\/files\/[^/]+\/download-url$/.test(path)) return "download";
	if (reading && /^\/files\/[^/]+\/blocks(?:\/[^/]+)?$/.test(path)) return "download";
	if (m === "POST" && /^\/webhooks\/[^/]+\/(test|recover|deliveries\/[^/]+\/redeliver)$/.test(path)) return "webhook";
	return reading ? "read" : "write";
}

/** Seconds until the fixed window of `period` seconds that holds `now` ends: at least 1. */
export function secondsToReset(period: number, now: number): number {
	const windowMs = period * 1000;
	return Math.max(1, Math.ceil((windowMs - (now % windowMs)) / 1000));
}

/** A structured-field String (RFC 9651 §3.3.3): printable ASCII, `"` and `\` escaped. */
function sfString(value: string): string {
	if (!/^[\x20-\x7e]*$/.test(value)) throw new Error(`not a structured-field string: ${value}`);
	return `"${value.replace(/[\\"]/g, (ch) => `\\${ch}`)}"`;
}

/** `RateLimit-Policy: "write";q=5000;w=10` */
export function policyField(name: RateLimitClass, policy: Pick<RateLimitPolicy, "limit" | "period">): string {
	return `${sfString(name)};q=${policy.limit};w=${policy.period}`;
}

/** `RateLimit: "write";r=0;t=7`: what is left of the quota, and seconds until it resets. */
export function rateLimitField(name: RateLimitClass, remaining: number, resetSeconds: number): string {
	return `${sfString(name)};r=${Math.max(0, Math.floor(remaining))};t=${Math.max(0, Math.ceil(resetSeconds))}`;
}
