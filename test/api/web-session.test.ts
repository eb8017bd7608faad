/** The web app's cookie sessions: /v1/auth/web/* (docs/api.md, "Web sessions (browser)"; docs/decisions/0026). */
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import type { WebSession } from "../../src/shared/schemas/web";
import { REFRESH_GRACE_MS } from "../../workers/api/services/sessions";
import { hashRefreshToken } from "../../workers/api/services/tokens";
import { expectError } from "../support/envelope";
import { expectOk, parse, PASSWORD, uniqueEmail, type Reply } from "../support/harness";
import { api } from "./helpers";

const HTTPS = "https://drive.test";
const LOCAL = "http://127.0.0.1:8787";
const TTL = Number(env.REFRESH_TOKEN_TTL_SECONDS);

/** What a same-origin fetch from the app's page sends. */
function fromPage(origin: string): Record<string, string> {
	return { "Sec-Fetch-Site": "same-origin", Origin: origin };
}

let ipCounter = 0;
/** A client address of its own per request group: signups and failed logins are counted per address. */
function freshIp(): string {
	ipCounter++;
	return `203.0.113.${ipCounter}`;
}

interface Sent {
	origin?: string;
	headers?: Record<string, string>;
	json?: unknown;
	cookie?: string;
}

/** POST /v1/auth/web/<route> on `origin`, as the app's page sends it unless `headers` say otherwise. */
async function web(route: string, sent: Sent = {}): Promise<{ reply: Reply<WebSession>; cookie: SetCookie | null }> {
	const origin = sent.origin ?? HTTPS;
	const headers: Record<string, string> = { ...fromPage(origin), "CF-Connecting-IP": freshIp(), ...sent.headers };
	const name = origin.startsWith("https:") ? "__Host-drive_rt" : "drive_rt";
	if (sent.cookie !== undefined) headers.Cookie = `${name}=${sent.cookie}`;
	const res = await api.request(`${origin}/v1/auth/web/${route}`, { method: "POST", headers, json: sent.json });
	return { cookie: setCookie(res), reply: await parse<WebSession>(res) };
}

interface SetCookie {
	name: string;
	value: string;
	attributes: Map<string, string>;
}

/** The one Set-Cookie of an answer, split into name, value and attributes (names lowercased). */
function setCookie(res: Response): SetCookie | null {
	const all = res.headers.getSetCookie();
	expect(all.length).toBeLessThanOrEqual(1);
	const header = all[0];
	if (header === undefined) return null;
	const [pair = "", ...rest] = header.split(";").map((s) => s.trim());
	const eq = pair.indexOf("=");
	const attributes = new Map(
		rest.map((a) => {
			const i = a.indexOf("=");
			return i < 0 ? [a.toLowerCase(), ""] : [a.slice(0, i).toLowerCase(), a.slice(i + 1)];
		}),
	);
	return { name: pair.slice(0, eq), value: pair.slice(eq + 1), attributes };
}

function expectStored(cookie: SetCookie | null, secure: boolean): string {
	if (cookie === null) throw new Error("no Set-Cookie");
	expect(cookie.name).toBe(secure ? "__Host-drive_rt" : "drive_rt");
	expect(cookie.value).toMatch(/^drt_[A-Za-z0-9_-]{43}$/);
	expect(cookie.attributes.get("max-age")).toBe(String(TTL));
	expect(cookie.attributes.get("path")).toBe("/");
	expect(cookie.attributes.has("httponly")).toBe(true);
	expect(cookie.attributes.get("samesite")).toBe("Strict");
	expect(cookie.attributes.has("secure")).toBe(secure);
	expect(cookie.attributes.has("domain")).toBe(false);
	return cookie.value;
}

function expectCleared(cookie: SetCookie | null, secure = true): void {
	if (cookie === null) throw new Error("no clearing Set-Cookie");
	expect(cookie.name).toBe(secure ? "__Host-drive_rt" : "drive_rt");
	expect(cookie.value).toBe("");
	expect(cookie.attributes.get("max-age")).toBe("0");
	expect(cookie.attributes.get("path")).toBe("/");
	expect(cookie.attributes.has("secure")).toBe(secure);
}

/** Signs up on the https origin; answers the body and the cookie's value. */
async function webSignup(json: Record<string, unknown> = {}): Promise<{ session: WebSession; token: string; email: string }> {
	const email = uniqueEmail("web");
	const { reply, cookie } = await web("signup", { json: { email, password: PASSWORD, ...json } });
	return { session: expectOk(reply, 201), token: expectStored(cookie, true), email };
}

