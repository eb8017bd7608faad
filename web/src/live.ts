/**
 * Live updates (docs/decisions/0026-web-app.md): the sync WebSocket (a new
 * ticket per connection, then /v1/sync/ws), reconnect with jittered
 * exponential backoff, long poll after repeated socket failures. The socket
 * only says "something changed"; each wake-up pulls the new journal entries
 * from /v1/changes and publishes them here for the open view to patch itself.
 */
import { signal } from "@preact/signals";
import { DriveApiError, isAbortError } from "../../src/client";
import type { ChangeEntry } from "../../src/shared/schemas/sync";
import { call, changes, client, latestCursor, syncTicket } from "./api";

/** The entries of the latest pull, oldest first; views patch what they show from them. */
export const lastChanges = signal<ChangeEntry[]>([]);

/** Counts journal resets (410 CURSOR_RESET): views list again what they show when it moves. */
export const resets = signal(0);

/** "live" when the socket is open, "polling" on the fallback, "offline" while reconnecting. */
export const liveState = signal<"connecting" | "live" | "polling" | "offline">("connecting");

/** Socket failures in a row after which long poll takes over. */
const FAILURES_BEFORE_POLL = 3;
/** How long long poll runs before the socket is tried again. */
const SOCKET_RETRY_MS = 5 * 60_000;
const BACKOFF_BASE_MS = 500;
const BACKOFF_MAX_MS = 30_000;
const LONGPOLL_SECONDS = 55;

/** Full jitter: a random delay up to the exponential step, so many tabs never reconnect in step. */
function backoff(attempt: number): number {
	return Math.random() * Math.min(BACKOFF_MAX_MS, BACKOFF_BASE_MS * 2 ** attempt);
}

function wait(ms: number, signal: AbortSignal): Promise<void> {
	return new Promise((resolve) => {
		const timer = setTimeout(resolve, ms);
		signal.addEventListener(
			"abort",
			() => {
				clearTimeout(timer);
				resolve();
			},
			{ once: true },
		);
	});
}

/** The socket URL on this origin, ws: or wss: as the page is http: or https:. */
function socketUrl(ticket: string): string {
	const scheme = location.protocol === "https:" ? "wss:" : "ws:";
	return `${scheme}//${location.host}/v1/sync/ws?ticket=${encodeURIComponent(ticket)}`;
}

class Live {
	readonly #stop = new AbortController();
	#cursor: string | null = null;
	#pulling: Promise<void> | null = null;
	#again = false;
	#socket: WebSocket | null = null;
	#failures = 0;

	get signal(): AbortSignal {
		return this.#stop.signal;
	}

	/** Stops; resolves once the socket, if any, is closed. */
	stop(): Promise<void> {
		this.#stop.abort();
		const socket = this.#socket;
		if (socket === null || socket.readyState === WebSocket.CLOSED) return Promise.resolve();
		// Bounded: a socket stuck opening must not hold up a sign-out.
		const closed = new Promise<void>((resolve) => {
			socket.addEventListener("close", () => resolve());
			setTimeout(resolve, 5000);
		});
		// Closing a socket still connecting makes the browser log an error; let it open, then close it.
		if (socket.readyState === WebSocket.CONNECTING) socket.addEventListener("open", () => socket.close());
		else socket.close();
		return closed;
	}

