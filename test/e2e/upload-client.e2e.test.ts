/// <reference types="node" />
/**
 * The client upload library (src/client) against the real local stack:
 * interrupted and resumed uploads come back byte-exact, and re-uploading
 * content the user already has sends no block bytes.
 */
import { createHash } from "node:crypto";
import { beforeAll, describe, expect, it } from "vitest";
import { DriveClient, planUpload, uploadFile, type UploadProgress } from "../../src/client";
import type { UploadStatus } from "../support/harness";
import { hashBody, randomStream, stackHarness } from "../support/stack";

const h = stackHarness();
const MiB = 1024 * 1024;

interface Session {
	client: DriveClient;
	token: string;
	rootId: string;
}

/** A fresh account, and the upload library's client signed in as it. */
async function signup(): Promise<Session> {
	const user = await h.signup("e2e");
	return { client: new DriveClient({ baseUrl: h.baseUrl, token: user.token }), token: user.token, rootId: user.rootId };
}

/** A factory of identical streams of `size` pseudo-random bytes, re-creatable for the client's second pass. */
const randomSource = (size: number, seed: string) => () => randomStream(size, seed);

/** SHA-256 of a file's content as the service streams it back. */
async function downloadSha256(session: Session, nodeId: string): Promise<{ sha256: string; bytes: number }> {
	return hashBody(await session.client.request("GET", `/v1/files/${nodeId}/content`));
}

describe("the client upload library against the local stack", () => {
	let session: Session;

	beforeAll(async () => {
		session = await signup();
	});

	it("resumes an upload interrupted halfway and the download matches", async () => {
		const size = 24 * MiB;
		const source = randomSource(size, "upload-client-resume");
		const plan = await planUpload(source);
		expect(plan.size).toBe(size);

		const controller = new AbortController();
		let uploadId = "";
		const first: UploadProgress[] = [];
		const interrupted = await uploadFile(session.client, source, {
			parentId: session.rootId,
			name: "resumed.bin",
			plan,
			// Small batches, so that the abort lands halfway with batches left that were never sent.
			batchBytes: 2 * MiB,
			concurrency: 2,
			signal: controller.signal,
			onSession: (s) => (uploadId = s.uploadId),
			onProgress: (p) => {
				first.push(p);
				if (p.phase === "uploading" && p.blocksMissing <= Math.floor(p.blocksTotal / 2)) controller.abort();
			},
		}).catch((e: unknown) => e);
		expect(interrupted).toMatchObject({ name: "AbortError" });
		expect(uploadId).not.toBe("");
		const sentFirst = first.at(-1)?.bytesSent ?? 0;
		expect(sentFirst).toBeGreaterThan(0);
		expect(sentFirst).toBeLessThan(size);

		const status = await session.client.json<UploadStatus>("GET", `/v1/uploads/${uploadId}`);
		expect(status.missing.length).toBeGreaterThan(0);
		expect(status.missing.length).toBeLessThan(plan.blocks.length);

		// A new client object, as after a restart; pass 1 runs again.
		const resumed = await uploadFile(new DriveClient({ baseUrl: h.baseUrl, token: session.token }), source, {
			parentId: session.rootId,
			name: "resumed.bin",
			uploadId,
		});
		expect(resumed.uploadId).toBe(uploadId);
		expect(resumed.bytesSent).toBeGreaterThan(0);
		// Blocks that landed while the abort was in flight are not sent again.
		expect(sentFirst + resumed.bytesSent).toBeLessThanOrEqual(size);
		expect(resumed.node).toMatchObject({ name: "resumed.bin", size, content_hash: plan.contentHash });

		const download = await downloadSha256(session, resumed.node.id);
		expect(download.bytes).toBe(size);
		expect(download.sha256).toBe(plan.contentHash);
	});

	it("sends a Blob while hashing it, and resumes after an abort that cut its block list short", async () => {
		const size = 24 * MiB;
		const blob = new Blob([await new Response(randomSource(size, "upload-client-pipelined")()).arrayBuffer()]);
		const contentHash = createHash("sha256")
			.update(new Uint8Array(await blob.arrayBuffer()))
			.digest("hex");

		const controller = new AbortController();
		let uploadId = "";
		const interrupted = await uploadFile(session.client, blob, {
			parentId: session.rootId,
			name: "pipelined.bin",
			batchBytes: 4 * MiB,
			concurrency: 1,
			signal: controller.signal,
			onSession: (s) => (uploadId = s.uploadId),
			onProgress: (p) => {
				if (p.bytesSent > 0) controller.abort();
			},
		}).catch((e: unknown) => e);
		expect(interrupted).toMatchObject({ name: "AbortError" });
		const status = await session.client.json<UploadStatus>("GET", `/v1/uploads/${uploadId}`);
		expect(status.more_blocks).toBe(true);
		expect(status.listed_bytes).toBeLessThan(size);

		const resumed = await uploadFile(new DriveClient({ baseUrl: h.baseUrl, token: session.token }), blob, {
			parentId: session.rootId,
			name: "pipelined.bin",
			uploadId,
		});
		expect(resumed.node).toMatchObject({ name: "pipelined.bin", size, content_hash: contentHash });
		expect(await downloadSha256(session, resumed.node.id)).toEqual({ sha256: contentHash, bytes: size });
	});

	it("sends zero block bytes when the same content is uploaded again", async () => {
		const size = 8 * MiB;
		const source = randomSource(size, "upload-client-dedup");
		const once = await uploadFile(session.client, source, { parentId: session.rootId, name: "dedup-a.bin" });
		expect(once.bytesSent).toBe(size);

		const blockPuts: number[] = [];
		const twice = await uploadFile(session.client, source, {
			parentId: session.rootId,
			name: "dedup-b.bin",
			onProgress: (p) => blockPuts.push(p.bytesToSend),
		});
		expect(twice.bytesSent).toBe(0);
		expect(Math.max(...blockPuts)).toBe(0);
		expect(twice.node.content_hash).toBe(once.node.content_hash);
		const download = await downloadSha256(session, twice.node.id);
		expect(download).toEqual({ sha256: once.node.content_hash, bytes: size });
	});
});
