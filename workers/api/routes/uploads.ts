/** Upload sessions: client-chunked, deduplicated, resumable uploads (API.md "Upload sessions"). */
import { createRoute, z } from "@hono/zod-openapi";
import { runBatch } from "../../../src/shared/db/batch";
import { declaredBlockSizes, missingBlocks } from "../../../src/shared/db/uploads";
import { findVersion } from "../../../src/shared/db/tree";
import { isSha256Hex } from "../../../src/shared/crypto";
import { MAX_BLOCK_BYTES, MAX_REQUEST_BYTES } from "../../../src/shared/limits";
import { Sha256Hex } from "../../../src/shared/schemas/common";
import { CommitResult } from "../../../src/shared/schemas/nodes";
import { AppendBlocksBody, AppendBlocksResult, CreateUploadBody, listEndProblem, UploadStatus } from "../../../src/shared/schemas/uploads";
import type { UploadRow } from "../../../src/shared/db/schema";
import { ApiError, unwrap } from "../errors";
import type { Caller } from "../env";
import { requireAuth } from "../middleware/auth";
import { binaryContent, bearer, errorResponses, json, jsonBody, newRouter } from "../openapi";
import { keyRing, putBlock } from "../services/block-store";
import { receiveBlocks } from "../services/block-batch";
import { outliveClient, readBounded } from "../services/body";
import { hubFor, shardOf } from "../services/hub";
import {
	appendBlockList,
	cancelUpload,
	checkUploadTarget,
	createUpload,
	hashStoredUpload,
	recordReceived,
	usableUpload,
} from "../services/uploads";

export const uploadRoutes = newRouter();

/** The caller's session that can still take blocks or list parts: live and not committed; NOT_FOUND otherwise. */
async function openSession(env: Env, caller: Caller, id: string): Promise<UploadRow> {
	const upload = await usableUpload(env, caller, id, "session");
	if (upload.committedVersionId !== null) throw new ApiError("NOT_FOUND", "upload already committed");
	return upload;
}

/** How far a session's block list has got (extension fields of UploadStatus). */
function listing(upload: UploadRow): { listed_bytes: number; more_blocks: boolean } {
	return { listed_bytes: upload.offset, more_blocks: upload.moreBlocks };
}
uploadRoutes.use("/uploads", requireAuth);
uploadRoutes.use("/uploads/*", requireAuth);

const tags = ["Upload sessions"];
const UploadParam = z.object({ id: z.string().min(1).max(64) });

uploadRoutes.openapi(
	createRoute({
		method: "post",
		path: "/uploads",
		tags,
		security: bearer,
		summary: "Start an upload: send the block list, get back only the blocks to send",
		description:
			"Blocks (any boundaries, at most 8 MiB each) are named by their SHA-256. `missing` lists only the blocks this user does not already have: dedup of bandwidth is per user, so nobody learns what others store. Sessions expire after 24 hours.",
		request: { body: jsonBody(CreateUploadBody) },
		responses: {
			201: json(UploadStatus, "Session created"),
			...errorResponses("INVALID_REQUEST", "UNAUTHENTICATED", "NOT_FOUND", "NAME_TAKEN", "PAYLOAD_TOO_LARGE", "QUOTA_EXCEEDED"),
		},
	}),
	async (c) => {
		const caller = c.get("caller");
		const body = c.req.valid("json");
		const db = shardOf(c.env, caller);
		const maxFileBytes = Number(c.env.MAX_FILE_BYTES);
		const target = unwrap(
			await checkUploadTarget(c.env, db, caller, {
				parentId: body.parent_id,
				name: body.name,
				size: body.size,
				maxFileBytes,
				baseVersionId: body.base_version_id ?? null,
			}),
		);
		const upload = await createUpload(db, caller, {
			protocol: "session",
			parentId: body.parent_id,
			name: target.name,
			size: body.size,
			blocks: body.blocks,
			moreBlocks: body.more_blocks,
			baseVersionId: body.base_version_id ?? null,
			contentHash: body.content_hash ?? null,
			onConflict: body.on_conflict,
			metadata: null,
			ttlHours: Number(c.env.UPLOAD_TTL_HOURS) || 24,
			maxFileBytes,
		});
		return c.json(
			{
				upload_id: upload.id,
				missing: await missingBlocks(db, caller.userId, upload.id),
				expires_at: upload.expiresAt,
				committed: null,
				...listing(upload),
			},
			201,
		);
	},
);