	async run(): Promise<void> {
		while (this.#cursor === null && !this.signal.aborted) {
			try {
				this.#cursor = (await latestCursor()).cursor;
			} catch {
				liveState.value = "offline";
				await wait(backoff(this.#failures++), this.signal);
			}
		}
		this.#failures = 0;
		const forcePoll = localStorage.getItem("drive.transport") === "longpoll";
		while (!this.signal.aborted) {
			if (!forcePoll && this.#failures < FAILURES_BEFORE_POLL && typeof WebSocket === "function") {
				const opened = await this.#socketSession();
				if (this.signal.aborted) return;
				this.#failures = opened ? 0 : this.#failures + 1;
				liveState.value = "offline";
				if (this.#failures < FAILURES_BEFORE_POLL) await wait(backoff(this.#failures), this.signal);
			} else {
				await this.#pollFor(forcePoll ? Infinity : SOCKET_RETRY_MS);
				this.#failures = 0;
			}
		}
	}

	/** One socket from ticket to close; true when the server greeted it (a socket that opens and drops unheard counts as a failure). */
	async #socketSession(): Promise<boolean> {
		let ticket: string;
		try {
			ticket = (await syncTicket()).ticket;
		} catch {
			return false;
		}
		if (this.signal.aborted) return false;
		return new Promise<boolean>((resolve) => {
			let opened = false;
			const socket = new WebSocket(socketUrl(ticket));
			this.#socket = socket;
			socket.addEventListener("message", (event: MessageEvent) => {
				if (typeof event.data !== "string") return;
				let frame: { type?: string; bookmark?: string };
				try {
					frame = JSON.parse(event.data) as { type?: string; bookmark?: string };
				} catch {
					return;
				}
				// The pull then reads at least as far as the change announced (docs/api.md, "Read-your-writes (Drive-Bookmark)").
				if (typeof frame.bookmark === "string") client.noteBookmark(frame.bookmark);
				// hello: (re)connected, catch up on what happened while away; changes: the journal moved.
				if (frame.type === "hello") {
					opened = true;
					liveState.value = "live";
				}
				if (frame.type === "hello" || frame.type === "changes") void this.pull();
			});
			socket.addEventListener("close", () => {
				if (this.#socket === socket) this.#socket = null;
				resolve(opened);
			});
			// An error is always followed by close, which settles the promise.
		});
	}

	/** Long poll for `forMs`, pulling after each wake-up. */
	async #pollFor(forMs: number): Promise<void> {
		const until = Date.now() + forMs;
		liveState.value = "polling";
		void this.pull();
		while (!this.signal.aborted && Date.now() < until) {
			try {
				const res = await call("GET", "/v1/changes/longpoll", {
					query: { cursor: this.#cursor ?? undefined, timeout: LONGPOLL_SECONDS },
					signal: this.signal,
				});
				const answer = (await res.json()) as { changes: boolean; backoff?: number };
				liveState.value = "polling";
				if (answer.changes) await this.pull();
				if (answer.backoff !== undefined) await wait(answer.backoff * 1000, this.signal);
			} catch (err) {
				if (isAbortError(err)) return;
				if (err instanceof DriveApiError && err.code === "CURSOR_RESET") await this.#reset();
				else {
					liveState.value = "offline";
					await wait(backoff(3), this.signal);
				}
			}
		}
	}

	/** Pulls new entries from the cursor; a pull asked for during one runs once more after it. */
	pull(): Promise<void> {
		if (this.#pulling) {
			this.#again = true;
			return this.#pulling;
		}
		this.#pulling = (async () => {
			try {
				do {
					this.#again = false;
					await this.#pullAll();
				} while (this.#again && !this.signal.aborted);
			} finally {
				this.#pulling = null;
			}
		})();
		return this.#pulling;
	}

	async #pullAll(): Promise<void> {
		try {
			for (;;) {
				const page = await changes(this.#cursor ?? undefined, this.signal);
				if (this.signal.aborted) return;
				this.#cursor = page.cursor;
				if (page.entries.length > 0) lastChanges.value = page.entries;
				if (!page.has_more) return;
			}
		} catch (err) {
			if (isAbortError(err)) return;
			if (err instanceof DriveApiError && err.code === "CURSOR_RESET") await this.#reset();
			// Otherwise the next wake-up pulls again from the same cursor: nothing is lost.
		}
	}

	/** The journal no longer reaches back to our cursor: take the latest and have the views list again. */
	async #reset(): Promise<void> {
		try {
			this.#cursor = (await latestCursor()).cursor;
			resets.value++;
		} catch {
			// Still unreachable: the next attempt resets again.
		}
	}
}

let current: Live | null = null;

/** Starts following changes for the signed-in user; the returned function stops (sign-out). */
export function startLive(): () => void {
	void current?.stop();
	const live = new Live();
	current = live;
	liveState.value = "connecting";
	void live.run();
	return () => {
		void live.stop();
		if (current === live) current = null;
	};
}

/**
 * Stops live updates and waits for the socket to close: before a sign-out,
 * so the server never revokes the device under a socket still opening.
 */
export async function stopLive(): Promise<void> {
	const live = current;
	current = null;
	await live?.stop();
}
