/**
 * The directory database (docs/decisions/0002): one D1 database for every
 * user. Its concerns live beside this handle: accounts.ts (users and their
 * passwords), sessions.ts (devices, refresh tokens, the caller cache),
 * throttle.ts (login and signup throttling) and placement.ts (which shard
 * holds a user).
 */
import type { DrizzleD1Database } from "drizzle-orm/d1";
import { wrapD1 } from "../../../src/shared/db/shards";

export type DirectoryDb = DrizzleD1Database & { $client: D1Database };

/** Wraps the DIRECTORY binding. */
export function openDirectory(d1: D1Database): DirectoryDb {
	return wrapD1(d1);
}
