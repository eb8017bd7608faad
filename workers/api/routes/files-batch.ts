/** Many small files committed in one request (docs/api.md, "Batches of small files"). */
import { BatchResult, MAX_BATCH_BYTES, MAX_BATCH_FILE_BYTES, MAX_BATCH_FILES } from "../../../src/shared/schemas/files-batch";
import { ApiError, unwrap } from "../errors";
import { errorResponses, json, newRouter, protectedRoute } from "../openapi";
import { outliveClient } from "../services/body";
import { commitBatch, readBatch } from "../services/files-batch";

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
