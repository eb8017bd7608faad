/**
 * Bearer authentication: verifies the access token (jose, HS256 pinned) and
 * checks that its device is still signed in, through the per-isolate cache
 * of the directory (docs/decisions/0030), so a signed-out device is refused
 * within seconds rather than when its token expires.
 */
import { createMiddleware } from "hono/factory";
import { ApiError, unwrap } from "../errors";
import type { AppEnv } from "../env";
import { loadCaller } from "../services/sessions";
import { verifyAccessToken } from "../services/tokens";

export const requireAuth = createMiddleware<AppEnv>(async (c, next) => {
	const header = c.req.header("Authorization") ?? "";
	const match = /^Bearer\s+(\S+)$/i.exec(header);
	if (!match?.[1])
		throw new ApiError("UNAUTHENTICATED", "send Authorization: Bearer <access_token>", undefined, {
			"WWW-Authenticate": 'Bearer realm="drive"',
		});
	const claims = await verifyAccessToken(c.env, match[1]);
	if (!claims) {
		throw new ApiError("UNAUTHENTICATED", "the access token is invalid or expired; refresh it", undefined, {
			"WWW-Authenticate": 'Bearer realm="drive", error="invalid_token"',
		});
	}
	const caller = unwrap(await loadCaller(c.env, claims, (work) => c.executionCtx.waitUntil(work)));
	if (!caller)
		throw new ApiError("UNAUTHENTICATED", "this device has been signed out", undefined, {
			"WWW-Authenticate": 'Bearer realm="drive", error="invalid_token"',
		});
	c.set("caller", caller);
	await next();
});
