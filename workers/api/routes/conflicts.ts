/** Conflicted copies: list the unresolved ones, mark one resolved (an extension of the v1 contract). */
import { IdParam, PageQuery } from "../../../src/shared/schemas/common";
import { Node } from "../../../src/shared/schemas/nodes";
import { ConflictPage } from "../../../src/shared/schemas/sync";
import { unwrap } from "../errors";
import { errorResponses, json, newRouter, protectedRoute } from "../openapi";
import { asSeen, ownThenShared } from "../services/access";
import { conflictPage } from "../services/conflicts";
import { hubFor } from "../services/hub";

export const conflictRoutes = newRouter();

const tags = ["Conflicts"];

conflictRoutes.openapi(
	protectedRoute({
		method: "get",
		path: "/conflicts",
		tags,
		summary: "Unresolved conflicted copies, newest first, each with the file it conflicts with",
		description:
			"A copy leaves this list when it is renamed, deleted, or marked resolved. Extension: the list also holds the conflicted copies you made in folders shared with you (the copy's head version is yours), as you see them under your mount, merged with your own newest first; they stay in the owner's tree, visible to every member.",
		request: { query: PageQuery },
		responses: { 200: json(ConflictPage, "One page"), ...errorResponses("INVALID_REQUEST", "UNAUTHENTICATED") },
	}),
	async (c) => {
		const caller = c.get("caller");
		const { limit, cursor } = c.req.valid("query");
		return c.json(unwrap(await conflictPage(c.env, caller, limit, cursor)), 200);
	},
);

conflictRoutes.openapi(
	protectedRoute({
		method: "post",
		path: "/conflicts/{id}/resolve",
		tags,
		summary: "Mark a conflicted copy resolved, keeping it as it is",
		description:
			"Extension: an editor of a share resolves a copy in it, through the owner (a viewer gets 403 FORBIDDEN, details reason `read_only`).",
		request: { params: IdParam },
		responses: { 200: json(Node, "The copy, no longer marked"), ...errorResponses("UNAUTHENTICATED", "FORBIDDEN", "NOT_FOUND") },
	}),
	async (c) => {
		const caller = c.get("caller");
		let seen: Parameters<typeof asSeen>[0] = { view: null };
		const resolved = unwrap(
			await ownThenShared(c.env, caller, c.req.valid("param").id, "write", async (access) => {
				seen = access;
				return hubFor(c.env, access.scope.userId).resolveConflict({ nodeId: access.nodeId, ...(access.by ? { by: access.by } : {}) });
			}),
		);
		return c.json(asSeen(seen, resolved.node), 200);
	},
);
