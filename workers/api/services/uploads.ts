/** Upload sessions and tus uploads: creation, receiving blocks, status, commit, and cleanup of expired ones. */
import { createHash } from "node:crypto";
import { and, eq, isNull, sql, type SQL } from "drizzle-orm";
import { blockObjectKey } from "../../../src/shared/blocks";
import { listIncomplete, missingBlocks as missingBlocksFailure } from "../../../src/shared/commit/failures";
import type { KeyRing } from "../../../src/shared/crypto";
import { runBatch, type BatchQuery } from "../../../src/shared/db/batch";
import { inList, slices } from "../../../src/shared/db/lists";
import type { BlockRef } from "../../../src/shared/db/mappers";
import { uploadBlocks, uploadReceived, uploads, type UploadRow } from "../../../src/shared/db/schema";
import { shardAt, shardCount, type ShardDb } from "../../../src/shared/db/shards";
import { findVersion } from "../../../src/shared/db/tree";
import { declaredBlockSizes, findUpload, isLive, missingBlocks } from "../../../src/shared/db/uploads";
import { fail, ok, type Result } from "../../../src/shared/errors";
import { newId } from "../../../src/shared/ids";
import { MAX_BLOCK_BYTES } from "../../../src/shared/limits";
import { MAX_BLOCKS_PER_UPLOAD, type UploadStatus } from "../../../src/shared/schemas/uploads";
import type { CommitOutcome } from "../../notify/contract";
import type { Caller } from "../env";
import { getBlock, putBlock } from "./block-store";
import { readBounded } from "./body";
import { hubFor, shardFor } from "./hub";
import { precheckCommit } from "./precheck";

export interface NewUpload {
	protocol: "session" | "tus";
	parentId: string;
	name: string;
	size: number;
	blocks: { hash: string; size: number }[];
	/** Sessions: more of the block list follows ({@link appendBlockList}). */
	moreBlocks: boolean;
	baseVersionId: string | null;
	contentHash: string | null;
	onConflict: "copy" | "fail";
	metadata: string | null;
	ttlHours: number;
	maxFileBytes: number;
	/** tus: created with Upload-Defer-Length: 1 (size is 0 until declared). */
	lengthDeferred?: boolean;
	/** tus: the Upload-Concat header it was created with. */
	concat?: string | null;
}

/**
 * Checks an upload's target before anything is stored: the size fits the
 * file limit, and the commit would land (the same plan the hub makes,
 * including the quota; without a size, as for a tus upload whose length is
 * deferred, neither size check runs).
 */
export async function checkUploadTarget(
	env: Env,
	caller: Caller,
	target: {
		parentId: string;
		name: string;
		size: number | null;
		maxFileBytes: number;
		baseVersionId: string | null;
		onConflict: "copy" | "fail";
	},
): Promise<Result<{ name: string }>> {
	if (target.size !== null && target.size > target.maxFileBytes)
		return fail("PAYLOAD_TOO_LARGE", `a file is at most ${target.maxFileBytes} bytes`);
	return precheckCommit(env, caller, target);
}

/**
 * The caller's upload of this protocol that can still be used or asked
 * about (live, or committed); NOT_FOUND otherwise, including for anyone
 * else's upload, so that ids leak nothing.
 */
export async function usableUpload(env: Env, caller: Caller, id: string, protocol: UploadRow["protocol"]): Promise<Result<UploadRow>> {
	const upload = await findUpload(shardFor(env, caller), caller.userId, id);
	if (!upload || upload.protocol !== protocol || (!isLive(upload) && upload.committedVersionId === null))
		return fail("NOT_FOUND", "upload not found or expired");
	return ok(upload);
}

/** The caller's session that can still take blocks or list parts: live and not committed. */
export async function openSession(env: Env, caller: Caller, id: string): Promise<Result<UploadRow>> {
	const upload = await usableUpload(env, caller, id, "session");
	if (upload.ok && upload.value.committedVersionId !== null) return fail("NOT_FOUND", "upload already committed");
	return upload;
}

