/** Public links (docs/api.md, "Public links"): the owner's routes and what a link's holder sees. */
import { z } from "@hono/zod-openapi";
import { Password } from "./auth";
import { NodeId, Timestamp } from "./common";
import { Node } from "./nodes";

export const LinkAccess = z.enum(["view", "upload", "view_upload"]).openapi({
	description: "view: list and download; upload: add files, and nothing else (no listing, no names, no ids); view_upload: both",
});
export type LinkAccess = z.infer<typeof LinkAccess>;

export const LinkId = z.string().min(1).max(64).openapi({ example: "lnk_01jd8x4k2m3n4p5q6r7s8t9v0w" });

/** 16 random bytes, base64url: 22 characters. */
export const LinkToken = z
	.string()
	.regex(/^[A-Za-z0-9_-]{22}$/)
	.openapi({ example: "q2Xb0c8sYd1Hk4Lm7Np9Rw" });

const ExpiresAt = z
	.string()
	.datetime({ offset: true, message: "must be an ISO-8601 date and time" })
	.openapi({ example: "2026-12-31T23:59:59Z" });
const MaxDownloads = z.number().int().min(1).max(1_000_000_000);

export const Link = z
	.object({
		id: LinkId,
		node_id: NodeId,
		access: LinkAccess,
		expires_at: Timestamp.nullable(),
		has_password: z.boolean(),
		download_count: z
			.number()
			.int()
			.openapi({ description: "Downloads that started at byte 0; Range continuations and HEAD are not counted" }),
		max_downloads: z.number().int().nullable(),
		created_by: z.string(),
		created_at: Timestamp,
		url: z
			.string()
			.optional()
			.openapi({ description: "Only in the answer that created the link: the token is stored as a hash and cannot be shown again" }),
		token: LinkToken.optional().openapi({ description: "Only in the answer that created the link" }),
	})
	.openapi("Link");
export type Link = z.infer<typeof Link>;

export const LinkPage = z.object({ items: z.array(Link), next_cursor: z.string().nullable() }).openapi("LinkPage");
export type LinkPage = z.infer<typeof LinkPage>;

export const CreateLinkBody = z
	.object({
		node_id: NodeId,
		access: LinkAccess.default("view"),
		expires_at: ExpiresAt.nullable().optional(),
		password: Password.nullable().optional(),
		max_downloads: MaxDownloads.nullable().optional(),
	})
	.strict()
	.openapi("CreateLinkBody");

export const UpdateLinkBody = z
	.object({
		access: LinkAccess.optional(),
		expires_at: ExpiresAt.nullable().optional().openapi({ description: "null: never expires" }),
		password: Password.nullable().optional().openapi({ description: "null removes it; any change ends every unlocked session" }),
		max_downloads: MaxDownloads.nullable().optional().openapi({ description: "null: unlimited" }),
	})
	.strict()
	.refine((b) => Object.values(b).some((v) => v !== undefined), "give access, expires_at, password or max_downloads")
	.openapi("UpdateLinkBody");

export const LinkListQuery = z.object({
	node_id: NodeId.optional(),
	limit: z.coerce.number().int().min(1).max(1000).default(100),
	cursor: z.string().max(512).optional(),
});

/** What GET /v1/l/:token shows; an `upload` link shows no root at all. */
export const PublicLink = z
	.object({
		link: z.object({ access: LinkAccess, expires_at: Timestamp.nullable(), requires_password: z.boolean() }),
		root: Node.nullable().openapi({
			description: "The link's target as its holder sees it (no parent_id); null for an upload link, which reveals no name and no id",
		}),
	})
	.openapi("PublicLink");
export type PublicLink = z.infer<typeof PublicLink>;

export const UnlockBody = z.object({ password: z.string().min(1).max(1024) }).openapi("UnlockLinkBody");

export const LinkSession = z
	.object({
		link_session: z.string().openapi({ description: "Send as `Authorization: Link <link_session>`; never in a URL" }),
		expires_in: z.number().int().openapi({ description: "Seconds until the session expires" }),
	})
	.openapi("LinkSession");

export const LinkUploadQuery = z.object({
	name: z.string().min(1).max(1024),
	parent_id: NodeId.optional().openapi({
		description: "view_upload links only: a folder inside the link's folder; default the link's folder",
	}),
});

export const LinkUploadResult = z
	.object({
		name: z.string().openapi({
			description:
				"upload links: the name as sent (the owner may see it numbered, if it was taken; the uploader is never told, so names cannot be probed); view_upload links: the name it was stored under",
		}),
		size: z.number().int(),
		id: NodeId.optional().openapi({ description: "view_upload links only" }),
	})
	.openapi("LinkUploadResult");
export type LinkUploadResult = z.infer<typeof LinkUploadResult>;
