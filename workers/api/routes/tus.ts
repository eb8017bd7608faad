/**
 * tus 1.0 resumable uploads at /v1/tus (https://tus.io/protocols/resumable-upload):
 * core protocol plus creation, creation-with-upload, creation-defer-length,
 * expiration, checksum (sha1, sha256), termination and concatenation.
 * Uploads are bound to the user who created them: another user's HEAD,
 * PATCH or DELETE answers 404.
 */
import { createRoute, z } from "@hono/zod-openapi";
import type { Context, Hono } from "hono";
import { createMiddleware } from "hono/factory";
import type { UploadRow } from "../../../src/shared/db/schema";
import { ApiError, unwrap } from "../errors";
import type { AppEnv } from "../env";
import { requireAuth } from "../middleware/auth";
import { bearer, errorResponses, newRouter, protectedRoute } from "../openapi";
import { shardFor } from "../services/hub";
import {
	acceptPatch,
	checkRoom,
	commitTusUpload,
	concatenate,
	findTusUpload,
	isFinal,
	isPartial,
	MAX_CONCAT_PARTS,
	terminateUpload,
	type PatchChecksum,
} from "../services/tus";
import { checkUploadTarget, createUpload, uploadLimits } from "../services/uploads";

const TUS_VERSION = "1.0.0";
const EXTENSIONS = "creation,creation-with-upload,creation-defer-length,expiration,checksum,termination,concatenation";
const OFFSET_OCTET_STREAM = "application/offset+octet-stream";
const METHOD_OVERRIDE = "X-HTTP-Method-Override";

/** Headers browsers may send and read on tus requests (added to the CORS policy). */
export const TUS_REQUEST_HEADERS = [
	"Tus-Resumable",
	"Upload-Length",
	"Upload-Offset",
	"Upload-Metadata",
	"Upload-Checksum",
	"Upload-Defer-Length",
	"Upload-Concat",
	METHOD_OVERRIDE,
];
export const TUS_RESPONSE_HEADERS = [
	"Tus-Resumable",
	"Tus-Version",
	"Tus-Extension",
	"Tus-Max-Size",
	"Tus-Checksum-Algorithm",
	"Upload-Offset",
	"Upload-Length",
	"Upload-Defer-Length",
	"Upload-Concat",
	"Upload-Metadata",
	"Upload-Expires",
	"Location",
	"Drive-Node-Id",
];

/**
 * Honours `X-HTTP-Method-Override` (tus 1.0 §"X-HTTP-Method-Override": the
 * header, when present, MUST be taken as the request's method) by handing
 * the request back to `app` with that method. Hono routes by method before
 * any middleware runs, so this must come first, ahead of every other
 * middleware, which then runs once, for the re-dispatched request.
 */
export function tusMethodOverride(app: Pick<Hono<AppEnv>, "fetch">) {
	return createMiddleware<AppEnv>(async (c, next) => {
		const method = c.req.header(METHOD_OVERRIDE)?.trim().toUpperCase();
		if (!method) return next();
		const headers = new Headers(c.req.raw.headers);
		headers.delete(METHOD_OVERRIDE);
		if (method === "GET" || method === "HEAD") {
			headers.delete("Content-Type");
			headers.delete("Content-Length");
			return app.fetch(new Request(c.req.url, { method, headers }), c.env, c.executionCtx);
		}
		return app.fetch(new Request(c.req.raw, { method, headers }), c.env, c.executionCtx);
	});
}

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

/** Is this Content-Type application/offset+octet-stream (parameters and case aside)? */
function isOffsetOctetStream(contentType: string | undefined): boolean {
	return contentType?.split(";")[0]?.trim().toLowerCase() === OFFSET_OCTET_STREAM;
}

function unsupportedMediaType(): ApiError {
	return new ApiError("UNSUPPORTED_MEDIA_TYPE", `the body must be sent as Content-Type: ${OFFSET_OCTET_STREAM}`, [
		{ field: "Content-Type" },
	]);
}

