/**
 * The browser session (docs/decisions/0026-web-app.md): the refresh token
 * lives in an HttpOnly cookie the page cannot read, set and rotated by
 * `/v1/auth/web/*`; the access token lives only in memory, in this module.
 *
 * Tabs share the cookie, so refreshes are serialised across tabs with a Web
 * Lock and the new access token is shared over a BroadcastChannel: N tabs
 * make one refresh, not N. (The server also answers a refresh token reused
 * within 30 s of its rotation with the same successor, so even an unlucky
 * race cannot sign a tab out.)
 */
import { signal } from "@preact/signals";
import { toApiError } from "../../src/client";

export interface User {
	id: string;
	email: string;
}

interface SessionAnswer {
	user: User;
	device_id: string;
	access_token: string;
	expires_in: number;
}

/** The signed-in user, null when signed out, undefined while the page is finding out. */
export const user = signal<User | null | undefined>(undefined);

/** True while a sign-out is on its way to the server (from this tab or another). */
export const leaving = signal(false);

let accessToken: string | null = null;
/** Milliseconds since the epoch after which the access token is refreshed before use. */
let refreshAfter = 0;
let inFlight: Promise<boolean> | null = null;

const channel = typeof BroadcastChannel === "function" ? new BroadcastChannel("drive-session") : null;
type TabMessage = { type: "token"; answer: SessionAnswer; at: number } | { type: "leaving" } | { type: "signed-out" };
channel?.addEventListener("message", (event: MessageEvent<TabMessage>) => {
	const message = event.data;
	if (message.type === "token") adopt(message.answer, message.at);
	else if (message.type === "leaving") leaving.value = true;
	else clear();
});

function adopt(answer: SessionAnswer, at = Date.now()): void {
	accessToken = answer.access_token;
	// Refresh a minute early (or at half-life for short tokens), so a request never leaves with a token about to expire.
	refreshAfter = at + Math.max(answer.expires_in * 500, answer.expires_in * 1000 - 60_000);
	user.value = answer.user;
}

function clear(): void {
	leaving.value = false;
	accessToken = null;
	refreshAfter = 0;
	user.value = null;
}

async function post(path: string, body?: unknown): Promise<Response> {
	const init: RequestInit = { method: "POST", credentials: "same-origin", headers: {} };
	if (body !== undefined) {
		init.headers = { "Content-Type": "application/json" };
		init.body = JSON.stringify(body);
	}
	return fetch(path, init);
}

async function answerOf(res: Response): Promise<SessionAnswer> {
	if (!res.ok) throw await toApiError(res);
	return (await res.json()) as SessionAnswer;
}

function share(answer: SessionAnswer): void {
	channel?.postMessage({ type: "token", answer, at: Date.now() } satisfies TabMessage);
}

export async function signUp(email: string, password: string): Promise<void> {
	const answer = await answerOf(await post("/v1/auth/web/signup", { email, password }));
	adopt(answer);
	share(answer);
}

export async function signIn(email: string, password: string): Promise<void> {
	const answer = await answerOf(await post("/v1/auth/web/login", { email, password }));
	adopt(answer);
	share(answer);
}

/** Signs this browser out everywhere it is open: the device is revoked and the cookie cleared. */
export async function signOut(): Promise<void> {
	// Live updates stop in every tab before the server revokes the device, so
	// none is caught reconnecting with a ticket that is about to stop working.
	leaving.value = true;
	channel?.postMessage({ type: "leaving" } satisfies TabMessage);
	try {
		await fetch("/v1/auth/web/logout", { method: "POST", credentials: "same-origin" });
	} catch {
		// Offline: the cookie outlives this call, and the device stays signed in until a later sign-out reaches the server.
	}
	clear();
	channel?.postMessage({ type: "signed-out" } satisfies TabMessage);
}

/**
 * Gets a new access token from the cookie. Resolves false when there is no
 * session (no cookie, or it was revoked). One refresh at a time per page,
 * and across tabs through the lock: a tab that waited for the lock uses the
 * token another tab just shared instead of refreshing again.
 */
export function refresh(): Promise<boolean> {
	inFlight ??= (async () => {
		const before = accessToken;
		const run = async (): Promise<boolean> => {
			// Another tab refreshed while this one waited for the lock.
			if (accessToken !== null && accessToken !== before && Date.now() < refreshAfter) return true;
			const res = await post("/v1/auth/web/refresh");
			if (res.status === 401) {
				clear();
				return false;
			}
			const answer = await answerOf(res);
			adopt(answer);
			share(answer);
			return true;
		};
		try {
			return typeof navigator.locks?.request === "function" ? await navigator.locks.request("drive-refresh", run) : await run();
		} finally {
			inFlight = null;
		}
	})();
	return inFlight;
}

/** The access token for the next request, refreshed first when it is about to expire; null when signed out. */
export async function currentToken(): Promise<string | null> {
	if (accessToken === null || Date.now() >= refreshAfter) {
		if (!(await refresh())) return null;
	}
	return accessToken;
}

/** On page load: resume the session the cookie holds, if any. */
export async function resume(): Promise<void> {
	try {
		await refresh();
	} catch {
		// The server could not be reached: show the sign-in page, which says so when used.
		if (user.value === undefined) user.value = null;
	}
}
