/** Upload sessions and tus uploads: creation, receiving blocks, status, commit, and cleanup of expired ones. */
import { createHash } from "node:crypto";
import { and, eq, isNull, sql, type SQL } from "drizzle-orm";
import { listIncomplete, missingBlocks as missingBlocksFailure } from "../../../src/shared/commit/failures";
import type { KeyRing } from "../../../src/shared/crypto";
import { runBatch, type BatchQuery } from "../../../src/shared/db/batch";
import { inList, slices } from "../../../src/shared/db/lists";
import type { BlockRef } from "../../../src/shared/db/mappers";
import { uploadBlocks, uploadReceived, uploads, uploadSince, type UploadRow } from "../../../src/shared/db/schema";
import { shardAt, shardCount, type ShardDb } from "../../../src/shared/db/shards";
import { findVersion } from "../../../src/shared/db/tree";
import { declaredBlockSizes, findUpload, isLive, missingBlocks } from "../../../src/shared/db/uploads";
import { fail, ok, type Result } from "../../../src/shared/errors";
import { newId } from "../../../src/shared/ids";
import { MAX_BLOCK_BYTES } from "../../../src/shared/limits";
import { MAX_BLOCKS_PER_UPLOAD, type UploadStatus } from "../../../src/shared/schemas/uploads";
import type { CommitOutcome } from "../../notify/contract";
import type { Caller } from "../env";
import { BlockUnavailableError, feedBlocks, putBlock } from "./block-store";
import { readBounded } from "./body";
import { hubFor, shardFor } from "./hub";
import { VERIFY_BEFORE_COMMIT_BYTES, verifyVersionHash } from "./verify";
import { precheckCommit } from "./precheck";
import { memberQuota, ownThenShared, type Access } from "./access";
import { commitMemberUpload, uploadAccess, uploadOwner } from "./member-uploads";

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
	/** A new file only (commit/plan.ts CommitIntent); default false. */
	createOnly?: boolean;
	metadata: string | null;
	ttlHours: number;
	maxFileBytes: number;
	/** tus: created with Upload-Defer-Length: 1 (size is 0 until declared). */
	lengthDeferred?: boolean;
	/** tus: the Upload-Concat header it was created with. */
	concat?: string | null;
	limits: UploadLimits;
	/** A member's upload into a share: the owner, and their shard's gc clock read before any block is written (member-uploads.ts). */
	owner?: { userId: string; since: number } | null;
}

/** Per-user caps on uploads still open (neither committed nor cancelled nor expired). */
export interface UploadLimits {
	/** Open uploads at once. */
	maxOpen: number;
	/** Blocks listed by open uploads, all together: each is a row in the shard. */
	maxListedBlocks: number;
	/** The user's storage quota: stored versions plus the declared sizes of open uploads must fit it. */
	quotaBytes: number;
}

/** The caps from the api's [vars] (wrangler.toml) and the caller's quota. */
export function uploadLimits(env: Env, caller: Caller): UploadLimits {
	return {
		maxOpen: Number(env.MAX_OPEN_UPLOADS_PER_USER) || 100,
		maxListedBlocks: Number(env.MAX_LISTED_BLOCKS_PER_USER) || 200_000,
		quotaBytes: caller.quotaBytes,
	};
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
		createOnly?: boolean;
		/** The block list, or its first part. */
		blocks: readonly { hash: string; size: number }[];
	},
): Promise<Result<{ name: string; access: Access; owner: { userId: string; since: number } | null }>> {
	if (target.size !== null && target.size > target.maxFileBytes)
		return fail("PAYLOAD_TOO_LARGE", `a file is at most ${target.maxFileBytes} bytes`);
	const resized = await blockSizeConflict(shardFor(env, caller), caller.userId, target.blocks, null);
	if (resized !== null) return resized;
	// Into the caller's folder, or one shared with them as editor: then checked in the owner's tree, against the owner's quota.
	return ownThenShared(env, caller, target.parentId, "write", async (access) => {
		const checked = await precheckCommit(env, access.scope, { ...target, parentId: access.nodeId }, access.by ? caller : undefined);
		if (!checked.ok) return memberQuota(access, checked);
		return ok({ name: checked.value.name, access, owner: uploadOwner(access, checked.value.blocksSince) });
	});
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
	if (upload.ownerId !== null) {
		const access = await uploadAccess(env, caller, upload);
		if (!access.ok) return access;
	}
	return ok(upload);
}