uploadRoutes.openapi(
	createRoute({
		method: "put",
		path: "/uploads/{id}/blocks/{hash}",
		tags,
		security: bearer,
		summary: "Send one block (at most 8 MiB); idempotent",
		description: "The SHA-256 is verified while the body streams; a mismatch answers 422 HASH_MISMATCH and stores nothing.",
		request: {
			params: UploadParam.extend({ hash: Sha256Hex }),
			body: { content: binaryContent },
		},
		responses: {
			204: { description: "Stored" },
			...errorResponses("INVALID_REQUEST", "UNAUTHENTICATED", "NOT_FOUND", "PAYLOAD_TOO_LARGE", "HASH_MISMATCH"),
		},
	}),
	async (c) => {
		const caller = c.get("caller");
		const { id, hash } = c.req.valid("param");
		const declared = c.req.header("Content-Length");
		const length = declared === undefined ? null : Number(declared);
		if (length !== null && !(length <= MAX_BLOCK_BYTES))
			throw new ApiError("PAYLOAD_TOO_LARGE", `a block is at most ${MAX_BLOCK_BYTES} bytes`);
		const upload = await openSession(c.env, caller, id);
		const db = shardOf(c.env, caller);
		const size = (await declaredBlockSizes(db, upload.id, [hash])).get(hash);
		if (size === undefined) throw new ApiError("NOT_FOUND", "this block is not part of the upload's block list");
		const body = await readBounded(c.req.raw.body, MAX_BLOCK_BYTES, length);
		if (!body.ok) throw new ApiError("PAYLOAD_TOO_LARGE", `a block is at most ${MAX_BLOCK_BYTES} bytes`);
		if (body.sha256 !== hash)
			throw new ApiError("HASH_MISMATCH", "the bytes do not hash to the block's name", [{ expected: hash, actual: body.sha256 }]);
		if (body.bytes.byteLength !== size) {
			throw new ApiError("INVALID_REQUEST", `the block list declared ${size} bytes for this block, not ${body.bytes.byteLength}`);
		}
		await putBlock(c.env.BLOBS, keyRing(c.env), body.bytes, hash);
		await runBatch(db.$client, [recordReceived(db, upload.id, [hash])]);
		return c.body(null, 204);
	},
);

uploadRoutes.openapi(
	createRoute({
		method: "post",
		path: "/uploads/{id}/block-list",
		tags,
		security: bearer,
		summary: "Append the next part of the block list (extension)",
		description:
			"For a session created with `more_blocks: true`: lists the next blocks from `offset` (the bytes listed so far, `listed_bytes`) and answers which of them to send, so a client can send blocks while it is still hashing the file. `more_blocks: false` completes the list (the sizes must then add up to the file's size); only then can the session be committed. Repeating the last append answers it again; another offset answers 409 UPLOAD_OFFSET_MISMATCH with the right one in details.",
		request: { params: UploadParam, body: jsonBody(AppendBlocksBody) },
		responses: {
			200: json(AppendBlocksResult, "Listed"),
			...errorResponses("INVALID_REQUEST", "UNAUTHENTICATED", "NOT_FOUND", "UPLOAD_OFFSET_MISMATCH"),
		},
	}),
	async (c) => {
		const caller = c.get("caller");
		const part = c.req.valid("json");
		const upload = await openSession(c.env, caller, c.req.valid("param").id);
		const problem = listEndProblem(part.offset, part.blocks, upload.size, part.more_blocks);
		if (problem !== null) throw new ApiError("INVALID_REQUEST", problem, [{ field: "blocks", message: problem }]);
		const db = shardOf(c.env, caller);
		const appended = unwrap(
			await appendBlockList(db, upload, {
				offset: part.offset,
				blocks: part.blocks,
				moreBlocks: part.more_blocks,
				contentHash: part.content_hash ?? null,
			}),
		);
		return c.json(
			{
				upload_id: upload.id,
				missing: await missingBlocks(db, caller.userId, upload.id, appended.firstIdx),
				expires_at: upload.expiresAt,
				...listing(appended.upload),
			},
			200,
		);
	},
);

