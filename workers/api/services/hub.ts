/** Reaching the caller's UserHub (writes) and shard (reads). */
import { shardAt, type ShardDb } from "../../../src/shared/db/shards";
import type { Caller } from "../env";

/** The user's UserHub stub (native RPC); the hub is addressed by the user's id. */
export function hubFor(env: Env, userId: string) {
	return env.USER_HUB.getByName(userId);
}

/** The caller's shard, for reads. Writes go through the hub. */
export function shardFor(env: Env, caller: Pick<Caller, "shard">): ShardDb {
	return shardAt(env, caller.shard);
}
