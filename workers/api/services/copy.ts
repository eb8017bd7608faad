/**
 * Server-side copy of a file: a new file whose version lists the source's
 * blocks, committed by the destination owner's hub. No byte is read or
 * written, and it works across owners, which a move cannot (a move out of
 * a share would take the file from its owner): copy, then delete.
 */
import { notFound } from "../../../src/shared/commit/failures";
import { findNode } from "../../../src/shared/db/tree";
import { fail, ok, type Result } from "../../../src/shared/errors";
import type { CommitOutcome } from "../../notify/contract";
import type { Caller } from "../env";
import { memberQuota, ownThenShared, type Access } from "./access";
import { hubFor, shardFor } from "./hub";
import { precheckCommit } from "./precheck";

export async function copyFile(
	env: Env,
	caller: Caller,
	sourceId: string,
	destination: { parentId: string; name?: string },
): Promise<Result<{ outcome: CommitOutcome; target: Access }>> {
	const source = await ownThenShared(env, caller, sourceId, "read", async (access) => {
		const db = shardFor(env, access.scope);
		const node = await findNode(db, access.scope.userId, access.nodeId);
		if (!node || node.trashedAt !== null) return notFound("node");
		if (node.type !== "file" || node.headVersionId === null)
			return fail("INVALID_REQUEST", "only files can be copied; copy a folder's files one by one", [{ reason: "not_a_file" }]);
		return ok({ node, db });
	});
	if (!source.ok) return source;
	const { node, db: sourceDb } = source.value;
	const name = destination.name ?? node.name;
	let target: Access | null = null;
	const checked = await ownThenShared(env, caller, destination.parentId, "write", async (access) => {
		const found = await precheckCommit(env, access.scope, {
			parentId: access.nodeId,
			name,
			size: node.size,
			baseVersionId: null,
			onConflict: "rename",
		});
		if (found.ok) target = access;
		return memberQuota(access, found);
	});
	if (!checked.ok) return checked;
	const into = target as Access | null;
	if (!into) return notFound("folder");
	// The block list is read after the pre-check read the gc clock: a source
	// purged and collected before then is gone here (not found), and one
	// collected after is caught by the commit guard (docs/decisions/0017).
	const listed = await sourceDb.$client
		.prepare("SELECT offset, size, hash FROM version_blocks WHERE version_id = ?1 ORDER BY offset")
		.bind(node.headVersionId)
		.all<{ offset: number; size: number; hash: string }>();
	const blocks = listed.results;
	if (blocks.reduce((n, b) => n + b.size, 0) !== node.size) return notFound("node");
	const committed = await hubFor(env, into.scope.userId).commitFile({
		parentId: into.nodeId,
		name: checked.value.name,
		size: node.size,
		contentHash: node.contentHash ?? "",
		blocks,
		blocksSince: checked.value.blocksSince,
		baseVersionId: null,
		onConflict: "rename",
		quotaBytes: into.scope.quotaBytes,
		actor: { deviceId: caller.deviceId, deviceName: caller.deviceName, ...(into.by ? { userId: into.by } : {}) },
	});
	const outcome = memberQuota(into, committed);
	return outcome.ok ? ok({ outcome: outcome.value, target: into }) : outcome;
}
