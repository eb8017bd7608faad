/**
 * Regression tests for the audit's auth and sync findings
 * (shared/notes/audit.md), one or more per finding, named after it.
 */
import { listDurableObjectIds } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { drizzle } from "drizzle-orm/d1";
import { Hono } from "hono";
import { describe, expect, it } from "vitest";
import { hashPassword, importPasswordPeppers, needsRehash, toBase64Url, verifyPassword } from "../../src/shared/crypto";
import { users } from "../../src/shared/db/schema";
import { newId } from "../../src/shared/ids";
import type { AppEnv } from "../../workers/api/env";
import { onError } from "../../workers/api/errors";
import { BLOCK_LIST_BODY_LIMIT } from "../../workers/api/middleware/body-limit";
import { requestId } from "../../workers/api/middleware/request-id";
import { runHousekeeping } from "../../workers/api/scheduled";
import { dropUnits } from "../../workers/api/services/gc-queue";
import { MAX_DEVICES_PER_USER, REFRESH_GRACE_MS } from "../../workers/api/services/sessions";
import { clientAddress } from "../../workers/api/services/throttle";
import { hashRefreshToken } from "../../workers/api/services/tokens";
import { call, expectError, expectJson, put, signup, type TestUser } from "./helpers";

const PASSWORD = "correct horse battery";

let addressCounter = 0;
/** A client address of its own: the throttles count per address. */
function freshIp(): string {
	addressCounter++;
	return `203.0.113.${addressCounter}`;
}

function uniqueEmail(tag: string): string {
	return `${tag}-${Date.now()}-${Math.random().toString(36).slice(2, 8)}@example.com`;
}

function login(email: string, password: string, ip?: string): Promise<Response> {
	return call("/v1/auth/login", {
		method: "POST",
		body: JSON.stringify({ email, password }),
		headers: ip === undefined ? {} : { "CF-Connecting-IP": ip },
	});
}

function signupFrom(ip: string, email = uniqueEmail("signup")): Promise<Response> {
	return call("/v1/auth/signup", {
		method: "POST",
		body: JSON.stringify({ email, password: PASSWORD }),
		headers: { "CF-Connecting-IP": ip },
	});
}

function refresh(token: string): Promise<Response> {
	return call("/v1/auth/refresh", { method: "POST", body: JSON.stringify({ refresh_token: token }) });
}

interface TokenPair {
	access_token: string;
	refresh_token: string;
}

/** Moves a refresh token's rotation back past the grace period, as if that much time had passed. */
async function ageRotation(token: string): Promise<void> {
	const at = new Date(Date.now() - REFRESH_GRACE_MS - 1000).toISOString();
	await env.DIRECTORY.prepare("UPDATE refresh_tokens SET revoked_at = ? WHERE token_hash = ?")
		.bind(at, await hashRefreshToken(token))
		.run();
}

async function ticketOf(user: TestUser): Promise<string> {
	return (await expectJson<{ ticket: string }>(await call("/v1/sync/ticket", { method: "POST", token: user.token }), 200)).ticket;
}

function upgrade(ticket: string): Promise<Response> {
	return call(`/v1/sync/ws?ticket=${encodeURIComponent(ticket)}`, { headers: { Upgrade: "websocket" } });
}

/** An open sync socket of the user, and the promise of its close. */
async function openSocket(user: TestUser): Promise<{ ws: WebSocket; closed: Promise<{ code: number; reason: string }> }> {
	const res = await upgrade(await ticketOf(user));
	expect(res.status).toBe(101);
	const ws = res.webSocket;
	if (!ws) throw new Error("no socket in the 101 answer");
	const closed = new Promise<{ code: number; reason: string }>((resolve) =>
		ws.addEventListener("close", (e) => resolve({ code: e.code, reason: e.reason })),
	);
	ws.accept();
	return { ws, closed };
}

/** How many responses had each status. */
function statusCounts(responses: Response[]): Record<number, number> {
	const counts: Record<number, number> = {};
	for (const res of responses) counts[res.status] = (counts[res.status] ?? 0) + 1;
	return counts;
}

