/**
 * The directory off the hot path (docs/decisions/0030): a device in use
 * makes no directory reads, DIRECTORY_CACHE=off reads on every request, a
 * sign-out in this isolate is final at once, the directory's shard wins over
 * the token's, and a failing directory fails only devices this isolate has
 * not seen lately (503 UNAVAILABLE, retryable). The caches age by
 * directoryClock, which these tests hold still or move, never wait on.
 */
import { env } from "cloudflare:workers";
import { decodeJwt } from "jose";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { shardCount } from "../../src/shared/db/shards";
import { clearFaults, faultsFired, operationCounts, setFaults } from "../../src/shared/drills";
import { directoryClock, FRESH_MS, STALE_IF_ERROR_MS, TTL_MS } from "../../workers/api/services/directory-cache";
import { forgetUser, loadCaller } from "../../workers/api/services/sessions";
import { signAccessToken } from "../../workers/api/services/tokens";
import { expectOk, type Harness, type TestUser } from "../support/harness";
import { apiOver, expectError } from "./helpers";
import { journalUntil, mountIn, share, usersOnDifferentShards } from "./sharing";

const api = apiOver(env);
const apiOff = apiOver({ ...env, DIRECTORY_CACHE: "off" } as unknown as Env);

/** Queries the api isolate made of the directory since the last call. */
function directoryReads(): number {
	const counts = operationCounts(true);
	return (counts["DIRECTORY d1.query"] ?? 0) + (counts["DIRECTORY d1.batch"] ?? 0);
}

async function readRoot(harness: Harness, user: Pick<TestUser, "token" | "rootId">): Promise<Response> {
	return harness.request(`/v1/nodes/${user.rootId}`, { token: user.token });
}

async function expectRoot(harness: Harness, user: Pick<TestUser, "token" | "rootId">): Promise<void> {
	const res = await readRoot(harness, user);
	expect(res.status, await res.clone().text()).toBe(200);
	await res.body?.cancel();
}

async function shardOf(userId: string): Promise<number> {
	const row = await env.DIRECTORY.prepare("SELECT shard FROM users WHERE id = ?").bind(userId).first<{ shard: number }>();
	if (row === null) throw new Error(`no user ${userId}`);
	return row.shard;
}

let start = 0;
/** Moves the caches' clock to `ms` after the test's start. */
const at = (ms: number) => (directoryClock.now = () => start + ms);

beforeEach(() => {
	start = Date.now();
	at(0);
});

afterEach(() => {
	clearFaults();
	directoryClock.now = () => Date.now();
});

describe("directory cache: reads", () => {
	it("serves a warm device's requests without reading the directory", async () => {
		const user = await api.signup();
		await expectRoot(api, user);
		directoryReads();
		for (let i = 0; i < 20; i++) await expectRoot(api, user);
		expect(directoryReads()).toBe(0);
	});

	it("reads the directory once per request with DIRECTORY_CACHE=off", async () => {
		const user = await apiOff.signup();
		await expectRoot(apiOff, user);
		directoryReads();
		for (let i = 0; i < 20; i++) await expectRoot(apiOff, user);
		expect(directoryReads()).toBe(20);
	});

	it("reads again in the background once an entry is no longer fresh, so the device never waits", async () => {
		const user = await api.signup();
		await expectRoot(api, user);
		directoryReads();
		at(FRESH_MS);
		// Answered from memory; the one read ran after the answer (waitUntil).
		await expectRoot(api, user);
		expect(directoryReads()).toBe(1);
		// Refreshed at FRESH_MS: fresh again until twice that.
		at(2 * FRESH_MS - 1);
		for (let i = 0; i < 5; i++) await expectRoot(api, user);
		expect(directoryReads()).toBe(0);
	});

	it("reads the directory once for concurrent requests of a device it has not seen", async () => {
		const user = await api.signup();
		const other = await api.login(user, "Second laptop");
		directoryReads();
		const answers = await Promise.all(Array.from({ length: 8 }, () => readRoot(api, other)));
		for (const res of answers) expect(res.status).toBe(200);
		await Promise.all(answers.map((res) => res.body?.cancel() ?? Promise.resolve()));
		expect(directoryReads()).toBe(1);
	});

	it("serves a member's requests in a shared folder without reading the directory for its owner", async () => {
		const [owner, member] = (await usersOnDifferentShards(2)) as [TestUser, TestUser];
		const folder = await api.mkdir(owner, owner.rootId, "Shared");
		await share(owner, folder.id, [{ user: member, role: "viewer" }]);
		const mount = mountIn(await journalUntil(member, (es) => es.some((e) => e.node.mount !== undefined)));
		const list = (harness: Harness) => harness.request(`/v1/nodes/${mount.id}/children`, { token: member.token });
		expect((await list(api)).status).toBe(200);
		directoryReads();
		for (let i = 0; i < 10; i++) expect((await list(api)).status).toBe(200);
		expect(directoryReads()).toBe(0);
		// Off, the owner is looked up again every time, besides the caller.
		for (let i = 0; i < 10; i++) expect((await list(apiOff)).status).toBe(200);
		expect(directoryReads()).toBe(20);
	});
});

describe("directory cache: directory reads per request", () => {
	/** Directory reads per request of `users` devices that each ask every 5 s for two minutes (by the caches' clock). */
	async function readsPerRequest(harness: Harness): Promise<number> {
		const users = [];
		for (let i = 0; i < 5; i++) users.push(await harness.signup());
		directoryReads();
		let requests = 0;
		for (let t = 0; t < 120_000; t += 5_000) {
			at(t);
			for (const user of users) {
				await expectRoot(harness, user);
				requests++;
			}
		}
		return directoryReads() / requests;
	}

	it("reads the directory about once per device per FRESH_MS, in the background, instead of once per request", async () => {
		const on = await readsPerRequest(api);
		at(0);
		const off = await readsPerRequest(apiOff);
		console.info(JSON.stringify({ directoryReadsPerRequest: { on, off } }));
		// Each device: a background read at 15, 30, …, 105 s (7 of its 24 requests).
		expect(on).toBeCloseTo(7 / 24, 5);
		expect(off).toBe(1);
	});
});