/** Blocks one batch may name: 512 hashes make a 33 KB header, well inside the platform's 128 KB. */
const MAX_BATCH_BLOCKS = 512;

/** Parses Drive-Blocks: the batch's block names, comma-separated, in body order. */
function parseBlockList(header: string | undefined): string[] {
	const hashes = (header ?? "").split(",").map((h) => h.trim());
	if (hashes.length === 0 || hashes[0] === "" || !hashes.every(isSha256Hex))
		throw new ApiError("INVALID_REQUEST", "Drive-Blocks must list the blocks' SHA-256s (lowercase hex), comma-separated", [
			{ field: "Drive-Blocks" },
		]);
	if (hashes.length > MAX_BATCH_BLOCKS)
		throw new ApiError("INVALID_REQUEST", `a batch names at most ${MAX_BATCH_BLOCKS} blocks`, [{ field: "Drive-Blocks" }]);
	if (new Set(hashes).size !== hashes.length)
		throw new ApiError("INVALID_REQUEST", "Drive-Blocks names a block twice", [{ field: "Drive-Blocks" }]);
	return hashes;
}

uploadRoutes.openapi(
	createRoute({
		method: "put",
		path: "/uploads/{id}/blocks",
		tags,
		security: bearer,
		summary: "Send several blocks in one body (at most 100 MB); idempotent",
		description:
			"Extension to API.md. `Drive-Blocks` lists the blocks' SHA-256s, comma-separated (at most 512), in the order their bytes follow each other in the body; each block is as long as the block list declared it. Every block is verified as it streams and stored as soon as it is complete. If a block does not match its name the answer is 422 HASH_MISMATCH (details: expected, actual); if the body breaks, the blocks before that point are kept either way: GET the upload for what is still missing. One request per block costs a round trip and a D1 write per block, so clients send blocks this way.",
		request: {
			params: UploadParam,
			headers: z.object({ "drive-blocks": z.string().openapi({ example: "9f86d0…,60303a…" }) }),
			body: { content: binaryContent },
		},
		responses: {
			204: { description: "Every block stored" },
			...errorResponses("INVALID_REQUEST", "UNAUTHENTICATED", "NOT_FOUND", "PAYLOAD_TOO_LARGE", "HASH_MISMATCH"),
		},
	}),
	async (c) => {
		const caller = c.get("caller");
		const { id } = c.req.valid("param");
		const hashes = parseBlockList(c.req.header("Drive-Blocks"));
		const upload = await openSession(c.env, caller, id);
		const db = shardOf(c.env, caller);
		const sizes = await declaredBlockSizes(db, upload.id, hashes);
		const unknown = hashes.filter((h) => !sizes.has(h));
		if (unknown.length > 0)
			throw new ApiError(
				"NOT_FOUND",
				`${unknown.length} of these blocks are not part of the upload's block list`,
				unknown.map((hash) => ({ hash })),
			);
		const blocks = hashes.map((hash) => ({ hash, size: sizes.get(hash) ?? 0 }));
		const total = blocks.reduce((n, b) => n + b.size, 0);
		if (total > MAX_REQUEST_BYTES)
			throw new ApiError("PAYLOAD_TOO_LARGE", `a batch carries at most ${MAX_REQUEST_BYTES} bytes; these blocks add up to ${total}`);
		const declared = c.req.header("Content-Length");
		if (declared !== undefined && Number(declared) !== total)
			throw new ApiError("INVALID_REQUEST", `these blocks add up to ${total} bytes, not the ${declared} of Content-Length`, [
				{ field: "Content-Length" },
			]);
		unwrap(await outliveClient(c.executionCtx, receiveBlocks(db, c.env.BLOBS, keyRing(c.env), upload.id, blocks, c.req.raw.body)));
		return c.body(null, 204);
	},
);

