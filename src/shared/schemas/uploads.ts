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
	})
	.superRefine((body, ctx) => {
		const total = body.blocks.reduce((sum, b) => sum + b.size, 0);
		if (total !== body.size)
			ctx.addIssue({ code: "custom", path: ["blocks"], message: `block sizes add up to ${total}, not size ${body.size}` });
	})
	.openapi("CreateUploadBody");

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
	})
	.openapi("UploadStatus");

export const CommitUploadBody = z.object({}).passthrough().openapi("CommitUploadBody");
