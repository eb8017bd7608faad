/**
 * Streaming download: the blocks of a version, fetched ahead, decrypted,
 * verified and sliced to the requested byte range.
 */
import { notFound } from "../../../src/shared/commit/failures";
import type { KeyRing } from "../../../src/shared/crypto";
import type { BlockRef } from "../../../src/shared/db/mappers";
import type { NodeRow, VersionRow } from "../../../src/shared/db/schema";
import type { ShardDb } from "../../../src/shared/db/shards";
import { blocksInRange, findNode, findVersion } from "../../../src/shared/db/tree";
import { fail, ok, type Refusal, type Result } from "../../../src/shared/errors";
import type { Caller } from "../env";
import { ownThenShared, type Access } from "./access";
import { getBlock, keyRing, StorageUnavailableError } from "./block-store";
import { shardFor } from "./hub";

/** Blocks fetched ahead of the one being sent, to overlap R2 latency. */
const READ_AHEAD = 2;

export type ByteRange = { start: number; end: number };

/**
 * A file of the user and one of its versions (the head unless `versionId`
 * names another). A folder is "file not found" unless `folder` says otherwise.
 */
export async function findDownload(
	db: ShardDb,
	userId: string,
	nodeId: string,
	versionId: string | undefined,
	folder: Refusal = notFound("file"),
): Promise<Result<{ node: NodeRow; version: VersionRow }>> {
	const node = await findNode(db, userId, nodeId);
	if (node?.type === "folder") return folder;
	if (!node || node.type !== "file" || node.headVersionId === null) return notFound("file");
	const version = await findVersion(db, userId, versionId ?? node.headVersionId);
	if (!version || version.nodeId !== node.id) return notFound("version");
	return ok({ node, version });
}

/** A version the caller may download, with the file, its shard and the access that found it. */
export interface Readable {
	access: Access;
	db: ShardDb;
	node: NodeRow;
	version: VersionRow;
}

/**
 * What GET /v1/files/{id}/content serves: a file of the caller's, or one
 * shared with them, and its head or `versionId`. A viewer gets the head only,
 * unless `pinned` (a download URL, whose version was the head when it was
 * made: the bytes behind a URL never change). With `headById`, a viewer may
 * name the head by its id (a delta download pins the version it started on).
 */
export async function readableVersion(
	env: Env,
	caller: Caller,
	nodeId: string,
	versionId: string | undefined,
	options: { pinned?: boolean; folder?: Refusal; headById?: boolean } = {},
): Promise<Result<Readable>> {
	return ownThenShared(env, caller, nodeId, "read", async (access) => {
		// The history is for owners and editors.
		const readOnly = () => fail("FORBIDDEN", "viewers download the current version only", [{ reason: "read_only" }]);
		const viewerNamed = versionId !== undefined && access.role === "viewer" && !options.pinned;
		if (viewerNamed && !options.headById) return readOnly();
		const db = shardFor(env, access.scope);
		const found = await findDownload(db, access.scope.userId, access.nodeId, versionId, options.folder);
		if (!found.ok) return found;
		if (viewerNamed && found.value.version.id !== found.value.node.headVersionId) return readOnly();
		return ok({ ...found.value, access, db });
	});
}

/**
 * Bytes `range` of a version, streamed. Up to {@link blocksPerInvocation}
 * blocks are read here; a longer range is read in consecutive segments, each
 * by an invocation of its own (the BLOCK_SEGMENTS service binding to this
 * worker), and streamed as one body, so that no invocation makes more
 * subrequests than the platform allows
 * (docs/decisions/0032-hot-blocks-and-long-downloads.md).
 *
 * @throws StorageUnavailableError when the first block cannot be read: before any byte is sent.
 */
export async function streamVersion(
	env: Pick<Env, "BLOBS" | "BLOCK_KEYS" | "BLOCK_SEGMENTS" | "MAX_BLOCKS_PER_INVOCATION">,
	db: ShardDb,
	versionId: string,
	range: ByteRange,
): Promise<ReadableStream<Uint8Array>> {
	const blocks = await blocksInRange(db, versionId, range.start, range.end);
	const cap = blocksPerInvocation(env);
	if (blocks.length <= cap) return streamRange(env.BLOBS, keyRing(env), blocks, range, new BlockBudget(cap));
	const segments: BlockRef[][] = [];
	for (let i = 0; i < blocks.length; i += cap) segments.push(blocks.slice(i, i + cap));
	if (segments.length > MAX_SEGMENTS)
		throw new Error(
			`a range of ${blocks.length} blocks needs ${segments.length} segments of ${cap}; at most ${MAX_SEGMENTS} fit in one request`,
		);
	return concatSegments(segments, (segment) => env.BLOCK_SEGMENTS.stream(segment, range, cap));
}

/**
 * Blocks one invocation reads at most: MAX_BLOCKS_PER_INVOCATION. Workers
 * Paid allows 10,000 subrequests per invocation by default, and R2 and D1
 * calls count (https://developers.cloudflare.com/workers/platform/limits/#subrequests);
 * the default leaves room for the request's own D1 and Durable Object calls.
 */
export function blocksPerInvocation(env: { MAX_BLOCKS_PER_INVOCATION?: string }): number {
	const value = Number(env.MAX_BLOCKS_PER_INVOCATION);
	return Number.isInteger(value) && value > 0 ? value : DEFAULT_BLOCKS_PER_INVOCATION;
}

const DEFAULT_BLOCKS_PER_INVOCATION = 8000;

/**
 * Segments one request may use: a request runs at most 32 Worker
 * invocations, each service binding call among them
 * (https://developers.cloudflare.com/workers/runtime-apis/bindings/service-bindings/#limits).
 */
