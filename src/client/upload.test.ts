/// <reference types="node" />
/**
 * Unit tests of the client upload library against an in-memory fake of the
 * upload-session routes (docs/api.md, "Upload sessions"), injected as `fetch`.
 * The fake follows the contract, and can inject faults, so these tests pin
 * the client's logic: retries, resume, the MISSING_BLOCKS loop, hash
 * verification, the concurrency bound and progress. The real server is
 * exercised by test/e2e/upload-client.e2e.test.ts.
 */
import { createCipheriv, createHash } from "node:crypto";
import { describe, expect, it, vi } from "vitest";
import { chunkBoundaries } from "../shared/chunking";
import { DriveApiError, DriveClient, parseRetryAfter } from "./http";
import { concat } from "../../test/support/bytes";
import { HANG_GUARD_MS } from "../../test/support/harness";
import { planUpload, SourceChangedError, uploadFile, type UploadProgress, type UploadSource } from "./upload";

const MiB = 1024 * 1024;
const EMPTY_SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

/** Deterministic incompressible bytes (AES-256-CTR keystream of `seed`). */
function randomBytes(size: number, seed: string): Uint8Array<ArrayBuffer> {
	const key = createHash("sha256").update(seed).digest();
	const cipher = createCipheriv("aes-256-ctr", key, Buffer.alloc(16));
	const out = new Uint8Array(size);
	out.set(cipher.update(Buffer.alloc(size)));
	return out;
}

function sha256(data: Uint8Array): string {
	return createHash("sha256").update(data).digest("hex");
}

/** Compares bytes by digest: vitest's deep equality walks a 10 MiB array element by element, for minutes. */
function expectBytes(actual: Uint8Array | undefined, expected: Uint8Array): void {
	expect(actual?.length).toBe(expected.length);
	expect(sha256(actual ?? new Uint8Array(0))).toBe(sha256(expected));
}

/** `data` as a stream of `piece`-byte pieces. */
function streamOf(data: Uint8Array, piece = 64 * 1024): ReadableStream<Uint8Array> {
	let at = 0;
	return new ReadableStream<Uint8Array>({
		pull(controller) {
			if (at >= data.length) {
				controller.close();
				return;
			}
			controller.enqueue(data.slice(at, at + piece));
			at += piece;
		},
	});
}

async function* iterableOf(data: Uint8Array, piece: number): AsyncGenerator<Uint8Array> {
	for (let at = 0; at < data.length; at += piece) yield data.subarray(at, at + piece);
}

// ---------------------------------------------------------------------------
// The fake server
// ---------------------------------------------------------------------------

interface FakeSession {
	parentId: string;
	name: string;
	size: number;
	blocks: { hash: string; size: number }[];
	/** Declared by the client; without it, the server hashes the stored blocks at commit (as the real one does). */
	contentHash: string | undefined;
	body: Record<string, unknown>;
	/** The block list continues (more_blocks). */
	moreBlocks: boolean;
	/** Set once committed: the server answers a repeated commit with the same result. */
	committed?: { status: number; body: unknown };
}

interface FakeFile {
	id: string;
	parentId: string;
	name: string;
	content: Uint8Array;
	versions: number;
}

interface FakeRequest {
	method: string;
	path: string;
	/** Attempt number of this method + path, from 1. */
	attempt: number;
	/** The blocks a batch PUT names (Drive-Blocks). */
	blocks: string[];
}

/** What a fault hook returns: a response to answer with, an error to throw (a network failure), or nothing to go on. */
type Fault = Response | Error | undefined;

function envelope(status: number, code: string, message: string, details?: unknown[]): Response {
	const error: Record<string, unknown> = { code, message, request_id: "req_fake" };
	if (details !== undefined) error.details = details;
	return Response.json({ error }, { status, headers: { "Request-Id": "req_fake" } });
}

class FakeServer {
	/** Blocks the user holds, by hash. */
	readonly store = new Map<string, Uint8Array>();
	readonly sessions = new Map<string, FakeSession>();
	readonly files: FakeFile[] = [];
	readonly log: FakeRequest[] = [];
	readonly createBodies: Record<string, unknown>[] = [];
	readonly commitBodies: unknown[] = [];
	readonly appendBodies: { offset: number; blocks: { hash: string; size: number }[]; more_blocks?: boolean; content_hash?: string }[] = [];
	inFlightPuts = 0;
	maxInFlightPuts = 0;
	/** Block PUTs (batches) answered 204. */
	putsAccepted = 0;
	/** Requests that arrived with their signal already aborted: sent after the client gave up on them. */
	abortedArrivals = 0;
	/**
	 * While set, each block PUT waits here once its body is read (until the
	 * gate opens, or its signal aborts): how the tests decide what is in
	 * flight at once, instead of a delay.
	 */
	gate: Promise<void> | null = null;
	/** PUTs waiting at the gate now. */
	heldPuts = 0;
	/** Runs when a block PUT arrives, once it counts as in flight. */
	onPutArrived: (() => void) | undefined;
	/** Runs after a batch PUT stored its blocks, before it answers 204. */
	afterStore: (() => Promise<void> | void) | undefined;
	fault: ((req: FakeRequest) => Fault | Promise<Fault>) | undefined;
	/** Runs at the start of each commit, before missing blocks are checked (e.g. to evict blocks). */
	beforeCommit: ((session: FakeSession) => void) | undefined;
	#nextId = 1;
	#attempts = new Map<string, number>();

