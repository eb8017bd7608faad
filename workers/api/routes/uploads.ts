/** Upload sessions: client-chunked, deduplicated, resumable uploads (docs/api.md, "Upload sessions"). */
import { z } from "@hono/zod-openapi";
import { isSha256Hex } from "../../../src/shared/crypto";
import { MAX_BLOCK_BYTES } from "../../../src/shared/limits";
import { Sha256Hex } from "../../../src/shared/schemas/common";
import { CommitResult } from "../../../src/shared/schemas/nodes";
import { AppendBlocksBody, AppendBlocksResult, CreateUploadBody, listEndProblem, UploadStatus } from "../../../src/shared/schemas/uploads";
import { ApiError, unwrap } from "../errors";
import { binaryContent, errorResponses, json, jsonBody, newRouter, protectedRoute } from "../openapi";
import { keyRing } from "../services/block-store";
import { receiveBatch } from "../services/block-batch";
import { redactedCause } from "../../../src/shared/log";
import { outliveClient } from "../services/body";
import { shardFor } from "../services/hub";
import {
	appendBlockList,
	cancelUpload,
	checkUploadTarget,
	commitSession,
	createUpload,
	uploadLimits,
	openSession,
	receiveBlock,
	sessionStatus,
	usableUpload,
} from "../services/uploads";
import { uploadAccess } from "../services/member-uploads";

export const uploadRoutes = newRouter();

const tags = ["Upload sessions"];
const UploadParam = z.object({ id: z.string().min(1).max(64) });

uploadRoutes.openapi(
	protectedRoute({
		method: "post",
		path: "/uploads",
		tags,
		summary: "Start an upload: send the block list, get back only the blocks to send",
		description:
			"Blocks (any boundaries, at most 8 MiB each) are named by their SHA-256. `missing` lists only the blocks this user does not already have: dedup of bandwidth is per user, so nobody learns what others store. Sessions expire after 24 hours. " +
			"Sharing: an editor may name a mount or any folder shared with them as `parent_id`; the file and its bytes are the owner's (a full owner answers 507 with no figures), `missing` still counts only the editor's blocks, and once the editor is removed the session's requests answer 404. A viewer gets 403 read_only.",
		request: { body: jsonBody(CreateUploadBody) },
		responses: {
			201: json(UploadStatus, "Session created"),
			...errorResponses("INVALID_REQUEST", "UNAUTHENTICATED", "NOT_FOUND", "NAME_TAKEN", "PAYLOAD_TOO_LARGE", "QUOTA_EXCEEDED"),
		},
	}),
	async (c) => {
		const caller = c.get("caller");
		const body = c.req.valid("json");
		const maxFileBytes = Number(c.env.MAX_FILE_BYTES);
		const baseVersionId = body.base_version_id ?? null;
		const target = unwrap(
			await checkUploadTarget(c.env, caller, {
				parentId: body.parent_id,
				name: body.name,
				size: body.size,
				maxFileBytes,
				baseVersionId,
				onConflict: body.on_conflict,
				createOnly: body.create_only,
				blocks: body.blocks,
			}),
		);
		const db = shardFor(c.env, caller);
		const upload = unwrap(
			await createUpload(db, caller, {
				protocol: "session",
				parentId: target.access.nodeId,
				owner: target.owner,
				name: target.name,
				size: body.size,
				blocks: body.blocks,
				moreBlocks: body.more_blocks,
				baseVersionId,
				contentHash: body.content_hash ?? null,
				onConflict: body.on_conflict,
				createOnly: body.create_only,
				metadata: null,
				ttlHours: Number(c.env.UPLOAD_TTL_HOURS) || 24,
				maxFileBytes,
				limits: uploadLimits(c.env, caller),
			}),
		);
		return c.json(await sessionStatus(db, caller.userId, upload), 201);
	},
);

