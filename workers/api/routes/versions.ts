/** Version history: list a file's versions, restore, pin, label and delete one (an extension of the v1 contract; docs/api.md, "Version history"). */
import { z } from "@hono/zod-openapi";
import { IdParam, PageQuery } from "../../../src/shared/schemas/common";
import { CommitResult, UpdateVersionBody, Version, VersionPage } from "../../../src/shared/schemas/nodes";
import { unwrap } from "../errors";
import { errorResponses, json, jsonBody, newRouter, protectedRoute } from "../openapi";
import { hubFor, shardFor } from "../services/hub";
import { versionsPage } from "../services/versions";
import { memberQuota, ownThenShared } from "../services/access";

export const versionRoutes = newRouter();

const tags = ["Versions"];

const VersionParams = IdParam.extend({ version_id: z.string().min(1).max(64) });

versionRoutes.openapi(
	protectedRoute({
		method: "get",
		path: "/files/{id}/versions",
		tags,
		summary: "A file's versions, newest first (extension)",
		description:
			'Extension of the v1 contract. Every version the file keeps, the head first (`is_head`), with `keep_forever`, `label` and `author_id`; retention thins the rest (docs/api.md, "Version history"). Each downloads with `GET /v1/files/{id}/content?version_id=`. A file in the trash lists its versions too.',
		request: { params: IdParam, query: PageQuery },
		responses: { 200: json(VersionPage, "One page"), ...errorResponses("INVALID_REQUEST", "UNAUTHENTICATED", "NOT_FOUND") },
	}),
	async (c) => {
		const { limit, cursor } = c.req.valid("query");
		const page = await ownThenShared(c.env, c.get("caller"), c.req.valid("param").id, "write", (access) =>
			versionsPage(shardFor(c.env, access.scope), access.scope.userId, access.nodeId, limit, cursor),
		);
		return c.json(unwrap(page), 200);
	},
);

versionRoutes.openapi(
	protectedRoute({
		method: "post",
		path: "/files/{id}/versions/{version_id}/restore",
		tags,
		summary: "Make an earlier version the file's head again (extension)",
		description:
			"Extension of the v1 contract. Adds a new version with the old one's content, as a commit by this device: the old version stays in the history, and no bytes are uploaded or copied (the new version lists the old one's blocks). It counts against storage used like any version. Restoring the head answers 200 and changes nothing. A file in the trash must be restored from the trash first (404 until then).",
		request: { params: VersionParams },
		responses: {
			200: json(CommitResult, "The head was already that version"),
			201: json(CommitResult, "Restored as a new version"),
			...errorResponses("UNAUTHENTICATED", "NOT_FOUND", "QUOTA_EXCEEDED", "RATE_LIMITED"),
		},
	}),
	async (c) => {
		const caller = c.get("caller");
		const { id, version_id } = c.req.valid("param");
		const restored = await ownThenShared(c.env, caller, id, "write", async (access) => {
			const actor = { deviceId: caller.deviceId, deviceName: caller.deviceName, ...(access.by ? { userId: access.by } : {}) };
			const input = { nodeId: access.nodeId, versionId: version_id, actor, quotaBytes: access.scope.quotaBytes };
			return memberQuota(access, await hubFor(c.env, access.scope.userId).restoreVersion(input));
		});
		const { created, ...result } = unwrap(restored);
		return c.json(result, created ? 201 : 200);
	},
);

versionRoutes.openapi(
	protectedRoute({
		method: "patch",
		path: "/files/{id}/versions/{version_id}",
		tags,
		summary: "Pin, unpin or label a version (extension)",
		description:
			'Extension of the v1 contract. `keep_forever: true` pins the version and a non-null `label` names it: retention never drops a pinned or labelled version (docs/api.md, "Version history"). A file keeps at most 200 pinned or labelled versions; one more answers 400 with `details: [{reason: "too_many_pinned"}]`. Fields left out stay as they are; a change that changes nothing answers 200 and writes nothing. Each change is recorded in the activity log.',
		request: { params: VersionParams, body: jsonBody(UpdateVersionBody) },
		responses: {
			200: json(Version, "The version as it is now"),
			...errorResponses("INVALID_REQUEST", "UNAUTHENTICATED", "FORBIDDEN", "NOT_FOUND", "RATE_LIMITED"),
		},
	}),
	async (c) => {
		const caller = c.get("caller");
		const { id, version_id } = c.req.valid("param");
		const body = c.req.valid("json");
		const actor = { deviceId: caller.deviceId, deviceName: caller.deviceName };
		// The history's keeping is the owner's call: share members get 403 (owner_only).
		const version = unwrap(
			await ownThenShared(c.env, caller, id, "owner", () =>
				hubFor(c.env, caller.userId).updateVersion({
					nodeId: id,
					versionId: version_id,
					keepForever: body.keep_forever,
					label: body.label,
					actor,
				}),
			),
		);
		return c.json(version, 200);
	},
);

versionRoutes.openapi(
	protectedRoute({
		method: "delete",
		path: "/files/{id}/versions/{version_id}",
		tags,
		summary: "Delete a version that is not the head (extension)",
		description:
			'Extension of the v1 contract. The version stops being listed, downloaded or restorable, and storage used drops by its size; blocks no other version of yours lists are freed like those of a file deleted from the trash. The head cannot be deleted: 400 with `details: [{reason: "head_version"}]`. Recorded in the activity log.',
		request: { params: VersionParams },
		responses: {
			204: { description: "Deleted" },
			...errorResponses("INVALID_REQUEST", "UNAUTHENTICATED", "FORBIDDEN", "NOT_FOUND", "RATE_LIMITED"),
		},
	}),
	async (c) => {
		const caller = c.get("caller");
		const { id, version_id } = c.req.valid("param");
		const actor = { deviceId: caller.deviceId, deviceName: caller.deviceName };
		unwrap(
			await ownThenShared(c.env, caller, id, "owner", () =>
				hubFor(c.env, caller.userId).deleteVersion({ nodeId: id, versionId: version_id, actor }),
			),
		);
		return c.body(null, 204);
	},
);