describe("M1, M2, L14: login throttling", () => {
	it("M1: counts parallel wrong passwords before verifying, so at most 10 pass per burst", async () => {
		const user = await signup();
		const ip = freshIp();
		const burst = await Promise.all(Array.from({ length: 30 }, (_, i) => login(user.email, `wrong password ${i}`, ip)));
		expect(statusCounts(burst)).toEqual({ 401: 10, 429: 20 });
	});

	it("M1: counts a parallel burst against one address atomically too: 50 pass, the rest are refused", async () => {
		const ip = freshIp();
		const burst = await Promise.all(Array.from({ length: 55 }, (_, i) => login(uniqueEmail(`nobody${i}`), PASSWORD, ip)));
		expect(statusCounts(burst)).toEqual({ 401: 50, 429: 5 });
	});

	it("M2: a correct password is not refused after someone else's 10 wrong guesses; only the guessing address is", async () => {
		const user = await signup();
		const attacker = freshIp();
		for (let i = 0; i < 10; i++) await expectError(await login(user.email, `wrong password ${i}`, attacker), 401, "UNAUTHENTICATED");
		await expectError(await login(user.email, `wrong password`, attacker), 429, "RATE_LIMITED");
		const session = await expectJson<{ user: { id: string } }>(await login(user.email, PASSWORD, freshIp()), 200);
		expect(session.user.id).toBe(user.id);
		// The owner's success does not reopen the guessing address.
		await expectError(await login(user.email, `wrong password`, attacker), 429, "RATE_LIMITED");
	});

	it("M2: wrong guesses for one email from many addresses only slow its owner down, never refuse them", async () => {
		const user = await signup();
		for (let i = 0; i < 11; i++) await expectError(await login(user.email, `wrong password ${i}`, freshIp()), 401, "UNAUTHENTICATED");
		await expectJson(await login(user.email, PASSWORD, freshIp()), 200);
	});

	it("L14: without CF-Connecting-IP, or from loopback, failures share no address key that could lock others out", async () => {
		const user = await signup();
		for (const ip of [undefined, "127.0.0.1"]) {
			const guesses = await Promise.all(Array.from({ length: 55 }, (_, i) => login(uniqueEmail(`local${i}`), PASSWORD, ip)));
			expect(statusCounts(guesses)).toEqual({ 401: 55 });
			await expectJson(await login(user.email, PASSWORD, ip), 200);
		}
	});

	it("L14: counts an IPv6 client by its /64 and an IPv4-mapped address as IPv4", () => {
		expect(clientAddress(undefined)).toBeNull();
		expect(clientAddress("127.0.0.1")).toBeNull();
		expect(clientAddress("198.51.100.7")).toBe("198.51.100.7");
		expect(clientAddress("::ffff:198.51.100.7")).toBe("198.51.100.7");
		expect(clientAddress("2001:DB8:0001:2:3:4:5:6")).toBe("2001:db8:1:2::/64");
		expect(clientAddress("2001:db8:1:2::9")).toBe("2001:db8:1:2::/64");
		expect(clientAddress("2001:db8::1")).toBe("2001:db8:0:0::/64");
	});
});

describe("M3: signup throttling", () => {
	it("M3: refuses the 11th signup from one address within an hour with 429 RATE_LIMITED and Retry-After, and creates nothing", async () => {
		const ip = freshIp();
		for (let i = 0; i < 10; i++) await expectJson(await signupFrom(ip), 201);
		const email = uniqueEmail("eleventh");
		const refused = await signupFrom(ip, email);
		const retryAfter = Number(refused.headers.get("Retry-After"));
		await expectError(refused, 429, "RATE_LIMITED");
		expect(retryAfter).toBeGreaterThan(0);
		expect(retryAfter).toBeLessThanOrEqual(3600);
		const count = await env.DIRECTORY.prepare("SELECT COUNT(*) AS n FROM users WHERE email = ?").bind(email).first<{ n: number }>();
		expect(count?.n).toBe(0);
		// Another address is not affected.
		await expectJson(await signupFrom(freshIp(), email), 201);
	});

	it("M3: counts signups from one IPv6 /64 together", async () => {
		for (let i = 1; i <= 10; i++) await expectJson(await signupFrom(`2001:db8:7:7::${i.toString(16)}`), 201);
		await expectError(await signupFrom("2001:db8:7:7:ffff::1"), 429, "RATE_LIMITED");
		await expectJson(await signupFrom("2001:db8:7:8::1"), 201);
	});

	it("M3: keeps answering EMAIL_TAKEN for an address that has an account, and counts it", async () => {
		const user = await signup();
		const ip = freshIp();
		for (let i = 0; i < 10; i++) await expectError(await signupFrom(ip, user.email), 409, "EMAIL_TAKEN");
		await expectError(await signupFrom(ip, user.email), 429, "RATE_LIMITED");
	});
});

