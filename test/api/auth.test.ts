/** Auth routes: signup, login, refresh, logout, /me, and access-token checks (docs/api.md, "Auth"). */
import { env } from "cloudflare:workers";
import { SignJWT, base64url } from "jose";
import { describe, expect, it } from "vitest";
import { directoryClock, FRESH_MS, TTL_MS } from "../../workers/api/services/directory-cache";
import { loadCaller, REFRESH_GRACE_MS } from "../../workers/api/services/sessions";
import { hashRefreshToken } from "../../workers/api/services/tokens";
import { expectError, runAuthSuite } from "../support/envelope";
import { expectOk, PASSWORD, uniqueEmail, type Reply, type Session, type TestUser } from "../support/harness";
import { api } from "./helpers";

let ipCounter = 0;
/**
 * A client address of its own for each test: failed logins are also counted
 * per address, and every in-process request would otherwise share "local".
 */
function freshIp(): string {
	ipCounter++;
	return `198.51.100.${ipCounter}`;
}

function login(email: string, password: string, ip: string, deviceName?: string): Promise<Reply<Session>> {
	return api.call<Session>("/v1/auth/login", {
		method: "POST",
		json: deviceName === undefined ? { email, password } : { email, password, device_name: deviceName },
		headers: { "CF-Connecting-IP": ip },
	});
}

function refresh(token: string): Promise<Reply<Session>> {
	return api.call<Session>("/v1/auth/refresh", { method: "POST", json: { refresh_token: token } });
}

function signupRaw(body: Record<string, unknown>): Promise<Reply<Session>> {
	return api.call<Session>("/v1/auth/signup", { method: "POST", json: body });
}

const getMe = (token: string) => api.me({ token });
const JSON_TYPE = { "Content-Type": "application/json" };

/** Signs an access token with the test secret, for forging claims. */
function forge(user: TestUser, edit: (jwt: SignJWT) => SignJWT = (j) => j, alg = "HS256"): Promise<string> {
	const base = new SignJWT({ did: user.deviceId })
		.setProtectedHeader({ alg, typ: "JWT" })
		.setSubject(user.id)
		.setIssuer(env.JWT_ISSUER)
		.setAudience(env.JWT_AUDIENCE)
		.setIssuedAt()
		.setExpirationTime("10m");
	return edit(base).sign(new TextEncoder().encode(env.JWT_SECRET));
}

/** Moves a refresh token's rotation back past the grace period, as if that much time had passed. */
async function ageRotation(token: string): Promise<void> {
	const at = new Date(Date.now() - REFRESH_GRACE_MS - 1000).toISOString();
	await env.DIRECTORY.prepare("UPDATE refresh_tokens SET revoked_at = ? WHERE token_hash = ?")
		.bind(at, await hashRefreshToken(token))
		.run();
}

