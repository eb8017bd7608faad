/** Delta downloads: a version as its block list, and one block of it (docs/api.md, "Delta downloads"). */
import { blocksFrom, versionHasBlock } from "../../../src/shared/db/tree";
import { BlockList, BlockListQuery, BlockParam, BlockQuery } from "../../../src/shared/schemas/delta";
import { IdParam } from "../../../src/shared/schemas/common";
import { ApiError, unwrap } from "../errors";
import { binaryContent, errorResponses, json, newRouter, protectedRoute } from "../openapi";
import { getBlock, keyRing } from "../services/block-store";
import { readableVersion } from "../services/egress";
import { touchRead } from "../services/tiering";

export const deltaRoutes = newRouter();

const tags = ["File content"];

/** Blocks are named by the SHA-256 of their bytes: a block's answer never changes. */
const IMMUTABLE = "private, max-age=31536000, immutable";

deltaRoutes.openapi(
	protectedRoute({
		method: "get",
		path: "/files/{id}/blocks",
		tags,
		summary: "List a version's blocks, for a delta download (extension)",
		description:
			"Extension: the version (the head unless `version_id`) as the list of its blocks, each named by the SHA-256 of its plaintext, in offset order. " +
			"A client that already holds some of these blocks (from an earlier version, or another file) fetches only the others with `GET /v1/files/{id}/blocks/{hash}` and puts the file together itself. " +
			"The list comes in pages of at most `limit` blocks: pass `next_offset` as `offset` until it is null. " +
			"Who may read it, and the 404s, are those of `GET /v1/files/{id}/content`: a file shared with you lists by its id or your mount's; a viewer gets the current version only (`version_id` of an earlier version answers 403 `read_only`; naming the head is allowed, so a download can pin the version it started on).",
		request: { params: IdParam, query: BlockListQuery },
		responses: {
			200: json(BlockList, "A page of the version's blocks"),
			...errorResponses("INVALID_REQUEST", "UNAUTHENTICATED", "FORBIDDEN", "NOT_FOUND"),
		},
	}),
	async (c) => {
		const caller = c.get("caller");
		const { id } = c.req.valid("param");
		const query = c.req.valid("query");
		const { version, db } = unwrap(await readableVersion(c.env, caller, id, query.version_id, { headById: true }));
		// One more than the page tells whether another page follows without a count.
		const rows = await blocksFrom(db, version.id, query.offset, query.limit + 1);
		const blocks = rows.slice(0, query.limit);
		const following = rows[query.limit];
		const body: BlockList = {
			node_id: id,
			version_id: version.id,
			size: version.size,
			content_hash: version.contentHash,
			blocks,
			next_offset: following ? following.offset : null,
		};
		return c.json(body, 200, { "Cache-Control": "private, no-cache" });
	},
);

deltaRoutes.openapi(
	protectedRoute({
		method: "get",
		path: "/files/{id}/blocks/{hash}",
		tags,
		summary: "Download one block of a version (extension)",
		description:
			"Extension: the plaintext bytes of the block named `hash`, when the version (the head unless `version_id`) holds it; any other hash answers 404. " +
			"A block is named by its content, so its answer never changes: `ETag` is the hash and it may be cached for good. " +
			"The bytes are verified against the hash before they are sent. Counts as a download for rate limits. Access as for `GET /v1/files/{id}/blocks`.",
		request: { params: BlockParam, query: BlockQuery },
		responses: {
			200: { description: "The block's bytes", content: binaryContent },
			304: { description: "Not modified (If-None-Match named the hash)" },
			...errorResponses("INVALID_REQUEST", "UNAUTHENTICATED", "FORBIDDEN", "NOT_FOUND", "INTERNAL"),
		},
	}),
	async (c) => {
		const caller = c.get("caller");
		const { id, hash } = c.req.valid("param");
		const { version, db } = unwrap(await readableVersion(c.env, caller, id, c.req.valid("query").version_id, { headById: true }));
		if (!(await versionHasBlock(db, version.id, hash))) throw new ApiError("NOT_FOUND", "the version has no block with this hash");
		const headers: Record<string, string> = {
			ETag: `"${hash}"`,
			"Cache-Control": IMMUTABLE,
			// Content is the user's, not ours: never let it script our origin.
			"X-Content-Type-Options": "nosniff",
			"Content-Security-Policy": "sandbox",
		};
		const ifNoneMatch = c.req.header("If-None-Match");
		if (ifNoneMatch !== undefined && ifNoneMatch.split(",").some((tag) => tag.trim().replace(/^W\//, "") === `"${hash}"`))
			return c.body(null, 304, headers);
		// A read keeps the version's blocks out of cold storage; a failed stamp costs a tier, never the download.
		await touchRead(db, version).catch((err: unknown) => console.error(JSON.stringify({ touchRead: version.id, error: String(err) })));
		// Decoded into a fresh buffer: never a SharedArrayBuffer.
		const bytes = (await getBlock(c.env.BLOBS, keyRing(c.env), hash)) as Uint8Array<ArrayBuffer>;
		return c.body(bytes, 200, { ...headers, "Content-Type": "application/octet-stream", "Content-Length": String(bytes.byteLength) });
	},
);
