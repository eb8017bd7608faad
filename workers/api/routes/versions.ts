/** Version history: list a file's versions and restore one (an extension of the v1 contract; docs/api.md, "Version history"). */
import { z } from "@hono/zod-openapi";
import { IdParam, PageQuery } from "../../../src/shared/schemas/common";
import { CommitResult, VersionPage } from "../../../src/shared/schemas/nodes";
import { unwrap } from "../errors";
import { errorResponses, json, newRouter, protectedRoute } from "../openapi";
import { hubFor, shardFor } from "../services/hub";
import { versionsPage } from "../services/versions";
import { memberQuota, ownThenShared } from "../services/access";

export const versionRoutes = newRouter();

const tags = ["Versions"];

versionRoutes.openapi(
	protectedRoute({
		method: "get",
		path: "/files/{id}/versions",
		tags,
		summary: "A file's versions, newest first (extension)",
		description:
			"Every version the file keeps, the head first. Each downloads with `GET /v1/files/{id}/content?version_id=`. A file in the trash lists its versions too.",
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
			"Adds a new version with the old one's content, as a commit by this device: the history keeps every version, and no bytes are uploaded or copied (the new version lists the old one's blocks). It counts against storage used like any version. Restoring the head answers 200 and changes nothing. A file in the trash must be restored from the trash first (404 until then).",
		request: { params: IdParam.extend({ version_id: z.string().min(1).max(64) }) },
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