/** The length a creation declares: Upload-Length, or Upload-Defer-Length: 1 (creation-defer-length). */
function parseCreationLength(c: Context<AppEnv>): { size: number; deferred: boolean } {
	const length = parseLength(c.req.header("Upload-Length"), "Upload-Length");
	const defer = c.req.header("Upload-Defer-Length");
	if (defer !== undefined) {
		if (defer.trim() !== "1") throw new ApiError("INVALID_REQUEST", "Upload-Defer-Length must be 1", [{ field: "Upload-Defer-Length" }]);
		if (length !== null)
			throw new ApiError("INVALID_REQUEST", "send Upload-Length or Upload-Defer-Length, not both", [{ field: "Upload-Defer-Length" }]);
		return { size: 0, deferred: true };
	}
	if (length === null) throw new ApiError("INVALID_REQUEST", "send Upload-Length, or Upload-Defer-Length: 1", [{ field: "Upload-Length" }]);
	return { size: length, deferred: false };
}

type Concat = { kind: "none" } | { kind: "partial" } | { kind: "final"; ids: string[]; header: string };

/** Parses `Upload-Concat: partial` or `final;<url> <url> …`, whose URLs (absolute or relative) name uploads of this endpoint. */
function parseConcat(header: string | undefined, requestUrl: string): Concat {
	if (header === undefined) return { kind: "none" };
	const value = header.trim();
	if (value === "partial") return { kind: "partial" };
	const invalid = (why: string) => new ApiError("INVALID_REQUEST", `Upload-Concat ${why}`, [{ field: "Upload-Concat" }]);
	if (!value.startsWith("final;")) throw invalid("must be `partial` or `final;<url> <url> …`");
	const urls = value.slice("final;".length).trim().split(/\s+/).filter(Boolean);
	if (urls.length === 0) throw invalid("names no partial uploads");
	if (urls.length > MAX_CONCAT_PARTS) throw invalid(`names more than ${MAX_CONCAT_PARTS} partial uploads`);
	const ids = urls.map((url) => {
		let path: string;
		try {
			path = new URL(url, requestUrl).pathname;
		} catch {
			throw invalid(`names ${url}, which is not a URL`);
		}
		const id = /^\/v1\/tus\/([^/]{1,64})$/.exec(path)?.[1];
		if (id === undefined) throw invalid(`names ${url}, which is not an upload of /v1/tus`);
		return decodeURIComponent(id);
	});
	return { kind: "final", ids, header: value };
}

/** Whether a creation request carries bytes: a positive Content-Length, or a body of unknown length. */
function hasBody(c: Context<AppEnv>): boolean {
	const declared = c.req.header("Content-Length");
	return declared !== undefined ? Number(declared.trim()) !== 0 : c.req.raw.body !== null;
}

/** `create_only` in Upload-Metadata: "true" (or a key without a value); it cannot go with an edit's base_version_id. */
function createOnlyOf(metadata: Map<string, string>): boolean {
	const value = metadata.get("create_only");
	if (value === undefined || value === "false") return false;
	if (value !== "" && value !== "true")
		throw new ApiError("INVALID_REQUEST", "create_only must be true or false", [{ field: "Upload-Metadata" }]);
	if (metadata.has("base_version_id"))
		throw new ApiError("INVALID_REQUEST", "create_only creates a new file; it cannot go with base_version_id", [
			{ field: "Upload-Metadata" },
		]);
	return true;
}

/** The target a creation's Upload-Metadata names; required for every upload but partials. */
function targetOf(metadata: Map<string, string>) {
	const name = metadata.get("filename") ?? metadata.get("name");
	const parentId = metadata.get("parent_id");
	if (!name || !parentId)
		throw new ApiError("INVALID_REQUEST", "Upload-Metadata must carry filename and parent_id", [{ field: "Upload-Metadata" }]);
	return {
		name,
		parentId,
		onConflict: metadata.get("on_conflict") === "fail" ? ("fail" as const) : ("copy" as const),
		baseVersionId: metadata.get("base_version_id") ?? null,
		createOnly: createOnlyOf(metadata),
	};
}

