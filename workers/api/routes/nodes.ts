/** Files and folders: root, folders, children, node with path, rename and move, trash (API.md "Nodes"). */
import { createRoute, z } from "@hono/zod-openapi";
import { toNode } from "../../../src/shared/db/rows";
import { ancestry, findNode, findRoot, listChildren, listTrash } from "../../../src/shared/db/tree";
import { IdParam, PageQuery } from "../../../src/shared/schemas/common";
import { CreateFolderBody, Node, NodePage, NodeWithPath, UpdateNodeBody } from "../../../src/shared/schemas/nodes";
import { ApiError, unwrap } from "../errors";
import { requireAuth } from "../middleware/auth";
import { bearer, errorResponses, json, jsonBody, newRouter } from "../openapi";
import { decodeCursor, encodeCursor } from "../services/cursors";
import { hubFor, shardOf } from "../services/hub";

export const nodeRoutes = newRouter();
nodeRoutes.use("/nodes/*", requireAuth);
nodeRoutes.use("/folders", requireAuth);
nodeRoutes.use("/trash", requireAuth);

const tags = ["Nodes"];
const notFound = errorResponses("UNAUTHENTICATED", "NOT_FOUND");

nodeRoutes.openapi(
	createRoute({
		method: "get",
		path: "/nodes/root",
		tags,
		security: bearer,
		summary: "The user's root folder",
		responses: { 200: json(Node, "The root"), ...notFound },
	}),
	async (c) => {
		const caller = c.get("caller");
		const root = await findRoot(shardOf(c.env, caller), caller.userId);
		if (root) return c.json(toNode(root), 200);
		// Signup creates the root; this heals an account whose signup died between steps.
		const ensured = unwrap(await hubFor(c.env, caller.userId).ensureRoot(caller));
		return c.json(ensured.node, 200);
	},
);

nodeRoutes.openapi(
	createRoute({
		method: "get",
		path: "/nodes/{id}",
		tags,
		security: bearer,
		summary: "A node with its path from the root",
		request: { params: IdParam },
		responses: { 200: json(NodeWithPath, "The node"), ...notFound },
	}),
	async (c) => {
		const caller = c.get("caller");
		const db = shardOf(c.env, caller);
		const { id } = c.req.valid("param");
		const node = await findNode(db, caller.userId, id);
		if (!node) throw new ApiError("NOT_FOUND", "node not found");
		const chain = await ancestry(db, caller.userId, id);
		const names = chain.slice(1).map((a) => a.name);
		return c.json(
			{ ...toNode(node), path: `/${names.join("/")}`, ancestors: chain.slice(0, -1).map((a) => ({ id: a.id, name: a.name })) },
			200,
		);
	},
);

const ChildrenCursor = z.object({ k: z.string() });

nodeRoutes.openapi(
	createRoute({
		method: "get",
		path: "/nodes/{id}/children",
		tags,
		security: bearer,
		summary: "A folder's live children, by name, paginated",
		request: { params: IdParam, query: PageQuery },
		responses: { 200: json(NodePage, "One page"), ...errorResponses("INVALID_REQUEST", "UNAUTHENTICATED", "NOT_FOUND") },
	}),
	async (c) => {
		const caller = c.get("caller");
		const db = shardOf(c.env, caller);
		const { id } = c.req.valid("param");
		const { limit, cursor } = c.req.valid("query");
		const after = cursor === undefined ? null : decodeCursor(cursor, ChildrenCursor).k;
		const folder = await findNode(db, caller.userId, id);
		if (!folder || folder.type !== "folder") throw new ApiError("NOT_FOUND", "folder not found");
		const rows = await listChildren(db, caller.userId, id, limit + 1, after);
		const page = rows.slice(0, limit);
		const last = page.at(-1);
		const next = rows.length > limit && last ? encodeCursor({ k: last.nameKey }) : null;
		return c.json({ items: page.map(toNode), next_cursor: next }, 200);
	},
);

