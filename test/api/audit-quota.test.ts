/**
 * Regression tests for the audit's findings on what a user may store
 * (../shared/notes/audit.md: H1, H3, M4, M5, M8, M12), each named after its
 * finding. Every one of them fails on the code the audit read.
 */
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { shardAt } from "../../src/shared/db/shards";
import { findUpload } from "../../src/shared/db/uploads";
import { keyRing } from "../../workers/api/services/block-store";
import { commitSession } from "../../workers/api/services/uploads";
import { VERIFY_BEFORE_COMMIT_BYTES, verifyPendingHashes } from "../../workers/api/services/verify";
import { WriteBudget } from "../../workers/notify/usage";
import {
	call,
	expectError,
	expectJson,
	getNode,
	journal,
	listAll,
	mkdir,
	put,
	randomBytes,
	sha256,
	shardOfUser,
	signup,
	upload,
	withQuota,
	type TestUser,
} from "./helpers";

const MiB = 1024 * 1024;

/**
 * Makes the real D1 bindings refuse bound values over 2,000,000 bytes, as
 * production D1 does (developers.cloudflare.com/d1/platform/limits) and the
 * local runtime does not. Returns the function that undoes it.
 */
function enforceD1ValueLimit(): () => void {
	const statement = Object.getPrototypeOf(env.DIRECTORY.prepare("SELECT 1")) as { bind: (...values: unknown[]) => unknown };
	const bind = statement.bind;
	statement.bind = function (this: unknown, ...values: unknown[]) {
		for (const v of values)
			if (typeof v === "string" && new TextEncoder().encode(v).byteLength > 2_000_000) throw new Error("D1_ERROR: string or blob too big");
		return bind.apply(this, values);
	};
	return () => {
		statement.bind = bind;
	};
}

async function me(user: TestUser): Promise<{ bytes_used: number; quota_bytes: number; reserved_bytes: number; nodes: number }> {
	return (
		await expectJson<{ usage: { bytes_used: number; quota_bytes: number; reserved_bytes: number; nodes: number } }>(
			await call("/v1/me", { token: user.token }),
			200,
		)
	).usage;
}

function createSession(user: TestUser, body: Record<string, unknown>): Promise<Response> {
	return call("/v1/uploads", { method: "POST", token: user.token, body: JSON.stringify({ parent_id: user.rootId, ...body }) });
}

/** A block list of `count` distinct made-up blocks of `size` bytes (never sent). */
function fakeBlocks(count: number, size = 1, seed = 0): { hash: string; size: number }[] {
	return Array.from({ length: count }, (_, i) => ({ hash: (seed * 1_000_000 + i).toString(16).padStart(64, "0"), size }));
}

describe("H1: storage used counts every version the user can still download, and trash", () => {
	it("H1: a 2 MiB file overwritten with 1 byte still counts both versions, and the old one downloads", async () => {
		const user = await signup();
		const big = randomBytes(2 * MiB, 11);
		const first = await upload(user, user.rootId, "a.bin", big);
		await upload(user, user.rootId, "a.bin", "x", 200);
		expect((await me(user)).bytes_used).toBe(2 * MiB + 1);
		const old = await call(`/v1/files/${first.node.id}/content?version_id=${first.version.id}`, { token: user.token });
		expect(old.status).toBe(200);
		expect((await old.arrayBuffer()).byteLength).toBe(2 * MiB);
	});

	it("H1: trash still counts, and a new version that fits the old size no longer sneaks under the quota", async () => {
		const user = await withQuota(await signup(), 3 * MiB);
		const file = await upload(user, user.rootId, "a.bin", randomBytes(2 * MiB, 12));
		await expectJson(await call(`/v1/nodes/${file.node.id}`, { method: "DELETE", token: user.token }), 200);
		expect((await me(user)).bytes_used).toBe(2 * MiB);
		// 2 MiB stored (in the trash) + 2 MiB would pass a quota that counted only live heads.
		await expectError(await put(user, user.rootId, "b.bin", randomBytes(2 * MiB, 13)), 507, "QUOTA_EXCEEDED");
		// Overwriting the 2 MiB file with a smaller one used to lower the count; now it adds.
		const kept = await upload(user, user.rootId, "c.bin", randomBytes(MiB / 2, 14));
		await expectError(await put(user, user.rootId, "c.bin", randomBytes(MiB / 2 + 1, 15)), 507, "QUOTA_EXCEEDED");
		expect((await me(user)).bytes_used).toBe(2 * MiB + kept.version.size);
	});
});

