/**
 * Assertions on the error envelope, and the auth checks every route group
 * shares (after unkey's `runCommonRouteTests`).
 */
import { describe, expect, it } from "vitest";
import type { ErrorCode } from "../../src/shared/errors";
import type { ErrorBody, Harness, Reply, RequestOptions, TestUser } from "./harness";

/**
 * Asserts that the answer is the error envelope with `status` and `code`,
 * and that its request_id is the one in the `Request-Id` header. Returns the
 * envelope.
 */
export async function expectError(res: Response | Reply<unknown>, status: number, code: ErrorCode): Promise<ErrorBody> {
	const text = res instanceof Response ? await res.text() : res.text;
	if (res.status !== status) throw new Error(`expected ${status} ${code}, got ${res.status}: ${text}`);
	expect(res.headers.get("Content-Type") ?? "").toMatch(/^application\/json/);
	const parsed = JSON.parse(text) as ErrorBody;
	expect(parsed.error.code).toBe(code);
	expect(typeof parsed.error.message).toBe("string");
	expect(parsed.error.request_id).toMatch(/^req_/);
	expect(res.headers.get("Request-Id")).toBe(parsed.error.request_id);
	return parsed;
}

/** A request a route group's auth checks send, built for a signed-up user. */
export interface AuthProbe extends Omit<RequestOptions, "token"> {
	path: string;
}

/**
 * Registers the auth checks every authenticated route answers alike: no
 * token, another scheme, a token that does not verify, and the token of a
 * device that signed out all answer 401 UNAUTHENTICATED in the envelope.
 * `probe` builds the request for a freshly signed-up user, so it may name
 * that user's own resources.
 */
export function runAuthSuite(h: Harness, name: string, probe: (user: TestUser) => AuthProbe | Promise<AuthProbe>): void {
	describe(`${name}: auth`, () => {
		const send = async (token: string | null, headers: Record<string, string> = {}): Promise<Response> => {
			const user = await h.signup();
			const { path, ...init } = await probe(user);
			return h.request(path, { ...init, token, headers: { ...init.headers, ...headers } });
		};

		it("answers 401 UNAUTHENTICATED without a token, with WWW-Authenticate", async () => {
			const res = await send(null);
			expect(res.headers.get("WWW-Authenticate")).toMatch(/^Bearer/);
			await expectError(res, 401, "UNAUTHENTICATED");
		});

		it("answers 401 UNAUTHENTICATED to another authorization scheme", async () => {
			await expectError(await send(null, { Authorization: "Basic dXNlcjpwYXNz" }), 401, "UNAUTHENTICATED");
		});

		it("answers 401 UNAUTHENTICATED to a token that does not verify", async () => {
			await expectError(await send("eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ1c3JfeCJ9.c2lnbmF0dXJl"), 401, "UNAUTHENTICATED");
		});

		it("answers 401 UNAUTHENTICATED to the token of a device that signed out", async () => {
			const user = await h.signup();
			const { path, ...init } = await probe(user);
			expect((await h.request("/v1/auth/logout", { method: "POST", token: user.token })).status).toBe(204);
			await expectError(await h.request(path, { ...init, token: user.token }), 401, "UNAUTHENTICATED");
		});
	});
}
