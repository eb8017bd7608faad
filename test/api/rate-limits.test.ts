/**
 * Coarse rate limits (workers/api/middleware/rate-limit.ts): the policy on
 * every limited answer, 429 RATE_LIMITED with Retry-After and RateLimit past
 * the limit, and the next window passing. The binding counts in fixed windows
 * of the wall clock that nothing can move, so these tests wait for the window
 * to change (a condition), and a test that needs a low limit puts the
 * RATE_LIMIT_TEST binding (3 per 10 s, vitest.config.ts) in place of a class's.
 */
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { RATE_LIMIT_POLICIES, type RateLimitBinding } from "../../src/shared/rate-limits";
import { type Harness } from "../support/harness";
import { apiOver, call, expectError, signup } from "./helpers";

const TEST_LIMIT = 3;
const TEST_PERIOD_MS = 10_000;
const testBinding = (env as unknown as { RATE_LIMIT_TEST: RateLimit }).RATE_LIMIT_TEST;

/** The api worker with `binding` counting at 3 per 10 s. */
function tightApi(binding: RateLimitBinding): Harness {
	return apiOver({ ...env, [binding]: testBinding } as Env);
}

/** Lets go of an answer's body. */
const drain = (res: Response): Promise<void> => res.body?.cancel() ?? Promise.resolve();

const windowOf = (ms: number) => Math.floor(ms / TEST_PERIOD_MS);

/** Resolves once the binding's fixed window has moved past `window`. */
async function windowAfter(window: number): Promise<void> {
	while (windowOf(Date.now()) <= window) await new Promise((resolve) => setTimeout(resolve, 20));
}

/**
 * Sends limit+1 requests inside one window, with a fresh counter: `start`
 * makes the sender (a new user, a new address). Tried again in a new window
 * if one ended between the first and the last request.
 */
async function pastTheLimit<S>(
	start: () => Promise<S>,
	send: (subject: S) => Promise<Response>,
): Promise<{ subject: S; passed: Response[]; refused: Response; window: number }> {
	for (;;) {
		const subject = await start();
		const window = windowOf(Date.now());
		const answers: Response[] = [];
		for (let i = 0; i <= TEST_LIMIT; i++) answers.push(await send(subject));
		if (windowOf(Date.now()) === window)
			return { subject, passed: answers.slice(0, TEST_LIMIT), refused: answers[TEST_LIMIT] as Response, window };
		await Promise.all(answers.map(drain));
	}
}

/** Asserts a refusal of `name`'s limit and answers its Retry-After. */
async function expectRateLimited(res: Response, name: string, policy: string, periodSeconds: number): Promise<number> {
	const body = await expectError(res, 429, "RATE_LIMITED");
	const retryAfter = Number(res.headers.get("Retry-After"));
	expect(retryAfter).toBeGreaterThanOrEqual(1);
	expect(retryAfter).toBeLessThanOrEqual(periodSeconds);
	expect(body.error.details).toEqual([{ retry_after_seconds: retryAfter }]);
	expect(res.headers.get("RateLimit")).toBe(`"${name}";r=0;t=${retryAfter}`);
	expect(res.headers.get("RateLimit-Policy")).toBe(policy);
	return retryAfter;
}

const READ_POLICY = `"read";q=${RATE_LIMIT_POLICIES.read.limit};w=${RATE_LIMIT_POLICIES.read.period}`;

