/**
 * Live updates (stub: WP3 builds it): the sync WebSocket (ticket, then
 * /v1/sync/ws), reconnect with jittered backoff, long poll as the fallback;
 * on each wake-up, the new journal entries are pulled from /v1/changes and
 * published here for the open view to patch itself.
 */
import { signal } from "@preact/signals";
import type { ChangeEntry } from "../../src/shared/schemas/sync";

/** The entries of the latest pull, oldest first; views patch what they show from them. */
export const lastChanges = signal<ChangeEntry[]>([]);

/** "live" when the socket is open, "polling" on the fallback, "offline" while reconnecting. */
export const liveState = signal<"connecting" | "live" | "polling" | "offline">("connecting");

export function startLive(): () => void {
	return () => undefined;
}
