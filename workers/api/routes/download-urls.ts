/** Short-lived download URLs, an extension (docs/api.md, "Download URLs"; docs/decisions/0026-web-app.md). */
import { createRoute } from "@hono/zod-openapi";
import { IdParam } from "../../../src/shared/schemas/common";
import { DownloadTokenParam, DownloadUrl, DownloadUrlBody } from "../../../src/shared/schemas/download-urls";
import { unwrap } from "../errors";
import { binaryContent, emptyJsonBody, errorResponses, json, newRouter, optionalJsonBody, protectedRoute } from "../openapi";
import { issueDownloadUrl, openDownloadUrl } from "../services/download-urls";
import { DOWNLOAD_URL_TTL_SECONDS } from "../services/tokens";
import { sendVersion } from "./content";

export const downloadUrlRoutes = newRouter();

const tags = ["File content"];
const EXTENSION = 'Extension of the v1 contract (docs/api.md, "Download URLs").';

downloadUrlRoutes.use("/files/:id/download-url", emptyJsonBody);

downloadUrlRoutes.openapi(
	protectedRoute({
		method: "post",
		path: "/files/{id}/download-url",
		tags,
		summary: "A short-lived URL that downloads a file without a bearer token (extension)",
		description:
			`${EXTENSION} For a browser, which cannot send a bearer token from \`<a download>\`, \`<img>\` or \`<video>\`. ` +
			`The URL serves the version that was the head when it was made (or \`version_id\`) for ${DOWNLOAD_URL_TTL_SECONDS} seconds, as often as asked (Range continuations, seeking). ` +
			"Who may ask is who may `GET /v1/files/{id}/content`: the owner, or a member of a share (a viewer, the head only: `version_id` answers 403 `read_only`); anyone else gets 404. A folder answers 400 `not_a_file`. The body may be left out.",
		request: { params: IdParam, body: optionalJsonBody(DownloadUrlBody) },
		responses: {
			200: json(DownloadUrl, "The URL, a path to resolve against this API's origin"),
			...errorResponses("INVALID_REQUEST", "UNAUTHENTICATED", "FORBIDDEN", "NOT_FOUND"),
		},
	}),
	async (c) => {
		const made = unwrap(await issueDownloadUrl(c.env, c.get("caller"), c.req.valid("param").id, c.req.valid("json")));
		return c.json(made, 200);
	},
);

downloadUrlRoutes.openapi(
	createRoute({
		method: "get",
		path: "/dl/{token}",
		tags,
		summary: "Download through a short-lived URL (extension; no bearer token)",
		description:
			`${EXTENSION} Answers like \`GET /v1/files/{id}/content\` (single Range, If-Range, If-None-Match, HEAD, ETag, \`Content-Security-Policy: sandbox\`, \`nosniff\`), ` +
			"with `Referrer-Policy: no-referrer` and `Cache-Control: private, no-store`, and `Content-Disposition` as the URL was asked for. " +
			"Each request checks again that the device that asked is signed in and may still read the file: a signed-out device answers 401 (reason `device_signed_out`), lost access 404. " +
			"Past its expiry the URL answers 401 UNAUTHENTICATED (reason `download_url_expired`): ask for a new one. A token that is not one of these URLs answers 404.",
		request: { params: DownloadTokenParam },
		responses: {
			200: { description: "The whole content", content: binaryContent },
			206: { description: "The requested range", content: binaryContent },
			304: { description: "Not modified (If-None-Match matched the version id)" },
			...errorResponses("UNAUTHENTICATED", "NOT_FOUND", "RANGE_NOT_SATISFIABLE"),
		},
	}),
	async (c) => {
		const { db, node, version, disposition } = unwrap(await openDownloadUrl(c.env, c.req.valid("param").token));
		return sendVersion(c, db, node, version, { disposition });
	},
);
