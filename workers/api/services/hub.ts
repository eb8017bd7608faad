/** Reaching the caller's UserHub and shard. */
import { shardDb } from "../../../src/shared/db/rows";
import { bytesUsed, openShard, type ShardDb } from "../../../src/shared/db/tree";
import type { Caller } from "../env";

/** The user's UserHub stub (native RPC). */
export function hubFor(env: Env, userId: string) {
	return env.USER_HUB.getByName(userId);
}

/** The caller's shard, for reads. Writes go through the hub. */
export function shardOf(env: Env, caller: Caller): ShardDb {
	return openShard(shardDb(env, caller.shard));
}

/** Bytes the caller's files take. */
export function usageOf(env: Env, caller: Caller): Promise<number> {
	return bytesUsed(shardOf(env, caller), caller.userId);
}
