/**
 * The web app's sessions (docs/api.md, "Web sessions (browser)"; docs/decisions/0026):
 * signup, login, refresh and logout with the refresh token in an HttpOnly
 * cookie, so that no script of the page can read it. The JSON contract
 * routes of routes/auth.ts are untouched; both call services/accounts.ts.
 */
import { createRoute } from "@hono/zod-openapi";
import type { Context } from "hono";
import { getCookie } from "hono/cookie";
import { createMiddleware } from "hono/factory";
import { LoginBody, SignupBody, type Session } from "../../../src/shared/schemas/auth";
import { WebSession } from "../../../src/shared/schemas/web";
import { ApiError, unwrap } from "../errors";
import type { AppEnv } from "../env";
import { errorResponses, json, jsonBody, newRouter } from "../openapi";
import { credentials, logIn, renewSession, signUp, type Credentials } from "../services/accounts";
import { openDirectory } from "../services/directory";
import { signOutRefreshToken } from "../services/sessions";
import { clearCookieValue, isCrossOrigin, refreshCookie, setCookieValue, webDeviceName, type RefreshCookie } from "../services/web-session";

export const webSessionRoutes = newRouter();

/**
 * Refuses a request from another origin before its body is read, so a
 * refused request changes nothing: the cookie is ambient, and SameSite
 * alone lets a sibling subdomain's page through.
 */
const sameOrigin = createMiddleware<AppEnv>(async (c, next) => {
	// Tokens are in every answer, and a refusal must not be cached in their place.
	c.header("Cache-Control", "no-store");
	if (isCrossOrigin(new URL(c.req.url), c.req.header("Sec-Fetch-Site"), c.req.header("Origin")))
		throw new ApiError("FORBIDDEN", "the web session routes answer only pages of this origin", [{ reason: "cross_site" }]);
	await next();
});

/** Refuses a plain-http origin off loopback, where the cookie would cross the network in clear. */
const secureOrigin = createMiddleware<AppEnv>(async (c, next) => {
	cookieOf(c);
	await next();
});

function cookieOf(c: Context<AppEnv>): RefreshCookie {
	const cookie = refreshCookie(new URL(c.req.url));
	if (cookie === null)
		throw new ApiError("INVALID_REQUEST", "web sessions need https (or http on a loopback address)", [{ reason: "insecure_origin" }]);
	return cookie;
}

/** The session without its refresh token, which goes into the cookie instead. */
function visible(session: Session): WebSession {
	return { user: session.user, device_id: session.device_id, access_token: session.access_token, expires_in: session.expires_in };
}

function storeToken(c: Context<AppEnv>, cookie: RefreshCookie, token: string): void {
	c.header("Set-Cookie", setCookieValue(cookie, token, Number(c.env.REFRESH_TOKEN_TTL_SECONDS)));
}

/** A signup or login body's credentials; without a device_name, the device is named after the browser. */
function webCredentials(c: Context<AppEnv>, body: { email: string; password: string; device_name?: string | undefined }): Credentials {
	const browser = webDeviceName({
		userAgent: c.req.header("User-Agent"),
		brands: c.req.header("Sec-CH-UA"),
		platform: c.req.header("Sec-CH-UA-Platform"),
	});
	return credentials(body, browser, c.req.header("CF-Connecting-IP"));
}

const EXTENSION = 'Extension of the v1 contract (docs/api.md, "Web sessions (browser)").';

const COOKIE_TEXT =
	"The refresh token is set as an HttpOnly; SameSite=Strict; Path=/ cookie for the refresh token's lifetime: `__Host-drive_rt` with Secure on https, `drive_rt` on http://127.0.0.1, http://[::1] or http://localhost; plain http on any other host answers 400 INVALID_REQUEST (reason insecure_origin). A request whose Sec-Fetch-Site is not same-origin, or whose Origin is not this origin, answers 403 FORBIDDEN (reason cross_site) and changes nothing. Answers carry Cache-Control: no-store.";

const signup = createRoute({
	method: "post",
	path: "/auth/web/signup",
	tags: ["Web sessions"],
	summary: "Create an account from the web app; the refresh token goes into a cookie (extension)",
	description: `${EXTENSION} As POST /v1/auth/signup (same limits and errors), but the answer has no refresh_token. ${COOKIE_TEXT} Without device_name, the device is named after the browser ("Chromium on Linux (web)").`,
	middleware: [sameOrigin, secureOrigin] as const,
	request: { body: jsonBody(SignupBody) },
	responses: {
		201: json(WebSession, "Account created; Set-Cookie holds the refresh token"),
		...errorResponses("INVALID_REQUEST", "FORBIDDEN", "EMAIL_TAKEN", "PAYLOAD_TOO_LARGE", "RATE_LIMITED"),
	},
});

webSessionRoutes.openapi(signup, async (c) => {
	const session = unwrap(await signUp(c.env, webCredentials(c, c.req.valid("json"))));
	storeToken(c, cookieOf(c), session.refresh_token);
	return c.json(visible(session), 201);
});

