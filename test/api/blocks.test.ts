/**
 * Storage properties of the block store behind PUT and GET content:
 * encryption at rest, deduplication, and integrity on the way out.
 */
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { blockObjectKey } from "../../src/shared/blocks";
import { chunkBoundaries } from "../../src/shared/chunking";
import { bytesEqual, indexOfBytes, randomBytes, sha256 } from "../support/bytes";
import { expectError } from "../support/envelope";
import type { Body, TestUser } from "../support/harness";
import { api, blobCount, blobKeys, versionBlocks } from "./helpers";

/** PUT content, asserting `status`. */
const upload = (user: TestUser, parentId: string, name: string, data: Body, status = 201) =>
	api.upload(user, parentId, name, data, { status });
/** GET content with `headers`, asserting `status`. */
const download = (user: TestUser, id: string, headers: Record<string, string> = {}, status = 200) =>
	api.download(user, id, { headers, status });

const MiB = 1024 * 1024;
const MARKER = new TextEncoder().encode("DRIVE-PLAINTEXT-MARKER-7f3a9c51");

/** The bytes of every object in the bucket, by key. */
async function allObjects(): Promise<Map<string, Uint8Array>> {
	const out = new Map<string, Uint8Array>();
	for (const key of await blobKeys()) {
		const object = await env.BLOBS.get(key);
		if (!object) throw new Error(`object ${key} vanished`);
		out.set(key, new Uint8Array(await object.arrayBuffer()));
	}
	return out;
}

/** The marker repeated: compresses extremely well. */
function markerText(size: number): Uint8Array {
	const out = new Uint8Array(size);
	for (let i = 0; i < size; i += MARKER.length) out.set(MARKER.subarray(0, Math.min(MARKER.length, size - i)), i);
	return out;
}

/** Random bytes with the marker planted every 32 KiB: does not compress. */
function markedRandom(size: number, seed: number): Uint8Array {
	const out = randomBytes(size, seed);
	for (let i = 0; i + MARKER.length <= size; i += 32 * 1024) out.set(MARKER, i);
	return out;
}

/** Overwrites a stored block with one byte flipped in the middle. */
async function corrupt(hash: string): Promise<void> {
	const key = blockObjectKey(hash);
	const object = await env.BLOBS.get(key);
	if (!object) throw new Error(`no object ${key}`);
	const bytes = new Uint8Array(await object.arrayBuffer());
	const middle = Math.floor(bytes.length / 2);
	bytes[middle] = (bytes[middle] ?? 0) ^ 0x01;
	await env.BLOBS.put(key, bytes);
}

/** Uploads a file of several blocks, with data no other test uses. */
async function multiBlock(
	user: TestUser,
	seed: number,
): Promise<{ id: string; data: Uint8Array; blocks: { offset: number; size: number; hash: string }[] }> {
	const data = randomBytes(3 * MiB, seed);
	const committed = await upload(user, user.rootId, `multi-${seed}.bin`, data);
	const blocks = await versionBlocks(user.id, committed.version.id);
	expect(blocks.length).toBeGreaterThanOrEqual(2);
	return { id: committed.node.id, data, blocks };
}

describe("blocks: encryption at rest", () => {
	it("never stores the plaintext of a compressible or an incompressible file", async () => {
		const user = await api.signup();
		const compressible = markerText(600 * 1024);
		const incompressible = markedRandom(2 * MiB, 0xc0ffee);
		const a = await upload(user, user.rootId, "marker.txt", compressible);
		const b = await upload(user, user.rootId, "marked.bin", incompressible);
		const sample = incompressible.slice(100_000, 100_032);
		const objects = await allObjects();
		expect(objects.size).toBeGreaterThanOrEqual(2);
		for (const [key, bytes] of objects) {
			expect(indexOfBytes(bytes, MARKER), key).toBe(-1);
			expect(indexOfBytes(bytes, sample), key).toBe(-1);
		}
		// The files still read back.
		expect(bytesEqual((await download(user, a.node.id)).bytes, compressible)).toBe(true);
		expect(bytesEqual((await download(user, b.node.id)).bytes, incompressible)).toBe(true);
	});

	it("stores each block under blocks/<2 hex>/<sha-256 of its plaintext>, in the DRB format", async () => {
		const user = await api.signup();
		const data = randomBytes(2 * MiB, 0xadd7);
		const committed = await upload(user, user.rootId, "addressed.bin", data);
		const blocks = await versionBlocks(user.id, committed.version.id);
		expect(blocks.map((b) => b.size)).toEqual(chunkBoundaries(data));
		for (const block of blocks) {
			expect(block.hash).toBe(await sha256(data.subarray(block.offset, block.offset + block.size)));
			const object = await env.BLOBS.get(`blocks/${block.hash.slice(0, 2)}/${block.hash}`);
			expect(object).not.toBeNull();
			const stored = new Uint8Array((await object?.arrayBuffer()) ?? new ArrayBuffer(0));
			expect([...stored.subarray(0, 4)]).toEqual([0x44, 0x52, 0x42, 1]);
		}
	});

	it("compresses a compressible block before encrypting it, and not an incompressible one", async () => {
		const user = await api.signup();
		const compressible = markerText(400 * 1024);
		const random = randomBytes(400 * 1024, 0x2a2a);
		const a = await upload(user, user.rootId, "squeeze.txt", compressible);
		const b = await upload(user, user.rootId, "noise.bin", random);
		const [blockA] = await versionBlocks(user.id, a.version.id);
		const [blockB] = await versionBlocks(user.id, b.version.id);
		const storedA = await env.BLOBS.head(blockObjectKey(blockA?.hash ?? ""));
		const storedB = await env.BLOBS.head(blockObjectKey(blockB?.hash ?? ""));
		expect(storedA?.size ?? Infinity).toBeLessThan(compressible.length / 10);
		expect(storedB?.size ?? 0).toBeGreaterThan(random.length);
	});
});

