/** Maps shard rows to the API's shapes. Shared by the api worker and the UserHub. */
import type { Node, Version } from "../schemas/nodes";
import type { NodeRow, VersionRow } from "./schema";

/** A block of a version or upload: where it starts in the file, its length and its address. */
export interface BlockRef {
	offset: number;
	size: number;
	hash: string;
}

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
		...(row.mountShareId ? { mount: { share_id: row.mountShareId } } : {}),
	};
}

/** The API's version shape for a `versions` row; `headVersionId` is its file's head. */
export function toVersion(row: VersionRow, headVersionId: string | null): Version {
	return {
		id: row.id,
		node_id: row.nodeId,
		size: row.size,
		content_hash: row.contentHash,
		created_at: row.createdAt,
		device_id: row.deviceId,
		is_head: row.id === headVersionId,
		keep_forever: row.keepForever,
		label: row.label,
		author_id: row.authorId,
	};
}