const login = createRoute({
	method: "post",
	path: "/auth/web/login",
	tags: ["Web sessions"],
	summary: "Sign in from the web app; the refresh token goes into a cookie (extension)",
	description: `${EXTENSION} As POST /v1/auth/login (same throttle, device limit and errors), but the answer has no refresh_token. ${COOKIE_TEXT} Without device_name, the device is named after the browser ("Chromium on Linux (web)").`,
	middleware: [sameOrigin, secureOrigin] as const,
	request: { body: jsonBody(LoginBody) },
	responses: {
		200: json(WebSession, "Signed in; Set-Cookie holds the refresh token"),
		...errorResponses("INVALID_REQUEST", "UNAUTHENTICATED", "FORBIDDEN", "PAYLOAD_TOO_LARGE", "RATE_LIMITED"),
	},
});

webSessionRoutes.openapi(login, async (c) => {
	const session = unwrap(await logIn(c.env, webCredentials(c, c.req.valid("json"))));
	storeToken(c, cookieOf(c), session.refresh_token);
	return c.json(visible(session), 200);
});

const refresh = createRoute({
	method: "post",
	path: "/auth/web/refresh",
	tags: ["Web sessions"],
	summary: "Exchange the session cookie for a new access token and a rotated cookie (extension)",
	description: `${EXTENSION} No body: the refresh token is the cookie, rotated as by POST /v1/auth/refresh (a retry with the token just rotated, within 30 s, gets the same successor, so tabs refreshing at once all stay signed in; any later use of a rotated token signs the device out). The answer includes the user, so a reloaded page needs no GET /v1/me. No cookie, or one that is invalid, expired or revoked, answers 401 UNAUTHENTICATED and clears it. ${COOKIE_TEXT}`,
	middleware: [sameOrigin, secureOrigin] as const,
	responses: {
		200: json(WebSession, "New access token; Set-Cookie holds the rotated refresh token"),
		...errorResponses("INVALID_REQUEST", "UNAUTHENTICATED", "FORBIDDEN", "PAYLOAD_TOO_LARGE"),
	},
});

function cookieCopies(header: string | undefined, name: string): number {
	return (header ?? "").split(";").filter((pair) => pair.trim().startsWith(`${name}=`)).length;
}

/** Longer than any refresh token we issue (RefreshBody's bound): refused without a lookup. */
const MAX_TOKEN_LENGTH = 256;

webSessionRoutes.openapi(refresh, async (c) => {
	const cookie = cookieOf(c);
	const token = getCookie(c, cookie.name);
	const refused = (message: string) => new ApiError("UNAUTHENTICATED", message, undefined, { "Set-Cookie": clearCookieValue(cookie) });
	if (token === undefined || token === "" || token.length > MAX_TOKEN_LENGTH) throw refused("no session cookie; sign in");
	// Two cookies of that name: one was planted by another site on this host
	// (another port of a loopback origin, say), to sign this browser into its account.
	if (cookieCopies(c.req.header("Cookie"), cookie.name) > 1) throw refused("more than one session cookie; sign in again");
	const renewed = await renewSession(c.env, token);
	if (!renewed.ok) {
		// The directory not answering is no reason to drop the cookie: the browser retries.
		if (renewed.error.code === "UNAVAILABLE") throw ApiError.from(renewed.error);
		throw refused(renewed.error.message);
	}
	const { caller, tokens } = renewed.value;
	storeToken(c, cookie, tokens.refresh_token);
	return c.json(
		{
			user: { id: caller.userId, email: caller.email },
			device_id: caller.deviceId,
			access_token: tokens.access_token,
			expires_in: tokens.expires_in,
		},
		200,
	);
});

const logout = createRoute({
	method: "post",
	path: "/auth/web/logout",
	tags: ["Web sessions"],
	summary: "Sign the cookie's device out and clear the cookie (extension)",
	description: `${EXTENSION} No body: signs out the device of the session cookie (its refresh and access tokens stop working, its sync sockets close) and clears the cookie. Answers 204 without a cookie too, so signing out twice is harmless. A bearer token is not needed and not read. ${COOKIE_TEXT}`,
	middleware: [sameOrigin, secureOrigin] as const,
	responses: { 204: { description: "Signed out; Set-Cookie clears the cookie" }, ...errorResponses("INVALID_REQUEST", "FORBIDDEN") },
});

webSessionRoutes.openapi(logout, async (c) => {
	const cookie = cookieOf(c);
	const token = getCookie(c, cookie.name);
	if (token !== undefined && token !== "" && token.length <= MAX_TOKEN_LENGTH)
		await signOutRefreshToken(c.env, openDirectory(c.env.DIRECTORY), token);
	c.header("Set-Cookie", clearCookieValue(cookie));
	return c.body(null, 204);
});
