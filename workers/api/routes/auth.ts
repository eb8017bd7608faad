/** Accounts: signup, login, refresh, logout and me (docs/api.md, "Auth"). */
import { createRoute } from "@hono/zod-openapi";
import { hashPassword, needsRehash, verifyPassword, verifyPasswordAgainstDummy } from "../../../src/shared/crypto";
import { shardCount } from "../../../src/shared/db/shards";
import { LoginBody, Me, RefreshBody, Session, SignupBody, TokenPair } from "../../../src/shared/schemas/auth";
import { ApiError, unwrap } from "../errors";
import { requireAuth } from "../middleware/auth";
import { bearer, errorResponses, json, jsonBody, newRouter } from "../openapi";
import { createAccount, findUserByEmail, passwordPeppers, updatePasswordHash } from "../services/accounts";
import { openDirectory } from "../services/directory";
import { createSession, rotateRefreshToken, signOutDevice } from "../services/sessions";
import { attemptSucceeded, clientAddress, countAttempt, loginKeys, signupKeys } from "../services/throttle";
import { hubFor, shardFor } from "../services/hub";
import { usageReport } from "../services/tree";
import { accessTtl, signAccessToken } from "../services/tokens";

export const authRoutes = newRouter();

const DEFAULT_DEVICE_NAME = "Unnamed device";

/** 429 with the seconds to wait, in `Retry-After` and in the envelope's details. */
function rateLimited(message: string, retryAfterSeconds: number): ApiError {
	return new ApiError("RATE_LIMITED", message, [{ retry_after_seconds: retryAfterSeconds }], { "Retry-After": String(retryAfterSeconds) });
}

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
	const body = c.req.valid("json");
	const db = openDirectory(c.env.DIRECTORY);
	const verdict = await countAttempt(db, signupKeys(clientAddress(c.req.header("CF-Connecting-IP"))), 0);
	if (verdict.refuse) throw rateLimited("too many signups from this address; try again later", verdict.retryAfterSeconds);
	const created = unwrap(
		await createAccount(db, {
			email: body.email,
			passwordHash: await hashPassword(body.password, { pepper: (await passwordPeppers(c.env)).current }),
			deviceName: body.device_name ?? DEFAULT_DEVICE_NAME,
			shards: shardCount(c.env),
			quotaBytes: Number(c.env.DEFAULT_QUOTA_BYTES),
			refreshTtlSeconds: Number(c.env.REFRESH_TOKEN_TTL_SECONDS),
		}),
	);
	unwrap(await hubFor(c.env, created.user.id).ensureRoot());
	return c.json(
		{
			user: { id: created.user.id, email: created.user.email },
			device_id: created.deviceId,
			access_token: await signAccessToken(c.env, { userId: created.user.id, deviceId: created.deviceId }),
			refresh_token: created.refreshToken,
			expires_in: accessTtl(c.env),
		},
		201,
	);
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
	const body = c.req.valid("json");
	const db = openDirectory(c.env.DIRECTORY);
	const keys = loginKeys(body.email, clientAddress(c.req.header("CF-Connecting-IP")));
	const verdict = await countAttempt(db, keys, Number(c.env.LOGIN_SLOWDOWN_MS ?? "250"));
	if (verdict.refuse) throw rateLimited("too many failed logins; try again later", verdict.retryAfterSeconds);
	if (verdict.delayMs > 0) await scheduler.wait(verdict.delayMs);
	const user = await findUserByEmail(db, body.email);
	// An unknown email costs the same PBKDF2 time as a wrong password, so
	// timing does not reveal which emails have accounts.
	const peppers = await passwordPeppers(c.env);
	const valid = user
		? await verifyPassword(body.password, user.passwordHash, peppers.all)
		: await verifyPasswordAgainstDummy(body.password, peppers.current);
	if (!user || !valid) throw new ApiError("UNAUTHENTICATED", "wrong email or password");
	await attemptSucceeded(db, keys);
	// Older parameters or an older pepper (or none): re-hashed now that the password is known.
	if (needsRehash(user.passwordHash, peppers.current))
		await updatePasswordHash(db, user.id, await hashPassword(body.password, { pepper: peppers.current }));
	const session = await createSession(c.env, db, user.id, body.device_name ?? DEFAULT_DEVICE_NAME, Number(c.env.REFRESH_TOKEN_TTL_SECONDS));
	return c.json(
		{
			user: { id: user.id, email: user.email },
			device_id: session.deviceId,
			access_token: await signAccessToken(c.env, { userId: user.id, deviceId: session.deviceId }),
			refresh_token: session.refreshToken,
			expires_in: accessTtl(c.env),
		},
		200,
	);
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
	const rotated = unwrap(
		await rotateRefreshToken(c.env, openDirectory(c.env.DIRECTORY), body.refresh_token, Number(c.env.REFRESH_TOKEN_TTL_SECONDS)),
	);
	return c.json(
		{
			access_token: await signAccessToken(c.env, { userId: rotated.userId, deviceId: rotated.deviceId }),
			refresh_token: rotated.refreshToken,
			expires_in: accessTtl(c.env),
		},
		200,
	);
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
