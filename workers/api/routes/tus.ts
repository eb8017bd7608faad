/**
 * tus 1.0 resumable uploads at /v1/tus (https://tus.io/protocols/resumable-upload):
 * core protocol plus creation, creation-with-upload, expiration, checksum
 * (sha1, sha256) and termination. Uploads are bound to the user who created
 * them: another user's HEAD or PATCH answers 404.
 */
import { createRoute, z } from "@hono/zod-openapi";
import type { Context } from "hono";
import { createMiddleware } from "hono/factory";
import type { UploadRow } from "../../../src/shared/db/schema";
import { ApiError, unwrap } from "../errors";
import type { AppEnv } from "../env";
import { requireAuth } from "../middleware/auth";
import { bearer, errorResponses, newRouter, protectedRoute } from "../openapi";
import { shardFor } from "../services/hub";
import { acceptPatch, type PatchChecksum } from "../services/tus";
import { cancelUpload, checkUploadTarget, committedNodeId, createUpload, uploadLimits, usableUpload } from "../services/uploads";

const TUS_VERSION = "1.0.0";
const EXTENSIONS = "creation,creation-with-upload,expiration,checksum,termination";
const OFFSET_OCTET_STREAM = "application/offset+octet-stream";

/** Headers browsers may send and read on tus requests (added to the CORS policy). */
export const TUS_REQUEST_HEADERS = [
	"Tus-Resumable",
	"Upload-Length",
	"Upload-Offset",
	"Upload-Metadata",
	"Upload-Checksum",
	"Upload-Defer-Length",
	"X-HTTP-Method-Override",
];
export const TUS_RESPONSE_HEADERS = [
	"Tus-Resumable",
	"Tus-Version",
	"Tus-Extension",
	"Tus-Max-Size",
	"Tus-Checksum-Algorithm",
	"Upload-Offset",
	"Upload-Length",
	"Upload-Metadata",
	"Upload-Expires",
	"Location",
	"Drive-Node-Id",
];

/**
 * Runs before CORS: the discovery headers on OPTIONS (including browsers'
 * preflights, which the CORS middleware answers itself) and Tus-Resumable on
 * every answer.
 */
export const tusDiscovery = createMiddleware<AppEnv>(async (c, next) => {
	c.header("Tus-Resumable", TUS_VERSION);
	if (c.req.method === "OPTIONS") {
		c.header("Tus-Version", TUS_VERSION);
		c.header("Tus-Extension", EXTENSIONS);
		c.header("Tus-Max-Size", c.env.MAX_FILE_BYTES);
		c.header("Tus-Checksum-Algorithm", "sha1,sha256");
	}
	await next();
});

/** Runs after CORS, so its 412 is readable by browsers: refuses a protocol version we do not speak. */
const tusVersion = createMiddleware<AppEnv>(async (c, next) => {
	if (c.req.method !== "OPTIONS" && c.req.header("Tus-Resumable") !== TUS_VERSION) {
		c.header("Tus-Version", TUS_VERSION);
		throw new ApiError("PRECONDITION_FAILED", `send Tus-Resumable: ${TUS_VERSION}`, [{ field: "Tus-Resumable" }]);
	}
	await next();
});

export const tusRoutes = newRouter();
tusRoutes.use("/tus", tusVersion);
tusRoutes.use("/tus/*", tusVersion);

const tags = ["tus"];
const TusParam = z.object({ id: z.string().min(1).max(64) });
const TusHeaders = z.object({ "tus-resumable": z.literal(TUS_VERSION).openapi({ example: TUS_VERSION }) });

/** Parses `Upload-Metadata: key base64,key2 base64` (tus 1.0 §creation). */
function parseMetadata(header: string | undefined): Map<string, string> {
	const out = new Map<string, string>();
	if (!header) return out;
	for (const pair of header.split(",")) {
		const [key, value] = pair.trim().split(" ");
		if (!key) continue;
		try {
			const bytes = Uint8Array.from(atob(value ?? ""), (ch) => ch.charCodeAt(0));
			out.set(key, new TextDecoder("utf-8", { fatal: true, ignoreBOM: false }).decode(bytes));
		} catch {
			throw new ApiError("INVALID_REQUEST", `Upload-Metadata value of "${key}" is not base64 UTF-8`, [{ field: "Upload-Metadata" }]);
		}
	}
	return out;
}