describe("blocks: deduplication", () => {
	it("adds no objects for a second upload of the same content, by the same user or another", async () => {
		const owner = await api.signup();
		const other = await api.signup();
		const data = randomBytes(2 * MiB + 12345, 0xdedd);
		const first = await upload(owner, owner.rootId, "original.bin", data);
		const afterFirst = await blobCount();
		expect(afterFirst).toBeGreaterThanOrEqual(chunkBoundaries(data).length);

		const again = await upload(owner, owner.rootId, "copy.bin", data);
		expect(again.node.content_hash).toBe(first.node.content_hash);
		expect(await blobCount()).toBe(afterFirst);

		const theirs = await upload(other, other.rootId, "theirs.bin", data);
		expect(theirs.node.content_hash).toBe(first.node.content_hash);
		expect(await blobCount()).toBe(afterFirst);
		expect(bytesEqual((await download(other, theirs.node.id)).bytes, data)).toBe(true);

		// A new version with the same content adds nothing either.
		await upload(owner, owner.rootId, "original.bin", data, 200);
		expect(await blobCount()).toBe(afterFirst);
	});

	it("stores only the blocks around an edit in the middle of a large file", async () => {
		const user = await api.signup();
		const data = randomBytes(6 * MiB, 0xed17);
		const blocksBefore = chunkBoundaries(data).length;
		expect(blocksBefore).toBeGreaterThanOrEqual(4);
		await upload(user, user.rootId, "edited.bin", data);
		const before = await blobCount();
		const edited = data.slice();
		const middle = Math.floor(edited.length / 2);
		edited[middle] = (edited[middle] ?? 0) ^ 0xff;
		const committed = await upload(user, user.rootId, "edited.bin", edited, 200);
		const added = (await blobCount()) - before;
		expect(added).toBeGreaterThanOrEqual(1);
		expect(added).toBeLessThanOrEqual(2);
		expect(await sha256((await download(user, committed.node.id)).bytes)).toBe(await sha256(edited));
	});
});

describe("blocks: integrity", () => {
	it("answers a 500 envelope, never bad bytes, when the first block is corrupted", async () => {
		const user = await api.signup();
		const file = await multiBlock(user, 0xbad1);
		await corrupt(file.blocks[0]?.hash ?? "");
		const res = await api.request(`/v1/files/${file.id}/content`, { token: user.token });
		const envelope = await expectError(res, 500, "INTERNAL");
		// Internals (hashes, reasons) do not leak.
		expect(envelope.error.message).not.toMatch(/[0-9a-f]{64}|integrity|block/i);
		// A range inside the first block fails the same way.
		await expectError(
			await api.request(`/v1/files/${file.id}/content`, { token: user.token, headers: { Range: "bytes=0-99" } }),
			500,
			"INTERNAL",
		);
	});

	it("errors the body stream, never yielding the corrupted bytes, when a later block is corrupted", async () => {
		const user = await api.signup();
		const file = await multiBlock(user, 0xbad2);
		const bad = file.blocks[1];
		if (!bad) throw new Error("need a second block");
		await corrupt(bad.hash);
		const res = await api.request(`/v1/files/${file.id}/content`, { token: user.token });
		expect(res.status).toBe(200);
		const reader = res.body?.getReader();
		if (!reader) throw new Error("no body");
		const received: Uint8Array[] = [];
		let failure: unknown = null;
		try {
			for (;;) {
				const { done, value } = await reader.read();
				if (done) break;
				received.push(value);
			}
		} catch (err) {
			failure = err;
		}
		expect(failure).not.toBeNull();
		const total = received.reduce((n, c) => n + c.length, 0);
		expect(total).toBeLessThanOrEqual(bad.offset);
		const got = new Uint8Array(total);
		let at = 0;
		for (const chunk of received) {
			got.set(chunk, at);
			at += chunk.length;
		}
		expect(bytesEqual(got, file.data.subarray(0, total))).toBe(true);
	});

	it("also rejects reading the whole body at once when a later block is corrupted", async () => {
		const user = await api.signup();
		const file = await multiBlock(user, 0xbad3);
		await corrupt(file.blocks.at(-1)?.hash ?? "");
		const res = await api.request(`/v1/files/${file.id}/content`, { token: user.token });
		await expect(res.arrayBuffer()).rejects.toThrow();
	});

	it("answers 500 for a range that starts inside a corrupted later block, and serves ranges before it", async () => {
		const user = await api.signup();
		const file = await multiBlock(user, 0xbad4);
		const bad = file.blocks[1];
		if (!bad) throw new Error("need a second block");
		await corrupt(bad.hash);
		const res = await api.request(`/v1/files/${file.id}/content`, {
			token: user.token,
			headers: { Range: `bytes=${bad.offset + 10}-${bad.offset + 20}` },
		});
		await expectError(res, 500, "INTERNAL");
		const before = await download(user, file.id, { Range: `bytes=0-${bad.offset - 1}` }, 206);
		expect(bytesEqual(before.bytes, file.data.subarray(0, bad.offset))).toBe(true);
	});

	it("answers a 500 envelope when a block is missing from the bucket", async () => {
		const user = await api.signup();
		const file = await multiBlock(user, 0xbad5);
		await env.BLOBS.delete(blockObjectKey(file.blocks[0]?.hash ?? ""));
		await expectError(await api.request(`/v1/files/${file.id}/content`, { token: user.token }), 500, "INTERNAL");
	});
});
