/** Files and folders: root, folders, children, node with path, rename and move, trash (docs/api.md, "Nodes"). */
import { z } from "@hono/zod-openapi";
import { IdParam, PageQuery } from "../../../src/shared/schemas/common";
import {
	CommitResult,
	CreateFolderBatchBody,
	CreateFolderBody,
	FolderBatchResult,
	Node,
	NodePage,
	NodeWithPath,
	UpdateNodeBody,
} from "../../../src/shared/schemas/nodes";
import { CopyBody } from "../../../src/shared/schemas/shares";
import { copyFile } from "../services/copy";
import { unwrap } from "../errors";
import { errorResponses, json, jsonBody, newRouter, protectedRoute } from "../openapi";
import { hubFor, shardFor } from "../services/hub";
import { childrenPage, rootOf, trashPage } from "../services/tree";
import { asSeen, destinationIn, ownThenShared, seenWithPath } from "../services/access";
import { ok } from "../../../src/shared/errors";
import type { UpdateNodeInput } from "../../notify/contract";

export const nodeRoutes = newRouter();

const tags = ["Nodes"];
const notFound = errorResponses("UNAUTHENTICATED", "NOT_FOUND");

nodeRoutes.openapi(
	protectedRoute({
		method: "get",
		path: "/nodes/root",
		tags,
		summary: "The user's root folder",
		responses: { 200: json(Node, "The root"), ...notFound },
	}),
	async (c) => c.json(unwrap(await rootOf(c.env, c.get("caller"))), 200),
);

nodeRoutes.openapi(
	protectedRoute({
		method: "get",
		path: "/nodes/{id}",
		tags,
		summary: "A node with its path from the root",
		description: "For a node someone shares with you, the path runs from your root through your mount (extension).",
		request: { params: IdParam },
		responses: { 200: json(NodeWithPath, "The node"), ...notFound },
	}),
	async (c) => {
		const caller = c.get("caller");
		const id = c.req.valid("param").id;
		return c.json(unwrap(await ownThenShared(c.env, caller, id, "read", (access) => seenWithPath(c.env, access))), 200);
	},
);

nodeRoutes.openapi(
	protectedRoute({
		method: "get",
		path: "/nodes/{id}/children",
		tags,
		summary: "A folder's live children, by name, paginated",
		description:
			"A mount's id lists the shared folder's children, whose `parent_id` is the mount (extension, docs/api.md, \"Sharing with people\"); a viewer may list too.",
		request: { params: IdParam, query: PageQuery },
		responses: { 200: json(NodePage, "One page"), ...errorResponses("INVALID_REQUEST", "UNAUTHENTICATED", "NOT_FOUND") },
	}),
	async (c) => {
		const caller = c.get("caller");
		const { limit, cursor } = c.req.valid("query");
		const page = await ownThenShared(c.env, caller, c.req.valid("param").id, "read", async (access) => {
			const listed = await childrenPage(shardFor(c.env, access.scope), access.scope.userId, access.nodeId, limit, cursor);
			return listed.ok ? ok({ ...listed.value, items: listed.value.items.map((n) => asSeen(access, n)) }) : listed;
		});
		return c.json(unwrap(page), 200);
	},
);

nodeRoutes.openapi(
	protectedRoute({
		method: "post",
		path: "/folders",
		tags,
		summary: "Create a folder",
		description:
			"`parent_id` may be a folder shared with you as editor, or your mount of it: the folder is the owner's (extension). A viewer gets 403.",
		request: { body: jsonBody(CreateFolderBody) },
		responses: {
			201: json(Node, "Created"),
			...errorResponses(
				"INVALID_REQUEST",
				"UNAUTHENTICATED",
				"NOT_FOUND",
				"NAME_TAKEN",
				"PAYLOAD_TOO_LARGE",
				"RATE_LIMITED",
				"QUOTA_EXCEEDED",
			),
		},
	}),
	async (c) => {
		const body = c.req.valid("json");
		const created = await ownThenShared(c.env, c.get("caller"), body.parent_id, "write", async (access) => {
			const input = { parentId: access.nodeId, name: body.name, ...(access.by ? { by: access.by } : {}) };
			const made = await hubFor(c.env, access.scope.userId).createFolder(input);
			return made.ok ? ok(asSeen(access, made.value.node)) : made;
		});
		return c.json(unwrap(created), 201);
	},
);