/** Parses `Upload-Checksum: <algorithm> <base64>`. */
function parseChecksum(header: string | undefined): PatchChecksum | null {
	if (header === undefined) return null;
	const [name, expected] = header.trim().split(/\s+/);
	const algorithm = name === "sha1" || name === "sha256" ? name : null;
	if (algorithm === null || !expected)
		throw new ApiError("INVALID_REQUEST", "Upload-Checksum must be `sha1 <base64>` or `sha256 <base64>`", [{ field: "Upload-Checksum" }]);
	return { algorithm, expected };
}

function parseLength(value: string | undefined, field: string): number | null {
	if (value === undefined) return null;
	if (!/^\d{1,16}$/.test(value)) throw new ApiError("INVALID_REQUEST", `${field} must be a non-negative integer`, [{ field }]);
	return Number(value);
}

/**
 * Takes the request's body as the next bytes of `upload` (a PATCH, or a
 * creation-with-upload) and commits the file when it completes. Returns the
 * headers to answer with.
 */
async function takeBody(c: Context<AppEnv>, upload: UploadRow): Promise<Record<string, string>> {
	const accepted = unwrap(
		await acceptPatch(c.env, c.executionCtx, c.get("caller"), upload, {
			body: c.req.raw.body,
			length: parseLength(c.req.header("Content-Length"), "Content-Length"),
			checksum: parseChecksum(c.req.header("Upload-Checksum")),
		}),
	);
	const headers: Record<string, string> = {
		"Upload-Offset": String(accepted.offset),
		"Upload-Expires": new Date(upload.expiresAt).toUTCString(),
	};
	if (accepted.nodeId !== null) headers["Drive-Node-Id"] = accepted.nodeId;
	return headers;
}

tusRoutes.openapi(
	createRoute({
		method: "options",
		path: "/tus",
		tags,
		summary: "tus discovery: version, extensions, maximum size, checksum algorithms",
		responses: { 204: { description: "Tus-Version, Tus-Extension, Tus-Max-Size, Tus-Checksum-Algorithm" } },
	}),
	(c) => c.body(null, 204),
);

tusRoutes.openapi(
	protectedRoute({
		method: "post",
		path: "/tus",
		tags,
		summary: "Create a tus upload (creation, creation-with-upload)",
		description:
			"Upload-Metadata carries `filename` and `parent_id` (base64), optionally `base_version_id` and `on_conflict`. Answers 201 with Location and Upload-Expires; with a body (Content-Type application/offset+octet-stream) it is also the first PATCH.",
		request: {
			headers: TusHeaders.extend({
				"upload-length": z.string().regex(/^\d+$/).openapi({ example: "10485760" }),
				"upload-metadata": z.string().openapi({ example: "filename cmVwb3J0LnBkZg==,parent_id bm9kXzAx…" }),
			}),
		},
		responses: {
			201: { description: "Created; Location names the upload" },
			...errorResponses(
				"INVALID_REQUEST",
				"UNAUTHENTICATED",
				"NOT_FOUND",
				"NAME_TAKEN",
				"PRECONDITION_FAILED",
				"PAYLOAD_TOO_LARGE",
				"QUOTA_EXCEEDED",
			),
		},
	}),
	async (c) => {
		const caller = c.get("caller");
		if (c.req.header("Upload-Defer-Length") !== undefined)
			throw new ApiError("INVALID_REQUEST", "Upload-Defer-Length is not supported; send Upload-Length", [{ field: "Upload-Defer-Length" }]);
		const size = parseLength(c.req.header("Upload-Length"), "Upload-Length") ?? 0;
		const metadata = parseMetadata(c.req.header("Upload-Metadata"));
		const name = metadata.get("filename") ?? metadata.get("name");
		const parentId = metadata.get("parent_id");
		if (!name || !parentId)
			throw new ApiError("INVALID_REQUEST", "Upload-Metadata must carry filename and parent_id", [{ field: "Upload-Metadata" }]);
		const onConflict = metadata.get("on_conflict") === "fail" ? "fail" : "copy";
		const baseVersionId = metadata.get("base_version_id") ?? null;
		const maxFileBytes = Number(c.env.MAX_FILE_BYTES);
		const target = unwrap(
			await checkUploadTarget(c.env, caller, { parentId, name, size, maxFileBytes, baseVersionId, onConflict, blocks: [] }),
		);
		const upload = unwrap(
			await createUpload(shardFor(c.env, caller), caller, {
				protocol: "tus",
				parentId,
				name: target.name,
				size,
				blocks: [],
				moreBlocks: false,
				baseVersionId,
				contentHash: null,
				onConflict,
				metadata: c.req.header("Upload-Metadata") ?? null,
				ttlHours: Number(c.env.UPLOAD_TTL_HOURS) || 24,
				maxFileBytes,
				limits: uploadLimits(c.env, caller),
			}),
		);
		const headers: Record<string, string> = {
			Location: new URL(`/v1/tus/${upload.id}`, c.req.url).toString(),
			"Upload-Expires": new Date(upload.expiresAt).toUTCString(),
		};
		const withBody = c.req.header("Content-Type")?.startsWith(OFFSET_OCTET_STREAM) && c.req.raw.body !== null;
		if (withBody || size === 0) Object.assign(headers, await takeBody(c, upload));
		return c.body(null, 201, headers);
	},
);

