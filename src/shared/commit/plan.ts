/**
 * Where a commit of file content lands: the rule of docs/decisions/0009 as
 * one pure function. The api runs it as an advisory pre-check, before a byte
 * is stored, and the UserHub runs it again inside its queue, authoritatively;
 * both over the same view of the tree (`loadTarget` in db/tree.ts), so the
 * pre-check never refuses what the hub would accept.
 */
import type { NodeRow } from "../db/schema";
import { ok, type Result } from "../errors";
import { nameTaken, parentNotFound, versionConflict } from "./failures";

/** What the tree holds around a commit's target, read in one round trip. */
export interface TargetView {
	/** The node the commit names as its folder. */
	parent: NodeRow | null;
	/** The live item at the commit's name in that folder. */
	child: NodeRow | null;
	/** For an edit: the file its base version belongs to, wherever it is now, trashed or not. */
	edited: NodeRow | null;
	/**
	 * For an edit whose folder is in the trash: the deepest live folder above
	 * it (the root at worst), and the live item at the name there. Null
	 * otherwise.
	 */
	refuge: { folder: NodeRow; child: NodeRow | null } | null;
}

/**
 * What a commit does when its name is taken: `copy` keeps a stale edit as a
 * conflicted copy, `fail` refuses it, and `rename` (public link uploads,
 * which never overwrite) adds a new file at the first free numbered name.
 */
export type OnConflict = "copy" | "fail" | "rename";

/** The commit as the client asked for it. */
export interface CommitIntent {
	/** The name, already checked and in NFC. */
	name: string;
	/** Its sibling-comparison key (names.ts nameKey). */
	key: string;
	/** The head the client edited (If-Match, base_version_id); null for "whatever is there". */
	baseVersionId: string | null;
	onConflict: OnConflict;
	/**
	 * A new file only (If-None-Match: *, create_only): a live file at the name
	 * is treated like a head the client never saw, so it is never given a
	 * version by this commit. Needs `baseVersionId` null.
	 */
	createOnly?: boolean;
}

/** The intent of a commit whose name passed names.ts `checkName`: `{name, key}` is its answer. */
export function intentOf(
	name: { name: string; key: string },
	commit: { baseVersionId: string | null; onConflict: OnConflict; createOnly?: boolean },
): CommitIntent {
	return {
		name: name.name,
		key: name.key,
		baseVersionId: commit.baseVersionId,
		onConflict: commit.onConflict,
		createOnly: commit.createOnly ?? false,
	};
}

/**
 * - `new`: a new file named `name` in `parentId`;
 * - `version`: the next version of `file` (for a file revived from the
 *   trash, `file` already carries its new folder and name, and `change` is
 *   "restored");
 * - `copy`: a conflicted copy in `parentId` beside `winner`, which the commit
 *   lost against; `name` is the name it lost at;
 * - `renamed`: a new file in `parentId` at the first free name numbered from
 *   `name` (onConflict `rename`), which the hub picks inside its queue.
 */
export type CommitPlan =
	| { kind: "new"; parentId: string; name: string }
	| { kind: "version"; file: NodeRow; change: "updated" | "restored" }
	| { kind: "copy"; parentId: string; name: string; winner: NodeRow }
	| { kind: "renamed"; parentId: string; name: string };

/** Decides where a commit lands, or why it cannot (docs/decisions/0009). */
export function planCommit(view: TargetView, intent: CommitIntent): Result<CommitPlan> {
	const base = intent.baseVersionId;
	let folder = isLiveFolder(view.parent) ? view.parent : null;
	let existing = view.child;
	if (folder === null && base !== null && view.refuge !== null) {
		// An edit whose folder was deleted meanwhile still wins: it lands in
		// the nearest folder above that survives.
		folder = view.refuge.folder;
		existing = view.refuge.child;
	}
	if (folder === null) return parentNotFound(view.parent);

	// For an edit whose base is not the head of what lives at the name: the
	// file it edited, wherever it is now and even if it is in the trash.
	const edited = base !== null && existing?.headVersionId !== base ? view.edited : null;
	if (edited && edited.trashedAt === null && edited.id !== existing?.id && edited.parentId !== null) {
		// An edit follows its file: if the file was renamed or moved meanwhile,
		// the edit goes to it where it is now, never to whatever else has the
		// name now.
		if (edited.headVersionId === base) return ok({ kind: "version", file: edited, change: "updated" });
		if (intent.onConflict === "fail") return versionConflict(base, edited);
		return ok({ kind: "copy", parentId: edited.parentId, name: edited.name, winner: edited });
	}
	if (existing && intent.onConflict === "rename") return ok({ kind: "renamed", parentId: folder.id, name: intent.name });
	if (existing?.type === "folder") return nameTaken(intent.name);
	if (existing) {
		// A sync client that has not seen this file must not replace it: its upload loses as a stale edit would.
		if (intent.createOnly) {
			if (intent.onConflict === "fail") return versionConflict(null, existing);
			return ok({ kind: "copy", parentId: folder.id, name: intent.name, winner: existing });
		}
		if (base === null || base === existing.headVersionId) return ok({ kind: "version", file: existing, change: "updated" });
		if (intent.onConflict === "fail") return versionConflict(base, existing);
		return ok({ kind: "copy", parentId: folder.id, name: intent.name, winner: existing });
	}
	// Nothing lives at this name. If the client edited a version whose file
	// was deleted meanwhile, the edit wins: the file comes back.
	if (edited && edited.trashedAt !== null) {
		// If the deleted file had moved on too, keep its newer head (in the
		// trash, restorable) and add the edit beside it, as a conflicted copy.
		if (edited.headVersionId !== base) return ok({ kind: "copy", parentId: folder.id, name: intent.name, winner: edited });
		return ok({
			kind: "version",
			file: { ...edited, parentId: folder.id, name: intent.name, nameKey: intent.key, trashedAt: null, trashRootId: null },
			change: "restored",
		});
	}
	return ok({ kind: "new", parentId: folder.id, name: intent.name });
}

function isLiveFolder(row: NodeRow | null): row is NodeRow {
	return row !== null && row.type === "folder" && row.trashedAt === null;
}

/**
 * What a commit adds to the user's usage: every version is kept, so a
 * commit adds its size whatever it lands on (docs/decisions/0018), and a
 * node unless it is a new version of an existing file.
 */
export function usageOf(plan: CommitPlan, size: number): { bytes: number; nodes: number } {
	return { bytes: size, nodes: plan.kind === "version" ? 0 : 1 };
}