const me = (accessToken: string) => api.me({ token: accessToken });

/** Moves a refresh token's rotation back past the grace period, as if that much time had passed. */
async function ageRotation(token: string): Promise<void> {
	const at = new Date(Date.now() - REFRESH_GRACE_MS - 1000).toISOString();
	await env.DIRECTORY.prepare("UPDATE refresh_tokens SET revoked_at = ? WHERE token_hash = ?")
		.bind(at, await hashRefreshToken(token))
		.run();
}

/** Every row a session route can write: accounts, devices, refresh tokens, throttle counters. */
async function directorySnapshot(): Promise<unknown> {
	const rows = async (sql: string) => (await env.DIRECTORY.prepare(sql).all()).results;
	return {
		users: await rows("SELECT id, email, password_hash FROM users ORDER BY id"),
		devices: await rows("SELECT id, name, last_seen_at, revoked_at FROM devices ORDER BY id"),
		tokens: await rows("SELECT token_hash, expires_at, revoked_at FROM refresh_tokens ORDER BY token_hash"),
		throttle: await rows("SELECT key, hits FROM throttle_counters ORDER BY key"),
	};
}

describe("web sessions: signup and login", () => {
	it("signs up over https with a __Host- Secure HttpOnly SameSite=Strict cookie and no refresh_token in the body", async () => {
		const email = uniqueEmail("web");
		const { reply, cookie } = await web("signup", { json: { email, password: PASSWORD } });
		const body = expectOk(reply, 201);
		expect(Object.keys(body).sort()).toEqual(["access_token", "device_id", "expires_in", "user"]);
		expect(reply.text).not.toContain("refresh_token");
		const token = expectStored(cookie, true);
		expect(reply.text).not.toContain(token);
		expect(body.user.email).toBe(email);
		expect(body.expires_in).toBe(900);
		expect(reply.headers.get("Cache-Control")).toBe("no-store");
		const who = expectOk(await me(body.access_token), 200);
		expect(who.user.id).toBe(body.user.id);
		expect(who.device.id).toBe(body.device_id);
		// The account has its root folder, as after POST /v1/auth/signup.
		expect((await api.request("/v1/nodes/root", { token: body.access_token })).status).toBe(200);
	});

	it("logs in over http://127.0.0.1 with drive_rt and no Secure, and registers a new device", async () => {
		const { session, email } = await webSignup();
		const { reply, cookie } = await web("login", { origin: LOCAL, json: { email, password: PASSWORD } });
		const body = expectOk(reply, 200);
		expect(Object.keys(body).sort()).toEqual(["access_token", "device_id", "expires_in", "user"]);
		expectStored(cookie, false);
		expect(body.user).toEqual(session.user);
		expect(body.device_id).not.toBe(session.device_id);
		expect(reply.headers.get("Cache-Control")).toBe("no-store");
	});

	it.each(["http://localhost:8787", "http://[::1]:8787"])("treats %s as loopback: drive_rt without Secure", async (origin) => {
		const { email } = await webSignup();
		expectStored((await web("login", { origin, json: { email, password: PASSWORD } })).cookie, false);
	});

	it("names the device after the browser unless a device_name is given", async () => {
		const chromium = await web("signup", {
			json: { email: uniqueEmail("web"), password: PASSWORD },
			headers: {
				"User-Agent": "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/156.0.0.0 Safari/537.36",
				"Sec-CH-UA": '"Chromium";v="156", "Not)A;Brand";v="24"',
				"Sec-CH-UA-Platform": '"Linux"',
			},
		});
		expect(expectOk(await me(expectOk(chromium.reply, 201).access_token), 200).device.name).toBe("Chromium on Linux (web)");
		const firefox = await web("signup", {
			json: { email: uniqueEmail("web"), password: PASSWORD },
			headers: { "User-Agent": "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:140.0) Gecko/20100101 Firefox/140.0" },
		});
		expect(expectOk(await me(expectOk(firefox.reply, 201).access_token), 200).device.name).toBe("Firefox on Windows (web)");
		const hostile = await web("signup", {
			json: { email: uniqueEmail("web"), password: PASSWORD },
			headers: { "Sec-CH-UA": `"${"x".repeat(300)}\u0001";v="1"`, "Sec-CH-UA-Platform": '"\u0007"' },
		});
		const hostileName = expectOk(await me(expectOk(hostile.reply, 201).access_token), 200).device.name;
		expect(hostileName.length).toBeLessThanOrEqual(100);
		expect(hostileName).not.toMatch(/[\u0000-\u001f]/u);
		// A crafted hint far longer than any browser's is cut before it is parsed.
		const long = await web("signup", {
			json: { email: uniqueEmail("web"), password: PASSWORD },
			headers: { "Sec-CH-UA": `"${"not".repeat(30_000)}";v="1"`, "User-Agent": "Firefox/".repeat(10_000) },
		});
		expect(expectOk(await me(expectOk(long.reply, 201).access_token), 200).device.name.length).toBeLessThanOrEqual(100);
		const named = await webSignup({ device_name: "My browser" });
		expect(expectOk(await me(named.session.access_token), 200).device.name).toBe("My browser");
	});

	it("answers the contract's errors: a bad body, a taken email, a wrong password", async () => {
		const { email } = await webSignup();
		const bad = await expectError(
			(await web("signup", { json: { email: "not an email", password: "short" } })).reply,
			400,
			"INVALID_REQUEST",
		);
		expect(bad.error.details?.length).toBeGreaterThan(0);
		const taken = await web("signup", { json: { email, password: PASSWORD } });
		await expectError(taken.reply, 409, "EMAIL_TAKEN");
		expect(taken.cookie).toBeNull();
		const wrong = await web("login", { json: { email, password: "not the password" } });
		await expectError(wrong.reply, 401, "UNAUTHENTICATED");
		expect(wrong.cookie).toBeNull();
		expect(wrong.reply.headers.get("Cache-Control")).toBe("no-store");
	});

	it("shares the login throttle with POST /v1/auth/login", async () => {
		const { email } = await webSignup();
		const ip = freshIp();
		for (let i = 0; i < 10; i++) {
			const res = await api.request("/v1/auth/login", {
				method: "POST",
				json: { email, password: `wrong ${i}` },
				headers: { "CF-Connecting-IP": ip },
			});
			await expectError(res, 401, "UNAUTHENTICATED");
		}
		const limited = await web("login", { json: { email, password: PASSWORD }, headers: { "CF-Connecting-IP": ip } });
		await expectError(limited.reply, 429, "RATE_LIMITED");
		expect(Number(limited.reply.headers.get("Retry-After"))).toBeGreaterThan(0);
		expect(limited.cookie).toBeNull();
	});
});

