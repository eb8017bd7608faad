/**
 * The client side of upload sessions (docs/api.md, "Upload sessions"): chunk a
 * file with the shared content-defined chunker, tell the service which blocks
 * make it up, send only the blocks it lacks, and commit.
 *
 * A Blob (a browser `File`, Node's `fs.openAsBlob`) is read once: as it is
 * chunked and hashed, its block list goes to the session in parts, and each
 * part's missing blocks are sent from the bytes just hashed
 * ({@link listWhileSending}).
 *
 * Any other source, a resumed session and a commit that reports blocks
 * missing take two passes:
 * 1. {@link planUpload} chunks and hashes everything (each block's SHA-256
 *    and the whole file's), keeping only `{hash, size, offset}` per block, so
 *    memory stays bounded whatever the file size.
 * 2. After the session answers with the missing blocks, those blocks are
 *    read again, re-verified against their hashes and sent in batches of
 *    several blocks per request (`PUT /v1/uploads/:id/blocks`), with bounded
 *    concurrency and retries.
 *
 * The second pass needs the bytes again, so the source must be re-readable:
 * a Blob (a browser `File`, Node's `fs.openAsBlob`) is sliced at the blocks'
 * offsets; a `() => ReadableStream` factory is called for a fresh stream. A
 * bare ReadableStream or AsyncIterable can be read once only: it works when
 * nothing has to be sent (everything deduplicated) or when a `plan` was given
 * (then pass 2 is its only read), and otherwise fails with a TypeError.
 *
 * Only fetch, WebCrypto, Blob and ReadableStream are used, so this runs in
 * Node 22 and browsers.
 *
 * @module
 */
import { sha256 as nobleSha256 } from "@noble/hashes/sha2.js";
import { Chunker } from "../shared/chunking";
import { isSha256Hex, sha256Hex, toHex } from "../shared/crypto";
import { MAX_BLOCK_BYTES } from "../shared/limits";
import type { CommitResult } from "../shared/schemas/nodes";
import { DriveApiError, type DriveClient } from "./http";

/** One block of a planned upload. */
export interface PlannedBlock {
	/** SHA-256 of the block, lowercase hex: its name on the wire. */
	hash: string;
	/** Bytes; at most 4 MiB from the chunker, at most 8 MiB on the wire. */
	size: number;
	/** Where the block starts in the file. */
	offset: number;
}

/** The result of pass 1: everything the session needs, nothing of the bytes. */
export interface UploadPlan {
	/** Every block in file order, duplicates included: the server builds the file from this order. */
	blocks: PlannedBlock[];
	/** Total bytes. */
	size: number;
	/** SHA-256 of the whole file, lowercase hex. */
	contentHash: string;
}

/** What {@link uploadFile} can read. See the module comment for which kinds can be read twice. */
export type UploadSource = Blob | ReadableStream<Uint8Array> | (() => ReadableStream<Uint8Array>) | AsyncIterable<Uint8Array>;

/** An incremental hash, e.g. `@noble/hashes`' `sha256.create()` or Node's `createHash("sha256")`. */
export interface IncrementalHash {
	update(data: Uint8Array): unknown;
	digest(): Uint8Array;
}

/** Options of {@link planUpload}. */
export interface PlanOptions {
	signal?: AbortSignal;
	/** Called after each block is hashed. */
	onProgress?: (p: { bytesHashed: number; blocks: number }) => void;
	/**
	 * Factory of the whole-file SHA-256; defaults to `@noble/hashes`, which
	 * runs everywhere (WebCrypto cannot hash incrementally). Node callers may
	 * pass `() => createHash("sha256")` from `node:crypto`, which is much
	 * faster.
	 */
	createHash?: () => IncrementalHash;
}

/** A progress report of {@link uploadFile}. */
export interface UploadProgress {
	/** With a Blob, "uploading" starts while hashing goes on (`bytesHashed` keeps growing). */
	phase: "hashing" | "uploading" | "committing";
	/** Bytes chunked and hashed in pass 1 (the file size once hashing is over). */
	bytesHashed: number;
	/** Block bytes the server has acknowledged so far. */
	bytesSent: number;
	/** `bytesSent` plus the bytes of the blocks still to send; grows as each part of a Blob's block list is answered, and if a commit reports more missing blocks. */
	bytesToSend: number;
	/** Blocks in the file, duplicates included (during hashing: so far). */
	blocksTotal: number;
	/** Distinct blocks still to send in the current round. */
	blocksMissing: number;
}

/** The session an upload runs in, reported as soon as it is known. */
export interface UploadSessionInfo {
	uploadId: string;
	expiresAt: string;
	/** True when `options.uploadId` was resumed, false for a new session. */
	resumed: boolean;
}

