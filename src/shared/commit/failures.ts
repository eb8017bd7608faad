/**
 * The refusals a commit can meet, each worded once: the api's pre-checks and
 * the UserHub answer the same failure in the same words.
 */
import { fail, type Refusal } from "../errors";
import type { NodeRow } from "../db/schema";

/** Something the caller named does not exist (or is not theirs, which must look the same). */
export function notFound(what: string): Refusal {
	return fail("NOT_FOUND", `${what} not found`);
}

/** The folder named as a parent does not exist, is not a folder, or is in the trash. */
export function parentNotFound(parent: NodeRow | null): Refusal {
	if (parent?.type === "folder" && parent.trashedAt !== null) return fail("NOT_FOUND", "the parent folder is in the trash");
	return notFound("parent folder");
}

/** An invalid name, with the rule it breaks. */
export function invalidName(reason: string): Refusal {
	return fail("INVALID_REQUEST", reason, [{ field: "name", message: reason }]);
}

/** Another item already lives at the name. */
export function nameTaken(name: string): Refusal {
	return fail("NAME_TAKEN", `an item named "${name}" already exists in this folder`, [{ field: "name" }]);
}

/**
 * The commit's base is no longer the head of `file`, and the client asked to
 * fail rather than copy; with no base, a create-only commit met `file` at its name.
 */
export function versionConflict(baseVersionId: string | null, file: NodeRow): Refusal {
	const message =
		baseVersionId === null
			? `a file named "${file.name}" already exists in this folder, and the upload only creates`
			: `the file changed since version ${baseVersionId}`;
	return fail("VERSION_CONFLICT", message, [{ node_id: file.id, head_version_id: file.headVersionId }]);
}

/** The commit needs `growth` bytes more than the quota leaves. */
export function quotaExceeded(growth: number, used: number, quotaBytes: number): Refusal {
	return fail("QUOTA_EXCEEDED", `this needs ${growth} more bytes; ${Math.max(0, quotaBytes - used)} of ${quotaBytes} are free`);
}

/** A folder would nest deeper than MAX_FOLDER_DEPTH. */
export function tooDeep(maxDepth: number): Refusal {
	return fail("INVALID_REQUEST", `folders nest at most ${maxDepth} levels deep`, [{ field: "parent_id", max_depth: maxDepth }]);
}

/** The account holds as many files and folders as it may. */
export function nodesExceeded(maxNodes: number, used: number): Refusal {
	return fail("QUOTA_EXCEEDED", `an account holds at most ${maxNodes} files and folders, trash included`, [
		{ limit: "nodes", max: maxNodes, used },
	]);
}

/** An upload session whose block list is still arriving in parts. */
export function listIncomplete(listedBytes: number): Refusal {
	return fail("INVALID_REQUEST", "the block list is not complete: finish it with more_blocks: false, then commit", [
		{ listed_bytes: listedBytes },
	]);
}

/** Blocks the upload lists that the service has not received. */
export function missingBlocks(hashes: string[]): Refusal {
	return fail("MISSING_BLOCKS", `${hashes.length} block(s) have not been uploaded`, hashes);
}
