/** Sharing with people: shares, their members, "Shared with me" and mounts (extension; docs/api.md, "Sharing"). */
import { z } from "@hono/zod-openapi";
import { IdParam } from "../../../src/shared/schemas/common";
import { Node } from "../../../src/shared/schemas/nodes";
import {
	AddMembersBody,
	CreateShareBody,
	IncomingSharePage,
	MountBody,
	SetRoleBody,
	Share,
	SharePage,
} from "../../../src/shared/schemas/shares";
import { ApiError, unwrap } from "../errors";
import type { Caller } from "../env";
import { errorResponses, json, jsonBody, newRouter, protectedRoute } from "../openapi";
import { accessTo, actorOf } from "../services/access";
import { hubFor, shardFor } from "../services/hub";
import { locateShare, ownShares, peopleByEmail, shareView } from "../services/shares";

export const shareRoutes = newRouter();

const tags = ["Sharing"];
const ShareParam = z.object({ id: z.string().min(1).max(64) });
const MemberParam = ShareParam.extend({
	user_id: z.string().min(1).max(64).openapi({ description: "A member's user id, or `me` to leave" }),
});

/** The caller's share, or 403 for a member and 404 for anyone else. */
async function ownedShare(env: Env, caller: Caller, shareId: string) {
	const share = unwrap(await locateShare(env, caller, shareId));
	if (share.yourRole !== "owner")
		throw new ApiError("FORBIDDEN", "only the owner can change who a share is with", [{ reason: "owner_only" }]);
	return share;
}

async function membersFrom(env: Env, caller: Caller, members: { email: string; role: "viewer" | "editor" }[]) {
	const people = unwrap(
		await peopleByEmail(
			env,
			members.map((m) => m.email),
		),
	);
	return members.map((m) => {
		const person = people.get(m.email.trim().normalize("NFC").toLowerCase());
		if (!person) throw new ApiError("INVALID_REQUEST", `no Drive account uses ${m.email}`, [{ field: "members", reason: "unknown_user" }]);
		if (person.id === caller.userId)
			throw new ApiError("INVALID_REQUEST", "you own this; share it with other people", [{ reason: "self_share" }]);
		return { userId: person.id, email: person.email, role: m.role };
	});
}

shareRoutes.openapi(
	protectedRoute({
		method: "post",
		path: "/shares",
		tags,
		summary: "Share a file or folder with people (extension)",
		description:
			"Shares one of your files or folders with other Drive users by email, as `viewer` or `editor`. Sharing a node that is shared already adds the people to its share (or changes their role). Each member finds it in `GET /v1/shared-with-me` and mounted in their root, and hears of every later change through their own journal. 400 reasons: `share_root` (your root), `contains_mount` (it holds, or is, something shared with you: shares are not passed on), `self_share`, `unknown_user`, `too_many_members` (100). Only the owner shares: a member gets 403 `owner_only`.",
		request: { body: jsonBody(CreateShareBody) },
		responses: {
			201: json(Share, "The share"),
			...errorResponses("INVALID_REQUEST", "UNAUTHENTICATED", "FORBIDDEN", "NOT_FOUND", "RATE_LIMITED"),
		},
	}),
	async (c) => {
		const caller = c.get("caller");
		const body = c.req.valid("json");
		const access = await accessTo(c.env, caller, body.node_id);
		if (!access) throw new ApiError("NOT_FOUND", "node not found");
		if (access.role !== "owner" || access.viaMount)
			throw new ApiError("FORBIDDEN", "only the owner can share this", [{ reason: "owner_only" }]);
		const members = await membersFrom(c.env, caller, body.members);
		const made = unwrap(
			await hubFor(c.env, caller.userId).shareNode({ nodeId: body.node_id, members, ownerEmail: caller.email, actor: actorOf(caller) }),
		);
		const share = unwrap(await locateShare(c.env, caller, made.shareId));
		return c.json(unwrap(await shareView(c.env, caller, share)), 201);
	},
);