describe("H3: per-user limits on open uploads, listed blocks, nodes and write rate", () => {
	it("H3: at most 100 uploads are open at once; committing or cancelling one makes room", async () => {
		const user = await signup();
		const ids: string[] = [];
		for (let i = 0; i < 100; i++) {
			const created = await expectJson<{ upload_id: string }>(
				await createSession(user, { name: `f${i}`, size: 1, blocks: fakeBlocks(1, 1, i) }),
				201,
			);
			ids.push(created.upload_id);
		}
		const refused = await expectError(await createSession(user, { name: "one-more", size: 0, blocks: [] }), 507, "QUOTA_EXCEEDED");
		expect(refused.error.details).toEqual([{ limit: "open_uploads", max: 100, used: 100 }]);
		const tus = await call("/v1/tus", {
			method: "POST",
			token: user.token,
			headers: {
				"Tus-Resumable": "1.0.0",
				"Upload-Length": "1",
				"Upload-Metadata": `filename ${btoa("t")},parent_id ${btoa(user.rootId)}`,
			},
		});
		await expectError(tus, 507, "QUOTA_EXCEEDED");
		expect((await call(`/v1/uploads/${ids[0]}`, { method: "DELETE", token: user.token })).status).toBe(204);
		await expectJson(await createSession(user, { name: "now-fits", size: 0, blocks: [] }), 201);
	});

	it("H3: open uploads list at most 200,000 blocks together, and a refused part lists nothing", async () => {
		const user = await signup();
		const first = await expectJson<{ upload_id: string }>(
			await createSession(user, { name: "huge", size: 163_840, blocks: fakeBlocks(163_840, 1, 1) }),
			201,
		);
		const refused = await expectError(
			await createSession(user, { name: "more", size: 40_000, blocks: fakeBlocks(40_000, 1, 2) }),
			507,
			"QUOTA_EXCEEDED",
		);
		expect(refused.error.details).toEqual([{ limit: "listed_blocks", max: 200_000, used: 163_840 }]);
		// A session listing in parts meets the same budget on append.
		const parts = await expectJson<{ upload_id: string }>(
			await createSession(user, { name: "parts", size: 100_000, blocks: fakeBlocks(30_000, 1, 3), more_blocks: true }),
			201,
		);
		const append = await call(`/v1/uploads/${parts.upload_id}/block-list`, {
			method: "POST",
			token: user.token,
			body: JSON.stringify({ offset: 30_000, blocks: fakeBlocks(10_000, 1, 4), more_blocks: true }),
		});
		await expectError(append, 507, "QUOTA_EXCEEDED");
		const db = await shardOfUser(user.id);
		const listed = await db
			.prepare("SELECT COUNT(*) AS n FROM upload_blocks WHERE upload_id = ?")
			.bind(parts.upload_id)
			.first<{ n: number }>();
		expect(listed?.n).toBe(30_000);
		// Cancelling the big one frees its budget.
		expect((await call(`/v1/uploads/${first.upload_id}`, { method: "DELETE", token: user.token })).status).toBe(204);
		await expectJson(
			await call(`/v1/uploads/${parts.upload_id}/block-list`, {
				method: "POST",
				token: user.token,
				body: JSON.stringify({ offset: 30_000, blocks: fakeBlocks(10_000, 1, 4), more_blocks: true }),
			}),
			200,
		);
	});

	it("H3: the declared sizes of open uploads are held against the quota", async () => {
		const user = await withQuota(await signup(), 10 * MiB);
		await expectJson(await createSession(user, { name: "a", size: 6 * MiB, blocks: fakeBlocks(1, 1), more_blocks: true }), 201);
		const refused = await expectError(
			await createSession(user, { name: "b", size: 5 * MiB, blocks: fakeBlocks(1, 1, 5), more_blocks: true }),
			507,
			"QUOTA_EXCEEDED",
		);
		expect(refused.error.details).toEqual([{ limit: "bytes", max: 10 * MiB, used: 0, reserved: 6 * MiB }]);
		expect((await me(user)).reserved_bytes).toBe(6 * MiB);
	});

	it("H3: an account holds at most MAX_NODES_PER_USER files and folders; past it folders and files are refused", async () => {
		const user = await signup();
		// Bring the count to one below the limit, as if the user had built it up.
		const db = await shardOfUser(user.id);
		await db.prepare("UPDATE user_usage SET nodes = 999999 WHERE user_id = ?").bind(user.id).run();
		await mkdir(user, user.rootId, "the last one");
		const folder = await call("/v1/folders", {
			method: "POST",
			token: user.token,
			body: JSON.stringify({ parent_id: user.rootId, name: "x" }),
		});
		const refused = await expectError(folder, 507, "QUOTA_EXCEEDED");
		expect(refused.error.details).toEqual([{ limit: "nodes", max: 1_000_000, used: 1_000_000 }]);
		await expectError(await put(user, user.rootId, "f.txt", "hi"), 507, "QUOTA_EXCEEDED");
	});

	it("H3: writes take from a budget: a burst, then a steady rate, then RATE_LIMITED with a retry time", () => {
		const t0 = 1_000_000;
		const budget = new WriteBudget(3, 2, t0);
		for (let i = 0; i < 3; i++) expect(budget.take(1, t0).ok).toBe(true);
		const refused = budget.take(1, t0);
		expect(refused).toEqual({
			ok: false,
			error: { code: "RATE_LIMITED", message: expect.any(String), details: [{ retry_after_seconds: 1 }] },
		});
		expect(budget.take(1, t0 + 500).ok).toBe(true);
		expect(budget.take(1, t0 + 500).ok).toBe(false);
		// Refilled up to the burst, never beyond it.
		expect(budget.take(3, t0 + 60_000).ok).toBe(true);
		expect(budget.take(1, t0 + 60_000).ok).toBe(false);
	});
});