/** Options of {@link uploadFile}. */
export interface UploadOptions {
	/** The folder to create the file in. Ignored when resuming: the session already names it. */
	parentId: string;
	/** The file name. Ignored when resuming. */
	name: string;
	/** The version this upload replaces, for conflict detection. Ignored when resuming. */
	baseVersionId?: string;
	/** On a lost race: keep a conflicted copy (the server's default) or fail with 409 `VERSION_CONFLICT`. Ignored when resuming. */
	onConflict?: "copy" | "fail";
	/**
	 * Create a new file only (a sync client uploading a file it has never
	 * seen remotely): if a file has the name when the upload is committed, it
	 * is not replaced; the upload becomes a conflicted copy beside it, or fails
	 * with 409 `VERSION_CONFLICT` under `onConflict: "fail"`. Not with
	 * `baseVersionId`. Ignored when resuming: the session keeps it.
	 */
	createOnly?: boolean;
	/** Block requests (batches) in flight at once; default 4. */
	concurrency?: number;
	/**
	 * Block bytes per request: missing blocks go up in batches of about this
	 * size (`PUT /v1/uploads/:id/blocks`), one request per batch; default
	 * 16 MiB, at most 87 MB. Smaller batches lose less to a dropped
	 * connection on a slow link; memory holds about `concurrency` + 1
	 * batches.
	 */
	batchBytes?: number;
	/** Retries of each request (block PUTs, create, commit) on retryable failures; default: the client's (5 unless configured). */
	retries?: number;
	/** Aborts everything in flight; the promise rejects with the signal's reason. The session stays resumable. */
	signal?: AbortSignal;
	onProgress?: (p: UploadProgress) => void;
	/**
	 * Called once the session exists, before any block is sent. Persist
	 * `uploadId` here to resume after a crash: pass it back as `uploadId`.
	 */
	onSession?: (s: UploadSessionInfo) => void;
	/** Resume this session: ask it what is missing instead of creating a new one. */
	uploadId?: string;
	/**
	 * The result of an earlier {@link planUpload} of the same source, to skip
	 * pass 1 (e.g. when resuming a large file). Blocks are still verified
	 * against their hashes when they are read to be sent.
	 */
	plan?: UploadPlan;
	/** See {@link PlanOptions.createHash}. */
	createHash?: () => IncrementalHash;
}

/** What {@link uploadFile} resolves to: the commit's answer, plus the session and the bytes sent. */
export interface UploadResult extends CommitResult {
	uploadId: string;
	/** Block bytes sent and acknowledged in this call (0 when the service already held every block). */
	bytesSent: number;
}

/**
 * The source no longer has the bytes it had when it was hashed (or when the
 * session was created). Nothing wrong was sent: every block is verified
 * before it leaves, and the server verifies it again.
 */
export class SourceChangedError extends Error {
	override readonly name = "SourceChangedError";
}

const DEFAULT_CONCURRENCY = 4;
const DEFAULT_BATCH_BYTES = 16 * 1024 * 1024;
/** Below the server's 100 MB request limit, with room for a last block that overshoots {@link UploadOptions.batchBytes}. */
const MAX_BATCH_BYTES = 96_000_000;
/** The server's limit on blocks named in one batch. */
const MAX_BATCH_BLOCKS = 512;
/** Commit rounds answered with MISSING_BLOCKS before giving up; one is normal (a block expired in between), three means something is wrong. */
const MAX_COMMIT_ROUNDS = 3;
/** Block digests running ahead of the reader in pass 1: enough to keep WebCrypto's worker threads busy, bounded to 4 blocks of memory. */
const HASH_AHEAD = 4;

// ---------------------------------------------------------------------------
// Reading sources
// ---------------------------------------------------------------------------

function isBlob(source: UploadSource): source is Blob {
	// Duck-typed rather than `instanceof Blob`: a Blob from another realm (an
	// iframe, a polyfill, undici's in older Node) is just as good.
	return (
		typeof source === "object" &&
		source !== null &&
		typeof (source as Blob).slice === "function" &&
		typeof (source as Blob).arrayBuffer === "function" &&
		typeof (source as Blob).stream === "function" &&
		typeof (source as Blob).size === "number"
	);
}

function isReadableStream(source: UploadSource): source is ReadableStream<Uint8Array> {
	return typeof source === "object" && source !== null && typeof (source as ReadableStream<Uint8Array>).getReader === "function";
}

function throwIfAborted(signal: AbortSignal | undefined): void {
	if (signal?.aborted === true) throw signal.reason ?? new DOMException("The operation was aborted.", "AbortError");
}

function asBytes(value: unknown): Uint8Array {
	if (value instanceof Uint8Array) return value;
	throw new TypeError("upload source yielded something other than a Uint8Array");
}

/**
 * The pieces of a stream. Aborting cancels the stream, which also settles a
 * pending read; stopping early (an error, or the consumer returning) cancels
 * it too, so the producer stops reading a file nobody wants any more.
 */
