/** Gives every request an id, echoed in `Request-Id` and in error envelopes. */
import { createMiddleware } from "hono/factory";
import { newId } from "../../../src/shared/ids";
import type { AppEnv } from "../env";

export const requestId = createMiddleware<AppEnv>(async (c, next) => {
	const id = newId("req");
	c.set("requestId", id);
	await next();
	c.header("Request-Id", id);
	// Every answer of ours, JSON and errors included, is taken for what its Content-Type says.
	c.header("X-Content-Type-Options", "nosniff");
});