	readonly fetch = async (input: string, init: RequestInit): Promise<Response> => {
		const signal = init.signal ?? undefined;
		if (signal?.aborted === true) {
			this.abortedArrivals++;
			throw signal.reason;
		}
		const url = new URL(input);
		const method = init.method ?? "GET";
		const key = `${method} ${url.pathname}`;
		const attempt = (this.#attempts.get(key) ?? 0) + 1;
		this.#attempts.set(key, attempt);
		const named = new Headers(init.headers).get("Drive-Blocks");
		const req: FakeRequest = { method, path: url.pathname, attempt, blocks: named === null ? [] : named.split(",") };
		this.log.push(req);
		const injected = await this.fault?.(req);
		if (injected instanceof Error) throw injected;
		if (injected !== undefined) return injected;
		const auth = new Headers(init.headers).get("Authorization");
		if (auth !== "Bearer t0ken") return envelope(401, "UNAUTHENTICATED", "no token");
		return this.#route(method, url.pathname, init, signal);
	};

	/** Batch PUTs that named `hash`. */
	putsNaming(hash: string): number {
		return this.log.filter((r) => r.method === "PUT" && r.blocks.includes(hash)).length;
	}

	/** Requests matching `method` and a path regex. */
	count(method: string, path: RegExp): number {
		return this.log.filter((r) => r.method === method && path.test(r.path)).length;
	}

	async #route(method: string, path: string, init: RequestInit, signal: AbortSignal | undefined): Promise<Response> {
		if (method === "POST" && path === "/v1/uploads") {
			const body = JSON.parse(String(init.body)) as Record<string, unknown>;
			this.createBodies.push(body);
			const blocks = body.blocks as { hash: string; size: number }[];
			const session: FakeSession = {
				parentId: String(body.parent_id),
				name: String(body.name),
				size: Number(body.size),
				blocks,
				contentHash: typeof body.content_hash === "string" ? body.content_hash : undefined,
				body,
				moreBlocks: body.more_blocks === true,
			};
			const listed = blocks.reduce((n, b) => n + b.size, 0);
			if (session.moreBlocks ? listed > session.size : listed !== session.size)
				return envelope(400, "INVALID_REQUEST", "sizes do not add up");
			const id = `upl_${this.#nextId++}`;
			this.sessions.set(id, session);
			return Response.json({ upload_id: id, missing: this.#missing(session), expires_at: "2099-01-01T00:00:00.000Z" }, { status: 201 });
		}
		const m = /^\/v1\/uploads\/([^/]+)(?:\/(commit)|\/blocks\/([0-9a-f]{64})|\/(blocks|block-list))?$/.exec(path);
		const session = m?.[1] === undefined ? undefined : this.sessions.get(decodeURIComponent(m[1]));
		if (m === null || session === undefined) return envelope(404, "NOT_FOUND", "no such upload");
		const id = decodeURIComponent(m[1] ?? "");
		const blockHash = m[3];
		if (session.committed !== undefined && method !== "POST" && method !== "GET")
			return envelope(404, "NOT_FOUND", "upload already committed");
		if (method === "PUT" && blockHash !== undefined) {
			this.#arrived();
			try {
				const bytes = new Uint8Array(await new Response(init.body).arrayBuffer());
				await this.#pass(signal);
				if (sha256(bytes) !== blockHash) return envelope(422, "HASH_MISMATCH", "bytes do not match the hash");
				this.store.set(blockHash, bytes);
				this.putsAccepted++;
				return new Response(null, { status: 204 });
			} finally {
				this.inFlightPuts--;
			}
		}
		if (method === "POST" && m[4] === "block-list") {
			const body = JSON.parse(String(init.body)) as {
				offset: number;
				blocks: { hash: string; size: number }[];
				more_blocks?: boolean;
				content_hash?: string;
			};
			this.appendBodies.push(body);
			const listed = session.blocks.reduce((n, b) => n + b.size, 0);
			if (!session.moreBlocks || body.offset !== listed)
				return envelope(409, "UPLOAD_OFFSET_MISMATCH", "wrong offset", [{ offset: listed }]);
			const end = listed + body.blocks.reduce((n, b) => n + b.size, 0);
			if (body.more_blocks === true ? end > session.size : end !== session.size)
				return envelope(400, "INVALID_REQUEST", "sizes do not add up");
			session.blocks = [...session.blocks, ...body.blocks];
			session.moreBlocks = body.more_blocks === true;
			if (body.content_hash !== undefined) session.contentHash = body.content_hash;
			const appended = new Set(body.blocks.map((b) => b.hash));
			return Response.json({
				upload_id: id,
				missing: this.#missing(session).filter((h) => appended.has(h)),
				listed_bytes: end,
				more_blocks: session.moreBlocks,
			});
		}
		if (method === "PUT" && m[4] === "blocks") {
			// A batch: the blocks Drive-Blocks names, one after another, each as long as the list declared.
			this.#arrived();
			try {
				const hashes = (new Headers(init.headers).get("Drive-Blocks") ?? "").split(",");
				const bytes = new Uint8Array(await new Response(init.body).arrayBuffer());
				await this.#pass(signal);
				let at = 0;
				for (const hash of hashes) {
					const size = session.blocks.find((b) => b.hash === hash)?.size;
					if (size === undefined) return envelope(404, "NOT_FOUND", "not in the block list");
					const block = bytes.subarray(at, at + size);
					at += size;
					if (block.length !== size) return envelope(400, "INVALID_REQUEST", "the body ended inside a block");
					if (sha256(block) !== hash) return envelope(422, "HASH_MISMATCH", "bytes do not match the hash");
					this.store.set(hash, block.slice());
				}
				if (at !== bytes.length) return envelope(400, "INVALID_REQUEST", "the body is longer than its blocks");
				this.putsAccepted++;
				await this.afterStore?.();
				return new Response(null, { status: 204 });
			} finally {
				this.inFlightPuts--;
			}
		}
		if (method === "GET" && m[2] === undefined && blockHash === undefined && m[4] === undefined) {
			const listed = session.blocks.reduce((n, b) => n + b.size, 0);
			return Response.json({
				upload_id: id,
				missing: this.#missing(session),
				expires_at: "2099-01-01T00:00:00.000Z",
				listed_bytes: listed,
				more_blocks: session.moreBlocks,
			});
		}
		if (method === "POST" && m[2] === "commit") {
			this.commitBodies.push(JSON.parse(String(init.body)));
			if (session.committed !== undefined) return Response.json(session.committed.body, { status: session.committed.status });
			if (session.moreBlocks) return envelope(400, "INVALID_REQUEST", "the block list is not complete");
			this.beforeCommit?.(session);
			const missing = this.#missing(session);
			if (missing.length > 0) return envelope(409, "MISSING_BLOCKS", `${missing.length} blocks missing`, missing);
			const content = concat(session.blocks.map((b) => this.store.get(b.hash) ?? new Uint8Array(0)));
			if (session.contentHash === undefined) session.contentHash = sha256(content);
			if (sha256(content) !== session.contentHash) return envelope(400, "INVALID_REQUEST", "content_hash does not match");
			let file = this.files.find((f) => f.parentId === session.parentId && f.name === session.name);
			const created = file === undefined;
			if (file === undefined) {
				file = { id: `nod_${this.#nextId++}`, parentId: session.parentId, name: session.name, content, versions: 0 };
				this.files.push(file);
			}
			file.content = content;
			file.versions++;
			const node = {
				id: file.id,
				type: "file",
				name: file.name,
				parent_id: file.parentId,
				size: content.length,
				version_id: `ver_${file.versions}`,
				content_hash: session.contentHash,
			};
			const version = { id: `ver_${file.versions}`, node_id: file.id, size: content.length, content_hash: session.contentHash };
			session.committed = { status: created ? 201 : 200, body: { node, version, conflict: null } };
			return Response.json(session.committed.body, { status: session.committed.status });
		}
		if (method === "DELETE" && m[2] === undefined && blockHash === undefined) {
			this.sessions.delete(id);
			return new Response(null, { status: 204 });
		}
		return envelope(404, "NOT_FOUND", "no such route");
	}

	/**
	 * Holds block PUTs at the gate until `n` are in flight at once, then lets
	 * every PUT through. A client that never gets there is let through after
	 * a hang guard, so that the test fails on the count instead of hanging.
	 */
	holdUntilInFlight(n: number): void {
		let open = (): void => undefined;
		this.gate = new Promise((resolve) => (open = resolve));
		const guard = setTimeout(() => release(), HANG_GUARD_MS);
		const release = () => {
			clearTimeout(guard);
			this.gate = null;
			this.onPutArrived = undefined;
			open();
		};
		this.onPutArrived = () => {
			if (this.inFlightPuts >= n) release();
		};
	}

	/** Resolves once `n` block PUTs wait at the gate. */
	async whenHeld(n: number): Promise<void> {
		while (this.heldPuts < n) await new Promise((resolve) => setImmediate(resolve));
	}

	#arrived(): void {
		this.inFlightPuts++;
		this.maxInFlightPuts = Math.max(this.maxInFlightPuts, this.inFlightPuts);
		this.onPutArrived?.();
	}

	/** Waits at the gate, if it is closed; throws the signal's reason if the request was aborted meanwhile. */
	async #pass(signal: AbortSignal | undefined): Promise<void> {
		const gate = this.gate;
		if (gate !== null) {
			this.heldPuts++;
			try {
				await new Promise<void>((resolve, reject) => {
					if (signal?.aborted === true) reject(signal.reason);
					signal?.addEventListener("abort", () => reject(signal.reason), { once: true });
					void gate.then(resolve);
				});
			} finally {
				this.heldPuts--;
			}
		}
		if (signal?.aborted === true) throw signal.reason;
	}

