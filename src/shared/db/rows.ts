/** Maps shard rows to the API's shapes. Shared by the api worker and the UserHub. */
import type { Node, Version } from "../schemas/nodes";
import type { NodeRow, VersionRow } from "./schema";

/** The API's node shape for a `nodes` row. */
export function toNode(row: NodeRow): Node {
	const isFile = row.type === "file";
	return {
		id: row.id,
		type: row.type,
		name: row.name,
		parent_id: row.parentId,
		size: isFile ? row.size : null,
		version_id: isFile ? row.headVersionId : null,
		content_hash: isFile ? row.contentHash : null,
		created_at: row.createdAt,
		modified_at: row.modifiedAt,
		trashed: row.trashedAt !== null,
		conflict_of: row.conflictOf,
	};
}

/** The API's version shape for a `versions` row. */
export function toVersion(row: VersionRow): Version {
	return {
		id: row.id,
		node_id: row.nodeId,
		size: row.size,
		content_hash: row.contentHash,
		created_at: row.createdAt,
		device_id: row.deviceId,
	};
}

/** A block of a version: where it starts in the file, its length and its address. */
export interface BlockRef {
	offset: number;
	size: number;
	hash: string;
}

/** D1 binding names of the shards: SHARD_0 .. SHARD_{n-1}. */
export function shardCount(env: object): number {
	let n = 0;
	while (`SHARD_${n}` in env) n++;
	return n;
}

/** The D1 database of shard `index`; throws on a bad index (a bug, not input). */
export function shardDb(env: object, index: number): D1Database {
	const db = (env as Record<string, unknown>)[`SHARD_${index}`];
	if (!db || typeof db !== "object" || !("prepare" in db)) throw new Error(`no D1 binding SHARD_${index}`);
	return db as D1Database;
}