describe("web sessions: refresh", () => {
	it("rotates the cookie and answers the user, the device and a working access token", async () => {
		const { session, token } = await webSignup();
		const { reply, cookie } = await web("refresh", { cookie: token });
		const body = expectOk(reply, 200);
		expect(Object.keys(body).sort()).toEqual(["access_token", "device_id", "expires_in", "user"]);
		expect(body.user).toEqual(session.user);
		expect(body.device_id).toBe(session.device_id);
		expect(reply.headers.get("Cache-Control")).toBe("no-store");
		const next = expectStored(cookie, true);
		expect(next).not.toBe(token);
		expect(reply.text).not.toContain(next);
		expect((await me(body.access_token)).status).toBe(200);
		// The rotated cookie works in turn.
		expectStored((await web("refresh", { cookie: next })).cookie, true);
	});

	it("answers two concurrent refreshes with one cookie both with 200 and the same successor", async () => {
		const { token } = await webSignup();
		const [a, b] = await Promise.all([web("refresh", { cookie: token }), web("refresh", { cookie: token })]);
		expectOk(a.reply, 200);
		expectOk(b.reply, 200);
		const successor = expectStored(a.cookie, true);
		expect(expectStored(b.cookie, true)).toBe(successor);
		expect(successor).not.toBe(token);
		// A third tab, still within the grace period, gets it too.
		expect(expectStored((await web("refresh", { cookie: token })).cookie, true)).toBe(successor);
		expectOk((await web("refresh", { cookie: successor })).reply, 200);
	});

	it("signs the device out when a rotated cookie comes back after the grace period", async () => {
		const { token } = await webSignup();
		const rotated = await web("refresh", { cookie: token });
		const access = expectOk(rotated.reply, 200).access_token;
		const successor = expectStored(rotated.cookie, true);
		await ageRotation(token);
		const replay = await web("refresh", { cookie: token });
		await expectError(replay.reply, 401, "UNAUTHENTICATED");
		expectCleared(replay.cookie);
		// Theft detection: the thief's and the owner's latest tokens are both dead.
		await expectError((await web("refresh", { cookie: successor })).reply, 401, "UNAUTHENTICATED");
		await expectError(await me(access), 401, "UNAUTHENTICATED");
	});

	it("answers 401 with a clearing Set-Cookie to a missing, unknown, oversized, malformed or foreign-named cookie", async () => {
		for (const sent of [
			{},
			{ cookie: "drt_never-issued" },
			{ cookie: `drt_${"a".repeat(300)}` },
			{ cookie: "" },
			{ cookie: "%E0%A4%A" },
			{ cookie: '"drt_quoted"' },
		]) {
			const { reply, cookie } = await web("refresh", sent);
			await expectError(reply, 401, "UNAUTHENTICATED");
			expectCleared(cookie);
			expect(reply.headers.get("Cache-Control")).toBe("no-store");
		}
		// The http name is not read on https: a cookie an http page could set never counts there.
		const { token } = await webSignup();
		const res = await api.request(`${HTTPS}/v1/auth/web/refresh`, {
			method: "POST",
			headers: { ...fromPage(HTTPS), Cookie: `drive_rt=${token}` },
		});
		await expectError(res, 401, "UNAUTHENTICATED");
		expectCleared(setCookie(res));
		expectOk((await web("refresh", { cookie: token })).reply, 200);
	});

	it("refuses a request carrying two session cookies (one planted by another site on this host)", async () => {
		const { token } = await webSignup();
		const planted = await webSignup();
		const res = await api.request(`${HTTPS}/v1/auth/web/refresh`, {
			method: "POST",
			headers: { ...fromPage(HTTPS), Cookie: `__Host-drive_rt=${planted.token}; __Host-drive_rt=${token}` },
		});
		await expectError(res, 401, "UNAUTHENTICATED");
		expectOk((await web("refresh", { cookie: token })).reply, 200);
	});

	it("sends no CORS headers on the cookie routes, while the bearer routes keep theirs", async () => {
		const { reply } = await web("refresh", { headers: { Origin: HTTPS } });
		expect(reply.headers.get("Access-Control-Allow-Origin")).toBeNull();
		const preflight = await api.request(`${HTTPS}/v1/auth/web/login`, {
			method: "OPTIONS",
			headers: { Origin: "https://evil.test", "Access-Control-Request-Method": "POST" },
		});
		expect(preflight.headers.get("Access-Control-Allow-Origin")).toBeNull();
		const bearer = await api.request(`${HTTPS}/v1/nodes/root`, { headers: { Origin: "https://elsewhere.test" } });
		expect(bearer.headers.get("Access-Control-Allow-Origin")).toBe("*");
		expect(bearer.headers.get("X-Content-Type-Options")).toBe("nosniff");
	});

	it("answers 401 and clears the http cookie on a loopback origin too", async () => {
		const { reply, cookie } = await web("refresh", { origin: LOCAL, cookie: "drt_never-issued" });
		await expectError(reply, 401, "UNAUTHENTICATED");
		expectCleared(cookie, false);
	});
});