/**
 * Takes the request's body as the next bytes of `upload` (a PATCH, or a
 * creation-with-upload) and commits the file when it completes. Returns the
 * headers to answer with.
 */
async function takeBody(c: Context<AppEnv>, upload: UploadRow, uploadLength: number | null): Promise<Record<string, string>> {
	const accepted = unwrap(
		await acceptPatch(c.env, c.executionCtx, c.get("caller"), upload, {
			body: c.req.raw.body,
			length: parseLength(c.req.header("Content-Length"), "Content-Length"),
			checksum: parseChecksum(c.req.header("Upload-Checksum")),
			uploadLength,
		}),
	);
	const headers: Record<string, string> = {
		"Upload-Offset": String(accepted.upload.offset),
		"Upload-Expires": new Date(upload.expiresAt).toUTCString(),
	};
	if (accepted.nodeId !== null) headers["Drive-Node-Id"] = accepted.nodeId;
	return headers;
}

function locationOf(c: Context<AppEnv>, upload: UploadRow): Record<string, string> {
	return {
		Location: new URL(`/v1/tus/${upload.id}`, c.req.url).toString(),
		"Upload-Expires": new Date(upload.expiresAt).toUTCString(),
	};
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
		summary: "Create a tus upload (creation, creation-with-upload, creation-defer-length, concatenation)",
		description: [
			"Upload-Metadata carries `filename` and `parent_id` (base64), optionally `base_version_id` and `on_conflict`. Answers 201 with Location and Upload-Expires.",
			"Sharing: an editor may name a mount or any folder shared with them as `parent_id`: the file is the owner's and counts toward the owner's storage (507 with no figures when full); once the editor is removed, the upload's PATCH, HEAD and DELETE answer 404 and nothing is committed. A viewer gets 403 read_only.",
			"Send Upload-Length, or `Upload-Defer-Length: 1` and the length later, in a PATCH's Upload-Length.",
			"With a body (Content-Type application/offset+octet-stream; any other type is 415) the request is also the first PATCH.",
			"`Upload-Concat: partial` creates a part of a parallel upload (no metadata needed; never a file on its own). `Upload-Concat: final;<url> <url> …` (no Upload-Length, no body) concatenates complete partials into the file, without copying their bytes, and commits it: the answer carries Drive-Node-Id.",
			"`X-HTTP-Method-Override` on a POST to /v1/tus or /v1/tus/{id} makes it the request it names (PATCH, HEAD, DELETE).",
		].join(" "),
		request: {
			headers: TusHeaders.extend({
				"upload-length": z.string().regex(/^\d+$/).optional().openapi({ example: "10485760" }),
				"upload-defer-length": z.string().optional().openapi({ example: "1" }),
				"upload-metadata": z.string().optional().openapi({ example: "filename cmVwb3J0LnBkZg==,parent_id bm9kXzAx…" }),
				"upload-concat": z.string().optional().openapi({ example: "final;/v1/tus/upl_a /v1/tus/upl_b" }),
			}),
		},
		responses: {
			201: { description: "Created; Location names the upload" },
			...errorResponses(
				"INVALID_REQUEST",
				"UNAUTHENTICATED",
				"FORBIDDEN",
				"NOT_FOUND",
				"NAME_TAKEN",
				"VERSION_CONFLICT",
				"PRECONDITION_FAILED",
				"PAYLOAD_TOO_LARGE",
				"UNSUPPORTED_MEDIA_TYPE",
				"QUOTA_EXCEEDED",
			),
		},
	}),
	async (c) => {
		const caller = c.get("caller");
		const concat = parseConcat(c.req.header("Upload-Concat"), c.req.url);
		const withBody = hasBody(c);
		if (withBody && !isOffsetOctetStream(c.req.header("Content-Type"))) throw unsupportedMediaType();
		const metadataHeader = c.req.header("Upload-Metadata") ?? null;
		const metadata = parseMetadata(metadataHeader ?? undefined);
		const maxFileBytes = Number(c.env.MAX_FILE_BYTES);
		const ttlHours = Number(c.env.UPLOAD_TTL_HOURS) || 24;

		if (concat.kind === "final") {
			if (withBody) throw new ApiError("FORBIDDEN", "a final upload is made of its partial uploads; it takes no bytes of its own");
			if (c.req.header("Upload-Length") !== undefined || c.req.header("Upload-Defer-Length") !== undefined)
				throw new ApiError("INVALID_REQUEST", "a final upload's length is the sum of its partial uploads': send no Upload-Length", [
					{ field: "Upload-Length" },
				]);
			const target = targetOf(metadata);
			const final = unwrap(
				await concatenate(
					c.env,
					caller,
					concat.ids,
					{ ...target, metadata: metadataHeader, ttlHours, limits: uploadLimits(c.env, caller) },
					concat.header,
				),
			);
			const committed = await commitTusUpload(c.env, caller, final);
			// Like any complete upload, the final keeps trying its commit on HEAD: say where it is.
			if (!committed.ok) throw new ApiError(committed.error.code, committed.error.message, committed.error.details, locationOf(c, final));
			return c.body(null, 201, { ...locationOf(c, final), "Upload-Offset": String(final.offset), "Drive-Node-Id": committed.value });
		}

		const { size, deferred } = parseCreationLength(c);
		let target: ReturnType<typeof targetOf>;
		let owner: { userId: string; since: number } | null = null;
		if (concat.kind === "partial") {
			// A part has no target of its own: only the file limit and the quota apply.
			unwrap(await checkRoom(c.env, caller, size));
			target = { name: "", parentId: "", onConflict: "copy", baseVersionId: null, createOnly: false };
		} else {
			target = targetOf(metadata);
			const checked = unwrap(await checkUploadTarget(c.env, caller, { ...target, size: deferred ? null : size, maxFileBytes, blocks: [] }));
			target = { ...target, name: checked.name, parentId: checked.access.nodeId };
			owner = checked.owner;
		}
		const upload = unwrap(
			await createUpload(shardFor(c.env, caller), caller, {
				...target,
				owner,
				protocol: "tus",
				size,
				lengthDeferred: deferred,
				concat: concat.kind === "partial" ? "partial" : null,
				blocks: [],
				moreBlocks: false,
				contentHash: null,
				metadata: metadataHeader,
				ttlHours,
				maxFileBytes,
				limits: uploadLimits(c.env, caller),
			}),
		);
		const headers = locationOf(c, upload);
		if (withBody || (!deferred && size === 0)) Object.assign(headers, await takeBody(c, upload, null));
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
		description: [
			"Upload-Offset, Upload-Length (or `Upload-Defer-Length: 1` while the length is not known), Upload-Metadata, Upload-Expires and, for parts of a concatenation, Upload-Concat.",
			"Once every byte is in, the upload is a file: the answer carries Drive-Node-Id. If committing it failed (the quota, a name taken since, a parent gone, a conflict with on_conflict=fail), HEAD tries the commit again and answers that failure's status and code until it succeeds, so a client that resumes by HEAD never mistakes an upload that is not a file for a finished one.",
			"A terminated upload answers 404.",
		].join(" "),
		request: { params: TusParam, headers: TusHeaders },
		responses: {
			200: { description: "Upload-Offset, Upload-Length, Upload-Metadata, Upload-Expires" },
			...errorResponses("UNAUTHENTICATED", "NOT_FOUND", "NAME_TAKEN", "VERSION_CONFLICT", "QUOTA_EXCEEDED"),
		},
	}),
);
tusRoutes.get("/tus/:id", requireAuth, async (c) => {
	const caller = c.get("caller");
	const upload = unwrap(await findTusUpload(c.env, caller, c.req.param("id")));
	const headers: Record<string, string> = {
		"Upload-Offset": String(upload.offset),
		"Upload-Expires": new Date(upload.expiresAt).toUTCString(),
		"Cache-Control": "no-store",
	};
	if (upload.lengthDeferred) headers["Upload-Defer-Length"] = "1";
	else headers["Upload-Length"] = String(upload.size);
	if (upload.metadata) headers["Upload-Metadata"] = upload.metadata;
	if (upload.concat !== null) headers["Upload-Concat"] = upload.concat;
	// Complete means committed: offset == length is what tells a tus client
	// it is done, so the file must exist, or this answer says why not (H5).
	if (!isPartial(upload) && !upload.lengthDeferred && upload.offset === upload.size)
		headers["Drive-Node-Id"] = unwrap(await commitTusUpload(c.env, caller, upload));
	return c.body(null, 200, headers);
});

