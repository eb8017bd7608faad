/**
 * R2 failing under the block store (docs/decisions/0032-hot-blocks-and-long-downloads.md),
 * injected with the failure drills (src/shared/drills.ts):
 * - a put refused for the key's write rate (R2 error 10058, about one write
 *   per second per key) is taken as written when a fresh copy is there, is
 *   retried briefly otherwise, and ends in 503 UNAVAILABLE with Retry-After,
 *   never a 500 and never a missing block;
 * - a put failing at block k of a multi-block upload (plain PUT, tus, an
 *   upload session) answers a retryable 503, leaves no node and no version,
 *   and the retry or the resume completes;
 * - a get failing mid-download aborts the body (long-downloads.test.ts has
 *   the segmented case), and the download resumes with Range + If-Range.
 */
import { afterEach, describe, expect, it } from "vitest";
import { blockObjectKey } from "../../src/shared/blocks";
import { clearFaults, faultsFired, operationCounts, setFaults } from "../../src/shared/drills";
import { PUT_ATTEMPTS } from "../../workers/api/services/block-store";
import { concat, readUntilBroken } from "../support/bytes";
import { expectOk, type TestUser } from "../support/harness";
import { api, bytesEqual, expectError, listAll, put, randomBytes, sha256, signup, versionBlocks } from "./helpers";

const KiB = 1024;
const MiB = 1024 * KiB;

afterEach(() => clearFaults());

/** Whether `user`'s root folder holds a node named `name`. */
async function hasNode(user: TestUser, name: string): Promise<boolean> {
	return (await listAll(user, user.rootId)).some((node) => node.name === name);
}

describe("a popular block's put refused for the key's write rate", () => {
	it("takes a fresh copy already in R2 as written", async () => {
		const [alice, bob] = await Promise.all([signup(), signup()]);
		const bytes = randomBytes(8 * KiB, 101);
		const key = blockObjectKey(await sha256(bytes));
		await api.upload(alice, alice.rootId, "installer.bin", bytes);
		setFaults([{ target: "r2.put", effect: "rate-limit", match: key, times: 0 }]);
		operationCounts(true);
		const committed = await api.upload(bob, bob.rootId, "installer.bin", bytes);
		expect(faultsFired()).toEqual([1]);
		expect(operationCounts()["BLOBS r2.head"]).toBe(1);
		clearFaults();
		const { bytes: back } = await api.download(bob, committed.node.id);
		expect(bytesEqual(back, bytes)).toBe(true);
	});

	it("retries the put when no copy is there, and succeeds once the key takes writes again", async () => {
		const user = await signup();
		const bytes = randomBytes(8 * KiB, 102);
		setFaults([{ target: "r2.put", effect: "rate-limit", match: blockObjectKey(await sha256(bytes)), times: 2 }]);
		const committed = await api.upload(user, user.rootId, "hot.bin", bytes);
		expect(faultsFired()).toEqual([2]);
		const { bytes: back } = await api.download(user, committed.node.id);
		expect(bytesEqual(back, bytes)).toBe(true);
	});

	it("answers 503 UNAVAILABLE with Retry-After when the key stays refused, and commits nothing", async () => {
		const user = await signup();
		const bytes = randomBytes(8 * KiB, 103);
		setFaults([{ target: "r2.put", effect: "rate-limit", match: blockObjectKey(await sha256(bytes)), times: 0 }]);
		const res = await put(user, user.rootId, "refused.bin", bytes);
		await expectError(res, 503, "UNAVAILABLE");
		expect(res.headers.get("Retry-After")).toBe("1");
		expect(faultsFired()).toEqual([PUT_ATTEMPTS]);
		expect(await hasNode(user, "refused.bin")).toBe(false);
		clearFaults();
		await api.upload(user, user.rootId, "refused.bin", bytes);
	});
});

