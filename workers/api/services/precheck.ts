/**
 * The advisory check of a commit before a byte is stored: the same plan the
 * UserHub will make (commit/plan.ts), over the same view of the tree, plus
 * the quota. A refused upload then stores nothing; the hub re-checks inside
 * its queue, since the tree may change in between.
 */
import { invalidName, quotaExceeded } from "../../../src/shared/commit/failures";
import { growthOf, planCommit } from "../../../src/shared/commit/plan";
import { loadTarget } from "../../../src/shared/db/tree";
import { ok, type Result } from "../../../src/shared/errors";
import { checkName } from "../../../src/shared/names";
import type { Caller } from "../env";
import { shardFor } from "./hub";
import { usageOf } from "./tree";

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
 * and `room`: for a body of unknown size, the most bytes the quota leaves
 * it (infinite when the size was declared, since it was checked here).
 */
export async function precheckCommit(env: Env, caller: Caller, intended: IntendedCommit): Promise<Result<{ name: string; room: number }>> {
	const name = checkName(intended.name);
	if (!name.ok) return invalidName(name.reason);
	const view = await loadTarget(shardFor(env, caller), caller.userId, intended.parentId, name.key, intended.baseVersionId);
	const plan = planCommit(view, { name: name.name, key: name.key, baseVersionId: intended.baseVersionId, onConflict: intended.onConflict });
	if (!plan.ok) return plan;
	if (intended.size === null) {
		const used = await usageOf(env, caller);
		return ok({ name: name.name, room: caller.quotaBytes - used - growthOf(plan.value, 0) });
	}
	const growth = growthOf(plan.value, intended.size);
	if (growth > 0) {
		const used = await usageOf(env, caller);
		if (used + growth > caller.quotaBytes) return quotaExceeded(growth, used, caller.quotaBytes);
	}
	return ok({ name: name.name, room: Number.POSITIVE_INFINITY });
}
