/**
 * Regression tests for the audit's M6 (../shared/notes/audit.md): nothing
 * ever purged, so trash counted against the quota forever and no user could
 * get back under it by deleting.
 */
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { purgeExpiredTrash } from "../../workers/api/services/trash";
import {
	call,
	expectError,
	expectJson,
	journal,
	mkdir,
	put,
	randomBytes,
	settlePurges,
	shardOfUser,
	signup,
	upload,
	withQuota,
	type TestUser,
} from "./helpers";

const MiB = 1024 * 1024;

async function bytesUsed(user: TestUser): Promise<number> {
	return (await expectJson<{ usage: { bytes_used: number } }>(await call("/v1/me", { token: user.token }), 200)).usage.bytes_used;
}

function trash(user: TestUser, id: string): Promise<Response> {
	return call(`/v1/nodes/${id}`, { method: "DELETE", token: user.token });
}

function purge(user: TestUser, id: string): Promise<Response> {
	return call(`/v1/nodes/${id}?permanent=true`, { method: "DELETE", token: user.token });
}

async function rowCounts(user: TestUser): Promise<{ nodes: number; versions: number; user_blocks: number }> {
	const db = await shardOfUser(user.id);
	const row = await db
		.prepare(
			`SELECT (SELECT COUNT(*) FROM nodes WHERE user_id = ?1) AS nodes, (SELECT COUNT(*) FROM versions WHERE user_id = ?1) AS versions,
				(SELECT COUNT(*) FROM user_blocks WHERE user_id = ?1) AS user_blocks`,
		)
		.bind(user.id)
		.first<{ nodes: number; versions: number; user_blocks: number }>();
	if (!row) throw new Error("no counts");
	return row;
}