/** The caller's session that can still take blocks or list parts: live and not committed. */
export async function openSession(env: Env, caller: Caller, id: string): Promise<Result<UploadRow>> {
	const upload = await usableUpload(env, caller, id, "session");
	if (upload.ok && upload.value.committedVersionId !== null) return fail("NOT_FOUND", "upload already committed");
	return upload;
}

/**
 * What a session still needs, for creating and resuming it; with the file it
 * became once committed (in `committedIn`, the owner's tree for a member's upload).
 */
export async function sessionStatus(
	db: ShardDb,
	userId: string,
	upload: UploadRow,
	committedIn: { db: ShardDb; userId: string } = { db, userId },
): Promise<UploadStatus> {
	const listing = { listed_bytes: upload.offset, more_blocks: upload.moreBlocks };
	if (upload.committedVersionId !== null) {
		const version = await findVersion(committedIn.db, committedIn.userId, upload.committedVersionId);
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

/**
 * Records a new upload and its block list (for tus the list starts empty),
 * if it fits the user's caps: the insert itself checks them, so concurrent
 * creations cannot overshoot (D1 runs one batch at a time).
 */
export async function createUpload(db: ShardDb, caller: Caller, input: NewUpload): Promise<Result<UploadRow>> {
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
		listedBlocks: 0,
		lengthDeferred: input.lengthDeferred ?? false,
		concat: input.concat ?? null,
		actorId: null,
		ownerId: input.owner?.userId ?? null,
		ownerSince: input.owner?.since ?? null,
		createOnly: input.createOnly ?? false,
	};
	const { limits } = input;
	// An upload into a share fills the owner's quota, not the member's (the owner's hub checks it at commit).
	const bytesFit =
		row.ownerId === null
			? sql`(SELECT COALESCE(SUM(size), 0) FROM uploads WHERE ${openBy(caller.userId, row.createdAt)} AND owner_id IS NULL)
			+ COALESCE((SELECT version_bytes FROM user_usage WHERE user_id = ${caller.userId}), 0) + ${row.size} <= ${limits.quotaBytes}`
			: sql`1`;
	const fits = sql`(SELECT COUNT(*) FROM uploads WHERE ${openBy(caller.userId, row.createdAt)}) < ${limits.maxOpen}
		AND (SELECT COALESCE(SUM(listed_blocks), 0) FROM uploads WHERE ${openBy(caller.userId, row.createdAt)}) + ${input.blocks.length} <= ${limits.maxListedBlocks}
		AND ${bytesFit}`;
	const [inserted] = await runBatch(db.$client, [
		db.run(sql`INSERT INTO uploads (id, user_id, protocol, parent_id, name, size, content_hash, base_version_id, on_conflict,
				device_id, device_name, created_at, expires_at, offset, more_blocks, metadata, listed_blocks, length_deferred, concat, owner_id, owner_since,
				create_only)
			SELECT ${row.id}, ${row.userId}, ${row.protocol}, ${row.parentId}, ${row.name}, ${row.size}, ${row.contentHash}, ${row.baseVersionId},
				${row.onConflict}, ${row.deviceId}, ${row.deviceName}, ${row.createdAt}, ${row.expiresAt}, ${row.offset}, ${row.moreBlocks ? 1 : 0},
				${row.metadata}, 0, ${row.lengthDeferred ? 1 : 0}, ${row.concat}, ${row.ownerId}, ${row.ownerSince}, ${row.createOnly ? 1 : 0}
			WHERE ${fits}`),
		...listBlocks(db, row.id, 0, 0, input.blocks, sql`1`),
	]);
	// Counted with the trigger's row (migration 0006), so "none" is the test.
	if (!inserted?.meta.changes)
		return explainRefusal(db, caller.userId, input.blocks.length, row.ownerId === null ? row.size : 0, limits, row.createdAt);
	return ok({ ...row, listedBlocks: input.blocks.length });
}

/**
 * A block listed with a size that cannot be true: another size for the same
 * hash in this upload's list, or in the blocks the user already holds (the
 * same bytes always hash the same). Checked in slices: a part may list
 * 163,840 blocks, far more than one bound value may carry.
 */
export async function blockSizeConflict(
	db: ShardDb,
	userId: string,
	blocks: readonly { hash: string; size: number }[],
	uploadId: string | null,
): Promise<Result<never> | null> {
	for (const slice of slices(blocks)) {
		const listed = JSON.stringify(slice);
		// CROSS JOIN keeps the listed blocks as the outer loop, so each is one
		// index lookup by hash, not a scan of the upload's list.
		const [clash] = await db.all<{ hash: string; size: number }>(sql`
			WITH listed(hash, size) AS (SELECT json_extract(value, '$.hash'), json_extract(value, '$.size') FROM json_each(${listed}))
			SELECT x.hash AS hash, x.size AS size FROM listed l CROSS JOIN user_blocks x
				WHERE x.user_id = ${userId} AND x.hash = l.hash AND x.size != l.size
			UNION ALL
			SELECT b.hash, b.size FROM listed l CROSS JOIN upload_blocks b INDEXED BY upload_blocks_by_hash
				WHERE b.hash = l.hash AND b.upload_id = ${uploadId ?? ""} AND b.size != l.size
			LIMIT 1`);
		if (clash !== undefined)
			return fail("INVALID_REQUEST", `block ${clash.hash} has ${clash.size} bytes, not the size listed`, [
				{ field: "blocks", hash: clash.hash, size: clash.size },
			]);
	}
	return null;
}

/** Rows of `userId`'s uploads still open at `nowIso`. */
function openBy(userId: string, nowIso: string): SQL {
	return sql`user_id = ${userId} AND committed_version_id IS NULL AND cancelled_at IS NULL AND expires_at > ${nowIso}`;
}

/** Which cap a refused creation or listing ran into. */
async function explainRefusal(
	db: ShardDb,
	userId: string,
	blocks: number,
	bytes: number,
	limits: UploadLimits,
	nowIso: string,
): Promise<Result<never>> {
	const [open] = await db.all<{ n: number; listed: number; reserved: number; stored: number }>(sql`
		SELECT COUNT(*) AS n, COALESCE(SUM(listed_blocks), 0) AS listed, COALESCE(SUM(CASE WHEN owner_id IS NULL THEN size END), 0) AS reserved,
			COALESCE((SELECT version_bytes FROM user_usage WHERE user_id = ${userId}), 0) AS stored
		FROM uploads WHERE ${openBy(userId, nowIso)}`);
	const { n = 0, listed = 0, reserved = 0, stored = 0 } = open ?? {};
	if (n >= limits.maxOpen)
		return fail("QUOTA_EXCEEDED", `at most ${limits.maxOpen} uploads may be open at once; commit or cancel one first`, [
			{ limit: "open_uploads", max: limits.maxOpen, used: n },
		]);
	if (listed + blocks > limits.maxListedBlocks)
		return fail("QUOTA_EXCEEDED", `open uploads may list at most ${limits.maxListedBlocks} blocks together; commit or cancel one first`, [
			{ limit: "listed_blocks", max: limits.maxListedBlocks, used: listed },
		]);
	if (stored + reserved + bytes > limits.quotaBytes)
		return fail(
			"QUOTA_EXCEEDED",
			`this upload needs ${bytes} bytes; ${Math.max(0, limits.quotaBytes - stored - reserved)} of ${limits.quotaBytes} are free (open uploads hold ${reserved})`,
			[{ limit: "bytes", max: limits.quotaBytes, used: stored, reserved }],
		);
	// The caps moved between the insert and this read (an upload was committed or cancelled).
	return fail("RATE_LIMITED", "uploads changed while this one was created; retry", [{ retry_after_seconds: 1 }]);
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
	if (rows.length === 0) return [];
	const inserts = [...slices(rows)].map((slice) =>
		db.run(sql`INSERT INTO upload_blocks (upload_id, idx, offset, size, hash)
			SELECT ${uploadId}, json_extract(value, '$[0]'), json_extract(value, '$[1]'), json_extract(value, '$[2]'), json_extract(value, '$[3]')
			FROM json_each(${JSON.stringify(slice)})${guard}`),
	);
	const onlyIfStill = onlyIf === undefined ? sql`` : sql` AND ${onlyIf}`;
	// The running count the per-user block budget reads, under the same guard as the rows.
	const count = db.run(sql`UPDATE uploads SET listed_blocks = listed_blocks + ${rows.length} WHERE id = ${uploadId}${onlyIfStill}`);
	return [...inserts, count];
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
	limits: UploadLimits,
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
	const listed = upload.listedBlocks;
	const count = part.blocks.length;
	if (listed + count > MAX_BLOCKS_PER_UPLOAD)
		return fail("INVALID_REQUEST", `a file's block list has at most ${MAX_BLOCKS_PER_UPLOAD} blocks`, [{ field: "blocks" }]);
	const resized = await blockSizeConflict(db, upload.userId, part.blocks, upload.id);
	if (resized !== null) return resized;
	// The inserts go first and only while the list still ends at part.offset
	// and the user's open uploads stay within their block budget, so a stale,
	// raced or refused append leaves no rows behind; then the update moves the
	// end, only if the rows went in (the count moved by exactly this part).
	const now = new Date().toISOString();
	const results = await runBatch(db.$client, [
		...listBlocks(
			db,
			upload.id,
			listed,
			part.offset,
			part.blocks,
			sql`offset = ${part.offset} AND more_blocks = 1
				AND (SELECT COALESCE(SUM(listed_blocks), 0) FROM uploads WHERE ${openBy(upload.userId, now)}) + ${count} <= ${limits.maxListedBlocks}`,
		),
		db
			.update(uploads)
			.set({ offset: end, moreBlocks: part.moreBlocks, contentHash: part.contentHash ?? upload.contentHash })
			.where(
				and(
					eq(uploads.id, upload.id),
					eq(uploads.offset, part.offset),
					eq(uploads.moreBlocks, true),
					eq(uploads.listedBlocks, listed + count),
				),
			),
	]);
	if (results.at(-1)?.meta.changes !== 1) {
		const current = await findUpload(db, upload.userId, upload.id);
		if (current?.offset === part.offset && current.moreBlocks) return explainRefusal(db, upload.userId, count, 0, limits, now);
		return fail("UPLOAD_OFFSET_MISMATCH", "another request changed the block list; GET the upload and continue from listed_bytes", [
			{ offset: current?.offset ?? upload.offset },
		]);
	}
	return ok({
		firstIdx: listed,
		upload: {
			...upload,
			offset: end,
			moreBlocks: part.moreBlocks,
			contentHash: part.contentHash ?? upload.contentHash,
			listedBlocks: listed + count,
		},
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
 * Commits a session through the user's hub. The content hash is computed from
 * the stored blocks when the client declared none, and checked before the
 * commit when it did and the upload is small; a large upload's declared hash
 * is checked right after the commit, through `defer` (services/verify.ts).
 */
export async function commitSession(
	env: Env,
	caller: Caller,
	ring: KeyRing,
	upload: UploadRow,
	defer: (work: () => Promise<unknown>) => void,
): Promise<Result<CommitOutcome>> {
	if (upload.moreBlocks && upload.committedVersionId === null) return listIncomplete(upload.offset);
	const db = shardFor(env, caller);
	const declared = upload.contentHash;
	let contentHash = declared;
	const checkNow = declared === null || upload.size <= VERIFY_BEFORE_COMMIT_BYTES;
	if (checkNow && upload.committedVersionId === null) {
		const missing = await missingBlocks(db, caller.userId, upload.id);
		if (missing.length > 0) return missingBlocksFailure(missing);
		try {
			contentHash = await hashStoredUpload(db, env.BLOBS, ring, upload.id);
		} catch (err) {
			// The block collector deleted a block after it arrived (docs/decisions/0017): it must be sent again.
			if (!(err instanceof BlockUnavailableError) || err.reason !== "missing") throw err;
			await db.delete(uploadReceived).where(and(eq(uploadReceived.uploadId, upload.id), eq(uploadReceived.hash, err.hash)));
			return missingBlocksFailure(await missingBlocks(db, caller.userId, upload.id));
		}
		if (declared !== null && declared !== contentHash)
			return fail("HASH_MISMATCH", "the blocks in list order do not hash to the declared content_hash", [
				{ expected: declared, actual: contentHash },
			]);
	}
	const access = await uploadAccess(env, caller, upload);
	if (!access.ok) return access;
	const owner = access.value.scope;
	const content = { contentHash: contentHash ?? "", hashVerified: checkNow };
	const committed =
		upload.ownerId === null
			? await hubFor(env, caller.userId).commitUpload({ uploadId: upload.id, ...content, quotaBytes: caller.quotaBytes })
			: await commitMemberUpload(env, access.value, upload, content);
	if (!committed.ok) return { ok: false, error: committed.error };
	if (!checkNow && upload.committedVersionId === null)
		defer(() => verifyVersionHash(env, shardFor(env, owner), ring, { id: committed.value.version.id, userId: owner.userId }));
	return ok(committed.value);
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

/** Dead uploads one run removes from each shard: a backlog drains over runs. */
export const CLEANUP_UPLOADS_PER_SHARD = 200;

/**
 * Removes expired and cancelled uploads with their tus tails. The blocks they
 * received become candidates of the block collector (services/gc.ts) in the
 * same batch that removes their rows, so no crash can forget them; the
 * collector deletes those nothing else needs. Each shard is cleaned on its
 * own: a failing one is reported (AggregateError) after the others ran.
 */
export async function cleanupUploads(env: Env, bucket: R2Bucket, now = Date.now()): Promise<{ uploads: number }> {
	const nowIso = new Date(now).toISOString();
	let removed = 0;
	const failures: unknown[] = [];
	for (let i = 0; i < shardCount(env); i++) {
		try {
			removed += await cleanupShard(shardAt(env, i), bucket, nowIso);
		} catch (err) {
			failures.push(err);
		}
	}
	if (failures.length > 0) throw new AggregateError(failures, `upload cleanup failed in ${failures.length} shard(s)`);
	return { uploads: removed };
}

async function cleanupShard(db: ShardDb, bucket: R2Bucket, nowIso: string): Promise<number> {
	const dead = await db
		.select({ id: uploads.id, tailKey: uploads.tailKey })
		.from(uploads)
		// A user who moved away is left to the move's cleanup (docs/decisions/0034).
		.where(
			sql`(${uploads.expiresAt} < ${nowIso} OR ${uploads.cancelledAt} IS NOT NULL) AND ${uploads.userId} NOT IN (SELECT user_id FROM moved_users)`,
		)
		.limit(CLEANUP_UPLOADS_PER_SHARD);
	if (dead.length === 0) return 0;
	const ids = dead.map((d) => d.id);
	// Tails first: their keys live only in the rows about to go.
	const tails = dead.flatMap((d) => (d.tailKey ? [d.tailKey] : []));
	if (tails.length > 0) await bucket.delete(tails);
	await runBatch(db.$client, [
		db.run(sql`INSERT INTO gc_candidates (hash, enqueued_at)
			SELECT DISTINCT hash, ${nowIso} FROM upload_received WHERE ${inList(uploadReceived.uploadId, ids)}
			ON CONFLICT (hash) DO NOTHING`),
		db.delete(uploadBlocks).where(inList(uploadBlocks.uploadId, ids)),
		db.delete(uploadReceived).where(inList(uploadReceived.uploadId, ids)),
		db.delete(uploadSince).where(inList(uploadSince.uploadId, ids)),
		db.delete(uploads).where(inList(uploads.id, ids)),
	]);
	return ids.length;
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
	await feedBlocks(
		bucket,
		ring,
		blocks.map((b) => b.hash),
		hash,
	);
}
