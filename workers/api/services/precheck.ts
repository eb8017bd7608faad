/**
 * The advisory check of a commit before a byte is stored: the same plan the
 * UserHub will make (commit/plan.ts), over the same view of the tree, plus
 * the quota. A refused upload then stores nothing; the hub re-checks inside
 * its queue, since the tree may change in between.
 */
import { invalidName, notFound, quotaExceeded } from "../../../src/shared/commit/failures";
import { intentOf, planCommit, type OnConflict, type TargetView } from "../../../src/shared/commit/plan";
import { accessTo } from "./access";
import { loadTargetStatement, readTarget } from "../../../src/shared/db/tree";
import { ok, type Result } from "../../../src/shared/errors";
import { checkName } from "../../../src/shared/names";
import type { Caller } from "../env";
import { shardFor } from "./hub";
import { gcClockOf, gcClockStatement } from "./gc";
import { readStoredUsage, storedUsageStatement } from "./tree";

export interface IntendedCommit {
	parentId: string;
	name: string;
	/** Bytes the file will have, when known before the body arrives. */
	size: number | null;
	baseVersionId: string | null;
	onConflict: OnConflict;
	/** A new file only (commit/plan.ts CommitIntent). */
	createOnly?: boolean;
}

/**
 * Refuses now what the hub would refuse at commit; returns the name in NFC,
 * `room`, the most bytes the quota leaves the body (ingest stops there when
 * the size was not declared), and the shard's gc clock read before any
 * block is stored (`blocksSince`, docs/decisions/0017). The reads go to the
 * shard in one batch: one round trip on the path of every upload.
 */
export async function precheckCommit(
	env: Env,
	caller: Pick<Caller, "userId" | "shard" | "quotaBytes">,
	intended: IntendedCommit,
	/** A share member writing into `caller`'s tree: an edit reaches only what is shared with them, as in the hub. */
	member?: Caller,
): Promise<Result<{ name: string; room: number; blocksSince: number }>> {
	const name = checkName(intended.name);
	if (!name.ok) return invalidName(name.reason);
	const db = shardFor(env, caller);
	const [target, usage, clock] = await db.$client.batch<Record<string, unknown>>([
		loadTargetStatement(db, caller.userId, intended.parentId, name.key, intended.baseVersionId),
		storedUsageStatement(db, caller.userId),
		gcClockStatement(db),
	]);
	const read = await readTarget(db, caller.userId, name.key, intended.baseVersionId, target?.results[0]);
	// A mount's content is its owner's: the caller writes there through the share (access.ts).
	if (read.parent?.mountShareId) return notFound("folder");
	const view = member ? await withinShare(env, member, caller.userId, read) : read;
	const plan = planCommit(view, intentOf(name, intended));
	if (!plan.ok) return plan;
	// Every commit keeps a new version: it needs its whole size (docs/decisions/0018).
	const { versionBytes } = readStoredUsage((usage?.results ?? []) as { version_bytes: number; nodes: number }[]);
	const room = caller.quotaBytes - versionBytes;
	if (intended.size !== null && intended.size > room) return quotaExceeded(intended.size, versionBytes, caller.quotaBytes);
	return ok({ name: name.name, room, blocksSince: gcClockOf((clock?.results ?? []) as { seq: number }[]) });
}

/** The hub's rule (tree-ops.ts withinShare), for the pre-check: an edited file or refuge folder outside the member's share is not seen. */
async function withinShare(env: Env, member: Caller, ownerId: string, view: TargetView): Promise<TargetView> {
	const shared = async (id: string, trashedToo: boolean) => {
		const access = await accessTo(env, member, id, { trashedToo });
		return access !== null && access.role === "editor" && access.scope.userId === ownerId;
	};
	const edited = view.edited && (await shared(view.edited.id, true)) ? view.edited : null;
	const refuge = view.refuge && (await shared(view.refuge.folder.id, false)) ? view.refuge : null;
	return { ...view, edited, refuge };
}
