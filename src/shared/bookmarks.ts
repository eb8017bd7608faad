/**
 * Read-your-writes bookmarks (docs/decisions/0031-read-your-writes-with-bookmarks.md):
 * the `Drive-Bookmark` header names, per shard, the newest D1 bookmark a
 * client has seen, as `<shard>.<bookmark>` entries separated by commas. The
 * api opens its read session of a shard at the entry of that shard, so the
 * read sees at least what the client saw; an entry of another shard says
 * nothing about this one and is ignored.
 *
 * Pure, web-standard code: the client library (and with it the web app)
 * imports it.
 */

/** The request and response header. */
export const BOOKMARK_HEADER = "Drive-Bookmark";

/** Entries a header may carry; a client keeps at most this many (the shards it reads). */
export const MAX_BOOKMARKS = 16;

/** Newest D1 bookmark per shard index. */
export type Bookmarks = Map<number, string>;

/** One entry: a shard index and a token of the characters D1 bookmarks use. */
const ENTRY = /^(0|[1-9][0-9]{0,3})\.([0-9A-Za-z-]{1,200})$/;

/**
 * The shape of a D1 bookmark: three 8-digit hex fields and a hash
 * (d1/reference/time-travel shows `00000085-0000024c-00004c6d-<64 hex>`; local
 * D1 answers 32 hex digits there). A token of another shape is ignored
 * rather than handed to D1, which would fail the query with it.
 */
const D1_BOOKMARK = /^[0-9a-f]{8}-[0-9a-f]{8}-[0-9a-f]{8}-[0-9a-f]{32,128}$/;

/** Whether `token` has the shape of a D1 bookmark. */
export function isD1Bookmark(token: string): boolean {
	return D1_BOOKMARK.test(token);
}

/**
 * Parses a `Drive-Bookmark` value. Entries whose token is not a D1 bookmark
 * are left out; of two entries of one shard the newer wins.
 * @returns null when the value does not follow the grammar (the api answers 400).
 */
export function parseBookmarks(value: string): Bookmarks | null {
	const out: Bookmarks = new Map();
	const parts = value.split(",").map((part) => part.trim());
	if (parts.length > MAX_BOOKMARKS) return null;
	for (const part of parts) {
		const match = ENTRY.exec(part);
		if (!match?.[1] || !match[2]) return null;
		if (isD1Bookmark(match[2])) noteBookmark(out, Number(match[1]), match[2]);
	}
	return out;
}

/** The header value of `bookmarks`, shards in order; "" when there are none. */
export function formatBookmarks(bookmarks: Bookmarks): string {
	return [...bookmarks.entries()]
		.sort(([a], [b]) => a - b)
		.map(([shard, bookmark]) => `${shard}.${bookmark}`)
		.join(", ");
}

/**
 * Whether bookmark `a` is newer than `b` (both of one database). D1
 * bookmarks sort oldest to newest as strings (d1/reference/time-travel).
 */
export function isNewer(a: string, b: string | undefined): boolean {
	return b === undefined || a > b;
}

/**
 * Keeps `bookmark` for `shard` if it is newer than the one kept; an updated
 * entry moves to the end, so the first entry is the one updated longest ago.
 * @returns whether it was kept.
 */
export function noteBookmark(into: Bookmarks, shard: number, bookmark: string): boolean {
	if (!isNewer(bookmark, into.get(shard))) return false;
	into.delete(shard);
	into.set(shard, bookmark);
	return true;
}

/** Keeps every entry of `from` that is newer; past MAX_BOOKMARKS, drops the entries updated longest ago. */
export function mergeBookmarks(into: Bookmarks, from: Bookmarks): void {
	for (const [shard, bookmark] of from) noteBookmark(into, shard, bookmark);
	for (const shard of into.keys()) {
		if (into.size <= MAX_BOOKMARKS) break;
		into.delete(shard);
	}
}
