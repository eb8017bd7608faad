/** Public links: the owner's routes (/v1/links) and what a token opens (/v1/l/:token), an extension (docs/api.md, "Public links"). */
import { createRoute, z } from "@hono/zod-openapi";
import type { Context } from "hono";
import { invalidName } from "../../../src/shared/commit/failures";
import { checkName } from "../../../src/shared/names";
import { PageQuery } from "../../../src/shared/schemas/common";
import {
	CreateLinkBody,
	Link,
	LinkListQuery,
	LinkPage,
	LinkSession,
	LinkUploadQuery,
	LinkUploadResult,
	PublicLink,
	UnlockBody,
	UpdateLinkBody,
} from "../../../src/shared/schemas/links";
import { NodePage } from "../../../src/shared/schemas/nodes";
import type { Result } from "../../../src/shared/errors";
import type { AppEnv } from "../env";
import { ApiError, unwrap } from "../errors";
import { binaryContent, errorResponses, json, jsonBody, newRouter, protectedRoute } from "../openapi";
import { openDirectory } from "../services/directory";
import { findDownload } from "../services/egress";
import {
	canView,
	checkSession,
	countDownload,
	createLink,
	holderEvent,
	linkNode,
	linkNodeOf,
	linkRoot,
	listLinks,
	managedLink,
	nodeInLink,
	openLink,
	passwordMatches,
	recordActivity,
	revokeLink,
	toLink,
	updateLink,
	type OpenLink,
} from "../services/links";
import { attemptSucceeded, clientAddress, countAttempt, linkUnlockKeys } from "../services/throttle";
import { LINK_SESSION_TTL_SECONDS, signLinkSession, verifyLinkSession } from "../services/tokens";
import { childrenPage } from "../services/tree";
import { receiveContent, sendVersion } from "./content";

export const linkRoutes = newRouter();

const tags = ["Public links"];
const EXTENSION = 'Extension of the v1 contract (docs/api.md, "Public links").';

// ---- the owner's routes ---------------------------------------------------------

const LinkIdParam = z.object({ id: z.string().min(1).max(64) });

linkRoutes.openapi(
	protectedRoute({
		method: "post",
		path: "/links",
		tags,
		summary: "Create a public link to a file or folder (extension)",
		description: `${EXTENSION} The answer is the only time the link's \`url\` and \`token\` are shown: only the token's SHA-256 is stored. \`upload\` and \`view_upload\` links need a folder. A node that is not the caller's, or is in the trash, answers 404.`,
		request: { body: jsonBody(CreateLinkBody) },
		responses: {
			201: json(Link, "The new link, with its url and token"),
			...errorResponses("INVALID_REQUEST", "UNAUTHENTICATED", "NOT_FOUND"),
		},
	}),
	async (c) => {
		const origin = new URL(c.req.url).origin;
		const link = unwrap(await createLink(c.env, openDirectory(c.env.DIRECTORY), c.get("caller"), c.req.valid("json"), origin));
		return c.json(link, 201);
	},
);

linkRoutes.openapi(
	protectedRoute({
		method: "get",
		path: "/links",
		tags,
		summary: "The caller's live links, newest first (extension)",
		description: `${EXTENSION} With \`node_id\`, the links on that node; without, every link the caller owns. Revoked links are not listed. Tokens are never shown again.`,
		request: { query: LinkListQuery },
		responses: { 200: json(LinkPage, "One page"), ...errorResponses("INVALID_REQUEST", "UNAUTHENTICATED", "NOT_FOUND") },
	}),
	async (c) => c.json(unwrap(await listLinks(c.env, openDirectory(c.env.DIRECTORY), c.get("caller"), c.req.valid("query"))), 200),
);

linkRoutes.openapi(
	protectedRoute({
		method: "get",
		path: "/links/{id}",
		tags,
		summary: "One of the caller's links (extension)",
		description: `${EXTENSION} Another user's link, a revoked one and a random id all answer the same 404.`,
		request: { params: LinkIdParam },
		responses: { 200: json(Link, "The link"), ...errorResponses("UNAUTHENTICATED", "NOT_FOUND") },
	}),
	async (c) => {
		const found = unwrap(await managedLink(c.env, openDirectory(c.env.DIRECTORY), c.get("caller"), c.req.valid("param").id));
		return c.json(toLink(found.row), 200);
	},
);

