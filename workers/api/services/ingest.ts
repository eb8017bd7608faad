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
import { runBatch } from "../../../src/shared/db/batch";
import type { ShardDb } from "../../../src/shared/db/shards";
import { fail, ok, type Result } from "../../../src/shared/errors";
import type { CommitFileInput, CommitOutcome } from "../../notify/contract";
import type { Caller } from "../env";
import { BlockWriter, keyRing } from "./block-store";
import { byobChunks } from "./body";
import { enqueueCandidates } from "./gc";
import { hubFor, shardFor } from "./hub";

export interface Ingested {
	size: number;
	contentHash: string;
	blocks: BlockRef[];
}

export interface IngestLimits {
	/** More bytes than this answer PAYLOAD_TOO_LARGE. */
	maxBytes: number;
	/** More bytes than the user's quota leaves for this file answer QUOTA_EXCEEDED; infinite when the size was checked up front. */
	quotaRoom?: number;
}

/**
 * Consumes `body` into stored blocks. Fails as soon as the bytes that
 * arrived pass a limit, without reading or storing the rest. Whatever the
 * outcome, `written` receives the hash of every block whose put started,
 * and no put is still running once this returns or throws.
 */
export async function ingest(
	bucket: R2Bucket,
	ring: KeyRing,
	body: ReadableStream<Uint8Array> | null,
	limits: IngestLimits,
	written: string[] = [],
): Promise<Result<Ingested>> {
	const chunker = new Chunker();
	// The whole-file SHA-256, computed incrementally (synchronous, native; see running-hash.ts).
	const whole = createHash("sha256");
	const writer = new BlockWriter(bucket, ring);
	const blocks: BlockRef[] = [];
	const quotaRoom = limits.quotaRoom ?? Number.POSITIVE_INFINITY;
	let offset = 0;
	let size = 0;

	const store = async (chunk: Uint8Array): Promise<void> => {
		const at = offset;
		offset += chunk.byteLength;
		const hash = await writer.write(chunk);
		written.push(hash);
		blocks.push({ offset: at, size: chunk.byteLength, hash });
	};

	try {
		if (body !== null) {
			for await (const piece of byobChunks(body)) {
				size += piece.byteLength;
				if (size > limits.maxBytes) {
					await writer.settle();
					return fail("PAYLOAD_TOO_LARGE", `the body exceeds ${limits.maxBytes} bytes; send large files through upload sessions or tus`);
				}
				if (size > quotaRoom) {
					await writer.settle();
					return fail("QUOTA_EXCEEDED", `the body exceeds the ${Math.max(0, quotaRoom)} bytes the storage quota leaves for it`);
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
	} catch (err) {
		// The body broke (the client went away) or a put failed: the caller
		// records `written`, which must not grow after it did.
		await writer.settle();
		throw err;
	}
	return ok({ size, contentHash: whole.digest("hex"), blocks });
}

/** A PUT content commit, less what ingesting the body tells. */
export type FileCommit = Omit<CommitFileInput, "size" | "contentHash" | "blocks" | "blocksSince">;

/**
 * PUT content: stores `body` and commits it through the user's hub.
 * `blocksSince` is the shard's gc clock read before the body (gc.ts
 * readGcClock). Blocks a request stores are recorded nowhere until its
 * commit, so every failing exit (a limit passed, a refused commit, a body
 * that broke, any exception) queues them for the block collector; the
 * success path writes nothing more (docs/decisions/0017).
 */
export async function ingestAndCommit(
	env: Env,
	caller: Pick<Caller, "userId" | "shard">,
	body: ReadableStream<Uint8Array> | null,
	commit: FileCommit,
	limits: IngestLimits & { blocksSince: number; declaredBytes?: number | null },
	/** Checked once the body is in, just before the commit: what allowed the upload may have ended meanwhile (a public link revoked). */
	stillAllowed?: () => Promise<Result<unknown>>,
): Promise<Result<CommitOutcome>> {
	const written: string[] = [];
	const db = shardFor(env, caller);
	try {
		const ingested = await ingest(env.BLOBS, keyRing(env), body, limits, written);
		if (!ingested.ok) {
			await forget(db, written);
			return ingested;
		}
		const allowed = stillAllowed ? await stillAllowed() : ok(null);
		if (!allowed.ok) {
			await forget(db, written);
			return allowed;
		}
		const { size, contentHash, blocks } = ingested.value;
		if (limits.declaredBytes != null && size !== limits.declaredBytes) {
			// A body cut short (the client went away) can look ended: never commit part of a file.
			await forget(db, written);
			return fail("INVALID_REQUEST", `the body ended after ${size} of the ${limits.declaredBytes} bytes its Content-Length declared`);
		}
		const committed = await hubFor(env, caller.userId).commitFile({
			...commit,
			size,
			contentHash,
			blocks,
			blocksSince: limits.blocksSince,
		});
		if (committed.ok) return ok(committed.value);
		await forget(db, written);
		return { ok: false, error: committed.error };
	} catch (err) {
		await forget(db, written).catch((recording: unknown) => console.error("recording orphan blocks failed", String(recording)));
		throw err;
	}
}

/** Queues blocks no commit will reference for the collector, which deletes them unless something else does. */
export async function forget(db: ShardDb, hashes: readonly string[]): Promise<void> {
	const statements = enqueueCandidates(db, hashes);
	if (statements.length > 0) await runBatch(db.$client, statements);
}