async function* streamPieces(stream: ReadableStream<Uint8Array>, signal: AbortSignal | undefined): AsyncGenerator<Uint8Array> {
	const reader = stream.getReader();
	let finished = false;
	const onAbort = (): void => {
		reader.cancel(signal?.reason).catch(() => undefined);
	};
	signal?.addEventListener("abort", onAbort, { once: true });
	try {
		throwIfAborted(signal);
		for (;;) {
			const { done, value } = await reader.read();
			throwIfAborted(signal);
			if (done) {
				finished = true;
				return;
			}
			yield asBytes(value);
		}
	} finally {
		signal?.removeEventListener("abort", onAbort);
		if (!finished) await reader.cancel().catch(() => undefined);
		reader.releaseLock();
	}
}

async function* iterablePieces(iterable: AsyncIterable<Uint8Array>, signal: AbortSignal | undefined): AsyncGenerator<Uint8Array> {
	throwIfAborted(signal);
	// for-await calls the iterator's return() when we stop early.
	for await (const value of iterable) {
		throwIfAborted(signal);
		yield asBytes(value);
	}
}

/** A missing block to send. */
interface BlockJob {
	hash: string;
	offset: number;
	size: number;
}

/**
 * Reads an {@link UploadSource}, enforcing that a single-pass source (a bare
 * ReadableStream or AsyncIterable) is read at most once.
 */
class SourceReader {
	readonly #source: UploadSource;
	#reads = 0;

	constructor(source: UploadSource) {
		const ok =
			typeof source === "function" ||
			isBlob(source) ||
			isReadableStream(source) ||
			(typeof source === "object" && source !== null && Symbol.asyncIterator in source);
		if (!ok) throw new TypeError("upload source must be a Blob, a ReadableStream, a () => ReadableStream or an AsyncIterable<Uint8Array>");
		this.#source = source;
	}