uploadRoutes.openapi(
	createRoute({
		method: "get",
		path: "/uploads/{id}",
		tags,
		security: bearer,
		summary: "What the upload still needs, for resuming",
		request: { params: UploadParam },
		responses: { 200: json(UploadStatus, "Status"), ...errorResponses("UNAUTHENTICATED", "NOT_FOUND") },
	}),
	async (c) => {
		const caller = c.get("caller");
		const upload = await usableUpload(c.env, caller, c.req.valid("param").id, "session");
		if (upload.committedVersionId !== null) {
			const version = await findVersion(shardOf(c.env, caller), caller.userId, upload.committedVersionId);
			const committed = version ? { node_id: version.nodeId, version_id: version.id } : null;
			return c.json({ upload_id: upload.id, missing: [], expires_at: upload.expiresAt, committed, ...listing(upload) }, 200);
		}
		const missing = await missingBlocks(shardOf(c.env, caller), caller.userId, upload.id);
		return c.json({ upload_id: upload.id, missing, expires_at: upload.expiresAt, committed: null, ...listing(upload) }, 200);
	},
);

uploadRoutes.openapi(
	createRoute({
		method: "post",
		path: "/uploads/{id}/commit",
		tags,
		security: bearer,
		summary: "Commit the upload as a new file or version",
		description: "409 MISSING_BLOCKS lists, in `details`, the blocks still to send. Committing twice answers the same result.",
		request: { params: UploadParam },
		responses: {
			200: json(CommitResult, "A new version of an existing file"),
			201: json(CommitResult, "A new file"),
			...errorResponses("UNAUTHENTICATED", "NOT_FOUND", "NAME_TAKEN", "VERSION_CONFLICT", "MISSING_BLOCKS", "QUOTA_EXCEEDED"),
		},
	}),
	async (c) => {
		const caller = c.get("caller");
		const upload = await usableUpload(c.env, caller, c.req.valid("param").id, "session");
		const db = shardOf(c.env, caller);
		if (upload.moreBlocks && upload.committedVersionId === null)
			throw new ApiError("INVALID_REQUEST", "the block list is not complete: finish it with more_blocks: false, then commit", [
				{ listed_bytes: upload.offset },
			]);
		let contentHash = upload.contentHash;
		if (contentHash === null && upload.committedVersionId === null) {
			const missing = await missingBlocks(db, caller.userId, upload.id);
			if (missing.length > 0) throw new ApiError("MISSING_BLOCKS", `${missing.length} block(s) have not been uploaded`, missing);
			contentHash = await hashStoredUpload(db, c.env.BLOBS, keyRing(c.env), upload.id);
		}
		const committed = unwrap(
			await hubFor(c.env, caller.userId).commitUpload(caller, {
				uploadId: upload.id,
				contentHash: contentHash ?? "",
				quotaBytes: caller.quotaBytes,
			}),
		);
		const { created, ok: _ok, ...result } = committed;
		return c.json(result, created ? 201 : 200);
	},
);

uploadRoutes.openapi(
	createRoute({
		method: "delete",
		path: "/uploads/{id}",
		tags,
		security: bearer,
		summary: "Abandon an upload; blocks only it referenced are cleaned up",
		request: { params: UploadParam },
		responses: { 204: { description: "Abandoned" }, ...errorResponses("UNAUTHENTICATED", "NOT_FOUND") },
	}),
	async (c) => {
		const caller = c.get("caller");
		const upload = await usableUpload(c.env, caller, c.req.valid("param").id, "session");
		await cancelUpload(shardOf(c.env, caller), caller.userId, upload.id);
		return c.body(null, 204);
	},
);