/** What a session still needs, for creating and resuming it; with the file it became once committed. */
export async function sessionStatus(db: ShardDb, userId: string, upload: UploadRow): Promise<UploadStatus> {
	const listing = { listed_bytes: upload.offset, more_blocks: upload.moreBlocks };
	if (upload.committedVersionId !== null) {
		const version = await findVersion(db, userId, upload.committedVersionId);
		const committed = version ? { node_id: version.nodeId, version_id: version.id } : null;
		return { upload_id: upload.id, missing: [], expires_at: upload.expiresAt, committed, ...listing };
	}
	const missing = await missingBlocks(db, userId, upload.id);
	return { upload_id: upload.id, missing, expires_at: upload.expiresAt, committed: null, ...listing };
}

/** The node an upload became, once committed (tus HEAD's Drive-Node-Id). */
export async function committedNodeId(db: ShardDb, userId: string, upload: UploadRow): Promise<string | null> {
	if (upload.committedVersionId === null) return null;
	return (await findVersion(db, userId, upload.committedVersionId))?.nodeId ?? null;
}

/** Records a new upload and its block list (for tus the list starts empty). */
export async function createUpload(db: ShardDb, caller: Caller, input: NewUpload): Promise<UploadRow> {
	const now = new Date();
	const row: UploadRow = {
		id: newId("upl"),
		userId: caller.userId,
		protocol: input.protocol,
		parentId: input.parentId,
		name: input.name,
		size: input.size,
		contentHash: input.contentHash,
		baseVersionId: input.baseVersionId,
		onConflict: input.onConflict,
		deviceId: caller.deviceId,
		deviceName: caller.deviceName,
		createdAt: now.toISOString(),
		expiresAt: new Date(now.getTime() + input.ttlHours * 3_600_000).toISOString(),
		// Sessions: the bytes the block list covers; tus: the bytes received.
		offset: input.protocol === "session" ? input.blocks.reduce((n, b) => n + b.size, 0) : 0,
		moreBlocks: input.moreBlocks,
		hashState: null,
		tailKey: null,
		metadata: input.metadata,
		committedVersionId: null,
		cancelledAt: null,
		lengthDeferred: input.lengthDeferred ?? false,
		concat: input.concat ?? null,
	};
	await runBatch(db.$client, [db.insert(uploads).values(row), ...listBlocks(db, row.id, 0, 0, input.blocks)]);
	return row;
}

/**
 * Inserts `blocks` into an upload's block list from index `firstIdx`, at
 * byte `offset`. With `onlyIf`, only while the upload row meets it: put
 * before the batch's offset update, a stale or raced append then inserts
 * nothing (D1 runs a batch as one transaction, one batch at a time).
 */
function listBlocks(
	db: ShardDb,
	uploadId: string,
	firstIdx: number,
	offset: number,
	blocks: readonly { hash: string; size: number }[],
	onlyIf?: SQL,
): BatchQuery[] {
	const guard = onlyIf === undefined ? sql`` : sql` WHERE EXISTS (SELECT 1 FROM uploads WHERE id = ${uploadId} AND ${onlyIf})`;
	let at = offset;
	const rows = blocks.map((b, i) => {
		const r = [firstIdx + i, at, b.size, b.hash] as const;
		at += b.size;
		return r;
	});
	return [...slices(rows)].map((slice) =>
		db.run(sql`INSERT INTO upload_blocks (upload_id, idx, offset, size, hash)
			SELECT ${uploadId}, json_extract(value, '$[0]'), json_extract(value, '$[1]'), json_extract(value, '$[2]'), json_extract(value, '$[3]')
			FROM json_each(${JSON.stringify(slice)})${guard}`),
	);
}

/** How many blocks an upload's list holds so far: the index the next one gets. */
export async function listedCount(db: ShardDb, uploadId: string): Promise<number> {
	return db.$count(uploadBlocks, eq(uploadBlocks.uploadId, uploadId));
}