describe("auth: happy path", () => {
	it("signs up with 201, the session shape and a working access token", async () => {
		const email = uniqueEmail("signup");
		const res = await signupRaw({ email, password: PASSWORD, device_name: "Phone" });
		const s = expectOk(res, 201);
		expect(s).toMatchObject({ user: { email }, expires_in: 900 });
		expect(s.user.id).toMatch(/^usr_/);
		expect(s.device_id).toMatch(/^dev_/);
		expect(typeof s.access_token).toBe("string");
		expect(s.refresh_token).toMatch(/^drt_/);
		const me = expectOk(await getMe(s.access_token), 200);
		expect(me.user).toEqual({ id: s.user.id, email });
		expect(me.device).toEqual({ id: s.device_id, name: "Phone" });
	});

	it("normalizes the email, so a different case is the same account", async () => {
		const email = uniqueEmail("Case");
		expectOk(await signupRaw({ email: email.toUpperCase(), password: PASSWORD }), 201);
		const s = expectOk(await login(email, PASSWORD, freshIp()), 200);
		expect(s.user.email).toBe(email.toLowerCase());
	});

	it("registers a new device on every login", async () => {
		const user = await api.signup();
		const ip = freshIp();
		const first = expectOk(await login(user.email, PASSWORD, ip, "Tablet"), 200);
		const second = expectOk(await login(user.email, PASSWORD, ip), 200);
		expect(first.user).toEqual({ id: user.id, email: user.email });
		expect(new Set([user.deviceId, first.device_id, second.device_id]).size).toBe(3);
		expect(first.refresh_token).not.toBe(second.refresh_token);
		const me = expectOk(await getMe(second.access_token), 200);
		expect(me.device).toEqual({ id: second.device_id, name: "Unnamed device" });
		// The earlier device keeps working.
		expect((await getMe(user.token)).status).toBe(200);
	});

	it("rotates the refresh token: new tokens work and the old refresh token stops working after the grace period", async () => {
		const user = await api.signup();
		const rotated = expectOk(await refresh(user.refresh), 200);
		expect(rotated.refresh_token).not.toBe(user.refresh);
		expect(rotated.expires_in).toBe(900);
		expect((await getMe(rotated.access_token)).status).toBe(200);
		await ageRotation(user.refresh);
		await expectError(await refresh(user.refresh), 401, "UNAUTHENTICATED");
	});

	it("signs the device out when an already-rotated refresh token is presented again after the grace period", async () => {
		const user = await api.signup();
		const rotated = expectOk(await refresh(user.refresh), 200);
		// Replay of the old token after the grace period: treated as theft.
		await ageRotation(user.refresh);
		await expectError(await refresh(user.refresh), 401, "UNAUTHENTICATED");
		await expectError(await refresh(rotated.refresh_token), 401, "UNAUTHENTICATED");
		await expectError(await getMe(rotated.access_token), 401, "UNAUTHENTICATED");
	});

	it("logs out with 204, after which the access token and the refresh token are refused", async () => {
		const user = await api.signup();
		const other = expectOk(await login(user.email, PASSWORD, freshIp()), 200);
		const res = await api.request("/v1/auth/logout", { method: "POST", token: user.token });
		expect(res.status).toBe(204);
		expect(await res.text()).toBe("");
		await expectError(await getMe(user.token), 401, "UNAUTHENTICATED");
		await expectError(await api.request("/v1/nodes/root", { token: user.token }), 401, "UNAUTHENTICATED");
		await expectError(await refresh(user.refresh), 401, "UNAUTHENTICATED");
		// Only that device is signed out.
		expect((await getMe(other.access_token)).status).toBe(200);
	});

	it("notices within 30 s a device signed out by another isolate", async () => {
		// Each isolate remembers a signed-in device for up to TTL_MS (docs/decisions/0030);
		// a sign-out elsewhere writes the directory without clearing this isolate's memory.
		const start = Date.now();
		try {
			directoryClock.now = () => start;
			const user = await api.signup();
			const me = expectOk(await getMe(user.token), 200);
			const claims = { userId: user.id, deviceId: me.device.id };
			expect(await loadCaller(env, claims)).toMatchObject({ ok: true, value: { deviceId: me.device.id } });
			await env.DIRECTORY.prepare("UPDATE devices SET revoked_at = ? WHERE id = ?").bind(new Date(start).toISOString(), me.device.id).run();
			directoryClock.now = () => start + FRESH_MS - 1;
			expect(await loadCaller(env, claims)).toMatchObject({ ok: true, value: { deviceId: me.device.id } });
			directoryClock.now = () => start + TTL_MS;
			expect(await loadCaller(env, claims)).toEqual({ ok: true, value: null });
		} finally {
			directoryClock.now = () => Date.now();
		}
	});

	it("reports usage in /me: bytes_used grows by the size of every version kept", async () => {
		const user = await api.signup();
		const before = expectOk(await getMe(user.token), 200);
		expect(before.usage).toEqual({
			bytes_used: 0,
			quota_bytes: Number(env.DEFAULT_QUOTA_BYTES),
			reserved_bytes: 0,
			nodes: 1,
			files_bytes: 0,
			versions_bytes: 0,
			trash_bytes: 0,
		});
		await api.upload(user, user.rootId, "a.bin", new Uint8Array(1234).fill(7));
		await api.upload(user, user.rootId, "b.txt", "hello");
		const after = expectOk(await getMe(user.token), 200);
		expect(after.usage).toMatchObject({ bytes_used: 1239, nodes: 3 });
		// A new version adds to the total: the old one is kept, and downloadable.
		await api.upload(user, user.rootId, "b.txt", "hi", { status: 200 });
		const versioned = expectOk(await getMe(user.token), 200);
		expect(versioned.usage).toMatchObject({ bytes_used: 1241, nodes: 3 });
	});

	it("accepts a correctly signed token it did not issue itself (control for the forgery tests)", async () => {
		const user = await api.signup();
		const token = await forge(user);
		expect((await getMe(token)).status).toBe(200);
	});
});

