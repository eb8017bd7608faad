/**
 * Cold tiering (issue 15, docs/decisions/0027, docs/storage.md "Cold
 * storage"): the collector's scan rewrites in InfrequentAccess exactly the
 * blocks whose every version, in every shard, went unread for the policy's
 * 90 days, with their bytes unchanged; reads and re-uploads bring them back;
 * and reads cost at most one write per version per month.
 *
 * The local R2 stores no storage class, so the class each put asked for is
 * read from a recording wrapper around the real bucket. The clock is the
 * scan unit's `now`: everything the test does happens before the cut-off.
 */
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { blockObjectKey } from "../../src/shared/blocks";
import { blockShardIndex, shardAt, shardCount } from "../../src/shared/db/shards";
import { runUnit, type GcUnit } from "../../workers/api/services/gc-queue";
import { COLD_CLASS, monthOf, touchRead } from "../../workers/api/services/tiering";
import { api, bytesEqual, sha256, shardOfUser, signup, upload, versionBlocks, type TestUser } from "./helpers";

const DAY = 86_400_000;

/** Bytes no other test holds, so that each file here has blocks of its own. */
const unique = (size: number) => crypto.getRandomValues(new Uint8Array(size));

interface Recorded {
	key: string;
	storageClass: string | undefined;
}

/** BLOBS, recording the storage class of every put made through it. */
function recordingBucket(): { bucket: R2Bucket; puts: Recorded[] } {
	const puts: Recorded[] = [];
	const bucket = new Proxy(env.BLOBS, {
		get(target, p) {
			if (p === "put")
				return (key: string, value: Parameters<R2Bucket["put"]>[1], options?: R2PutOptions) => {
					puts.push({ key, storageClass: options?.storageClass });
					return target.put(key, value, options);
				};
			const value: unknown = Reflect.get(target, p);
			return typeof value === "function" ? (value as (...a: unknown[]) => unknown).bind(target) : value;
		},
	});
	return { bucket, puts };
}

/** The only block of a small file's head version. */
async function blockOf(user: TestUser, versionId: string): Promise<string> {
	const blocks = await versionBlocks(user.id, versionId);
	expect(blocks).toHaveLength(1);
	return (blocks[0] as { hash: string }).hash;
}

/** Runs a full scan of every prefix holding one of `hashes`, at `now`, through `bucket`. */
async function scan(bucket: R2Bucket, hashes: readonly string[], now: number): Promise<void> {
	const started = new Date(now).toISOString();
	const sink = async (units: GcUnit[]) => {
		for (const unit of units) await runUnit(env, bucket, unit, sink);
	};
	for (const prefix of new Set(hashes.map((h) => `blocks/${h.slice(0, 2)}/`))) await sink([{ kind: "scan", prefix, started, now }]);
}

/** The storage tier recorded for a block, if the row still names the object R2 holds. */
async function recordedTier(hash: string): Promise<string | null> {
	const db = shardAt(env, blockShardIndex(hash, shardCount(env)));
	const row = await db.$client
		.prepare("SELECT tier, since FROM block_tiers WHERE hash = ?")
		.bind(hash)
		.first<{ tier: string; since: string }>();
	const object = await env.BLOBS.head(blockObjectKey(hash));
	if (!row || !object || object.uploaded.getTime() > Date.parse(row.since)) return null;
	return row.tier;
}

async function rawObject(hash: string): Promise<Uint8Array> {
	const object = await env.BLOBS.get(blockObjectKey(hash));
	if (!object) throw new Error(`no object for ${hash}`);
	return new Uint8Array(await object.arrayBuffer());
}

const classesOf = (puts: readonly Recorded[], hashes: readonly string[]) =>
	Object.fromEntries(puts.filter((p) => hashes.some((h) => p.key === blockObjectKey(h))).map((p) => [p.key.slice(-64), p.storageClass]));

