/**
 * Version history (docs/api.md, "Version history"): a file's versions, newest
 * first, restoring one as a new head over the same blocks, pinning, labelling
 * and deleting one, and retention (docs/decisions/0022).
 */
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { thinVersionHistories } from "../../workers/api/services/version-retention";
import {
	api,
	blobCount,
	call,
	expectError,
	expectJson,
	journal,
	randomBytes,
	sha256,
	shardOfUser,
	signup,
	upload,
	versionBlocks,
	type TestUser,
} from "./helpers";

interface VersionJson {
	id: string;
	node_id: string;
	size: number;
	content_hash: string;
	device_id: string | null;
	is_head: boolean;
	keep_forever: boolean;
	label: string | null;
	author_id: string | null;
}

async function versions(user: TestUser, fileId: string, query = ""): Promise<{ items: VersionJson[]; next_cursor: string | null }> {
	return expectJson(await call(`/v1/files/${fileId}/versions${query}`, { token: user.token }), 200);
}

function restore(user: TestUser, fileId: string, versionId: string): Promise<Response> {
	return call(`/v1/files/${fileId}/versions/${versionId}/restore`, { method: "POST", token: user.token });
}

function patchVersion(user: TestUser, fileId: string, versionId: string, body: unknown): Promise<Response> {
	return call(`/v1/files/${fileId}/versions/${versionId}`, { method: "PATCH", token: user.token, body: JSON.stringify(body) });
}

function deleteVersion(user: TestUser, fileId: string, versionId: string): Promise<Response> {
	return call(`/v1/files/${fileId}/versions/${versionId}`, { method: "DELETE", token: user.token });
}

interface ActivityRow {
	event: string;
	actor_type: string;
	node_id: string | null;
	version_id: string | null;
	details: string | null;
}

async function activity(user: TestUser): Promise<ActivityRow[]> {
	const db = await shardOfUser(user.id);
	const { results } = await db
		.prepare("SELECT event, actor_type, node_id, version_id, details FROM activity WHERE user_id = ? ORDER BY id")
		.bind(user.id)
		.all<ActivityRow>();
	return results;
}

/** Moves versions' commit times to `times` (ms), as if committed then: retention is tested without waiting. */
async function backdate(user: TestUser, times: Map<string, number>): Promise<void> {
	const db = await shardOfUser(user.id);
	await db.batch(
		[...times].map(([id, t]) => db.prepare("UPDATE versions SET created_at = ? WHERE id = ?").bind(new Date(t).toISOString(), id)),
	);
}

/** An hour boundary at least three hours back: times within the hour after it share one retention interval. */
function pastHour(): number {
	return Math.floor(Date.now() / 3_600_000) * 3_600_000 - 3 * 3_600_000;
}

async function userBlockHashes(user: TestUser): Promise<Set<string>> {
	const db = await shardOfUser(user.id);
	const { results } = await db.prepare("SELECT hash FROM user_blocks WHERE user_id = ?").bind(user.id).all<{ hash: string }>();
	return new Set(results.map((r) => r.hash));
}

async function bytesUsed(user: TestUser): Promise<number> {
	return (await expectJson<{ usage: { bytes_used: number } }>(await call("/v1/me", { token: user.token }), 200)).usage.bytes_used;
}

