/**
 * Failure playbooks (docs/operations.md, "Failure playbooks"; ADR 0033): a
 * D1 shard that never answers during a commit. The hub's queue gives the
 * job up at its deadline, answers UNAVAILABLE, and the next commit runs.
 */
import { runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { afterEach, describe, expect, it } from "vitest";
import { newId } from "../../src/shared/ids";
import { commitDeadline } from "../../workers/notify/commit-queue";
import type { UserHub } from "../../workers/notify/user-hub";

const DEFAULT_DEADLINE_MS = commitDeadline.ms;

/** A user as the directory knows them (the hub reads its shard from there), with their root. */
async function newUser(): Promise<{ id: string; hub: DurableObjectStub<UserHub>; rootId: string }> {
	const id = newId("usr");
	await env.DIRECTORY.prepare("INSERT INTO users (id, email, password_hash, shard, quota_bytes, created_at) VALUES (?, ?, 'x', 0, ?, ?)")
		.bind(id, `${id}@example.com`, 1_000_000_000, new Date().toISOString())
		.run();
	const hub = env.USER_HUB.getByName(id);
	const root = await hub.ensureRoot();
	if (!root.ok) throw new Error(root.error.message);
	return { id, hub, rootId: root.value.node.id };
}

/** Sets the deadline of every hub queue in this isolate. */
async function setDeadline(hub: DurableObjectStub<UserHub>, ms: number): Promise<void> {
	await runInDurableObject(hub, () => {
		commitDeadline.ms = ms;
	});
}

afterEach(async () => {
	commitDeadline.ms = DEFAULT_DEADLINE_MS;
	await env.USER_HUB.getByName("drill-control").drill(null);
});

describe("a D1 shard that never answers during a commit", () => {
	it("answers UNAVAILABLE at the queue's deadline, and the next commit is not held behind it", async () => {
		const user = await newUser();
		await user.hub.drill([{ target: "d1.batch", effect: "hang", binding: "SHARD_0", match: "INSERT INTO changes (user_id, seq" }], true);
		// The deadline is the hang guard of this test too: short, since the batch never answers.
		await setDeadline(user.hub, 2_000);
		const hung = await user.hub.createFolder({ parentId: user.rootId, name: "hung" });
		expect(hung.ok ? null : hung.error.code).toBe("UNAVAILABLE");
		await setDeadline(user.hub, DEFAULT_DEADLINE_MS);
		// The hung batch was sent (so the one fault is spent) before the next commit starts.
		while (((await user.hub.drill(undefined))["SHARD_0 d1.batch"] ?? 0) === 0) await scheduler.wait(5);

		const next = await user.hub.createFolder({ parentId: user.rootId, name: "next" });
		expect(next.ok ? next.value.node.name : next.error.code).toBe("next");
		const { results } = await env.SHARD_0.prepare("SELECT name FROM nodes WHERE user_id = ? AND parent_id = ?")
			.bind(user.id, user.rootId)
			.all<{ name: string }>();
		expect(results.map((r) => r.name)).toEqual(["next"]);
	});
});
