/** POST /v1/files/batch: many small files committed in one request (docs/api.md, "Batches of small files"). */
import { z } from "@hono/zod-openapi";
import { NodeId, Sha256Hex, VersionId } from "./common";
import { Conflict, Node, Version } from "./nodes";

/** Items per batch. */
export const MAX_BATCH_FILES = 256;
/** Bytes per item: larger files go through PUT content or upload sessions. */
export const MAX_BATCH_FILE_BYTES = 1024 * 1024;
/** Bytes of all items together. */
export const MAX_BATCH_BYTES = 16 * 1024 * 1024;
/** The manifest part, at most: 256 items of ids, names and hashes fit well within it. */
export const MAX_BATCH_MANIFEST_BYTES = 1024 * 1024;

/** One file of a batch: a new file (`parent_id` + `name`) or a new version of one (`file_id` + `if_match`). */
export const BatchItem = z
	.object({
		parent_id: NodeId.optional().openapi({ description: "The folder of a new file" }),
		name: z.string().min(1).max(1024).optional().openapi({ description: "The name of a new file" }),
		file_id: NodeId.optional().openapi({ description: "The file this item is a new version of" }),
		if_match: VersionId.optional().openapi({ description: "With file_id: the version edited; a stale one follows the conflict rule" }),
		size: z
			.number()
			.int()
			.min(0)
			.openapi({ description: `Bytes of the item's part; at most ${MAX_BATCH_FILE_BYTES}` }),
		sha256: Sha256Hex,
		create_only: z.boolean().default(false).openapi({ description: "A new file only: a file at the name gets no version (create-only)" }),
		on_conflict: z.enum(["copy", "fail"]).default("copy"),
	})
	.superRefine((item, ctx) => {
		const byId = item.file_id !== undefined;
		const byName = item.parent_id !== undefined || item.name !== undefined;
		if (byId === byName || (byName && (item.parent_id === undefined || item.name === undefined)))
			ctx.addIssue({ code: "custom", message: "give parent_id and name for a new file, or file_id for a new version" });
		if (item.if_match !== undefined && !byId) ctx.addIssue({ code: "custom", path: ["if_match"], message: "if_match goes with file_id" });
		if (item.create_only && byId)
			ctx.addIssue({ code: "custom", path: ["create_only"], message: "create_only goes with parent_id and name" });
	})
	.openapi("BatchItem");
export type BatchItem = z.infer<typeof BatchItem>;

/** The first part of the body. */
export const BatchManifest = z.object({ items: z.array(BatchItem).min(1).max(MAX_BATCH_FILES) }).openapi("BatchManifest");
export type BatchManifest = z.infer<typeof BatchManifest>;

export const BatchItemResult = z
	.union([
		z.object({
			status: z.enum(["created", "updated", "conflict"]).openapi({
				description: "created: a new file; updated: a new version; conflict: kept as a conflicted copy (see `conflict`)",
			}),
			node: Node,
			version: Version,
			conflict: Conflict.nullable(),
		}),
		z.object({
			error: z.object({
				code: z.string(),
				status: z.number().int().openapi({ description: "The HTTP status this error has when a request fails with it alone" }),
				message: z.string(),
				details: z.array(z.unknown()).optional(),
			}),
		}),
	])
	.openapi("BatchItemResult");
export type BatchItemResult = z.infer<typeof BatchItemResult>;

export const BatchResult = z.object({ results: z.array(BatchItemResult) }).openapi("BatchResult");
export type BatchResult = z.infer<typeof BatchResult>;
