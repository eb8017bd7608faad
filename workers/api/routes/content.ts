/** File content: streamed upload by PUT and streamed download by GET (docs/api.md, "File content"). */
import { z } from "@hono/zod-openapi";
import type { Context } from "hono";
import { fromHex } from "../../../src/shared/crypto";
import type { NodeRow, VersionRow } from "../../../src/shared/db/schema";
import type { ShardDb } from "../../../src/shared/db/shards";
import { MAX_REQUEST_BYTES } from "../../../src/shared/limits";
import { contentDisposition, contentTypeFor } from "../../../src/shared/mime";
import { IdParam } from "../../../src/shared/schemas/common";
import { CommitResult, ContentQuery } from "../../../src/shared/schemas/nodes";
import { fail, type Result } from "../../../src/shared/errors";
import type { Actor, CommitOutcome } from "../../notify/contract";
import type { AppEnv, Caller } from "../env";
import { ApiError, unwrap } from "../errors";
import { binaryContent, errorResponses, json, newRouter, protectedRoute } from "../openapi";
import { outliveClient } from "../services/body";
import { parseRange, readableVersion, streamVersion } from "../services/egress";
import { touchRead } from "../services/tiering";
import { shardFor } from "../services/hub";
import { asSeen, memberQuota, ownAccess, ownThenShared, type Access } from "../services/access";
import { findNode } from "../../../src/shared/db/tree";
import { ingestAndCommit } from "../services/ingest";
import { precheckCommit, type IntendedCommit } from "../services/precheck";

export const contentRoutes = newRouter();

const tags = ["File content"];

/**
 * Reads `If-Match: "ver_…"` (quotes and W/ tolerated); null for none or `*`.
 * The header may list several tags (RFC 9110 §13.1.1), but a commit edits
 * exactly one version: a list is refused rather than read as one odd id (audit L12).
 */