describe("L3, L4: refresh rotation and sign-out", () => {
	it("L3: a retry with the just-rotated refresh token answers the same successor and keeps the device signed in", async () => {
		const user = await signup();
		const first = await expectJson<TokenPair>(await refresh(user.refresh), 200);
		const retry = await expectJson<TokenPair>(await refresh(user.refresh), 200);
		expect(retry.refresh_token).toBe(first.refresh_token);
		expect((await call("/v1/me", { token: retry.access_token })).status).toBe(200);
		expect((await call("/v1/me", { token: first.access_token })).status).toBe(200);
		// The successor rotates as usual.
		const next = await expectJson<TokenPair>(await refresh(first.refresh_token), 200);
		expect(next.refresh_token).not.toBe(first.refresh_token);
		expect((await call("/v1/me", { token: next.access_token })).status).toBe(200);
	});

	it("L3: parallel refreshes with one token all get the same successor", async () => {
		const user = await signup();
		const answers = await Promise.all(Array.from({ length: 5 }, () => refresh(user.refresh)));
		const pairs = await Promise.all(answers.map((res) => expectJson<TokenPair>(res, 200)));
		expect(new Set(pairs.map((p) => p.refresh_token)).size).toBe(1);
		expect((await call("/v1/me", { token: user.token })).status).toBe(200);
	});

	it("L3 (kept): outside the grace period, or once the successor was used, a rotated token still signs the device out", async () => {
		const late = await signup();
		const rotated = await expectJson<TokenPair>(await refresh(late.refresh), 200);
		await ageRotation(late.refresh);
		await expectError(await refresh(late.refresh), 401, "UNAUTHENTICATED");
		await expectError(await call("/v1/me", { token: rotated.access_token }), 401, "UNAUTHENTICATED");

		const used = await signup();
		const second = await expectJson<TokenPair>(await refresh(used.refresh), 200);
		const third = await expectJson<TokenPair>(await refresh(second.refresh_token), 200);
		await expectError(await refresh(used.refresh), 401, "UNAUTHENTICATED");
		await expectError(await call("/v1/me", { token: third.access_token }), 401, "UNAUTHENTICATED");
	});

	it("L4: a device signed out by refresh-token reuse has its sync sockets closed", async () => {
		const user = await signup();
		const socket = await openSocket(user);
		await expectJson(await refresh(user.refresh), 200);
		await ageRotation(user.refresh);
		await expectError(await refresh(user.refresh), 401, "UNAUTHENTICATED");
		expect((await socket.closed).code).toBe(4001);
	});
});

