/**
 * Deleting forever in the background (issue 15, docs/decisions/0027): the
 * item leaves the trash and stops being restorable the moment the purge is
 * asked for; the hub deletes it in chunks, and resumes from the mark after
 * a crash.
 */
import { abortAllDurableObjects } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { blockObjectKey } from "../../src/shared/blocks";
import { collectBlocks } from "../../workers/api/services/gc";
import { describe, expect, it } from "vitest";
import {
	call,
	expectError,
	expectJson,
	journal,
	listAll,
	mkdir,
	settlePurges,
	shardOfUser,
	signup,
	upload,
	type TestUser,
} from "./helpers";

function trash(user: TestUser, id: string): Promise<Response> {
	return call(`/v1/nodes/${id}`, { method: "DELETE", token: user.token });
}

function restore(user: TestUser, id: string): Promise<Response> {
	return call(`/v1/nodes/${id}/restore`, { method: "POST", token: user.token });
}

async function trashIds(user: TestUser): Promise<string[]> {
	return (await expectJson<{ items: { id: string }[] }>(await call("/v1/trash", { token: user.token }), 200)).items.map((i) => i.id);
}

async function nodeCount(user: TestUser): Promise<number> {
	const db = await shardOfUser(user.id);
	const row = await db.prepare("SELECT COUNT(*) AS n FROM nodes WHERE user_id = ?").bind(user.id).first<{ n: number }>();
	return row?.n ?? -1;
}

/** A trashed folder with files and a subfolder: 1 + 2 + 1 + 1 nodes. */
async function trashedTree(user: TestUser): Promise<string> {
	const box = await mkdir(user, user.rootId, "box");
	const sub = await mkdir(user, box.id, "sub");
	await upload(user, box.id, "a.txt", "aaa");
	await upload(user, sub.id, "b.txt", "bbb");
	await expectJson(await trash(user, box.id), 200);
	return box.id;
}

describe("purges in the background", () => {
	it("answers at once, hides the item from the trash, refuses its restore, and ends with a deleted entry", async () => {
		const user = await signup();
		const box = await trashedTree(user);
		const other = await upload(user, user.rootId, "other.txt", "other");
		await expectJson(await trash(user, other.node.id), 200);
		expect((await call(`/v1/nodes/${box}?permanent=true`, { method: "DELETE", token: user.token })).status).toBe(204);
		expect(await trashIds(user)).toEqual([other.node.id]);
		await expectError(await restore(user, box), 404, "NOT_FOUND");
		await settlePurges(user.id);
		expect(await nodeCount(user)).toBe(2);
		expect((await journal(user.id)).filter((e) => e.kind === "deleted").map((e) => e.node_id)).toEqual([box]);
		await expectJson(await restore(user, other.node.id), 200);
	});

	it("empties the trash at once: every item leaves it, none can be restored", async () => {
		const user = await signup();
		const box = await trashedTree(user);
		const file = await upload(user, user.rootId, "c.txt", "ccc");
		await expectJson(await trash(user, file.node.id), 200);
		const emptied = await expectJson<{ deleted: number }>(await call("/v1/trash", { method: "DELETE", token: user.token }), 200);
		expect(emptied.deleted).toBe(2);
		expect(await trashIds(user)).toEqual([]);
		await expectError(await restore(user, file.node.id), 404, "NOT_FOUND");
		await expectError(await restore(user, box), 404, "NOT_FOUND");
		// Asking again marks nothing new.
		expect(await expectJson<{ deleted: number }>(await call("/v1/trash", { method: "DELETE", token: user.token }), 200)).toEqual({
			deleted: 0,
		});
		await settlePurges(user.id);
		expect(await nodeCount(user)).toBe(1);
	});

	it("a marked purge cut short by a crash is hidden, unrestorable, and finished by the hub's alarm once it is back", async () => {
		const user = await signup();
		const box = await trashedTree(user);
		const inside = (
			await expectJson<{ items: { id: string; name: string }[] }>(await call(`/v1/nodes/${box}/children`, { token: user.token }), 200)
		).items;
		const db = await shardOfUser(user.id);
		// What a crash right after the mark leaves: the mark, no chunk deleted, no alarm.
		await db.prepare("UPDATE nodes SET purge_started_at = ? WHERE id = ?").bind(new Date().toISOString(), box).run();
		await abortAllDurableObjects();
		expect(await trashIds(user)).toEqual([]);
		await expectError(await restore(user, box), 404, "NOT_FOUND");
		for (const child of inside) await expectError(await restore(user, child.id), 404, "NOT_FOUND");
		// Any change wakes the hub, which resumes from the mark by its alarm.
		await mkdir(user, user.rootId, "wake");
		while ((await nodeCount(user)) > 2) await new Promise((resolve) => setTimeout(resolve, 20));
		expect((await journal(user.id)).filter((e) => e.kind === "deleted").map((e) => e.node_id)).toEqual([box]);
	});

	it("an item not listed in the trash cannot be deleted forever", async () => {
		const user = await signup();
		const box = await trashedTree(user);
		const live = await upload(user, user.rootId, "live.txt", "live");
		await expectError(
			await call(`/v1/nodes/${live.node.id}?permanent=true`, { method: "DELETE", token: user.token }),
			400,
			"INVALID_REQUEST",
		);
		expect(await trashIds(user)).toEqual([box]);
	});
});

