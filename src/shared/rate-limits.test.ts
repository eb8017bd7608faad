import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { policyField, RATE_LIMIT_POLICIES, rateLimitClass, rateLimitField, secondsToReset, type RateLimitClass } from "./rate-limits";

describe("rateLimitClass", () => {
	const cases: [method: string, path: string, want: RateLimitClass | null][] = [
		["OPTIONS", "/nodes/root", null],
		["GET", "/openapi.json", null],
		["POST", "/auth/login", "auth"],
		["POST", "/auth/web/refresh", "auth"],
		["GET", "/l/tok/nodes/n1/content", "public"],
		["PUT", "/l/tok/files", "public"],
		["GET", "/dl/tok", "public"],
		["GET", "/changes", "sync"],
		["GET", "/changes/longpoll", "sync"],
		["POST", "/sync/ticket", "sync"],
		["GET", "/sync/ws", "sync"],
		["POST", "/uploads", "upload"],
		["PUT", "/uploads/u1/blocks/abc", "upload"],
		["PATCH", "/tus/t1", "upload"],
		["POST", "/tus", "upload"],
		["PUT", "/files/content", "upload"],
		["PUT", "/files/f1/content", "upload"],
		["GET", "/files/f1/content", "download"],
		["HEAD", "/files/f1/content", "download"],
		["POST", "/files/f1/download-url", "download"],
		["GET", "/files/f1/blocks", "download"],
		["GET", "/files/f1/blocks/e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", "download"],
		["HEAD", "/files/f1/blocks/abc", "download"],
		["POST", "/files/batch/content", "download"],
		["POST", "/files/f1/blocks", "write"],
		["GET", "/files/f1/blocks/abc/more", "read"],
		["GET", "/nodes/n1/children", "read"],
		["GET", "/files/f1/versions", "read"],
		["GET", "/me", "read"],
		["POST", "/folders", "write"],
		["PATCH", "/nodes/n1", "write"],
		["DELETE", "/trash", "write"],
		["POST", "/shares", "write"],
		["GET", "/changesets", "read"],
		["POST", "/webhooks", "write"],
		["GET", "/webhooks/w1/deliveries", "read"],
		["POST", "/webhooks/w1/test", "webhook"],
		["POST", "/webhooks/w1/recover", "webhook"],
		["POST", "/webhooks/w1/deliveries/m1/redeliver", "webhook"],
		["POST", "/webhooks/w1/rotate-secret", "write"],
	];
	it.each(cases)("%s %s → %s", (method, path, want) => {
		expect(rateLimitClass(method, path)).toBe(want);
	});
});

describe("secondsToReset", () => {
	it("counts to the end of the fixed window, never below 1", () => {
		expect(secondsToReset(10, 20_000)).toBe(10);
		expect(secondsToReset(10, 20_001)).toBe(10);
		expect(secondsToReset(10, 27_500)).toBe(3);
		expect(secondsToReset(10, 29_999)).toBe(1);
		expect(secondsToReset(60, 61_000)).toBe(59);
	});
});

describe("header fields (draft-ietf-httpapi-ratelimit-headers-11)", () => {
	it("writes the policy and the remaining quota as structured-field lists of one item", () => {
		expect(policyField("write", { limit: 5000, period: 10 })).toBe('"write";q=5000;w=10');
		expect(rateLimitField("write", 0, 7)).toBe('"write";r=0;t=7');
		expect(rateLimitField("read", -3, 2.2)).toBe('"read";r=0;t=3');
	});
});

describe("the policies", () => {
	it("are the [[ratelimits]] blocks of wrangler.toml, each period 10 or 60 s", () => {
		const toml = readFileSync(new URL("../../wrangler.toml", import.meta.url), "utf8");
		const blocks = [
			...toml.matchAll(/\[\[ratelimits\]\]\s*name = "([A-Z_]+)"\s*namespace_id = "(\d+)"\s*simple = \{ limit = (\d+), period = (\d+) \}/g),
		].map((m) => ({ binding: m[1], limit: Number(m[3]), period: Number(m[4]) }));
		const policies = Object.values(RATE_LIMIT_POLICIES).map(({ binding, limit, period }) => ({ binding, limit, period }));
		expect(blocks).toEqual(policies);
		for (const p of policies) expect([10, 60]).toContain(p.period);
	});
});