/**
 * Appends the next part of a session's block list at `part.offset` (the
 * bytes listed so far). Repeating the last append, whose answer a client
 * lost, answers it again; any other offset is UPLOAD_OFFSET_MISMATCH, as
 * is losing a race with a concurrent append.
 *
 * @returns the index of the first block of this part.
 */
export async function appendBlockList(
	db: ShardDb,
	upload: UploadRow,
	part: { offset: number; blocks: readonly { hash: string; size: number }[]; moreBlocks: boolean; contentHash: string | null },
): Promise<Result<{ firstIdx: number; upload: UploadRow; missing: string[] }>> {
	const end = part.offset + part.blocks.reduce((n, b) => n + b.size, 0);
	if (upload.offset === end && upload.moreBlocks === part.moreBlocks) {
		// Maybe a replay of the append that got the list here: the same blocks from the same place.
		const since = await db.all<{ idx: number; hash: string }>(
			sql`SELECT idx, hash FROM upload_blocks WHERE upload_id = ${upload.id} AND offset >= ${part.offset} ORDER BY idx`,
		);
		if (since.length === part.blocks.length && since.every((r, i) => r.hash === part.blocks[i]?.hash)) {
			const firstIdx = since[0]?.idx ?? (await listedCount(db, upload.id));
			return ok({ firstIdx, upload, missing: await missingBlocks(db, upload.userId, upload.id, firstIdx) });
		}
	}
	if (upload.offset !== part.offset || !upload.moreBlocks) {
		const why = upload.moreBlocks
			? `the block list covers ${upload.offset} bytes, not ${part.offset}`
			: "the block list is already complete";
		return fail("UPLOAD_OFFSET_MISMATCH", `${why}; GET the upload and continue from listed_bytes`, [{ offset: upload.offset }]);
	}
	const listed = await listedCount(db, upload.id);
	if (listed + part.blocks.length > MAX_BLOCKS_PER_UPLOAD)
		return fail("INVALID_REQUEST", `a file's block list has at most ${MAX_BLOCKS_PER_UPLOAD} blocks`, [{ field: "blocks" }]);
	const [resized] = await db.all<{ hash: string }>(
		sql`SELECT b.hash AS hash FROM upload_blocks b JOIN json_each(${JSON.stringify(part.blocks)}) j
			ON b.hash = json_extract(j.value, '$.hash') AND b.size != json_extract(j.value, '$.size')
			WHERE b.upload_id = ${upload.id} LIMIT 1`,
	);
	if (resized !== undefined)
		return fail("INVALID_REQUEST", `block ${resized.hash} is already listed with another size`, [{ field: "blocks" }]);
	// The inserts go first and only while the list still ends at part.offset,
	// so a stale or raced append leaves no rows behind; then the update moves the end.
	const results = await runBatch(db.$client, [
		...listBlocks(db, upload.id, listed, part.offset, part.blocks, sql`offset = ${part.offset} AND more_blocks = 1`),
		db
			.update(uploads)
			.set({ offset: end, moreBlocks: part.moreBlocks, contentHash: part.contentHash ?? upload.contentHash })
			.where(and(eq(uploads.id, upload.id), eq(uploads.offset, part.offset), eq(uploads.moreBlocks, true))),
	]);
	if (results.at(-1)?.meta.changes !== 1)
		return fail("UPLOAD_OFFSET_MISMATCH", "another request changed the block list; GET the upload and continue from listed_bytes", [
			{ offset: upload.offset },
		]);
	return ok({
		firstIdx: listed,
		upload: { ...upload, offset: end, moreBlocks: part.moreBlocks, contentHash: part.contentHash ?? upload.contentHash },
		missing: await missingBlocks(db, upload.userId, upload.id, listed),
	});
}

/**
 * Receives one block of a session (PUT /uploads/:id/blocks/:hash): it must
 * be in the block list, at its listed size, and hash to its name; then it is
 * stored and recorded as received.
 */
