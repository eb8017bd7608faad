/// <reference types="node" />
/**
 * tus end to end with the real tus-js-client (its Node HTTP stack) against
 * the local stack: an upload from a file stream aborted in the middle of a
 * PATCH and resumed by a new client object, the checksum extension's 460,
 * uploads bound to their user, a connection dropped in the middle of a
 * PATCH, and the client's options for creation-defer-length
 * (uploadLengthDeferred), concatenation (parallelUploads),
 * X-HTTP-Method-Override (overridePatchMethod), its defaults as Uppy passes
 * them, and a refused commit (H5).
 *
 * A PATCH the client let go of keeps running on the server for a moment
 * (the bytes that arrived are still cut into blocks and checkpointed). No
 * test waits for that to be over: a resume that starts meanwhile is told 409
 * UPLOAD_OFFSET_MISMATCH once the old request moves the offset, and asks
 * HEAD again, as tus clients do.
 */
import { createHash } from "node:crypto";
import { createReadStream, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { request as httpRequest, type ClientRequest } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import * as tus from "tus-js-client";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { chunkBoundaries } from "../../src/shared/chunking";
import { expectError } from "../support/envelope";
import type { TestUser } from "../support/harness";
import { eventually, generate, hashBody, r2Objects, sha256Of, stackHarness } from "../support/stack";

const h = stackHarness();
const MiB = 1024 * 1024;
/** Five PATCHes from a file stream. */
const CHUNK = 8 * MiB;
const SIZE = 5 * CHUNK;

/** Cumulative cut offsets of the chunker over `data` (excluding 0, including the end). */
function cuts(data: Uint8Array): number[] {
	let end = 0;
	return chunkBoundaries(data).map((len) => (end += len));
}

/**
 * Starts a PATCH at `offset` announcing `announced` bytes and sends `body`,
 * then leaves the connection open: call the result to drop it.
 */
function openPatch(user: TestUser, url: string, offset: number, body: Uint8Array, announced: number): () => void {
	const req: ClientRequest = httpRequest(url, {
		method: "PATCH",
		headers: {
			Authorization: `Bearer ${user.token}`,
			"Tus-Resumable": "1.0.0",
			"Upload-Offset": String(offset),
			"Content-Type": "application/offset+octet-stream",
			"Content-Length": String(announced),
		},
	});
	req.on("error", () => undefined);
	req.on("response", (res) => res.resume());
	req.write(body);
	return () => req.destroy();
}

/**
 * Sends the rest of `data` from the offset HEAD reports, asking again while
 * the answer is 409 (a dropped PATCH still moving the offset). Returns the
 * offsets it started from, and the node id of the committed file.
 */
async function resume(user: TestUser, url: string, data: Uint8Array): Promise<{ from: number[]; nodeId: string }> {
	const from: number[] = [];
	// The dropped request moves the offset at most twice more (its last checkpoint, its end).
	for (let attempt = 0; attempt < 4; attempt++) {
		const offset = await h.tusOffset(user, url);
		from.push(offset);
		const res = await h.tusPatch(user, url, offset, data.subarray(offset));
		if (res.status === 204) return { from, nodeId: res.headers.get("Drive-Node-Id") ?? "" };
		await expectError(res, 409, "UPLOAD_OFFSET_MISMATCH");
	}
	throw new Error(`the offset kept moving: resumed from ${from.join(", ")}`);
}

async function downloadSha256(user: TestUser, nodeId: string): Promise<{ sha256: string; bytes: number }> {
	const res = await h.request(`/v1/files/${nodeId}/content`, { token: user.token });
	expect(res.status).toBe(200);
	return hashBody(res);
}

describe("tus with tus-js-client against the local stack", () => {
	let owner: TestUser;
	let stranger: TestUser;
	let dir: string;
	let file: string;
	let fileSha256: string;

	beforeAll(async () => {
		[owner, stranger] = await Promise.all([h.signup("tus e2e"), h.signup("tus e2e")]);
		dir = mkdtempSync(join(tmpdir(), "drive-tus-e2e-"));
		file = join(dir, "upload.bin");
		const data = generate(SIZE, "tus-e2e-resume");
		writeFileSync(file, data);
		fileSha256 = sha256Of(data);
	});

	afterAll(() => {
		if (dir) rmSync(dir, { recursive: true, force: true });
	});

	it("resumes from a new client object after an abort in the middle of a PATCH, sending only what was not kept", async () => {
		const options = {
			endpoint: h.url("/v1/tus"),
			chunkSize: CHUNK,
			headers: { Authorization: `Bearer ${owner.token}` },
			metadata: { filename: "resumed.bin", parent_id: owner.rootId },
			retryDelays: null,
		};

		// First client: aborted in the middle of its third PATCH (the first two were answered).
		let uploadUrl = "";
		let abortedAt = 0;
		await new Promise<void>((resolve, reject) => {
			const first = new tus.Upload(createReadStream(file), {
				...options,
				onUploadUrlAvailable: () => {
					uploadUrl = first.url ?? "";
				},
				onProgress: (sent) => {
					if (abortedAt === 0 && sent >= 2.5 * CHUNK) {
						abortedAt = sent;
						first.abort().then(resolve, reject);
					}
				},
				onSuccess: () => reject(new Error("the upload finished before the abort")),
				onError: reject,
			});
			first.start();
		});
		expect(uploadUrl).toMatch(/\/v1\/tus\/upl_/);

		// Second client: a new object, resuming from the server's offset. It
		// retries a 409 only (HEAD again, resume from there), as the aborted
		// PATCH may still move the offset; any other failure fails the test.
		const patchOffsets: number[] = [];
		let resentBytes = 0;
		const nodeId = await new Promise<string>((resolve, reject) => {
			const second = new tus.Upload(createReadStream(file), {
				...options,
				retryDelays: [0, 0, 0],
				onShouldRetry: (err) => err.originalResponse?.getStatus() === 409,
				uploadUrl,
				onBeforeRequest: (req) => {
					if (req.getMethod() === "PATCH") patchOffsets.push(Number(req.getHeader("Upload-Offset")));
				},
				onChunkComplete: (chunk) => {
					resentBytes += chunk;
				},
				onSuccess: ({ lastResponse }) => resolve(lastResponse.getHeader("Drive-Node-Id") ?? ""),
				onError: reject,
			});
			second.start();
		});
		// The server kept the two answered PATCHes, and never more than was sent.
		expect(patchOffsets[0]).toBeGreaterThanOrEqual(2 * CHUNK);
		expect(patchOffsets[0]).toBeLessThanOrEqual(abortedAt);
		// Only the rest went again.
		expect(resentBytes).toBeLessThanOrEqual(SIZE - 2 * CHUNK);
		expect(resentBytes).toBeGreaterThanOrEqual(SIZE - abortedAt);
		expect(nodeId).toMatch(/^nod_/);

		const head = await h.tusHead(owner, uploadUrl);
		expect(head.headers.get("Upload-Offset")).toBe(String(SIZE));
		expect(head.headers.get("Drive-Node-Id")).toBe(nodeId);
		expect(await h.node(owner, nodeId)).toMatchObject({ name: "resumed.bin", size: SIZE, content_hash: fileSha256 });
		expect(await downloadSha256(owner, nodeId)).toEqual({ sha256: fileSha256, bytes: SIZE });
	});

	it("answers 460 to a PATCH whose Upload-Checksum does not match, and keeps nothing of it", async () => {
		const data = generate(3 * MiB, "tus-e2e-checksum");
		const url = await h.tusStart(owner, "checksum.bin", data.length);
		const first = data.subarray(0, MiB);
		const sum = (algorithm: string, bytes: Uint8Array) => createHash(algorithm).update(bytes).digest("base64");
		const good = await h.tusPatch(owner, url, 0, first, { "Upload-Checksum": `sha256 ${sum("sha256", first)}` });
		expect(good.status).toBe(204);
		const rest = data.subarray(MiB);
		await expectError(
			await h.tusPatch(owner, url, MiB, rest, { "Upload-Checksum": `sha256 ${sum("sha256", first)}` }),
			460,
			"CHECKSUM_MISMATCH",
		);
		expect(await h.tusOffset(owner, url)).toBe(MiB);
		expect((await h.tusPatch(owner, url, MiB, rest, { "Upload-Checksum": `sha1 ${sum("sha1", first)}` })).status).toBe(460);
		expect(await h.tusOffset(owner, url)).toBe(MiB);
		const fixed = await h.tusPatch(owner, url, MiB, rest, { "Upload-Checksum": `sha1 ${sum("sha1", rest)}` });
		expect(fixed.status).toBe(204);
		const nodeId = fixed.headers.get("Drive-Node-Id") ?? "";
		expect(await downloadSha256(owner, nodeId)).toEqual({ sha256: sha256Of(data), bytes: data.length });
	});

	it("answers 404 to another user's HEAD, PATCH and DELETE, including through tus-js-client", async () => {
		const data = generate(2 * MiB, "tus-e2e-owned");
		const url = await h.tusStart(owner, "owned.bin", data.length);
		expect((await h.tusPatch(owner, url, 0, data.subarray(0, MiB))).status).toBe(204);

		expect((await h.tusHead(stranger, url)).status).toBe(404);
		await expectError(await h.tusPatch(stranger, url, MiB, data.subarray(MiB)), 404, "NOT_FOUND");
		const strangerDelete = await h.request(url, { method: "DELETE", token: stranger.token, headers: { "Tus-Resumable": "1.0.0" } });
		expect(strangerDelete.status).toBe(404);

		// The real client, pointed at someone else's upload, is told 404 by its HEAD.
		const err = await new Promise<unknown>((resolve) => {
			const upload = new tus.Upload(data, {
				uploadUrl: url,
				chunkSize: CHUNK,
				headers: { Authorization: `Bearer ${stranger.token}` },
				retryDelays: null,
				onSuccess: () => resolve(new Error("a stranger resumed someone else's upload")),
				onError: resolve,
			});
			upload.start();
		});
		expect(err).toBeInstanceOf(tus.DetailedError);
		expect((err as tus.DetailedError).originalResponse?.getStatus()).toBe(404);

		// The owner's upload is untouched and completes.
		expect(await h.tusOffset(owner, url)).toBe(MiB);
		const done = await h.tusPatch(owner, url, MiB, data.subarray(MiB));
		expect(done.status).toBe(204);
		expect((await downloadSha256(owner, done.headers.get("Drive-Node-Id") ?? "")).sha256).toBe(sha256Of(data));
	});

	it("terminates an upload with tus-js-client, after which HEAD answers 404", async () => {
		const url = await h.tusStart(owner, "terminated.bin", 1000);
		await tus.Upload.terminate(url, { headers: { Authorization: `Bearer ${owner.token}` } });
		expect((await h.tusHead(owner, url)).status).toBe(404);
	});

	it("keeps what a PATCH delivered before its connection dropped, and resumes to the exact file and blocks", async () => {
		const data = generate(24 * MiB, "tus-e2e-dropped");
		const url = await h.tusStart(owner, "dropped.bin", data.length);
		const ends = cuts(data);
		// Past eight blocks, so the server checkpoints while the request is still open.
		const sent = 14 * MiB + 12345;
		const eighth = ends[7] ?? Infinity;
		expect(eighth).toBeLessThanOrEqual(14 * MiB);
		const drop = openPatch(owner, url, 0, data.subarray(0, sent), data.length);
		// The bytes have arrived once the first checkpoint shows in HEAD; then the connection drops.
		await eventually("the first checkpoint", async () => ((await h.tusOffset(owner, url)) >= eighth ? true : undefined));
		drop();
		const { from, nodeId } = await resume(owner, url, data);
		// What was kept: the end of a block completed before the drop (or, if
		// the runtime presents a truncated body as ended, everything sent).
		for (const offset of from) {
			expect(offset).toBeGreaterThanOrEqual(eighth);
			expect([...ends.filter((c) => c <= sent), sent]).toContain(offset);
		}
		expect(await downloadSha256(owner, nodeId)).toEqual({ sha256: sha256Of(data), bytes: data.length });
	});

	// Regression: the first checkpoint of a PATCH that resumed from a saved
	// tail consumes it, so the tail object is deleted then, not only when the
	// PATCH ends well.
	it("leaves no chunker tail behind in R2 when a PATCH that resumed from a tail drops", async () => {
		const persistTo = inject("persistTo");
		const data = generate(16 * MiB, "tus-e2e-tail");
		const url = await h.tusStart(owner, "tail.bin", data.length);
		const id = new URL(url).pathname.split("/").pop() ?? "";
		// 300 KiB: past the chunker's 256 KiB minimum, before any cut, so all of it is the saved tail.
		const head = 300 * 1024;
		expect((await h.tusPatch(owner, url, 0, data.subarray(0, head))).status).toBe(204);
		expect(r2Objects(persistTo, `uploads/${id}/`)).toHaveLength(1);
		// Eight blocks on from the tail, so the resumed PATCH checkpoints (and consumes the tail) before it drops.
		const sent = 12 * MiB;
		const eighth = cuts(data)[7] ?? Infinity;
		expect(eighth).toBeLessThanOrEqual(head + 11 * MiB);
		const drop = openPatch(owner, url, head, data.subarray(head, head + sent), data.length - head);
		await eventually("the first checkpoint", async () => ((await h.tusOffset(owner, url)) >= eighth ? true : undefined));
		drop();
		const { nodeId } = await resume(owner, url, data);
		expect((await downloadSha256(owner, nodeId)).sha256).toBe(sha256Of(data));
		// The first PATCH's tail was consumed by the block that completed it: it goes (the delete follows the checkpoint).
		await eventually("the tail object to be deleted", () => (r2Objects(persistTo, `uploads/${id}/`).length === 0 ? true : undefined));
	});
});

/** The Authorization header of `user`, with `extra`. */
function auth(user: TestUser, extra: Record<string, string> = {}): Record<string, string> {
	return { Authorization: `Bearer ${user.token}`, ...extra };
}

/** The names in the user's root folder. */
async function rootNames(user: TestUser): Promise<string[]> {
	return (await h.listAll(user, user.rootId)).map((n) => n.name);
}

/** Runs a tus-js-client upload to its end: the file's node id, or the error it ended with. */
function runUpload(
	file: Buffer | Readable,
	options: tus.UploadOptions,
): Promise<{ nodeId: string; upload: tus.Upload } | { error: Error; upload: tus.Upload }> {
	return new Promise((resolve) => {
		const upload = new tus.Upload(file, {
			...options,
			onSuccess: ({ lastResponse }) => resolve({ nodeId: lastResponse.getHeader("Drive-Node-Id") ?? "", upload }),
			onError: (error) => resolve({ error, upload }),
		});
		upload.start();
	});
}

/** The node id of an upload that succeeded; throws the error of one that did not. */
function finished(outcome: Awaited<ReturnType<typeof runUpload>>): string {
	if ("error" in outcome) throw outcome.error;
	expect(outcome.nodeId).toMatch(/^nod_/);
	return outcome.nodeId;
}

describe("tus-js-client's options against the tus extensions", () => {
	let user: TestUser;
	const sha256 = (data: Uint8Array) => sha256Of(data);
	const base = () => ({ endpoint: h.url("/v1/tus"), headers: auth(user), retryDelays: null });

	beforeAll(async () => {
		user = await h.signup("tus e2e");
	});

	it("creation-defer-length: uploadLengthDeferred uploads a stream whose size nobody knows, and its last PATCH says the length", async () => {
		// Not a size that is a multiple of chunkSize: tus-js-client 4.3.1 then
		// waits forever for its stream (tus/tus-js-client#779). The empty last
		// PATCH it would send is tested with raw requests in tus-extensions.test.ts.
		const size = 3 * MiB + 12_345;
		const data = generate(size, "deferred");
		const lengths: (string | undefined)[] = [];
		const nodeId = finished(
			// A byte stream (not object mode), as tus-js-client's StreamSource expects.
			await runUpload(Readable.from([data.subarray(0, MiB / 2), data.subarray(MiB / 2)], { objectMode: false }), {
				...base(),
				chunkSize: MiB,
				uploadLengthDeferred: true,
				metadata: { filename: "deferred.bin", parent_id: user.rootId },
				onBeforeRequest: (req) => {
					if (req.getMethod() === "POST") expect(req.getHeader("Upload-Defer-Length")).toBe("1");
					if (req.getMethod() === "PATCH") lengths.push(req.getHeader("Upload-Length"));
				},
			}),
		);
		expect(lengths).toEqual([undefined, undefined, undefined, String(size)]);
		expect(await h.node(user, nodeId)).toMatchObject({ name: "deferred.bin", size, content_hash: sha256(data) });
		expect(await downloadSha256(user, nodeId)).toEqual({ sha256: sha256(data), bytes: size });
	});

	it("concatenation: parallelUploads sends partial uploads at once and the final one becomes the file, byte-exact", async () => {
		const data = generate(3 * MiB + 5, "parallel");
		const concat: string[] = [];
		const nodeId = finished(
			await runUpload(data, {
				...base(),
				parallelUploads: 3,
				metadata: { filename: "parallel.bin", parent_id: user.rootId },
				onBeforeRequest: (req) => {
					if (req.getMethod() === "POST") concat.push(req.getHeader("Upload-Concat") ?? "");
				},
			}),
		);
		expect(concat.filter((c) => c === "partial")).toHaveLength(3);
		expect(concat.filter((c) => c.startsWith("final;"))).toHaveLength(1);
		expect(await h.node(user, nodeId)).toMatchObject({ name: "parallel.bin", size: data.length, content_hash: sha256(data) });
		expect(await downloadSha256(user, nodeId)).toEqual({ sha256: sha256(data), bytes: data.length });
		// The parts never became files.
		expect((await rootNames(user)).filter((n) => n.startsWith("parallel"))).toEqual(["parallel.bin"]);
	});

	it("X-HTTP-Method-Override: overridePatchMethod sends every PATCH as a POST, and the upload completes", async () => {
		const data = generate(2 * MiB + 1, "override");
		const methods: string[] = [];
		const nodeId = finished(
			await runUpload(data, {
				...base(),
				chunkSize: MiB,
				overridePatchMethod: true,
				metadata: { filename: "override.bin", parent_id: user.rootId },
				onBeforeRequest: (req) => {
					methods.push(`${req.getMethod()} ${req.getHeader("X-HTTP-Method-Override") ?? ""}`.trim());
				},
			}),
		);
		expect(methods).toEqual(["POST", "POST PATCH", "POST PATCH", "POST PATCH"]);
		expect(await h.node(user, nodeId)).toMatchObject({ size: data.length, content_hash: sha256(data) });
	});

	it("works with tus-js-client's defaults as Uppy's tus plugin passes them, with and without data in the creation request", async () => {
		// @uppy/tus: chunkSize Infinity, retryDelays [100, 1000, 3000, 5000],
		// parallelUploads 1, removeFingerprintOnSuccess false,
		// uploadDataDuringCreation false; its metadata is the file's meta
		// (name, type) plus filename and filetype copied from them.
		const uppy = {
			chunkSize: Number.POSITIVE_INFINITY,
			retryDelays: [100, 1000, 3000, 5000],
			parallelUploads: 1,
			removeFingerprintOnSuccess: false,
			uploadLengthDeferred: false,
			uploadDataDuringCreation: false,
			overridePatchMethod: false,
		};
		for (const uploadDataDuringCreation of [false, true]) {
			const name = `uppy-${uploadDataDuringCreation}.bin`;
			const data = generate(2 * MiB + 3, name);
			const meta = { name, type: "application/octet-stream", parent_id: user.rootId };
			const nodeId = finished(
				await runUpload(data, {
					endpoint: h.url("/v1/tus"),
					headers: auth(user),
					...uppy,
					uploadDataDuringCreation,
					metadata: { ...meta, filename: meta.name, filetype: meta.type },
				}),
			);
			expect(await h.node(user, nodeId)).toMatchObject({ name, size: data.length, content_hash: sha256(data) });
		}
	});

	it("H5: when the last PATCH's commit is refused, tus-js-client ends in onError, never onSuccess", async () => {
		// After the 409, tus-js-client retries: HEAD, which now answers the
		// commit's refusal instead of "complete"; then a new upload, whose
		// creation meets the same refusal, until the retries run out.
		const data = generate(2 * MiB, "h5");
		const outcome = await runUpload(data, {
			...base(),
			retryDelays: [0, 100],
			chunkSize: MiB,
			metadata: { filename: "h5.bin", parent_id: user.rootId },
			onBeforeRequest: async (req) => {
				// Before the last PATCH, a folder takes the file's name.
				if (req.getMethod() === "PATCH" && req.getHeader("Upload-Offset") === String(MiB) && !(await rootNames(user)).includes("h5.bin")) {
					await h.mkdir(user, user.rootId, "h5.bin");
				}
			},
		});
		expect("error" in outcome).toBe(true);
		const error = "error" in outcome ? outcome.error : null;
		expect(error).toBeInstanceOf(tus.DetailedError);
		expect((error as tus.DetailedError).originalResponse?.getStatus()).toBe(409);
	});
});