linkRoutes.openapi(
	protectedRoute({
		method: "patch",
		path: "/links/{id}",
		tags,
		summary: "Change a link's access, expiry, password or download limit (extension)",
		description: `${EXTENSION} \`null\` removes an expiry, a password or a limit. Any password change (set, replaced, removed) ends every unlocked link session.`,
		request: { params: LinkIdParam, body: jsonBody(UpdateLinkBody) },
		responses: { 200: json(Link, "The link as changed"), ...errorResponses("INVALID_REQUEST", "UNAUTHENTICATED", "NOT_FOUND") },
	}),
	async (c) => {
		const db = openDirectory(c.env.DIRECTORY);
		return c.json(unwrap(await updateLink(c.env, db, c.get("caller"), c.req.valid("param").id, c.req.valid("json"))), 200);
	},
);

linkRoutes.openapi(
	protectedRoute({
		method: "delete",
		path: "/links/{id}",
		tags,
		summary: "Revoke a link (extension)",
		description: `${EXTENSION} Its token answers 404 from then on, like one that never existed. A download already under way is not cut.`,
		request: { params: LinkIdParam },
		responses: { 204: { description: "Revoked" }, ...errorResponses("UNAUTHENTICATED", "NOT_FOUND") },
	}),
	async (c) => {
		unwrap(await revokeLink(c.env, openDirectory(c.env.DIRECTORY), c.get("caller"), c.req.valid("param").id));
		return c.body(null, 204);
	},
);

// ---- what a token opens (no bearer token) ---------------------------------------

const TokenParam = z.object({
	token: z.string().min(1).max(64).openapi({ description: "The link's token (22 characters)", example: "q2Xb0c8sYd1Hk4Lm7Np9Rw" }),
});
const LinkSessionHeader = z.object({
	authorization: z.string().optional().openapi({ description: "`Link <link_session>`, for a link with a password" }),
});
const STATES =
	"An unknown or revoked token answers 404, an expired link 410 LINK_EXPIRED, a link with a password and no valid `Authorization: Link <link_session>` 401 PASSWORD_REQUIRED. Every answer carries `Referrer-Policy: no-referrer` and `Cache-Control: private, no-store`.";

/** The link a token opens, once its holder may use it: live, unexpired, and unlocked if it has a password. */
async function usableLink(c: Context<AppEnv>, token: string): Promise<OpenLink> {
	const open = await linkInUse(c, token);
	if (!open.ok) {
		const challenge = open.error.code === "PASSWORD_REQUIRED" ? { "WWW-Authenticate": 'Link realm="drive"' } : undefined;
		throw new ApiError(open.error.code, open.error.message, open.error.details, challenge);
	}
	return open.value;
}

/** {@link usableLink} as a Result, for checking again later in the same request. */
async function linkInUse(c: Context<AppEnv>, token: string): Promise<Result<OpenLink>> {
	const open = await openLink(c.env, openDirectory(c.env.DIRECTORY), token);
	if (!open.ok) return open;
	const match = /^Link\s+(\S+)$/i.exec(c.req.header("Authorization") ?? "");
	const session = match?.[1] ? await verifyLinkSession(c.env, match[1]) : null;
	const unlocked = checkSession(open.value.row, session);
	return unlocked.ok ? open : unlocked;
}

linkRoutes.openapi(
	createRoute({
		method: "get",
		path: "/l/{token}",
		tags,
		summary: "What a public link shows (extension; no bearer token)",
		description: `${EXTENSION} ${STATES} \`root\` is the target (its parent_id null): a moved or renamed target keeps its link. An \`upload\` link shows no root: it reveals no name and no id. A target in the trash answers 404.`,
		request: { params: TokenParam, headers: LinkSessionHeader },
		responses: {
			200: json(PublicLink, "The link"),
			...errorResponses("PASSWORD_REQUIRED", "NOT_FOUND", "LINK_EXPIRED"),
		},
	}),
	async (c) => {
		const open = await usableLink(c, c.req.valid("param").token);
		const root = unwrap(await linkRoot(open));
		const { row } = open;
		const link = { access: row.access, expires_at: row.expiresAt, requires_password: row.passwordHash !== null };
		return c.json({ link, root: row.access === "upload" ? null : linkNodeOf(root, row.nodeId) }, 200);
	},
);

