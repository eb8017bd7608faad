/** The activity log's request and response shapes (GET /v1/activity; docs/api.md, "Activity"). */
import { z } from "@hono/zod-openapi";
import { NodeId, PageQuery, Timestamp } from "./common";

export const ActivityQuery = PageQuery.extend({
	node_id: NodeId.optional().openapi({
		description: "Only events about this node. A node shared with you as editor reads its owner's log.",
	}),
});

export const ActivityActor = z
	.object({
		type: z.enum(["user", "link", "system"]),
		id: z.string().optional().openapi({ description: "A user id, or a link id for a link's holder" }),
		email: z.string().optional().openapi({ description: "The user's email, while they have an account" }),
		device: z.string().optional().openapi({ description: "The device the user acted from, when known" }),
	})
	.openapi("ActivityActor");

export const ActivityItem = z
	.object({
		id: z.string(),
		at: Timestamp,
		event: z.string().openapi({ example: "share.member_added" }),
		actor: ActivityActor,
		node_id: z.string().nullable(),
		share_id: z.string().nullable(),
		link_id: z.string().nullable(),
		version_id: z.string().nullable(),
		details: z.record(z.string(), z.unknown()).nullable(),
	})
	.openapi("ActivityItem");
export type ActivityItem = z.infer<typeof ActivityItem>;

export const ActivityPage = z.object({ items: z.array(ActivityItem), next_cursor: z.string().nullable() }).openapi("ActivityPage");
export type ActivityPage = z.infer<typeof ActivityPage>;
