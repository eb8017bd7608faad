/**
 * Upload sessions (docs/api.md, "Upload sessions"): the client sends its block
 * list and gets back only what it must send; blocks are verified as they
 * stream; the commit goes through the user's hub; expired sessions are
 * cleaned up together with the blocks only they referenced.
 */
import { env } from "cloudflare:workers";
import { beforeAll, describe, expect, it } from "vitest";
import { blockObjectKey } from "../../src/shared/blocks";
import { MAX_BLOCK_BYTES } from "../../src/shared/limits";
import { findUpload } from "../../src/shared/db/uploads";
import { openShard } from "../../src/shared/db/shards";
import { collectBlocks } from "../../workers/api/services/gc";
import { appendBlockList, cleanupUploads } from "../../workers/api/services/uploads";
import { bytesEqual, concat as concatBytes, randomBytes, sha256 } from "../support/bytes";
import { expectError, runAuthSuite } from "../support/envelope";
import { expectOk, type Body, type CommitResult, type TestUser } from "../support/harness";
import { api, blobKeys, shardOfUser, versionBlocks } from "./helpers";

const KiB = 1024;

interface Block {
	hash: string;
	size: number;
	bytes: Uint8Array;
}

let seed = 1000;

/** `count` distinct random blocks of `size` bytes (sessions accept any boundaries). */
async function makeBlocks(count: number, size = 64 * KiB): Promise<Block[]> {
	const out: Block[] = [];
	for (let i = 0; i < count; i++) {
		const bytes = randomBytes(size, seed++);
		out.push({ hash: await sha256(bytes), size, bytes });
	}
	return out;
}

const concat = (blocks: Block[]) => concatBytes(blocks.map((b) => b.bytes));

/** POST /v1/uploads for `blocks`, sized by them unless `extra` says otherwise. */
function createSession(user: TestUser, name: string, blocks: { hash: string; size: number }[], extra: Record<string, unknown> = {}) {
	const size = blocks.reduce((n, b) => n + b.size, 0);
	return api.createUpload(user, { parent_id: user.rootId, name, size, blocks: blocks.map(({ hash, size }) => ({ hash, size })), ...extra });
}

async function create(user: TestUser, name: string, blocks: { hash: string; size: number }[], extra: Record<string, unknown> = {}) {
	return expectOk(await createSession(user, name, blocks, extra), 201);
}

const putBlock = (user: TestUser, uploadId: string, hash: string, bytes: Body, headers: Record<string, string> = {}) =>
	api.putBlock(user, uploadId, hash, bytes, headers);

async function sendBlock(user: TestUser, uploadId: string, block: Block): Promise<void> {
	const res = await putBlock(user, uploadId, block.hash, block.bytes);
	if (res.status !== 204) throw new Error(`PUT block: ${res.status} ${await res.text()}`);
}

const commit = (user: TestUser, uploadId: string) => api.commitUpload(user, uploadId);
const status = (user: TestUser, uploadId: string) => api.uploadStatus(user, uploadId);
const download = (user: TestUser, id: string) => api.download(user, id);

/** Creates a session, sends what it asks for, commits; returns the commit. */
async function uploadBlocks(
	user: TestUser,
	name: string,
	blocks: Block[],
	extra: Record<string, unknown> = {},
	expected = 201,
): Promise<CommitResult> {
	const session = await create(user, name, blocks, extra);
	const byHash = new Map(blocks.map((b) => [b.hash, b]));
	for (const hash of session.missing) {
		const block = byHash.get(hash);
		if (!block) throw new Error(`asked for unknown block ${hash}`);
		await sendBlock(user, session.upload_id, block);
	}
	return expectOk(await commit(user, session.upload_id), expected);
}

