/**
 * Streaming ingest: request body -> content-defined chunks -> stored blocks.
 *
 * Bytes are chunked, hashed, encrypted and stored as they arrive. Blocks are
 * never copied out of the stream: each is encoded from a view into the read
 * buffer or the chunker's buffer (see BlockWriter), so memory is bounded by
 * those two buffers (1 + 4 MiB) plus the encoded blocks whose puts are in
 * flight (STORE_CONCURRENCY), never by the file.
 */
import { Chunker } from "../../../src/shared/chunking";
import { createHash } from "node:crypto";
import type { KeyRing } from "../../../src/shared/crypto";
import type { BlockRef } from "../../../src/shared/db/mappers";
import { fail, ok, type Result } from "../../../src/shared/errors";
import { BlockWriter } from "./block-store";
import { byobChunks } from "./body";

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
	// The whole-file SHA-256, computed incrementally (synchronous, native; see running-hash.ts).
	const whole = createHash("sha256");
	const writer = new BlockWriter(bucket, ring);
	const blocks: BlockRef[] = [];
	let offset = 0;
	let size = 0;

	const store = async (chunk: Uint8Array): Promise<void> => {
		const at = offset;
		offset += chunk.byteLength;
		blocks.push({ offset: at, size: chunk.byteLength, hash: await writer.write(chunk) });
	};

	if (body !== null) {
		for await (const piece of byobChunks(body)) {
			size += piece.byteLength;
			if (size > maxBytes) {
				await writer.settle();
				return fail("PAYLOAD_TOO_LARGE", `the body exceeds ${maxBytes} bytes; send large files through upload sessions or tus`);
			}
			// `piece` is reused by the next read, and the chunks are views into
			// it or the chunker: every consumer finishes with them here.
			whole.update(piece);
			for (const chunk of chunker.views(piece)) await store(chunk);
		}
	}
	const last = chunker.finish();
	if (last !== null) await store(last);
	await writer.flush();
	return ok({ size, contentHash: whole.digest("hex"), blocks });
}
