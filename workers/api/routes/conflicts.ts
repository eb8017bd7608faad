/** Conflicted copies: list the unresolved ones, mark one resolved (an extension of API.md). */
import { createRoute, z } from "@hono/zod-openapi";
import { toNode } from "../../../src/shared/db/rows";
import { IdParam, PageQuery } from "../../../src/shared/schemas/common";
import { Node } from "../../../src/shared/schemas/nodes";
import { ConflictPage } from "../../../src/shared/schemas/sync";
import { unwrap } from "../errors";
import { requireAuth } from "../middleware/auth";
import { bearer, errorResponses, json, newRouter } from "../openapi";
import { listOpenConflicts } from "../services/conflicts";
import { decodeCursor, encodeCursor } from "../services/cursors";
import { hubFor, shardOf } from "../services/hub";

export const conflictRoutes = newRouter();
conflictRoutes.use("/conflicts", requireAuth);
conflictRoutes.use("/conflicts/*", requireAuth);

const tags = ["Conflicts"];
const ConflictsCursor = z.object({ t: z.string(), i: z.string() });

conflictRoutes.openapi(
	createRoute({
		method: "get",
		path: "/conflicts",
		tags,
		security: bearer,
		summary: "Unresolved conflicted copies, newest first, each with the file it conflicts with",
		description: "A copy leaves this list when it is renamed, deleted, or marked resolved.",
		request: { query: PageQuery },
		responses: { 200: json(ConflictPage, "One page"), ...errorResponses("INVALID_REQUEST", "UNAUTHENTICATED") },
	}),
	async (c) => {
		const caller = c.get("caller");
		const { limit, cursor } = c.req.valid("query");
		const after = cursor === undefined ? null : decodeCursor(cursor, ConflictsCursor);
		const rows = await listOpenConflicts(
			shardOf(c.env, caller),
			caller.userId,
			limit + 1,
			after === null ? null : { createdAt: after.t, id: after.i },
		);
		const page = rows.slice(0, limit);
		const last = page.at(-1);
		const next = rows.length > limit && last ? encodeCursor({ t: last.copy.createdAt, i: last.copy.id }) : null;
		return c.json(
			{ items: page.map((r) => ({ node: toNode(r.copy), conflicts_with: r.original ? toNode(r.original) : null })), next_cursor: next },
			200,
		);
	},
);

conflictRoutes.openapi(
	createRoute({
		method: "post",
		path: "/conflicts/{id}/resolve",
		tags,
		security: bearer,
		summary: "Mark a conflicted copy resolved, keeping it as it is",
		request: { params: IdParam },
		responses: { 200: json(Node, "The copy, no longer marked"), ...errorResponses("UNAUTHENTICATED", "NOT_FOUND") },
	}),
	async (c) => {
		const caller = c.get("caller");
		const resolved = unwrap(await hubFor(c.env, caller.userId).resolveConflict(caller, { nodeId: c.req.valid("param").id }));
		return c.json(resolved.node, 200);
	},
);