describe("creating a session", () => {
	let alice: TestUser;
	let bob: TestUser;
	let stored: Block[];

	beforeAll(async () => {
		[alice, bob] = await Promise.all([api.signup(), api.signup()]);
		stored = await makeBlocks(3);
		await uploadBlocks(alice, "stored.bin", stored);
	});

	it("returns only the blocks the user does not already have, once each, in file order", async () => {
		const fresh = await makeBlocks(2);
		const [a, b, c] = stored as [Block, Block, Block];
		const [x, y] = fresh as [Block, Block];
		const before = Date.now();
		const session = await create(alice, "mixed.bin", [a, x, b, y, x, c]);
		const after = Date.now();
		expect(session.missing).toEqual([x.hash, y.hash]);
		expect(session.upload_id).toMatch(/^upl_/);
		// 24 hours from the request.
		const expires = Date.parse(session.expires_at);
		expect(expires).toBeGreaterThanOrEqual(before + 24 * 3600_000);
		expect(expires).toBeLessThanOrEqual(after + 24 * 3600_000);
	});

	it("needs no block at all when the same user uploads the same content again", async () => {
		const session = await create(alice, "again.bin", stored);
		expect(session.missing).toEqual([]);
		const committed = expectOk(await commit(alice, session.upload_id), 201);
		const data = concat(stored);
		expect(committed.node.content_hash).toBe(await sha256(data));
		const { bytes } = await download(alice, committed.node.id);
		expect(bytesEqual(bytes, data)).toBe(true);
	});

	it("asks another user for every block, so nobody learns what others store", async () => {
		const before = (await blobKeys("blocks/")).length;
		const session = await create(bob, "stored.bin", stored);
		expect(session.missing).toEqual(stored.map((b) => b.hash));
		for (const b of stored) await sendBlock(bob, session.upload_id, b);
		const committed = expectOk(await commit(bob, session.upload_id), 201);
		expect(committed.node.content_hash).toBe(await sha256(concat(stored)));
		// Storage itself stays deduplicated across users.
		expect((await blobKeys("blocks/")).length).toBe(before);
	});

	it("rejects block sizes that do not add up to the declared size", async () => {
		const [a, b] = stored as [Block, Block];
		const res = await api.createUpload(alice, {
			parent_id: alice.rootId,
			name: "wrong.bin",
			size: a.size + b.size + 1,
			blocks: [a, b].map(({ hash, size }) => ({ hash, size })),
		});
		await expectError(res, 400, "INVALID_REQUEST");
	});

	it("rejects a block list entry larger than 8 MiB", async () => {
		const hash = "ab".repeat(32);
		const res = await api.createUpload(alice, {
			parent_id: alice.rootId,
			name: "big.bin",
			size: MAX_BLOCK_BYTES + 1,
			blocks: [{ hash, size: MAX_BLOCK_BYTES + 1 }],
		});
		await expectError(res, 400, "INVALID_REQUEST");
	});

	it("answers 404 for a parent folder the user does not have", async () => {
		const res = await api.createUpload(alice, {
			parent_id: bob.rootId,
			name: "x.bin",
			size: stored[0]?.size,
			blocks: stored.slice(0, 1).map(({ hash, size }) => ({ hash, size })),
		});
		await expectError(res, 404, "NOT_FOUND");
	});
});

describe("sending blocks", () => {
	let user: TestUser;
	beforeAll(async () => {
		user = await api.signup();
	});

	it("rejects a block whose hash does not match and records nothing", async () => {
		const [good, other] = (await makeBlocks(2)) as [Block, Block];
		const session = await create(user, "mismatch.bin", [good]);
		const res = await putBlock(user, session.upload_id, good.hash, other.bytes);
		const envelope = await expectError(res, 422, "HASH_MISMATCH");
		expect(envelope.error.details).toEqual([{ expected: good.hash, actual: other.hash }]);
		expect(await env.BLOBS.head(blockObjectKey(good.hash))).toBeNull();
		expect(await env.BLOBS.head(blockObjectKey(other.hash))).toBeNull();
		expect(expectOk(await status(user, session.upload_id), 200).missing).toEqual([good.hash]);
		await expectError(await commit(user, session.upload_id), 409, "MISSING_BLOCKS");
	});

	it("rejects a block over 8 MiB with 413 when Content-Length announces it", async () => {
		const [small] = (await makeBlocks(1)) as [Block];
		const session = await create(user, "huge.bin", [small]);
		await expectError(await putBlock(user, session.upload_id, small.hash, new Uint8Array(MAX_BLOCK_BYTES + 1)), 413, "PAYLOAD_TOO_LARGE");
		expect(expectOk(await status(user, session.upload_id), 200).missing).toEqual([small.hash]);
	});

	it("rejects a streamed block over 8 MiB with 413 while reading it", async () => {
		const [small] = (await makeBlocks(1)) as [Block];
		const session = await create(user, "huge-streamed.bin", [small]);
		let pieces = 0;
		const streamed = new ReadableStream<Uint8Array>({
			pull(controller) {
				if (pieces++ < 9) controller.enqueue(new Uint8Array(1024 * KiB));
				else controller.close();
			},
		});
		await expectError(await putBlock(user, session.upload_id, small.hash, streamed), 413, "PAYLOAD_TOO_LARGE");
		expect(expectOk(await status(user, session.upload_id), 200).missing).toEqual([small.hash]);
	});

	it("answers 404 for a block that is not in the upload's list", async () => {
		const [listed, unlisted] = (await makeBlocks(2)) as [Block, Block];
		const session = await create(user, "unlisted.bin", [listed]);
		await expectError(await putBlock(user, session.upload_id, unlisted.hash, unlisted.bytes), 404, "NOT_FOUND");
		expect(await env.BLOBS.head(blockObjectKey(unlisted.hash))).toBeNull();
	});

	it("rejects bytes whose length differs from the size the block list declared", async () => {
		const [block] = (await makeBlocks(1)) as [Block];
		const session = await create(user, "declared.bin", [{ hash: block.hash, size: block.size + 1 }]);
		await expectError(await putBlock(user, session.upload_id, block.hash, block.bytes), 400, "INVALID_REQUEST");
		expect(expectOk(await status(user, session.upload_id), 200).missing).toEqual([block.hash]);
	});

	it("accepts the same block twice, and two concurrent PUTs of one block", async () => {
		const blocks = (await makeBlocks(2)) as [Block, Block];
		const session = await create(user, "idempotent.bin", blocks);
		const [a, b] = blocks;
		expect((await putBlock(user, session.upload_id, a.hash, a.bytes)).status).toBe(204);
		expect((await putBlock(user, session.upload_id, a.hash, a.bytes)).status).toBe(204);
		const both = await Promise.all([
			putBlock(user, session.upload_id, b.hash, b.bytes),
			putBlock(user, session.upload_id, b.hash, b.bytes),
		]);
		expect(both.map((r) => r.status)).toEqual([204, 204]);
		expect(expectOk(await status(user, session.upload_id), 200).missing).toEqual([]);
		const committed = expectOk(await commit(user, session.upload_id), 201);
		const { bytes } = await download(user, committed.node.id);
		expect(bytesEqual(bytes, concat(blocks))).toBe(true);
	});
});