describe("M4, M5: reads that grew with the shard", () => {
	it("M4: GET /v1/conflicts answers a page of 100 conflicted copies of distinct files", async () => {
		const user = await signup();
		// 101 files, each with one unresolved conflicted copy, written straight to the shard:
		// this is about reading the list, which is what broke.
		const db = await shardOfUser(user.id);
		const now = new Date().toISOString();
		const rows = Array.from({ length: 101 }, (_, i) => [
			["nod_orig" + String(i).padStart(19, "0"), `f${i}.txt`, null],
			["nod_copy" + String(i).padStart(19, "0"), `f${i} (conflicted copy).txt`, "nod_orig" + String(i).padStart(19, "0")],
		]).flat();
		await db.batch(
			rows.map(([id, name, conflictOf]) =>
				db
					.prepare(
						"INSERT INTO nodes (id, user_id, parent_id, type, name, name_key, size, created_at, modified_at, conflict_of) VALUES (?, ?, ?, 'folder', ?, ?, 0, ?, ?, ?)",
					)
					.bind(id, user.id, user.rootId, name, name, now, now, conflictOf),
			),
		);
		const page = await expectJson<{ items: { conflicts_with: { id: string } | null }[]; next_cursor: string | null }>(
			await call("/v1/conflicts?limit=100", { token: user.token }),
			200,
		);
		expect(page.items).toHaveLength(100);
		expect(page.items.every((item) => item.conflicts_with !== null)).toBe(true);
		expect(page.next_cursor).not.toBeNull();
	});

	it("M5: usage is one row per user, kept in the same batch as each change, and read by its key", async () => {
		const user = await signup();
		await upload(user, user.rootId, "a", "12345");
		await upload(user, user.rootId, "a", "123", 200);
		await mkdir(user, user.rootId, "d");
		const db = await shardOfUser(user.id);
		const row = await db.prepare("SELECT version_bytes, nodes FROM user_usage WHERE user_id = ?").bind(user.id).first();
		const actual = await db
			.prepare(
				"SELECT (SELECT SUM(size) FROM versions WHERE user_id = ?1) AS version_bytes, (SELECT COUNT(*) FROM nodes WHERE user_id = ?1) AS nodes",
			)
			.bind(user.id)
			.first();
		expect(row).toEqual(actual);
		expect(row).toEqual({ version_bytes: 8, nodes: 3 });
		const plan = await db
			.prepare("EXPLAIN QUERY PLAN SELECT version_bytes, nodes FROM user_usage WHERE user_id = ?")
			.bind(user.id)
			.all<{ detail: string }>();
		expect(plan.results.map((r) => r.detail).join(" ")).toMatch(/SEARCH user_usage USING PRIMARY KEY/);
	});
});

describe("M8, M12: block lists that cannot describe the bytes", () => {
	it("M8: a block the user holds, listed with another size, is refused at creation and never committed", async () => {
		const user = await signup();
		const data = randomBytes(1000, 21);
		const hash = await sha256(data);
		const file = await upload(user, user.rootId, "real.bin", data);
		expect(file.version.content_hash).toBe(hash);
		for (const size of [10, 2000]) {
			const refused = await expectError(
				await createSession(user, { name: `size-${size}.bin`, size, blocks: [{ hash, size }] }),
				400,
				"INVALID_REQUEST",
			);
			expect(refused.error.details).toEqual([{ field: "blocks", hash, size: 1000 }]);
		}
		// Listed before the user held it, and committed after: the hub refuses it too.
		const other = await signup();
		const early = await expectJson<{ upload_id: string; missing: string[] }>(
			await createSession(other, { name: "e.bin", size: 10, blocks: [{ hash, size: 10 }] }),
			201,
		);
		expect(early.missing).toEqual([hash]);
		await upload(other, other.rootId, "real.bin", data);
		await expectError(
			await call(`/v1/uploads/${early.upload_id}/commit`, { method: "POST", token: other.token, body: "{}" }),
			400,
			"INVALID_REQUEST",
		);
	});

	it("M12: a block-list part of 30,000 blocks binds no value over D1's 2,000,000 bytes, and still finds a resized block", async () => {
		const user = await signup();
		const session = await expectJson<{ upload_id: string }>(
			await createSession(user, { name: "parts.bin", size: 60_000, blocks: fakeBlocks(1, 1, 7), more_blocks: true }),
			201,
		);
		const blocks = fakeBlocks(30_000, 1, 8);
		const append = (part: unknown) =>
			call(`/v1/uploads/${session.upload_id}/block-list`, { method: "POST", token: user.token, body: JSON.stringify(part) });
		const restore = enforceD1ValueLimit();
		try {
			expect((await expectJson<{ listed_bytes: number }>(await append({ offset: 1, blocks, more_blocks: true }), 200)).listed_bytes).toBe(
				30_001,
			);
			// The same hash again with another size, at the end of a long part: refused.
			const resized = [...fakeBlocks(29_999, 1, 9), { hash: blocks[29_999]?.hash, size: 2 }];
			await expectError(await append({ offset: 30_001, blocks: resized, more_blocks: true }), 400, "INVALID_REQUEST");
		} finally {
			restore();
		}
	});
});

