/**
 * Delivery of a share's changes from the owner's hub to members' hubs, from
 * inside the hubs: at least once (a failed delivery is retried by the
 * owner's alarm), applied once (the member skips what it applied).
 */
import { runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it, onTestFinished } from "vitest";
import { newId } from "../../src/shared/ids";
import type { ShareDelivery } from "../../workers/notify/sharing";
import type { UserHub } from "../../workers/notify/user-hub";

async function newUser(shard: number): Promise<{ id: string; email: string; hub: DurableObjectStub<UserHub>; rootId: string }> {
	const id = newId("usr");
	const email = `${id}@example.com`;
	await env.DIRECTORY.prepare("INSERT INTO users (id, email, password_hash, shard, quota_bytes, created_at) VALUES (?, ?, 'x', ?, ?, ?)")
		.bind(id, email, shard, 1_000_000_000, new Date().toISOString())
		.run();
	const hub = env.USER_HUB.getByName(id);
	const root = await hub.ensureRoot();
	if (!root.ok) throw new Error(root.error.message);
	return { id, email, hub, rootId: root.value.node.id };
}

async function entries(userId: string, shard: number): Promise<{ seq: number; kind: string; node_id: string; reason: string | null }[]> {
	const db = env[`SHARD_${shard}` as "SHARD_0"];
	const { results } = await db
		.prepare("SELECT seq, kind, node_id, reason FROM changes WHERE user_id = ? ORDER BY seq")
		.bind(userId)
		.all<{ seq: number; kind: string; node_id: string; reason: string | null }>();
	return results;
}

/** Waits for a condition that other work (a delivery in the background) makes true; the bound is a hang guard only. */
async function until<T>(check: () => Promise<T | null | undefined | false>): Promise<T> {
	for (let i = 0; i < 2000; i++) {
		const value = await check();
		if (value) return value;
		await scheduler.wait(5);
	}
	throw new Error("the condition never held");
}

describe("share delivery", () => {
	it("retries a failed delivery on the owner's alarm, and the member applies each change exactly once", async () => {
		const owner = await newUser(0);
		const member = await newUser(1);
		const folder = await owner.hub.createFolder({ parentId: owner.rootId, name: "Shared" });
		if (!folder.ok) throw new Error(folder.error.message);

		// The member's hub refuses its first delivery, as if it were unreachable.
		// (RPC looks methods up on the class, so the wrapper goes there, for this member only.)
		let calls = 0;
		const proto = (await runInDurableObject(member.hub, (hub: UserHub) => Object.getPrototypeOf(hub))) as UserHub;
		const apply = proto.applyShareEvents;
		proto.applyShareEvents = async function (this: UserHub, delivery: ShareDelivery) {
			if (this.ctx.id.name === member.id && ++calls === 1) throw new Error("injected: the member's hub is unreachable");
			return apply.call(this, delivery);
		};
		onTestFinished(() => {
			proto.applyShareEvents = apply;
		});
		const shared = await owner.hub.shareNode({
			nodeId: folder.value.node.id,
			members: [{ userId: member.id, email: member.email, role: "editor" }],
			ownerEmail: owner.email,
			actor: { type: "user", id: owner.id, device: "test" },
		});
		expect(shared.ok).toBe(true);
		const inside = await owner.hub.createFolder({ parentId: folder.value.node.id, name: "a" });
		if (!inside.ok) throw new Error(inside.error.message);

		// The failure left the outbox in place and set the alarm; the alarm delivers it.
		await until(async () => calls >= 1 && (await runInDurableObject(owner.hub, (_h: UserHub, state) => state.storage.getAlarm())) !== null);
		await until(async () => (await runDurableObjectAlarm(owner.hub)) || (await entries(member.id, 1)).length >= 3);
		const seen = await until(async () => {
			const rows = await entries(member.id, 1);
			return rows.some((r) => r.node_id === inside.value.node.id) ? rows : null;
		});
		// The mount, then the folder made inside: once each, whatever was retried.
		const shareRows = seen.filter((r) => r.kind !== "created" || r.node_id !== member.rootId);
		expect(shareRows.filter((r) => r.node_id === inside.value.node.id)).toHaveLength(1);
		expect(shareRows.filter((r) => r.kind === "created")).toHaveLength(2);

		// A redelivery of what was applied changes nothing.
		const before = (await entries(member.id, 1)).length;
		const outbox = await env.SHARD_0.prepare("SELECT COUNT(*) AS n FROM share_outbox WHERE owner_id = ?")
			.bind(owner.id)
			.first<{ n: number }>();
		const again = await member.hub.applyShareEvents({
			ownerId: owner.id,
			shareId: (
				await env.SHARD_1.prepare("SELECT share_id FROM incoming_shares WHERE user_id = ?").bind(member.id).first<{ share_id: string }>()
			)?.share_id as string,
			events: [{ id: 1, event: "created", visibility: "both", memberId: null, node: JSON.stringify(inside.value.node), details: null }],
		});
		expect(again.ok).toBe(true);
		expect((await entries(member.id, 1)).length).toBe(before);
		// Delivered rows leave the outbox.
		expect(outbox?.n).toBe(0);
	});
});