uploadRoutes.openapi(
	protectedRoute({
		method: "put",
		path: "/uploads/{id}/blocks/{hash}",
		tags,
		summary: "Send one block (at most 8 MiB); idempotent",
		description:
			"The SHA-256 is verified while the body streams; a mismatch answers 422 HASH_MISMATCH and stores nothing. A session into a share answers 404 once its editor is removed.",
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
		const upload = unwrap(await openSession(c.env, caller, id));
		unwrap(await receiveBlock(shardFor(c.env, caller), c.env.BLOBS, keyRing(c.env), upload, hash, c.req.raw.body, length));
		return c.body(null, 204);
	},
);

uploadRoutes.openapi(
	protectedRoute({
		method: "post",
		path: "/uploads/{id}/block-list",
		tags,
		summary: "Append the next part of the block list (extension)",
		description:
			"For a session created with `more_blocks: true`: lists the next blocks from `offset` (the bytes listed so far, `listed_bytes`) and answers which of them to send, so a client can send blocks while it is still hashing the file. `more_blocks: false` completes the list (the sizes must then add up to the file's size); only then can the session be committed. Repeating the last append answers it again; another offset answers 409 UPLOAD_OFFSET_MISMATCH with the right one in details.",
		request: { params: UploadParam, body: jsonBody(AppendBlocksBody) },
		responses: {
			200: json(AppendBlocksResult, "Listed"),
			...errorResponses("INVALID_REQUEST", "UNAUTHENTICATED", "NOT_FOUND", "UPLOAD_OFFSET_MISMATCH", "PAYLOAD_TOO_LARGE", "QUOTA_EXCEEDED"),
		},
	}),
	async (c) => {
		const caller = c.get("caller");
		const part = c.req.valid("json");
		const upload = unwrap(await openSession(c.env, caller, c.req.valid("param").id));
		const problem = listEndProblem(part.offset, part.blocks, upload.size, part.more_blocks);
		if (problem !== null) throw new ApiError("INVALID_REQUEST", problem, [{ field: "blocks", message: problem }]);
		const appended = unwrap(
			await appendBlockList(
				shardFor(c.env, caller),
				upload,
				{ offset: part.offset, blocks: part.blocks, moreBlocks: part.more_blocks, contentHash: part.content_hash ?? null },
				uploadLimits(c.env, caller),
			),
		);
		return c.json(
			{
				upload_id: upload.id,
				missing: appended.missing,
				expires_at: upload.expiresAt,
				listed_bytes: appended.upload.offset,
				more_blocks: appended.upload.moreBlocks,
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
	protectedRoute({
		method: "put",
		path: "/uploads/{id}/blocks",
		tags,
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
		const upload = unwrap(await openSession(c.env, caller, id));
		const declared = c.req.header("Content-Length");
		const received = receiveBatch(
			shardFor(c.env, caller),
			c.env.BLOBS,
			keyRing(c.env),
			upload,
			hashes,
			c.req.raw.body,
			declared === undefined ? null : Number(declared),
		);
		unwrap(await outliveClient(c.executionCtx, received));
		return c.body(null, 204);
	},
);

uploadRoutes.openapi(
	protectedRoute({
		method: "get",
		path: "/uploads/{id}",
		tags,
		summary: "What the upload still needs, for resuming",
		request: { params: UploadParam },
		responses: { 200: json(UploadStatus, "Status"), ...errorResponses("UNAUTHENTICATED", "NOT_FOUND") },
	}),
	async (c) => {
		const caller = c.get("caller");
		const upload = unwrap(await usableUpload(c.env, caller, c.req.valid("param").id, "session"));
		// A member's upload became a file in the owner's tree.
		const owner = upload.ownerId === null ? caller : unwrap(await uploadAccess(c.env, caller, upload)).scope;
		const committedIn = { db: shardFor(c.env, owner), userId: owner.userId };
		return c.json(await sessionStatus(shardFor(c.env, caller), caller.userId, upload, committedIn), 200);
	},
);

uploadRoutes.openapi(
	protectedRoute({
		method: "post",
		path: "/uploads/{id}/commit",
		tags,
		summary: "Commit the upload as a new file or version",
		description:
			"409 MISSING_BLOCKS lists, in `details`, the blocks still to send. Committing twice answers the same result. A session into a share commits through the owner's hub, which checks the editor's role in its queue: after a removal the commit answers 404 and writes nothing; the version's `author_id` is the editor. A declared `content_hash` is checked against the blocks: before the commit up to 64 MiB (422 HASH_MISMATCH, details: expected, actual), shortly after it for larger files, whose node then carries the hash of what was stored and whose download sends no `Repr-Digest` until the check is done.",
		request: { params: UploadParam },
		responses: {
			200: json(CommitResult, "A new version of an existing file"),
			201: json(CommitResult, "A new file"),
			...errorResponses(
				"UNAUTHENTICATED",
				"NOT_FOUND",
				"NAME_TAKEN",
				"VERSION_CONFLICT",
				"MISSING_BLOCKS",
				"HASH_MISMATCH",
				"QUOTA_EXCEEDED",
			),
		},
	}),
	async (c) => {
		const caller = c.get("caller");
		const upload = unwrap(await usableUpload(c.env, caller, c.req.valid("param").id, "session"));
		const defer = (work: () => Promise<unknown>): void =>
			c.executionCtx.waitUntil(
				work().catch((err: unknown) => console.error(JSON.stringify({ verify: upload.id, error: redactedCause(err) }))),
			);
		const { created, ...result } = unwrap(await commitSession(c.env, caller, keyRing(c.env), upload, defer));
		return c.json(result, created ? 201 : 200);
	},
);

uploadRoutes.openapi(
	protectedRoute({
		method: "delete",
		path: "/uploads/{id}",
		tags,
		summary: "Abandon an upload; blocks only it referenced are cleaned up",
		request: { params: UploadParam },
		responses: { 204: { description: "Abandoned" }, ...errorResponses("UNAUTHENTICATED", "NOT_FOUND") },
	}),
	async (c) => {
		const caller = c.get("caller");
		const upload = unwrap(await usableUpload(c.env, caller, c.req.valid("param").id, "session"));
		await cancelUpload(shardFor(c.env, caller), caller.userId, upload.id);
		return c.body(null, 204);
	},
);