linkRoutes.openapi(
	createRoute({
		method: "post",
		path: "/l/{token}/unlock",
		tags,
		summary: "Trade a link's password for a short-lived link session (extension; no bearer token)",
		description: `${EXTENSION} Send the session as \`Authorization: Link <link_session>\`, never in a URL; it lasts an hour, or until the owner changes the password. Attempts are counted before the password is checked: past 5 in 10 minutes from one client address (an IPv6 /64), or 100 in an hour for the link from anywhere, they answer 429 RATE_LIMITED with Retry-After, even with the right password. A wrong password answers 401 PASSWORD_REQUIRED; a link without a password 400.`,
		request: { params: TokenParam, body: jsonBody(UnlockBody) },
		responses: {
			200: json(LinkSession, "Unlocked"),
			...errorResponses("INVALID_REQUEST", "PASSWORD_REQUIRED", "NOT_FOUND", "LINK_EXPIRED", "RATE_LIMITED"),
		},
	}),
	async (c) => {
		const db = openDirectory(c.env.DIRECTORY);
		const { row, ownerShard } = unwrap(await openLink(c.env, db, c.req.valid("param").token));
		if (row.passwordHash === null)
			throw new ApiError("INVALID_REQUEST", "this link has no password; use it without a session", [{ reason: "no_password" }]);
		// Counted before the password is checked, so that no guess is free and a lockout holds even for the right one.
		const keys = linkUnlockKeys(row.id, clientAddress(c.req.header("CF-Connecting-IP")));
		const verdict = await countAttempt(db, keys, 0);
		if (verdict.refuse) {
			if (verdict.first) await recordActivity(c.env, ownerShard, holderEvent("link.locked", row));
			const retry = verdict.retryAfterSeconds;
			throw new ApiError("RATE_LIMITED", "too many password attempts for this link; try again later", [{ retry_after_seconds: retry }]);
		}
		if (!(await passwordMatches(c.env, row, c.req.valid("json").password))) {
			await recordActivity(c.env, ownerShard, holderEvent("link.password_failed", row));
			throw new ApiError("PASSWORD_REQUIRED", "that is not this link's password", undefined, { "WWW-Authenticate": 'Link realm="drive"' });
		}
		await attemptSucceeded(db, keys);
		const session = await signLinkSession(c.env, { linkId: row.id, passwordVersion: row.passwordVersion });
		return c.json({ link_session: session, expires_in: LINK_SESSION_TTL_SECONDS }, 200);
	},
);

const NodeParams = TokenParam.extend({ id: z.string().min(1).max(64) });
const VIEW_ONLY =
	"An `upload` link answers 403 FORBIDDEN (details reason `link_access`) whatever the id, before anything is looked up, so it learns nothing. An id outside the link's live subtree answers 404, like a random one.";

linkRoutes.openapi(
	createRoute({
		method: "get",
		path: "/l/{token}/nodes/{id}/children",
		tags,
		summary: "A folder's children, inside a view link (extension; no bearer token)",
		description: `${EXTENSION} ${STATES} ${VIEW_ONLY}`,
		request: { params: NodeParams, query: PageQuery, headers: LinkSessionHeader },
		responses: {
			200: json(NodePage, "One page"),
			...errorResponses("INVALID_REQUEST", "PASSWORD_REQUIRED", "FORBIDDEN", "NOT_FOUND", "LINK_EXPIRED"),
		},
	}),
	async (c) => {
		const { token, id } = c.req.valid("param");
		const open = await usableLink(c, token);
		unwrap(canView(open.row));
		const folder = unwrap(await nodeInLink(open, id));
		const { limit, cursor } = c.req.valid("query");
		const page = unwrap(await childrenPage(open.db, open.row.ownerId, folder.id, limit, cursor));
		// A mount in the folder is someone else's share: a link of this owner never shows it.
		const items = page.items.filter((node) => node.mount === undefined).map((node) => linkNode(node, open.row.nodeId));
		return c.json({ ...page, items }, 200);
	},
);