export const MAX_SEGMENTS = 30;

/** What a segment invocation answers: its bytes, or why its first block could not be read (an Error loses its class across RPC). */
export type SegmentResult =
	{ ok: true; body: ReadableStream<Uint8Array> } | { ok: false; retryable: boolean; hash: string; message: string };

/**
 * The segments' streams one after the other as one stream. Each segment is
 * opened while the one before it is being sent, so its first block is ready
 * when it is needed. The first one is opened before this resolves: a failure
 * there is an error response, not a broken body.
 */
async function concatSegments(
	segments: readonly BlockRef[][],
	open: (segment: BlockRef[]) => Promise<SegmentResult>,
): Promise<ReadableStream<Uint8Array>> {
	const opening = (i: number): Promise<ReadableStream<Uint8Array>> | null => {
		const segment = segments[i];
		if (segment === undefined) return null;
		const opened = open(segment).then(
			(result) => {
				if (result.ok) return result.body;
				throw result.retryable ? new StorageUnavailableError("get", result.hash, result.message) : new Error(result.message);
			},
			(err: unknown) => {
				throw new StorageUnavailableError("get", segment[0]?.hash ?? "", err);
			},
		);
		opened.catch(() => undefined);
		return opened;
	};
	let index = 0;
	let reader = (await opening(0))?.getReader() ?? null;
	let next = opening(1);
	return new ReadableStream<Uint8Array>({
		async pull(controller) {
			try {
				while (reader !== null) {
					const { done, value } = await reader.read();
					if (!done) {
						controller.enqueue(value);
						return;
					}
					index++;
					reader = next === null ? null : (await next).getReader();
					next = opening(index + 1);
				}
				controller.close();
			} catch (err) {
				// The segment opened ahead is not needed any more.
				await next?.then((body) => body.cancel(err)).catch(() => undefined);
				next = null;
				throw err;
			}
		},
		async cancel(reason) {
			await reader?.cancel(reason);
			await next?.then((body) => body.cancel(reason)).catch(() => undefined);
		},
	});
}

/**
 * Counts one invocation's block reads and refuses the one past its cap, so a
 * path that would read more blocks than {@link blocksPerInvocation} fails
 * loudly instead of running into the platform's limit at some later block.
 */
export class BlockBudget {
	#taken = 0;

	constructor(readonly cap: number) {}

	take(): void {
		if (this.#taken >= this.cap) throw new Error(`this invocation has read its ${this.cap} blocks`);
		this.#taken++;
		readStats.peak = Math.max(readStats.peak, this.#taken);
	}
}

const readStats = { peak: 0 };

/** The most blocks any one budget of this isolate read since the last reset: how tests see that no invocation passed its cap. */
export function peakBlockReads(reset = false): number {
	const peak = readStats.peak;
	if (reset) readStats.peak = 0;
	return peak;
}

/**
 * Parses a single `Range: bytes=...` against a size. Returns null to serve
 * the whole file (no header, or several ranges, which RFC 9110 §14.2 lets a
 * server ignore), or "unsatisfiable".
 */
export function parseRange(header: string | undefined, size: number): ByteRange | null | "unsatisfiable" {
	if (header === undefined) return null;
	const match = /^bytes=\s*(\d*)\s*-\s*(\d*)\s*$/i.exec(header.trim());
	if (!match) return null;
	const [, first = "", last = ""] = match;
	if (first === "" && last === "") return null;
	if (first === "") {
		const suffix = Number(last);
		if (suffix === 0 || size === 0) return "unsatisfiable";
		return { start: Math.max(0, size - suffix), end: size - 1 };
	}
	const start = Number(first);
	if (start >= size) return "unsatisfiable";
	const end = last === "" ? size - 1 : Math.min(Number(last), size - 1);
	if (end < start) return null;
	return { start, end };
}

/**
 * A stream of bytes [range.start, range.end] of a version made of `blocks`
 * (the blocks overlapping the range, in order). The first block is fetched
 * and verified before this resolves, so a corrupt or missing first block is
 * an error response, not a broken stream; a later one errors the stream, so
 * the client sees a failed download and never wrong bytes.
 */
export async function streamRange(
	bucket: R2Bucket,
	ring: KeyRing,
	blocks: BlockRef[],
	range: ByteRange,
	budget: BlockBudget,
): Promise<ReadableStream<Uint8Array>> {
	const pending: Promise<Uint8Array>[] = [];
	let next = 0;
	const fill = () => {
		while (pending.length <= READ_AHEAD && next < blocks.length) {
			const block = blocks[next++];
			if (!block) break;
			budget.take();
			const read = getBlock(bucket, ring, block.hash).then((plain) => slice(plain, block, range));
			// Errors surface when awaited in order; this keeps a read-ahead
			// failure from being reported as unhandled before its turn.
			read.catch(() => undefined);
			pending.push(read);
		}
	};
	fill();
	// Surface a bad first block before any header is sent; the promise stays queued.
	if (pending[0]) await pending[0];
	return new ReadableStream<Uint8Array>({
		async pull(controller) {
			const read = pending.shift();
			if (!read) {
				controller.close();
				return;
			}
			fill();
			try {
				controller.enqueue(await read);
			} catch (err) {
				// Errors the stream for its reader (across RPC too) without leaving a rejected pull behind.
				controller.error(err);
			}
		},
		cancel() {
			pending.length = 0;
			next = blocks.length;
		},
	});
}

function slice(plain: Uint8Array, block: BlockRef, range: ByteRange): Uint8Array {
	const from = Math.max(0, range.start - block.offset);
	const to = Math.min(block.size, range.end - block.offset + 1);
	return from === 0 && to === plain.byteLength ? plain : plain.subarray(from, to);
}