const putBatch = (user: TestUser, uploadId: string, hashes: string[], bytes: Body, headers: Record<string, string> = {}) =>
	api.putBlocks(user, uploadId, hashes, bytes, headers);

/** Sends `blocks` in one batch; it must be accepted. */
async function sendBatch(user: TestUser, uploadId: string, blocks: Block[]): Promise<void> {
	const res = await putBatch(
		user,
		uploadId,
		blocks.map((b) => b.hash),
		concat(blocks),
	);
	expect(res.status).toBe(204);
}

async function missingOf(user: TestUser, uploadId: string): Promise<string[]> {
	return expectOk(await status(user, uploadId), 200).missing;
}

describe("sending blocks in batches (PUT /v1/uploads/:id/blocks)", () => {
	let user: TestUser;
	beforeAll(async () => {
		user = await api.signup();
	});

	it("stores every block of one body, cut at the declared sizes, and the file commits byte-exact", async () => {
		// Sizes that straddle the server's 1 MiB reads and fit inside them.
		const blocks = [...(await makeBlocks(2, 700 * KiB)), ...(await makeBlocks(3, 1300 * KiB)), ...(await makeBlocks(2, 5))];
		const session = await create(user, "batch.bin", blocks);
		expect((await putBatch(user, session.upload_id, session.missing, concat(blocks))).status).toBe(204);
		expect(await missingOf(user, session.upload_id)).toEqual([]);
		const committed = expectOk(await commit(user, session.upload_id), 201);
		expect(committed.node.content_hash).toBe(await sha256(concat(blocks)));
		expect(bytesEqual((await download(user, committed.node.id)).bytes, concat(blocks))).toBe(true);
	});

	it("sends a subset in any order, and again (idempotent)", async () => {
		const blocks = (await makeBlocks(4)) as [Block, Block, Block, Block];
		const [a, b, c, d] = blocks;
		const session = await create(user, "subset.bin", blocks);
		expect((await putBatch(user, session.upload_id, [c.hash, a.hash], concat([c, a]))).status).toBe(204);
		expect(await missingOf(user, session.upload_id)).toEqual([b.hash, d.hash]);
		expect((await putBatch(user, session.upload_id, [a.hash, d.hash, b.hash], concat([a, d, b]))).status).toBe(204);
		expect(await missingOf(user, session.upload_id)).toEqual([]);
		expect(bytesEqual((await download(user, expectOk(await commit(user, session.upload_id), 201).node.id)).bytes, concat(blocks))).toBe(
			true,
		);
	});

	it("answers 422 at the first block that does not match its name, keeps the blocks before it and stores nothing after", async () => {
		const blocks = (await makeBlocks(3)) as [Block, Block, Block];
		const [a, b, c] = blocks;
		const [impostor] = (await makeBlocks(1)) as [Block];
		const session = await create(user, "batch-mismatch.bin", blocks);
		const res = await putBatch(user, session.upload_id, [a.hash, b.hash, c.hash], concat([a, impostor, c]));
		const envelope = await expectError(res, 422, "HASH_MISMATCH");
		expect(envelope.error.details).toEqual([{ expected: b.hash, actual: impostor.hash }]);
		expect(await missingOf(user, session.upload_id)).toEqual([b.hash, c.hash]);
		expect(await env.BLOBS.head(blockObjectKey(impostor.hash))).toBeNull();
		expect(await env.BLOBS.head(blockObjectKey(c.hash))).toBeNull();
	});

	it("refuses a body shorter or longer than its blocks, and keeps the whole blocks that arrived", async () => {
		const blocks = (await makeBlocks(2)) as [Block, Block];
		const [a, b] = blocks;
		const session = await create(user, "batch-length.bin", blocks);
		const whole = concat(blocks);
		// Without Content-Length (a stream), the server finds out while reading.
		const streamOf = (bytes: Uint8Array) =>
			new ReadableStream<Uint8Array>({
				start(controller) {
					controller.enqueue(bytes);
					controller.close();
				},
			});
		await expectError(
			await putBatch(user, session.upload_id, [a.hash, b.hash], streamOf(whole.slice(0, whole.length - 1))),
			400,
			"INVALID_REQUEST",
		);
		expect(await missingOf(user, session.upload_id)).toEqual([b.hash]);
		const longer = new Uint8Array(b.size + 1);
		longer.set(b.bytes);
		await expectError(await putBatch(user, session.upload_id, [b.hash], streamOf(longer)), 400, "INVALID_REQUEST");
		// With Content-Length, before reading anything.
		await expectError(await putBatch(user, session.upload_id, [b.hash], longer), 400, "INVALID_REQUEST");
	});

	it("refuses, before reading the body, a malformed or repeated Drive-Blocks, a block not in the list, and more than 100 MB", async () => {
		const blocks = (await makeBlocks(2)) as [Block, Block];
		const [a, b] = blocks;
		const [unlisted] = (await makeBlocks(1)) as [Block];
		const session = await create(user, "batch-refused.bin", blocks);
		const id = session.upload_id;
		await expectError(await putBatch(user, id, ["not-a-hash"], a.bytes), 400, "INVALID_REQUEST");
		await expectError(
			await api.request(`/v1/uploads/${id}/blocks`, { method: "PUT", token: user.token, body: a.bytes }),
			400,
			"INVALID_REQUEST",
		);
		await expectError(await putBatch(user, id, [a.hash, a.hash], concat([a, a])), 400, "INVALID_REQUEST");
		const refused = await expectError(await putBatch(user, id, [a.hash, unlisted.hash], concat([a, unlisted])), 404, "NOT_FOUND");
		expect(refused.error.details).toEqual([{ hash: unlisted.hash }]);
		expect(await env.BLOBS.head(blockObjectKey(a.hash))).toBeNull();
		// 13 declared blocks of 8 MiB add up to more than 100 MB.
		const big = Array.from({ length: 13 }, (_, i) => ({ hash: i.toString(16).padStart(64, "0"), size: MAX_BLOCK_BYTES }));
		const large = await create(user, "batch-large.bin", big);
		await expectError(
			await putBatch(
				user,
				large.upload_id,
				big.map((x) => x.hash),
				new Uint8Array(1),
			),
			413,
			"PAYLOAD_TOO_LARGE",
		);
		expect(await missingOf(user, id)).toEqual([a.hash, b.hash]);
	});

	it("answers 404 to another user's session and to a committed one", async () => {
		const blocks = (await makeBlocks(1)) as [Block];
		const session = await create(user, "batch-owner.bin", blocks);
		const other = await api.signup();
		await expectError(await putBatch(other, session.upload_id, [blocks[0].hash], blocks[0].bytes), 404, "NOT_FOUND");
		expect(await env.BLOBS.head(blockObjectKey(blocks[0].hash))).toBeNull();
		expect((await putBatch(user, session.upload_id, [blocks[0].hash], blocks[0].bytes)).status).toBe(204);
		expectOk(await commit(user, session.upload_id), 201);
		await expectError(await putBatch(user, session.upload_id, [blocks[0].hash], blocks[0].bytes), 404, "NOT_FOUND");
	});
});