describe("rate limits", () => {
	it("advertises the class's policy on every limited answer, and nothing where nothing is limited", async () => {
		const user = await signup();
		const read = await call(`/v1/nodes/${user.rootId}`, { token: user.token });
		expect(read.status).toBe(200);
		expect(read.headers.get("RateLimit-Policy")).toBe(READ_POLICY);
		expect(read.headers.get("RateLimit")).toBeNull();
		await drain(read);
		const write = await call("/v1/folders", {
			method: "POST",
			token: user.token,
			body: JSON.stringify({ parent_id: user.rootId, name: "a" }),
		});
		expect(write.status).toBe(201);
		expect(write.headers.get("RateLimit-Policy")).toBe(
			`"write";q=${RATE_LIMIT_POLICIES.write.limit};w=${RATE_LIMIT_POLICIES.write.period}`,
		);
		await drain(write);
		const refused = await call("/v1/nodes/root");
		await expectError(refused, 401, "UNAUTHENTICATED");
		expect(refused.headers.get("RateLimit-Policy")).toBe(READ_POLICY);
		const cors = await call(`/v1/nodes/${user.rootId}`, { token: user.token, headers: { Origin: "https://app.example" } });
		expect(cors.headers.get("Access-Control-Expose-Headers")).toMatch(/RateLimit-Policy,RateLimit\b|RateLimit-Policy, RateLimit\b/);
		await drain(cors);
		const preflight = await call("/v1/nodes/root", {
			method: "OPTIONS",
			headers: { Origin: "https://app.example", "Access-Control-Request-Method": "GET" },
		});
		expect(preflight.headers.get("RateLimit-Policy")).toBeNull();
		await drain(preflight);
		const spec = await call("/v1/openapi.json");
		expect(spec.headers.get("RateLimit-Policy")).toBeNull();
		const document = (await spec.json()) as { info: { description: string } };
		expect(document.info.description).toMatch(/429 RATE_LIMITED.*Retry-After.*RateLimit-Policy/);
	});

	it("answers a user's request past the limit 429 RATE_LIMITED with Retry-After and RateLimit, and the next window passes", async () => {
		const tight = tightApi("RATE_LIMIT_READ");
		const {
			subject: user,
			passed,
			refused,
			window,
		} = await pastTheLimit(signup, (u) => tight.request(`/v1/nodes/${u.rootId}`, { token: u.token }));
		for (const res of passed) expect(res.status).toBe(200);
		await Promise.all(passed.map(drain));
		await expectRateLimited(refused, "read", READ_POLICY, RATE_LIMIT_POLICIES.read.period);

		// Counted per class: the same user still writes.
		const write = await tight.request("/v1/folders", { method: "POST", token: user.token, json: { parent_id: user.rootId, name: "w" } });
		expect(write.status).toBe(201);
		await drain(write);

		await windowAfter(window);
		const next = await tight.request(`/v1/nodes/${user.rootId}`, { token: user.token });
		expect(next.status).toBe(200);
		expect(next.headers.get("RateLimit-Policy")).toBe(READ_POLICY);
		await drain(next);
	});

	it("counts users apart", async () => {
		const tight = tightApi("RATE_LIMIT_READ");
		const other = await signup();
		for (;;) {
			const { refused, window } = await pastTheLimit(signup, (u) => tight.request(`/v1/nodes/${u.rootId}`, { token: u.token }));
			await drain(refused);
			expect(refused.status).toBe(429);
			const res = await tight.request(`/v1/nodes/${other.rootId}`, { token: other.token });
			await drain(res);
			// Only a request inside the refused window shows anything: otherwise try again.
			if (windowOf(Date.now()) !== window) continue;
			expect(res.status).toBe(200);
			break;
		}
	});

	it("counts requests without an access token per client address", async () => {
		const tight = tightApi("RATE_LIMIT_AUTH");
		let n = 0;
		const { refused, window } = await pastTheLimit(
			async () => `203.0.113.${++n}`,
			(address) =>
				tight.request("/v1/auth/refresh", { method: "POST", headers: { "CF-Connecting-IP": address }, json: { refresh_token: "nope" } }),
		);
		const policy = `"auth";q=${RATE_LIMIT_POLICIES.auth.limit};w=${RATE_LIMIT_POLICIES.auth.period}`;
		await expectRateLimited(refused, "auth", policy, RATE_LIMIT_POLICIES.auth.period);
		// Another address is not refused; nor is a local stack's loopback address, which every local client shares.
		for (const address of ["198.51.100.1", "127.0.0.1", ""]) {
			const res = await tight.request("/v1/auth/refresh", {
				method: "POST",
				headers: address === "" ? {} : { "CF-Connecting-IP": address },
				json: { refresh_token: "nope" },
			});
			if (windowOf(Date.now()) === window) expect(res.status).not.toBe(429);
			await drain(res);
		}
	});
});