	#missing(session: FakeSession): string[] {
		return [...new Set(session.blocks.map((b) => b.hash))].filter((h) => !this.store.has(h));
	}
}

function setup(options: { retries?: number } = {}): { server: FakeServer; client: DriveClient } {
	const server = new FakeServer();
	const client = new DriveClient({
		baseUrl: "https://drive.test/",
		token: () => "t0ken",
		fetch: server.fetch,
		backoffBaseMs: 1,
		backoffMaxMs: 5,
		retries: options.retries ?? 5,
	});
	return { server, client };
}

const TARGET = { parentId: "nod_root", name: "data.bin" };

// ---------------------------------------------------------------------------
// planUpload
// ---------------------------------------------------------------------------

describe("planUpload", () => {
	const data = randomBytes(10 * MiB + 12345, "plan");
	const expectedSizes = chunkBoundaries(data);

	it("cuts the same blocks as chunkBoundaries and hashes each and the whole", async () => {
		const plan = await planUpload(new Blob([data]));
		expect(plan.blocks.map((b) => b.size)).toEqual(expectedSizes);
		expect(plan.size).toBe(data.length);
		expect(plan.contentHash).toBe(sha256(data));
		let offset = 0;
		for (const block of plan.blocks) {
			expect(block.offset).toBe(offset);
			expect(block.hash).toBe(sha256(data.subarray(offset, offset + block.size)));
			offset += block.size;
		}
	});

	it("gives the same plan whatever the source kind and piece sizes", async () => {
		const reference = await planUpload(new Blob([data]));
		const sources: UploadSource[] = [
			streamOf(data, 1000),
			() => streamOf(data, 65537),
			iterableOf(data, 3 * MiB + 1),
			iterableOf(data, data.length),
		];
		for (const source of sources) expect(await planUpload(source)).toEqual(reference);
		expect(await planUpload(new Blob([data]), { createHash: () => createHash("sha256") })).toEqual(reference);
	});

	it("plans an empty file as no blocks", async () => {
		expect(await planUpload(new Blob([]))).toEqual({ blocks: [], size: 0, contentHash: EMPTY_SHA256 });
	});

	it("reports hashing progress up to the size", async () => {
		const seen: number[] = [];
		await planUpload(new Blob([data]), { onProgress: (p) => seen.push(p.bytesHashed) });
		expect(seen).toHaveLength(expectedSizes.length);
		expect(seen.at(-1)).toBe(data.length);
		expect([...seen].sort((a, b) => a - b)).toEqual(seen);
	});

	it("rejects a source of the wrong kind", async () => {
		await expect(planUpload(42 as unknown as UploadSource)).rejects.toBeInstanceOf(TypeError);
	});
});

// ---------------------------------------------------------------------------
// uploadFile
// ---------------------------------------------------------------------------

