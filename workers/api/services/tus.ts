/**
 * Receiving tus PATCH bodies: content-defined chunking across PATCH
 * boundaries, with the chunker's pending tail saved (encrypted) between
 * requests, so a resumed upload yields exactly the blocks of an
 * uninterrupted one.
 *
 * Progress is checkpointed after every block, in file order: if a PATCH
 * breaks, every block completed before the break is kept and the upload's
 * offset says so (tus 1.0 §"PATCH": the server may keep less than it was
 * sent). A PATCH with Upload-Checksum is all or nothing instead.
 */
import { and, eq, sql } from "drizzle-orm";
import { Chunker } from "../../../src/shared/chunking";
import { decodeBlock, encodeBlock } from "../../../src/shared/blocks";
import { sha256Hex, toHex, type KeyRing } from "../../../src/shared/crypto";
import { runBatch, type BatchQuery } from "../../../src/shared/db/batch";
import type { BlockRef } from "../../../src/shared/db/rows";
import { uploads, type UploadRow } from "../../../src/shared/db/schema";
import type { ShardDb } from "../../../src/shared/db/tree";
import { fail, type Result } from "../../../src/shared/errors";
import { BlockWriter } from "./block-store";
import { byobChunks } from "./body";
import { appendBlocks, hashStoredUpload } from "./uploads";

export interface PatchChecksum {
	algorithm: "SHA-1" | "SHA-256";
	expected: string;
}

export type PatchOutcome = { offset: number; complete: boolean; contentHash: string | null };

/** Where the chunker's pending bytes are kept between PATCH requests. */
function tailKey(uploadId: string, hash: string): string {
	return `uploads/${uploadId}/tail/${hash}`;
}

async function loadTail(bucket: R2Bucket, ring: KeyRing, key: string | null): Promise<Uint8Array | undefined> {
	if (key === null) return undefined;
	const hash = key.slice(key.lastIndexOf("/") + 1);
	const object = await bucket.get(key);
	if (!object) throw new Error(`tus tail ${key} is missing`);
	return decodeBlock(new Uint8Array(await object.arrayBuffer()), hash, ring);
}

/**
 * Consumes one PATCH body at `upload.offset`. Returns the new offset, and
 * whether the upload is complete (then its content hash, for the commit).
 */