export async function receiveBlock(
	db: ShardDb,
	bucket: R2Bucket,
	ring: KeyRing,
	upload: UploadRow,
	hash: string,
	body: ReadableStream<Uint8Array> | null,
	declaredLength: number | null,
): Promise<Result<void>> {
	const size = (await declaredBlockSizes(db, upload.id, [hash])).get(hash);
	if (size === undefined) return fail("NOT_FOUND", "this block is not part of the upload's block list");
	const bytes = await readBounded(body, MAX_BLOCK_BYTES, declaredLength);
	if (!bytes.ok) return fail("PAYLOAD_TOO_LARGE", `a block is at most ${MAX_BLOCK_BYTES} bytes`);
	if (bytes.sha256 !== hash)
		return fail("HASH_MISMATCH", "the bytes do not hash to the block's name", [{ expected: hash, actual: bytes.sha256 }]);
	if (bytes.bytes.byteLength !== size)
		return fail("INVALID_REQUEST", `the block list declared ${size} bytes for this block, not ${bytes.bytes.byteLength}`);
	await putBlock(bucket, ring, bytes.bytes, hash);
	await runBatch(db.$client, [recordReceived(db, upload.id, [hash])]);
	return ok(undefined);
}

/**
 * Commits a session through the user's hub. Without a client-declared
 * content hash, the blocks must all be there and are read back to compute it.
 */
export async function commitSession(env: Env, caller: Caller, ring: KeyRing, upload: UploadRow): Promise<Result<CommitOutcome>> {
	if (upload.moreBlocks && upload.committedVersionId === null) return listIncomplete(upload.offset);
	const db = shardFor(env, caller);
	let contentHash = upload.contentHash;
	if (contentHash === null && upload.committedVersionId === null) {
		const missing = await missingBlocks(db, caller.userId, upload.id);
		if (missing.length > 0) return missingBlocksFailure(missing);
		contentHash = await hashStoredUpload(db, env.BLOBS, ring, upload.id);
	}
	const committed = await hubFor(env, caller.userId).commitUpload({
		uploadId: upload.id,
		contentHash: contentHash ?? "",
		quotaBytes: caller.quotaBytes,
	});
	return committed.ok ? ok(committed.value) : { ok: false, error: committed.error };
}

/** Notes that blocks of an upload have been stored (and, for the cleanup, that it wrote them). */
export function recordReceived(db: ShardDb, uploadId: string, hashes: readonly string[]): BatchQuery {
	return db.run(
		sql`INSERT OR IGNORE INTO upload_received (upload_id, hash) SELECT ${uploadId}, value FROM json_each(${JSON.stringify(hashes)})`,
	);
}

/**
 * Appends blocks to a tus upload's list as they are cut from the stream,
 * only while the upload is still at `atOffset` (see {@link listBlocks}), and
 * records them as received. The blocks are consecutive.
 */
export function appendBlocks(db: ShardDb, uploadId: string, firstIdx: number, blocks: BlockRef[], atOffset: number): BatchQuery[] {
	const first = blocks[0];
	if (first === undefined) return [];
	return [
		...listBlocks(db, uploadId, firstIdx, first.offset, blocks, sql`offset = ${atOffset}`),
		recordReceived(
			db,
			uploadId,
			blocks.map((b) => b.hash),
		),
	];
}

/** Marks an upload cancelled; the cleanup job removes it and what only it referenced. */
export async function cancelUpload(db: ShardDb, userId: string, id: string): Promise<void> {
	await db
		.update(uploads)
		.set({ cancelledAt: new Date().toISOString() })
		.where(and(eq(uploads.userId, userId), eq(uploads.id, id), isNull(uploads.committedVersionId)));
}

/**
 * Removes expired and cancelled uploads and deletes the R2 blocks that only
 * they referenced: blocks no user references (user_blocks, in any shard) and
 * no live upload lists (in any shard). Objects younger than the grace period
 * are kept, since an upload in flight may have just rewritten them
 * (docs/decisions/0007).
 */
