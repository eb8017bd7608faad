/// <reference types="node" />
/**
 * Deduplication end to end: the same content uploaded twice adds no block
 * object to R2 the second time, and the second upload through a session
 * sends zero block bytes.
 *
 * How R2 objects are read: the local stack keeps R2 under its `--persist-to`
 * directory, as miniflare's bucket: one SQLite metadata database (table
 * `_mf_objects`, one row per object key, naming the blob file that holds
 * its body) and one file per body (`v3/r2/<bucket>/blobs/`). The test looks
 * only at the keys of its own blocks (`blocks/<hash>`, docs/storage.md), so
 * other files' uploads running beside it do not count: for each key, the
 * row and its blob file, which would also catch an overwrite that leaked
 * its old body.
 */
import * as tus from "tus-js-client";
import { beforeAll, describe, expect, inject, it } from "vitest";
import { blockObjectKey } from "../../src/shared/blocks";
import { expectOk, type TestUser } from "../support/harness";
import {
	blobExists,
	blocksOf,
	eventually,
	generate,
	r2Objects,
	sha256Of,
	stackHarness,
	versionBlocksOnDisk,
	type Block,
} from "../support/stack";

const h = stackHarness();
const MiB = 1024 * 1024;
const SIZE = 24 * MiB;

/** The blob file of each of `blocks`' objects, by key; a key with no object is absent. */
function blobsOf(persistTo: string, blocks: Block[]): Map<string, string> {
	const keys = new Set(blocks.map((b) => blockObjectKey(b.hash)));
	return new Map(
		r2Objects(persistTo, "blocks/")
			.filter((o) => keys.has(o.key))
			.map((o) => [o.key, o.blob]),
	);
}

/**
 * One upload through a session: create, PUT the missing blocks (4 at a
 * time), commit. Returns the commit and the block bytes sent.
 */
async function sessionUpload(user: TestUser, name: string, data: Buffer, blocks: Block[]) {
	const session = expectOk(
		await h.createUpload(user, {
			parent_id: user.rootId,
			name,
			size: data.length,
			blocks: blocks.map(({ hash, size }) => ({ hash, size })),
			content_hash: sha256Of(data),
		}),
		201,
	);
	const byHash = new Map(blocks.map((b) => [b.hash, b]));
	const queue = [...session.missing];
	let blockBytes = 0;
	const worker = async () => {
		for (let hash = queue.shift(); hash !== undefined; hash = queue.shift()) {
			const block = byHash.get(hash);
			if (!block) throw new Error(`asked for unknown block ${hash}`);
			const body = data.subarray(block.offset, block.offset + block.size);
			expect((await h.putBlock(user, session.upload_id, hash, body)).status).toBe(204);
			blockBytes += body.length;
		}
	};
	await Promise.all([worker(), worker(), worker(), worker()]);
	const committed = await h.commitUpload(user, session.upload_id);
	return { missing: session.missing.length, blockBytes, status: committed.status, node: committed.body.node };
}

describe("deduplication through the local stack", () => {
	const persistTo = inject("persistTo");
	let user: TestUser;
	let data: Buffer;
	let blocks: Block[];
	let sha256: string;

	beforeAll(async () => {
		user = await h.signup("dedup e2e");
		data = generate(SIZE, "dedup-e2e");
		sha256 = sha256Of(data);
		blocks = blocksOf(data);
	});

	it("adds no block object when the same content is uploaded a second time, and the second session sends no block bytes", async () => {
		const distinct = new Set(blocks.map((b) => b.hash)).size;
		expect(blobsOf(persistTo, blocks).size).toBe(0);

		const first = await sessionUpload(user, "first.bin", data, blocks);
		expect(first.status).toBe(201);
		expect(first.missing).toBe(distinct);
		expect(first.blockBytes).toBe(SIZE);
		expect(first.node.content_hash).toBe(sha256);
		const afterFirst = blobsOf(persistTo, blocks);
		expect(afterFirst.size).toBe(distinct);
		for (const blob of afterFirst.values()) expect(blobExists(persistTo, blob)).toBe(true);

		const second = await sessionUpload(user, "second.bin", data, blocks);
		expect(second.status).toBe(201);
		expect(second.missing).toBe(0);
		expect(second.blockBytes).toBe(0);
		expect(second.node.content_hash).toBe(sha256);
		expect(second.node.id).not.toBe(first.node.id);
		// The same objects, with the same bodies: nothing was written again.
		expect(blobsOf(persistTo, blocks)).toEqual(afterFirst);
	});

	it("adds no block object when the same bytes come again through tus, which rewrites each block under the same key", async () => {
		const before = blobsOf(persistTo, blocks);
		expect(before.size).toBe(new Set(blocks.map((b) => b.hash)).size);
		const nodeId = await new Promise<string>((resolve, reject) => {
			const upload = new tus.Upload(data, {
				endpoint: h.url("/v1/tus"),
				chunkSize: 8 * MiB,
				headers: { Authorization: `Bearer ${user.token}` },
				metadata: { filename: "third.bin", parent_id: user.rootId },
				retryDelays: null,
				onSuccess: ({ lastResponse }) => resolve(lastResponse.getHeader("Drive-Node-Id") ?? ""),
				onError: reject,
			});
			upload.start();
		});
		const node = await h.node(user, nodeId);
		expect(node.content_hash).toBe(sha256);
		// The version is made of exactly these blocks, and they are the same keys as before.
		expect(versionBlocksOnDisk(persistTo, node.version_id ?? "").map((b) => b.hash)).toEqual(blocks.map((b) => b.hash));
		const after = blobsOf(persistTo, blocks);
		expect([...after.keys()].sort()).toEqual([...before.keys()].sort());
		for (const blob of after.values()) expect(blobExists(persistTo, blob)).toBe(true);
		// A rewritten key's old body is removed after the put answers: it must go.
		const replaced = [...before].filter(([key, blob]) => after.get(key) !== blob).map(([, blob]) => blob);
		await eventually("the old bodies of rewritten blocks to be deleted", () =>
			replaced.every((blob) => !blobExists(persistTo, blob)) ? true : undefined,
		);
	});
});
