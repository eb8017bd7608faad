/**
 * Deleting an account (issue 15, docs/decisions/0027): the password asked
 * again, every session ended at once, the tree purged in the background,
 * no row left in the shard or the directory, and no block that only that
 * account held, while blocks another account holds survive byte-exact.
 */
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { blockObjectKey } from "../../src/shared/blocks";
import { shardBinding, shardCount } from "../../src/shared/db/shards";
import { PASSWORD } from "../support/harness";
import { journalUntil, share, usersOnDifferentShards } from "./sharing";
import { collectBlocks } from "../../workers/api/services/gc";
import {
	bytesEqual,
	call,
	expectError,
	expectJson,
	mkdir,
	randomBytes,
	settlePurges,
	shardOfUser,
	signup,
	upload,
	type TestUser,
} from "./helpers";

function deleteAccount(user: TestUser, password: string): Promise<Response> {
	return call("/v1/me", { method: "DELETE", token: user.token, body: JSON.stringify({ password }) });
}

/** Every row of every shard table, and of the directory, that names the user. */
async function rowsOf(userId: string): Promise<string[]> {
	const found: string[] = [];
	const databases = [env.DIRECTORY, ...Array.from({ length: shardCount(env) }, (_, i) => shardBinding(env, i))];
	for (const db of databases) {
		const tables = await db
			.prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE '\\_%' ESCAPE '\\' AND name NOT LIKE 'sqlite%'")
			.all<{ name: string }>();
		for (const { name } of tables.results) {
			const columns = (await db.prepare(`PRAGMA table_info(${name})`).all<{ name: string }>()).results.map((c) => c.name);
			const named = columns.filter(
				(c) => ["user_id", "owner_id", "member_id", "created_by"].includes(c) || (name === "users" && c === "id"),
			);
			for (const column of named) {
				const row = await db.prepare(`SELECT COUNT(*) AS n FROM ${name} WHERE ${column} = ?`).bind(userId).first<{ n: number }>();
				if ((row?.n ?? 0) > 0) found.push(`${name}.${column}`);
			}
		}
	}
	return found;
}

describe("deleting an account", () => {
	it("ends every session at once, purges the tree, leaves no row, and keeps only the blocks others hold", async () => {
		const user = await signup();
		const other = await signup();
		const shared = randomBytes(5000, 71);
		const own = randomBytes(5000, 72);
		const box = await mkdir(user, user.rootId, "box");
		await upload(user, box.id, "shared.bin", shared);
		await upload(user, user.rootId, "own.bin", own);
		const kept = await upload(other, other.rootId, "same.bin", shared);
		const db = await shardOfUser(user.id);
		const ownBlocks = (
			await db
				.prepare(
					"SELECT vb.hash FROM version_blocks vb JOIN versions v ON v.id = vb.version_id JOIN nodes n ON n.id = v.node_id WHERE n.name = 'own.bin' AND n.user_id = ?",
				)
				.bind(user.id)
				.all<{ hash: string }>()
		).results.map((r) => r.hash);
		expect(ownBlocks.length).toBeGreaterThan(0);
		for (const hash of ownBlocks) expect(await env.BLOBS.head(blockObjectKey(hash))).not.toBeNull();
		const hook = await call("/v1/webhooks", {
			method: "POST",
			token: user.token,
			body: JSON.stringify({ url: "https://hooks.example.com/drive" }),
		});
		expect(hook.status).toBe(201);
		const hookId = ((await hook.json()) as { id: string }).id;
		// A delivery in the endpoint's log, as the fan-out writes it.
		await db
			.prepare(
				"INSERT INTO webhook_deliveries (id, user_id, endpoint_id, seq, type, status, attempts, next_attempt_at, created_at, updated_at) VALUES ('msg_account_delete', ?1, ?2, 1, 'file.created', 'failed', 1, 0, ?3, ?3)",
			)
			.bind(user.id, hookId, new Date().toISOString())
			.run();
		expect(await rowsOf(user.id)).toEqual(
			expect.arrayContaining([
				"users.id",
				"devices.user_id",
				"nodes.user_id",
				"versions.user_id",
				"webhook_endpoints.user_id",
				"webhook_deliveries.user_id",
			]),
		);

		await expectError(await deleteAccount(user, "not the password"), 403, "FORBIDDEN");
		expect((await call("/v1/me", { token: user.token })).status).toBe(200);
		expect((await deleteAccount(user, PASSWORD)).status).toBe(204);
		await expectError(await call("/v1/me", { token: user.token }), 401, "UNAUTHENTICATED");
		await expectError(
			await call("/v1/auth/login", { method: "POST", body: JSON.stringify({ email: user.email, password: PASSWORD }) }),
			401,
			"UNAUTHENTICATED",
		);
		await expectError(await deleteAccount(user, PASSWORD), 401, "UNAUTHENTICATED");

		await settlePurges(user.id);
		expect(await rowsOf(user.id)).toEqual([]);
		const report = await collectBlocks(env, env.BLOBS, { now: Date.now() + 2 * 3_600_000, graceMs: 0 });
		expect(report.failures).toEqual([]);
		for (const hash of ownBlocks) expect(await env.BLOBS.head(blockObjectKey(hash))).toBeNull();
		const download = await call(`/v1/files/${kept.node.id}/content`, { token: other.token });
		expect(download.status).toBe(200);
		expect(bytesEqual(new Uint8Array(await download.arrayBuffer()), shared)).toBe(true);
	});

	it("ends the shares the account owns and leaves the ones it is in; members keep their own files", async () => {
		const [alice, bob] = (await usersOnDifferentShards(2)) as [TestUser, TestUser];
		const mine = await mkdir(alice, alice.rootId, "alice's");
		const his = await mkdir(bob, bob.rootId, "bob's");
		await upload(bob, his.id, "notes.txt", "bob's notes");
		const bobsShare = await share(bob, his.id, [{ user: alice, role: "editor" }]);
		await share(alice, mine.id, [{ user: bob, role: "viewer" }]);
		await journalUntil(bob, (entries) => entries.some((e) => e.node.mount !== undefined));
		await journalUntil(alice, (entries) => entries.some((e) => e.node.mount !== undefined));

		expect((await deleteAccount(alice, PASSWORD)).status).toBe(204);
		// Bob's mount of Alice's folder goes; Alice is no longer in Bob's share.
		await journalUntil(bob, (entries) => entries.some((e) => e.kind === "deleted" && e.reason === "unshared"));
		const members = await expectJson<{ members: { user: { id: string } }[] }>(
			await call(`/v1/shares/${bobsShare.id}`, { token: bob.token }),
			200,
		);
		expect(members.members.map((m) => m.user.id)).not.toContain(alice.id);

		// The hubs deliver and purge in the background: run Alice's purge, and wait for Bob's hub to tell hers he let her go.
		while ((await rowsOf(alice.id)).length > 0) {
			await settlePurges(alice.id);
			await new Promise((resolve) => setTimeout(resolve, 20));
		}
		expect(await rowsOf(alice.id)).toEqual([]);
		const notes = (
			await call(`/v1/nodes/${his.id}/children`, { token: bob.token }).then((r) => expectJson<{ items: { name: string }[] }>(r, 200))
		).items;
		expect(notes.map((n) => n.name)).toEqual(["notes.txt"]);
	});
});