describe("directory cache: sign-out", () => {
	it("refuses a device signed out in this isolate at once, though it was just seen", async () => {
		const user = await api.signup();
		await expectRoot(api, user);
		expect((await api.request("/v1/auth/logout", { method: "POST", token: user.token })).status).toBe(204);
		await expectError(await readRoot(api, user), 401, "UNAUTHENTICATED");
	});

	it("refuses a device signed out elsewhere once its entry is TTL_MS old, and as soon as a background read sees it", async () => {
		const user = await api.signup();
		await expectRoot(api, user);
		// Another isolate signs the device out: only the directory knows.
		await env.DIRECTORY.prepare("UPDATE devices SET revoked_at = ? WHERE id = ?").bind(new Date().toISOString(), user.deviceId).run();
		at(FRESH_MS - 1);
		await expectRoot(api, user);
		at(FRESH_MS);
		// Served from memory while the background read learns of the sign-out.
		await expectRoot(api, user);
		await expectError(await readRoot(api, user), 401, "UNAUTHENTICATED");

		// A device idle for TTL_MS waits for the read, which finds it signed out.
		at(0);
		const idle = await api.signup();
		await expectRoot(api, idle);
		await env.DIRECTORY.prepare("UPDATE devices SET revoked_at = ? WHERE id = ?").bind(new Date().toISOString(), idle.deviceId).run();
		at(TTL_MS);
		await expectError(await readRoot(api, idle), 401, "UNAUTHENTICATED");
	});
});

describe("directory cache: shards", () => {
	it("puts the user's shard in the access token (claim shd)", async () => {
		const user = await api.signup();
		expect(decodeJwt(user.token).shd).toBe(await shardOf(user.id));
		const renewed = expectOk(
			await api.call<{ access_token: string }>("/v1/auth/refresh", { method: "POST", json: { refresh_token: user.refresh } }),
			200,
		);
		expect(decodeJwt(renewed.access_token).shd).toBe(await shardOf(user.id));
	});

	it("accepts a token without shd (signed before it existed)", async () => {
		const user = await api.signup();
		const old = await signAccessToken(env, { userId: user.id, deviceId: user.deviceId });
		expect(decodeJwt(old).shd).toBeUndefined();
		await expectRoot(api, { ...user, token: old });
	});

	it("uses the directory's shard over a stale one in the token", async () => {
		const user = await api.signup();
		const other = await api.login(user, "Second laptop");
		const right = await shardOf(user.id);
		const stale = await signAccessToken(env, { userId: user.id, deviceId: other.deviceId, shard: (right + 1) % shardCount(env) });
		// Not seen by this isolate yet: the directory is read, and its shard used (the root is found).
		await expectRoot(api, { ...user, token: stale });
		const seen = await loadCaller(env, { userId: user.id, deviceId: other.deviceId, shard: (right + 1) % shardCount(env) });
		expect(seen).toMatchObject({ ok: true, value: { shard: right } });
	});

	it("forgetUser makes the next request read the user's shard from the directory", async () => {
		const user = await api.signup();
		await expectRoot(api, user);
		const claims = { userId: user.id, deviceId: user.deviceId };
		const right = await shardOf(user.id);
		const moved = (right + 1) % shardCount(env);
		try {
			// As a move does (plan: another shard, then the directory entry switched).
			await env.DIRECTORY.prepare("UPDATE users SET shard = ? WHERE id = ?").bind(moved, user.id).run();
			expect(await loadCaller(env, claims)).toMatchObject({ ok: true, value: { shard: right } });
			forgetUser(user.id);
			expect(await loadCaller(env, claims)).toMatchObject({ ok: true, value: { shard: moved } });
		} finally {
			await env.DIRECTORY.prepare("UPDATE users SET shard = ? WHERE id = ?").bind(right, user.id).run();
			forgetUser(user.id);
		}
	});
});

describe("directory cache: directory failures", () => {
	const directoryDown = () => setFaults([{ target: "d1.query", binding: "DIRECTORY", effect: "error", times: 0 }]);

	it("keeps serving a warm device while the directory fails", async () => {
		const user = await api.signup();
		await expectRoot(api, user);
		directoryDown();
		await expectRoot(api, user);
		// The background read fails; the answer does not.
		at(FRESH_MS);
		await expectRoot(api, user);
		// Past the TTL the read is waited for, fails, and the entry still serves.
		at(TTL_MS + 1);
		await expectRoot(api, user);
		expect(faultsFired()[0]).toBeGreaterThanOrEqual(2);
		// Not forever: past STALE_IF_ERROR_MS the directory must answer.
		at(STALE_IF_ERROR_MS);
		const res = await readRoot(api, user);
		await expectError(res, 503, "UNAVAILABLE");
	});

	it("answers 503 UNAVAILABLE with Retry-After, not 500, for a device it has not seen while the directory fails", async () => {
		const user = await api.signup();
		const other = await api.login(user, "Second laptop");
		directoryDown();
		const res = await readRoot(api, other);
		expect(res.headers.get("Retry-After")).toBe("1");
		await expectError(res, 503, "UNAVAILABLE");
		clearFaults();
		await expectRoot(api, other);
	});
});