describe("uploadFile: the happy path", () => {
	it("uploads a Blob and the server rebuilds the exact bytes", async () => {
		const { server, client } = setup();
		const data = randomBytes(6 * MiB + 7, "happy");
		const result = await uploadFile(client, new Blob([data]), TARGET);
		const file = server.files[0];
		expectBytes(file?.content, data);
		expect(result.node.content_hash).toBe(sha256(data));
		expect(result.conflict).toBeNull();
		expect(result.uploadId).toBe("upl_1");
		expect(result.bytesSent).toBe(data.length);
		const create = server.createBodies[0];
		expect(create).toMatchObject({ parent_id: "nod_root", name: "data.bin", size: data.length, content_hash: sha256(data) });
		expect(create?.blocks).toEqual(
			chunkBoundaries(data).map((size, i, all) => {
				const offset = all.slice(0, i).reduce((n, s) => n + s, 0);
				return { hash: sha256(data.subarray(offset, offset + size)), size };
			}),
		);
	});

	it("sends a large Blob while hashing it: the block list goes in parts, and the file is read once", async () => {
		const { server, client } = setup();
		const data = randomBytes(16 * MiB + 5, "pipelined");
		const blob = new Blob([data]);
		// Counts reads: one stream() for the whole upload, and no slices (no second pass).
		const reads = { stream: 0, slice: 0 };
		const counted = {
			size: blob.size,
			stream: () => (reads.stream++, blob.stream()),
			slice: (...args: Parameters<Blob["slice"]>) => (reads.slice++, blob.slice(...args)),
			arrayBuffer: () => blob.arrayBuffer(),
		} as unknown as Blob;
		const result = await uploadFile(client, counted, { ...TARGET, batchBytes: 4 * MiB });
		expect(reads).toEqual({ stream: 1, slice: 0 });
		expectBytes(server.files[0]?.content, data);
		expect(result.node.content_hash).toBe(sha256(data));
		expect(result.bytesSent).toBe(data.length);
		const plan = await planUpload(new Blob([data]));
		// The create lists the first part; the appends list the rest, in order, the last one with the file's hash.
		const create = server.createBodies[0];
		expect(create).toMatchObject({ size: data.length, more_blocks: true });
		expect(create?.content_hash).toBeUndefined();
		const listed = [create?.blocks as { hash: string; size: number }[], ...server.appendBodies.map((a) => a.blocks)];
		expect(listed.flat()).toEqual(plan.blocks.map(({ hash, size }) => ({ hash, size })));
		expect(server.appendBodies.at(-1)).toMatchObject({ more_blocks: false, content_hash: sha256(data) });
		expect(server.appendBodies.slice(0, -1).every((a) => a.more_blocks === true)).toBe(true);
		// Blocks went up before the list was complete.
		const firstPut = server.log.findIndex((r) => r.method === "PUT");
		const lastAppend = server.log.findLastIndex((r) => r.path.endsWith("/block-list"));
		expect(firstPut).toBeLessThan(lastAppend);
	});

	it("resumes a session whose block list was cut short: lists the rest, then sends what is missing", async () => {
		const { server, client } = setup({ retries: 0 });
		const data = randomBytes(16 * MiB, "cut-short");
		// The second batch fails: by then the list is only partly sent.
		server.fault = (req) => (req.method === "PUT" && server.count("PUT", /\/blocks$/) === 2 ? envelope(403, "FORBIDDEN", "no") : undefined);
		let uploadId = "";
		const err = await uploadFile(client, new Blob([data]), {
			...TARGET,
			batchBytes: 2 * MiB,
			concurrency: 1,
			onSession: (s) => (uploadId = s.uploadId),
		}).catch((e: unknown) => e);
		expect(err).toMatchObject({ code: "FORBIDDEN" });
		const session = server.sessions.get(uploadId);
		expect(session?.moreBlocks).toBe(true);
		server.fault = undefined;
		const result = await uploadFile(client, new Blob([data]), { ...TARGET, uploadId });
		expectBytes(server.files[0]?.content, data);
		expect(result.node.content_hash).toBe(sha256(data));
		// The service hashes the stored blocks: the client cannot vouch for the part listed before.
		expect(server.appendBodies.at(-1)).toMatchObject({ more_blocks: false });
		expect(server.appendBodies.at(-1)?.content_hash).toBeUndefined();
	});

	it("reports a file edited in place before the resume, inside the part already listed", async () => {
		const { server, client } = setup({ retries: 0 });
		const data = randomBytes(16 * MiB, "edited-in-place");
		server.fault = (req) => (req.method === "PUT" && server.count("PUT", /\/blocks$/) === 2 ? envelope(403, "FORBIDDEN", "no") : undefined);
		let uploadId = "";
		await uploadFile(client, new Blob([data]), {
			...TARGET,
			batchBytes: 2 * MiB,
			concurrency: 1,
			onSession: (s) => (uploadId = s.uploadId),
		}).catch(() => undefined);
		server.fault = undefined;
		// Same size, one byte changed early in the file: its block was listed (and sent) before the crash.
		const edited = data.slice();
		edited[1000] = (edited[1000] ?? 0) ^ 1;
		const err = await uploadFile(client, new Blob([edited]), { ...TARGET, uploadId }).catch((e: unknown) => e);
		expect(err).toBeInstanceOf(SourceChangedError);
	});

	it("uploads from a stream factory, calling it once per pass", async () => {
		const { server, client } = setup();
		const data = randomBytes(5 * MiB, "factory");
		let calls = 0;
		const result = await uploadFile(
			client,
			() => {
				calls++;
				return streamOf(data, 100_000);
			},
			TARGET,
		);
		expect(calls).toBe(2);
		expectBytes(server.files[0]?.content, data);
		expect(result.bytesSent).toBe(data.length);
	});

	it("uploads an empty file", async () => {
		const { server, client } = setup();
		const result = await uploadFile(client, new Blob([]), TARGET);
		expect(server.createBodies[0]).toMatchObject({ size: 0, blocks: [], content_hash: EMPTY_SHA256 });
		expect(result.bytesSent).toBe(0);
		expect(server.files[0]?.content.length).toBe(0);
	});

	it("forwards base_version_id and on_conflict", async () => {
		const { server, client } = setup();
		await uploadFile(client, new Blob([randomBytes(1000, "x")]), { ...TARGET, baseVersionId: "ver_9", onConflict: "fail" });
		expect(server.createBodies[0]).toMatchObject({ base_version_id: "ver_9", on_conflict: "fail" });
		expect(server.commitBodies[0]).toEqual({});
	});

	it("forwards create_only, and refuses it with a base version before sending anything", async () => {
		const { server, client } = setup();
		await uploadFile(client, new Blob([randomBytes(1000, "co")]), { ...TARGET, createOnly: true, onConflict: "fail" });
		expect(server.createBodies[0]).toMatchObject({ create_only: true, on_conflict: "fail" });
		await expect(
			uploadFile(client, new Blob([randomBytes(10, "co2")]), { ...TARGET, createOnly: true, baseVersionId: "ver_9" }),
		).rejects.toThrow(TypeError);
		expect(server.createBodies).toHaveLength(1);
	});

	it("sends the full ordered block list but each distinct missing block once", async () => {
		const { server, client } = setup();
		// Zeros chunk identically every time (the gear hash of a constant
		// input is periodic), so this file repeats one block several times.
		const data = concat([new Uint8Array(13 * MiB), randomBytes(MiB, "tail")]);
		const plan = await planUpload(new Blob([data]));
		const distinct = new Set(plan.blocks.map((b) => b.hash));
		expect(distinct.size).toBeLessThan(plan.blocks.length);
		const result = await uploadFile(client, new Blob([data]), TARGET);
		expect(server.createBodies[0]?.blocks).toEqual(plan.blocks.map((b) => ({ hash: b.hash, size: b.size })));
		expect(server.log.flatMap((r) => r.blocks).sort()).toEqual([...distinct].sort());
		expectBytes(server.files[0]?.content, data);
		const firstOf = new Map<string, number>();
		for (const b of plan.blocks) if (!firstOf.has(b.hash)) firstOf.set(b.hash, b.size);
		expect(result.bytesSent).toBe([...firstOf.values()].reduce((n, s) => n + s, 0));
	});

	it("sends zero block bytes when the service already holds every block", async () => {
		const { server, client } = setup();
		const data = randomBytes(8 * MiB, "dedup");
		await uploadFile(client, new Blob([data]), TARGET);
		const putsBefore = server.count("PUT", /\/blocks$/);
		const again = await uploadFile(client, new Blob([data]), TARGET);
		expect(again.bytesSent).toBe(0);
		expect(server.count("PUT", /\/blocks$/)).toBe(putsBefore);
		expect(server.files[0]?.versions).toBe(2);
	});

	it("sends only the changed blocks after a one-byte insert", async () => {
		const { client } = setup();
		const data = randomBytes(12 * MiB, "delta");
		await uploadFile(client, new Blob([data]), TARGET);
		const edited = concat([data.subarray(0, 6 * MiB), new Uint8Array([42]), data.subarray(6 * MiB)]);
		const result = await uploadFile(client, new Blob([edited]), TARGET);
		expect(result.bytesSent).toBeGreaterThan(0);
		expect(result.bytesSent).toBeLessThanOrEqual(2 * 4 * MiB);
	});
});

