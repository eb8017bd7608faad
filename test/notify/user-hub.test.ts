/**
 * The UserHub from inside: its queue, its journal numbering and its sync
 * channel, driven through RPC on the stub and, where the order of calls is
 * the point, from inside the object (runInDurableObject).
 */
import { runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { newId } from "../../src/shared/ids";
import type { Result } from "../../src/shared/errors";
import { CommitQueue, type Batchable } from "../../workers/notify/commit-queue";
import type { NodeOutcome } from "../../workers/notify/contract";
import { HUB_TICKET_HEADER, REQUEST_ID_HEADER, SyncChannel } from "../../workers/notify/sync-channel";
import type { UserHub } from "../../workers/notify/user-hub";

/** A promise and the function that resolves it. */
function deferred(): { promise: Promise<void>; resolve: () => void } {
	let resolve = () => {};
	const promise = new Promise<void>((r) => {
		resolve = r;
	});
	return { promise, resolve };
}

/** A user as the directory knows them (the hub reads its shard from there), with their root. */
async function newUser(shard = 0): Promise<{ id: string; hub: DurableObjectStub<UserHub>; rootId: string }> {
	const id = newId("usr");
	await env.DIRECTORY.prepare("INSERT INTO users (id, email, password_hash, shard, quota_bytes, created_at) VALUES (?, ?, 'x', ?, ?, ?)")
		.bind(id, `${id}@example.com`, shard, 1_000_000_000, new Date().toISOString())
		.run();
	const hub = env.USER_HUB.getByName(id);
	const root = await hub.ensureRoot();
	if (!root.ok) throw new Error(root.error.message);
	return { id, hub, rootId: root.value.node.id };
}

async function journalSeqs(userId: string, shard = 0): Promise<{ seq: number; kind: string; node_id: string }[]> {
	const db = env[`SHARD_${shard}` as "SHARD_0"];
	const { results } = await db
		.prepare("SELECT seq, kind, node_id FROM changes WHERE user_id = ? ORDER BY seq")
		.bind(userId)
		.all<{ seq: number; kind: string; node_id: string }>();
	return results;
}

describe("CommitQueue", () => {
	it("runs tasks one at a time, in arrival order", async () => {
		const queue = new CommitQueue();
		const events: string[] = [];
		const gates = [deferred(), deferred()];
		const first = queue.run(async () => {
			events.push("first starts");
			await gates[0]?.promise;
			events.push("first ends");
		});
		const second = queue.run(async () => {
			events.push("second starts");
			await gates[1]?.promise;
			events.push("second ends");
		});
		await Promise.resolve();
		expect(events).toEqual(["first starts"]);
		gates[1]?.resolve();
		gates[0]?.resolve();
		await Promise.all([first, second]);
		expect(events).toEqual(["first starts", "first ends", "second starts", "second ends"]);
	});

	it("groups consecutive jobs of one kind up to its maximum, and a throw rejects only the entries it left unsettled", async () => {
		const queue = new CommitQueue();
		const runs: number[][] = [];
		const batch: Batchable<number, number> = {
			maxGroup: 3,
			async run(entries) {
				runs.push(entries.map((e) => e.item));
				if (entries.some((e) => e.item === 99)) {
					entries[0]?.resolve(-1);
					throw new Error("group failed");
				}
				for (const e of entries) e.resolve(e.item * 10);
			},
		};
		// All queued in one turn: the first group starts alone, the rest wait together.
		const answers = [1, 2, 3, 4, 5].map((n) => queue.join(batch, n));
		expect(await Promise.all(answers)).toEqual([10, 20, 30, 40, 50]);
		expect(runs).toEqual([[1], [2, 3, 4], [5]]);
		// Queued while a task holds the queue, 7 and 99 form one group.
		const gate = deferred();
		const holding = queue.run(() => gate.promise);
		const failing = [7, 99].map((n) =>
			queue.join(batch, n).then(
				(v) => ({ v }),
				(e: Error) => ({ e: e.message }),
			),
		);
		gate.resolve();
		await holding;
		expect(await Promise.all(failing)).toEqual([{ v: -1 }, { e: "group failed" }]);
	});

	it("rejects the caller of a task that throws before its first await, and keeps going", async () => {
		const queue = new CommitQueue();
		await expect(
			queue.run(() => {
				throw new Error("at once");
			}),
		).rejects.toThrow("at once");
		expect(await queue.run(async () => "after")).toBe("after");
	});
});

describe("UserHub", () => {
	it("knows its user from its id, and refuses to work for an id the directory does not know", async () => {
		const stranger = env.USER_HUB.getByName(newId("usr"));
		expect(await stranger.ensureRoot()).toMatchObject({ ok: false, error: { code: "INTERNAL" } });
		const user = await newUser(2);
		const folder = await user.hub.createFolder({ parentId: user.rootId, name: "Photos" });
		expect(folder.ok).toBe(true);
		expect((await journalSeqs(user.id, 2)).map((e) => e.kind)).toEqual(["created"]);
	});

	it("commits folders queued together in one group, each with its own answer, and refused ones take no number", async () => {
		const user = await newUser();
		const results = await runInDurableObject(user.hub, async (hub: UserHub) => {
			// Called in one turn: the first runs alone, the other four share a batch.
			const calls = [
				hub.createFolder({ parentId: user.rootId, name: "a" }),
				hub.createFolder({ parentId: user.rootId, name: "b" }),
				hub.createFolder({ parentId: "nod_nothere", name: "c" }),
				hub.createFolder({ parentId: user.rootId, name: "B" }),
				hub.createFolder({ parentId: user.rootId, name: "d" }),
			];
			return Promise.all(calls);
		});
		const codes = results.map((r: Result<NodeOutcome>) => (r.ok ? r.value.node.name : r.error.code));
		expect(codes).toEqual(["a", "b", "NOT_FOUND", "NAME_TAKEN", "d"]);
		const journal = await journalSeqs(user.id);
		expect(journal.map((e) => e.seq)).toEqual([1, 2, 3]);
		expect(journal.map((e) => e.node_id)).toEqual(results.filter((r) => r.ok).map((r) => (r.ok ? r.value.node.id : "")));
	});

	it("after a batch that failed because something else wrote the next seq, numbers the next change after it", async () => {
		const user = await newUser();
		const folder = await user.hub.createFolder({ parentId: user.rootId, name: "x" });
		if (!folder.ok) throw new Error("no folder");
		// Another writer (a hub restarted elsewhere) took seq 2.
		await env.SHARD_0.prepare(
			"INSERT INTO changes (user_id, seq, kind, node_id, node, created_at) VALUES (?, 2, 'updated', 'nod_other', '{}', ?)",
		)
			.bind(user.id, new Date().toISOString())
			.run();
		expect(await user.hub.updateNode({ nodeId: folder.value.node.id, name: "y" })).toMatchObject({
			ok: false,
			error: { code: "INTERNAL" },
		});
		const renamed = await user.hub.updateNode({ nodeId: folder.value.node.id, name: "y" });
		expect(renamed.ok && renamed.value.node.name).toBe("y");
		expect((await journalSeqs(user.id)).map((e) => [e.seq, e.kind])).toEqual([
			[1, "created"],
			[2, "updated"],
			[3, "moved"],
		]);
		// The usage totals stayed right through the failure.
		const usage = await env.SHARD_0.prepare("SELECT nodes FROM user_usage WHERE user_id = ?").bind(user.id).first<{ nodes: number }>();
		expect(usage?.nodes).toBe(2);
	});
});

describe("SyncChannel", () => {
	it("wakes a long poll when a later change is announced, and not for an older one", async () => {
		const user = await newUser();
		await runInDurableObject(user.hub, async (_hub: UserHub, state: DurableObjectState) => {
			const channel = new SyncChannel(state, user.id);
			const answers: string[] = [];
			const poll = channel.waitForChange(5, 5, 60_000).then((a) => answers.push(JSON.stringify(a)));
			channel.announce(5);
			await Promise.resolve();
			expect(answers).toEqual([]);
			channel.announce(6);
			await poll;
			expect(answers).toEqual(['{"changes":true}']);
			expect(await channel.waitForChange(3, 6, 60_000)).toEqual({ changes: true });
		});
	});

	it("issues single-use tickets: the second upgrade with one is refused", async () => {
		const user = await newUser();
		const { ticket } = await user.hub.issueTicket("dev_test");
		const upgrade = () =>
			user.hub.fetch(
				new Request("http://hub/", { headers: { Upgrade: "websocket", [HUB_TICKET_HEADER]: ticket, [REQUEST_ID_HEADER]: "req_test" } }),
			);
		const first = await upgrade();
		expect(first.status).toBe(101);
		first.webSocket?.accept();
		first.webSocket?.close(1000, "done");
		const second = await upgrade();
		expect(second.status).toBe(401);
		expect(await second.json()).toMatchObject({ error: { code: "UNAUTHENTICATED", request_id: "req_test" } });
	});
});