export async function receivePatch(
	db: ShardDb,
	bucket: R2Bucket,
	ring: KeyRing,
	upload: UploadRow,
	body: ReadableStream<Uint8Array> | null,
	limits: { maxPatchBytes: number },
	checksum: PatchChecksum | null,
): Promise<Result<PatchOutcome>> {
	const tail = await loadTail(bucket, ring, upload.tailKey);
	const chunker = new Chunker(tail);
	const countRows = await db.all<{ n: number }>(sql`SELECT COUNT(*) AS n FROM upload_blocks WHERE upload_id = ${upload.id}`);
	let nextIdx = countRows[0]?.n ?? 0;
	let blockStart = upload.offset - (tail?.byteLength ?? 0);
	// A single request that carries the whole file can hash it as it streams;
	// otherwise the hash is computed from the stored blocks at the end.
	const wholeFile = upload.offset === 0 ? new crypto.DigestStream("SHA-256") : null;
	const wholeWriter = wholeFile?.getWriter() ?? null;
	const patchDigest = checksum ? new crypto.DigestStream(checksum.algorithm) : null;
	const patchWriter = patchDigest?.getWriter() ?? null;

	let durableOffset = upload.offset;
	let tailToDrop = upload.tailKey;
	let checkpoints: Promise<void> = Promise.resolve();
	let checkpointQueued = false;
	let checkpointFailure: unknown = null;
	const stored: BlockRef[] = [];
	const writer = new BlockWriter(bucket, ring);
	// Blocks finish out of order; checkpoints advance over the in-order prefix.
	const done = new Map<number, BlockRef>();
	let nextToCheckpoint = nextIdx;
	let unsaved: BlockRef[] = [];

	// One D1 batch per block cost a round trip per MiB; while a checkpoint
	// runs, the blocks finishing meanwhile wait and go together in the next.
	// A break loses nothing either way: the end of the PATCH awaits the last
	// checkpoint, so every block stored before the break is kept.
	const checkpoint = () => {
		if (checkpointQueued) return;
		checkpointQueued = true;
		checkpoints = checkpoints.then(async () => {
			checkpointQueued = false;
			const blocks = unsaved;
			const last = blocks.at(-1);
			if (last === undefined || checkpointFailure !== null) return;
			unsaved = [];
			const firstIdx = nextToCheckpoint - blocks.length;
			const previous = durableOffset;
			durableOffset = last.offset + last.size;
			const [update] = await runBatch(db.$client, [
				db
					.update(uploads)
					.set({ offset: durableOffset, tailKey: null })
					.where(and(eq(uploads.id, upload.id), eq(uploads.offset, previous))),
				...appendBlocks(db, upload.id, firstIdx, blocks),
			]);
			if (update?.meta.changes !== 1) {
				checkpointFailure = new OffsetRaceError();
				return;
			}
			// The first checkpoint consumed the saved tail; drop its object now,
			// since a later break would otherwise leave it unreferenced.
			if (tailToDrop !== null) {
				const key = tailToDrop;
				tailToDrop = null;
				await bucket.delete(key);
			}
		});
	};
	const onStored = (idx: number, block: BlockRef) => {
		stored.push(block);
		done.set(idx, block);
		if (checksum) return;
		for (let b = done.get(nextToCheckpoint); b !== undefined; b = done.get(nextToCheckpoint)) {
			unsaved.push(b);
			done.delete(nextToCheckpoint);
			nextToCheckpoint++;
		}
		if (unsaved.length > 0) checkpoint();
	};
	const enqueue = async (chunk: Uint8Array) => {
		const idx = nextIdx++;
		const offset = blockStart;
		blockStart += chunk.byteLength;
		await writer.write(chunk, ({ hash, size }) => onStored(idx, { offset, size, hash }));
	};

	let received = 0;
	let broken: unknown = null;
	if (body !== null) {
		try {
			for await (const piece of byobChunks(body)) {
				received += piece.byteLength;
				if (received > limits.maxPatchBytes || upload.offset + received > upload.size) {
					await writer.settle();
					await checkpoints;
					return upload.offset + received > upload.size
						? fail("INVALID_REQUEST", `the upload is ${upload.size} bytes long; this PATCH goes past its end`)
						: fail("PAYLOAD_TOO_LARGE", `a PATCH carries at most ${limits.maxPatchBytes} bytes`);
				}
				// `piece` is reused by the next read, and the chunks are views into
				// it or the chunker: every consumer finishes with them here.
				await wholeWriter?.write(piece);
				await patchWriter?.write(piece);
				for (const chunk of chunker.views(piece)) await enqueue(chunk);
			}
		} catch (err) {
			// The client went away mid-body: keep what completed.
			broken = err;
		}
	}
	const endOffset = upload.offset + received;
	const complete = broken === null && endOffset === upload.size;
	if (complete) {
		const last = chunker.finish();
		if (last !== null) await enqueue(last);
	}
	await writer.settle();
	await checkpoints;
	await writer.flush();
	if (checkpointFailure !== null) return fail("UPLOAD_OFFSET_MISMATCH", "another request changed this upload's offset; HEAD it and resume");
	if (broken !== null) return fail("INVALID_REQUEST", `the request body ended early; ${durableOffset} bytes are kept, resume from there`);

	if (checksum && patchWriter && patchDigest) {
		await patchWriter.close();
		const actual = btoa(String.fromCharCode(...new Uint8Array(await patchDigest.digest)));
		if (actual !== checksum.expected) {
			// Nothing of this PATCH counts; its blocks are left for the collector.
			await runBatch(db.$client, [
				db.run(
					sql`INSERT OR IGNORE INTO upload_received (upload_id, hash) SELECT ${upload.id}, value FROM json_each(${JSON.stringify(stored.map((b) => b.hash))})`,
				),
			]);
			return fail("CHECKSUM_MISMATCH", "Upload-Checksum does not match the PATCH body; nothing was kept");
		}
	}

	// Persist the new offset, any blocks not yet checkpointed (checksum
	// PATCHes), and the chunker's pending tail.
	const statements: BatchQuery[] = [];
	if (checksum) {
		const ordered = [...done.entries()].sort((a, b) => a[0] - b[0]).map(([, b]) => b);
		statements.push(...appendBlocks(db, upload.id, nextToCheckpoint, ordered));
	}
	let newTailKey: string | null = null;
	if (!complete) {
		const pending = chunker.tail;
		if (pending.byteLength > 0) {
			const hash = await sha256Hex(pending);
			newTailKey = tailKey(upload.id, hash);
			await bucket.put(newTailKey, await encodeBlock(pending, hash, ring, { hashVerified: true }));
		}
	}
	statements.push(
		db
			.update(uploads)
			.set({ offset: endOffset, tailKey: newTailKey })
			.where(and(eq(uploads.id, upload.id), eq(uploads.offset, durableOffset))),
	);
	const results = await runBatch(db.$client, statements);
	if (results.at(-1)?.meta.changes !== 1)
		return fail("UPLOAD_OFFSET_MISMATCH", "another request changed this upload's offset; HEAD it and resume");
	if (tailToDrop !== null && tailToDrop !== newTailKey) await bucket.delete(tailToDrop);

	let contentHash: string | null = null;
	if (complete) {
		if (wholeWriter && wholeFile) {
			await wholeWriter.close();
			contentHash = toHex(new Uint8Array(await wholeFile.digest));
		} else {
			contentHash = await hashStoredUpload(db, bucket, ring, upload.id);
		}
	} else if (wholeWriter && wholeFile) {
		// Only a single whole-file request can use the streamed hash.
		wholeFile.digest.catch(() => undefined);
		await wholeWriter.abort();
	}
	return { ok: true, offset: endOffset, complete, contentHash };
}

class OffsetRaceError extends Error {}