describe("uploadFile: concurrency and progress", () => {
	// The first PUTs wait until `concurrency` of them are in flight at once:
	// the client must get there, and never past it (no delay decides it).
	it("has exactly `concurrency` block PUTs in flight, never more", async () => {
		for (const concurrency of [1, 3, 4]) {
			const { server, client } = setup();
			server.holdUntilInFlight(concurrency);
			await uploadFile(client, new Blob([randomBytes(8 * MiB, `conc${concurrency}`)]), { ...TARGET, concurrency, batchBytes: MiB });
			expect(server.count("PUT", /\/blocks$/)).toBeGreaterThan(concurrency);
			expect(server.maxInFlightPuts).toBe(concurrency);
		}
	});

	it("sends the missing blocks in batches of about batchBytes, 16 MiB by default", async () => {
		const data = randomBytes(40 * MiB, "batches");
		const sizes = new Map((await planUpload(new Blob([data]))).blocks.map((b) => [b.hash, b.size]));
		for (const [batchBytes, expected] of [
			[undefined, 16 * MiB],
			[3 * MiB, 3 * MiB],
		] as const) {
			const { server, client } = setup();
			await uploadFile(client, new Blob([data]), batchBytes === undefined ? TARGET : { ...TARGET, batchBytes });
			const batches = server.log.filter((r) => r.method === "PUT").map((r) => r.blocks.reduce((n, h) => n + (sizes.get(h) ?? 0), 0));
			expect(batches.reduce((a, b) => a + b, 0)).toBe(data.length);
			// A batch closes before the block that would take it past batchBytes.
			for (const bytes of batches.slice(0, -1)) expect(bytes).toBeLessThanOrEqual(expected);
			// ... and only then: a batch and the first block of the next exceed it.
			for (let i = 0; i + 1 < batches.length; i++)
				expect((batches[i] ?? 0) + (sizes.get(server.log.filter((r) => r.method === "PUT")[i + 1]?.blocks[0] ?? "") ?? 0)).toBeGreaterThan(
					expected,
				);
			expectBytes(server.files[0]?.content, data);
		}
		const { client } = setup();
		for (const batchBytes of [0, 1.5, 96_000_000])
			await expect(uploadFile(client, new Blob([data]), { ...TARGET, batchBytes })).rejects.toThrow(RangeError);
	});

	it("defaults to 4 PUTs in flight", async () => {
		const { server, client } = setup();
		server.holdUntilInFlight(4);
		await uploadFile(client, () => streamOf(randomBytes(12 * MiB, "conc-default")), { ...TARGET, batchBytes: MiB });
		expect(server.maxInFlightPuts).toBe(4);
	});

	it("reports hashing, then uploading, then committing, with consistent counters", async () => {
		const { client } = setup();
		const data = randomBytes(6 * MiB, "progress");
		const events: UploadProgress[] = [];
		await uploadFile(client, new Blob([data]), { ...TARGET, onProgress: (p) => events.push(p) });
		const phases = events.map((e) => e.phase).filter((p, i, all) => all[i - 1] !== p);
		expect(phases).toEqual(["hashing", "uploading", "committing"]);
		const last = events.at(-1);
		const blocks = chunkBoundaries(data).length;
		expect(last).toEqual({
			phase: "committing",
			bytesHashed: data.length,
			bytesSent: data.length,
			bytesToSend: data.length,
			blocksTotal: blocks,
			blocksMissing: 0,
		});
		const uploading = events.filter((e) => e.phase === "uploading");
		for (let i = 1; i < uploading.length; i++) {
			const [a, b] = [uploading[i - 1], uploading[i]];
			expect(b?.bytesSent).toBeGreaterThanOrEqual(a?.bytesSent ?? 0);
			expect(b?.blocksMissing).toBeLessThanOrEqual(a?.blocksMissing ?? 0);
		}
		expect(uploading[0]).toMatchObject({ bytesSent: 0, bytesToSend: data.length, blocksMissing: blocks });
	});
});

