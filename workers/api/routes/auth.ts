/** Accounts: signup, login, refresh, logout and me (docs/api.md, "Auth"). */
import { createRoute } from "@hono/zod-openapi";
import { DeleteAccountBody, LoginBody, Me, RefreshBody, Session, SignupBody, TokenPair } from "../../../src/shared/schemas/auth";
import { unwrap } from "../errors";
import { requireAuth } from "../middleware/auth";
import { bearer, errorResponses, json, jsonBody, newRouter } from "../openapi";
import { credentials, deleteAccount, logIn, renewSession, signUp } from "../services/accounts";
import { openDirectory } from "../services/directory";
import { signOutDevice } from "../services/sessions";
import { shardFor } from "../services/hub";
import { usageReport } from "../services/tree";

export const authRoutes = newRouter();

const DEFAULT_DEVICE_NAME = "Unnamed device";

const signup = createRoute({
	method: "post",
	path: "/auth/signup",
	tags: ["Auth"],
	summary: "Create an account; the first device is signed in",
	description:
		"At most 10 signups per client address (an IPv6 /64) an hour; more are refused with 429 RATE_LIMITED and Retry-After. An email that already has an account answers 409 EMAIL_TAKEN.",
	request: { body: jsonBody(SignupBody) },
	responses: {
		201: json(Session, "Account created"),
		...errorResponses("INVALID_REQUEST", "EMAIL_TAKEN", "PAYLOAD_TOO_LARGE", "RATE_LIMITED"),
	},
});

authRoutes.openapi(signup, async (c) => {
	const session = unwrap(await signUp(c.env, credentials(c.req.valid("json"), DEFAULT_DEVICE_NAME, c.req.header("CF-Connecting-IP"))));
	return c.json(session, 201);
});

const login = createRoute({
	method: "post",
	path: "/auth/login",
	tags: ["Auth"],
	summary: "Sign in; each login registers a new device",
	description:
		"Attempts are counted per email, per client address (an IPv6 /64) and per email from one address, in 15-minute windows; a successful login takes its attempt back. Past 5 for an email, or 20 for an address, each attempt is delayed (doubling, at most 5 s). Past 10 for an email from one address, or 50 for an address, attempts are refused with 429 RATE_LIMITED and Retry-After, even with the right password. An email alone is never refused, so its owner can always sign in from another address. A user keeps at most 100 devices: a login past that deletes signed-out devices first, then signs out the device used least recently.",
	request: { body: jsonBody(LoginBody) },
	responses: {
		200: json(Session, "Signed in"),
		...errorResponses("INVALID_REQUEST", "UNAUTHENTICATED", "PAYLOAD_TOO_LARGE", "RATE_LIMITED"),
	},
});

authRoutes.openapi(login, async (c) => {
	const session = unwrap(await logIn(c.env, credentials(c.req.valid("json"), DEFAULT_DEVICE_NAME, c.req.header("CF-Connecting-IP"))));
	return c.json(session, 200);
});

const refresh = createRoute({
	method: "post",
	path: "/auth/refresh",
	tags: ["Auth"],
	summary: "Exchange a refresh token for new tokens; the old refresh token stops working",
	description:
		"A retry with the refresh token just rotated, within 30 s, answers the same refresh token again (and a fresh access token), so a client that lost the answer stays signed in. Any other use of a rotated refresh token signs the device out and closes its sync sockets (theft detection).",
	request: { body: jsonBody(RefreshBody) },
	responses: { 200: json(TokenPair, "New tokens"), ...errorResponses("INVALID_REQUEST", "UNAUTHENTICATED", "PAYLOAD_TOO_LARGE") },
});

authRoutes.openapi(refresh, async (c) => {
	const body = c.req.valid("json");
	return c.json(unwrap(await renewSession(c.env, body.refresh_token)).tokens, 200);
});

const logout = createRoute({
	method: "post",
	path: "/auth/logout",
	tags: ["Auth"],
	summary: "Sign this device out: its refresh and access tokens stop working, its sync sockets close",
	security: bearer,
	middleware: [requireAuth] as const,
	responses: { 204: { description: "Signed out" }, ...errorResponses("UNAUTHENTICATED") },
});

authRoutes.openapi(logout, async (c) => {
	const caller = c.get("caller");
	await signOutDevice(c.env, openDirectory(c.env.DIRECTORY), caller.userId, caller.deviceId);
	return c.body(null, 204);
});

const me = createRoute({
	method: "get",
	path: "/me",
	tags: ["Auth"],
	summary: "The signed-in user, this device, and storage usage",
	security: bearer,
	middleware: [requireAuth] as const,
	responses: { 200: json(Me, "The caller"), ...errorResponses("UNAUTHENTICATED") },
});

authRoutes.openapi(me, async (c) => {
	// The caller (cached, services/sessions.ts) carries the email: one read, of the usage.
	const caller = c.get("caller");
	return c.json(
		{
			user: { id: caller.userId, email: caller.email },
			device: { id: caller.deviceId, name: caller.deviceName },
			usage: await usageReport(shardFor(c.env, caller), caller.userId, caller.quotaBytes),
		},
		200,
	);
});

const deleteMe = createRoute({
	method: "delete",
	path: "/me",
	tags: ["Auth"],
	summary: "Delete my account, with the password asked again (extension)",
	description:
		'Answers 204 once every session of the account has ended: every device is signed out and the password stops working. Every file, version and folder is then deleted in the background, like deleting forever, and the account leaves the directory last; blocks other accounts hold are kept. The account first leaves every share it is in, and the shares it owns end: their members lose their mounts, as when a share is deleted, and keep their own files. A wrong password answers 403 with `reason: "wrong_password"` and counts like a failed login.',
	security: bearer,
	middleware: [requireAuth] as const,
	request: { body: jsonBody(DeleteAccountBody) },
	responses: { 204: { description: "Deleting" }, ...errorResponses("INVALID_REQUEST", "UNAUTHENTICATED", "FORBIDDEN", "RATE_LIMITED") },
});

authRoutes.openapi(deleteMe, async (c) => {
	const caller = c.get("caller");
	unwrap(await deleteAccount(c.env, caller, c.req.valid("json").password, c.req.header("CF-Connecting-IP")));
	return c.body(null, 204);
});
