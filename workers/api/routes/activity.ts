/** The activity log: share, link and version events (an extension of the v1 contract; docs/api.md, "Activity"). */
import { ActivityPage, ActivityQuery } from "../../../src/shared/schemas/activity";
import { unwrap } from "../errors";
import { errorResponses, json, newRouter, protectedRoute } from "../openapi";
import { activityPage } from "../services/activity";

export const activityRoutes = newRouter();

activityRoutes.openapi(
	protectedRoute({
		method: "get",
		path: "/activity",
		tags: ["Activity"],
		summary: "What people did with your shares, links and versions, newest first (extension)",
		description:
			'Extension of the v1 contract. Without `node_id`, your own log: share events (created, member added, role changed, member removed, left, deleted), link events (created, updated, revoked, downloaded, uploaded, password failed, locked) and version events (restored, pinned, unpinned, labelled, deleted, expired), each with its actor (`user` with id, email and device; `link`; or `system`). With `node_id`, only the events about that node, not the nodes under it. A node shared with you as editor reads its owner\'s log for that node, without link ids or link settings; a viewer gets 403 FORBIDDEN (details reason `read_only`), and a node you cannot see 404. Events are kept 180 days (docs/api.md, "Activity").',
		request: { query: ActivityQuery },
		responses: {
			200: json(ActivityPage, "One page"),
			...errorResponses("INVALID_REQUEST", "UNAUTHENTICATED", "FORBIDDEN", "NOT_FOUND"),
		},
	}),
	async (c) => {
		const { node_id, limit, cursor } = c.req.valid("query");
		const page = await activityPage(c.env, c.get("caller"), {
			limit,
			...(node_id === undefined ? {} : { nodeId: node_id }),
			...(cursor === undefined ? {} : { cursor }),
		});
		return c.json(unwrap(page), 200);
	},
);