nodeRoutes.openapi(
	protectedRoute({
		method: "post",
		path: "/folders/batch",
		tags,
		summary: "Create up to 1,000 folders under one parent (extension)",
		description:
			"Extension. Each name is created as by `POST /v1/folders`, with its own checks and journal entry; one name refused (taken, invalid, over a limit) does not stop the others. `items` answers each name in order: `{node}` or `{error: {code, message, details?}}`. The parent is checked once: a parent you may not write answers as `POST /v1/folders` would (404, or 403 for a viewer).",
		request: { body: jsonBody(CreateFolderBatchBody) },
		responses: {
			200: json(FolderBatchResult, "One answer per name, in order"),
			...errorResponses("INVALID_REQUEST", "UNAUTHENTICATED", "FORBIDDEN", "NOT_FOUND", "PAYLOAD_TOO_LARGE"),
		},
	}),
	async (c) => {
		const body = c.req.valid("json");
		const answered = await ownThenShared(c.env, c.get("caller"), body.parent_id, "write", async (access) => {
			const input = { parentId: access.nodeId, names: body.names, ...(access.by ? { by: access.by } : {}) };
			const results = await hubFor(c.env, access.scope.userId).createFolderBatch(input);
			// A batch under a missing parent is one 404 (and lets ownThenShared look in the shares), not 1,000.
			const first = results[0];
			if (first && !first.ok && results.every((r) => !r.ok && r.error.code === "NOT_FOUND"))
				return { ok: false as const, error: first.error };
			return ok(results.map((r) => (r.ok ? { node: asSeen(access, r.value.node) } : { error: r.error })));
		});
		return c.json({ items: unwrap(answered) }, 200);
	},
);
nodeRoutes.openapi(
	protectedRoute({
		method: "patch",
		path: "/nodes/{id}",
		tags,
		summary: "Rename and/or move a node",
		description:
			"A folder cannot move into itself or its own subtree (400). Names follow the rule in docs/api.md, section Names. Extension: an editor renames and moves inside a share; a move between two people's files answers 400 `cross_owner_move` (copy instead); renaming or moving your mount changes only your tree; only the owner renames or moves the shared item itself (403 `owner_only`).",
		request: { params: IdParam, body: jsonBody(UpdateNodeBody) },
		responses: {
			200: json(Node, "Updated"),
			...errorResponses("INVALID_REQUEST", "UNAUTHENTICATED", "NOT_FOUND", "NAME_TAKEN", "PAYLOAD_TOO_LARGE", "RATE_LIMITED"),
		},
	}),
	async (c) => {
		const body = c.req.valid("json");
		const caller = c.get("caller");
		const updated = await ownThenShared(c.env, caller, c.req.valid("param").id, "write", async (access) => {
			const input: UpdateNodeInput = { nodeId: access.nodeId };
			if (body.name !== undefined) input.name = body.name;
			if (access.by) input.by = access.by;
			if (body.parent_id !== undefined) {
				const parent = await destinationIn(c.env, caller, access, body.parent_id);
				if (!parent.ok) return parent;
				input.parentId = parent.value;
			}
			const moved = await hubFor(c.env, access.scope.userId).updateNode(input);
			return moved.ok ? ok(asSeen(access, moved.value.node)) : moved;
		});
		return c.json(unwrap(updated), 200);
	},
);

