/** Sync: the change journal, long poll and the WebSocket channel (docs/api.md, "Sync: the change journal"). */
import { createRoute, z } from "@hono/zod-openapi";
import {
	BookmarkHeaders,
	ChangesPage,
	ChangesQuery,
	LatestCursor,
	LongpollQuery,
	LongpollResult,
	SyncTicket,
} from "../../../src/shared/schemas/sync";
import { ApiError, unwrap } from "../errors";
import { errorResponses, json, newRouter, protectedRoute } from "../openapi";
import { HUB_TICKET_HEADER, REQUEST_ID_HEADER } from "../../notify/sync-channel";
import { openDirectory } from "../services/directory";
import { hubFor, shardFor } from "../services/hub";
import { changesPage, latestCursor, resolveCursor } from "../services/journal";
import { isDeviceLive } from "../services/sessions";
import { signSyncTicket, verifySyncTicket } from "../services/tokens";

export const syncRoutes = newRouter();

const READ_YOUR_WRITES =
	"Send the newest `Drive-Bookmark` seen (an answer's header, or a WebSocket frame's `bookmark`): the journal is then read at least that far, so a change the client made or was told of is never missing; every answer carries the header back (docs/api.md, \"Read-your-writes (Drive-Bookmark)\").";

const tags = ["Sync"];

syncRoutes.openapi(
	protectedRoute({
		method: "get",
		path: "/changes",
		tags,
		summary: "Changes after a cursor, oldest first",
		description:
			"Without a cursor, starts from the beginning of the journal. The journal keeps 30 days by default; an expired or foreign cursor answers 410 CURSOR_RESET. " +
			READ_YOUR_WRITES,
		request: { query: ChangesQuery, headers: BookmarkHeaders },
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
		description: READ_YOUR_WRITES,
		request: { headers: BookmarkHeaders },
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
			"Answers as soon as a change lands (the user's Durable Object wakes the request; nothing polls), else when the timeout (1–120 s, minus up to 10 % jitter) runs out. `backoff` asks the client to wait that many seconds before polling again. " +
			"The answer's `Drive-Bookmark` header covers the change it announces: send it with the next GET /v1/changes. " +
			READ_YOUR_WRITES,
		request: { query: LongpollQuery, headers: BookmarkHeaders },
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
		// The answer's bookmark leaves in the Drive-Bookmark header (middleware/bookmarks.ts).
		const { changes, backoff } = await hubFor(c.env, caller.userId).waitForChange(from.seq, timeoutMs);
		return c.json(backoff === undefined ? { changes } : { changes, backoff }, 200);
	},
);

syncRoutes.openapi(
	protectedRoute({
		method: "post",
		path: "/sync/ticket",
		tags,
		summary: "A short-lived, single-use ticket for the sync WebSocket",
		description:
			"Browsers cannot send Authorization on a WebSocket upgrade, so the socket authenticates with this ticket in the query string. The ticket is bound to this device and signed; it opens one socket within `expires_in` seconds, and none once the device has signed out.",
		responses: { 200: json(SyncTicket, "The ticket"), ...errorResponses("UNAUTHENTICATED") },
	}),
	async (c) => {
		const caller = c.get("caller");
		const issued = await hubFor(c.env, caller.userId).issueTicket(caller.deviceId);
		const ticket = await signSyncTicket(c.env, { userId: caller.userId, deviceId: caller.deviceId, hubTicket: issued.ticket });
		return c.json({ ticket, expires_in: issued.expiresIn }, 200);
	},
);

syncRoutes.openapi(
	createRoute({
		method: "get",
		path: "/sync/ws",
		tags,
		summary: "The sync WebSocket (upgrade)",
		description:
			'Server frames: `{"type":"hello","cursor","bookmark"}` on open, then `{"type":"changes","cursor","bookmark"}` after changes (coalesced, at most 4 a second), `{"type":"pong"}` for a JSON ping. The text "ping" is answered "pong". Frames carry cursors, never file bodies: fetch /v1/changes. ' +
			'`bookmark` (extension) is a `Drive-Bookmark` entry of the user\'s shard after the change: send it as the `Drive-Bookmark` header of that GET /v1/changes so that the read sees the change, whichever read replica serves it (docs/api.md, "Read-your-writes (Drive-Bookmark)"). ' +
			"A ticket that is forged, expired or used, or whose device has signed out since, answers 401 UNAUTHENTICATED.",
		request: { query: z.object({ ticket: z.string().min(1).max(200) }) },
		responses: { 101: { description: "Switching protocols" }, ...errorResponses("INVALID_REQUEST", "UNAUTHENTICATED") },
	}),
	async (c) => {
		const { ticket } = c.req.valid("query");
		if (c.req.header("Upgrade")?.toLowerCase() !== "websocket")
			throw new ApiError("INVALID_REQUEST", "this route only accepts a WebSocket upgrade");
		// Checked here, so that a forged ticket never reaches (and creates) a Durable Object.
		const claims = await verifySyncTicket(c.env, ticket);
		if (!claims) throw new ApiError("UNAUTHENTICATED", "the ticket is unknown, used or expired");
		// Read now, not from the caller cache: the ticket may predate a sign-out.
		if (!(await isDeviceLive(openDirectory(c.env.DIRECTORY), claims.userId, claims.deviceId)))
			throw new ApiError("UNAUTHENTICATED", "this device has been signed out");
		const headers = new Headers(c.req.raw.headers);
		headers.set(HUB_TICKET_HEADER, claims.hubTicket);
		headers.set(REQUEST_ID_HEADER, c.get("requestId"));
		return hubFor(c.env, claims.userId).fetch(new Request(c.req.raw.url, { headers }));
	},
);
