/** Conflicted copies: list the unresolved ones, mark one resolved (an extension of the v1 contract). */
import { IdParam, PageQuery } from "../../../src/shared/schemas/common";
import { Node } from "../../../src/shared/schemas/nodes";
import { ConflictPage } from "../../../src/shared/schemas/sync";
import { unwrap } from "../errors";
import { errorResponses, json, newRouter, protectedRoute } from "../openapi";
import { conflictPage } from "../services/conflicts";
import { hubFor, shardFor } from "../services/hub";

export const conflictRoutes = newRouter();

const tags = ["Conflicts"];

conflictRoutes.openapi(
	protectedRoute({
		method: "get",
		path: "/conflicts",
		tags,
		summary: "Unresolved conflicted copies, newest first, each with the file it conflicts with",
		description: "A copy leaves this list when it is renamed, deleted, or marked resolved.",
		request: { query: PageQuery },
		responses: { 200: json(ConflictPage, "One page"), ...errorResponses("INVALID_REQUEST", "UNAUTHENTICATED") },
	}),
	async (c) => {
		const caller = c.get("caller");
		const { limit, cursor } = c.req.valid("query");
		return c.json(unwrap(await conflictPage(shardFor(c.env, caller), caller.userId, limit, cursor)), 200);
	},
);

conflictRoutes.openapi(
	protectedRoute({
		method: "post",
		path: "/conflicts/{id}/resolve",
		tags,
		summary: "Mark a conflicted copy resolved, keeping it as it is",
		request: { params: IdParam },
		responses: { 200: json(Node, "The copy, no longer marked"), ...errorResponses("UNAUTHENTICATED", "NOT_FOUND") },
	}),
	async (c) => {
		const resolved = unwrap(await hubFor(c.env, c.get("caller").userId).resolveConflict({ nodeId: c.req.valid("param").id }));
		return c.json(resolved.node, 200);
	},
);