describe("version history", () => {
	it("lists a file's versions newest first, page by page", async () => {
		const user = await signup();
		const made = [await upload(user, user.rootId, "notes.txt", "one")];
		for (const text of ["two", "three", "four"]) made.push(await upload(user, user.rootId, "notes.txt", text, 200));
		const all = await versions(user, made[0]?.node.id ?? "");
		expect(all.items.map((v) => v.id)).toEqual(made.map((m) => m.version.id).reverse());
		expect(all.items[0]).toMatchObject({ size: 4, content_hash: await sha256(new TextEncoder().encode("four")), device_id: user.deviceId });
		const seen: string[] = [];
		let cursor: string | null = null;
		do {
			const page = await versions(user, made[0]?.node.id ?? "", `?limit=3${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ""}`);
			seen.push(...page.items.map((v) => v.id));
			cursor = page.next_cursor;
		} while (cursor !== null);
		expect(seen).toEqual(all.items.map((v) => v.id));
	});

	it("restores an earlier version as a new head over the same blocks: byte-exact, no object written, counted, journaled", async () => {
		const user = await signup();
		const old = randomBytes(300_000, 91);
		const first = await upload(user, user.rootId, "report.bin", old);
		await upload(user, user.rootId, "report.bin", randomBytes(1000, 92), 200);
		const objects = await blobCount();
		const used = await bytesUsed(user);
		const restored = await expectJson<{ node: { id: string; content_hash: string; size: number }; version: VersionJson; conflict: null }>(
			await restore(user, first.node.id, first.version.id),
			201,
		);
		expect(restored.version.id).not.toBe(first.version.id);
		expect(restored.node).toMatchObject({ id: first.node.id, size: old.length, content_hash: first.version.content_hash });
		expect(restored.conflict).toBeNull();
		expect((await api.download(user, first.node.id)).bytes).toEqual(old);
		expect(await blobCount()).toBe(objects);
		expect(await bytesUsed(user)).toBe(used + old.length);
		expect((await versions(user, first.node.id)).items.map((v) => v.id)[0]).toBe(restored.version.id);
		const last = (await journal(user.id)).at(-1);
		expect(last).toMatchObject({ kind: "updated", node_id: first.node.id });
		expect(await activity(user)).toEqual([
			{
				event: "version.restored",
				actor_type: "user",
				node_id: first.node.id,
				version_id: first.version.id,
				details: JSON.stringify({ restored_as: restored.version.id }),
			},
		]);
		// Restoring the head again changes nothing.
		const again = await expectJson<{ version: VersionJson }>(await restore(user, first.node.id, restored.version.id), 200);
		expect(again.version.id).toBe(restored.version.id);
		expect((await journal(user.id)).at(-1)?.seq).toBe(last?.seq);
		expect(await activity(user)).toHaveLength(1);
	});

	it("answers 404 for a version of another file or user, a folder, and a file in the trash, and changes nothing", async () => {
		const user = await signup();
		const a = await upload(user, user.rootId, "a.txt", "a1");
		await upload(user, user.rootId, "a.txt", "a2", 200);
		const b = await upload(user, user.rootId, "b.txt", "b1");
		await expectError(await restore(user, a.node.id, b.version.id), 404, "NOT_FOUND");
		await expectError(await restore(user, user.rootId, a.version.id), 404, "NOT_FOUND");
		await expectError(await call(`/v1/files/${user.rootId}/versions`, { token: user.token }), 404, "NOT_FOUND");
		const other = await signup();
		await expectError(await restore(other, a.node.id, a.version.id), 404, "NOT_FOUND");
		await expectError(await call(`/v1/files/${a.node.id}/versions`, { token: other.token }), 404, "NOT_FOUND");
		await expectError(await call(`/v1/files/${a.node.id}/versions?cursor=garbage`, { token: user.token }), 400, "INVALID_REQUEST");
		expect((await call(`/v1/nodes/${a.node.id}`, { method: "DELETE", token: user.token })).ok).toBe(true);
		await expectError(await restore(user, a.node.id, a.version.id), 404, "NOT_FOUND");
		expect((await versions(user, a.node.id)).items).toHaveLength(2);
	});
});

