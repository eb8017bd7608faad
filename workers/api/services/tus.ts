/**
 * Receiving tus PATCH bodies: content-defined chunking across PATCH
 * boundaries, with the chunker's pending tail saved (encrypted) between
 * requests, so a resumed upload yields exactly the blocks of an
 * uninterrupted one.
 *
 * Progress is checkpointed in file order, PROGRESS_GROUP blocks at a time,
 * and the end of a PATCH writes what is pending: if a PATCH breaks, every
 * block completed before the break is kept and the upload's offset says so
 * (tus 1.0 §"PATCH": the server may keep less than it was sent). A PATCH
 * with Upload-Checksum is all or nothing instead.
 */
import { createHash } from "node:crypto";
import { and, eq } from "drizzle-orm";
import { Chunker } from "../../../src/shared/chunking";
import { decodeBlock, encodeBlock } from "../../../src/shared/blocks";
import { sha256Hex, type KeyRing } from "../../../src/shared/crypto";
import { runBatch, type BatchQuery } from "../../../src/shared/db/batch";
import type { BlockRef } from "../../../src/shared/db/mappers";
import { uploads, type UploadRow } from "../../../src/shared/db/schema";
import type { ShardDb } from "../../../src/shared/db/shards";
import { fail, ok, type Result } from "../../../src/shared/errors";
import { MAX_REQUEST_BYTES } from "../../../src/shared/limits";
import type { Caller } from "../env";
import { BlockWriter, keyRing } from "./block-store";
import { outliveClient, piecesUntilBroken, type WaitUntil } from "./body";
import { Coalescer, PROGRESS_GROUP } from "./coalescer";
import { hubFor, shardFor } from "./hub";
import { keepRunningHash, takeRunningHash } from "./running-hash";
import { appendBlocks, hashStoredUpload, listedCount, recordReceived } from "./uploads";

export interface PatchChecksum {
	/** As in Upload-Checksum, and as node:crypto names them. */
	algorithm: "sha1" | "sha256";
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
	let nextIdx = await listedCount(db, upload.id);
	let blockStart = upload.offset - (tail?.byteLength ?? 0);
	// The whole file's hash, carried over from the previous PATCH when this
	// isolate received it; otherwise computed from the stored blocks at the end.
	const wholeFile = takeRunningHash(upload.id, upload.offset);
	const patchDigest = checksum ? createHash(checksum.algorithm) : null;

	let durableOffset = upload.offset;
	let tailToDrop = upload.tailKey;
	const stored: BlockRef[] = [];
	const writer = new BlockWriter(bucket, ring);
	// Blocks finish out of order; checkpoints advance over the in-order prefix.
	const done = new Map<number, BlockRef>();
	let nextToCheckpoint = nextIdx;
	// A break loses nothing: the end of the PATCH writes what is pending and
	// awaits the last checkpoint, so every block stored before the break is
	// kept. Checkpoints go in groups (PROGRESS_GROUP has the trade-off).
	const checkpoints = new Coalescer<{ idx: number; block: BlockRef }>(async (items) => {
		const blocks = items.map((i) => i.block);
		const last = blocks[blocks.length - 1];
		if (last === undefined) return;
		const previous = durableOffset;
		const results = await runBatch(db.$client, [
			...appendBlocks(db, upload.id, items[0]?.idx ?? 0, blocks, previous),
			db
				.update(uploads)
				.set({ offset: last.offset + last.size, tailKey: null })
				.where(and(eq(uploads.id, upload.id), eq(uploads.offset, previous))),
		]);
		if (results.at(-1)?.meta.changes !== 1) throw new OffsetRaceError();
		durableOffset = last.offset + last.size;
		// The first checkpoint consumed the saved tail; drop its object now,
		// since a later break would otherwise leave it unreferenced.
		if (tailToDrop !== null) {
			const key = tailToDrop;
			tailToDrop = null;
			await bucket.delete(key);
		}
	}, PROGRESS_GROUP);
	const onStored = (idx: number, block: BlockRef) => {
		stored.push(block);
		done.set(idx, block);
		if (checksum) return;
		for (let b = done.get(nextToCheckpoint); b !== undefined; b = done.get(nextToCheckpoint)) {
			done.delete(nextToCheckpoint);
			checkpoints.add({ idx: nextToCheckpoint, block: b });
			nextToCheckpoint++;
		}
	};
	const enqueue = async (chunk: Uint8Array) => {
		const idx = nextIdx++;
		const offset = blockStart;
		blockStart += chunk.byteLength;
		await writer.write(chunk, ({ hash, size }) => onStored(idx, { offset, size, hash }));
	};

