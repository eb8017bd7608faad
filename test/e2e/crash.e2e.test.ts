/// <reference types="node" />
/**
 * Crash test: the whole local stack (wrangler, esbuild, both workerd
 * runtimes) is killed with SIGKILL in the middle of uploads, restarted on
 * the same storage and port, and the uploads resume to byte-exact files: a
 * tus upload through tus-js-client killed in the middle of a PATCH, and an
 * upload session with half of its blocks sent.
 *
 * This file runs a stack of its own (startOwnStack), since it kills it.
 */
import * as tus from "tus-js-client";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { stopStack, workerdProcesses } from "../../scripts/local-stack.mjs";
import { expectOk, type Harness, type TestUser } from "../support/harness";
import {
	blocksOf,
	generate,
	groupGone,
	hashBody,
	sha256Of,
	stackHarness,
	startOwnStack,
	versionBlocksOnDisk,
	type OwnStack,
} from "../support/stack";

const MiB = 1024 * 1024;
/** Five PATCHes: the kill lands in the middle of the third, after two have completed. */
const CHUNK = 8 * MiB;
const TUS_SIZE = 5 * CHUNK;
const SESSION_SIZE = 8 * MiB;

describe("kill -9 in the middle of uploads", () => {
	let stack: OwnStack;
	let h: Harness;

	beforeAll(async () => {
		stack = await startOwnStack();
		h = stackHarness(stack.url);
	}, 300_000);

	afterAll(async () => {
		await stack?.dispose();
	}, 60_000);

	it("resumes a tus upload and an upload session to byte-exact files after the stack is killed with SIGKILL and restarted", async () => {
		const user: TestUser = await h.signup("crash e2e");

		// An upload session with the first half of its blocks sent.
		const sessionData = generate(SESSION_SIZE, "crash-e2e-session");
		const sessionBlocks = blocksOf(sessionData);
		const { upload_id: uploadId, missing } = expectOk(
			await h.createUpload(user, {
				parent_id: user.rootId,
				name: "session-after-crash.bin",
				size: SESSION_SIZE,
				blocks: sessionBlocks.map(({ hash, size }) => ({ hash, size })),
				content_hash: sha256Of(sessionData),
			}),
			201,
		);
		expect(missing).toEqual(sessionBlocks.map((b) => b.hash));
		const half = Math.floor(missing.length / 2);
		expect(half).toBeGreaterThan(0);
		const byHash = new Map(sessionBlocks.map((b) => [b.hash, b]));
		const putBlock = async (hash: string): Promise<void> => {
			const b = byHash.get(hash);
			if (!b) throw new Error(`asked for unknown block ${hash}`);
			expect((await h.putBlock(user, uploadId, hash, sessionData.subarray(b.offset, b.offset + b.size))).status).toBe(204);
		};
		for (const hash of missing.slice(0, half)) await putBlock(hash);

		// A tus upload, and SIGKILL to the whole stack in the middle of its third PATCH.
		const tusData = generate(TUS_SIZE, "crash-e2e-tus");
		const tusSha256 = sha256Of(tusData);
		const options = {
			endpoint: `${stack.url}/v1/tus`,
			chunkSize: CHUNK,
			headers: { Authorization: `Bearer ${user.token}` },
			metadata: { filename: "tus-after-crash.bin", parent_id: user.rootId },
			retryDelays: null,
		};
		const victim = stack.child;
		const pgid = victim.pid as number;
		expect(stack.command).toEqual(expect.arrayContaining(["dev", "--persist-to", stack.persistTo]));
		expect(workerdProcesses(pgid).length).toBeGreaterThanOrEqual(1);
		let uploadUrl = "";
		let killedAt = 0;
		const exited = new Promise<void>((r) => victim.once("exit", () => r()));
		const clientError = await new Promise<unknown>((resolveUpload) => {
			const upload = new tus.Upload(tusData, {
				...options,
				onUploadUrlAvailable: () => {
					uploadUrl = upload.url ?? "";
				},
				onProgress: (sent) => {
					// Past the second PATCH's end, the third has started: the first two were answered.
					if (killedAt === 0 && sent >= 2.5 * CHUNK) {
						killedAt = sent;
						stopStack(victim, "SIGKILL");
					}
				},
				onSuccess: () => resolveUpload(new Error("finished before the kill")),
				onError: resolveUpload,
			});
			upload.start();
		});
		expect(killedAt).toBeGreaterThan(0);
		expect(clientError).toBeInstanceOf(Error);
		expect(String(clientError)).not.toContain("finished before the kill");
		await exited;
		// Nothing of the old stack survives: not wrangler, not esbuild, not workerd.
		await groupGone(pgid);
		expect(workerdProcesses(pgid)).toEqual([]);

		// Restart on the same storage and port.
		await stack.respawn();

		// tus: HEAD says what survived (at least the two PATCHes answered); a new client object resumes from there.
		const survived = await h.tusOffset(user, uploadUrl);
		expect(survived).toBeLessThanOrEqual(killedAt);
		expect(survived).toBeGreaterThanOrEqual(2 * CHUNK);
		let firstPatchOffset = -1;
		const nodeId = await new Promise<string>((resolveUpload, reject) => {
			const upload = new tus.Upload(tusData, {
				...options,
				retryDelays: [0, 1000, 3000, 5000],
				uploadUrl,
				onBeforeRequest: (req) => {
					if (req.getMethod() === "PATCH" && firstPatchOffset < 0) firstPatchOffset = Number(req.getHeader("Upload-Offset"));
				},
				onSuccess: ({ lastResponse }) => resolveUpload(lastResponse.getHeader("Drive-Node-Id") ?? ""),
				onError: reject,
			});
			upload.start();
		});
		expect(firstPatchOffset).toBe(survived);
		const node = await h.node(user, nodeId);
		expect(node).toMatchObject({ size: TUS_SIZE, content_hash: tusSha256 });
		const res = await h.request(`/v1/files/${nodeId}/content`, { token: user.token });
		expect(res.status).toBe(200);
		expect((await hashBody(res)).sha256).toBe(tusSha256);
		// The interrupted upload produced exactly the blocks of an uninterrupted one.
		const expectedBlocks = blocksOf(tusData).map(({ offset, size, hash }) => ({ offset, size, hash }));
		expect(versionBlocksOnDisk(stack.persistTo, node.version_id ?? "")).toEqual(expectedBlocks);

		// Session: exactly the unsent half is missing; send it, commit, compare.
		const status = expectOk(await h.uploadStatus(user, uploadId), 200);
		expect(status.missing).toEqual(missing.slice(half));
		for (const hash of status.missing) await putBlock(hash);
		const committed = expectOk(await h.commitUpload(user, uploadId), 201);
		const sessionSha256 = sha256Of(sessionData);
		expect(committed.node.content_hash).toBe(sessionSha256);
		expect(sha256Of((await h.download(user, committed.node.id)).bytes)).toBe(sessionSha256);
	});
});
