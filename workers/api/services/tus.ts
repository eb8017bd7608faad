/**
 * tus uploads: receiving PATCH bodies, deferred lengths, concatenation, and
 * the commit of a complete upload.
 *
 * Bodies are chunked with content-defined chunking across PATCH boundaries,
 * with the chunker's pending tail saved (encrypted) between requests, so a
 * resumed upload yields exactly the blocks of an uninterrupted one.
 *
 * Progress is checkpointed in file order, PROGRESS_GROUP blocks at a time,
 * and the end of a PATCH writes what is pending: if a PATCH breaks, every
 * block completed before the break is kept and the upload's offset says so
 * (tus 1.0 §"PATCH": the server may keep less than it was sent). A PATCH
 * with Upload-Checksum is all or nothing instead. Each checkpoint saves the
 * whole-file hash state at its offset (running-hash.ts). The offset reaches
 * the upload's length only together with the file's content hash, so an
 * upload whose offset equals its length has every block listed and can be
 * committed from any request.
 */
import { createHash } from "node:crypto";
import { and, eq, isNull, sql } from "drizzle-orm";
import { quotaExceeded } from "../../../src/shared/commit/failures";
import { Chunker } from "../../../src/shared/chunking";
import { decodeBlock, encodeBlock } from "../../../src/shared/blocks";
import { sha256Hex, type KeyRing } from "../../../src/shared/crypto";
import { runBatch, type BatchQuery } from "../../../src/shared/db/batch";
import { inList } from "../../../src/shared/db/lists";
import type { BlockRef } from "../../../src/shared/db/mappers";
import { uploadBlocks, uploads, type UploadRow } from "../../../src/shared/db/schema";
import type { ShardDb } from "../../../src/shared/db/shards";
import { isLive } from "../../../src/shared/db/uploads";
import { fail, ok, type Result } from "../../../src/shared/errors";
import { MAX_REQUEST_BYTES } from "../../../src/shared/limits";
import { MAX_BLOCKS_PER_UPLOAD } from "../../../src/shared/schemas/uploads";
import { ResumableSha256 } from "../../../src/shared/sha256-resumable";
import type { Caller } from "../env";
import { BlockWriter, keyRing } from "./block-store";
import { outliveClient, piecesUntilBroken, type WaitUntil } from "./body";
import { Coalescer, PROGRESS_GROUP } from "./coalescer";
import { hubFor, shardFor } from "./hub";
import { resumeHash, type WholeFileHash } from "./running-hash";
import { storedUsage } from "./tree";
import {
	appendBlocks,
	checkUploadTarget,
	committedNodeId,
	createUpload,
	hashStoredUpload,
	listedCount,
	readBack,
	recordReceived,
	usableUpload,
	type NewUpload,
} from "./uploads";
import { commitMemberUpload, uploadAccess } from "./member-uploads";

export interface PatchChecksum {
	/** As in Upload-Checksum, and as node:crypto names them. */
	algorithm: "sha1" | "sha256";
	expected: string;
}

/** The most partial uploads one final upload may name. */
export const MAX_CONCAT_PARTS = 1000;

/** A partial upload of the concatenation extension: never committed on its own. */
export function isPartial(upload: UploadRow): boolean {
	return upload.concat === "partial";
}

/** A final upload of the concatenation extension: made of partials, never PATCHed. */
export function isFinal(upload: UploadRow): boolean {
	return upload.concat?.startsWith("final;") === true;
}

/** Every byte is in: the length is known, the offset has reached it, and the content hash is saved. */
function isReceived(upload: UploadRow): boolean {
	return !upload.lengthDeferred && upload.offset === upload.size && upload.contentHash !== null;
}

/**
 * The caller's tus upload that HEAD, PATCH and DELETE may use: live or
 * committed, and not terminated; NOT_FOUND otherwise, as for anyone else's.
 */
export async function findTusUpload(env: Env, caller: Caller, id: string): Promise<Result<UploadRow>> {
	const found = await usableUpload(env, caller, id, "tus");
	if (found.ok && found.value.cancelledAt !== null) return fail("NOT_FOUND", "upload not found or expired");
	return found;
}

/**
 * Terminates a tus upload (termination extension), complete or not: the
 * upload resource goes, and the cleanup removes what only it referenced. The
 * file a committed upload became stays; it is the user's file now.
 */