describe("L4, L5, L10, L13: sync tickets", () => {
	it("L4: a ticket issued before logout does not open a socket after it", async () => {
		const user = await signup();
		const ticket = await ticketOf(user);
		expect((await call("/v1/auth/logout", { method: "POST", token: user.token })).status).toBe(204);
		await expectError(await upgrade(ticket), 401, "UNAUTHENTICATED");
	});

	it("L5: a forged ticket is refused by the api worker, and the Durable Object it names is never created", async () => {
		const victim = newId("usr");
		const hub = env.USER_HUB.idFromName(victim).toString();
		const random = (n: number) => toBase64Url(crypto.getRandomValues(new Uint8Array(n)));
		const forged = [`${victim}.x`, `${victim}.${newId("dev")}.${Date.now() + 60_000}.${random(16)}.${random(32)}`];
		for (const ticket of forged) expect((await upgrade(ticket)).status).toBe(401);
		expect((await listDurableObjectIds(env.USER_HUB)).map((id) => id.toString())).not.toContain(hub);
		// A real ticket with one signed field changed fails the same way.
		const user = await signup();
		const [userId, deviceId, expiresAt, nonce, mac] = (await ticketOf(user)).split(".");
		await expectError(await upgrade([userId, deviceId, Number(expiresAt) + 60_000, nonce, mac].join(".")), 401, "UNAUTHENTICATED");
	});

	it("L13: a ticket refused by the hub (already used) answers with the request's id", async () => {
		const user = await signup();
		const ticket = await ticketOf(user);
		const first = await upgrade(ticket);
		expect(first.status).toBe(101);
		first.webSocket?.accept();
		await expectError(await upgrade(ticket), 401, "UNAUTHENTICATED");
		first.webSocket?.close(1000, "done");
	});

	it("L10: tickets kept by expiry each open one socket, whatever the order they are used in", async () => {
		const user = await signup();
		const tickets = [await ticketOf(user), await ticketOf(user), await ticketOf(user)];
		for (const ticket of tickets.reverse()) {
			const res = await upgrade(ticket);
			expect(res.status).toBe(101);
			res.webSocket?.accept();
			res.webSocket?.close(1000, "done");
			await expectError(await upgrade(ticket), 401, "UNAUTHENTICATED");
		}
	});
});

describe("L11: directory growth", () => {
	const count = async (sql: string, ...values: unknown[]) =>
		(
			await env.DIRECTORY.prepare(sql)
				.bind(...values)
				.first<{ n: number }>()
		)?.n ?? -1;

	it("L11: the cron prunes expired refresh tokens, signed-out and idle devices with their tokens, and ended throttle windows", async () => {
		const gone = await signup();
		expect((await call("/v1/auth/logout", { method: "POST", token: gone.token })).status).toBe(204);
		const rotating = await signup();
		const rotated = await expectJson<TokenPair>(await refresh(rotating.refresh), 200);
		const idle = await signup();
		const past = new Date(Date.now() - 1000).toISOString();
		await env.DIRECTORY.prepare("UPDATE refresh_tokens SET expires_at = ? WHERE token_hash IN (?, ?)")
			.bind(past, await hashRefreshToken(rotating.refresh), await hashRefreshToken(idle.refresh))
			.run();
		const now = Date.now();
		await env.DIRECTORY.prepare(
			"INSERT INTO throttle_counters (key, hits, window_started_at, last_hit_at) VALUES (?, 1, ?, ?), (?, 1, ?, ?)",
		)
			.bind(`ip:old-${now}`, now - 2 * 3600_000, now - 2 * 3600_000, `ip:new-${now}`, now, now)
			.run();

		await runHousekeeping(env, now, dropUnits);

		expect(await count("SELECT COUNT(*) AS n FROM devices WHERE id IN (?, ?)", gone.deviceId, idle.deviceId)).toBe(0);
		expect(await count("SELECT COUNT(*) AS n FROM refresh_tokens WHERE device_id IN (?, ?)", gone.deviceId, idle.deviceId)).toBe(0);
		// The rotating device keeps its live token and nothing else.
		expect(await count("SELECT COUNT(*) AS n FROM refresh_tokens WHERE device_id = ?", rotating.deviceId)).toBe(1);
		expect((await call("/v1/me", { token: rotated.access_token })).status).toBe(200);
		await expectJson(await refresh(rotated.refresh_token), 200);
		expect(await count("SELECT COUNT(*) AS n FROM throttle_counters WHERE key IN (?, ?)", `ip:old-${now}`, `ip:new-${now}`)).toBe(1);
	});

	it("L11: a login past the device cap deletes signed-out devices first, then signs out the least recently used one", async () => {
		const user = await signup();
		const socket = await openSocket(user);
		// Fill up to the cap: one signed-out device, the rest live; the first device is the least recently used.
		const insert = env.DIRECTORY.prepare(
			"INSERT INTO devices (id, user_id, name, created_at, last_seen_at, revoked_at) VALUES (?, ?, 'filler', ?, ?, ?)",
		);
		const signedOut = newId("dev");
		const fillers = Array.from({ length: MAX_DEVICES_PER_USER - 2 }, (_, i) => {
			const at = new Date(Date.UTC(2026, 0, 2, 0, i)).toISOString();
			return insert.bind(newId("dev"), user.id, at, at, null);
		});
		await env.DIRECTORY.batch([
			insert.bind(signedOut, user.id, "2026-01-01T00:00:00.000Z", "2026-01-01T00:00:00.000Z", "2026-01-01T00:00:00.000Z"),
			...fillers,
			env.DIRECTORY.prepare("UPDATE devices SET last_seen_at = '2025-01-01T00:00:00.000Z' WHERE id = ?").bind(user.deviceId),
		]);
		const devicesOf = () => count("SELECT COUNT(*) AS n FROM devices WHERE user_id = ?", user.id);
		expect(await devicesOf()).toBe(MAX_DEVICES_PER_USER);

		await expectJson(await login(user.email, PASSWORD), 200);
		expect(await devicesOf()).toBe(MAX_DEVICES_PER_USER);
		expect(await count("SELECT COUNT(*) AS n FROM devices WHERE id = ?", signedOut)).toBe(0);
		expect((await call("/v1/me", { token: user.token })).status).toBe(200);

		await expectJson(await login(user.email, PASSWORD), 200);
		expect(await devicesOf()).toBe(MAX_DEVICES_PER_USER);
		expect((await socket.closed).code).toBe(4001);
		await expectError(await call("/v1/me", { token: user.token }), 401, "UNAUTHENTICATED");
		await expectError(await refresh(user.refresh), 401, "UNAUTHENTICATED");
	});
});

