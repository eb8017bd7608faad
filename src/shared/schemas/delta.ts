/** Delta downloads: a version's block list, a page at a time (docs/api.md, "Delta downloads"). */
import { z } from "@hono/zod-openapi";
import { NodeId, Sha256Hex, VersionId } from "./common";

/** Blocks in one page of a block list at most: a 10 GiB file of ~1 MiB blocks is two pages. */
export const MAX_BLOCK_PAGE = 5000;

export const BlockListQuery = z.object({
	version_id: VersionId.optional().openapi({ description: "An earlier version of this file; default the head" }),
	offset: z.coerce
		.number()
		.int()
		.min(0)
		.max(Number.MAX_SAFE_INTEGER)
		.default(0)
		.openapi({ description: "The first block listed is the first that starts at or after this byte offset: a page's `next_offset`" }),
	limit: z.coerce.number().int().min(1).max(MAX_BLOCK_PAGE).default(1000).openapi({ example: 1000 }),
});

export const BlockQuery = z.object({
	version_id: VersionId.optional().openapi({ description: "An earlier version of this file; default the head" }),
});

export const BlockParam = z.object({ id: z.string().min(1).max(64), hash: Sha256Hex });

export const ListedBlock = z.object({
	offset: z.number().int(),
	size: z.number().int(),
	hash: Sha256Hex,
});
export type ListedBlock = z.infer<typeof ListedBlock>;

export const BlockList = z
	.object({
		node_id: NodeId,
		version_id: VersionId,
		size: z.number().int().openapi({ description: "The version's size in bytes" }),
		content_hash: Sha256Hex.openapi({ description: "SHA-256 of the whole version" }),
		blocks: z.array(ListedBlock).openapi({ description: "In offset order; together they cover the version without gaps" }),
		next_offset: z
			.number()
			.int()
			.nullable()
			.openapi({ description: "Pass as `offset` for the next page; null when this page ends the version" }),
	})
	.openapi("BlockList");
export type BlockList = z.infer<typeof BlockList>;
