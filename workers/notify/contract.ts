/**
 * What the api worker and the UserHub exchange over RPC: inputs and the
 * values inside each Result. The api imports these types; it never imports
 * the Durable Object's implementation.
 */
import type { OnConflict } from "../../src/shared/commit/plan";
import type { BlockRef } from "../../src/shared/db/mappers";
import type { CommitResult, Node } from "../../src/shared/schemas/nodes";
import type { Result } from "../../src/shared/errors";

export type { ChangeKind } from "../../src/shared/schemas/sync";

/** The device making a change, for conflicted-copy names and version records. */
export interface Actor {
	deviceId: string | null;
	deviceName: string;
	/** The share member making the change in the owner's tree; absent for the owner. The hub checks their grant in its queue. */
	userId?: string;
}

/** A commit of content whose blocks are already stored (PUT content). */
export interface CommitFileInput {
	parentId: string;
	name: string;
	size: number;
	contentHash: string;
	/** The blocks in file order. */
	blocks: BlockRef[];
	/** The user's shard's gc clock, read before the first block was written (docs/decisions/0017). */
	blocksSince: number;
	/** The head the client edited (If-Match); null for "whatever is there". */
	baseVersionId: string | null;
	onConflict: OnConflict;
	/** A new file only (If-None-Match: *): a live file at the name is never given a version (commit/plan.ts). */
	createOnly?: boolean;
	quotaBytes: number;
	actor: Actor;
	/** Set for an upload through a public link: its `link.uploaded` activity row goes in the commit's batch. */
	linkId?: string;
	/** False for a hash the client declared and nobody checked yet; default true (the api hashed the bytes). */
	hashVerified?: boolean;
	/** The version's id, chosen by the api for a member's upload: a commit that finds it written answers it again (idempotent retry). */
	versionId?: string;
	/** An edit of this file by id (`parentId` and `name` are where it was): a member needs a grant on the file, not its folder (a shared file). */
	fileId?: string;
}

/** One file of a batch (POST /v1/files/batch) whose blocks the api stored. */
export interface BatchFileInput {
	parentId: string;
	name: string;
	size: number;
	contentHash: string;
	/** The blocks in file order. */
	blocks: BlockRef[];
	baseVersionId: string | null;
	onConflict: "copy" | "fail";
	createOnly: boolean;
	/** A new version of this file by id (`parentId` and `name` are where it was). */
	fileId?: string;
}

/** A batch of files into the caller's own tree, committed in one run of the hub's queue. */
export interface CommitFilesInput {
	files: BatchFileInput[];
	/** The user's shard's gc clock, read before the first block of the batch was written (docs/decisions/0017). */
	blocksSince: number;
	quotaBytes: number;
	/** The owner's device: batches never come from share members. */
	actor: Omit<Actor, "userId">;
}

/** A commit of an upload session or tus upload whose blocks have all arrived. */
export interface CommitUploadInput {
	uploadId: string;
	/** The SHA-256 of the whole content: computed by the api, or as the client declared it. */
	contentHash: string;
	/** False for a hash the client declared and nobody checked yet (audit M7). */
	hashVerified: boolean;
	quotaBytes: number;
}

/** A commit's answer: the API's CommitResult, and whether it created the file (201) or added a version (200). */
export interface CommitOutcome extends CommitResult {
	created: boolean;
}

/** The node after a change of the tree. */
export interface NodeOutcome {
	node: Node;
}

export interface UpdateNodeInput {
	nodeId: string;
	name?: string;
	parentId?: string;
	/** A share member making the change (the hub checks their grant in its queue). */
	by?: string;
}

export interface LongPollOutcome extends Bookmarked {
	changes: boolean;
	/** Seconds to wait before polling again, when the hub is busy with waiters. */
	backoff?: number;
}

/**
 * What a hub answer knows of its shard: `<shard>.<D1 bookmark>` after the
 * hub's latest query, so that a read opened at it sees the change
 * (docs/decisions/0031-read-your-writes-with-bookmarks.md). Absent before
 * the hub's first query.
 */
export interface Bookmarked {
	bookmark?: string;
}

/** Every answer of a hub's change: its Result, and the bookmark after it. */
export type Written<T> = Result<T> & Bookmarked;

export interface SyncTicket {
	ticket: string;
	expiresIn: number;
}

/** A message on the `drive-webhook-fanout` queue: the user's journal advanced (docs/decisions/0028-webhooks.md). */
export interface FanOutKick {
	user: string;
	/** The shard that holds the user's journal and endpoints. */
	shard: number;
}
