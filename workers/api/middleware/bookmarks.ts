/**
 * Read-your-writes (docs/decisions/0031-read-your-writes-with-bookmarks.md):
 * the request's shard reads run in D1 sessions opened at the client's
 * `Drive-Bookmark`, and the answer carries the newest bookmark the request
 * knows, its own reads' and its writes' alike.
 */
import { createMiddleware } from "hono/factory";
import { BOOKMARK_HEADER, formatBookmarks, MAX_BOOKMARKS, parseBookmarks } from "../../../src/shared/bookmarks";
import type { AppEnv } from "../env";
import { ApiError } from "../errors";
import { ReadSessions } from "../services/read-sessions";

export const readYourWrites = createMiddleware<AppEnv>(async (c, next) => {
	const header = c.req.header(BOOKMARK_HEADER);
	const given = header === undefined || header.trim() === "" ? new Map<number, string>() : parseBookmarks(header);
	// Refused rather than ignored: a client that sends garbage would otherwise lose read-your-writes without a word.
	if (given === null) {
		const message = `up to ${MAX_BOOKMARKS} "<shard>.<bookmark>" entries, as a response sent them`;
		throw new ApiError("INVALID_REQUEST", `invalid header: ${BOOKMARK_HEADER}: ${message}`, [{ field: BOOKMARK_HEADER, message }]);
	}
	const sessions = new ReadSessions(c.env, given);
	c.env = sessions.env;
	await next();
	if (c.res.status === 101) return;
	const value = formatBookmarks(sessions.newest());
	if (value !== "") c.header(BOOKMARK_HEADER, value);
});