shareRoutes.openapi(
	protectedRoute({
		method: "get",
		path: "/shares",
		tags,
		summary: "Your shares, newest first, or the share of one node (extension)",
		request: {
			query: z.object({
				node_id: z.string().min(1).max(64).optional(),
				limit: z.coerce.number().int().min(1).max(1000).default(100),
			}),
		},
		responses: { 200: json(SharePage, "Your shares"), ...errorResponses("INVALID_REQUEST", "UNAUTHENTICATED") },
	}),
	async (c) => {
		const { node_id, limit } = c.req.valid("query");
		const items = unwrap(await ownShares(c.env, c.get("caller"), node_id, limit));
		return c.json({ items, next_cursor: null }, 200);
	},
);

shareRoutes.openapi(
	protectedRoute({
		method: "get",
		path: "/shares/{id}",
		tags,
		summary: "A share, with its members (extension)",
		description: "For its owner and its members; anyone else gets 404.",
		request: { params: ShareParam },
		responses: { 200: json(Share, "The share"), ...errorResponses("UNAUTHENTICATED", "NOT_FOUND") },
	}),
	async (c) => {
		const caller = c.get("caller");
		const share = unwrap(await locateShare(c.env, caller, c.req.valid("param").id));
		return c.json(unwrap(await shareView(c.env, caller, share)), 200);
	},
);

shareRoutes.openapi(
	protectedRoute({
		method: "post",
		path: "/shares/{id}/members",
		tags,
		summary: "Add people to a share, or change their roles (extension)",
		request: { params: ShareParam, body: jsonBody(AddMembersBody) },
		responses: {
			200: json(Share, "The share"),
			...errorResponses("INVALID_REQUEST", "UNAUTHENTICATED", "FORBIDDEN", "NOT_FOUND", "RATE_LIMITED"),
		},
	}),
	async (c) => {
		const caller = c.get("caller");
		const share = await ownedShare(c.env, caller, c.req.valid("param").id);
		const members = await membersFrom(c.env, caller, c.req.valid("json").members);
		unwrap(
			await hubFor(c.env, caller.userId).shareNode({ nodeId: share.nodeId, members, ownerEmail: caller.email, actor: actorOf(caller) }),
		);
		return c.json(unwrap(await shareView(c.env, caller, share)), 200);
	},
);

shareRoutes.openapi(
	protectedRoute({
		method: "patch",
		path: "/shares/{id}/members/{user_id}",
		tags,
		summary: "Change a member's role (extension)",
		request: { params: MemberParam, body: jsonBody(SetRoleBody) },
		responses: {
			200: json(Share, "The share"),
			...errorResponses("INVALID_REQUEST", "UNAUTHENTICATED", "FORBIDDEN", "NOT_FOUND", "RATE_LIMITED"),
		},
	}),
	async (c) => {
		const caller = c.get("caller");
		const { id, user_id } = c.req.valid("param");
		const share = await ownedShare(c.env, caller, id);
		const view = unwrap(await shareView(c.env, caller, share));
		const member = view.members.find((m) => m.user.id === user_id);
		if (!member) throw new ApiError("NOT_FOUND", "share member not found");
		const members = [{ userId: member.user.id, email: member.user.email, role: c.req.valid("json").role }];
		unwrap(
			await hubFor(c.env, caller.userId).shareNode({ nodeId: share.nodeId, members, ownerEmail: caller.email, actor: actorOf(caller) }),
		);
		return c.json(unwrap(await shareView(c.env, caller, share)), 200);
	},
);

