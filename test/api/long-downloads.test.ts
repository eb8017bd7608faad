/**
 * Downloads of any size within one invocation's subrequest limit
 * (docs/decisions/0032-hot-blocks-and-long-downloads.md): with
 * MAX_BLOCKS_PER_INVOCATION set very low, a file of many blocks still comes
 * back whole and byte for byte, Ranges and If-Range keep working, and no
 * invocation reads more blocks than the cap (each budget refuses the block
 * past it, so a regression fails loudly).
 */
import { createExecutionContext, waitOnExecutionContext } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { clearFaults, operationCounts, setFaults } from "../../src/shared/drills";
import { blockObjectKey } from "../../src/shared/blocks";
import worker from "../../workers/api/index";
import { peakBlockReads } from "../../workers/api/services/egress";
import { concat, randomBytes, readUntilBroken, sha256 } from "../support/bytes";
import { expectOk, Harness, type TestUser } from "../support/harness";
import { bytesEqual, expectError } from "./helpers";

const CAP = 3;
const BLOCKS = 20;
const BLOCK_BYTES = 4096;

/** The api worker with MAX_BLOCKS_PER_INVOCATION at {@link CAP}. */
const tight = new Harness(async (request) => {
	const ctx = createExecutionContext();
	const res = await worker.fetch(request, { ...env, MAX_BLOCKS_PER_INVOCATION: String(CAP) } as unknown as Env, ctx);
	await waitOnExecutionContext(ctx);
	return res;
}, "http://drive.test");

interface Block {
	hash: string;
	size: number;
	bytes: Uint8Array;
}

let user: TestUser;
let blocks: Block[];
let whole: Uint8Array;
let fileId: string;
let versionId: string;

beforeAll(async () => {
	user = await tight.signup();
	blocks = [];
	for (let i = 0; i < BLOCKS; i++) {
		const bytes = randomBytes(BLOCK_BYTES, 7000 + i);
		blocks.push({ hash: await sha256(bytes), size: BLOCK_BYTES, bytes });
	}
	whole = concat(blocks.map((b) => b.bytes));
	// An upload session takes any block boundaries: twenty small blocks make a long download at a cap of three.
	const session = expectOk(
		await tight.createUpload(user, {
			parent_id: user.rootId,
			name: "long.bin",
			size: whole.byteLength,
			blocks: blocks.map(({ hash, size }) => ({ hash, size })),
		}),
		201,
	);
	for (const block of blocks) expect((await tight.putBlock(user, session.upload_id, block.hash, block.bytes)).status).toBe(204);
	const committed = expectOk(await tight.commitUpload(user, session.upload_id), 201);
	fileId = committed.node.id;
	versionId = committed.version.id;
});

afterEach(() => clearFaults());

describe("a download of more blocks than one invocation may read", () => {
	it("returns the whole file in consecutive segments, no invocation past the cap", async () => {
		peakBlockReads(true);
		operationCounts(true);
		const { res, bytes } = await tight.download(user, fileId);
		expect(res.headers.get("Content-Length")).toBe(String(whole.byteLength));
		expect(bytesEqual(bytes, whole)).toBe(true);
		expect(peakBlockReads()).toBe(CAP);
		expect(operationCounts()["BLOBS r2.get"]).toBe(BLOCKS);
	});

	it("serves a range across segments, and If-Range with the current version", async () => {
		const start = BLOCK_BYTES * 2 + 17;
		const end = BLOCK_BYTES * 15 + 100;
		peakBlockReads(true);
		const { res, bytes } = await tight.download(user, fileId, {
			headers: { Range: `bytes=${start}-${end}`, "If-Range": `"${versionId}"` },
			status: 206,
		});
		expect(res.headers.get("Content-Range")).toBe(`bytes ${start}-${end}/${whole.byteLength}`);
		expect(bytesEqual(bytes, whole.subarray(start, end + 1))).toBe(true);
		expect(peakBlockReads()).toBeLessThanOrEqual(CAP);
	});

	it("serves a short range within one invocation", async () => {
		peakBlockReads(true);
		operationCounts(true);
		const { bytes } = await tight.download(user, fileId, {
			headers: { Range: `bytes=${BLOCK_BYTES}-${BLOCK_BYTES * 2 - 1}` },
			status: 206,
		});
		expect(bytesEqual(bytes, whole.subarray(BLOCK_BYTES, BLOCK_BYTES * 2))).toBe(true);
		expect(operationCounts()["BLOBS r2.get"]).toBe(1);
	});

	it("aborts the body when a later segment's block cannot be read, never sending wrong bytes", async () => {
		const late = blocks[11];
		if (!late) throw new Error("no block 11");
		setFaults([{ target: "r2.get", effect: "error", match: blockObjectKey(late.hash) }]);
		const res = await tight.request(`/v1/files/${fileId}/content`, { token: user.token });
		expect(res.status).toBe(200);
		const received = await readUntilBroken(res);
		expect(received.error).not.toBeNull();
		expect(received.bytes.byteLength).toBeLessThan(whole.byteLength);
		expect(bytesEqual(received.bytes, whole.subarray(0, received.bytes.byteLength))).toBe(true);
	});

	it("answers 503 UNAVAILABLE with the envelope when the first block cannot be read", async () => {
		const first = blocks[0];
		if (!first) throw new Error("no block 0");
		setFaults([{ target: "r2.get", effect: "error", match: blockObjectKey(first.hash) }]);
		const res = await tight.request(`/v1/files/${fileId}/content`, { token: user.token });
		await expectError(res, 503, "UNAVAILABLE");
		expect(res.headers.get("Retry-After")).toBe("1");
	});
});