describe("auth: errors", () => {
	it("refuses a second signup with the same email with 409 EMAIL_TAKEN", async () => {
		const user = await api.signup();
		const res = await signupRaw({ email: user.email, password: "another password 1" });
		await expectError(res, 409, "EMAIL_TAKEN");
		const count = await env.DIRECTORY.prepare("SELECT COUNT(*) AS n FROM users WHERE email = ?").bind(user.email).first<{ n: number }>();
		expect(count?.n).toBe(1);
	});

	it("rejects malformed JSON with 400 INVALID_REQUEST", async () => {
		await expectError(
			await api.request("/v1/auth/signup", { method: "POST", body: "{not json", headers: JSON_TYPE }),
			400,
			"INVALID_REQUEST",
		);
		await expectError(await api.request("/v1/auth/login", { method: "POST", body: "[", headers: JSON_TYPE }), 400, "INVALID_REQUEST");
	});

	it("rejects missing fields with 400 INVALID_REQUEST and field details", async () => {
		const env1 = await expectError(await signupRaw({}), 400, "INVALID_REQUEST");
		const fields = (env1.error.details ?? []).map((d) => (d as { field: string }).field);
		expect(fields).toEqual(expect.arrayContaining(["email", "password"]));
		await expectError(await api.request("/v1/auth/refresh", { method: "POST", json: {} }), 400, "INVALID_REQUEST");
		await expectError(await api.request("/v1/auth/login", { method: "POST", json: { email: uniqueEmail("x") } }), 400, "INVALID_REQUEST");
	});

	it("rejects a bad email and a short password with 400 and creates no account", async () => {
		const bad = uniqueEmail("bad").replace("@", "");
		await expectError(await signupRaw({ email: bad, password: PASSWORD }), 400, "INVALID_REQUEST");
		const email = uniqueEmail("short");
		const res = await signupRaw({ email, password: "123456789" });
		const envelope = await expectError(res, 400, "INVALID_REQUEST");
		expect(envelope.error.details).toEqual(expect.arrayContaining([expect.objectContaining({ field: "password" })]));
		const count = await env.DIRECTORY.prepare("SELECT COUNT(*) AS n FROM users WHERE email IN (?, ?)")
			.bind(bad.toLowerCase(), email)
			.first<{ n: number }>();
		expect(count?.n).toBe(0);
	});

	it("answers a wrong password and an unknown email alike, with 401 UNAUTHENTICATED", async () => {
		const user = await api.signup();
		const ip = freshIp();
		const wrong = await expectError(await login(user.email, "not the password", ip), 401, "UNAUTHENTICATED");
		const unknown = await expectError(await login(uniqueEmail("nobody"), PASSWORD, ip), 401, "UNAUTHENTICATED");
		expect(wrong.error.message).toBe(unknown.error.message);
	});

	it("refuses a refresh token that was never issued", async () => {
		await expectError(await refresh("drt_not-a-real-token"), 401, "UNAUTHENTICATED");
	});

	it("eventually answers repeated failed logins for one email from one address with 429 RATE_LIMITED and Retry-After", async () => {
		const user = await api.signup();
		const ip = freshIp();
		let limited: Reply<unknown> | null = null;
		let failures = 0;
		for (let i = 0; i < 15 && limited === null; i++) {
			const res = await login(user.email, `wrong password ${i}`, ip);
			if (res.status === 429) limited = res;
			else {
				await expectError(res, 401, "UNAUTHENTICATED");
				failures++;
			}
		}
		expect(failures).toBe(10);
		if (!limited) throw new Error("never rate limited");
		const retryAfter = Number(limited.headers.get("Retry-After"));
		await expectError(limited, 429, "RATE_LIMITED");
		expect(retryAfter).toBeGreaterThan(0);
		expect(retryAfter).toBeLessThanOrEqual(15 * 60);
		// The address that guessed is refused even with the right password; the owner elsewhere is not.
		await expectError(await login(user.email, PASSWORD, ip), 429, "RATE_LIMITED");
		expect((await login(user.email, PASSWORD, freshIp())).status).toBe(200);
		// The account itself keeps working for devices already signed in.
		expect((await getMe(user.token)).status).toBe(200);
	});

	it("clears an email's failures after a successful login", async () => {
		const user = await api.signup();
		const ip = freshIp();
		for (let i = 0; i < 9; i++) await expectError(await login(user.email, "wrong password", ip), 401, "UNAUTHENTICATED");
		expectOk(await login(user.email, PASSWORD, ip), 200);
		for (let i = 0; i < 9; i++) await expectError(await login(user.email, "wrong password", ip), 401, "UNAUTHENTICATED");
		expectOk(await login(user.email, PASSWORD, ip), 200);
	});
});

