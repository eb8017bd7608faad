/**
 * Streaming ingest: request body -> content-defined chunks -> stored blocks.
 *
 * Bytes are chunked, hashed, encrypted and stored as they arrive, so memory
 * is bounded by the chunker's buffer plus the blocks in flight (at most
 * STORE_CONCURRENCY of 4 MiB each, plus their encodings), never by the file.
 */
import { Chunker } from "../../../src/shared/chunking";
import { toHex, type KeyRing } from "../../../src/shared/crypto";
import type { BlockRef } from "../../../src/shared/db/rows";
import { fail, type Result } from "../../../src/shared/errors";
import { putBlock } from "./block-store";
import { byobChunks } from "./body";

/** Blocks being hashed, encrypted and written at once. */
const STORE_CONCURRENCY = 3;

export interface Ingested {
	size: number;
	contentHash: string;
	blocks: BlockRef[];
}

/**
 * Consumes `body` into stored blocks. Fails with PAYLOAD_TOO_LARGE as soon as
 * more than `maxBytes` arrive, without reading the rest.
 */
export async function ingest(
	bucket: R2Bucket,
	ring: KeyRing,
	body: ReadableStream<Uint8Array> | null,
	maxBytes: number,
): Promise<Result<Ingested>> {
	const chunker = new Chunker();
	// The whole-file SHA-256 is computed incrementally by the runtime.
	const digest = new crypto.DigestStream("SHA-256");
	const digestWriter = digest.getWriter();
	const blocks: BlockRef[] = [];
	const inFlight = new Set<Promise<void>>();
	let failure: unknown = null;
	let offset = 0;
	let size = 0;

	const store = async (chunk: Uint8Array, at: number, index: number): Promise<void> => {
		const stored = await putBlock(bucket, ring, chunk);
		blocks[index] = { offset: at, size: chunk.byteLength, hash: stored.hash };
	};
	const enqueue = async (chunk: Uint8Array): Promise<void> => {
		while (inFlight.size >= STORE_CONCURRENCY) await Promise.race(inFlight);
		if (failure !== null) throw failure;
		const task = store(chunk, offset, blocks.length).catch((err: unknown) => {
			failure ??= err;
		});
		blocks.push({ offset, size: chunk.byteLength, hash: "" });
		offset += chunk.byteLength;
		const tracked = task.finally(() => inFlight.delete(tracked));
		inFlight.add(tracked);
	};

	if (body !== null) {
		for await (const piece of byobChunks(body)) {
			size += piece.byteLength;
			if (size > maxBytes) {
				await Promise.allSettled(inFlight);
				digest.digest.catch(() => undefined);
				await digestWriter.abort();
				return fail("PAYLOAD_TOO_LARGE", `the body exceeds ${maxBytes} bytes; send large files through upload sessions or tus`);
			}
			// `piece` is reused by the next read: both consumers finish with it
			// here (the chunker copies what it keeps).
			await digestWriter.write(piece);
			for (const chunk of chunker.push(piece)) await enqueue(chunk);
		}
	}
	const last = chunker.finish();
	if (last !== null) await enqueue(last);
	await Promise.all(inFlight);
	if (failure !== null) throw failure;
	await digestWriter.close();
	const contentHash = toHex(new Uint8Array(await digest.digest));
	return { ok: true, size, contentHash, blocks };
}