describe("web sessions: logout", () => {
	it("signs the cookie's device out, clears the cookie, and the access token stops working", async () => {
		const { session, token, email } = await webSignup();
		const other = expectOk((await web("login", { json: { email, password: PASSWORD } })).reply, 200);
		const res = await api.request(`${HTTPS}/v1/auth/web/logout`, {
			method: "POST",
			headers: { ...fromPage(HTTPS), Cookie: `__Host-drive_rt=${token}` },
		});
		expect(res.status).toBe(204);
		expect(await res.text()).toBe("");
		expect(res.headers.get("Cache-Control")).toBe("no-store");
		expectCleared(setCookie(res));
		await expectError(await me(session.access_token), 401, "UNAUTHENTICATED");
		await expectError((await web("refresh", { cookie: token })).reply, 401, "UNAUTHENTICATED");
		// Only that device.
		expect((await me(other.access_token)).status).toBe(200);
	});

	it("signs out a device whose cookie was already rotated", async () => {
		const { session, token } = await webSignup();
		expectOk((await web("refresh", { cookie: token })).reply, 200);
		expect((await web("logout", { cookie: token })).reply.status).toBe(204);
		await expectError(await me(session.access_token), 401, "UNAUTHENTICATED");
	});

	it("answers 204 and clears the cookie without one, or with one never issued, changing nothing", async () => {
		const before = await directorySnapshot();
		for (const sent of [{}, { cookie: "drt_never-issued" }, { origin: LOCAL }]) {
			const { reply, cookie } = await web("logout", sent);
			expect(reply.status).toBe(204);
			expectCleared(cookie, sent.origin === undefined);
		}
		expect(await directorySnapshot()).toEqual(before);
	});
});

