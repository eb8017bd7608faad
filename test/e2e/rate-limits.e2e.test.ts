/// <reference types="node" />
/**
 * Rate limits on the real local stack (wrangler dev, the `[[ratelimits]]`
 * bindings of wrangler.toml as deployed): the policy on limited answers, and
 * the per-address `auth` limit refusing the request past it.
 */
import { describe, expect, it } from "vitest";
import { RATE_LIMIT_POLICIES } from "../../src/shared/rate-limits";
import { expectError } from "../support/envelope";
import { stackHarness } from "../support/stack";

const h = stackHarness();

describe("rate limits through the local stack", () => {
	it("advertises the read policy on an authenticated read", async () => {
		const user = await h.signup("e2e rate limits");
		const res = await h.request("/v1/me", { token: user.token });
		expect(res.status).toBe(200);
		expect(res.headers.get("RateLimit-Policy")).toBe(`"read";q=${RATE_LIMIT_POLICIES.read.limit};w=${RATE_LIMIT_POLICIES.read.period}`);
		await res.body?.cancel();
	});

	it("refuses an address's request past the auth limit with 429, Retry-After and RateLimit", async () => {
		const { limit, period } = RATE_LIMIT_POLICIES.auth;
		// A /64 of its own in the documentation prefix (RFC 3849): no other test or run counts against it.
		const group = () => Math.floor(Math.random() * 0x10000).toString(16);
		const address = `2001:db8:${group()}:${group()}::1`;
		const refresh = () =>
			h.request("/v1/auth/refresh", { method: "POST", headers: { "CF-Connecting-IP": address }, json: { refresh_token: "nope" } });
		const statuses: number[] = [];
		let refused: Response | null = null;
		// The window may end along the way: then the count starts again, and more requests are needed.
		for (let i = 0; i <= 3 * limit && refused === null; i++) {
			const res = await refresh();
			statuses.push(res.status);
			if (res.status === 429) refused = res;
			else await res.body?.cancel();
		}
		expect(refused).not.toBeNull();
		expect(statuses.filter((s) => s === 429)).toHaveLength(1);
		expect(statuses.length).toBeGreaterThan(limit);
		const res = refused as Response;
		await expectError(res, 429, "RATE_LIMITED");
		const retryAfter = Number(res.headers.get("Retry-After"));
		expect(retryAfter).toBeGreaterThanOrEqual(1);
		expect(retryAfter).toBeLessThanOrEqual(period);
		expect(res.headers.get("RateLimit")).toBe(`"auth";r=0;t=${retryAfter}`);
		expect(res.headers.get("RateLimit-Policy")).toBe(`"auth";q=${limit};w=${period}`);
	});
});