tusRoutes.openapi(
	protectedRoute({
		method: "patch",
		path: "/tus/{id}",
		tags,
		summary: "Append bytes at Upload-Offset (at most 100 MB per PATCH)",
		description: [
			"Content-Type must be application/offset+octet-stream (else 415).",
			"Upload-Checksum (`sha1` or `sha256`, base64) makes the PATCH all-or-nothing: a mismatch answers 460 and keeps nothing. Without it, if the body breaks, every block completed before the break is kept and HEAD's offset says so.",
			"Upload-Length declares a deferred length (creation-defer-length); bytes sent before it still count against the file limit and the quota.",
			"The last PATCH commits the file; the answer then carries Drive-Node-Id. A final upload of a concatenation cannot be PATCHed (403).",
		].join(" "),
		request: {
			params: TusParam,
			headers: TusHeaders.extend({
				"upload-offset": z.string().regex(/^\d+$/),
				"content-type": z.string().optional().openapi({ example: OFFSET_OCTET_STREAM }),
				"upload-checksum": z.string().optional(),
				"upload-length": z.string().regex(/^\d+$/).optional(),
			}),
		},
		responses: {
			204: { description: "Accepted; Upload-Offset is the new offset" },
			...errorResponses(
				"INVALID_REQUEST",
				"UNAUTHENTICATED",
				"FORBIDDEN",
				"NOT_FOUND",
				"UPLOAD_OFFSET_MISMATCH",
				"PAYLOAD_TOO_LARGE",
				"UNSUPPORTED_MEDIA_TYPE",
				"CHECKSUM_MISMATCH",
				"NAME_TAKEN",
				"QUOTA_EXCEEDED",
			),
		},
	}),
	async (c) => {
		if (!isOffsetOctetStream(c.req.header("Content-Type"))) throw unsupportedMediaType();
		const caller = c.get("caller");
		const { id } = c.req.valid("param");
		const upload = unwrap(await findTusUpload(c.env, caller, id));
		if (isFinal(upload)) throw new ApiError("FORBIDDEN", "a final upload is made of its partial uploads; it cannot be PATCHed");
		const offset = Number(c.req.valid("header")["upload-offset"]);
		if (offset !== upload.offset) {
			throw new ApiError("UPLOAD_OFFSET_MISMATCH", `the upload is at offset ${upload.offset}, not ${offset}; HEAD it and resume`, [
				{ offset: upload.offset },
			]);
		}
		return c.body(null, 204, await takeBody(c, upload, parseLength(c.req.header("Upload-Length"), "Upload-Length")));
	},
);

tusRoutes.openapi(
	protectedRoute({
		method: "delete",
		path: "/tus/{id}",
		tags,
		summary: "Terminate an upload (termination extension)",
		description:
			"Terminates the upload, complete or not; afterwards its HEAD, PATCH and DELETE answer 404. The file a committed upload became stays.",
		request: { params: TusParam, headers: TusHeaders },
		responses: { 204: { description: "Terminated" }, ...errorResponses("UNAUTHENTICATED", "NOT_FOUND") },
	}),
	async (c) => {
		const caller = c.get("caller");
		const upload = unwrap(await findTusUpload(c.env, caller, c.req.valid("param").id));
		await terminateUpload(shardFor(c.env, caller), caller.userId, upload.id);
		return c.body(null, 204);
	},
);
