/**
 * Journal cursors. A cursor names a position in one user's change journal:
 * "every change up to and including seq". It is opaque to clients, but
 * carries the user id so that a cursor of another user is recognised (and
 * answered 410 CURSOR_RESET) rather than silently read against this journal.
 */

export interface JournalPosition {
	userId: string;
	seq: number;
}

const PREFIX = "c1_";

/** Encodes a position as an opaque, URL-safe cursor. */
export function encodeJournalCursor(position: JournalPosition): string {
	return PREFIX + btoa(`${position.userId}:${position.seq}`).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

/** Decodes a cursor; null when it is not one of ours at all. */
export function decodeJournalCursor(cursor: string): JournalPosition | null {
	if (!cursor.startsWith(PREFIX) || cursor.length > 200) return null;
	try {
		const text = atob(cursor.slice(PREFIX.length).replace(/-/g, "+").replace(/_/g, "/"));
		const match = /^([a-z]{3}_[0-9a-z]+):(\d{1,15})$/.exec(text);
		if (!match?.[1] || !match[2]) return null;
		return { userId: match[1], seq: Number(match[2]) };
	} catch {
		return null;
	}
}