	/** The size of a Blob source, known before reading it; null for streams. */
	get size(): number | null {
		return isBlob(this.#source) ? this.#source.size : null;
	}

	/** Whether another full or partial read is possible. */
	get canRead(): boolean {
		return this.#reads === 0 || typeof this.#source === "function" || isBlob(this.#source);
	}

	/** The whole source as pieces, from the start. */
	pieces(signal: AbortSignal | undefined): AsyncGenerator<Uint8Array> {
		const source = this.#source;
		if (!this.canRead) throw new TypeError("a ReadableStream or AsyncIterable source can be read only once");
		this.#reads++;
		if (typeof source === "function") return streamPieces(source(), signal);
		if (isBlob(source)) return streamPieces(source.stream(), signal);
		if (isReadableStream(source)) return streamPieces(source, signal);
		return iterablePieces(source, signal);
	}

	/**
	 * The bytes of `jobs` (sorted by offset, not overlapping), one block at a
	 * time: a Blob is sliced at each offset; anything else is read from the
	 * start, skipping what lies between the blocks. Only the block being
	 * assembled is held.
	 */
	async *blocks(jobs: readonly BlockJob[], signal: AbortSignal | undefined): AsyncGenerator<{ job: BlockJob; bytes: Uint8Array }> {
		const source = this.#source;
		if (isBlob(source)) {
			for (const job of jobs) {
				throwIfAborted(signal);
				const bytes = new Uint8Array(await source.slice(job.offset, job.offset + job.size).arrayBuffer());
				if (bytes.length !== job.size)
					throw new SourceChangedError(`the file changed while uploading: it ends before offset ${job.offset + job.size}`);
				yield { job, bytes };
			}
			return;
		}
		let index = 0;
		let block: Uint8Array | null = null;
		let filled = 0;
		let pos = 0;
		for await (const piece of this.pieces(signal)) {
			let p = 0;
			while (p < piece.length) {
				const job = jobs[index];
				if (job === undefined) break;
				if (block === null) {
					if (pos + p < job.offset) {
						p = Math.min(piece.length, job.offset - pos);
						continue;
					}
					block = new Uint8Array(job.size);
					filled = 0;
				}
				const n = Math.min(job.size - filled, piece.length - p);
				block.set(piece.subarray(p, p + n), filled);
				filled += n;
				p += n;
				if (filled === job.size) {
					const bytes = block;
					block = null;
					index++;
					yield { job, bytes };
				}
			}
			pos += piece.length;
			// Past the last missing block: leaving the loop cancels the stream.
			if (index >= jobs.length) return;
		}
		const job = jobs[index];
		if (job !== undefined) throw new SourceChangedError(`the file changed while uploading: it ends before offset ${job.offset + job.size}`);
	}
}

// ---------------------------------------------------------------------------
// Pass 1
// ---------------------------------------------------------------------------

/**
 * The source's blocks in file order, each with its SHA-256 and its bytes (a
 * copy the consumer owns), cut by the shared chunker. The whole file's
 * SHA-256 is in `file.contentHash` once the generator has finished.
 */
async function* hashedBlocks(
	reader: SourceReader,
	options: { signal?: AbortSignal | undefined; createHash?: (() => IncrementalHash) | undefined },
	file: { contentHash: string },
): AsyncGenerator<{ block: PlannedBlock; bytes: Uint8Array }> {
	const whole = options.createHash?.() ?? nobleSha256.create();
	const chunker = new Chunker();
	// Block digests run on WebCrypto (off the main thread in Node) while the
	// main thread feeds the whole-file hash; a bounded queue keeps both busy.
	const pending: { bytes: Uint8Array; digest: Promise<string> }[] = [];
	let offset = 0;
	const settle = async (head: { bytes: Uint8Array; digest: Promise<string> }) => {
		const block: PlannedBlock = { hash: await head.digest, size: head.bytes.byteLength, offset };
		offset += block.size;
		return { block, bytes: head.bytes };
	};
	try {
		const queue = (chunk: Uint8Array) => pending.push({ bytes: chunk, digest: sha256Hex(chunk) });
		for await (const piece of reader.pieces(options.signal)) {
			whole.update(piece);
			for (const chunk of chunker.push(piece)) {
				queue(chunk);
				while (pending.length > HASH_AHEAD) yield await settle(pending.shift() as (typeof pending)[number]);
			}
		}
		const last = chunker.finish();
		if (last !== null) queue(last);
		for (let head = pending.shift(); head !== undefined; head = pending.shift()) yield await settle(head);
		file.contentHash = toHex(whole.digest());
	} finally {
		// Digests abandoned by an error must not surface as unhandled rejections.
		for (const p of pending) p.digest.catch(() => undefined);
	}
}

async function plan(reader: SourceReader, options: PlanOptions): Promise<UploadPlan> {
	const blocks: PlannedBlock[] = [];
	const file = { contentHash: "" };
	let size = 0;
	for await (const { block } of hashedBlocks(reader, options, file)) {
		blocks.push(block);
		size += block.size;
		options.onProgress?.({ bytesHashed: size, blocks: blocks.length });
	}
	return { blocks, size, contentHash: file.contentHash };
}

/**
 * Pass 1 alone: chunks `source` with the shared FastCDC chunker and hashes
 * every block and the whole file. The block list is the one any other client
 * (or the server's tus path) computes for the same bytes.
 *
 * A factory source is called once; a bare stream or iterable is consumed.
 */
export async function planUpload(source: UploadSource, options: PlanOptions = {}): Promise<UploadPlan> {
	return plan(new SourceReader(source), options);
}

/** Checks a caller-supplied plan: a malformed one would only fail later, on the server. */
function checkPlan(p: UploadPlan): void {
	let offset = 0;
	for (const block of p.blocks) {
		if (!isSha256Hex(block.hash)) throw new TypeError(`plan: block hash ${JSON.stringify(block.hash)} is not 64 lowercase hex characters`);
		if (!Number.isSafeInteger(block.size) || block.size < 1 || block.size > MAX_BLOCK_BYTES)
			throw new TypeError(`plan: block size ${block.size} is outside 1..${MAX_BLOCK_BYTES}`);
		if (block.offset !== offset) throw new TypeError(`plan: block at offset ${block.offset} should start at ${offset}`);
		offset += block.size;
	}
	if (offset !== p.size) throw new TypeError(`plan: blocks add up to ${offset} bytes, not ${p.size}`);
	if (!isSha256Hex(p.contentHash)) throw new TypeError("plan: contentHash is not 64 lowercase hex characters");
}

// ---------------------------------------------------------------------------
// Wire shapes
// ---------------------------------------------------------------------------

interface SessionState {
	uploadId: string;
	missing: string[];
	expiresAt: string;
	/** Bytes the block list covers so far, and whether it is incomplete (a list sent in parts). */
	listedBytes: number | null;
	moreBlocks: boolean;
}

function isRecord(value: unknown): value is Record<string, unknown> {
	return typeof value === "object" && value !== null && !Array.isArray(value);
}

function unexpected(what: string): Error {
	return new Error(`unexpected answer from the server: ${what}`);
}

function parseHashes(value: unknown, what: string): string[] {
	if (!Array.isArray(value) || !value.every((h): h is string => typeof h === "string" && isSha256Hex(h))) {
		throw unexpected(`${what} is not a list of SHA-256 hashes`);
	}
	return value;
}

function parseSession(body: unknown): SessionState {
	if (!isRecord(body) || typeof body.upload_id !== "string" || body.upload_id === "") throw unexpected("no upload_id");
	return {
		uploadId: body.upload_id,
		missing: parseHashes(body.missing, "missing"),
		expiresAt: typeof body.expires_at === "string" ? body.expires_at : "",
		listedBytes: typeof body.listed_bytes === "number" ? body.listed_bytes : null,
		moreBlocks: body.more_blocks === true,
	};
}

function parseCommit(body: unknown): CommitResult {
	if (
		!isRecord(body) ||
		!isRecord(body.node) ||
		!isRecord(body.version) ||
		typeof body.version.id !== "string" ||
		typeof body.version.content_hash !== "string" ||
		!(body.conflict === null || isRecord(body.conflict))
	) {
		throw unexpected("the commit answer lacks node, version or conflict");
	}
	// The fields inside are the server's documented schema; checking the
	// envelope is enough to catch talking to the wrong thing.
	return body as unknown as CommitResult;
}

// ---------------------------------------------------------------------------
// Pass 2 and the session
// ---------------------------------------------------------------------------

/**
 * Uploads a file through an upload session: chunks and hashes it, creates
 * the session (or resumes `options.uploadId`), sends only the blocks the
 * service lacks — in batches of about `batchBytes`, at most `concurrency`
 * requests at a time, each retried on network errors, 429 and 5xx — and
 * commits. A commit answering 409
 * `MISSING_BLOCKS` sends the blocks it lists and commits again.
 *
 * To survive a crash, persist the id from `onSession` and call again with
 * `uploadId`: the file is hashed again (unless `plan` is given), and only
 * what the session still misses is sent. Resuming a session that was
 * already committed returns that commit again. If the session is gone
 * (expired, deleted), the NOT_FOUND {@link DriveApiError} propagates; call
 * again without `uploadId` to start over.
 *
 * @throws TypeError for a bare ReadableStream/AsyncIterable when blocks must
 *   be read a second time (pass a Blob or a `() => ReadableStream`).
 * @throws SourceChangedError when a block read again no longer matches its
 *   hash, or a resumed session belongs to other content (it asks for blocks
 *   this file does not have, or — detected only after the commit — it
 *   committed content other than this file's).
 * @throws DriveApiError for answers no retry fixes; the network error when
 *   retries ran out; the signal's reason when aborted.
 */
export async function uploadFile(client: DriveClient, source: UploadSource, options: UploadOptions): Promise<UploadResult> {
	const concurrency = options.concurrency ?? DEFAULT_CONCURRENCY;
	if (!Number.isInteger(concurrency) || concurrency < 1) throw new RangeError("uploadFile: concurrency must be a positive integer");
	const batchBytes = options.batchBytes ?? DEFAULT_BATCH_BYTES;
	if (!Number.isInteger(batchBytes) || batchBytes < 1 || batchBytes > MAX_BATCH_BYTES - MAX_BLOCK_BYTES)
		throw new RangeError(`uploadFile: batchBytes must be an integer from 1 to ${MAX_BATCH_BYTES - MAX_BLOCK_BYTES}`);
	const retries = options.retries;
	if (retries !== undefined && (!Number.isInteger(retries) || retries < 0))
		throw new RangeError("uploadFile: retries must be a non-negative integer");
	if (options.createOnly === true && options.baseVersionId !== undefined)
		throw new TypeError("uploadFile: createOnly makes a new file; it cannot go with baseVersionId");
	const { signal, onProgress } = options;
	throwIfAborted(signal);
	const reader = new SourceReader(source);

	const progress: UploadProgress = { phase: "hashing", bytesHashed: 0, bytesSent: 0, bytesToSend: 0, blocksTotal: 0, blocksMissing: 0 };
	const report = (patch: Partial<UploadProgress>): void => {
		Object.assign(progress, patch);
		onProgress?.({ ...progress });
	};

	const request = { signal, retries };
	const sending = { concurrency, batchBytes, retries, signal };
	const onSent = (job: BlockJob): void => report({ bytesSent: progress.bytesSent + job.size, blocksMissing: progress.blocksMissing - 1 });
	let thePlan: UploadPlan;
	let session: SessionState;
	const blobSize = reader.size;
	if (options.plan === undefined && options.uploadId === undefined && blobSize !== null) {
		report({});
		({ plan: thePlan, session } = await listWhileSending(client, reader, blobSize, options, sending, { progress, report, onSent }));
	} else {
		if (options.plan !== undefined) {
			checkPlan(options.plan);
			thePlan = options.plan;
			report({ bytesHashed: thePlan.size, blocksTotal: thePlan.blocks.length });
		} else {
			report({});
			const planOptions: PlanOptions = { onProgress: (p) => report({ bytesHashed: p.bytesHashed, blocksTotal: p.blocks }) };
			if (signal !== undefined) planOptions.signal = signal;
			if (options.createHash !== undefined) planOptions.createHash = options.createHash;
			thePlan = await plan(reader, planOptions);
		}
		if (options.uploadId !== undefined) {
			// A session that was already committed answers missing: [], and its
			// commit answers the same result again (commits are idempotent).
			session = parseSession(await client.json("GET", `/v1/uploads/${encodeURIComponent(options.uploadId)}`, request));
			if (session.moreBlocks) session = await finishList(client, session, thePlan, request);
		} else {
			const body = createBody(options, thePlan.size, thePlan.blocks, { moreBlocks: false, contentHash: thePlan.contentHash });
			session = parseSession(await client.json("POST", "/v1/uploads", { ...request, json: body }));
		}
		options.onSession?.({ uploadId: session.uploadId, expiresAt: session.expiresAt, resumed: options.uploadId !== undefined });
	}
	// First occurrence of each hash: a repeated block is sent once.
	const byHash = new Map<string, PlannedBlock>();
	for (const block of thePlan.blocks) if (!byHash.has(block.hash)) byHash.set(block.hash, block);
	const uploadId = session.uploadId;
	const sessionPath = sessionPathOf(uploadId);

	let missing = session.missing;
	for (let round = 1; ; round++) {
		const jobs = jobsFor(missing, byHash, uploadId);
		if (jobs.length > 0) {
			if (!reader.canRead) {
				throw new TypeError(
					`uploadFile: ${jobs.length} blocks must be sent, but a ReadableStream or AsyncIterable source can be read only once; ` +
						`pass a Blob or a () => ReadableStream factory (upload ${uploadId} stays open for resuming with uploadId)`,
				);
			}
			const toSend = jobs.reduce((n, j) => n + j.size, 0);
			report({ phase: "uploading", bytesToSend: progress.bytesSent + toSend, blocksMissing: jobs.length });
			await sendBlocks(client, reader, jobs, sessionPath, sending, onSent);
		}
		report({ phase: "committing", blocksMissing: 0 });
		let result: CommitResult;
		try {
			// The server keeps on_conflict from the create body; commit takes `{}`.
			// Retrying a commit is safe: the server answers a repeated commit with
			// the same result, so a lost answer cannot commit twice.
			result = parseCommit(await client.json("POST", `${sessionPath}/commit`, { ...request, json: {} }));
		} catch (err) {
			if (!(err instanceof DriveApiError)) throw err;
			if (err.code !== "MISSING_BLOCKS" || round >= MAX_COMMIT_ROUNDS) throw err;
			// The details name the missing blocks; without them, ask the session.
			missing =
				err.details !== undefined && err.details.length > 0
					? parseHashes(err.details, "MISSING_BLOCKS details")
					: parseSession(await client.json("GET", sessionPath, request)).missing;
			continue;
		}
		// A resumed session commits the content it was created with. The
		// session does not say what that was, so a file edited since then is
		// only caught here, after the fact: its blocks may all have been sent.
		if (result.version.content_hash !== thePlan.contentHash) {
			throw new SourceChangedError(
				`upload ${uploadId} committed version ${result.version.id} with the content the file had when the session was created (SHA-256 ${result.version.content_hash}), not its current content (${thePlan.contentHash}); upload again without uploadId`,
			);
		}
		return { ...result, uploadId, bytesSent: progress.bytesSent };
	}
}

function sessionPathOf(uploadId: string): string {
	return `/v1/uploads/${encodeURIComponent(uploadId)}`;
}

function blockSpecs(blocks: readonly PlannedBlock[]): { hash: string; size: number }[] {
	return blocks.map((b) => ({ hash: b.hash, size: b.size }));
}

/** The body of `POST /v1/uploads`. */
function createBody(
	options: UploadOptions,
	size: number,
	blocks: readonly PlannedBlock[],
	list: { moreBlocks: boolean; contentHash: string | undefined },
): Record<string, unknown> {
	const body: Record<string, unknown> = { parent_id: options.parentId, name: options.name, size, blocks: blockSpecs(blocks) };
	if (list.moreBlocks) body.more_blocks = true;
	if (list.contentHash !== undefined) body.content_hash = list.contentHash;
	if (options.baseVersionId !== undefined) body.base_version_id = options.baseVersionId;
	if (options.onConflict !== undefined) body.on_conflict = options.onConflict;
	if (options.createOnly === true) body.create_only = true;
	return body;
}

/** Lists the rest of `plan` in a resumed session whose block list was cut short, and adds what it misses. */
async function finishList(
	client: DriveClient,
	session: SessionState,
	thePlan: UploadPlan,
	request: { signal: AbortSignal | undefined; retries: number | undefined },
): Promise<SessionState> {
	const from = session.listedBytes ?? 0;
	const rest = thePlan.blocks.filter((b) => b.offset >= from);
	if ((rest[0]?.offset ?? thePlan.size) !== from) {
		throw new SourceChangedError(
			`upload ${session.uploadId} has ${from} bytes of block list, which do not end on a block of this file: the file changed since the session was created, or the session belongs to another file`,
		);
	}
	const answer = await client.json("POST", `${sessionPathOf(session.uploadId)}/block-list`, {
		...request,
		// No content_hash: nothing here proves that the blocks listed before the
		// interruption are this file's (it may have been edited in place since),
		// so the service computes the hash from the stored blocks at commit, and
		// uploadFile's check of the committed hash catches a mismatch.
		json: { offset: from, blocks: blockSpecs(rest), more_blocks: false },
	});
	const added = isRecord(answer) ? parseHashes(answer.missing, "missing") : [];
	return { ...session, missing: [...session.missing, ...added], listedBytes: thePlan.size, moreBlocks: false };
}

/**
 * Pass 1 and pass 2 at once, for a Blob (its size is known before reading
 * it): as the file is hashed, its block list goes to the session in parts of
 * about `batchBytes` (`more_blocks`, `POST /v1/uploads/:id/block-list`), and
 * each part's missing blocks go up as one batch, from the bytes just hashed,
 * while hashing goes on. So the file is read once instead of twice, and the
 * first block leaves after two parts (a part is listed once the next is
 * hashed, so that the last one can complete the list) instead of after the
 * whole file (docs/decisions/0011). A file of one part is listed by a single
 * create, as in the two-pass path.
 */
async function listWhileSending(
	client: DriveClient,
	reader: SourceReader,
	size: number,
	options: UploadOptions,
	sending: { concurrency: number; batchBytes: number; retries: number | undefined; signal: AbortSignal | undefined },
	progressOf: { progress: UploadProgress; report: (patch: Partial<UploadProgress>) => void; onSent: (job: BlockJob) => void },
): Promise<{ plan: UploadPlan; session: SessionState }> {
	const { progress, report, onSent } = progressOf;
	const request = { signal: sending.signal, retries: sending.retries };
	const blocks: PlannedBlock[] = [];
	// (Casts, so that TypeScript does not narrow these to null: the closure below assigns them.)
	let session = null as SessionState | null;
	let pump = null as BatchPump | null;
	// A block that repeats in the file is sent once.
	const queued = new Set<string>();
	// Reading stops when the caller aborts or a batch fails.
	const reading = new AbortController();
	if (sending.signal?.aborted === true) reading.abort(sending.signal.reason);
	sending.signal?.addEventListener("abort", () => reading.abort(sending.signal?.reason), { once: true, signal: reading.signal });

	/** Lists `part` (creating the session with the first one) and sends its missing blocks. */
	const listPart = async (part: Batch, moreBlocks: boolean, contentHash?: string): Promise<void> => {
		const jobs = part.map(({ job }) => job);
		let missing: string[];
		if (session === null) {
			const body = createBody(options, size, jobs, { moreBlocks, contentHash });
			session = parseSession(await client.json("POST", "/v1/uploads", { ...request, json: body }));
			options.onSession?.({ uploadId: session.uploadId, expiresAt: session.expiresAt, resumed: false });
			pump = new BatchPump(client, sessionPathOf(session.uploadId), sending, onSent);
			// A failed batch stops the reading too, not only the next push.
			const failed = pump.signal;
			failed.addEventListener("abort", () => reading.abort(failed.reason), { once: true });
			missing = session.missing;
		} else {
			const answer = await client.json("POST", `${sessionPathOf(session.uploadId)}/block-list`, {
				...request,
				json: { offset: jobs[0]?.offset ?? size, blocks: blockSpecs(jobs), more_blocks: moreBlocks, content_hash: contentHash },
			});
			missing = isRecord(answer) ? parseHashes(answer.missing, "missing") : [];
		}
		const wanted = new Set(missing);
		const batch: Batch = [];
		for (const block of part) {
			if (!wanted.has(block.job.hash) || queued.has(block.job.hash)) continue;
			queued.add(block.job.hash);
			batch.push(block);
		}
		if (batch.length === 0 || pump === null) return;
		report({
			phase: "uploading",
			bytesToSend: progress.bytesToSend + batch.reduce((n, b) => n + b.job.size, 0),
			blocksMissing: progress.blocksMissing + batch.length,
		});
		await pump.push(batch);
	};

	const file = { contentHash: "" };
	async function* hashing(): AsyncGenerator<{ job: PlannedBlock; bytes: Uint8Array }> {
		for await (const { block, bytes } of hashedBlocks(reader, { signal: reading.signal, createHash: options.createHash }, file)) {
			blocks.push(block);
			report({ bytesHashed: block.offset + block.size, blocksTotal: blocks.length });
			yield { job: block, bytes };
		}
	}
	try {
		// Parts are cut like batches; each is listed once the next one is ready,
		// so that the last can complete the list and carry the file's hash.
		let previous: Batch | null = null;
		for await (const part of batchesOf(hashing(), sending.batchBytes)) {
			if (previous !== null) await listPart(previous, true);
			previous = part;
		}
		const hashed = blocks.reduce((n, b) => n + b.size, 0);
		if (hashed !== size) throw new SourceChangedError(`the file changed while uploading: it has ${hashed} bytes, not ${size}`);
		await listPart(previous ?? [], false, file.contentHash);
		await pump?.drain();
		if (session === null) throw new Error("unreachable: the last part always creates the session");
		// Every block the session asked for has been sent.
		return { plan: { blocks, size, contentHash: file.contentHash }, session: { ...session, missing: [] } };
	} catch (err) {
		// The pump's own failure (a send that failed first) is the one to report.
		pump?.fail(err);
		await pump?.drain();
		throw err;
	} finally {
		// Unhooks the listener on the caller's signal.
		reading.abort();
	}
}

/** The distinct blocks to send for `missing`, in file order. */
function jobsFor(missing: readonly string[], byHash: ReadonlyMap<string, PlannedBlock>, uploadId: string): BlockJob[] {
	const jobs: BlockJob[] = [];
	for (const hash of new Set(missing)) {
		const block = byHash.get(hash);
		if (block === undefined) {
			throw new SourceChangedError(
				`upload ${uploadId} asks for block ${hash}, which this file does not contain: the file changed since the session was created, or the session belongs to another file`,
			);
		}
		jobs.push({ hash, offset: block.offset, size: block.size });
	}
	return jobs.sort((a, b) => a.offset - b.offset);
}

/** Groups blocks, in the order they come, into batches of about `maxBytes` (at least one block each). */
async function* batchesOf<T extends { job: BlockJob }>(blocks: AsyncIterable<T>, maxBytes: number): AsyncGenerator<T[]> {
	let batch: T[] = [];
	let bytes = 0;
	for await (const block of blocks) {
		if (batch.length > 0 && (bytes + block.job.size > maxBytes || batch.length >= MAX_BATCH_BLOCKS)) {
			yield batch;
			batch = [];
			bytes = 0;
		}
		batch.push(block);
		bytes += block.job.size;
	}
	if (batch.length > 0) yield batch;
}

/** A batch of blocks to send, with their bytes. */
type Batch = { job: BlockJob; bytes: Uint8Array }[];

/**
 * Sends batches with at most `concurrency` requests in flight. The first
 * failure aborts the requests still running (their work is not lost: the
 * session keeps every block that arrived, including those of a batch that
 * broke) and is what {@link push} and {@link drain} throw from then on.
 */
class BatchPump {
	readonly #inFlight = new Set<Promise<void>>();
	readonly #abort = new AbortController();
	/** Unhooks the listener on the caller's signal once drained. */
	readonly #listening = new AbortController();
	#failure: { error: unknown } | null = null;

