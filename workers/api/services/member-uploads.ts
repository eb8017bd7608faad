/**
 * Upload sessions and tus uploads by a share member into the owner's tree
 * (docs/decisions/0025). The upload row is the member's, in their shard: its
 * id, their limits, the blocks they sent and the dedup against the blocks
 * they hold (never the owner's, so nobody learns what the owner stores). Its
 * `owner_id` names the owner, `parent_id` is the owner's folder. The commit
 * goes through the owner's hub with the block list, which checks the
 * member's grant in its queue and charges the owner.
 */
import { and, eq, isNull, sql } from "drizzle-orm";
import { missingBlocks as missingBlocksFailure } from "../../../src/shared/commit/failures";
import { runBatch } from "../../../src/shared/db/batch";
import { slices } from "../../../src/shared/db/lists";
import type { BlockRef } from "../../../src/shared/db/mappers";
import { uploads, type UploadRow } from "../../../src/shared/db/schema";
import { committedOutcome, missingBlocks } from "../../../src/shared/db/uploads";
import { fail, ok, type Result } from "../../../src/shared/errors";
import type { CommitOutcome } from "../../notify/contract";
import type { Caller } from "../env";
import { accessTo, asSeen, memberQuota, ownAccess, type Access } from "./access";
import { readGcClock } from "./gc";
import { hubFor, shardFor } from "./hub";

/** Whose tree an upload created through `access` goes to: null for the caller's own. */
export function uploadOwner(access: Access, blocksSince: number): { userId: string; since: number } | null {
	return access.role === "owner" ? null : { userId: access.scope.userId, since: blocksSince };
}

/**
 * The caller's access to their upload's target, checked again on every
 * request: a member's upload answers 404 once the share no longer lets them
 * write there (a revoke, a removal), like an upload that does not exist.
 */
export async function uploadAccess(env: Env, caller: Caller, upload: UploadRow): Promise<Result<Access>> {
	if (upload.ownerId === null) return ok(ownAccess(caller, upload.parentId));
	const access = await accessTo(env, caller, upload.parentId);
	if (!access || access.scope.userId !== upload.ownerId) return fail("NOT_FOUND", "upload not found or expired");
	if (access.role !== "editor") return fail("FORBIDDEN", "you can view this share but not change it", [{ reason: "read_only" }]);
	return ok(access);
}

/** A commit's answer as the member sees it (the share's root is their mount). */
function seen(access: Access, outcome: Result<CommitOutcome>): Result<CommitOutcome> {
	if (!outcome.ok) return memberQuota(access, outcome);
	return ok({ ...outcome.value, node: asSeen(access, outcome.value.node) });
}

/** The version a member's upload becomes: fixed by the upload, so a retry after a lost answer finds it. */
function versionIdOf(upload: UploadRow): string {
	return `ver_${upload.id.slice(upload.id.indexOf("_") + 1)}`;
}

/**
 * Commits a member's complete upload through the owner's hub. The upload is
 * marked committed only after the owner's commit landed: until then its
 * block list in the member's shard keeps the blocks from the collector
 * (services/gc.ts counts open uploads' lists in every shard). Idempotent.
 */
export async function commitMemberUpload(
	env: Env,
	access: Access,
	upload: UploadRow,
	content: { contentHash: string; hashVerified: boolean },
): Promise<Result<CommitOutcome>> {
	const owner = access.scope;
	if (upload.committedVersionId !== null)
		return seen(access, await committedOutcome(shardFor(env, owner), owner.userId, upload.committedVersionId));
	const db = shardFor(env, access.caller);
	// Present means the member holds it or sent it for this upload (src/shared/db/uploads.ts).
	const missing = await missingBlocks(db, access.caller.userId, upload.id);
	if (missing.length > 0) return missingBlocksFailure(missing);
	const blocks = await db.all<BlockRef>(sql`SELECT offset, size, hash FROM upload_blocks WHERE upload_id = ${upload.id} ORDER BY idx`);
	let end = 0;
	for (const block of blocks) {
		if (block.offset !== end) break;
		end += block.size;
	}
	if (end !== upload.size) return fail("INVALID_REQUEST", "the upload's block list does not add up to its size; start a new upload");
	const committed = await hubFor(env, owner.userId).commitFile({
		parentId: upload.parentId,
		name: upload.name,
		size: upload.size,
		contentHash: content.contentHash,
		hashVerified: content.hashVerified,
		blocks,
		// The owner's shard's clock from before the first block was written: the guard there (docs/decisions/0017).
		blocksSince: upload.ownerSince ?? -1,
		baseVersionId: upload.baseVersionId,
		onConflict: upload.onConflict,
		createOnly: upload.createOnly,
		quotaBytes: owner.quotaBytes,
		actor: { deviceId: upload.deviceId, deviceName: upload.deviceName, userId: access.caller.userId },
		versionId: versionIdOf(upload),
	});
	if (!committed.ok && committed.error.code === "BLOCKS_RECLAIMED") return reclaimed(env, access, upload);
	if (committed.ok)
		await db
			.update(uploads)
			.set({ committedVersionId: committed.value.version.id })
			.where(and(eq(uploads.id, upload.id), isNull(uploads.committedVersionId)));
	return seen(access, committed);
}

/**
 * The collector deleted (or is deleting) blocks of the upload after it began:
 * their receipts go and the upload's clock in the owner's shard moves to
 * now, so they are listed missing and pass once sent again (as for one's own
 * upload, docs/decisions/0017). The clock is read before the tombstones.
 */
async function reclaimed(env: Env, access: Access, upload: UploadRow): Promise<Result<never>> {
	const ownerDb = shardFor(env, access.scope);
	const db = shardFor(env, access.caller);
	const member = access.caller.userId;
	const clock = await readGcClock(ownerDb);
	const since = upload.ownerSince ?? -1;
	const received = await db.all<{ hash: string }>(sql`SELECT hash FROM upload_received WHERE upload_id = ${upload.id}`);
	const gone: string[] = [];
	for (const slice of slices(received.map((r) => r.hash))) {
		const rows = await ownerDb.all<{ hash: string }>(sql`SELECT DISTINCT hash FROM doomed_blocks
			WHERE hash IN (SELECT value FROM json_each(${JSON.stringify(slice)})) AND (deleted_seq IS NULL OR deleted_seq > ${since})`);
		gone.push(...rows.map((r) => r.hash));
	}
	const statements = [...slices(gone)].map((slice) =>
		db.run(sql`DELETE FROM upload_received WHERE upload_id = ${upload.id}
			AND hash IN (SELECT value FROM json_each(${JSON.stringify(slice)}))
			AND NOT EXISTS (SELECT 1 FROM user_blocks x WHERE x.user_id = ${member} AND x.hash = upload_received.hash)`),
	);
	await runBatch(db.$client, [
		...statements,
		db
			.update(uploads)
			.set({ ownerSince: clock })
			.where(and(eq(uploads.id, upload.id), isNull(uploads.committedVersionId))),
	]);
	const missing = await missingBlocks(db, member, upload.id);
	if (missing.length > 0) return missingBlocksFailure(missing);
	// Only blocks the collector is still deciding about, which it will keep: retry.
	return fail("BLOCKS_RECLAIMED", "the storage collector is checking blocks of this upload; commit again");
}