describe("a block put failing mid-upload", () => {
	// Random bytes cut into several content-defined blocks (256 KiB to 4 MiB, about 1 MiB each).
	const content = randomBytes(5 * MiB, 104);

	it("PUT content: 503 UNAVAILABLE, no node, and the same request then succeeds", async () => {
		const user = await signup();
		setFaults([{ target: "r2.put", effect: "error", match: "blocks/", skip: 1 }]);
		const res = await put(user, user.rootId, "big.bin", content);
		await expectError(res, 503, "UNAVAILABLE");
		expect(res.headers.get("Retry-After")).toBe("1");
		expect(faultsFired()).toEqual([1]);
		expect(await hasNode(user, "big.bin")).toBe(false);
		const committed = await api.upload(user, user.rootId, "big.bin", content);
		expect((await versionBlocks(user.id, committed.version.id)).length).toBeGreaterThan(2);
		const { bytes } = await api.download(user, committed.node.id);
		expect(bytesEqual(bytes, content)).toBe(true);
	});

	it("tus: the PATCH answers 503, the upload keeps its offset, and resuming from it completes the file", async () => {
		const user = await signup();
		const url = await api.tusStart(user, "tus.bin", content.byteLength);
		setFaults([{ target: "r2.put", effect: "error", match: "blocks/", skip: 1 }]);
		const patch = (offset: number) =>
			api.request(url, {
				method: "PATCH",
				token: user.token,
				headers: { "Tus-Resumable": "1.0.0", "Upload-Offset": String(offset), "Content-Type": "application/offset+octet-stream" },
				body: content.subarray(offset),
			});
		await expectError(await patch(0), 503, "UNAVAILABLE");
		expect(faultsFired()).toEqual([1]);
		expect(await hasNode(user, "tus.bin")).toBe(false);
		clearFaults();
		const offset = await api.tusOffset(user, url);
		expect(offset).toBeLessThan(content.byteLength);
		const done = await patch(offset);
		expect(done.status).toBe(204);
		expect(done.headers.get("Upload-Offset")).toBe(String(content.byteLength));
		const node = (await listAll(user, user.rootId)).find((n) => n.name === "tus.bin");
		if (!node) throw new Error("tus.bin was not committed");
		const { bytes } = await api.download(user, node.id);
		expect(bytesEqual(bytes, content)).toBe(true);
	});

	it("upload session: the block answers 503, the session still lists it missing, and sending it again lets the commit through", async () => {
		const user = await signup();
		const parts = [randomBytes(64 * KiB, 105), randomBytes(64 * KiB, 106), randomBytes(64 * KiB, 107)];
		const blocks = await Promise.all(parts.map(async (bytes) => ({ hash: await sha256(bytes), size: bytes.byteLength, bytes })));
		const whole = concat(parts);
		const session = expectOk(
			await api.createUpload(user, {
				parent_id: user.rootId,
				name: "session.bin",
				size: whole.byteLength,
				blocks: blocks.map(({ hash, size }) => ({ hash, size })),
			}),
			201,
		);
		const [first, second, third] = blocks as [(typeof blocks)[0], (typeof blocks)[0], (typeof blocks)[0]];
		expect((await api.putBlock(user, session.upload_id, first.hash, first.bytes)).status).toBe(204);
		setFaults([{ target: "r2.put", effect: "error", match: blockObjectKey(second.hash) }]);
		await expectError(await api.putBlock(user, session.upload_id, second.hash, second.bytes), 503, "UNAVAILABLE");
		expect(expectOk(await api.uploadStatus(user, session.upload_id), 200).missing).toEqual([second.hash, third.hash]);
		await expectError(await api.commitUpload(user, session.upload_id), 409, "MISSING_BLOCKS");
		expect(await hasNode(user, "session.bin")).toBe(false);
		for (const block of [second, third]) expect((await api.putBlock(user, session.upload_id, block.hash, block.bytes)).status).toBe(204);
		const committed = expectOk(await api.commitUpload(user, session.upload_id), 201);
		const { bytes } = await api.download(user, committed.node.id);
		expect(bytesEqual(bytes, whole)).toBe(true);
	});
});

describe("a block get failing mid-download", () => {
	it("aborts the body after the bytes before it, and a Range + If-Range request fetches the rest", async () => {
		const user = await signup();
		const content = randomBytes(5 * MiB, 108);
		const committed = await api.upload(user, user.rootId, "movie.bin", content);
		const blocks = await versionBlocks(user.id, committed.version.id);
		const later = blocks[2];
		if (!later) throw new Error("expected at least three blocks");
		setFaults([{ target: "r2.get", effect: "error", match: blockObjectKey(later.hash) }]);
		const res = await api.request(`/v1/files/${committed.node.id}/content`, { token: user.token });
		expect(res.status).toBe(200);
		const first = await readUntilBroken(res);
		expect(first.error).not.toBeNull();
		expect(first.bytes.byteLength).toBeLessThanOrEqual(later.offset);
		expect(bytesEqual(first.bytes, content.subarray(0, first.bytes.byteLength))).toBe(true);
		// What a resuming client (src/cli/transfers.ts, src/sync/engine/transfer.ts) sends next.
		const from = first.bytes.byteLength;
		const { res: rest, bytes } = await api.download(user, committed.node.id, {
			headers: { Range: `bytes=${from}-`, "If-Range": `"${committed.version.id}"` },
			status: 206,
		});
		expect(rest.headers.get("Content-Range")).toBe(`bytes ${from}-${content.byteLength - 1}/${content.byteLength}`);
		expect(bytesEqual(concat([first.bytes, bytes]), content)).toBe(true);
	});

	it("answers 503 UNAVAILABLE with the envelope when the first block cannot be read", async () => {
		const user = await signup();
		const content = randomBytes(16 * KiB, 109);
		const committed = await api.upload(user, user.rootId, "small.bin", content);
		setFaults([{ target: "r2.get", effect: "error", match: blockObjectKey(await sha256(content)) }]);
		const res = await api.request(`/v1/files/${committed.node.id}/content`, { token: user.token });
		await expectError(res, 503, "UNAVAILABLE");
		expect(res.headers.get("Retry-After")).toBe("1");
	});
});