	constructor(
		private readonly client: DriveClient,
		private readonly sessionPath: string,
		private readonly opts: { concurrency: number; retries: number | undefined; signal: AbortSignal | undefined },
		private readonly onSent: (job: BlockJob) => void,
	) {
		const outer = opts.signal;
		if (outer?.aborted === true) this.#abort.abort(outer.reason);
		outer?.addEventListener("abort", () => this.#abort.abort(outer.reason), { once: true, signal: this.#listening.signal });
	}

	/** Aborted when a send fails or the caller's signal aborts: readers feeding the pump should stop too. */
	get signal(): AbortSignal {
		return this.#abort.signal;
	}

	/** Starts sending `batch`, after waiting while `concurrency` requests are in flight. */
	async push(batch: Batch): Promise<void> {
		while (this.#inFlight.size >= this.opts.concurrency && this.#failure === null) await Promise.race(this.#inFlight);
		this.#throwIfFailed();
		// Only the Blob keeps the bytes while the request runs: the closures below see the jobs alone.
		const body = new Blob(batch.map(({ bytes }) => bytes as Uint8Array<ArrayBuffer>));
		const jobs = batch.map(({ job }) => job);
		const sending = this.client
			.send("PUT", `${this.sessionPath}/blocks`, {
				body,
				headers: { "Content-Type": "application/octet-stream", "Drive-Blocks": jobs.map((job) => job.hash).join(",") },
				signal: this.#abort.signal,
				retries: this.opts.retries,
			})
			.then(() => {
				for (const job of jobs) this.onSent(job);
			})
			.catch((error: unknown) => {
				if (this.#failure !== null) return;
				this.#failure = { error };
				this.#abort.abort(error);
			});
		const tracked = sending.finally(() => this.#inFlight.delete(tracked));
		this.#inFlight.add(tracked);
	}

	/** Waits for every batch pushed so far; throws the first failure. */
	async drain(): Promise<void> {
		await Promise.all(this.#inFlight);
		this.#listening.abort();
		this.#throwIfFailed();
	}

	/** Records `error` as the failure (unless there is one) and aborts what is in flight. */
	fail(error: unknown): void {
		if (this.#failure !== null) return;
		this.#failure = { error };
		this.#abort.abort(error);
	}

	#throwIfFailed(): void {
		// The caller's abort wins over the errors it caused in flight.
		if (this.opts.signal?.aborted === true) throw this.opts.signal.reason;
		if (this.#failure !== null) throw this.#failure.error;
	}
}

/**
 * PUTs `jobs`, read again from the source, in batches with at most
 * `concurrency` requests in flight. Each block is verified against its hash
 * before it leaves: a file that changed since it was hashed fails with
 * SourceChangedError, and its altered block is never sent.
 */
async function sendBlocks(
	client: DriveClient,
	reader: SourceReader,
	jobs: readonly BlockJob[],
	sessionPath: string,
	opts: { concurrency: number; batchBytes: number; retries: number | undefined; signal: AbortSignal | undefined },
	onSent: (job: BlockJob) => void,
): Promise<void> {
	const pump = new BatchPump(client, sessionPath, opts, onSent);
	try {
		for await (const batch of batchesOf(reader.blocks(jobs, pump.signal), opts.batchBytes)) {
			const hashes = await Promise.all(batch.map(({ bytes }) => sha256Hex(bytes)));
			const changed = batch.findIndex(({ job }, i) => hashes[i] !== job.hash);
			if (changed >= 0) {
				throw new SourceChangedError(
					`the file changed while uploading: the block at offset ${batch[changed]?.job.offset} no longer matches its hash`,
				);
			}
			await pump.push(batch);
		}
	} catch (err) {
		pump.fail(err);
	}
	await pump.drain();
}
