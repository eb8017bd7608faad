/**
 * Failure playbooks (docs/operations.md, "Failure playbooks"; ADR 0033): a
 * D1 shard failing during a commit, and the user's Durable Object restarting
 * mid-commit. The faults are injected in the notify worker's isolate through
 * the hub's drill RPC (src/shared/drills.ts). In every case the client gets a
 * retryable 503 or the real answer, and a retry lands exactly once.
 */
import { abortAllDurableObjects } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { afterEach, describe, expect, it } from "vitest";
import { clearFaults, setFaults, type FaultRule } from "../../src/shared/drills";
import { randomBytes, sha256 } from "../support/bytes";
import { expectError } from "../support/envelope";
import { expectOk, type Reply, type TestUser } from "../support/harness";
import { api, journal, shardOfUser } from "./helpers";

/** The commit's own batch: the one that writes the journal entry. */
const COMMIT_BATCH = "INSERT INTO changes (user_id, seq";
/** The hub's read of the journal after a failed batch, to learn whether it landed (workers/notify/journal.ts). */
const OUTCOME_READ = "SELECT seq, node_id FROM changes";

/** Sets the notify worker's faults (the hub's isolate); null clears them. Answers its operation counts. */
function notifyFaults(rules: FaultRule[] | null | undefined, resetCounts = false): Promise<Record<string, number>> {
	return env.USER_HUB.getByName("drill-control").drill(rules, resetCounts);
}

afterEach(async () => {
	clearFaults();
	await notifyFaults(null);
});

/** The binding name of the user's shard, for a rule that hits only it. */
async function shardBindingOf(user: TestUser): Promise<string> {
	const row = await env.DIRECTORY.prepare("SELECT shard FROM users WHERE id = ?").bind(user.id).first<{ shard: number }>();
	return `SHARD_${row?.shard ?? 0}`;
}

async function versionCount(user: TestUser, nodeId: string): Promise<number> {
	const db = await shardOfUser(user.id);
	const row = await db.prepare("SELECT COUNT(*) AS n FROM versions WHERE node_id = ?").bind(nodeId).first<{ n: number }>();
	return row?.n ?? 0;
}

async function expectUnavailable(reply: Reply<unknown>): Promise<void> {
	await expectError(reply, 503, "UNAVAILABLE");
	expect(Number(reply.headers.get("Retry-After"))).toBeGreaterThan(0);
}