const appendList = (user: TestUser, uploadId: string, body: Record<string, unknown>) => api.appendBlockList(user, uploadId, body);

describe("a block list in parts (more_blocks, POST /v1/uploads/:id/block-list)", () => {
	let user: TestUser;
	beforeAll(async () => {
		user = await api.signup();
	});

	const specs = (blocks: Block[]) => blocks.map(({ hash, size }) => ({ hash, size }));

	it("lists the blocks in parts, answers what to send of each part, and commits once the list is complete", async () => {
		const blocks = await makeBlocks(5);
		const size = blocks.reduce((n, b) => n + b.size, 0);
		// One block this user already has is never asked for.
		await uploadBlocks(user, "has-one.bin", [blocks[3] as Block]);
		const first = blocks.slice(0, 2);
		const created = expectOk(
			await api.createUpload(user, { parent_id: user.rootId, name: "parts.bin", size, blocks: specs(first), more_blocks: true }),
			201,
		);
		expect(created).toMatchObject({ missing: first.map((b) => b.hash), listed_bytes: 2 * 64 * KiB, more_blocks: true });
		// Blocks can go up while the list is still growing.
		expect((await putBatch(user, created.upload_id, created.missing, concat(first))).status).toBe(204);
		await expectError(await commit(user, created.upload_id), 400, "INVALID_REQUEST");

		const second = expectOk(
			await appendList(user, created.upload_id, { offset: 2 * 64 * KiB, blocks: specs(blocks.slice(2, 4)), more_blocks: true }),
			200,
		);
		expect(second).toMatchObject({ missing: [blocks[2]?.hash], listed_bytes: 4 * 64 * KiB, more_blocks: true });
		const last = expectOk(
			await appendList(user, created.upload_id, {
				offset: 4 * 64 * KiB,
				blocks: specs(blocks.slice(4)),
				more_blocks: false,
				content_hash: await sha256(concat(blocks)),
			}),
			200,
		);
		expect(last).toMatchObject({ missing: [blocks[4]?.hash], listed_bytes: size, more_blocks: false });
		const rest = [blocks[2] as Block, blocks[4] as Block];
		await sendBatch(user, created.upload_id, rest);
		expect(expectOk(await status(user, created.upload_id), 200)).toMatchObject({
			missing: [],
			listed_bytes: size,
			more_blocks: false,
		});
		const committed = expectOk(await commit(user, created.upload_id), 201);
		expect(committed.node.content_hash).toBe(await sha256(concat(blocks)));
		expect(bytesEqual((await download(user, committed.node.id)).bytes, concat(blocks))).toBe(true);
	});

	it("answers a repeated append again, and 409 with the right offset to any other", async () => {
		const blocks = await makeBlocks(3);
		const size = blocks.reduce((n, b) => n + b.size, 0);
		const created = await create(user, "replay.bin", specs(blocks.slice(0, 1)), { size, more_blocks: true });
		const part = { offset: 64 * KiB, blocks: specs(blocks.slice(1, 2)), more_blocks: true };
		const once = expectOk(await appendList(user, created.upload_id, part), 200);
		const twice = expectOk(await appendList(user, created.upload_id, part), 200);
		expect(twice).toEqual(once);
		const stale = await expectError(
			await appendList(user, created.upload_id, { ...part, blocks: specs(blocks.slice(2)) }),
			409,
			"UPLOAD_OFFSET_MISMATCH",
		);
		expect(stale.error.details).toEqual([{ offset: 2 * 64 * KiB }]);
		const end = { offset: 2 * 64 * KiB, blocks: specs(blocks.slice(2)), more_blocks: false };
		expectOk(await appendList(user, created.upload_id, end), 200);
		expect(expectOk(await appendList(user, created.upload_id, end), 200).more_blocks).toBe(false);
		await expectError(
			await appendList(user, created.upload_id, { offset: size, blocks: [], more_blocks: true }),
			409,
			"UPLOAD_OFFSET_MISMATCH",
		);
		expect(expectOk(await status(user, created.upload_id), 200)).toMatchObject({
			listed_bytes: size,
			more_blocks: false,
		});
	});

	it("keeps the list whole when two appends race for the same offset: one wins, the other leaves no rows", async () => {
		const blocks = await makeBlocks(4);
		const size = blocks.reduce((n, b) => n + b.size, 0);
		const created = await create(user, "race.bin", specs(blocks.slice(0, 1)), { size, more_blocks: true });
		const [x, y] = await Promise.all([
			appendList(user, created.upload_id, { offset: 64 * KiB, blocks: specs(blocks.slice(1, 2)), more_blocks: true }),
			appendList(user, created.upload_id, { offset: 64 * KiB, blocks: specs(blocks.slice(2, 3)), more_blocks: true }),
		]);
		expect([x.status, y.status].sort()).toEqual([200, 409]);
		const winner = x.status === 200 ? (blocks[1] as Block) : (blocks[2] as Block);
		const rows = await (
			await shardOfUser(user.id)
		)
			.prepare("SELECT idx, hash FROM upload_blocks WHERE upload_id = ? ORDER BY idx")
			.bind(created.upload_id)
			.all<{ idx: number; hash: string }>();
		expect(rows.results).toEqual([
			{ idx: 0, hash: blocks[0]?.hash },
			{ idx: 1, hash: winner.hash },
		]);
		// A stale append after the list moved on inserts nothing either.
		await expectError(
			await appendList(user, created.upload_id, { offset: 64 * KiB, blocks: specs(blocks.slice(3)), more_blocks: true }),
			409,
			"UPLOAD_OFFSET_MISMATCH",
		);
		const rest = blocks.filter((b) => b !== winner).slice(1);
		expectOk(await appendList(user, created.upload_id, { offset: 2 * 64 * KiB, blocks: specs(rest), more_blocks: false }), 200);
		const order = [blocks[0] as Block, winner, ...rest];
		await sendBatch(user, created.upload_id, order);
		const committed = expectOk(await commit(user, created.upload_id), 201);
		expect(bytesEqual((await download(user, committed.node.id)).bytes, concat(order))).toBe(true);
	});

	it("inserts nothing for an append decided on a stale read of the upload (the list moved on meanwhile)", async () => {
		const blocks = await makeBlocks(3);
		const size = blocks.reduce((n, b) => n + b.size, 0);
		const created = await create(user, "stale.bin", specs(blocks.slice(0, 1)), { size, more_blocks: true });
		const shard = await shardOfUser(user.id);
		const db = openShard(shard);
		const stale = await findUpload(db, user.id, created.upload_id);
		if (!stale) throw new Error("no upload row");
		expectOk(await appendList(user, created.upload_id, { offset: 64 * KiB, blocks: specs(blocks.slice(1, 2)), more_blocks: true }), 200);
		// The same append again, as a request that read the row before the one above landed.
		const late = await appendBlockList(
			db,
			stale,
			{
				offset: 64 * KiB,
				blocks: specs(blocks.slice(2)),
				moreBlocks: true,
				contentHash: null,
			},
			{ maxOpen: 100, maxListedBlocks: 200_000, quotaBytes: Number.MAX_SAFE_INTEGER },
		);
		expect(late).toMatchObject({ ok: false, error: { code: "UPLOAD_OFFSET_MISMATCH" } });
		const rows = await shard.prepare("SELECT idx, hash FROM upload_blocks WHERE upload_id = ? ORDER BY idx").bind(created.upload_id).all();
		expect(rows.results).toEqual([
			{ idx: 0, hash: blocks[0]?.hash },
			{ idx: 1, hash: blocks[1]?.hash },
		]);
	});

	it("refuses parts that go past the size or a complete list that falls short, and changes nothing", async () => {
		const blocks = await makeBlocks(3);
		const size = blocks.reduce((n, b) => n + b.size, 0);
		await expectError(await createSession(user, "past.bin", specs(blocks), { size: size - 1, more_blocks: true }), 400, "INVALID_REQUEST");
		// The same block twice with two sizes, in one list or across parts.
		const twice = [...specs(blocks.slice(0, 1)), { hash: blocks[0]?.hash ?? "", size: 1 }];
		await expectError(await createSession(user, "twice.bin", twice), 400, "INVALID_REQUEST");
		const created = await create(user, "short.bin", specs(blocks.slice(0, 1)), { size, more_blocks: true });
		await expectError(
			await appendList(user, created.upload_id, { offset: 64 * KiB, blocks: specs(blocks.slice(1, 2)), more_blocks: false }),
			400,
			"INVALID_REQUEST",
		);
		await expectError(
			await appendList(user, created.upload_id, {
				offset: 64 * KiB,
				blocks: specs([...blocks.slice(1), ...blocks.slice(0, 1)]),
				more_blocks: true,
			}),
			400,
			"INVALID_REQUEST",
		);
		await expectError(
			await appendList(user, created.upload_id, { offset: 64 * KiB, blocks: [{ hash: blocks[0]?.hash, size: 1 }], more_blocks: true }),
			400,
			"INVALID_REQUEST",
		);
		expect(expectOk(await status(user, created.upload_id), 200)).toMatchObject({
			listed_bytes: 64 * KiB,
			more_blocks: true,
		});
		await expectError(await appendList(user, created.upload_id, { offset: "x", blocks: [] }), 400, "INVALID_REQUEST");
		const other = await api.signup();
		await expectError(await appendList(other, created.upload_id, { offset: 64 * KiB, blocks: specs(blocks.slice(1)) }), 404, "NOT_FOUND");
	});
});