	let received = 0;
	const reading = { broken: null as unknown };
	let complete = false;
	try {
		if (body !== null) {
			for await (const piece of piecesUntilBroken(body, reading)) {
				received += piece.byteLength;
				if (received > limits.maxPatchBytes || upload.offset + received > upload.size) {
					await writer.settle();
					await checkpoints.settle();
					return upload.offset + received > upload.size
						? fail("INVALID_REQUEST", `the upload is ${upload.size} bytes long; this PATCH goes past its end`)
						: fail("PAYLOAD_TOO_LARGE", `a PATCH carries at most ${limits.maxPatchBytes} bytes`);
				}
				// `piece` is reused by the next read, and the chunks are views into
				// it or the chunker: every consumer finishes with them here.
				wholeFile?.update(piece);
				patchDigest?.update(piece);
				for (const chunk of chunker.views(piece)) await enqueue(chunk);
			}
		}
		complete = reading.broken === null && upload.offset + received === upload.size;
		if (complete) {
			const last = chunker.finish();
			if (last !== null) await enqueue(last);
		}
	} catch (err) {
		// Our own failure, not the client's: a 500, after what is in flight
		// settles and the checkpoints pending so far are written.
		await writer.settle();
		await checkpoints.settle();
		throw err;
	}
	// The client went away mid-body: keep what completed.
	const broken = reading.broken;
	const endOffset = upload.offset + received;
	await writer.settle();
	const checkpointFailure = await checkpoints.drain().then(
		() => null,
		(err: unknown) => err,
	);
	await writer.flush();
	if (checkpointFailure instanceof OffsetRaceError)
		return fail("UPLOAD_OFFSET_MISMATCH", "another request changed this upload's offset; HEAD it and resume");
	if (checkpointFailure !== null) throw checkpointFailure;
	if (broken !== null) return fail("INVALID_REQUEST", `the request body ended early; ${durableOffset} bytes are kept, resume from there`);

	if (checksum && patchDigest) {
		const actual = patchDigest.digest("base64");
		if (actual !== checksum.expected) {
			// Nothing of this PATCH counts; its blocks are left for the collector.
			await runBatch(db.$client, [
				recordReceived(
					db,
					upload.id,
					stored.map((b) => b.hash),
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
		statements.push(...appendBlocks(db, upload.id, nextToCheckpoint, ordered, durableOffset));
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
	if (complete) contentHash = wholeFile?.digest("hex") ?? (await hashStoredUpload(db, bucket, ring, upload.id));
	else if (wholeFile !== null) keepRunningHash(upload.id, wholeFile, endOffset);
	return ok({ offset: endOffset, complete, contentHash });
}

/** One PATCH body (or a creation-with-upload body) as it arrives. */
export interface PatchRequest {
	body: ReadableStream<Uint8Array> | null;
	/** Content-Length, when sent. */
	length: number | null;
	checksum: PatchChecksum | null;
}

/**
 * Takes one PATCH at the upload's offset and commits the file when it
 * completes (through the user's hub, like any other commit).
 * @returns the new offset, and the file's node id once committed.
 */
export async function acceptPatch(
	env: Env,
	ctx: WaitUntil,
	caller: Caller,
	upload: UploadRow,
	patch: PatchRequest,
): Promise<Result<{ offset: number; nodeId: string | null }>> {
	if (patch.length !== null && patch.length > MAX_REQUEST_BYTES)
		return fail("PAYLOAD_TOO_LARGE", `a PATCH carries at most ${MAX_REQUEST_BYTES} bytes`);
	if (patch.length !== null && upload.offset + patch.length > upload.size)
		return fail("INVALID_REQUEST", `the upload is ${upload.size} bytes long; this PATCH goes past its end`, [{ field: "Content-Length" }]);
	const db = shardFor(env, caller);
	let offset = upload.offset;
	let contentHash: string | null = null;
	if (upload.committedVersionId === null && offset < upload.size) {
		const limits = { maxPatchBytes: MAX_REQUEST_BYTES };
		const outcome = await outliveClient(ctx, receivePatch(db, env.BLOBS, keyRing(env), upload, patch.body, limits, patch.checksum));
		if (!outcome.ok) return outcome;
		offset = outcome.value.offset;
		contentHash = outcome.value.contentHash;
	} else if (upload.committedVersionId === null) {
		// Complete but not committed (an earlier commit failed): commit now.
		contentHash = await hashStoredUpload(db, env.BLOBS, keyRing(env), upload.id);
	}
	if (offset !== upload.size) return ok({ offset, nodeId: null });
	const committed = await hubFor(env, caller.userId).commitUpload({
		uploadId: upload.id,
		contentHash: contentHash ?? "",
		quotaBytes: caller.quotaBytes,
	});
	return committed.ok ? ok({ offset, nodeId: committed.value.node.id }) : { ok: false, error: committed.error };
}

class OffsetRaceError extends Error {}