describe("L15: password pepper", () => {
	const storedHash = async (userId: string) =>
		(await env.DIRECTORY.prepare("SELECT password_hash AS h FROM users WHERE id = ?").bind(userId).first<{ h: string }>())?.h ?? "";

	it("L15: new password hashes are peppered, and the directory's copy alone does not verify them", async () => {
		const user = await signup();
		const stored = await storedHash(user.id);
		expect(stored).toMatch(/^hmac-pbkdf2-sha256\$[A-Za-z0-9_-]{8}\$100000\$/);
		expect(await verifyPassword(PASSWORD, stored)).toBe(false);
		expect(await verifyPassword(PASSWORD, stored, await importPasswordPeppers(env.PASSWORD_PEPPER))).toBe(true);
	});

	it("L15: a hash from before the pepper still signs in, and is re-peppered at that login", async () => {
		const user = await signup();
		const legacy = await hashPassword(PASSWORD);
		await env.DIRECTORY.prepare("UPDATE users SET password_hash = ? WHERE id = ?").bind(legacy, user.id).run();
		await expectJson(await login(user.email, PASSWORD), 200);
		const upgraded = await storedHash(user.id);
		expect(upgraded).toMatch(/^hmac-pbkdf2-sha256\$/);
		await expectJson(await login(user.email, PASSWORD), 200);
		expect(await storedHash(user.id)).toBe(upgraded);
		await expectError(await login(user.email, "not the password"), 401, "UNAUTHENTICATED");
	});

	it("L15: a pepper can be rotated: hashes under the older one verify and ask to be re-peppered", async () => {
		const [next, current] = await importPasswordPeppers(`${"n".repeat(32)},${env.PASSWORD_PEPPER}`);
		if (!next || !current) throw new Error("two peppers expected");
		const old = await hashPassword(PASSWORD, { pepper: current, iterations: 1000 });
		expect(await verifyPassword(PASSWORD, old, [next, current])).toBe(true);
		expect(await verifyPassword(PASSWORD, old, [next])).toBe(false);
		expect(needsRehash(old, next)).toBe(true);
		expect(needsRehash(await hashPassword(PASSWORD, { pepper: next }), next)).toBe(false);
		await expect(importPasswordPeppers("short")).rejects.toThrow(/shorter than 32/);
	});
});