export async function terminateUpload(db: ShardDb, userId: string, id: string): Promise<void> {
	await db
		.update(uploads)
		.set({ cancelledAt: new Date().toISOString() })
		.where(and(eq(uploads.userId, userId), eq(uploads.id, id), isNull(uploads.cancelledAt)));
}

/** Refuses a size the user could not store: the quota check for partial uploads, which have no target yet. */
export async function checkRoom(env: Env, caller: Caller, size: number): Promise<Result<void>> {
	const maxFileBytes = Number(env.MAX_FILE_BYTES);
	if (size > maxFileBytes) return fail("PAYLOAD_TOO_LARGE", `a file is at most ${maxFileBytes} bytes`);
	const { versionBytes } = await storedUsage(shardFor(env, caller), caller.userId);
	if (versionBytes + size > caller.quotaBytes) return quotaExceeded(size, versionBytes, caller.quotaBytes);
	return ok(undefined);
}

/** Would the upload, at `size` bytes, still be accepted (its target, the file limit and the quota)? */
function checkSize(env: Env, caller: Caller, upload: UploadRow, size: number): Promise<Result<unknown>> {
	if (isPartial(upload)) return checkRoom(env, caller, size);
	return checkUploadTarget(env, caller, {
		parentId: upload.parentId,
		name: upload.name,
		size,
		maxFileBytes: Number(env.MAX_FILE_BYTES),
		baseVersionId: upload.baseVersionId,
		onConflict: upload.onConflict,
		createOnly: upload.createOnly,
		blocks: [],
	});
}

/**
 * Sets a deferred upload's length from a PATCH's Upload-Length
 * (creation-defer-length), checked as a length given at creation would be.
 * A length once known never changes.
 */