describe("usage split", () => {
	type Usage = { bytes_used: number; files_bytes: number; versions_bytes: number; trash_bytes: number };
	async function usage(user: TestUser): Promise<Usage> {
		const me = await expectJson<{ usage: Usage }>(await call("/v1/me", { token: user.token }), 200);
		const { bytes_used, files_bytes, versions_bytes, trash_bytes } = me.usage;
		return { bytes_used, files_bytes, versions_bytes, trash_bytes };
	}

	it("splits storage used into current files, version history and trash, adding up to bytes_used as files move", async () => {
		const user = await signup();
		expect(await usage(user)).toEqual({ bytes_used: 0, files_bytes: 0, versions_bytes: 0, trash_bytes: 0 });
		await upload(user, user.rootId, "a.txt", "x".repeat(10));
		await upload(user, user.rootId, "a.txt", "y".repeat(20), 200);
		const b = await upload(user, user.rootId, "b.txt", "z".repeat(5));
		await upload(user, user.rootId, "b.txt", "w".repeat(7), 200);
		expect(await usage(user)).toEqual({ bytes_used: 42, files_bytes: 27, versions_bytes: 15, trash_bytes: 0 });
		// A trashed file takes its whole history with it.
		await expectJson(await trash(user, b.node.id), 200);
		expect(await usage(user)).toEqual({ bytes_used: 42, files_bytes: 20, versions_bytes: 10, trash_bytes: 12 });
		await expectJson(await restore(user, b.node.id), 200);
		expect(await usage(user)).toEqual({ bytes_used: 42, files_bytes: 27, versions_bytes: 15, trash_bytes: 0 });
		await expectJson(await trash(user, b.node.id), 200);
		expect((await call(`/v1/nodes/${b.node.id}?permanent=true`, { method: "DELETE", token: user.token })).status).toBe(204);
		await settlePurges(user.id);
		expect(await usage(user)).toEqual({ bytes_used: 30, files_bytes: 20, versions_bytes: 10, trash_bytes: 0 });
	});
});

describe("a large purge", () => {
	it("purges a tree of 2,000 files: blocks only they held leave R2, blocks another file or user holds survive byte-exact", async () => {
		const user = await signup();
		const other = await signup();
		const big = await mkdir(user, user.rootId, "big");
		const content = (i: number): string => `file number ${i} of the large purge`;
		// Four files of their own content; the other 1,996 are copies of f3, which copy its block list, not its bytes.
		for (const n of [0, 1, 2, 3, 1999]) await upload(user, big.id, `f${n}.txt`, content(n));
		const seed = (await listAll(user, big.id)).find((node) => node.name === "f3.txt");
		if (!seed) throw new Error("f3.txt was not uploaded");
		const copies = Array.from({ length: 2000 }, (_, i) => i).filter((n) => ![0, 1, 2, 3, 1999].includes(n));
		for (let i = 0; i < copies.length; i += 25)
			await Promise.all(
				copies.slice(i, i + 25).map(async (n) =>
					expectJson(
						await call(`/v1/nodes/${seed.id}/copy`, {
							method: "POST",
							token: user.token,
							body: JSON.stringify({ parent_id: big.id, name: `f${n}.txt` }),
						}),
						201,
					),
				),
			);
		expect((await listAll(user, big.id)).length).toBe(2000);
		// Files 0 and 1 share their bytes with a file of the same user outside the tree, and with another user.
		const kept = await upload(user, user.rootId, "kept.txt", content(0));
		const theirs = await upload(other, other.rootId, "theirs.txt", content(1));
		const db = await shardOfUser(user.id);
		const hashes = async (name: string): Promise<string[]> =>
			(
				await db
					.prepare(
						"SELECT vb.hash FROM version_blocks vb JOIN versions v ON v.id = vb.version_id JOIN nodes n ON n.id = v.node_id WHERE n.user_id = ? AND n.parent_id = ? AND n.name = ?",
					)
					.bind(user.id, big.id, name)
					.all<{ hash: string }>()
			).results.map((r) => r.hash);
		const sharedHashes = [...(await hashes("f0.txt")), ...(await hashes("f1.txt"))];
		const onlyTheirs = [...(await hashes("f2.txt")), ...(await hashes("f3.txt")), ...(await hashes("f1999.txt"))];
		expect(onlyTheirs.length).toBe(3);

		await expectJson(await trash(user, big.id), 200);
		expect((await call(`/v1/nodes/${big.id}?permanent=true`, { method: "DELETE", token: user.token })).status).toBe(204);
		await settlePurges(user.id);
		expect(await nodeCount(user)).toBe(2);
		const report = await collectBlocks(env, env.BLOBS, { now: Date.now() + 2 * 3_600_000, graceMs: 0, perShard: 5000 });
		expect(report.failures).toEqual([]);
		for (const hash of onlyTheirs) expect(await env.BLOBS.head(blockObjectKey(hash))).toBeNull();
		for (const hash of sharedHashes) expect(await env.BLOBS.head(blockObjectKey(hash))).not.toBeNull();
		const mine = await call(`/v1/files/${kept.node.id}/content`, { token: user.token });
		expect(await mine.text()).toBe(content(0));
		const theirCopy = await call(`/v1/files/${theirs.node.id}/content`, { token: other.token });
		expect(await theirCopy.text()).toBe(content(1));
		// 2,000 commits go through one hub in turn: on a busy machine that alone takes minutes.
	}, 600_000);
});