describe("pinning and labelling", () => {
	it("pins, labels, unpins and unlabels a version, each change once in the activity log", async () => {
		const user = await signup();
		const first = await upload(user, user.rootId, "plan.md", "draft");
		const second = await upload(user, user.rootId, "plan.md", "final", 200);
		expect(second.version).toMatchObject({ is_head: true, keep_forever: false, label: null, author_id: null });
		const fileId = first.node.id;
		const pinned = await expectJson<VersionJson>(await patchVersion(user, fileId, first.version.id, { keep_forever: true }), 200);
		expect(pinned).toMatchObject({ id: first.version.id, is_head: false, keep_forever: true, label: null });
		const labelled = await expectJson<VersionJson>(await patchVersion(user, fileId, first.version.id, { label: "  sent to Ana  " }), 200);
		expect(labelled).toMatchObject({ keep_forever: true, label: "sent to Ana" });
		// Changing nothing writes nothing.
		await expectJson(await patchVersion(user, fileId, first.version.id, { keep_forever: true, label: "sent to Ana" }), 200);
		const listed = (await versions(user, fileId)).items;
		expect(listed.map((v) => [v.id, v.is_head, v.keep_forever, v.label])).toEqual([
			[second.version.id, true, false, null],
			[first.version.id, false, true, "sent to Ana"],
		]);
		await expectJson(await patchVersion(user, fileId, first.version.id, { keep_forever: false, label: null }), 200);
		expect((await versions(user, fileId)).items[1]).toMatchObject({ keep_forever: false, label: null });
		// Two rows of one batch share a millisecond, and activity ids order only by millisecond.
		const rows = (await activity(user)).map((a) => [a.event, a.actor_type, a.version_id, a.details]);
		expect(rows.slice(0, 2)).toEqual([
			["version.pinned", "user", first.version.id, null],
			["version.labelled", "user", first.version.id, JSON.stringify({ label: "sent to Ana" })],
		]);
		expect(rows.slice(2)).toEqual(
			expect.arrayContaining([
				["version.unpinned", "user", first.version.id, null],
				["version.labelled", "user", first.version.id, JSON.stringify({ label: null })],
			]),
		);
		expect(rows).toHaveLength(4);
	});

	it("refuses bad input with 400, unknown or foreign ids with 404, and changes nothing", async () => {
		const user = await signup();
		const a = await upload(user, user.rootId, "a.txt", "a1");
		const b = await upload(user, user.rootId, "b.txt", "b1");
		const other = await signup();
		for (const body of [
			{},
			{ label: "" },
			{ label: "   " },
			{ label: "x".repeat(201) },
			{ label: "a\nb" },
			{ keep_forever: "yes" },
			{ label: 5 },
		])
			await expectError(await patchVersion(user, a.node.id, a.version.id, body), 400, "INVALID_REQUEST");
		await expectError(
			await call(`/v1/files/${a.node.id}/versions/${a.version.id}`, { method: "PATCH", token: user.token, body: "{not json" }),
			400,
			"INVALID_REQUEST",
		);
		await expectError(await patchVersion(user, a.node.id, b.version.id, { keep_forever: true }), 404, "NOT_FOUND");
		await expectError(await patchVersion(user, a.node.id, "ver_nope", { keep_forever: true }), 404, "NOT_FOUND");
		await expectError(await patchVersion(user, user.rootId, a.version.id, { keep_forever: true }), 404, "NOT_FOUND");
		await expectError(await patchVersion(other, a.node.id, a.version.id, { keep_forever: true }), 404, "NOT_FOUND");
		await expectError(
			await call(`/v1/files/${a.node.id}/versions/${a.version.id}`, { method: "PATCH", body: JSON.stringify({ keep_forever: true }) }),
			401,
			"UNAUTHENTICATED",
		);
		expect((await versions(user, a.node.id)).items[0]).toMatchObject({ keep_forever: false, label: null });
		expect(await activity(user)).toEqual([]);
	});

	it("keeps at most 200 pinned or labelled versions per file", async () => {
		const user = await signup();
		const file = await upload(user, user.rootId, "busy.txt", "v1");
		const head = await upload(user, user.rootId, "busy.txt", "v2", 200);
		const db = await shardOfUser(user.id);
		// 199 pinned versions written directly, then the 200th through the API.
		await db
			.prepare(
				`WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 199)
				INSERT INTO versions (id, user_id, node_id, parent_version_id, size, content_hash, block_count, device_id, created_at, keep_forever)
				SELECT 'ver_seed' || i, ?1, ?2, 'seed' || i, 0, ?3, 0, NULL, ?4, 1 FROM n`,
			)
			.bind(user.id, file.node.id, file.version.content_hash, new Date().toISOString())
			.run();
		await expectJson(await patchVersion(user, file.node.id, file.version.id, { keep_forever: true }), 200);
		const refused = await expectError(
			await patchVersion(user, file.node.id, head.version.id, { label: "one too many" }),
			400,
			"INVALID_REQUEST",
		);
		expect(refused.error.details).toEqual([{ reason: "too_many_pinned", limit: 200 }]);
		await expectError(await patchVersion(user, file.node.id, head.version.id, { keep_forever: true }), 400, "INVALID_REQUEST");
		const listed = (await versions(user, file.node.id, "?limit=1000")).items;
		expect(listed.find((v) => v.id === head.version.id)).toMatchObject({ is_head: true, keep_forever: false, label: null });
		// A version already kept can still change.
		await expectJson(await patchVersion(user, file.node.id, file.version.id, { label: "still fine" }), 200);
	});
});