async function declareLength(
	env: Env,
	caller: Caller,
	upload: UploadRow,
	length: number,
	patchLength: number | null,
): Promise<Result<UploadRow>> {
	if (!upload.lengthDeferred) {
		if (length === upload.size) return ok(upload);
		return fail("INVALID_REQUEST", `the upload is ${upload.size} bytes long; its length cannot change`, [{ field: "Upload-Length" }]);
	}
	const atLeast = upload.offset + (patchLength ?? 0);
	if (length < atLeast)
		return fail("INVALID_REQUEST", `Upload-Length ${length} is less than the ${atLeast} bytes received and sent`, [
			{ field: "Upload-Length" },
		]);
	const checked = await checkSize(env, caller, upload, length);
	if (!checked.ok) return checked;
	const db = shardFor(env, caller);
	const updated = await db
		.update(uploads)
		.set({ size: length, lengthDeferred: false })
		.where(and(eq(uploads.id, upload.id), eq(uploads.lengthDeferred, true), eq(uploads.offset, upload.offset)));
	if (updated.meta.changes !== 1) return fail("UPLOAD_OFFSET_MISMATCH", "another request changed this upload; HEAD it and resume");
	return ok({ ...upload, size: length, lengthDeferred: false });
}

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
 * Consumes one PATCH body at `upload.offset`, never past `maxEnd` (the
 * upload's length, or the file size limit while the length is deferred).
 * Returns the upload as it now stands: its offset, and once every byte is
 * in, its content hash.
 */
export async function receivePatch(
	db: ShardDb,
	bucket: R2Bucket,
	ring: KeyRing,
	upload: UploadRow,
	body: ReadableStream<Uint8Array> | null,
	limits: { maxPatchBytes: number; maxEnd: number; declaredLength: number | null },
	checksum: PatchChecksum | null,
): Promise<Result<UploadRow>> {
	const tail = await loadTail(bucket, ring, upload.tailKey);
	const chunker = new Chunker(tail);
	let nextIdx = await listedCount(db, upload.id);
	let blockStart = upload.offset - (tail?.byteLength ?? 0);
	const lengthKnown = !upload.lengthDeferred;
	// The whole file's hash, fed in file order as blocks are cut. Null only
	// when no saved state covers the bytes so far: then the stored blocks are
	// read back once every byte is in. A partial's state is kept even when
	// one request carries it all: a final upload continues from it.
	const wholeUpload = upload.offset === 0 && lengthKnown && limits.declaredLength === upload.size && !isPartial(upload);
	const wholeFile = resumeHash(upload, wholeUpload);
	let hashedTo = upload.offset;
	const feed = (bytes: Uint8Array, start: number) => {
		const fresh = hashedTo - start;
		if (wholeFile === null || fresh >= bytes.byteLength) return;
		wholeFile.update(fresh > 0 ? bytes.subarray(fresh) : bytes);
		hashedTo = start + bytes.byteLength;
	};
	const patchDigest = checksum ? createHash(checksum.algorithm) : null;

	let durableOffset = upload.offset;
	let tailToDrop = upload.tailKey;
	const stored: BlockRef[] = [];
	const writer = new BlockWriter(bucket, ring);
	// Blocks finish out of order; checkpoints advance over the in-order prefix.
	const done = new Map<number, { block: BlockRef; state: string | null }>();
	let nextToCheckpoint = nextIdx;
	// A break loses nothing: the end of the PATCH writes what is pending and
	// awaits the last checkpoint, so every block stored before the break is
	// kept. Checkpoints go in groups (PROGRESS_GROUP has the trade-off).
	const checkpoints = new Coalescer<{ idx: number; block: BlockRef; state: string | null }>(async (items) => {
		const blocks = items.map((i) => i.block);
		const last = items[items.length - 1];
		if (last === undefined) return;
		const previous = durableOffset;
		const end = last.block.offset + last.block.size;
		const results = await runBatch(db.$client, [
			...appendBlocks(db, upload.id, items[0]?.idx ?? 0, blocks, previous),
			db
				.update(uploads)
				.set({ offset: end, tailKey: null, hashState: last.state })
				.where(and(eq(uploads.id, upload.id), eq(uploads.offset, previous))),
		]);
		if (results.at(-1)?.meta.changes !== 1) throw new OffsetRaceError();
		durableOffset = end;
		// The first checkpoint consumed the saved tail; drop its object now,
		// since a later break would otherwise leave it unreferenced.
		if (tailToDrop !== null) {
			const key = tailToDrop;
			tailToDrop = null;
			await bucket.delete(key);
		}
	}, PROGRESS_GROUP);
	const onStored = (idx: number, block: BlockRef, state: string | null) => {
		stored.push(block);
		done.set(idx, { block, state });
		if (checksum) return;
		for (let b = done.get(nextToCheckpoint); b !== undefined; b = done.get(nextToCheckpoint)) {
			// The last block waits for the end of the PATCH, which writes the
			// offset that completes the upload together with the file's hash.
			if (lengthKnown && b.block.offset + b.block.size === upload.size) break;
			done.delete(nextToCheckpoint);
			checkpoints.add({ idx: nextToCheckpoint, ...b });
			nextToCheckpoint++;
		}
	};
	const enqueue = async (chunk: Uint8Array) => {
		const idx = nextIdx++;
		const offset = blockStart;
		blockStart += chunk.byteLength;
		feed(chunk, offset);
		const state = checksum === null && wholeFile !== null ? wholeFile.save() : null;
		await writer.write(chunk, ({ hash, size }) => onStored(idx, { offset, size, hash }, state));
	};
	// Every exit that keeps less than was stored records what was stored, so
	// the cleanup can collect it (receipts are what it looks at).
	const recordStored = async () => {
		await writer.settle();
		if (stored.length > 0)
			await runBatch(db.$client, [
				recordReceived(
					db,
					upload.id,
					stored.map((b) => b.hash),
				),
			]);
	};

	let received = 0;
	const reading = { broken: null as unknown };
	let complete: boolean;
	try {
		if (body !== null) {
			for await (const piece of piecesUntilBroken(body, reading)) {
				received += piece.byteLength;
				if (received > limits.maxPatchBytes || upload.offset + received > limits.maxEnd) {
					await writer.settle();
					await checkpoints.settle();
					await recordStored();
					if (received > limits.maxPatchBytes) return fail("PAYLOAD_TOO_LARGE", `a PATCH carries at most ${limits.maxPatchBytes} bytes`);
					return lengthKnown
						? fail("INVALID_REQUEST", `the upload is ${upload.size} bytes long; this PATCH goes past its end`)
						: fail("PAYLOAD_TOO_LARGE", `a file is at most ${limits.maxEnd} bytes`);
				}
				// `piece` is reused by the next read, and the chunks are views into
				// it or the chunker: every consumer finishes with them here.
				patchDigest?.update(piece);
				for (const chunk of chunker.views(piece)) await enqueue(chunk);
			}
		}
		complete = lengthKnown && reading.broken === null && upload.offset + received === upload.size;
		if (complete) {
			const last = chunker.finish();
			if (last !== null) await enqueue(last);
		}
	} catch (err) {
		// Our own failure, not the client's: a 500, after what is in flight
		// settles and the checkpoints pending so far are written.
		await writer.settle();
		await checkpoints.settle();
		await recordStored().catch(() => undefined);
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
	const writeFailure = await writer.flush().then(
		() => null,
		(err: unknown) => err,
	);
	if (checkpointFailure !== null || writeFailure !== null || broken !== null) await recordStored();
	if (writeFailure !== null) throw writeFailure;
	if (checkpointFailure instanceof OffsetRaceError)
		return fail("UPLOAD_OFFSET_MISMATCH", "another request changed this upload's offset; HEAD it and resume");
	if (checkpointFailure !== null) throw checkpointFailure;
	if (broken !== null) return fail("INVALID_REQUEST", `the request body ended early; ${durableOffset} bytes are kept, resume from there`);

	if (checksum && patchDigest) {
		const actual = patchDigest.digest("base64");
		if (actual !== checksum.expected) {
			// Nothing of this PATCH counts; its blocks are left for the collector.
			await recordStored();
			return fail("CHECKSUM_MISMATCH", "Upload-Checksum does not match the PATCH body; nothing was kept");
		}
	}

	// Persist the new offset with the hash state at it, the blocks not yet
	// checkpointed, and the chunker's pending tail (or, once complete, the
	// file's hash).
	const rest = [...done.entries()].sort((a, b) => a[0] - b[0]).map(([, b]) => b.block);
	const statements: BatchQuery[] = [...appendBlocks(db, upload.id, nextToCheckpoint, rest, durableOffset)];
	let newTailKey: string | null = null;
	if (!complete) {
		const pending = chunker.tail;
		feed(pending, endOffset - pending.byteLength);
		if (pending.byteLength > 0) {
			const hash = await sha256Hex(pending);
			newTailKey = tailKey(upload.id, hash);
			await bucket.put(newTailKey, await encodeBlock(pending, hash, ring, { hashVerified: true }));
		}
	}
	const hashed = wholeFile?.length === endOffset ? wholeFile : null;
	const hashState = hashed?.save() ?? null;
	const contentHash = complete ? (hashed?.digestHex() ?? null) : upload.contentHash;
	statements.push(
		db
			.update(uploads)
			.set({ offset: endOffset, tailKey: newTailKey, hashState, contentHash })
			.where(and(eq(uploads.id, upload.id), eq(uploads.offset, durableOffset))),
	);
	const results = await runBatch(db.$client, statements);
	if (results.at(-1)?.meta.changes !== 1) {
		await recordStored();
		return fail("UPLOAD_OFFSET_MISMATCH", "another request changed this upload's offset; HEAD it and resume");
	}
	if (tailToDrop !== null && tailToDrop !== newTailKey) await bucket.delete(tailToDrop);
	const now: UploadRow = { ...upload, offset: endOffset, tailKey: newTailKey, hashState, contentHash };
	if (complete && contentHash === null) {
		// No saved state covered the start: hash the stored blocks instead.
		now.contentHash = await hashStoredUpload(db, bucket, ring, upload.id);
		await db.update(uploads).set({ contentHash: now.contentHash }).where(eq(uploads.id, upload.id));
	}
	return ok(now);
}

/** One PATCH body (or a creation-with-upload body) as it arrives. */
export interface PatchRequest {
	body: ReadableStream<Uint8Array> | null;
	/** Content-Length, when sent. */
	length: number | null;
	checksum: PatchChecksum | null;
	/** The PATCH's Upload-Length (creation-defer-length), when sent. */
	uploadLength: number | null;
}

/**
 * Commits a tus upload whose every byte is in, through the user's hub like
 * any other commit. Idempotent: a committed upload answers its node again,
 * so HEAD may call it to learn whether the upload became a file (H5).
 * @returns the node id.
 */
export async function commitTusUpload(env: Env, caller: Caller, upload: UploadRow): Promise<Result<string>> {
	const db = shardFor(env, caller);
	if (upload.ownerId !== null) {
		// Into a share: through the owner's hub, with the access checked again.
		const access = await uploadAccess(env, caller, upload);
		if (!access.ok) return access;
		const contentHash = upload.contentHash ?? (await hashStoredUpload(db, env.BLOBS, keyRing(env), upload.id));
		const committed = await commitMemberUpload(env, access.value, upload, { contentHash, hashVerified: true });
		return committed.ok ? ok(committed.value.node.id) : committed;
	}
	if (upload.committedVersionId !== null) {
		const nodeId = await committedNodeId(db, caller.userId, upload);
		if (nodeId !== null) return ok(nodeId);
	}
	const contentHash = upload.contentHash ?? (await hashStoredUpload(db, env.BLOBS, keyRing(env), upload.id));
	const committed = await hubFor(env, caller.userId).commitUpload({
		uploadId: upload.id,
		contentHash,
		hashVerified: true,
		quotaBytes: caller.quotaBytes,
	});
	return committed.ok ? ok(committed.value.node.id) : { ok: false, error: committed.error };
}

/**
 * Takes one PATCH at the upload's offset and, when the upload completes,
 * commits the file (partial uploads are never committed on their own).
 * @returns the upload as it now stands, and the file's node id once committed.
 */
export async function acceptPatch(
	env: Env,
	ctx: WaitUntil,
	caller: Caller,
	upload: UploadRow,
	patch: PatchRequest,
): Promise<Result<{ upload: UploadRow; nodeId: string | null }>> {
	if (patch.length !== null && patch.length > MAX_REQUEST_BYTES)
		return fail("PAYLOAD_TOO_LARGE", `a PATCH carries at most ${MAX_REQUEST_BYTES} bytes`);
	let current = upload;
	if (patch.uploadLength !== null) {
		const declared = await declareLength(env, caller, current, patch.uploadLength, patch.length);
		if (!declared.ok) return declared;
		current = declared.value;
	}
	if (current.lengthDeferred) {
		// Bytes before the length is known still count against the file
		// limit and the quota: refuse what could never be committed.
		const checked = await checkSize(env, caller, current, current.offset + (patch.length ?? 0));
		if (!checked.ok) return checked;
	} else if (patch.length !== null && current.offset + patch.length > current.size)
		return fail("INVALID_REQUEST", `the upload is ${current.size} bytes long; this PATCH goes past its end`, [{ field: "Content-Length" }]);
	if (current.committedVersionId === null && !isReceived(current)) {
		const maxEnd = current.lengthDeferred ? Number(env.MAX_FILE_BYTES) : current.size;
		const limits = { maxPatchBytes: MAX_REQUEST_BYTES, maxEnd, declaredLength: patch.length };
		const db = shardFor(env, caller);
		const outcome = await outliveClient(ctx, receivePatch(db, env.BLOBS, keyRing(env), current, patch.body, limits, patch.checksum));
		if (!outcome.ok) return outcome;
		current = outcome.value;
	}
	if (isPartial(current) || (current.committedVersionId === null && !isReceived(current))) return ok({ upload: current, nodeId: null });
	const committed = await commitTusUpload(env, caller, current);
	return committed.ok ? ok({ upload: current, nodeId: committed.value }) : committed;
}

/**
 * Creates a final upload from complete partial uploads (concatenation
 * extension) without copying a byte: its block list is theirs, in order,
 * at shifted offsets. The file's hash continues the first partial's saved
 * hash state over the other partials' stored blocks, read back in order.
 * The caller then commits it.
 */
export async function concatenate(
	env: Env,
	caller: Caller,
	partIds: readonly string[],
	final: Omit<NewUpload, "protocol" | "size" | "blocks" | "moreBlocks" | "contentHash" | "maxFileBytes" | "concat" | "lengthDeferred">,
	concatHeader: string,
): Promise<Result<UploadRow>> {
	const db = shardFor(env, caller);
	const distinct = [...new Set(partIds)];
	const rows = await db
		.select()
		.from(uploads)
		.where(and(eq(uploads.userId, caller.userId), inList(uploads.id, distinct)));
	const byId = new Map(rows.map((r) => [r.id, r]));
	const parts: UploadRow[] = [];
	for (const id of partIds) {
		const part = byId.get(id);
		if (!part || part.protocol !== "tus" || !isLive(part)) return fail("NOT_FOUND", `partial upload ${id} not found or expired`);
		if (!isPartial(part)) return fail("INVALID_REQUEST", `upload ${id} is not a partial upload`, [{ field: "Upload-Concat" }]);
		if (!isReceived(part))
			return fail("INVALID_REQUEST", `partial upload ${id} is not complete; finish it first`, [{ field: "Upload-Concat", upload_id: id }]);
		parts.push(part);
	}
	const size = parts.reduce((n, p) => n + p.size, 0);
	const maxFileBytes = Number(env.MAX_FILE_BYTES);
	const target = await checkUploadTarget(env, caller, { ...final, size, maxFileBytes, blocks: [] });
	if (!target.ok) return target;
	const { access, owner } = target.value;
	const counts = new Map(
		(
			await db.all<{ id: string; n: number }>(
				sql`SELECT upload_id AS id, COUNT(*) AS n FROM upload_blocks WHERE ${inList(uploadBlocks.uploadId, distinct)} GROUP BY upload_id`,
			)
		).map((r) => [r.id, r.n]),
	);
	const shifts: [string, number, number][] = [];
	let blocks = 0;
	let offset = 0;
	for (const part of parts) {
		shifts.push([part.id, blocks, offset]);
		blocks += counts.get(part.id) ?? 0;
		offset += part.size;
	}
	if (blocks > MAX_BLOCKS_PER_UPLOAD)
		return fail("INVALID_REQUEST", `a file's block list has at most ${MAX_BLOCKS_PER_UPLOAD} blocks`, [{ field: "Upload-Concat" }]);

	const hash = await concatenatedHash(db, env.BLOBS, keyRing(env), parts);
	const created = await createUpload(db, caller, {
		...final,
		parentId: access.nodeId,
		owner,
		name: target.value.name,
		protocol: "tus",
		size,
		blocks: [],
		moreBlocks: false,
		contentHash: hash.digestHex(),
		maxFileBytes,
		concat: concatHeader,
		// Its parts hold these bytes against the quota until the batch below closes them.
		limits: { ...final.limits, quotaBytes: Number.MAX_SAFE_INTEGER },
	});
	if (!created.ok) return created;
	const upload = created.value;
	// The block list and receipts, then the offset that says the concatenation
	// is done. The parts are closed (tus lets a server delete partial uploads
	// once concatenated): the final now holds their blocks and their place in
	// the user's open-upload limits.
	const shiftList = JSON.stringify(shifts);
	await runBatch(db.$client, [
		db.run(sql`INSERT INTO upload_blocks (upload_id, idx, offset, size, hash)
			SELECT ${upload.id}, b.idx + json_extract(j.value, '$[1]'), b.offset + json_extract(j.value, '$[2]'), b.size, b.hash
			FROM json_each(${shiftList}) j JOIN upload_blocks b ON b.upload_id = json_extract(j.value, '$[0]')`),
		db.run(sql`INSERT OR IGNORE INTO upload_received (upload_id, hash)
			SELECT ${upload.id}, hash FROM upload_blocks WHERE ${inList(uploadBlocks.uploadId, distinct)}`),
		db.update(uploads).set({ offset: size, hashState: hash.save() }).where(eq(uploads.id, upload.id)),
		db
			.update(uploads)
			.set({ cancelledAt: new Date().toISOString() })
			.where(and(eq(uploads.userId, caller.userId), inList(uploads.id, distinct))),
	]);
	return ok({ ...upload, offset: size, hashState: hash.save() });
}

/**
 * The SHA-256 of the partials' concatenated content: the first partial's
 * saved state (it hashed its own bytes as they arrived), then the others'
 * stored blocks, read back in order.
 */
async function concatenatedHash(db: ShardDb, bucket: R2Bucket, ring: KeyRing, parts: UploadRow[]): Promise<WholeFileHash> {
	const [first, ...others] = parts;
	const fromFirst = first === undefined ? null : resumeHash(first);
	const hash = fromFirst ?? new ResumableSha256();
	for (const part of fromFirst === null ? parts : others) await readBack(db, bucket, ring, part.id, hash);
	return hash;
}

class OffsetRaceError extends Error {}
