/**
 * The failure-drill control (src/shared/drills.ts): sets the faults of the
 * api worker's isolate and of the notify worker's, and reads both isolates'
 * operation counts. It answers 404, like any unknown path, unless DRILLS is
 * "on", which no deployed config sets; it is not part of the API, so it is
 * not in the OpenAPI document.
 */
import { Hono } from "hono";
import { z } from "zod";
import { clearFaults, operationCounts, setFaults } from "../../../src/shared/drills";
import { ApiError } from "../errors";
import type { AppEnv } from "../env";

const Rule = z.object({
	target: z.enum(["r2.put", "r2.get", "r2.head", "r2.delete", "r2.list", "d1.query", "d1.batch", "do.call"]),
	effect: z.enum(["error", "after", "rate-limit", "hang"]),
	binding: z.string().optional(),
	match: z.string().optional(),
	skip: z.number().int().min(0).optional(),
	times: z.number().int().min(0).optional(),
});

/** `null` clears a worker's faults; absent leaves them as they are. */
const DrillRequest = z.object({
	api: z.array(Rule).nullable().optional(),
	notify: z.array(Rule).nullable().optional(),
	/** Zero both workers' operation counts after reading them. */
	reset: z.boolean().optional(),
});

/** The hub that carries the notify worker's drill calls; any hub shares its isolate's faults. */
const DRILL_HUB = "usr_drills";

export const drillRoutes = new Hono<AppEnv>().post("/__drills", async (c) => {
	if ((c.env as { DRILLS?: string }).DRILLS !== "on") throw new ApiError("NOT_FOUND", "no route for POST /__drills");
	const parsed = DrillRequest.safeParse(await c.req.json().catch(() => null));
	if (!parsed.success) throw new ApiError("INVALID_REQUEST", parsed.error.issues.map((i) => i.message).join("; "));
	const { api, notify, reset = false } = parsed.data;
	if (api === null) clearFaults();
	else if (api !== undefined) setFaults(api);
	// The drill call itself must reach the hub: it goes to the unwrapped binding when the api's own faults block do.call.
	const hub = c.env.USER_HUB.getByName(DRILL_HUB);
	const notifyCounts = await hub.drill(notify === undefined ? undefined : notify, reset);
	return c.json({ api: operationCounts(reset), notify: notifyCounts });
});