describe("deleting a version", () => {
	it("deletes a version that is not the head: gone from the list, its download 404s, its bytes and blocks freed", async () => {
		const user = await signup();
		const old = randomBytes(300_000, 11);
		const first = await upload(user, user.rootId, "big.bin", old);
		const head = await upload(user, user.rootId, "big.bin", randomBytes(1000, 12), 200);
		const oldBlocks = (await versionBlocks(user.id, first.version.id)).map((b) => b.hash);
		const used = await bytesUsed(user);
		expect((await deleteVersion(user, first.node.id, first.version.id)).status).toBe(204);
		expect(await bytesUsed(user)).toBe(used - old.length);
		expect((await versions(user, first.node.id)).items.map((v) => v.id)).toEqual([head.version.id]);
		await api.download(user, first.node.id, { versionId: first.version.id, status: 404 });
		await expectError(await restore(user, first.node.id, first.version.id), 404, "NOT_FOUND");
		const held = await userBlockHashes(user);
		for (const hash of oldBlocks) expect(held.has(hash)).toBe(false);
		const db = await shardOfUser(user.id);
		const { results } = await db.prepare("SELECT hash FROM gc_candidates").all<{ hash: string }>();
		expect(results.map((r) => r.hash)).toEqual(expect.arrayContaining(oldBlocks));
		expect((await activity(user)).map((a) => [a.event, a.version_id, a.details])).toEqual([
			["version.deleted", first.version.id, JSON.stringify({ size: old.length })],
		]);
		// Deleting it again: it is not there any more.
		await expectError(await deleteVersion(user, first.node.id, first.version.id), 404, "NOT_FOUND");
		expect(await bytesUsed(user)).toBe(used - old.length);
	});

	it("keeps the blocks another version still lists", async () => {
		const user = await signup();
		const data = randomBytes(200_000, 21);
		const first = await upload(user, user.rootId, "shared.bin", data);
		await upload(user, user.rootId, "shared.bin", "other", 200);
		const restored = await expectJson<{ version: VersionJson }>(await restore(user, first.node.id, first.version.id), 201);
		const hashes = (await versionBlocks(user.id, first.version.id)).map((b) => b.hash);
		expect((await deleteVersion(user, first.node.id, first.version.id)).status).toBe(204);
		const held = await userBlockHashes(user);
		for (const hash of hashes) expect(held.has(hash)).toBe(true);
		expect((await api.download(user, first.node.id, { versionId: restored.version.id })).bytes).toEqual(data);
	});

	it("refuses to delete the head, and changes nothing", async () => {
		const user = await signup();
		const first = await upload(user, user.rootId, "one.txt", "one");
		const head = await upload(user, user.rootId, "one.txt", "two", 200);
		const used = await bytesUsed(user);
		const refused = await expectError(await deleteVersion(user, first.node.id, head.version.id), 400, "INVALID_REQUEST");
		expect(refused.error.details).toEqual([{ reason: "head_version" }]);
		expect((await versions(user, first.node.id)).items.map((v) => v.id)).toEqual([head.version.id, first.version.id]);
		expect(await bytesUsed(user)).toBe(used);
		expect(await api.text(user, first.node.id)).toBe("two");
		expect(await activity(user)).toEqual([]);
	});

	it("answers 404 for a version of another file, another user's, or a folder", async () => {
		const user = await signup();
		const a = await upload(user, user.rootId, "a.txt", "a1");
		await upload(user, user.rootId, "a.txt", "a2", 200);
		const b = await upload(user, user.rootId, "b.txt", "b1");
		await upload(user, user.rootId, "b.txt", "b2", 200);
		const other = await signup();
		await expectError(await deleteVersion(user, a.node.id, b.version.id), 404, "NOT_FOUND");
		await expectError(await deleteVersion(user, user.rootId, a.version.id), 404, "NOT_FOUND");
		await expectError(await deleteVersion(other, a.node.id, a.version.id), 404, "NOT_FOUND");
		await expectError(await deleteVersion(user, a.node.id, "x".repeat(65)), 400, "INVALID_REQUEST");
		expect((await versions(user, a.node.id)).items).toHaveLength(2);
		expect((await versions(user, b.node.id)).items).toHaveLength(2);
	});
});