describe("uploadFile: retries", () => {
	it("retries block PUTs that fail with 503, 429 and network errors", async () => {
		const { server, client } = setup();
		const data = randomBytes(5 * MiB, "retry");
		const failures = [
			() => envelope(503, "INTERNAL", "busy"),
			() => new Response("slow down", { status: 429, headers: { "Retry-After": "0" } }),
			() => new TypeError("fetch failed"),
		];
		server.fault = (req) => (req.method === "PUT" && req.attempt <= failures.length ? failures[req.attempt - 1]?.() : undefined);
		const result = await uploadFile(client, new Blob([data]), TARGET);
		// 5 MiB is one batch (16 MiB by default), tried four times.
		const puts = server.log.filter((r) => r.method === "PUT");
		expect(puts.map((r) => r.blocks.length)).toEqual(Array(failures.length + 1).fill(chunkBoundaries(data).length));
		expectBytes(server.files[0]?.content, data);
		expect(result.bytesSent).toBe(data.length);
	});

	it("does not retry a block the server rejects with HASH_MISMATCH", async () => {
		const { server, client } = setup();
		server.fault = (req) => (req.method === "PUT" ? envelope(422, "HASH_MISMATCH", "corrupt") : undefined);
		const err = await uploadFile(client, new Blob([randomBytes(300_000, "mismatch")]), TARGET).catch((e: unknown) => e);
		expect(err).toBeInstanceOf(DriveApiError);
		expect(err).toMatchObject({ code: "HASH_MISMATCH", status: 422, requestId: "req_fake" });
		expect(server.count("PUT", /\/blocks$/)).toBe(1);
		expect(server.count("POST", /\/commit$/)).toBe(0);
	});

	it("retries the session create and the commit on 5xx", async () => {
		const { server, client } = setup();
		server.fault = (req) => (req.method === "POST" && req.attempt === 1 ? envelope(500, "INTERNAL", "oops") : undefined);
		await uploadFile(client, new Blob([randomBytes(MiB, "post-retry")]), TARGET);
		expect(server.count("POST", /^\/v1\/uploads$/)).toBe(2);
		expect(server.count("POST", /\/commit$/)).toBe(2);
		expect(server.files).toHaveLength(1);
	});
});

describe("uploadFile: interruption and resume", () => {
	it("resumes a session whose block PUTs ran out of retries, sending only what is missing", async () => {
		const { server, client } = setup({ retries: 2 });
		const data = randomBytes(10 * MiB, "resume");
		const plan = await planUpload(new Blob([data]));
		const doomed = plan.blocks[Math.floor(plan.blocks.length / 2)]?.hash ?? "";
		server.fault = (req) => (req.blocks.includes(doomed) ? envelope(503, "INTERNAL", "down") : undefined);
		let uploadId = "";
		const batching = { concurrency: 1, batchBytes: MiB };
		const err = await uploadFile(client, new Blob([data]), { ...TARGET, ...batching, onSession: (s) => (uploadId = s.uploadId) }).catch(
			(e: unknown) => e,
		);
		expect(err).toMatchObject({ code: "INTERNAL", status: 503 });
		expect(server.putsNaming(doomed)).toBe(3);
		expect(server.files).toHaveLength(0);
		expect(uploadId).toBe("upl_1");
		const held = new Set(server.store.keys());
		const heldBytes = [...server.store.values()].reduce((n, b) => n + b.length, 0);
		expect(held.size).toBeGreaterThan(0);

		server.fault = undefined;
		const sessions: boolean[] = [];
		const result = await uploadFile(client, new Blob([data]), { ...TARGET, uploadId, onSession: (s) => sessions.push(s.resumed) });
		expect(sessions).toEqual([true]);
		expect(result.uploadId).toBe(uploadId);
		expect(server.count("POST", /^\/v1\/uploads$/)).toBe(1);
		expect(server.count("GET", /^\/v1\/uploads\/upl_1$/)).toBe(1);
		expect(result.bytesSent).toBe(data.length - heldBytes);
		for (const hash of held) expect(server.putsNaming(hash)).toBe(1);
		expectBytes(server.files[0]?.content, data);
	});

	it("aborts everything in flight, then resumes from the session", async () => {
		const { server, client } = setup();
		const data = randomBytes(16 * MiB, "abort");
		// Once half the bytes are stored, later PUTs wait at a gate that never
		// opens, and the PUT that got there answers only once one waits: when
		// the client aborts at half, a PUT is always in flight.
		server.afterStore = async () => {
			if (server.gate !== null || [...server.store.values()].reduce((n, b) => n + b.length, 0) < data.length / 2) return;
			server.gate = new Promise<void>(() => undefined);
			await server.whenHeld(1);
		};
		const controller = new AbortController();
		let uploadId = "";
		const err = await uploadFile(client, () => streamOf(data), {
			...TARGET,
			batchBytes: MiB,
			signal: controller.signal,
			onSession: (s) => (uploadId = s.uploadId),
			onProgress: (p) => {
				if (p.bytesSent >= data.length / 2) controller.abort();
			},
		}).catch((e: unknown) => e);
		expect(err).toMatchObject({ name: "AbortError" });
		expect(server.inFlightPuts).toBe(0);
		expect(server.count("POST", /\/commit$/)).toBe(0);
		const sentFirst = [...server.store.values()].reduce((n, b) => n + b.length, 0);
		expect(sentFirst).toBeGreaterThanOrEqual(data.length / 2);
		expect(sentFirst).toBeLessThan(data.length);

		server.gate = null;
		server.afterStore = undefined;
		const result = await uploadFile(client, () => streamOf(data), { ...TARGET, uploadId });
		expect(result.bytesSent).toBe(data.length - sentFirst);
		expectBytes(server.files[0]?.content, data);
		// Nothing kept running after the rejection: a request of the aborted
		// upload made since (while the resume ran) would carry its aborted signal.
		expect(server.abortedArrivals).toBe(0);
	});

	it("rejects at once when the signal is already aborted", async () => {
		const { server, client } = setup();
		const err = await uploadFile(client, new Blob([randomBytes(1000, "pre")]), { ...TARGET, signal: AbortSignal.abort() }).catch(
			(e: unknown) => e,
		);
		expect(err).toMatchObject({ name: "AbortError" });
		expect(server.log).toHaveLength(0);
	});

	it("refuses to resume a session created for other content", async () => {
		const { server, client } = setup();
		server.fault = (req) => (req.method === "PUT" ? envelope(403, "FORBIDDEN", "no") : undefined);
		let uploadId = "";
		await uploadFile(client, new Blob([randomBytes(2 * MiB, "one")]), { ...TARGET, onSession: (s) => (uploadId = s.uploadId) }).catch(
			() => undefined,
		);
		server.fault = undefined;
		const err = await uploadFile(client, new Blob([randomBytes(2 * MiB, "two")]), { ...TARGET, uploadId }).catch((e: unknown) => e);
		expect(err).toBeInstanceOf(SourceChangedError);
		expect(server.count("PUT", /\/blocks$/)).toBe(1);
	});

	it("returns the same commit when the session to resume was already committed", async () => {
		const { server, client } = setup();
		const data = randomBytes(2 * MiB, "committed");
		const first = await uploadFile(client, new Blob([data]), TARGET);
		const again = await uploadFile(client, new Blob([data]), { ...TARGET, uploadId: first.uploadId });
		expect(again.version.id).toBe(first.version.id);
		expect(again.bytesSent).toBe(0);
		expect(server.files[0]?.versions).toBe(1);
	});

	it("reports a resumed session that committed other content than the file now has", async () => {
		const { server, client } = setup();
		const data = randomBytes(4 * MiB, "edited-later");
		// The commit fails after every block arrived, leaving the session open.
		server.fault = (req) => (req.path.endsWith("/commit") ? envelope(403, "FORBIDDEN", "not now") : undefined);
		let uploadId = "";
		await uploadFile(client, new Blob([data]), { ...TARGET, onSession: (s) => (uploadId = s.uploadId) }).catch(() => undefined);
		server.fault = undefined;
		// Then the file is edited inside blocks the session no longer misses.
		const edited = data.slice();
		edited[0] = (edited[0] ?? 0) ^ 1;
		const err = await uploadFile(client, new Blob([edited]), { ...TARGET, uploadId }).catch((e: unknown) => e);
		expect(err).toBeInstanceOf(SourceChangedError);
		expect((err as Error).message).toMatch(/upload again without uploadId/);
		expectBytes(server.files[0]?.content, data);
	});

	it("lets NOT_FOUND through when the session to resume is gone", async () => {
		const { client } = setup();
		const err = await uploadFile(client, new Blob([randomBytes(1000, "gone")]), { ...TARGET, uploadId: "upl_404" }).catch(
			(e: unknown) => e,
		);
		expect(err).toMatchObject({ code: "NOT_FOUND", status: 404 });
	});

	it("skips pass 1 when given a plan", async () => {
		const { server, client } = setup();
		const data = randomBytes(3 * MiB, "given-plan");
		const plan = await planUpload(new Blob([data]));
		// A bare stream is fine here: with a plan, sending is its only read.
		const result = await uploadFile(client, streamOf(data), { ...TARGET, plan });
		expect(result.bytesSent).toBe(data.length);
		expectBytes(server.files[0]?.content, data);
	});
});