describe("resuming and committing", () => {
	let user: TestUser;
	beforeAll(async () => {
		user = await api.signup();
	});

	it("reports what is still missing, and 409 MISSING_BLOCKS lists exactly those blocks", async () => {
		const blocks = await makeBlocks(5);
		const session = await create(user, "resume.bin", blocks);
		expect(session.missing).toHaveLength(5);
		for (const i of [0, 2, 3]) await sendBlock(user, session.upload_id, blocks[i] as Block);
		const stillMissing = [blocks[1], blocks[4]].map((b) => (b as Block).hash);
		const resumed = expectOk(await status(user, session.upload_id), 200);
		expect(resumed).toMatchObject({ upload_id: session.upload_id, missing: stillMissing, expires_at: session.expires_at, committed: null });
		const refused = await expectError(await commit(user, session.upload_id), 409, "MISSING_BLOCKS");
		expect([...(refused.error.details as string[])].sort()).toEqual([...stillMissing].sort());
		for (const i of [1, 4]) await sendBlock(user, session.upload_id, blocks[i] as Block);
		const committed = expectOk(await commit(user, session.upload_id), 201);
		const data = concat(blocks);
		expect(committed.node).toMatchObject({ name: "resume.bin", size: data.length, content_hash: await sha256(data) });
		expect(committed.conflict).toBeNull();
		const { bytes } = await download(user, committed.node.id);
		expect(bytesEqual(bytes, data)).toBe(true);
		const stored = await versionBlocks(user.id, committed.version.id);
		expect(stored.map((b) => b.hash)).toEqual(blocks.map((b) => b.hash));
	});

	it("is idempotent: committing again answers the same version", async () => {
		const blocks = await makeBlocks(2);
		const session = await create(user, "twice.bin", blocks);
		for (const b of blocks) await sendBlock(user, session.upload_id, b);
		const first = expectOk(await commit(user, session.upload_id), 201);
		const second = expectOk(await commit(user, session.upload_id), 201);
		expect(second.version.id).toBe(first.version.id);
		expect(second.node.id).toBe(first.node.id);
		const after = expectOk(await status(user, session.upload_id), 200);
		expect(after).toMatchObject({ missing: [], committed: { node_id: first.node.id, version_id: first.version.id } });
		// Nothing is left to send to a committed session.
		await expectError(await putBlock(user, session.upload_id, (blocks[0] as Block).hash, (blocks[0] as Block).bytes), 404, "NOT_FOUND");
	});

	it("commits a new version when the base is the head, and a conflicted copy when it is stale", async () => {
		const [v1, v2, v3] = (await Promise.all([makeBlocks(1), makeBlocks(1), makeBlocks(1)])) as [Block[], Block[], Block[]];
		const first = await uploadBlocks(user, "report.txt", v1);
		const second = await uploadBlocks(user, "report.txt", v2, { base_version_id: first.version.id }, 200);
		expect(second.node.id).toBe(first.node.id);
		expect(second.conflict).toBeNull();
		const stale = await uploadBlocks(user, "report.txt", v3, { base_version_id: first.version.id });
		expect(stale.conflict).toEqual({ node_id: first.node.id, reason: "stale_base" });
		expect(stale.node.id).not.toBe(first.node.id);
		expect(stale.node.name).toMatch(/^report \(conflicted copy Test laptop \d{4}-\d{2}-\d{2} \d{6}\)\.txt$/);
		const head = await api.node(user, first.node.id);
		expect(head.version_id).toBe(second.version.id);
		const copy = await download(user, stale.node.id);
		expect(bytesEqual(copy.bytes, concat(v3))).toBe(true);
	});

	it("answers VERSION_CONFLICT when asked to fail: at commit for a base that went stale, at creation for one already stale", async () => {
		const [v1, v2, v3] = (await Promise.all([makeBlocks(1), makeBlocks(1), makeBlocks(1)])) as [Block[], Block[], Block[]];
		const first = await uploadBlocks(user, "strict.txt", v1);
		const strict = { base_version_id: first.version.id, on_conflict: "fail" };
		const session = await create(user, "strict.txt", v3, strict);
		for (const b of v3) await sendBlock(user, session.upload_id, b);
		await uploadBlocks(user, "strict.txt", v2, { base_version_id: first.version.id }, 200);
		await expectError(await commit(user, session.upload_id), 409, "VERSION_CONFLICT");
		// The same plan decides before a byte is sent: nothing to upload in vain.
		await expectError(await createSession(user, "strict.txt", v3, strict), 409, "VERSION_CONFLICT");
	});
});

