/**
 * Caps JSON request bodies before anything reads them. A JSON body is read
 * and parsed whole before zod sees it, so without a cap one request could
 * hold most of the isolate's 128 MB, and every request in flight in that
 * isolate would fail with it. Routes that stream raw bytes (file content,
 * blocks, tus, batches of files) keep their own limits.
 */
import { bodyLimit } from "hono/body-limit";
import { createMiddleware } from "hono/factory";
import type { MiddlewareHandler } from "hono";
import { ApiError } from "../errors";
import type { AppEnv } from "../env";

/** Signup, login, refresh: an email, a password of up to 1,024 characters (6 bytes each once JSON-escaped) and a device name. */
export const AUTH_BODY_LIMIT = 16 * 1024;

/** A block list or part of one: up to 163,840 entries of about 86 bytes each in compact JSON. */
export const BLOCK_LIST_BODY_LIMIT = 16 * 1024 * 1024;

/** Every other JSON body: names, ids, options. */
export const JSON_BODY_LIMIT = 64 * 1024;

const RAW_BODY = [
	/^PUT \/v1\/files\/content$/,
	/^POST \/v1\/files\/batch$/,
	/^PUT \/v1\/l\/[^/]+\/files$/,
	/^PUT \/v1\/uploads\/[^/]+\/blocks(\/[^/]+)?$/,
	/^[A-Z]+ \/v1\/tus(\/.*)?$/,
];
const BLOCK_LIST = [/^POST \/v1\/uploads$/, /^POST \/v1\/uploads\/[^/]+\/block-list$/];

/** The body limit of a route, or null for a route that streams raw bytes. */
export function bodyLimitOf(method: string, path: string): number | null {
	const route = `${method} ${path}`;
	if (RAW_BODY.some((re) => re.test(route))) return null;
	if (BLOCK_LIST.some((re) => re.test(route))) return BLOCK_LIST_BODY_LIMIT;
	if (path.startsWith("/v1/auth/")) return AUTH_BODY_LIMIT;
	return JSON_BODY_LIMIT;
}

function limiter(maxSize: number): MiddlewareHandler<AppEnv> {
	return bodyLimit({
		maxSize,
		onError: () => {
			throw new ApiError("PAYLOAD_TOO_LARGE", `the request body is over this route's limit of ${maxSize} bytes`, [
				{ limit_bytes: maxSize },
			]);
		},
	});
}

const limiters = new Map([AUTH_BODY_LIMIT, BLOCK_LIST_BODY_LIMIT, JSON_BODY_LIMIT].map((size) => [size, limiter(size)]));

/**
 * Answers 413 PAYLOAD_TOO_LARGE to a JSON body over its route's limit: at
 * once from Content-Length, or as soon as a body without one passes it.
 */
export const jsonBodyLimit = createMiddleware<AppEnv>(async (c, next) => {
	const limit = bodyLimitOf(c.req.method, c.req.path);
	const check = limit === null ? undefined : limiters.get(limit);
	if (!check) return next();
	return check(c, next);
});