linkRoutes.openapi(
	createRoute({
		method: "get",
		path: "/l/{token}/nodes/{id}/content",
		tags,
		summary: "Download a file inside a view link (extension; no bearer token)",
		description: `${EXTENSION} ${STATES} ${VIEW_ONLY} Like GET /v1/files/{id}/content (single Range, If-None-Match, If-Range, HEAD), head version only. A GET whose bytes start at byte 0 counts as a download; Range continuations, HEAD and 304s do not. Past \`max_downloads\`, such a GET answers 410 LINK_EXPIRED (details reason \`max_downloads\`) while continuations keep working.`,
		request: {
			params: NodeParams,
			query: z.object({ disposition: z.enum(["attachment", "inline"]).default("attachment") }),
			headers: LinkSessionHeader.extend({
				range: z.string().optional().openapi({ example: "bytes=0-1023" }),
				"if-none-match": z.string().optional(),
				"if-range": z.string().optional(),
			}),
		},
		responses: {
			200: { description: "The whole content", content: binaryContent },
			206: { description: "The requested range", content: binaryContent },
			304: { description: "Not modified (If-None-Match matched the version id)" },
			...errorResponses("INVALID_REQUEST", "PASSWORD_REQUIRED", "FORBIDDEN", "NOT_FOUND", "LINK_EXPIRED", "RANGE_NOT_SATISFIABLE"),
		},
	}),
	async (c) => {
		const { token, id } = c.req.valid("param");
		const open = await usableLink(c, token);
		unwrap(canView(open.row));
		const file = unwrap(await nodeInLink(open, id));
		const { node, version } = unwrap(await findDownload(open.db, open.row.ownerId, file.id, undefined));
		const directory = openDirectory(c.env.DIRECTORY);
		const beforeFullRead = async () => {
			unwrap(await countDownload(directory, open.row));
			await recordActivity(c.env, open.ownerShard, holderEvent("link.downloaded", open.row, node.id));
		};
		return sendVersion(c, open.db, node, version, { disposition: c.req.valid("query").disposition, beforeFullRead });
	},
);

linkRoutes.openapi(
	createRoute({
		method: "put",
		path: "/l/{token}/files",
		tags,
		summary: "Upload a file through an upload or view_upload link (extension; no bearer token)",
		description: `${EXTENSION} ${STATES} The raw body is the content (at most 100 MB), committed as the link owner's and charged to their quota. It never overwrites: a taken name gets the first free numbered name ("report 2.pdf"). An \`upload\` link's answer has no id, and its \`name\` is the name as sent, so that uploads cannot probe which names exist; \`parent_id\` is for \`view_upload\` links (a folder inside the link). A \`view\` link answers 403 FORBIDDEN (reason \`link_access\`). A full quota answers 507 without numbers.`,
		request: { params: TokenParam, query: LinkUploadQuery, headers: LinkSessionHeader, body: { content: binaryContent } },
		responses: {
			201: json(LinkUploadResult, "Stored as a new file"),
			...errorResponses(
				"INVALID_REQUEST",
				"PASSWORD_REQUIRED",
				"FORBIDDEN",
				"NOT_FOUND",
				"LINK_EXPIRED",
				"PAYLOAD_TOO_LARGE",
				"RATE_LIMITED",
				"QUOTA_EXCEEDED",
				"BLOCKS_RECLAIMED",
			),
		},
	}),
	async (c) => {
		const token = c.req.valid("param").token;
		const open = await usableLink(c, token);
		const { row } = open;
		const query = c.req.valid("query");
		if (row.access === "view" || (row.access === "upload" && query.parent_id !== undefined))
			throw new ApiError("FORBIDDEN", "this link cannot upload there", [{ reason: "link_access" }]);
		const root = unwrap(await linkRoot(open));
		const parent = query.parent_id === undefined ? root : unwrap(await nodeInLink(open, query.parent_id));
		if (parent.type !== "folder") throw new ApiError("NOT_FOUND", "folder not found");
		const owner = { userId: row.ownerId, shard: open.ownerShard, quotaBytes: open.ownerQuotaBytes };
		const name = checkName(query.name);
		if (!name.ok) return unwrap(invalidName(name.reason));
		const intended = { parentId: parent.id, name: name.name, baseVersionId: null, onConflict: "rename" as const };
		// Checked again once the body is in: a link revoked, expired or re-passworded meanwhile commits nothing.
		const stillAllowed = () => linkInUse(c, token);
		const actor = { deviceId: null, deviceName: "Public link" };
		const outcome = await receiveContent(c, owner, intended, { actor, linkId: row.id, stillAllowed });
		// The owner's free space is theirs to know, not the uploader's.
		if (!outcome.ok && outcome.error.code === "QUOTA_EXCEEDED") throw new ApiError("QUOTA_EXCEEDED", "there is no room for this file");
		const { node } = unwrap(outcome);
		const size = node.size ?? 0;
		if (row.access === "upload") return c.json({ name: name.name, size }, 201);
		return c.json({ name: node.name, size, id: node.id }, 201);
	},
);
