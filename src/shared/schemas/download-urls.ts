/** Short-lived download URLs (docs/api.md, "Download URLs"): what a signed-in client asks for, and what it gets. */
import { z } from "@hono/zod-openapi";
import { Timestamp, VersionId } from "./common";

export const Disposition = z.enum(["attachment", "inline"]).openapi({
	description: "attachment: the browser saves the file under its name; inline: it shows it (an image, a video, a PDF), sandboxed",
});
export type Disposition = z.infer<typeof Disposition>;

export const DownloadUrlBody = z
	.object({
		version_id: VersionId.optional().openapi({ description: "An earlier version of this file (owners and editors); default the head" }),
		disposition: Disposition.optional().openapi({ description: "Default attachment" }),
	})
	.strict()
	.openapi("DownloadUrlBody");
export type DownloadUrlBody = z.infer<typeof DownloadUrlBody>;

export const DownloadUrl = z
	.object({
		url: z.string().openapi({
			description: "A path on this API, `/v1/dl/<token>`: resolve it against the API's origin",
			example: "/v1/dl/eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJ…",
		}),
		expires_at: Timestamp.openapi({ description: "After this the URL answers 401 (reason `download_url_expired`): ask for a new one" }),
	})
	.openapi("DownloadUrl");
export type DownloadUrl = z.infer<typeof DownloadUrl>;

/** Any string: a token that is not one of ours answers 404, like a random id, never 400. */
export const DownloadTokenParam = z.object({ token: z.string().openapi({ description: "The token from `url`" }) });