describe("web sessions: refused origins", () => {
	const refusals: [string, Record<string, string>][] = [
		["Sec-Fetch-Site: cross-site", { "Sec-Fetch-Site": "cross-site", Origin: "https://evil.test" }],
		["Sec-Fetch-Site: same-site", { "Sec-Fetch-Site": "same-site", Origin: "https://other.drive.test" }],
		["Sec-Fetch-Site: none", { "Sec-Fetch-Site": "none" }],
		["a foreign Origin without Fetch Metadata", { Origin: "https://evil.test" }],
		["an opaque Origin", { Origin: "null" }],
		["another scheme's Origin", { Origin: "http://drive.test" }],
		["same-origin Fetch Metadata but a foreign Origin", { "Sec-Fetch-Site": "same-origin", Origin: "https://evil.test" }],
	];

	it.each(refusals)("refuses %s with 403 cross_site on every route, and changes nothing", async (_name, headers) => {
		const { email, token, session } = await webSignup();
		const before = await directorySnapshot();
		const requests: [string, Sent][] = [
			["signup", { json: { email: uniqueEmail("web"), password: PASSWORD } }],
			["login", { json: { email, password: PASSWORD } }],
			["login", { json: { email, password: "a wrong password" } }],
			["refresh", { cookie: token }],
			["logout", { cookie: token }],
		];
		for (const [route, sent] of requests) {
			// Only the headers under test, none of the page's own.
			const res = await api.request(`${HTTPS}/v1/auth/web/${route}`, {
				method: "POST",
				headers: {
					...headers,
					"CF-Connecting-IP": freshIp(),
					...(sent.cookie === undefined ? {} : { Cookie: `__Host-drive_rt=${sent.cookie}` }),
				},
				json: sent.json,
			});
			expect(setCookie(res), route).toBeNull();
			expect(res.headers.get("Cache-Control"), route).toBe("no-store");
			const envelope = await expectError(res, 403, "FORBIDDEN");
			expect(envelope.error.details, route).toEqual([{ reason: "cross_site" }]);
		}
		expect(await directorySnapshot()).toEqual(before);
		// The session the refused requests named is intact.
		expect((await me(session.access_token)).status).toBe(200);
		expectOk((await web("refresh", { cookie: token })).reply, 200);
	});

	it("refuses a foreign Origin before reading the body: a malformed body still answers 403", async () => {
		const res = await api.request(`${HTTPS}/v1/auth/web/signup`, {
			method: "POST",
			headers: { Origin: "https://evil.test", "Content-Type": "application/json" },
			body: "{",
		});
		await expectError(res, 403, "FORBIDDEN");
	});

	it("allows a request without Sec-Fetch-Site and Origin (no browser, no ambient cookie)", async () => {
		const res = await api.request(`${HTTPS}/v1/auth/web/signup`, {
			method: "POST",
			json: { email: uniqueEmail("web"), password: PASSWORD },
		});
		expect(res.status).toBe(201);
		expectStored(setCookie(res), true);
	});

	it("refuses plain http on a host that is not loopback with 400 insecure_origin, and changes nothing", async () => {
		const { email, token } = await webSignup();
		const before = await directorySnapshot();
		for (const [route, sent] of [
			["signup", { json: { email: uniqueEmail("web"), password: PASSWORD } }],
			["login", { json: { email, password: PASSWORD } }],
			["refresh", { cookie: token }],
			["logout", { cookie: token }],
		] as [string, Sent][]) {
			const { reply, cookie } = await web(route, { ...sent, origin: "http://drive.test" });
			const envelope = await expectError(reply, 400, "INVALID_REQUEST");
			expect(envelope.error.details, route).toEqual([{ reason: "insecure_origin" }]);
			expect(cookie, route).toBeNull();
		}
		expect(await directorySnapshot()).toEqual(before);
	});
});

describe("web sessions: the OpenAPI document", () => {
	it("documents the four routes with their answers", async () => {
		const doc = expectOk(
			await api.call<{
				paths: Record<string, Record<string, { responses: Record<string, unknown>; description?: string; security?: unknown }>>;
			}>("/v1/openapi.json"),
			200,
		);
		for (const [route, status] of [
			["signup", "201"],
			["login", "200"],
			["refresh", "200"],
			["logout", "204"],
		]) {
			const op = doc.paths[`/v1/auth/web/${route}`]?.post;
			expect(op?.responses[status ?? ""], route).toBeDefined();
			expect(op?.responses["403"], route).toBeDefined();
			expect(op?.description, route).toMatch(/^Extension of the v1 contract/);
			// The cookie is the credential: no bearer security, which would promise a 401 without a token.
			expect(op?.security, route).toBeUndefined();
		}
	});
});
