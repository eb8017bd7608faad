/**
 * OpenAPI plumbing: every route is declared with createRoute() from its zod
 * schemas, so GET /v1/openapi.json is generated, never hand-written.
 */
import { createRoute, OpenAPIHono, z, type RouteConfig } from "@hono/zod-openapi";
import { createMiddleware } from "hono/factory";
import type { ZodError } from "zod";
import { ErrorBody, statusOf, type ErrorCode } from "../../src/shared/errors";
import { ApiError } from "./errors";
import type { AppEnv } from "./env";
import { requireAuth } from "./middleware/auth";

/** Zod issues as the envelope's details: `[{ field, message }]`. */
export function issuesToDetails(error: ZodError): { field: string; message: string }[] {
	return error.issues.map((issue) => ({ field: issue.path.join(".") || "(body)", message: issue.message }));
}

/** A sub-app whose validation failures throw INVALID_REQUEST with details. */
export function newRouter(): OpenAPIHono<AppEnv> {
	return new OpenAPIHono<AppEnv>({
		defaultHook: (result) => {
			if (!result.success) {
				const details = issuesToDetails(result.error as unknown as ZodError);
				throw new ApiError(
					"INVALID_REQUEST",
					`invalid ${result.target}: ${details.map((d) => `${d.field}: ${d.message}`).join("; ")}`,
					details,
				);
			}
		},
	});
}

/** The envelope as an OpenAPI response, for the codes a route can answer. */
export function errorResponses(...codes: ErrorCode[]) {
	const byStatus: Record<string, { description: string; content: { "application/json": { schema: typeof ErrorBody } } }> = {};
	for (const code of codes) {
		const status = String(statusOf(code));
		const existing = byStatus[status];
		byStatus[status] = {
			description: existing ? `${existing.description}, ${code}` : code,
			content: { "application/json": { schema: ErrorBody } },
		};
	}
	return byStatus;
}

/** A JSON response declaration. */
export function json<T extends z.ZodType>(schema: T, description: string) {
	return { description, content: { "application/json": { schema } } } as const;
}

/** A JSON request body declaration; required, so a missing body is a validation error. */
export function jsonBody<T extends z.ZodType>(schema: T) {
	return { required: true, content: { "application/json": { schema } } } as const;
}

/** A JSON request body that may be left out; pair it with {@link emptyJsonBody}, so that an empty one is left out too. */
export function optionalJsonBody<T extends z.ZodType>(schema: T) {
	return { required: false, content: { "application/json": { schema } } } as const;
}

/**
 * An empty body sent as JSON (a POST with `Content-Length: 0`, or fetch's
 * `body: ""`) reads as `{}`, as no body does, rather than as malformed JSON:
 * for the routes of {@link optionalJsonBody}, registered before them.
 */
export const emptyJsonBody = createMiddleware<AppEnv>(async (c, next) => {
	// Hono keeps promises in bodyCache, though its type says values (hono/dist/request.js, cachedBody).
	if (c.req.raw.body === null || c.req.header("Content-Length") === "0") c.req.bodyCache.text = Promise.resolve("{}") as unknown as string;
	await next();
});

/** Raw bytes, as a request body or response content (file content, blocks). */
export const binaryContent = { "application/octet-stream": { schema: z.string().openapi({ format: "binary" }) } } as const;

export const bearer = [{ bearerAuth: [] }];

/**
 * A route for signed-in callers: its OpenAPI `security` and the auth
 * middleware come from one declaration, so the document and the behaviour
 * cannot disagree (a test checks every secured route answers 401 without a token).
 */
export function protectedRoute<R extends Omit<RouteConfig, "security" | "middleware">>(config: R) {
	return createRoute({ ...config, responses: withUnavailable(config.responses), security: bearer, middleware: [requireAuth] as const });
}

/** A route's responses with 503 UNAVAILABLE added: the directory may not answer for a device this isolate has not seen (docs/decisions/0030). */
function withUnavailable<T extends RouteConfig["responses"]>(responses: T): T {
	const existing = responses["503"] as { description: string } | undefined;
	const description = existing ? `${existing.description}, UNAVAILABLE` : "UNAVAILABLE";
	return { ...responses, "503": { description, content: { "application/json": { schema: ErrorBody } } } };
}