nodeRoutes.openapi(
	protectedRoute({
		method: "delete",
		path: "/nodes/{id}",
		tags,
		summary: "Move a node to the trash (a folder takes its subtree with it), or delete an item in the trash forever",
		description:
			"Without `permanent`, the node moves to the trash and still counts toward storage used. With `permanent=true` (extension), an item listed in the trash is deleted for good, with everything trashed together with it. Answers 204 at once: the item leaves the trash and can no longer be restored from that moment; its deletion runs in the background, in bounded chunks, after which its versions can no longer be downloaded, storage used drops by their bytes, and the journal records `deleted`. Extension, sharing: an editor's delete inside a share moves the node to the owner's trash; deleting forever is the owner's (403 `owner_only`); deleting your mount only takes the share out of your tree (it stays in `GET /v1/shared-with-me`).",
		request: {
			params: IdParam,
			query: z.object({
				permanent: z.enum(["true", "false"]).default("false").openapi({ description: "Delete an item in the trash forever (extension)" }),
				if_empty: z.enum(["true", "false"]).default("false").openapi({
					description:
						"Extension: trash a folder only while it has no live children, else 412 `PRECONDITION_FAILED` (`reason: not_empty`); a sync client deleting a folder it saw empty never takes along files another device added",
				}),
			}),
			headers: z.object({
				"if-match": z.string().max(200).optional().openapi({
					description:
						"Extension: trash a file only while this version is its head, else 412 `PRECONDITION_FAILED` with `details: [{node_id, head_version_id}]`; a delete based on an old version never takes along an edit it did not see",
				}),
			}),
		},
		responses: {
			200: json(Node, "Trashed"),
			204: { description: "Deleted forever" },
			...errorResponses("INVALID_REQUEST", "UNAUTHENTICATED", "NOT_FOUND", "PRECONDITION_FAILED", "RATE_LIMITED"),
		},
	}),
	async (c) => {
		const nodeId = c.req.valid("param").id;
		if (c.req.valid("query").permanent === "true") {
			// Only the owner deletes forever: a member's delete goes to the owner's trash.
			unwrap(
				await ownThenShared(c.env, c.get("caller"), nodeId, "owner", (access) => hubFor(c.env, access.scope.userId).purgeNode({ nodeId }), {
					trashedToo: true,
				}),
			);
			return c.body(null, 204);
		}
		const ifMatch = c.req.valid("header")["if-match"]?.replace(/^W\//, "").replace(/^"|"$/g, "");
		const ifEmpty = c.req.valid("query").if_empty === "true";
		const trashed = await ownThenShared(c.env, c.get("caller"), nodeId, "write", async (access) => {
			const done = await hubFor(c.env, access.scope.userId).trashNode({
				nodeId: access.nodeId,
				...(access.by ? { by: access.by } : {}),
				...(ifMatch !== undefined && { ifMatch }),
				...(ifEmpty && { ifEmpty }),
			});
			return done.ok ? ok(asSeen(access, done.value.node)) : done;
		});
		return c.json(unwrap(trashed), 200);
	},
);

nodeRoutes.openapi(
	protectedRoute({
		method: "delete",
		path: "/trash",
		tags,
		summary: "Empty the trash: delete everything in it forever (extension)",
		description:
			"Every item in the trash leaves it at once and can no longer be restored; the deletion runs in the background like `DELETE /v1/nodes/{id}?permanent=true`, each item ending with a `deleted` journal entry. `deleted` counts the items.",
		responses: {
			200: json(z.object({ deleted: z.number().int() }).openapi("EmptiedTrash"), "How many trashed items were deleted"),
			...errorResponses("UNAUTHENTICATED", "RATE_LIMITED"),
		},
	}),
	async (c) => c.json(unwrap(await hubFor(c.env, c.get("caller").userId).emptyTrash()), 200),
);

nodeRoutes.openapi(
	protectedRoute({
		method: "post",
		path: "/nodes/{id}/restore",
		tags,
		summary: "Restore a node from the trash, with what was deleted together with it",
		description:
			'Goes back to its folder, or to the root if that folder is gone; a taken name gets a " (restored)" suffix. Extension: an editor restores what was deleted inside a share.',
		request: { params: IdParam },
		responses: { 200: json(Node, "Restored"), ...notFound },
	}),
	async (c) => {
		const restored = await ownThenShared(
			c.env,
			c.get("caller"),
			c.req.valid("param").id,
			"write",
			async (access) => {
				const done = await hubFor(c.env, access.scope.userId).restoreNode({
					nodeId: access.nodeId,
					...(access.by ? { by: access.by } : {}),
				});
				return done.ok ? ok(asSeen(access, done.value.node)) : done;
			},
			{ trashedToo: true },
		);
		return c.json(unwrap(restored), 200);
	},
);

nodeRoutes.openapi(
	protectedRoute({
		method: "get",
		path: "/trash",
		tags,
		summary: "What the user deleted, newest first",
		request: { query: PageQuery },
		responses: { 200: json(NodePage, "One page"), ...errorResponses("INVALID_REQUEST", "UNAUTHENTICATED") },
	}),
	async (c) => {
		const caller = c.get("caller");
		const { limit, cursor } = c.req.valid("query");
		return c.json(unwrap(await trashPage(shardFor(c.env, caller), caller.userId, limit, cursor)), 200);
	},
);

nodeRoutes.openapi(
	protectedRoute({
		method: "post",
		path: "/nodes/{id}/copy",
		tags,
		summary: "Copy a file on the server, to any folder you may write in (extension)",
		description:
			"A new file with the same content, in `parent_id` (yours, or a share you edit), named `name` or the source's name (a taken name gets a number). No bytes are uploaded or copied: the new version lists the same stored blocks. This is how something leaves or enters another person's share, since a move between two people's files is refused (`cross_owner_move`): copy, then delete the original. The copy starts its own history and counts toward the storage of the folder's owner. Files only (400 `not_a_file`).",
		request: { params: IdParam, body: jsonBody(CopyBody) },
		responses: {
			201: json(CommitResult, "The copy"),
			...errorResponses("INVALID_REQUEST", "UNAUTHENTICATED", "FORBIDDEN", "NOT_FOUND", "QUOTA_EXCEEDED", "RATE_LIMITED"),
		},
	}),
	async (c) => {
		const body = c.req.valid("json");
		const destination = { parentId: body.parent_id, ...(body.name !== undefined ? { name: body.name } : {}) };
		const { outcome, target } = unwrap(await copyFile(c.env, c.get("caller"), c.req.valid("param").id, destination));
		const { created: _created, ...result } = outcome;
		return c.json({ ...result, node: asSeen(target, result.node) }, 201);
	},
);
