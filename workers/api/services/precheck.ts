/**
 * The advisory check of a commit before a byte is stored: the same plan the
 * UserHub will make (commit/plan.ts), over the same view of the tree, plus
 * the quota. A refused upload then stores nothing; the hub re-checks inside
 * its queue, since the tree may change in between.
 */
import { invalidName, quotaExceeded } from "../../../src/shared/commit/failures";
import { planCommit } from "../../../src/shared/commit/plan";
import { loadTarget } from "../../../src/shared/db/tree";
import { ok, type Result } from "../../../src/shared/errors";
import { checkName } from "../../../src/shared/names";
import type { Caller } from "../env";
import { shardFor } from "./hub";
import { storedUsage } from "./tree";

export interface IntendedCommit {
	parentId: string;
	name: string;
	/** Bytes the file will have, when known before the body arrives. */
	size: number | null;
	baseVersionId: string | null;
	onConflict: "copy" | "fail";
}

/**
 * Refuses now what the hub would refuse at commit; returns the name in NFC
 * and `room`, the most bytes the quota leaves the body (ingest stops there
 * when the size was not declared).
 */
export async function precheckCommit(env: Env, caller: Caller, intended: IntendedCommit): Promise<Result<{ name: string; room: number }>> {
	const name = checkName(intended.name);
	if (!name.ok) return invalidName(name.reason);
	const view = await loadTarget(shardFor(env, caller), caller.userId, intended.parentId, name.key, intended.baseVersionId);
	const plan = planCommit(view, { name: name.name, key: name.key, baseVersionId: intended.baseVersionId, onConflict: intended.onConflict });
	if (!plan.ok) return plan;
	// Every commit keeps a new version: it needs its whole size (docs/decisions/0018).
	const { versionBytes } = await storedUsage(shardFor(env, caller), caller.userId);
	const room = caller.quotaBytes - versionBytes;
	if (intended.size !== null && intended.size > room) return quotaExceeded(intended.size, versionBytes, caller.quotaBytes);
	return ok({ name: name.name, room });
}
