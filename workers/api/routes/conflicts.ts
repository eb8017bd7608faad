/** Conflicted copies: list the unresolved ones, mark one resolved (an extension of the v1 contract). */
import { IdParam, PageQuery } from "../../../src/shared/schemas/common";
import { Node } from "../../../src/shared/schemas/nodes";
import { ConflictPage, ResolveConflictBody } from "../../../src/shared/schemas/sync";
import { unwrap } from "../errors";
import { emptyJsonBody, errorResponses, json, newRouter, optionalJsonBody, protectedRoute } from "../openapi";
import { asSeen, memberQuota, ownThenShared } from "../services/access";
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

conflictRoutes.use("/conflicts/:id/resolve", emptyJsonBody);

conflictRoutes.openapi(
	protectedRoute({
		method: "post",
		path: "/conflicts/{id}/resolve",
		tags,
		summary: "Settle a conflicted copy: keep both, the original, or the copy",
		description:
			'Extension. Without a body, or with `keep: "both"`, the copy stays as it is and is no longer marked (idempotent); the answer is the copy. `keep: "original"` moves the copy to the trash; `keep: "copy"` commits the copy\'s content as a new version of the original (on its current head, over the same stored blocks: nothing is uploaded again; skipped when the contents are equal), then moves the copy to the trash; both answer the original, each change is its own journal entry. Keeping one side of something that is not an unresolved conflicted copy, or whose original is gone, answers 400 (`reason: "not_a_conflict"`) or 404. An editor of a share resolves a copy in it, through the owner (a viewer gets 403 FORBIDDEN, details reason `read_only`).',
		request: { params: IdParam, body: optionalJsonBody(ResolveConflictBody) },
		responses: {
			200: json(Node, "The node that stays: the copy (both) or the original"),
			...errorResponses("INVALID_REQUEST", "UNAUTHENTICATED", "FORBIDDEN", "NOT_FOUND", "QUOTA_EXCEEDED", "RATE_LIMITED"),
		},
	}),
	async (c) => {
		const caller = c.get("caller");
		const { keep } = c.req.valid("json");
		let seen: Parameters<typeof asSeen>[0] = { view: null };
		const resolved = unwrap(
			await ownThenShared(c.env, caller, c.req.valid("param").id, "write", async (access) => {
				seen = access;
				const actor = { deviceId: caller.deviceId, deviceName: caller.deviceName, ...(access.by ? { userId: access.by } : {}) };
				const input = { nodeId: access.nodeId, keep, actor, quotaBytes: access.scope.quotaBytes };
				return memberQuota(access, await hubFor(c.env, access.scope.userId).resolveConflict(input));
			}),
		);
		return c.json(asSeen(seen, resolved.node), 200);
	},
);