function parseIfMatch(header: string | undefined): string | null {
	if (header === undefined) return null;
	const tags = header.split(",").map((tag) => tag.trim());
	if (tags.length > 1)
		throw new ApiError("INVALID_REQUEST", "If-Match must name the one version this upload edits", [{ field: "If-Match" }]);
	const value = (tags[0] ?? "").replace(/^W\//, "").replace(/^"(.*)"$/, "$1");
	if (value === "" || value === "*") return null;
	if (value.length > 64) throw new ApiError("INVALID_REQUEST", "If-Match must be a version id", [{ field: "If-Match" }]);
	return value;
}

/**
 * Reads `If-None-Match: *`, the create-only precondition of a new-file upload
 * (RFC 9110 §13.1.2): true when present. A list of tags would ask "unless the
 * file's head is one of these", which a commit by folder and name does not
 * offer; it is refused rather than ignored. It cannot go with If-Match.
 */
function parseIfNoneMatch(header: string | undefined, ifMatch: string | undefined): boolean {
	if (header === undefined) return false;
	if (header.trim() !== "*")
		throw new ApiError("INVALID_REQUEST", "If-None-Match on an upload must be *: create a new file only", [{ field: "If-None-Match" }]);
	if (ifMatch !== undefined)
		throw new ApiError("INVALID_REQUEST", "If-None-Match: * creates a new file; it cannot go with If-Match", [{ field: "If-None-Match" }]);
	return true;
}

/** What an upload of content can answer besides success, whichever way it names the file. */
const UPLOAD_ERRORS = errorResponses(
	"INVALID_REQUEST",
	"UNAUTHENTICATED",
	"FORBIDDEN",
	"NOT_FOUND",
	"NAME_TAKEN",
	"VERSION_CONFLICT",
	"PAYLOAD_TOO_LARGE",
	"QUOTA_EXCEEDED",
	"BLOCKS_RECLAIMED",
	"UNAVAILABLE",
);

/** The body's declared length, when it is one the pre-check can count on (receiveContent refuses one over the limit). */
function declaredSize(c: Context<AppEnv>): number | null {
	const declared = c.req.header("Content-Length");
	return declared === undefined || !(Number(declared) <= MAX_REQUEST_BYTES) ? null : Number(declared);
}

/** A commit's answer, its node as the caller sees it: 201 for a new file or copy, 200 for a new version. */
function committed(c: Context<AppEnv>, access: Access, outcome: Result<CommitOutcome>) {
	const { created, ...result } = unwrap(memberQuota(access, outcome));
	return c.json({ ...result, node: asSeen(access, result.node) }, created ? 201 : 200, { ETag: `"${result.version.id}"` });
}

contentRoutes.openapi(
	protectedRoute({
		method: "put",
		path: "/files/content",
		tags,
		summary: "Upload a file (at most 100 MB) as a new file or a new version",
		description:
			"The body streams: it is chunked, hashed, encrypted and stored as it arrives. A new name answers 201; an existing file gets a new version and 200. " +
			"With `If-Match: <version_id>` a stale base becomes a conflicted copy (or 409 VERSION_CONFLICT with on_conflict=fail). Larger files go through upload sessions or tus. " +
			"Extension: `If-None-Match: *` creates a new file only: if a file lives at the name when the upload is committed, it gets no version from this upload; the upload becomes a conflicted copy beside it (201, `conflict.reason` stale_base), or 409 VERSION_CONFLICT with on_conflict=fail (a folder at the name answers 409 NAME_TAKEN as always). " +
			"A body without Content-Length is cut off with 413 PAYLOAD_TOO_LARGE as soon as it passes 100 MB, and with 507 QUOTA_EXCEEDED as soon as it passes what the quota leaves; one that ends before its Content-Length answers 400. " +
			"503 BLOCKS_RECLAIMED (with Retry-After) means the storage collector deleted blocks this request stored while it ran: nothing was committed; send the same request again. " +
			"Extension, sharing: `parent_id` may be a folder shared with you as editor, or your mount of it; the file is the owner's and counts toward the owner's storage (507 without figures when it is full); a viewer gets 403.",
		request: {
			query: ContentQuery,
			headers: z.object({
				"if-match": z.string().optional().openapi({ description: "The version id this upload edits" }),
				"if-none-match": z
					.literal("*")
					.optional()
					.openapi({ description: "Create a new file only: a file at the name gets no version (extension)" }),
			}),
			body: { content: binaryContent },
		},
		responses: {
			200: json(CommitResult, "A new version of an existing file"),
			201: json(CommitResult, "A new file"),
			...UPLOAD_ERRORS,
		},
	}),
	async (c) => {
		const caller = c.get("caller");
		const query = c.req.valid("query");
		const baseVersionId = parseIfMatch(c.req.header("If-Match"));
		const createOnly = parseIfNoneMatch(c.req.header("If-None-Match"), c.req.header("If-Match"));
		// Into the caller's folder, or into a folder shared with them as editor (the owner's hub checks again).
		const intended = (parentId: string) => ({ parentId, name: query.name, baseVersionId, onConflict: query.on_conflict, createOnly });
		const size = declaredSize(c);
		let target = ownAccess(caller, query.parent_id);
		const checked = unwrap(
			await ownThenShared(c.env, caller, query.parent_id, "write", async (access) => {
				const found = await precheckCommit(c.env, access.scope, { ...intended(access.nodeId), size }, access.by ? caller : undefined);
				if (found.ok) target = access;
				return memberQuota(access, found);
			}),
		);
		const actor = { deviceId: caller.deviceId, deviceName: caller.deviceName, ...(target.by ? { userId: target.by } : {}) };
		return committed(c, target, await receiveContent(c, target.scope, intended(target.nodeId), { actor, checked }));
	},
);

/**
 * Stores a raw request body as a file of `owner` and commits it through
 * their hub: shared by PUT content and public link uploads. Everything that
 * can be refused is refused before a byte is read, so a refused upload
 * writes nothing; what is refused later (a body past a limit, the commit)
 * queues what it stored for the collector. BLOCKS_RECLAIMED is thrown with
 * Retry-After; other refusals are returned.
 */
export async function receiveContent(
	c: Context<AppEnv>,
	owner: Pick<Caller, "userId" | "shard" | "quotaBytes">,
	intended: Omit<IntendedCommit, "size">,
	extra: {
		actor: Actor;
		linkId?: string;
		stillAllowed?: () => Promise<Result<unknown>>;
		/** The precheck's answer, when the caller ran it already (to find the tree). */
		checked?: { name: string; room: number; blocksSince: number };
		/** An edit of this file by id (PUT /v1/files/{id}/content). */
		fileId?: string;
	},
): Promise<Result<CommitOutcome>> {
	const declared = c.req.header("Content-Length");
	const declaredBytes = declared === undefined ? null : Number(declared);
	if (declaredBytes !== null && !(declaredBytes <= MAX_REQUEST_BYTES)) {
		throw new ApiError(
			"PAYLOAD_TOO_LARGE",
			`a request body is at most ${MAX_REQUEST_BYTES} bytes; send large files through upload sessions or tus`,
		);
	}
	const checked = extra.checked
		? { ok: true as const, value: extra.checked }
		: await precheckCommit(c.env, owner, { ...intended, size: declaredBytes });
	if (!checked.ok) return checked;
	const { stillAllowed, checked: _checked, ...attribution } = extra;
	const commit = { ...intended, ...attribution, name: checked.value.name, quotaBytes: owner.quotaBytes };
	const limits = { maxBytes: MAX_REQUEST_BYTES, quotaRoom: checked.value.room, blocksSince: checked.value.blocksSince, declaredBytes };
	// Kept running if the client goes away, so that a failure still records the blocks it stored.
	const outcome = await outliveClient(c.executionCtx, ingestAndCommit(c.env, owner, c.req.raw.body, commit, limits, stillAllowed));
	if (!outcome.ok && outcome.error.code === "BLOCKS_RECLAIMED") {
		throw new ApiError(outcome.error.code, outcome.error.message, outcome.error.details, { "Retry-After": "1" });
	}
	return outcome;
}

contentRoutes.openapi(
	protectedRoute({
		method: "put",
		path: "/files/{id}/content",
		tags,
		summary: "Upload a new version of a file, named by its id (extension)",
		description:
			"Like `PUT /v1/files/content` with the file's folder and name, but the file is named by its id, so it also works for a file someone shared with you as editor (a shared file's folder is not shared) and through your mount of it. Answers 200 with the new version. With `If-Match` of an older version, a stale edit becomes a conflicted copy beside the file (201), or 409 VERSION_CONFLICT with on_conflict=fail; for a member editing a shared file, a copy would land outside the share, so a stale edit answers 409. A viewer gets 403; anyone else 404.",
		request: {
			params: IdParam,
			query: z.object({ on_conflict: z.enum(["copy", "fail"]).default("copy") }),
			headers: z.object({ "if-match": z.string().optional().openapi({ description: "The version id this upload edits" }) }),
			body: { content: binaryContent },
		},
		responses: {
			200: json(CommitResult, "A new version of the file"),
			201: json(CommitResult, "A conflicted copy (the edit was stale)"),
			...UPLOAD_ERRORS,
		},
	}),
	async (c) => {
		const caller = c.get("caller");
		const baseVersionId = parseIfMatch(c.req.header("If-Match"));
		const onConflict = c.req.valid("query").on_conflict;
		const size = declaredSize(c);
		let target: { access: Access; file: NodeRow } | null = null;
		const checked = unwrap(
			await ownThenShared(c.env, caller, c.req.valid("param").id, "write", async (access) => {
				const file = await findNode(shardFor(c.env, access.scope), access.scope.userId, access.nodeId);
				if (!file || file.type !== "file" || file.trashedAt !== null || file.parentId === null || file.mountShareId !== null)
					return fail("NOT_FOUND", "file not found");
				const intended = { parentId: file.parentId, name: file.name, baseVersionId, onConflict, size };
				const found = await precheckCommit(c.env, access.scope, intended, access.by ? caller : undefined);
				if (found.ok) target = { access, file };
				return memberQuota(access, found);
			}),
		);
		const into = target as { access: Access; file: NodeRow } | null;
		if (!into) throw new ApiError("NOT_FOUND", "file not found");
		const { access, file } = into;
		const actor = { deviceId: caller.deviceId, deviceName: caller.deviceName, ...(access.by ? { userId: access.by } : {}) };
		const intended = { parentId: file.parentId ?? "", name: file.name, baseVersionId, onConflict };
		return committed(c, access, await receiveContent(c, access.scope, intended, { actor, checked, fileId: file.id }));
	},
);

contentRoutes.openapi(
	protectedRoute({
		method: "get",
		path: "/files/{id}/content",
		tags,
		summary: "Download a file's content (streams; single Range; ETag is the version id)",
		description:
			"Extension, sharing: a file shared with you downloads by its id or, for a shared file, your mount's id; a viewer gets the current version only (`version_id` answers 403 `read_only`). " +
			"Extension, storage failures: block storage failing before the first byte answers 503 `UNAVAILABLE` with `Retry-After`; after it, the body breaks off before its Content-Length (never wrong bytes): resume with `Range` and `If-Range` (docs/api.md, Long downloads and storage failures).",
		request: {
			params: IdParam,
			query: z.object({
				version_id: z.string().max(64).optional().openapi({ description: "An earlier version of this file; default the head" }),
				disposition: z.enum(["attachment", "inline"]).default("attachment"),
			}),
			headers: z.object({
				range: z.string().optional().openapi({ example: "bytes=0-1023" }),
				"if-none-match": z.string().optional(),
				"if-range": z.string().optional(),
			}),
		},
		responses: {
			200: {
				description: "The whole content",
				content: binaryContent,
			},
			206: {
				description: "The requested range",
				content: binaryContent,
			},
			304: { description: "Not modified (If-None-Match matched the version id)" },
			...errorResponses("INVALID_REQUEST", "UNAUTHENTICATED", "NOT_FOUND", "RANGE_NOT_SATISFIABLE", "INTERNAL", "UNAVAILABLE"),
		},
	}),
	async (c) => {
		const caller = c.get("caller");
		const query = c.req.valid("query");
		const { node, version, db } = unwrap(await readableVersion(c.env, caller, c.req.valid("param").id, query.version_id));
		return sendVersion(c, db, node, version, { disposition: query.disposition });
	},
);

/** Fetch-Metadata destinations that would execute or apply the bytes in our origin. */
const SCRIPT_DESTINATIONS = new Set(["script", "style", "worker", "sharedworker", "serviceworker", "audioworklet", "paintworklet", "xslt"]);

/**
 * The Content-Type a version is served with: scripts and stylesheets go out
 * as text/plain, which `nosniff` keeps from being run or applied even if a
 * page of ours were tricked into loading one (the name still says .js).
 */
function servedType(name: string): string {
	const type = contentTypeFor(name);
	return /^text\/(?:javascript|css)\b/.test(type) ? "text/plain; charset=utf-8" : type;
}

/**
 * Answers a GET or HEAD of a version's content: ETag, If-None-Match, a single
 * Range with If-Range, and the bytes streamed at their exact length. Shared
 * by the owner's download and public links. `beforeFullRead` runs (and may
 * throw to refuse) only for a GET that sends bytes from byte 0: what a public
 * link counts as a download, so Range continuations and HEAD never count.
 */
export async function sendVersion(
	c: Context<AppEnv>,
	db: ShardDb,
	node: NodeRow,
	version: VersionRow,
	options: { disposition: "attachment" | "inline"; beforeFullRead?: () => Promise<void> },
): Promise<Response> {
	// A user's file loaded as a script, style or worker of our origin would run
	// with the app's rights (script-src 'self'); nothing of ours loads it so.
	if (SCRIPT_DESTINATIONS.has(c.req.header("Sec-Fetch-Dest") ?? ""))
		throw new ApiError("FORBIDDEN", "file content is not served as a script, style or worker", [{ reason: "not_a_subresource" }]);
	const etag = `"${version.id}"`;
	const headers: Record<string, string> = {
		ETag: etag,
		"Accept-Ranges": "bytes",
		"Cache-Control": "private, no-cache",
		"Last-Modified": new Date(version.createdAt).toUTCString(),
		"Content-Type": servedType(node.name),
		"Content-Disposition": contentDisposition(node.name, options.disposition),
		// Content is the user's, not ours: never let it script our origin.
		"X-Content-Type-Options": "nosniff",
		"Content-Security-Policy": "sandbox",
	};
	// A declared hash not checked yet is the client's claim, not ours to assert (services/verify.ts).
	if (version.hashVerified) headers["Repr-Digest"] = `sha-256=:${btoa(String.fromCharCode(...fromHex(version.contentHash)))}:`;
	const ifNoneMatch = c.req.header("If-None-Match");
	if (ifNoneMatch !== undefined && etagMatches(ifNoneMatch, version.id))
		return c.body(null, 304, { ETag: etag, "Cache-Control": headers["Cache-Control"] ?? "" });

	const ifRange = c.req.header("If-Range");
	// If-Range takes one validator compared strongly (RFC 9110 §13.1.5): a
	// weak tag, a list, "*" or a date never matches, so the whole file is sent.
	const rangeHeader = ifRange === undefined || ifRange.trim() === etag ? c.req.header("Range") : undefined;
	const range = parseRange(rangeHeader, version.size);
	if (range === "unsatisfiable") {
		throw new ApiError("RANGE_NOT_SATISFIABLE", `the file has ${version.size} bytes`, [{ size: version.size }], {
			"Content-Range": `bytes */${version.size}`,
		});
	}
	const span = range ?? { start: 0, end: version.size - 1 };
	const length = version.size === 0 ? 0 : span.end - span.start + 1;
	headers["Content-Length"] = String(length);
	if (range) headers["Content-Range"] = `bytes ${span.start}-${span.end}/${version.size}`;
	const status = range ? 206 : 200;
	if (c.req.method === "HEAD") return c.body(null, status, headers);
	if (span.start === 0 && options.beforeFullRead) await options.beforeFullRead();
	if (length === 0) return c.body(null, status, headers);
	// A read keeps the version's blocks out of cold storage; a failed stamp costs a tier, never the download.
	await touchRead(db, version).catch((err: unknown) => console.error(JSON.stringify({ touchRead: version.id, error: String(err) })));
	const body = await streamVersion(c.env, db, version.id, span);
	// A plain stream would go out chunked; a FixedLengthStream keeps
	// Content-Length, so clients can show progress and detect truncation.
	return c.body(body.pipeThrough(new FixedLengthStream(length)), status, headers);
}

function etagMatches(header: string, versionId: string): boolean {
	if (header.trim() === "*") return true;
	return header.split(",").some(
		(tag) =>
			tag
				.trim()
				.replace(/^W\//, "")
				.replace(/^"(.*)"$/, "$1") === versionId,
	);
}