export async function cleanupUploads(
	env: Env,
	bucket: R2Bucket,
	now = Date.now(),
	graceMs = 3_600_000,
): Promise<{ uploads: number; blocks: number }> {
	const nowIso = new Date(now).toISOString();
	const shards = Array.from({ length: shardCount(env) }, (_, i) => shardAt(env, i));
	let removedUploads = 0;
	let removedBlocks = 0;
	for (const db of shards) {
		const dead = await db
			.select({ id: uploads.id, tailKey: uploads.tailKey, committed: uploads.committedVersionId })
			.from(uploads)
			.where(sql`${uploads.expiresAt} < ${nowIso} OR ${uploads.cancelledAt} IS NOT NULL`)
			.limit(200);
		if (dead.length === 0) continue;
		const ids = dead.map((d) => d.id);
		const received = await db
			.selectDistinct({ hash: uploadReceived.hash })
			.from(uploadReceived)
			.where(inList(uploadReceived.uploadId, ids));
		const candidates = received.map((r) => r.hash);
		await runBatch(db.$client, [
			db.delete(uploadBlocks).where(inList(uploadBlocks.uploadId, ids)),
			db.delete(uploadReceived).where(inList(uploadReceived.uploadId, ids)),
			db.delete(uploads).where(inList(uploads.id, ids)),
		]);
		removedUploads += ids.length;
		for (const tail of dead) if (tail.tailKey) await bucket.delete(tail.tailKey);
		const orphans = await unreferenced(shards, candidates, nowIso);
		for (const hash of orphans) {
			const key = blockObjectKey(hash);
			const head = await bucket.head(key);
			if (head && now - head.uploaded.getTime() > graceMs) {
				await bucket.delete(key);
				removedBlocks++;
			}
		}
	}
	return { uploads: removedUploads, blocks: removedBlocks };
}

/** The hashes among `candidates` that nothing references in any shard. */
async function unreferenced(shards: ShardDb[], candidates: string[], nowIso: string): Promise<string[]> {
	let left = candidates;
	for (const db of shards) {
		if (left.length === 0) break;
		const referenced = await db.all<{ hash: string }>(sql`
			SELECT j.value AS hash FROM json_each(${JSON.stringify(left)}) j
			WHERE EXISTS (SELECT 1 FROM user_blocks ub WHERE ub.hash = j.value)
				OR EXISTS (SELECT 1 FROM upload_blocks b JOIN uploads u ON u.id = b.upload_id
					WHERE b.hash = j.value AND u.expires_at >= ${nowIso} AND u.cancelled_at IS NULL AND u.committed_version_id IS NULL)`);
		const keep = new Set(referenced.map((r) => r.hash));
		left = left.filter((h) => !keep.has(h));
	}
	return left;
}

/** SHA-256 of an upload's content, read back from its stored blocks in order. */
export async function hashStoredUpload(db: ShardDb, bucket: R2Bucket, ring: KeyRing, uploadId: string): Promise<string> {
	const hash = createHash("sha256");
	await readBack(db, bucket, ring, uploadId, hash);
	return hash.digest("hex");
}

/** Feeds an upload's content to `hash`, read back from its stored blocks in order. */
export async function readBack(
	db: ShardDb,
	bucket: R2Bucket,
	ring: KeyRing,
	uploadId: string,
	hash: { update(data: Uint8Array): unknown },
): Promise<void> {
	const blocks = await db
		.select({ hash: uploadBlocks.hash })
		.from(uploadBlocks)
		.where(eq(uploadBlocks.uploadId, uploadId))
		.orderBy(uploadBlocks.idx);
	// Read ahead one block while the previous one is hashed.
	let next = blocks[0] ? getBlock(bucket, ring, blocks[0].hash) : null;
	for (let i = 0; next !== null; i++) {
		const current = await next;
		const following = blocks[i + 1];
		next = following ? getBlock(bucket, ring, following.hash) : null;
		hash.update(current);
	}
}