// Hono answers HEAD with the GET handler (and drops the body), so the route
// is registered as GET; the OpenAPI document describes it as HEAD.
tusRoutes.openAPIRegistry.registerPath(
	createRoute({
		method: "head",
		path: "/tus/{id}",
		tags,
		security: bearer,
		summary: "The upload's offset (resume from here); Drive-Node-Id once committed",
		request: { params: TusParam, headers: TusHeaders },
		responses: {
			200: { description: "Upload-Offset, Upload-Length, Upload-Metadata, Upload-Expires" },
			...errorResponses("UNAUTHENTICATED", "NOT_FOUND"),
		},
	}),
);
tusRoutes.get("/tus/:id", requireAuth, async (c) => {
	const caller = c.get("caller");
	const upload = unwrap(await usableUpload(c.env, caller, c.req.param("id"), "tus"));
	const headers: Record<string, string> = {
		"Upload-Offset": String(upload.offset),
		"Upload-Length": String(upload.size),
		"Upload-Expires": new Date(upload.expiresAt).toUTCString(),
		"Cache-Control": "no-store",
	};
	if (upload.metadata) headers["Upload-Metadata"] = upload.metadata;
	const nodeId = await committedNodeId(shardFor(c.env, caller), caller.userId, upload);
	if (nodeId !== null) headers["Drive-Node-Id"] = nodeId;
	return c.body(null, 200, headers);
});

tusRoutes.openapi(
	protectedRoute({
		method: "patch",
		path: "/tus/{id}",
		tags,
		summary: "Append bytes at Upload-Offset (at most 100 MB per PATCH)",
		description:
			"Upload-Checksum (`sha1` or `sha256`, base64) makes the PATCH all-or-nothing: a mismatch answers 460 and keeps nothing. Without it, if the body breaks, every block completed before the break is kept and HEAD's offset says so. The last PATCH commits the file; the answer then carries Drive-Node-Id.",
		request: {
			params: TusParam,
			headers: TusHeaders.extend({
				"upload-offset": z.string().regex(/^\d+$/),
				"content-type": z.literal(OFFSET_OCTET_STREAM),
				"upload-checksum": z.string().optional(),
			}),
		},
		responses: {
			204: { description: "Accepted; Upload-Offset is the new offset" },
			...errorResponses(
				"INVALID_REQUEST",
				"UNAUTHENTICATED",
				"NOT_FOUND",
				"UPLOAD_OFFSET_MISMATCH",
				"PAYLOAD_TOO_LARGE",
				"CHECKSUM_MISMATCH",
				"NAME_TAKEN",
				"QUOTA_EXCEEDED",
			),
		},
	}),
	async (c) => {
		const caller = c.get("caller");
		const { id } = c.req.valid("param");
		const upload = unwrap(await usableUpload(c.env, caller, id, "tus"));
		const offset = Number(c.req.valid("header")["upload-offset"]);
		if (offset !== upload.offset) {
			throw new ApiError("UPLOAD_OFFSET_MISMATCH", `the upload is at offset ${upload.offset}, not ${offset}; HEAD it and resume`, [
				{ offset: upload.offset },
			]);
		}
		return c.body(null, 204, await takeBody(c, upload));
	},
);

tusRoutes.openapi(
	protectedRoute({
		method: "delete",
		path: "/tus/{id}",
		tags,
		summary: "Terminate an upload (termination extension)",
		request: { params: TusParam, headers: TusHeaders },
		responses: { 204: { description: "Terminated" }, ...errorResponses("UNAUTHENTICATED", "NOT_FOUND") },
	}),
	async (c) => {
		const caller = c.get("caller");
		const upload = unwrap(await usableUpload(c.env, caller, c.req.valid("param").id, "tus"));
		await cancelUpload(shardFor(c.env, caller), caller.userId, upload.id);
		return c.body(null, 204);
	},
);