describe("a D1 shard failing during a commit", () => {
	it("refuses the commit with a retryable 503 when the batch fails, changes nothing, and the retry lands", async () => {
		const user = await api.signup();
		const before = await journal(user.id);
		await notifyFaults([{ target: "d1.batch", effect: "error", binding: await shardBindingOf(user), match: COMMIT_BATCH }]);
		await expectUnavailable(await api.putContent(user, user.rootId, "a.txt", "one"));
		expect(await journal(user.id)).toEqual(before);
		expect(await api.listAll(user, user.rootId)).toEqual([]);

		const done = await api.upload(user, user.rootId, "a.txt", "one");
		expect(await api.text(user, done.node.id)).toBe("one");
		expect((await journal(user.id)).length).toBe(before.length + 1);
	});

	it("answers the commit as made when the batch landed but its answer was lost", async () => {
		const user = await api.signup();
		const first = await api.upload(user, user.rootId, "b.txt", "v1");
		const before = await journal(user.id);
		await notifyFaults([{ target: "d1.batch", effect: "after", binding: await shardBindingOf(user), match: COMMIT_BATCH }]);
		const second = await api.upload(user, user.rootId, "b.txt", "v2", { status: 200, ifMatch: first.version.id });
		expect(second.conflict).toBeNull();
		expect(await api.text(user, first.node.id)).toBe("v2");
		expect(await versionCount(user, first.node.id)).toBe(2);
		expect((await journal(user.id)).length).toBe(before.length + 1);
		// The hub numbers the next change after it, not on top of it.
		await api.upload(user, user.rootId, "c.txt", "c");
		expect((await journal(user.id)).map((e) => e.seq)).toEqual([...before.map((e) => e.seq), before.length + 1, before.length + 2]);
	});

	it("answers 503 when the outcome cannot be read either, and the retry of the same If-Match edit answers the landed version once", async () => {
		const user = await api.signup();
		const first = await api.upload(user, user.rootId, "d.txt", "v1");
		const shard = await shardBindingOf(user);
		await notifyFaults([
			{ target: "d1.batch", effect: "after", binding: shard, match: COMMIT_BATCH },
			{ target: "d1.query", effect: "error", binding: shard, match: OUTCOME_READ },
		]);
		await expectUnavailable(await api.putContent(user, user.rootId, "d.txt", "v2", { ifMatch: first.version.id }));
		await notifyFaults(null);

		const retried = await api.upload(user, user.rootId, "d.txt", "v2", { status: 200, ifMatch: first.version.id });
		expect(retried.conflict).toBeNull();
		expect(await versionCount(user, first.node.id)).toBe(2);
		expect((await api.listAll(user, user.rootId)).map((n) => n.name)).toEqual(["d.txt"]);
		expect(await api.text(user, first.node.id)).toBe("v2");
	});

	it("commits an upload session once when the outcome of its commit was lost", async () => {
		const user = await api.signup();
		const bytes = randomBytes(4096, 77);
		const hash = await sha256(bytes);
		const session = expectOk(
			await api.createUpload(user, { parent_id: user.rootId, name: "s.bin", size: bytes.length, blocks: [{ hash, size: bytes.length }] }),
			201,
		);
		expect((await api.putBlock(user, session.upload_id, hash, bytes)).status).toBe(204);
		const shard = await shardBindingOf(user);
		await notifyFaults([
			{ target: "d1.batch", effect: "after", binding: shard, match: COMMIT_BATCH },
			{ target: "d1.query", effect: "error", binding: shard, match: OUTCOME_READ },
		]);
		await expectUnavailable(await api.commitUpload(user, session.upload_id));
		await notifyFaults(null);

		const done = expectOk(await api.commitUpload(user, session.upload_id), 201);
		const again = expectOk(await api.commitUpload(user, session.upload_id), 201);
		expect(again.version.id).toBe(done.version.id);
		expect(await versionCount(user, done.node.id)).toBe(1);
		expect((await journal(user.id)).filter((e) => e.node_id === done.node.id).length).toBe(1);
	});

	it("answers a folder creation whose batch landed with the folder, not a conflict", async () => {
		const user = await api.signup();
		await notifyFaults([{ target: "d1.batch", effect: "after", binding: await shardBindingOf(user), match: COMMIT_BATCH }]);
		const made = expectOk(await api.createFolder(user, user.rootId, "docs"), 201);
		expect((await api.listAll(user, user.rootId)).map((n) => n.id)).toEqual([made.id]);
	});
});

describe("the hub's answer lost on its way to the api", () => {
	it("answers 503, and the retried edit answers the version that landed instead of adding one", async () => {
		const user = await api.signup();
		const first = await api.upload(user, user.rootId, "l.txt", "v1");
		// The hub commits; its answer never reaches the api (drills in the api's own isolate).
		setFaults([{ target: "do.call", effect: "after", binding: "USER_HUB", match: "commitFile" }]);
		await expectUnavailable(await api.putContent(user, user.rootId, "l.txt", "v2", { ifMatch: first.version.id }));
		clearFaults();
		const retried = await api.upload(user, user.rootId, "l.txt", "v2", { status: 200, ifMatch: first.version.id });
		expect(retried.conflict).toBeNull();
		expect(await versionCount(user, first.node.id)).toBe(2);
		expect((await api.listAll(user, user.rootId)).map((n) => n.name)).toEqual(["l.txt"]);
	});
});

describe("the user's Durable Object restarting mid-commit", () => {
	it("answers the commit in flight with a retryable 503, and the retry lands exactly once", async () => {
		const user = await api.signup();
		const shard = await shardBindingOf(user);
		await notifyFaults([{ target: "d1.batch", effect: "hang", binding: shard, match: COMMIT_BATCH }], true);
		const inFlight = api.putContent(user, user.rootId, "r.txt", "restart");
		// The commit is inside the hub once its batch was sent (and hangs there).
		while (((await notifyFaults(undefined))[`${shard} d1.batch`] ?? 0) === 0) await scheduler.wait(5);
		// What an eviction, a deploy or a crash does to the hub.
		await abortAllDurableObjects();
		await expectUnavailable(await inFlight);
		await notifyFaults(null);

		const done = await api.upload(user, user.rootId, "r.txt", "restart");
		expect(await versionCount(user, done.node.id)).toBe(1);
		expect((await api.listAll(user, user.rootId)).map((n) => n.name)).toEqual(["r.txt"]);
		expect((await journal(user.id)).filter((e) => e.node_id === done.node.id).length).toBe(1);
	});
});
