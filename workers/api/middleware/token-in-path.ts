/**
 * Every answer of a route whose token is in its path (public links under
 * /v1/l/, download URLs under /v1/dl/): no Referer may carry the token away,
 * and no cache may keep what only its holder should see.
 */
import { createMiddleware } from "hono/factory";
import type { AppEnv } from "../env";

export const tokenInPathHeaders = createMiddleware<AppEnv>(async (c, next) => {
	await next();
	c.res.headers.set("Referrer-Policy", "no-referrer");
	c.res.headers.set("Cache-Control", "private, no-store");
});