describe("cold tiering", () => {
	it("rewrites in InfrequentAccess exactly the blocks no version read in 90 days, bytes and hashes unchanged, and reads still work", async () => {
		const alice = await signup();
		const bob = await signup();
		const content = { cold: unique(3000), read: unique(3000), shared: unique(3000), bobCold: unique(3000) };
		const cold = await upload(alice, alice.rootId, "cold.bin", content.cold);
		const read = await upload(alice, alice.rootId, "read.bin", content.read);
		const sharedA = await upload(alice, alice.rootId, "shared.bin", content.shared);
		const sharedB = await upload(bob, bob.rootId, "shared.bin", content.shared);
		const bobCold = await upload(bob, bob.rootId, "old.bin", content.bobCold);
		const hash = {
			cold: await blockOf(alice, cold.version.id),
			read: await blockOf(alice, read.version.id),
			shared: await blockOf(alice, sharedA.version.id),
			bobCold: await blockOf(bob, bobCold.version.id),
		};
		expect(await blockOf(bob, sharedB.version.id)).toBe(hash.shared);

		// Reads at the cut-off: 90 days before the scan, the read ones were read, none of the others since their upload.
		const cutoff = Date.now();
		expect(bytesEqual((await api.download(alice, read.node.id)).bytes, content.read)).toBe(true);
		expect(bytesEqual((await api.download(bob, sharedB.node.id)).bytes, content.shared)).toBe(true);
		const ours = Object.values(hash);
		const before = new Map(await Promise.all(ours.map(async (h) => [h, await rawObject(h)] as const)));

		const { bucket, puts } = recordingBucket();
		await scan(bucket, ours, cutoff + 90 * DAY);
		// Alice's unread file, and Bob's; not the one Alice read, nor the one Bob read that Alice also holds.
		expect(classesOf(puts, ours)).toEqual({ [hash.cold]: COLD_CLASS, [hash.bobCold]: COLD_CLASS });
		for (const h of ours) expect(bytesEqual(await rawObject(h), before.get(h) as Uint8Array)).toBe(true);
		expect(await recordedTier(hash.cold)).toBe(COLD_CLASS);
		expect(await recordedTier(hash.bobCold)).toBe(COLD_CLASS);
		expect(await recordedTier(hash.read)).toBeNull();
		expect(await recordedTier(hash.shared)).toBeNull();

		// The policy holds: a second scan at the same time rewrites nothing.
		const again = recordingBucket();
		await scan(again.bucket, ours, cutoff + 90 * DAY);
		expect(classesOf(again.puts, ours)).toEqual({});

		// A cold block reads like any other, and hashes to its name.
		const got = (await api.download(alice, cold.node.id)).bytes;
		expect(bytesEqual(got, content.cold)).toBe(true);
		expect(await sha256(got)).toBe(hash.cold);
	});

	it("a re-upload and a read make cold blocks hot again", async () => {
		const alice = await signup();
		const carol = await signup();
		const content = { one: unique(2000), two: unique(2000) };
		const one = await upload(alice, alice.rootId, "one.bin", content.one);
		const two = await upload(alice, alice.rootId, "two.bin", content.two);
		const hash = { one: await blockOf(alice, one.version.id), two: await blockOf(alice, two.version.id) };
		const ours = Object.values(hash);
		const cutoff = Date.now();
		await scan(recordingBucket().bucket, ours, cutoff + 90 * DAY);
		expect(await recordedTier(hash.one)).toBe(COLD_CLASS);
		expect(await recordedTier(hash.two)).toBe(COLD_CLASS);

		// Carol lacks the block, so her upload sends it, and the store writes it in Standard.
		await upload(carol, carol.rootId, "same.bin", content.one);
		expect(await recordedTier(hash.one)).toBeNull();
		expect(bytesEqual((await api.download(alice, two.node.id)).bytes, content.two)).toBe(true);

		const { bucket, puts } = recordingBucket();
		await scan(bucket, ours, cutoff + 90 * DAY);
		// `one` is Standard already (the stale row goes); `two` was read, so it goes back.
		expect(classesOf(puts, ours)).toEqual({ [hash.two]: "Standard" });
		expect(await recordedTier(hash.one)).toBeNull();
		expect(await recordedTier(hash.two)).toBeNull();
		const db = shardAt(env, blockShardIndex(hash.one, shardCount(env)));
		expect(await db.$client.prepare("SELECT hash FROM block_tiers WHERE hash = ?").bind(hash.one).first()).toBeNull();
	});

	it("100 downloads of a file make at most one write a month", async () => {
		const alice = await signup();
		const file = await upload(alice, alice.rootId, "popular.bin", unique(5000));
		const shard = await shardOfUser(alice.id);
		const id = file.version.id;
		const counter = `test_writes_${crypto.randomUUID().replaceAll("-", "")}`;
		await shard.batch([
			shard.prepare(`CREATE TABLE ${counter} (at TEXT)`),
			shard.prepare(
				`CREATE TRIGGER ${counter}_t AFTER UPDATE ON versions WHEN NEW.id = '${id}' BEGIN INSERT INTO ${counter} VALUES (datetime()); END`,
			),
		]);
		const writes = async () => (await shard.prepare(`SELECT COUNT(*) AS n FROM ${counter}`).first<{ n: number }>())?.n;
		try {
			for (let i = 0; i < 100; i++) expect((await api.download(alice, file.node.id)).res.status).toBe(200);
			expect(await writes()).toBe(1);
			const row = await shard.prepare("SELECT read_month FROM versions WHERE id = ?").bind(id).first<{ read_month: number }>();
			expect(row?.read_month).toBe(monthOf(Date.now()));

			// The next month: the first read writes once more, the rest of that month nothing.
			const nextMonth = Date.now() + 32 * DAY;
			const db = shardAt(
				env,
				(await env.DIRECTORY.prepare("SELECT shard FROM users WHERE id = ?").bind(alice.id).first<{ shard: number }>())?.shard ?? 0,
			);
			await touchRead(db, { id, readMonth: row?.read_month ?? null }, nextMonth);
			await touchRead(db, { id, readMonth: row?.read_month ?? null }, nextMonth);
			expect(await writes()).toBe(2);
		} finally {
			await shard.batch([shard.prepare(`DROP TRIGGER ${counter}_t`), shard.prepare(`DROP TABLE ${counter}`)]);
		}
	});
});