shareRoutes.openapi(
	protectedRoute({
		method: "delete",
		path: "/shares/{id}/members/{user_id}",
		tags,
		summary: "Remove a member, or leave a share (`me`) (extension)",
		description:
			"The owner removes anyone; a member removes only themselves (leaving). The member's mount disappears from their tree with a `deleted` entry (reason `unshared`) in their journal; what they wrote stays the owner's. The owner cannot leave their own share (400): delete it instead.",
		request: { params: MemberParam },
		responses: {
			204: { description: "Removed" },
			...errorResponses("INVALID_REQUEST", "UNAUTHENTICATED", "FORBIDDEN", "NOT_FOUND", "RATE_LIMITED"),
		},
	}),
	async (c) => {
		const caller = c.get("caller");
		const { id, user_id } = c.req.valid("param");
		const memberId = user_id === "me" ? caller.userId : user_id;
		const share = unwrap(await locateShare(c.env, caller, id));
		if (share.yourRole === "owner" && memberId === caller.userId)
			throw new ApiError("INVALID_REQUEST", "you own this share; delete it instead of leaving it", [{ reason: "owner_leaves" }]);
		if (share.yourRole !== "owner" && memberId !== caller.userId)
			throw new ApiError("FORBIDDEN", "only the owner can remove other members", [{ reason: "owner_only" }]);
		unwrap(await hubFor(c.env, share.owner.userId).removeShareMember({ shareId: share.id, memberId, actor: actorOf(caller) }));
		return c.body(null, 204);
	},
);

shareRoutes.openapi(
	protectedRoute({
		method: "delete",
		path: "/shares/{id}",
		tags,
		summary: "Stop sharing (extension)",
		description:
			"Every member loses access at once and hears of it in their journal (`deleted`, reason `unshared`). The files stay the owner's.",
		request: { params: ShareParam },
		responses: { 204: { description: "Deleted" }, ...errorResponses("UNAUTHENTICATED", "FORBIDDEN", "NOT_FOUND", "RATE_LIMITED") },
	}),
	async (c) => {
		const caller = c.get("caller");
		const share = await ownedShare(c.env, caller, c.req.valid("param").id);
		unwrap(await hubFor(c.env, caller.userId).deleteShare({ shareId: share.id, actor: actorOf(caller) }));
		return c.body(null, 204);
	},
);

shareRoutes.openapi(
	protectedRoute({
		method: "get",
		path: "/shared-with-me",
		tags,
		summary: "What other people share with you (extension)",
		description:
			"Each share, your role, and where it is mounted in your tree (`mount_id`; null after you removed the mount: mount it again with `POST /v1/shared-with-me/{share_id}/mount`).",
		request: { query: z.object({ limit: z.coerce.number().int().min(1).max(1000).default(100) }) },
		responses: { 200: json(IncomingSharePage, "One page"), ...errorResponses("INVALID_REQUEST", "UNAUTHENTICATED") },
	}),
	async (c) => {
		const caller = c.get("caller");
		const rows = await shardFor(c.env, caller)
			.$client.prepare(
				`SELECT share_id, owner_id, owner_email, root_name, root_type, role, mount_id FROM incoming_shares
				WHERE user_id = ?1 ORDER BY shared_at DESC, share_id LIMIT ?2`,
			)
			.bind(caller.userId, c.req.valid("query").limit)
			.all<{
				share_id: string;
				owner_id: string;
				owner_email: string;
				root_name: string;
				root_type: "file" | "folder";
				role: "viewer" | "editor";
				mount_id: string | null;
			}>();
		const items = rows.results.map((r) => ({
			share_id: r.share_id,
			owner: { id: r.owner_id, email: r.owner_email },
			role: r.role,
			name: r.root_name,
			type: r.root_type,
			mount_id: r.mount_id,
		}));
		return c.json({ items, next_cursor: null }, 200);
	},
);

shareRoutes.openapi(
	protectedRoute({
		method: "post",
		path: "/shared-with-me/{id}/mount",
		tags,
		summary: "Put a share back in your tree (extension)",
		description:
			"Mounts a share you removed from your tree (deleting a mount only unmounts it). 400 `mount_inside_share`: a share cannot go inside a folder you share.",
		request: { params: IdParam, body: jsonBody(MountBody) },
		responses: {
			201: json(Node, "The mount"),
			...errorResponses("INVALID_REQUEST", "UNAUTHENTICATED", "NOT_FOUND", "NAME_TAKEN", "RATE_LIMITED"),
		},
	}),
	async (c) => {
		const caller = c.get("caller");
		const mounted = unwrap(
			await hubFor(c.env, caller.userId).mountShare({ shareId: c.req.valid("param").id, parentId: c.req.valid("json").parent_id ?? null }),
		);
		return c.json(mounted.node, 201);
	},
);