describe("abandoning and ownership", () => {
	let owner: TestUser;
	let other: TestUser;
	beforeAll(async () => {
		[owner, other] = await Promise.all([api.signup(), api.signup()]);
	});

	it("deletes a session: 204, then every route answers 404", async () => {
		const blocks = await makeBlocks(2);
		const session = await create(owner, "abandon.bin", blocks);
		await sendBlock(owner, session.upload_id, blocks[0] as Block);
		const res = await api.cancelUpload(owner, session.upload_id);
		expect(res.status).toBe(204);
		await expectError(await status(owner, session.upload_id), 404, "NOT_FOUND");
		await expectError(await putBlock(owner, session.upload_id, (blocks[1] as Block).hash, (blocks[1] as Block).bytes), 404, "NOT_FOUND");
		await expectError(await commit(owner, session.upload_id), 404, "NOT_FOUND");
		await expectError(await api.cancelUpload(owner, session.upload_id), 404, "NOT_FOUND");
	});

	it("hides a session from every other user with 404 on every route", async () => {
		const blocks = await makeBlocks(2);
		const session = await create(owner, "private.bin", blocks);
		const [a, b] = blocks as [Block, Block];
		await sendBlock(owner, session.upload_id, a);
		await expectError(await status(other, session.upload_id), 404, "NOT_FOUND");
		await expectError(await putBlock(other, session.upload_id, b.hash, b.bytes), 404, "NOT_FOUND");
		await expectError(await commit(other, session.upload_id), 404, "NOT_FOUND");
		await expectError(await api.cancelUpload(other, session.upload_id), 404, "NOT_FOUND");
		// The owner's session is untouched by all that.
		expect(expectOk(await status(owner, session.upload_id), 200).missing).toEqual([b.hash]);
		await sendBlock(owner, session.upload_id, b);
		expectOk(await commit(owner, session.upload_id), 201);
	});

	it("requires a bearer token", async () => {
		const res = await api.request("/v1/uploads", { method: "POST", json: { parent_id: owner.rootId, name: "x", size: 0, blocks: [] } });
		await expectError(res, 401, "UNAUTHENTICATED");
	});
});

