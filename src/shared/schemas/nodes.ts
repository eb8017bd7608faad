/** Files and folders. */
import { z } from "@hono/zod-openapi";
import { NodeId, Sha256Hex, Timestamp, VersionId } from "./common";

export const NodeType = z.enum(["file", "folder"]);

export const Node = z
	.object({
		id: NodeId,
		type: NodeType,
		name: z.string(),
		parent_id: NodeId.nullable(),
		size: z.number().int().nullable().openapi({ description: "Bytes; null for folders" }),
		version_id: VersionId.nullable(),
		content_hash: Sha256Hex.nullable(),
		created_at: Timestamp,
		modified_at: Timestamp,
		trashed: z.boolean(),
		conflict_of: NodeId.nullable().openapi({
			description:
				"Set on an unresolved conflicted copy: the id of the file it lost against. Cleared when the copy is renamed, deleted or resolved.",
		}),
		mount: z.object({ share_id: z.string() }).optional().openapi({
			description:
				"Extension, present only on a mount: this node of your tree stands for a file or folder someone shared with you. Its children are the owner's (list them with this id); `GET /v1/shared-with-me` has the owner and your role.",
		}),
	})
	.openapi("Node");
export type Node = z.infer<typeof Node>;

export const PathEntry = z.object({ id: NodeId, name: z.string() });

export const NodeWithPath = Node.extend({
	path: z.string().openapi({ example: "/Photos/2026/beach.jpg", description: "Slash-separated from the root" }),
	ancestors: z.array(PathEntry).openapi({ description: "From the root down to the parent" }),
}).openapi("NodeWithPath");
export type NodeWithPath = z.infer<typeof NodeWithPath>;

export const NodePage = z.object({ items: z.array(Node), next_cursor: z.string().nullable() }).openapi("NodePage");
export type NodePage = z.infer<typeof NodePage>;

export const CreateFolderBody = z.object({ parent_id: NodeId, name: z.string().min(1).max(1024) }).openapi("CreateFolderBody");

/** Folders created in one request: a whole level of a tree an upload or a sync client brings. */
export const MAX_FOLDER_BATCH = 1000;

export const CreateFolderBatchBody = z
	.object({ parent_id: NodeId, names: z.array(z.string().min(1).max(1024)).min(1).max(MAX_FOLDER_BATCH) })
	.openapi("CreateFolderBatchBody");

export const FolderBatchResult = z
	.object({
		items: z.array(
			z.union([
				z.object({ node: Node }),
				z.object({
					error: z.object({ code: z.string(), message: z.string(), details: z.array(z.unknown()).optional() }),
				}),
			]),
		),
	})
	.openapi("FolderBatchResult");

export const UpdateNodeBody = z
	.object({ name: z.string().min(1).max(1024).optional(), parent_id: NodeId.optional() })
	.refine((b) => b.name !== undefined || b.parent_id !== undefined, "give name, parent_id or both")
	.openapi("UpdateNodeBody");

export const Version = z
	.object({
		id: VersionId,
		node_id: NodeId,
		size: z.number().int(),
		content_hash: Sha256Hex,
		created_at: Timestamp,
		device_id: z.string().nullable(),
		is_head: z.boolean().openapi({ description: "The file's current version (extension)" }),
		keep_forever: z.boolean().openapi({ description: "Pinned: retention never drops it (extension)" }),
		label: z.string().nullable().openapi({ description: "A user's note; a labelled version is kept like a pinned one (extension)" }),
		author_id: z.string().nullable().openapi({ description: "The user who committed it; null for the file's owner (extension)" }),
	})
	.openapi("Version");
export type Version = z.infer<typeof Version>;

/** Longest label a version may carry, in characters. */
export const MAX_VERSION_LABEL = 200;

export const UpdateVersionBody = z
	.object({
		keep_forever: z.boolean().optional().openapi({ description: "Pin (true) or unpin (false)" }),
		label: z
			.string()
			.trim()
			.min(1)
			.max(MAX_VERSION_LABEL)
			.regex(/^[^\p{Cc}]*$/u, "a label has no control characters")
			.nullable()
			.optional()
			.openapi({ description: `Up to ${MAX_VERSION_LABEL} characters, trimmed; null removes it` }),
	})
	.refine((b) => b.keep_forever !== undefined || b.label !== undefined, "give keep_forever, label or both")
	.openapi("UpdateVersionBody");

export const VersionPage = z.object({ items: z.array(Version), next_cursor: z.string().nullable() }).openapi("VersionPage");
export type VersionPage = z.infer<typeof VersionPage>;

export const Conflict = z
	.object({
		node_id: NodeId.openapi({ description: "The file this commit conflicted with (the winner)" }),
		reason: z.enum(["stale_base"]).openapi({ description: "stale_base: the commit was based on a version that is no longer the head" }),
	})
	.openapi("Conflict");
export type Conflict = z.infer<typeof Conflict>;

export const CommitResult = z.object({ node: Node, version: Version, conflict: Conflict.nullable() }).openapi("CommitResult");
export type CommitResult = z.infer<typeof CommitResult>;

export const ContentQuery = z.object({
	parent_id: NodeId,
	name: z.string().min(1).max(1024),
	on_conflict: z.enum(["copy", "fail"]).default("copy").openapi({
		description: "copy (default): a stale If-Match is kept as a conflicted copy; fail: answer 409 VERSION_CONFLICT",
	}),
});
