/** Sync: the change journal, long poll and the WebSocket channel (API.md "Commits, conflicts and the change journal"). */
import { createRoute, z } from "@hono/zod-openapi";
import { ChangesPage, ChangesQuery, LatestCursor, LongpollQuery, LongpollResult, SyncTicket } from "../../../src/shared/schemas/sync";
import { ApiError, unwrap } from "../errors";
import { errorResponses, json, newRouter, protectedRoute } from "../openapi";
import { hubFor, shardFor } from "../services/hub";
import { changesPage, latestCursor, resolveCursor } from "../services/journal";

export const syncRoutes = newRouter();

const tags = ["Sync"];

syncRoutes.openapi(
	protectedRoute({
		method: "get",
		path: "/changes",
		tags,
		summary: "Changes after a cursor, oldest first",
		description:
			"Without a cursor, starts from the beginning of the journal. The journal keeps 30 days by default; an expired or foreign cursor answers 410 CURSOR_RESET.",
		request: { query: ChangesQuery },
		responses: { 200: json(ChangesPage, "One page of changes"), ...errorResponses("INVALID_REQUEST", "UNAUTHENTICATED", "CURSOR_RESET") },
	}),
	async (c) => {
		const caller = c.get("caller");
		const query = c.req.valid("query");
		return c.json(unwrap(await changesPage(shardFor(c.env, caller), caller.userId, query.cursor, query.limit)), 200);
	},
);

syncRoutes.openapi(
	protectedRoute({
		method: "get",
		path: "/changes/latest",
		tags,
		summary: "The cursor of the newest change: list the tree, then follow changes from here",
		responses: { 200: json(LatestCursor, "The current cursor"), ...errorResponses("UNAUTHENTICATED") },
	}),
	async (c) => {
		const caller = c.get("caller");
		return c.json({ cursor: await latestCursor(shardFor(c.env, caller), caller.userId) }, 200);
	},
);

syncRoutes.openapi(
	protectedRoute({
		method: "get",
		path: "/changes/longpoll",
		tags,
		summary: "Wait until something newer than the cursor exists",
		description:
			"Answers as soon as a change lands (the user's Durable Object wakes the request; nothing polls), else when the timeout (1–120 s, minus up to 10 % jitter) runs out. `backoff` asks the client to wait that many seconds before polling again.",
		request: { query: LongpollQuery },
		responses: {
			200: json(LongpollResult, "Whether there are changes"),
			...errorResponses("INVALID_REQUEST", "UNAUTHENTICATED", "CURSOR_RESET"),
		},
	}),
	async (c) => {
		const caller = c.get("caller");
		const query = c.req.valid("query");
		const from = unwrap(await resolveCursor(shardFor(c.env, caller), caller.userId, query.cursor));
		if (from.latest > from.seq) return c.json({ changes: true }, 200);
		// Jitter spreads the re-polls of many clients that started together.
		const timeoutMs = Math.round(query.timeout * 1000 * (0.9 + Math.random() * 0.1));
		const result = await hubFor(c.env, caller.userId).waitForChange(from.seq, timeoutMs);
		return c.json(result, 200);
	},
);

syncRoutes.openapi(
	protectedRoute({
		method: "post",
		path: "/sync/ticket",
		tags,
		summary: "A short-lived, single-use ticket for the sync WebSocket",
		description:
			"Browsers cannot send Authorization on a WebSocket upgrade, so the socket authenticates with this ticket in the query string.",
		responses: { 200: json(SyncTicket, "The ticket"), ...errorResponses("UNAUTHENTICATED") },
	}),
	async (c) => {
		const caller = c.get("caller");
		const issued = await hubFor(c.env, caller.userId).issueTicket(caller.deviceId);
		return c.json({ ticket: issued.ticket, expires_in: issued.expiresIn }, 200);
	},
);

syncRoutes.openapi(
	createRoute({
		method: "get",
		path: "/sync/ws",
		tags,
		summary: "The sync WebSocket (upgrade)",
		description:
			'Server frames: `{"type":"hello","cursor"}` on open, then `{"type":"changes","cursor"}` after changes (coalesced, at most 4 a second), `{"type":"pong"}` for a JSON ping. The text "ping" is answered "pong". Frames carry cursors, never file bodies: fetch /v1/changes.',
		request: { query: z.object({ ticket: z.string().min(1).max(200) }) },
		responses: { 101: { description: "Switching protocols" }, ...errorResponses("INVALID_REQUEST", "UNAUTHENTICATED") },
	}),
	async (c) => {
		const { ticket } = c.req.valid("query");
		if (c.req.header("Upgrade")?.toLowerCase() !== "websocket")
			throw new ApiError("INVALID_REQUEST", "this route only accepts a WebSocket upgrade");
		const userId = ticket.split(".")[0] ?? "";
		if (!/^usr_[0-9a-z]{26}$/.test(userId)) throw new ApiError("UNAUTHENTICATED", "the ticket is unknown, used or expired");
		return hubFor(c.env, userId).fetch(c.req.raw);
	},
);