describe("uploadFile: the MISSING_BLOCKS loop", () => {
	it("sends the blocks a commit reports missing and commits again", async () => {
		const { server, client } = setup();
		const data = randomBytes(8 * MiB, "missing");
		let commits = 0;
		const evicted: string[] = [];
		server.beforeCommit = (session) => {
			if (++commits > 1) return;
			// Blocks that vanished between upload and commit (e.g. expired).
			for (const b of session.blocks.slice(1, 3)) {
				server.store.delete(b.hash);
				evicted.push(b.hash);
			}
		};
		const result = await uploadFile(client, new Blob([data]), TARGET);
		expect(commits).toBe(2);
		const evictedBytes = (server.createBodies[0]?.blocks as { hash: string; size: number }[]).slice(1, 3).reduce((n, b) => n + b.size, 0);
		expect(result.bytesSent).toBe(data.length + evictedBytes);
		for (const hash of evicted) expect(server.putsNaming(hash)).toBe(2);
		expectBytes(server.files[0]?.content, data);
	});

	it("asks the session what is missing when the 409 carries no details", async () => {
		const { server, client } = setup();
		let commits = 0;
		server.fault = (req) => (req.path.endsWith("/commit") && ++commits === 1 ? envelope(409, "MISSING_BLOCKS", "missing") : undefined);
		await uploadFile(client, new Blob([randomBytes(2 * MiB, "nodetails")]), TARGET);
		expect(server.count("GET", /^\/v1\/uploads\/upl_1$/)).toBe(1);
		expect(server.files).toHaveLength(1);
	});

	it("gives up after three rounds", async () => {
		const { server, client } = setup();
		server.beforeCommit = (session) => server.store.delete(session.blocks[0]?.hash ?? "");
		const err = await uploadFile(client, new Blob([randomBytes(2 * MiB, "forever")]), TARGET).catch((e: unknown) => e);
		expect(err).toMatchObject({ code: "MISSING_BLOCKS" });
		expect(server.count("POST", /\/commit$/)).toBe(3);
	});
});

describe("uploadFile: the source", () => {
	it("fails with SourceChangedError when a block read again no longer matches", async () => {
		const { server, client } = setup();
		const data = randomBytes(6 * MiB, "changing");
		let calls = 0;
		const err = await uploadFile(
			client,
			() => {
				const copy = data.slice();
				if (calls++ > 0) copy[4 * MiB] = (copy[4 * MiB] ?? 0) ^ 1;
				return streamOf(copy);
			},
			TARGET,
		).catch((e: unknown) => e);
		expect(err).toBeInstanceOf(SourceChangedError);
		expect((err as Error).message).toMatch(/changed while uploading/);
		expect(server.count("POST", /\/commit$/)).toBe(0);
		// The altered block never left the client: every PUT was accepted, and
		// only blocks of the original file were stored.
		const original = new Set((await planUpload(new Blob([data]))).blocks.map((b) => b.hash));
		for (const hash of server.store.keys()) expect(original.has(hash)).toBe(true);
		expect(server.count("PUT", /\/blocks$/)).toBe(server.putsAccepted);
	});

	it("fails with SourceChangedError when the file got shorter", async () => {
		const { client } = setup();
		const data = randomBytes(6 * MiB, "shrinking");
		let calls = 0;
		const err = await uploadFile(client, () => streamOf(calls++ === 0 ? data : data.subarray(0, 3 * MiB)), TARGET).catch((e: unknown) => e);
		expect(err).toBeInstanceOf(SourceChangedError);
	});

	it("refuses a bare stream with a TypeError when blocks must be read again", async () => {
		const { server, client } = setup();
		const err = await uploadFile(client, streamOf(randomBytes(2 * MiB, "bare")), TARGET).catch((e: unknown) => e);
		expect(err).toBeInstanceOf(TypeError);
		expect((err as Error).message).toMatch(/factory/);
		expect(server.count("PUT", /\/blocks$/)).toBe(0);
	});

	it("accepts a bare stream or iterable when every block is already held", async () => {
		const { client } = setup();
		const data = randomBytes(3 * MiB, "bare-dedup");
		await uploadFile(client, new Blob([data]), TARGET);
		expect((await uploadFile(client, streamOf(data), TARGET)).bytesSent).toBe(0);
		expect((await uploadFile(client, iterableOf(data, 12345), TARGET)).bytesSent).toBe(0);
	});
});

// ---------------------------------------------------------------------------
// DriveClient
// ---------------------------------------------------------------------------

