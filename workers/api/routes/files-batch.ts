/** Many small files committed, or downloaded, in one request (docs/api.md, "Batches of small files"). */
import {
	BATCH_CONTENT_TYPE,
	BatchContentRequest,
	BatchResult,
	MAX_BATCH_BYTES,
	MAX_BATCH_FILE_BYTES,
	MAX_BATCH_FILES,
} from "../../../src/shared/schemas/files-batch";
import { ApiError, unwrap } from "../errors";
import { errorResponses, json, jsonBody, newRouter, protectedRoute } from "../openapi";
import { outliveClient } from "../services/body";
import { commitBatch, readBatch } from "../services/files-batch";
import { batchDownloadStream, planBatchDownload } from "../services/files-batch-content";

export const filesBatchRoutes = newRouter();

filesBatchRoutes.openapi(
	protectedRoute({
		method: "post",
		path: "/files/batch",
		tags: ["File content"],
		summary: `Upload up to ${MAX_BATCH_FILES} small files in one request (extension)`,
		description:
			`Extension. \`multipart/form-data\`: first a part named \`manifest\` holding JSON \`{items: [...]}\`, then one file part per item, in the same order. ` +
			"An item is a new file (`parent_id` and `name`, optionally `create_only`) or a new version of a file (`file_id`, optionally `if_match`), with its `size` and `sha256`, and `on_conflict` (`copy` or `fail`). " +
			`At most ${MAX_BATCH_FILES} items, ${MAX_BATCH_FILE_BYTES} bytes each, ${MAX_BATCH_BYTES} in all: a request over a limit (413), with a bad manifest (400), a part whose size differs from its item's (400) or that does not hash to its \`sha256\` (422 HASH_MISMATCH) changes nothing. ` +
			"Each item is then committed as `PUT /v1/files/content` would, in manifest order, each seeing the items before it (two new files at one name with create_only: the second is a conflicted copy or fails); one item refused does not stop the others. " +
			"`results` answers each item in order: `{status: created|updated|conflict, node, version, conflict}` or `{error: {code, message, details?}}`. " +
			"A batch reaches only your own folders and files: an item into a shared folder or mount answers NOT_FOUND (upload it on its own), and a batch whose items all answer NOT_FOUND is one 404. The items of one request that do not fit the quota or node limit together are all refused (QUOTA_EXCEEDED).",
		request: {
			body: {
				// A plain schema, not zod: the route reads the parts itself, in order, before anything is stored (services/files-batch.ts).
				content: {
					"multipart/form-data": {
						schema: {
							type: "object",
							required: ["manifest"],
							properties: {
								manifest: {
									type: "string",
									description:
										"JSON `{items: [{parent_id?, name?, file_id?, if_match?, create_only?, on_conflict?, size, sha256}]}`: a new file names parent_id and name, a new version file_id",
								},
								file: { type: "array", items: { type: "string", format: "binary" }, description: "One file part per item, in order" },
							},
						},
					},
				},
				required: true,
			},
		},
		responses: {
			200: json(BatchResult, "One answer per item, in manifest order"),
			...errorResponses(
				"INVALID_REQUEST",
				"UNAUTHENTICATED",
				"NOT_FOUND",
				"PAYLOAD_TOO_LARGE",
				"UNSUPPORTED_MEDIA_TYPE",
				"HASH_MISMATCH",
				"RATE_LIMITED",
				"BLOCKS_RECLAIMED",
			),
		},
	}),
	async (c) => {
		const files = unwrap(await readBatch(c.req.raw));
		// Kept running if the client goes away, so that what was stored is either committed or queued for the collector.
		const results = unwrap(await outliveClient(c.executionCtx, commitBatch(c.env, c.get("caller"), files)));
		// A batch that reaches nothing of the caller's is one 404, as for POST /v1/folders/batch.
		const first = results[0];
		if (first && "error" in first && results.every((r) => "error" in r && r.error.code === "NOT_FOUND"))
			throw new ApiError("NOT_FOUND", first.error.message);
		return c.json({ results }, 200);
	},
);

filesBatchRoutes.openapi(
	protectedRoute({
		method: "post",
		path: "/files/batch/content",
		tags: ["File content"],
		summary: `Download up to ${MAX_BATCH_FILES} small files in one request (extension)`,
		description:
			"Extension. JSON `{items: [{file_id, version_id}]}`, 1 to " +
			`${MAX_BATCH_FILES} items, each a version of a file of your own tree. ` +
			`The answer (200, \`${BATCH_CONTENT_TYPE}\`) streams one frame per item, in order: a line of JSON ending in \`\\n\`, ` +
			"`{index, file_id, version_id, size, sha256}` followed by exactly `size` bytes of the version, or `{index, error: {code, status, message, details?}}` with no bytes. " +
			"An item in a shared folder or mount, of another user, or of an unknown file or version answers NOT_FOUND (download it on its own with `GET /v1/files/{id}/content`); a folder answers NOT_FOUND. " +
			`A version over ${MAX_BATCH_FILE_BYTES} bytes answers 400 INVALID_REQUEST with \`details: [{reason: "too_large"}]\` (download it on its own). ` +
			`The items sent add up to at most ${MAX_BATCH_BYTES} bytes: the first item past that, and every item after it, answers 413 PAYLOAD_TOO_LARGE with \`details: [{reason: "batch_full"}]\` (ask for them again in another request). ` +
			"A block that cannot be read makes its item's frame an INTERNAL error. A body that is not valid answers 400 before anything is read; a batch whose items all answer NOT_FOUND is one 404. " +
			"`sha256` is the version's content hash: check the bytes against it. Counts as a download for rate limits.",
		request: { body: jsonBody(BatchContentRequest) },
		responses: {
			200: {
				description: "One frame per item, in order",
				content: { [BATCH_CONTENT_TYPE]: { schema: { type: "string", format: "binary" } } },
			},
			...errorResponses("INVALID_REQUEST", "UNAUTHENTICATED", "NOT_FOUND", "RATE_LIMITED"),
		},
	}),
	async (c) => {
		const { items } = c.req.valid("json");
		const planned = await planBatchDownload(c.env, c.get("caller"), items);
		// A batch that reaches nothing of the caller's is one 404, as for the upload batch.
		const first = planned[0];
		if (first && "error" in first && planned.every((p) => "error" in p && p.error.code === "NOT_FOUND"))
			throw new ApiError("NOT_FOUND", first.error.message);
		return c.body(batchDownloadStream(c.env, items, planned), 200, {
			"Content-Type": BATCH_CONTENT_TYPE,
			"Cache-Control": "private, no-store",
			// Content is the user's, not ours: never let it script our origin.
			"X-Content-Type-Options": "nosniff",
			"Content-Security-Policy": "sandbox",
		});
	},
);