nodeRoutes.openapi(
	createRoute({
		method: "post",
		path: "/folders",
		tags,
		security: bearer,
		summary: "Create a folder",
		request: { body: jsonBody(CreateFolderBody) },
		responses: { 201: json(Node, "Created"), ...errorResponses("INVALID_REQUEST", "UNAUTHENTICATED", "NOT_FOUND", "NAME_TAKEN") },
	}),
	async (c) => {
		const caller = c.get("caller");
		const body = c.req.valid("json");
		const created = unwrap(await hubFor(c.env, caller.userId).createFolder(caller, { parentId: body.parent_id, name: body.name }));
		return c.json(created.node, 201);
	},
);

nodeRoutes.openapi(
	createRoute({
		method: "patch",
		path: "/nodes/{id}",
		tags,
		security: bearer,
		summary: "Rename and/or move a node",
		description: "A folder cannot move into itself or its own subtree (400). Names follow the README's rule.",
		request: { params: IdParam, body: jsonBody(UpdateNodeBody) },
		responses: { 200: json(Node, "Updated"), ...errorResponses("INVALID_REQUEST", "UNAUTHENTICATED", "NOT_FOUND", "NAME_TAKEN") },
	}),
	async (c) => {
		const caller = c.get("caller");
		const { id } = c.req.valid("param");
		const body = c.req.valid("json");
		const input: { nodeId: string; name?: string; parentId?: string } = { nodeId: id };
		if (body.name !== undefined) input.name = body.name;
		if (body.parent_id !== undefined) input.parentId = body.parent_id;
		const updated = unwrap(await hubFor(c.env, caller.userId).updateNode(caller, input));
		return c.json(updated.node, 200);
	},
);

nodeRoutes.openapi(
	createRoute({
		method: "delete",
		path: "/nodes/{id}",
		tags,
		security: bearer,
		summary: "Move a node to the trash; a folder takes its subtree with it",
		request: { params: IdParam },
		responses: { 200: json(Node, "Trashed"), ...errorResponses("INVALID_REQUEST", "UNAUTHENTICATED", "NOT_FOUND") },
	}),
	async (c) => {
		const caller = c.get("caller");
		const trashed = unwrap(await hubFor(c.env, caller.userId).trashNode(caller, { nodeId: c.req.valid("param").id }));
		return c.json(trashed.node, 200);
	},
);

nodeRoutes.openapi(
	createRoute({
		method: "post",
		path: "/nodes/{id}/restore",
		tags,
		security: bearer,
		summary: "Restore a node from the trash, with what was deleted together with it",
		description: 'Goes back to its folder, or to the root if that folder is gone; a taken name gets a " (restored)" suffix.',
		request: { params: IdParam },
		responses: { 200: json(Node, "Restored"), ...notFound },
	}),
	async (c) => {
		const caller = c.get("caller");
		const restored = unwrap(await hubFor(c.env, caller.userId).restoreNode(caller, { nodeId: c.req.valid("param").id }));
		return c.json(restored.node, 200);
	},
);

const TrashCursor = z.object({ t: z.string(), i: z.string() });

nodeRoutes.openapi(
	createRoute({
		method: "get",
		path: "/trash",
		tags,
		security: bearer,
		summary: "What the user deleted, newest first",
		request: { query: PageQuery },
		responses: { 200: json(NodePage, "One page"), ...errorResponses("INVALID_REQUEST", "UNAUTHENTICATED") },
	}),
	async (c) => {
		const caller = c.get("caller");
		const { limit, cursor } = c.req.valid("query");
		const after = cursor === undefined ? null : decodeCursor(cursor, TrashCursor);
		const rows = await listTrash(
			shardOf(c.env, caller),
			caller.userId,
			limit + 1,
			after === null ? null : { trashedAt: after.t, id: after.i },
		);
		const page = rows.slice(0, limit);
		const last = page.at(-1);
		const next = rows.length > limit && last ? encodeCursor({ t: last.trashedAt, i: last.id }) : null;
		return c.json({ items: page.map(toNode), next_cursor: next }, 200);
	},
);