describe("retention", () => {
	it("thins on the cron by the policy, never dropping pinned or labelled versions or the head", async () => {
		const user = await signup();
		const made = [await upload(user, user.rootId, "thin.txt", "v1")];
		for (const text of ["v2", "v3", "v4", "v5"]) made.push(await upload(user, user.rootId, "thin.txt", text, 200));
		const [v1, v2, v3, v4, v5] = made.map((m) => m.version.id) as [string, string, string, string, string];
		const fileId = made[0]?.node.id ?? "";
		// v1 to v4 within one past hour: only its newest (v4) survives, and v1 and v2 because they are kept.
		const hour = pastHour();
		await backdate(user, new Map([v1, v2, v3, v4].map((id, i) => [id, hour + (i + 1) * 600_000])));
		await expectJson(await patchVersion(user, fileId, v1, { keep_forever: true }), 200);
		await expectJson(await patchVersion(user, fileId, v2, { label: "kept by its label" }), 200);
		const used = await bytesUsed(user);
		expect(await thinVersionHistories(env, Date.now())).toBeGreaterThanOrEqual(1);
		expect((await versions(user, fileId)).items.map((v) => v.id)).toEqual([v5, v4, v2, v1]);
		expect(await bytesUsed(user)).toBe(used - 2);
		await api.download(user, fileId, { versionId: v3, status: 404 });
		expect((await activity(user)).filter((a) => a.event === "version.expired")).toEqual([
			{ event: "version.expired", actor_type: "system", node_id: fileId, version_id: null, details: JSON.stringify({ count: 1 }) },
		]);
		// Idempotent: a second run at the same time drops nothing more.
		await thinVersionHistories(env, Date.now());
		expect((await versions(user, fileId)).items).toHaveLength(4);
		expect((await activity(user)).filter((a) => a.event === "version.expired")).toHaveLength(1);
	});

	it("thins a file after each commit, behind the commit in the hub's queue", async () => {
		const user = await signup();
		const made = [await upload(user, user.rootId, "busy.txt", "v1")];
		for (const text of ["v2", "v3"]) made.push(await upload(user, user.rootId, "busy.txt", text, 200));
		const [v1, v2, v3] = made.map((m) => m.version.id) as [string, string, string];
		const fileId = made[0]?.node.id ?? "";
		const hour = pastHour();
		await backdate(user, new Map([v1, v2, v3].map((id, i) => [id, hour + (i + 1) * 600_000])));
		const v4 = (await upload(user, user.rootId, "busy.txt", "v4", 200)).version.id;
		// Any later change runs after the thinning queued behind that commit.
		await expectJson(await patchVersion(user, fileId, v4, { keep_forever: false }), 200);
		expect((await versions(user, fileId)).items.map((v) => v.id)).toEqual([v4, v3]);
		expect((await activity(user)).map((a) => [a.event, a.details])).toEqual([["version.expired", JSON.stringify({ count: 2 })]]);
	});
});

describe("restore racing a commit", () => {
	it("lands both, in some order: no version lost, and the head is one of them", async () => {
		const user = await signup();
		const old = randomBytes(50_000, 31);
		const fresh = randomBytes(40_000, 32);
		const first = await upload(user, user.rootId, "race.bin", old);
		const second = await upload(user, user.rootId, "race.bin", randomBytes(30_000, 33), 200);
		const [restored, committed] = await Promise.all([
			restore(user, first.node.id, first.version.id).then((res) => expectJson<{ version: VersionJson }>(res, 201)),
			upload(user, user.rootId, "race.bin", fresh, 200),
		]);
		const listed = (await versions(user, first.node.id)).items.map((v) => v.id);
		expect(listed).toHaveLength(4);
		expect(listed.slice(2)).toEqual([second.version.id, first.version.id]);
		expect(new Set(listed.slice(0, 2))).toEqual(new Set([restored.version.id, committed.version.id]));
		const head = listed[0];
		expect((await api.download(user, first.node.id)).bytes).toEqual(head === restored.version.id ? old : fresh);
		expect((await api.download(user, first.node.id, { versionId: restored.version.id })).bytes).toEqual(old);
		expect((await api.download(user, first.node.id, { versionId: committed.version.id })).bytes).toEqual(fresh);
	});
});