runAuthSuite(api, "GET /v1/me", () => ({ path: "/v1/me" }));

describe("auth: access tokens", () => {
	it("answers a request without Authorization with the 401 envelope and WWW-Authenticate", async () => {
		const res = await api.request("/v1/me");
		expect(res.headers.get("WWW-Authenticate")).toMatch(/^Bearer/);
		await expectError(res, 401, "UNAUTHENTICATED");
		await expectError(await api.request("/v1/nodes/root", { headers: { Authorization: "Basic dXNlcjpwYXNz" } }), 401, "UNAUTHENTICATED");
	});

	it("refuses a token signed with another algorithm", async () => {
		const user = await api.signup();
		await expectError(await getMe(await forge(user, (j) => j, "HS512")), 401, "UNAUTHENTICATED");
	});

	it("refuses an unsigned token (alg none)", async () => {
		const user = await api.signup();
		const header = base64url.encode(JSON.stringify({ alg: "none", typ: "JWT" }));
		const now = Math.floor(Date.now() / 1000);
		const payload = base64url.encode(
			JSON.stringify({ sub: user.id, did: user.deviceId, iss: env.JWT_ISSUER, aud: env.JWT_AUDIENCE, iat: now, exp: now + 600 }),
		);
		await expectError(await api.request("/v1/me", { token: `${header}.${payload}.` }), 401, "UNAUTHENTICATED");
	});

	it("refuses a token for another audience or issuer", async () => {
		const user = await api.signup();
		await expectError(await getMe(await forge(user, (j) => j.setAudience("someone-else"))), 401, "UNAUTHENTICATED");
		await expectError(await getMe(await forge(user, (j) => j.setIssuer("someone-else"))), 401, "UNAUTHENTICATED");
	});

	it("refuses an expired token", async () => {
		const user = await api.signup();
		const past = Math.floor(Date.now() / 1000) - 60;
		const token = await forge(user, (j) => j.setIssuedAt(past - 900).setExpirationTime(past));
		await expectError(await getMe(token), 401, "UNAUTHENTICATED");
	});

	it("refuses a tampered token whose payload names another user", async () => {
		const victim = await api.signup();
		const attacker = await api.signup();
		const [header, payload, signature] = attacker.token.split(".");
		const claims = JSON.parse(new TextDecoder().decode(base64url.decode(payload ?? ""))) as Record<string, unknown>;
		const edited = base64url.encode(JSON.stringify({ ...claims, sub: victim.id, did: victim.deviceId }));
		await expectError(await api.request("/v1/nodes/root", { token: `${header}.${edited}.${signature}` }), 401, "UNAUTHENTICATED");
		// A flipped signature character is refused too.
		const sig = signature ?? "";
		const flipped = `${header}.${payload}.${sig.slice(0, -2)}${sig.at(-2) === "A" ? "B" : "A"}${sig.at(-1)}`;
		await expectError(await getMe(flipped), 401, "UNAUTHENTICATED");
	});

	it("refuses a validly signed token whose device belongs to another user", async () => {
		const a = await api.signup();
		const b = await api.signup();
		const token = await forge(a, (j) => j.setSubject(b.id));
		await expectError(await getMe(token), 401, "UNAUTHENTICATED");
	});

	it("returns the caller's own identity from /me", async () => {
		const user = await api.signup("Work desktop");
		const me = (await getMe(user.token)).body;
		expect(me).toMatchObject({ user: { id: user.id, email: user.email }, device: { id: user.deviceId, name: "Work desktop" } });
	});
});
