/**
 * The fence of a user who moved to another shard (docs/decisions/0034,
 * migrations/shard/0017): the old shard refuses that user's writes with this
 * message, and both workers turn it into a retryable UNAVAILABLE.
 */

/** The message of the fence's RAISE(ABORT, …). */
export const USER_MOVED = "USER_MOVED";

/** Whether `err`, or a cause of it, is the fence refusing a write. */
export function isUserMoved(err: unknown): boolean {
	for (let e: unknown = err, depth = 0; e !== undefined && depth < 5; depth++) {
		if (String(e instanceof Error ? e.message : e).includes(USER_MOVED)) return true;
		e = e instanceof Error ? e.cause : undefined;
	}
	return false;
}

/** The detail a moved-user refusal carries, so the api re-reads the directory only then (and not for every 503). */
export const MOVED_DETAIL = { reason: "user_moved" } as const;

/** Whether a failure's details say the user moved. */
export function saysUserMoved(details: readonly unknown[] | undefined): boolean {
	return (details ?? []).some((d) => typeof d === "object" && d !== null && (d as { reason?: unknown }).reason === MOVED_DETAIL.reason);
}
