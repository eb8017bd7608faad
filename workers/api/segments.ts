/**
 * The segment reader: the api worker's own RPC entrypoint, which the
 * BLOCK_SEGMENTS service binding calls once per segment of a long download.
 * Each call is an invocation of its own, with its own subrequest budget
 * (docs/decisions/0032-hot-blocks-and-long-downloads.md). It is not reachable
 * over HTTP.
 */
import { WorkerEntrypoint } from "cloudflare:workers";
import { withDrills } from "../../src/shared/drills";
import type { BlockRef } from "../../src/shared/db/mappers";
import { keyRing, StorageUnavailableError } from "./services/block-store";
import { BlockBudget, blocksPerInvocation, streamRange, type ByteRange, type SegmentResult } from "./services/egress";

export class BlockSegments extends WorkerEntrypoint<Env> {
	/**
	 * Bytes `range` of `blocks` (one segment of a version's blocks in the
	 * range), the first block read before this answers. Reads at most `cap`
	 * blocks (the caller's cap), and never more than this worker's own.
	 */
	async stream(blocks: BlockRef[], range: ByteRange, cap: number): Promise<SegmentResult> {
		const env = withDrills(this.env);
		const first = blocks[0]?.hash ?? "";
		const budget = new BlockBudget(Math.min(cap, blocksPerInvocation(env)));
		try {
			return { ok: true, body: await streamRange(env.BLOBS, keyRing(env), blocks, range, budget) };
		} catch (err) {
			const cause = err instanceof StorageUnavailableError ? err.cause : err;
			const message = cause instanceof Error ? cause.message : String(cause);
			if (!(err instanceof StorageUnavailableError)) console.error(JSON.stringify({ segment: first, error: message }));
			return { ok: false, retryable: err instanceof StorageUnavailableError, hash: first, message };
		}
	}
}