describe("M7: a session's declared content_hash is checked against the stored blocks", () => {
	const wrong = "0".repeat(64);

	async function sessionWithBlock(user: TestUser, name: string, data: Uint8Array): Promise<string> {
		const hash = await sha256(data);
		const session = await expectJson<{ upload_id: string }>(
			await createSession(user, { name, size: data.length, blocks: [{ hash, size: data.length }], content_hash: wrong }),
			201,
		);
		expect((await call(`/v1/uploads/${session.upload_id}/blocks/${hash}`, { method: "PUT", token: user.token, body: data })).ok).toBe(true);
		return session.upload_id;
	}

	it("M7: a small upload whose declared hash is wrong is refused at commit, and nothing is committed", async () => {
		const user = await signup();
		const data = randomBytes(5000, 71);
		const uploadId = await sessionWithBlock(user, "m7.bin", data);
		const refused = await expectError(
			await call(`/v1/uploads/${uploadId}/commit`, { method: "POST", token: user.token, body: "{}" }),
			422,
			"HASH_MISMATCH",
		);
		expect(refused.error.details).toEqual([{ expected: wrong, actual: await sha256(data) }]);
		expect((await listAll(user, user.rootId)).map((n) => n.name)).not.toContain("m7.bin");
	});

	it("M7: a large upload commits with its claim unverified, sends no Repr-Digest, and the check replaces the claim with a journaled update", async () => {
		const user = await signup();
		const data = randomBytes(5000, 72);
		const hash = await sha256(data);
		const uploadId = await sessionWithBlock(user, "m7-large.bin", data);
		// The size decides when the check runs: the row is read as a large upload's.
		const shard = Number(await env.DIRECTORY.prepare("SELECT shard FROM users WHERE id = ?").bind(user.id).first<number>("shard"));
		const row = await findUpload(shardAt(env, shard), user.id, uploadId);
		if (row === null) throw new Error("upload row missing");
		const deferred: (() => Promise<unknown>)[] = [];
		const caller = { userId: user.id, email: user.email, deviceId: user.deviceId, deviceName: "Test laptop", shard, quotaBytes: 1e12 };
		const committed = await commitSession(env, caller, keyRing(env), { ...row, size: VERIFY_BEFORE_COMMIT_BYTES + 1 }, (work) =>
			deferred.push(work),
		);
		if (!committed.ok) throw new Error(committed.error.message);
		expect(committed.value.node.content_hash).toBe(wrong);
		expect(deferred).toHaveLength(1);

		const before = await call(`/v1/files/${committed.value.node.id}/content`, { token: user.token });
		expect(before.status).toBe(200);
		expect(before.headers.get("Repr-Digest")).toBeNull();
		expect(new Uint8Array(await before.arrayBuffer())).toEqual(data);

		// The check its commit started was cut off: the cron's sweep does it.
		expect((await verifyPendingHashes(env, keyRing(env), Date.now() + 11 * 60_000)).verified).toBeGreaterThanOrEqual(1);
		expect((await getNode(user, committed.value.node.id)).content_hash).toBe(hash);
		const after = await call(`/v1/files/${committed.value.node.id}/content`, { token: user.token });
		expect(after.headers.get("Repr-Digest")).toBe(`sha-256=:${Buffer.from(hash, "hex").toString("base64")}:`);
		await after.body?.cancel();
		const last = (await journal(user.id)).at(-1);
		expect(last?.kind).toBe("updated");
		expect(last?.node_id).toBe(committed.value.node.id);
		// Once verified, the check its commit deferred changes nothing more.
		for (const check of deferred) await check();
		expect((await journal(user.id)).at(-1)?.seq).toBe(last?.seq);
	});
});