describe("DriveClient", () => {
	function counting(responses: (() => Response | Error)[]): {
		fetch: (input: string, init: RequestInit) => Promise<Response>;
		calls: RequestInit[];
	} {
		const calls: RequestInit[] = [];
		return {
			calls,
			fetch: async (_input, init) => {
				calls.push(init);
				const next = responses[Math.min(calls.length, responses.length) - 1];
				const out = next?.() ?? new Response(null, { status: 204 });
				if (out instanceof Error) throw out;
				return out;
			},
		};
	}

	it("decodes the error envelope into a DriveApiError", async () => {
		const { fetch } = counting([() => envelope(409, "MISSING_BLOCKS", "2 missing", ["a", "b"])]);
		const client = new DriveClient({ baseUrl: "https://x.test", fetch });
		const err = await client.json("POST", "/v1/uploads/u/commit", { json: {} }).catch((e: unknown) => e);
		expect(err).toBeInstanceOf(DriveApiError);
		expect(err).toMatchObject({ code: "MISSING_BLOCKS", status: 409, message: "2 missing", details: ["a", "b"], requestId: "req_fake" });
	});

	it("never retries a 4xx other than 429", async () => {
		for (const status of [400, 401, 403, 404, 409, 413, 422]) {
			const { fetch, calls } = counting([() => envelope(status, "INVALID_REQUEST", "no")]);
			const client = new DriveClient({ baseUrl: "https://x.test", fetch, backoffBaseMs: 1 });
			await expect(client.send("GET", "/v1/x")).rejects.toMatchObject({ status });
			expect(calls).toHaveLength(1);
		}
	});

	it("does not retry 507 QUOTA_EXCEEDED", async () => {
		const { fetch, calls } = counting([() => envelope(507, "QUOTA_EXCEEDED", "full")]);
		const client = new DriveClient({ baseUrl: "https://x.test", fetch, backoffBaseMs: 1 });
		await expect(client.send("GET", "/v1/x")).rejects.toMatchObject({ code: "QUOTA_EXCEEDED" });
		expect(calls).toHaveLength(1);
	});

	it("retries 5xx and network errors up to `retries`, then throws the last failure", async () => {
		const { fetch, calls } = counting([
			() => new TypeError("fetch failed"),
			() => new Response("<html>bad gateway</html>", { status: 502, headers: { "Request-Id": "req_hdr" } }),
		]);
		const client = new DriveClient({ baseUrl: "https://x.test", fetch, backoffBaseMs: 1, retries: 3 });
		const err = await client.send("GET", "/v1/x").catch((e: unknown) => e);
		expect(calls).toHaveLength(4);
		expect(err).toMatchObject({ code: "HTTP_ERROR", status: 502, requestId: "req_hdr" });
	});

	it("honours Retry-After on 429", async () => {
		const { fetch, calls } = counting([() => envelope(429, "RATE_LIMITED", "slow"), () => new Response(null, { status: 204 })]);
		const withHeader = async (): Promise<Response> => {
			const res = await fetch("", {});
			if (res.status !== 429) return res;
			return new Response(await res.text(), { status: 429, headers: { "Retry-After": "1" } });
		};
		// A clock the test moves: the retry must wait the second Retry-After asks for, not a millisecond less.
		vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout"] });
		try {
			const client = new DriveClient({ baseUrl: "https://x.test", fetch: withHeader, backoffBaseMs: 1 });
			let waiting = (): void => undefined;
			const sleeping = new Promise<void>((resolve) => (waiting = resolve));
			const sent = client.send("GET", "/v1/x", { onRetry: () => waiting() });
			await sleeping;
			await vi.advanceTimersByTimeAsync(999);
			expect(calls).toHaveLength(1);
			await vi.advanceTimersByTimeAsync(1);
			await sent;
			expect(calls).toHaveLength(2);
		} finally {
			vi.useRealTimers();
		}
	});

	it("gives up at once when Retry-After exceeds maxRetryAfterMs", async () => {
		const { fetch, calls } = counting([() => new Response("{}", { status: 429, headers: { "Retry-After": "3600" } })]);
		const client = new DriveClient({ baseUrl: "https://x.test", fetch, maxRetryAfterMs: 60_000 });
		await expect(client.send("GET", "/v1/x")).rejects.toMatchObject({ status: 429 });
		expect(calls).toHaveLength(1);
	});

	it("parses Retry-After as seconds or an HTTP-date", () => {
		expect(parseRetryAfter("7")).toBe(7000);
		expect(parseRetryAfter("Wed, 21 Oct 2015 07:28:10 GMT", Date.parse("Wed, 21 Oct 2015 07:28:00 GMT"))).toBe(10_000);
		expect(parseRetryAfter("soon")).toBeUndefined();
		expect(parseRetryAfter(null)).toBeUndefined();
	});

	it("asks the token provider before every attempt", async () => {
		const { fetch, calls } = counting([() => envelope(503, "INTERNAL", "x"), () => new Response(null, { status: 204 })]);
		let n = 0;
		const client = new DriveClient({ baseUrl: "https://x.test/", fetch, backoffBaseMs: 1, token: async () => `tok${++n}` });
		await client.send("GET", "/v1/x");
		expect(calls.map((c) => new Headers(c.headers).get("Authorization"))).toEqual(["Bearer tok1", "Bearer tok2"]);
	});

	it("stops waiting for a retry when the signal aborts", async () => {
		const { fetch, calls } = counting([() => new Response("{}", { status: 503, headers: { "Retry-After": "30" } })]);
		const client = new DriveClient({ baseUrl: "https://x.test", fetch });
		const controller = new AbortController();
		const delays: number[] = [];
		// The client starts its 30 s wait right after onRetry: abort in the middle of it.
		const onRetry = ({ delayMs }: { delayMs: number }) => {
			delays.push(delayMs);
			queueMicrotask(() => controller.abort());
		};
		await expect(client.send("GET", "/v1/x", { signal: controller.signal, onRetry })).rejects.toMatchObject({ name: "AbortError" });
		expect(delays).toEqual([30_000]);
		// Had the wait gone on, the retry would have made a second call.
		expect(calls).toHaveLength(1);
	});

	it("builds URLs from the base URL and query", () => {
		const client = new DriveClient({ baseUrl: "https://x.test/api/" });
		expect(client.url("/v1/nodes/a/children", { limit: 10, cursor: undefined, on_conflict: "fail" })).toBe(
			"https://x.test/api/v1/nodes/a/children?limit=10&on_conflict=fail",
		);
	});
});
