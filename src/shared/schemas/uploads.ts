/** Upload sessions: client-chunked, deduplicated, resumable uploads. */
import { z } from "@hono/zod-openapi";
import { MAX_BLOCK_BYTES } from "../limits";
import { NodeId, Sha256Hex, Timestamp, VersionId } from "./common";

export const BlockSpec = z.object({
	hash: Sha256Hex,
	size: z.number().int().min(1).max(MAX_BLOCK_BYTES),
});
export type BlockSpec = z.infer<typeof BlockSpec>;

/** A file's block list may not be longer than this (10 GiB of 64 KiB blocks). */
export const MAX_BLOCKS_PER_UPLOAD = 163_840;

export const CreateUploadBody = z
	.object({
		parent_id: NodeId,
		name: z.string().min(1).max(1024),
		size: z.number().int().min(0),
		blocks: z.array(BlockSpec).max(MAX_BLOCKS_PER_UPLOAD),
		base_version_id: VersionId.optional().openapi({ description: "The version this upload edits; a stale one follows the conflict rule" }),
		content_hash: Sha256Hex.optional().openapi({
			description:
				"SHA-256 of the whole file (extension). Clients should send it; without it the service computes it at commit by reading the blocks back.",
		}),
		on_conflict: z.enum(["copy", "fail"]).default("copy"),
		create_only: z.boolean().default(false).openapi({
			description:
				"Extension: the upload only creates a new file. If a file lives at the name when it is committed, it gets no version from this upload: the upload becomes a conflicted copy beside it (`conflict.reason` stale_base), or 409 VERSION_CONFLICT with on_conflict=fail. Not with base_version_id.",
		}),
		more_blocks: z.boolean().default(false).openapi({
			description:
				"Extension: `blocks` is only the start of the list; the rest follows in `POST /v1/uploads/{id}/block-list`. Lets a client send blocks while it is still hashing the file.",
		}),
	})
	.superRefine((body, ctx) => {
		const problem = listEndProblem(0, body.blocks, body.size, body.more_blocks) ?? resizedBlock(body.blocks);
		if (problem !== null) ctx.addIssue({ code: "custom", path: ["blocks"], message: problem });
		if (body.create_only && body.base_version_id !== undefined)
			ctx.addIssue({ code: "custom", path: ["create_only"], message: "create_only creates a new file; it cannot go with base_version_id" });
	})
	.openapi("CreateUploadBody");

/**
 * A block listed twice with two sizes, which cannot both be true (the same
 * bytes hash the same): the list would not describe the file it commits.
 */
function resizedBlock(blocks: readonly BlockSpec[]): string | null {
	const sizes = new Map<string, number>();
	for (const { hash, size } of blocks) {
		const seen = sizes.get(hash);
		if (seen !== undefined && seen !== size) return `block ${hash} is listed with two sizes, ${seen} and ${size}`;
		sizes.set(hash, size);
	}
	return null;
}

/**
 * What is wrong with a part of a block list that starts at `offset`, or
 * null: the sizes must add up to the file's size once the list is complete,
 * and never go past it before.
 */
export function listEndProblem(offset: number, blocks: readonly BlockSpec[], size: number, more: boolean): string | null {
	const end = offset + blocks.reduce((sum, b) => sum + b.size, 0);
	if (more) return end > size ? `the blocks go past the file's size ${size}` : null;
	return end === size ? null : `block sizes add up to ${end}, not size ${size}`;
}

export const AppendBlocksBody = z
	.object({
		offset: z.number().int().min(0).openapi({ description: "Bytes the list covers before these blocks (the status's `listed_bytes`)" }),
		blocks: z.array(BlockSpec).max(MAX_BLOCKS_PER_UPLOAD),
		more_blocks: z.boolean().default(false).openapi({ description: "More parts of the list follow; false completes it" }),
		content_hash: Sha256Hex.optional().openapi({ description: "SHA-256 of the whole file, when the client knows it only now" }),
	})
	.superRefine((body, ctx) => {
		const problem = resizedBlock(body.blocks);
		if (problem !== null) ctx.addIssue({ code: "custom", path: ["blocks"], message: problem });
	})
	.openapi("AppendBlocksBody");
export type AppendBlocksBody = z.infer<typeof AppendBlocksBody>;

export const UploadStatus = z
	.object({
		upload_id: z.string(),
		missing: z.array(Sha256Hex).openapi({ description: "Blocks to send, in file order; only blocks this user does not already have" }),
		expires_at: Timestamp,
		committed: z
			.object({ node_id: NodeId, version_id: VersionId })
			.nullable()
			.optional()
			.openapi({ description: "Set once the upload is committed (extension)" }),
		listed_bytes: z.number().int().optional().openapi({ description: "Bytes the block list covers so far (extension)" }),
		more_blocks: z.boolean().optional().openapi({ description: "The block list is not complete yet (extension)" }),
	})
	.openapi("UploadStatus");
export type UploadStatus = z.infer<typeof UploadStatus>;

export const AppendBlocksResult = z
	.object({
		upload_id: z.string(),
		missing: z.array(Sha256Hex).openapi({ description: "Of the blocks just listed, those to send, in file order" }),
		listed_bytes: z.number().int(),
		more_blocks: z.boolean(),
		expires_at: Timestamp,
	})
	.openapi("AppendBlocksResult");

export const CommitUploadBody = z.object({}).passthrough().openapi("CommitUploadBody");