describe("M11: JSON body limits", () => {
	it("M11: refuses a login body over the auth limit with 413 PAYLOAD_TOO_LARGE, declared or streamed", async () => {
		const big = JSON.stringify({ email: "a@example.com", password: "a".repeat(100_000) });
		const declared = await call("/v1/auth/login", { method: "POST", body: big });
		const envelope = await expectError(declared, 413, "PAYLOAD_TOO_LARGE");
		expect(envelope.error.details).toEqual([{ limit_bytes: 16 * 1024 }]);
		// Without Content-Length the body is cut off once it passes the limit.
		const streamed = new ReadableStream<Uint8Array>({
			start(controller) {
				controller.enqueue(new TextEncoder().encode(big));
				controller.close();
			},
		});
		const res = await call("/v1/auth/login", { method: "POST", body: streamed, headers: { "Content-Type": "application/json" } });
		expect(res.headers.get("Content-Length")).toBeNull();
		await expectError(res, 413, "PAYLOAD_TOO_LARGE");
	});

	it("M11: refuses an oversized body on an authenticated JSON route, and lets a raw content upload of the same size through", async () => {
		const user = await signup();
		const name = "n".repeat(70_000);
		await expectError(
			await call("/v1/folders", { method: "POST", token: user.token, body: JSON.stringify({ parent_id: user.rootId, name }) }),
			413,
			"PAYLOAD_TOO_LARGE",
		);
		// File content is raw bytes, even when it is JSON: its own limits apply.
		const content = JSON.stringify({ name });
		const uploaded = await put(user, user.rootId, "big.json", content, { "Content-Type": "application/json" });
		expect((await expectJson<{ version: { size: number } }>(uploaded, 201)).version.size).toBe(content.length);
	});

	it("M11: lets a maximal block list through to validation, and refuses one over the block-list limit", async () => {
		const user = await signup();
		const entry = { hash: "a".repeat(64), size: 8 * 1024 * 1024 };
		const blocks = Array.from({ length: 163_840 }, () => entry);
		// An empty name fails validation: a 400 shows the body was read and parsed.
		const maximal = JSON.stringify({ parent_id: user.rootId, name: "", size: 1, blocks });
		expect(maximal.length).toBeGreaterThan(14_000_000);
		expect(maximal.length).toBeLessThan(BLOCK_LIST_BODY_LIMIT);
		await expectError(await call("/v1/uploads", { method: "POST", token: user.token, body: maximal }), 400, "INVALID_REQUEST");
		const over = JSON.stringify({ parent_id: user.rootId, name: "x", size: 1, blocks, padding: "p".repeat(3_000_000) });
		await expectError(await call("/v1/uploads", { method: "POST", token: user.token, body: over }), 413, "PAYLOAD_TOO_LARGE");
	});
});

describe("L6: secrets in logs", () => {
	it("L6: logs a failed query's SQL and cause, never its parameters", async () => {
		const user = await signup();
		const email = `secret-${crypto.randomUUID()}@example.com`;
		const passwordHash = `pbkdf2-sha256$100000$${crypto.randomUUID()}$hash`;
		// A real failed query: the id is taken, so the insert breaks the primary key.
		const failure = await drizzle(env.DIRECTORY)
			.insert(users)
			.values({ id: user.id, email, passwordHash, shard: 0, quotaBytes: 1, createdAt: new Date().toISOString() })
			.then(
				() => null,
				(err: unknown) => err,
			);
		expect(String(failure)).toContain(email);
		const app = new Hono<AppEnv>();
		app.use(requestId);
		app.get("/", () => {
			throw failure;
		});
		app.onError(onError);
		const logged: string[] = [];
		const consoleError = console.error;
		console.error = (...args: unknown[]) => logged.push(args.map(String).join(" "));
		let res: Response;
		try {
			res = await app.request("/");
		} finally {
			console.error = consoleError;
		}
		const envelope = await expectError(res, 500, "INTERNAL");
		const log = logged.join("\n");
		expect(log).not.toContain(email);
		expect(log).not.toContain(passwordHash);
		expect(logged).toHaveLength(1);
		const entry = JSON.parse(logged[0] ?? "") as { request_id: string; error: { query: string; cause: { message: string } } };
		expect(entry.request_id).toBe(envelope.error.request_id);
		expect(entry.error.query).toMatch(/^insert into "users"/);
		expect(entry.error.cause.message).toMatch(/UNIQUE constraint failed: users\.id/);
	});
});
