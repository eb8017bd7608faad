/** Reaching the caller's UserHub (writes) and shard (reads). */
import { shardAt, type ShardDb } from "../../../src/shared/db/shards";
import { aroundStubCalls } from "../../../src/shared/rpc-stubs";
import { ObjectUnavailable } from "../../../src/shared/transient";
import type { Caller } from "../env";

/**
 * The user's UserHub stub (native RPC); the hub is addressed by the user's
 * id. An error that did not come from the hub's own code (no `remote`: the
 * object was reset mid-call, moved, or could not be reached) is thrown as
 * {@link ObjectUnavailable}, which the api answers with a retryable 503
 * (docs/decisions/0033-failure-handling.md).
 */
export function hubFor(env: Env, userId: string): ReturnType<Env["USER_HUB"]["getByName"]> {
	return aroundStubCalls(env.USER_HUB.getByName(userId), async (_method, call) => {
		try {
			return await call();
		} catch (err) {
			throw (err as { remote?: unknown } | null)?.remote === true ? err : new ObjectUnavailable(err);
		}
	});
}

/** The caller's shard, for reads. Writes go through the hub. */
export function shardFor(env: Env, caller: Pick<Caller, "shard">): ShardDb {
	return shardAt(env, caller.shard);
}