describe("M6: deleting forever", () => {
	it("M6: a user at quota frees space by deleting forever: usage drops, the journal says deleted, old versions stop downloading", async () => {
		const user = await withQuota(await signup(), 3 * MiB);
		const file = await upload(user, user.rootId, "big.bin", randomBytes(2 * MiB, 31));
		await upload(user, user.rootId, "big.bin", randomBytes(MiB / 2, 32), 200);
		await expectError(await put(user, user.rootId, "next.bin", randomBytes(MiB, 33)), 507, "QUOTA_EXCEEDED");
		await expectJson(await trash(user, file.node.id), 200);
		// Trash still counts.
		await expectError(await put(user, user.rootId, "next.bin", randomBytes(MiB, 33)), 507, "QUOTA_EXCEEDED");
		expect((await purge(user, file.node.id)).status).toBe(204);
		await settlePurges(user.id);
		expect(await bytesUsed(user)).toBe(0);
		await upload(user, user.rootId, "next.bin", randomBytes(MiB, 33));
		const entries = await journal(user.id);
		const deleted = entries.filter((e) => e.kind === "deleted");
		expect(deleted.map((e) => e.node_id)).toEqual([file.node.id]);
		expect((await call(`/v1/files/${file.node.id}/content?version_id=${file.version.id}`, { token: user.token })).status).toBe(404);
		expect((await call(`/v1/nodes/${file.node.id}/restore`, { method: "POST", token: user.token })).status).toBe(404);
		const trashPage = await expectJson<{ items: unknown[] }>(await call("/v1/trash", { token: user.token }), 200);
		expect(trashPage.items).toEqual([]);
	});

	it("M6: only an item in the trash can be deleted forever", async () => {
		const user = await signup();
		const file = await upload(user, user.rootId, "live.txt", "still here");
		await expectError(await purge(user, file.node.id), 400, "INVALID_REQUEST");
		const folder = await mkdir(user, user.rootId, "box");
		const inside = await upload(user, folder.id, "inner.txt", "x");
		await expectJson(await trash(user, folder.id), 200);
		// Inside a trashed folder: delete the folder, which the trash lists.
		await expectError(await purge(user, inside.node.id), 400, "INVALID_REQUEST");
		await expectError(await purge(user, "nod_doesnotexist"), 404, "NOT_FOUND");
	});

	it("M6: a trashed tree larger than one batch is deleted whole, and its blocks become collector candidates unless still held", async () => {
		const user = await signup();
		const folder = await mkdir(user, user.rootId, "many");
		const sub = await mkdir(user, folder.id, "sub");
		const kept = await upload(user, user.rootId, "kept.txt", "shared bytes");
		// More nodes than one purge batch holds (200): folders are cheap to make in bulk.
		await Promise.all(Array.from({ length: 240 }, (_, i) => mkdir(user, i % 2 ? sub.id : folder.id, `d${i}`)));
		for (let i = 0; i < 12; i++) await upload(user, i % 2 ? sub.id : folder.id, `f${i}.txt`, i === 0 ? "shared bytes" : `file ${i}`);
		const before = await rowCounts(user);
		expect(before.nodes).toBe(1 + 2 + 1 + 240 + 12);
		await expectJson(await trash(user, folder.id), 200);
		expect((await purge(user, folder.id)).status).toBe(204);
		await settlePurges(user.id);
		expect(await rowCounts(user)).toEqual({ nodes: 2, versions: 1, user_blocks: 1 });
		expect(await bytesUsed(user)).toBe(kept.version.size);
		const db = await shardOfUser(user.id);
		const candidates = await db.prepare("SELECT hash FROM gc_candidates").all<{ hash: string }>();
		const keptHash = (await db.prepare("SELECT hash FROM user_blocks WHERE user_id = ?").bind(user.id).first<{ hash: string }>())?.hash;
		expect(candidates.results.length).toBeGreaterThanOrEqual(11);
		expect(candidates.results.map((c) => c.hash)).not.toContain(keptHash);
	});

	it("M6: emptying the trash deletes every item in it, and nothing else", async () => {
		const user = await signup();
		const a = await upload(user, user.rootId, "a.txt", "aaa");
		const b = await mkdir(user, user.rootId, "b");
		await upload(user, b.id, "c.txt", "ccc");
		const live = await upload(user, user.rootId, "live.txt", "stays");
		await expectJson(await trash(user, a.node.id), 200);
		await expectJson(await trash(user, b.id), 200);
		const emptied = await expectJson<{ deleted: number }>(await call("/v1/trash", { method: "DELETE", token: user.token }), 200);
		expect(emptied.deleted).toBe(2);
		await settlePurges(user.id);
		expect(await rowCounts(user)).toEqual({ nodes: 2, versions: 1, user_blocks: 1 });
		expect(await bytesUsed(user)).toBe(live.version.size);
	});

	it("M6: the cron deletes items trashed longer than TRASH_RETENTION_DAYS, and keeps newer ones", async () => {
		const user = await signup();
		const old = await upload(user, user.rootId, "old.txt", "old");
		const recent = await upload(user, user.rootId, "recent.txt", "recent");
		await expectJson(await trash(user, old.node.id), 200);
		await expectJson(await trash(user, recent.node.id), 200);
		// Age the first one past the retention, as time would.
		const db = await shardOfUser(user.id);
		const days = Number(env.TRASH_RETENTION_DAYS);
		const longAgo = new Date(Date.now() - (days + 1) * 86_400_000).toISOString();
		await db.prepare("UPDATE nodes SET trashed_at = ? WHERE id = ?").bind(longAgo, old.node.id).run();
		expect(await purgeExpiredTrash(env)).toBeGreaterThanOrEqual(1);
		await settlePurges(user.id);
		const trashPage = await expectJson<{ items: { id: string }[] }>(await call("/v1/trash", { token: user.token }), 200);
		expect(trashPage.items.map((i) => i.id)).toEqual([recent.node.id]);
		expect(await bytesUsed(user)).toBe(recent.version.size);
	});
});