runAuthSuite(api, "upload sessions", async (user) => ({
	path: `/v1/uploads/${(await create(user, "auth.bin", await makeBlocks(1))).upload_id}`,
}));

describe("cleaning up expired sessions", () => {
	it("deletes blocks only expired sessions referenced, and keeps blocks a file or a live session references", async () => {
		const [alice, bob] = await Promise.all([api.signup(), api.signup()]);
		const [onlyExpired, inFile, inLiveSession] = (await makeBlocks(3)) as [Block, Block, Block];
		// Alice commits a file that references `inFile`.
		await uploadBlocks(alice, "kept.bin", [inFile]);
		// Bob's session lists `inLiveSession`; it stays live past the cleanup time.
		const bobs = await create(bob, "live.bin", [inLiveSession]);
		const bobShard = await shardOfUser(bob.id);
		await bobShard
			.prepare("UPDATE uploads SET expires_at = ? WHERE id = ?")
			.bind(new Date(Date.now() + 48 * 3600_000).toISOString(), bobs.upload_id)
			.run();
		// Alice's abandoned session received all three blocks.
		const abandoned = await create(alice, "abandoned.bin", [onlyExpired, inFile, inLiveSession]);
		expect(abandoned.missing).toEqual([onlyExpired.hash, inLiveSession.hash]);
		for (const b of [onlyExpired, inFile, inLiveSession]) await sendBlock(alice, abandoned.upload_id, b);
		for (const b of [onlyExpired, inFile, inLiveSession]) expect(await env.BLOBS.head(blockObjectKey(b.hash))).not.toBeNull();

		const later = Date.now() + 25 * 3600_000;
		const result = await cleanupUploads(env, env.BLOBS, later);
		expect(result.uploads).toBeGreaterThanOrEqual(2); // Alice's two sessions (the committed one too)
		const collected = await collectBlocks(env, env.BLOBS, { now: later, graceMs: 0 });
		expect(collected.failures).toEqual([]);
		expect(collected.deleted).toBeGreaterThanOrEqual(1);

		expect(await env.BLOBS.head(blockObjectKey(onlyExpired.hash))).toBeNull();
		expect(await env.BLOBS.head(blockObjectKey(inFile.hash))).not.toBeNull();
		expect(await env.BLOBS.head(blockObjectKey(inLiveSession.hash))).not.toBeNull();
		const aliceShard = await shardOfUser(alice.id);
		const left = await aliceShard
			.prepare("SELECT COUNT(*) AS n FROM uploads WHERE id = ?")
			.bind(abandoned.upload_id)
			.first<{ n: number }>();
		expect(left?.n).toBe(0);
		for (const table of ["upload_blocks", "upload_received"]) {
			const rows = await aliceShard
				.prepare(`SELECT COUNT(*) AS n FROM ${table} WHERE upload_id = ?`)
				.bind(abandoned.upload_id)
				.first<{ n: number }>();
			expect(rows?.n).toBe(0);
		}
		// The file still downloads, and Bob's live session still works.
		const files = expectOk(await api.children(alice, alice.rootId), 200);
		const kept = files.items.find((n) => n.name === "kept.bin");
		expect(kept).toBeDefined();
		expect(bytesEqual((await download(alice, kept?.id ?? "")).bytes, inFile.bytes)).toBe(true);
		expect(expectOk(await status(bob, bobs.upload_id), 200).missing).toEqual([inLiveSession.hash]);
		await sendBlock(bob, bobs.upload_id, inLiveSession);
		expectOk(await commit(bob, bobs.upload_id), 201);
	});
});
