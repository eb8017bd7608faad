/** Builds the api worker's Hono app: middleware, routes, the error envelope, the OpenAPI document. */
import { OpenAPIHono } from "@hono/zod-openapi";
import { cors } from "hono/cors";
import { errorResponse, onError } from "./errors";
import type { AppEnv } from "./env";
import { jsonBodyLimit } from "./middleware/body-limit";
import { readYourWrites } from "./middleware/bookmarks";
import { BOOKMARK_HEADER } from "../../src/shared/bookmarks";
import { RATE_LIMIT_HEADERS, rateLimit } from "./middleware/rate-limit";
import { requestId } from "./middleware/request-id";
import { activityRoutes } from "./routes/activity";
import { authRoutes } from "./routes/auth";
import { conflictRoutes } from "./routes/conflicts";
import { tokenInPathHeaders } from "./middleware/token-in-path";
import { downloadUrlRoutes } from "./routes/download-urls";
import { drillRoutes } from "./routes/drills";
import { opsRoutes } from "./routes/ops";
import { linkRoutes } from "./routes/links";
import { webhookRoutes } from "./routes/webhooks";
import { versionRoutes } from "./routes/versions";
import { shareRoutes } from "./routes/shares";
import { contentRoutes } from "./routes/content";
import { filesBatchRoutes } from "./routes/files-batch";
import { deltaRoutes } from "./routes/delta";
import { nodeRoutes } from "./routes/nodes";
import { syncRoutes } from "./routes/sync";
import { TUS_REQUEST_HEADERS, TUS_RESPONSE_HEADERS, tusDiscovery, tusMethodOverride, tusRoutes } from "./routes/tus";
import { uploadRoutes } from "./routes/uploads";
import { webSessionRoutes } from "./routes/web-session";

export function buildApp(): OpenAPIHono<AppEnv> {
	const app = new OpenAPIHono<AppEnv>();
	// Before everything else: it hands the request back to the app with the method it names.
	app.use("/v1/tus", tusMethodOverride(app));
	app.use("/v1/tus/*", tusMethodOverride(app));
	app.use("*", requestId);
	app.use("/v1/tus", tusDiscovery);
	app.use("/v1/tus/*", tusDiscovery);
	const corsForClients = cors({
		origin: "*",
		allowHeaders: [
			"Authorization",
			"Content-Type",
			"If-Match",
			"If-None-Match",
			"If-Range",
			"Range",
			"Drive-Blocks",
			BOOKMARK_HEADER,
			...TUS_REQUEST_HEADERS,
		],
		allowMethods: ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"],
		exposeHeaders: [
			"ETag",
			"Content-Range",
			"Content-Disposition",
			"Content-Length",
			"Request-Id",
			"Repr-Digest",
			"Retry-After",
			BOOKMARK_HEADER,
			...RATE_LIMIT_HEADERS,
			...TUS_RESPONSE_HEADERS,
		],
		maxAge: 86400,
	});
	// The cookie routes answer only their own origin: no CORS at all, so no
	// later change to the policy (credentials, say) can expose a session.
	app.use("/v1/*", (c, next) => (c.req.path.startsWith("/v1/auth/web/") ? next() : corsForClients(c, next)));
	// After CORS, so that a refusal is readable cross-origin; before any body is read.
	app.use("/v1/*", rateLimit);
	app.use("/v1/*", jsonBodyLimit);
	// Every shard read of the request in a D1 session at the client's bookmark (docs/decisions/0031-read-your-writes-with-bookmarks.md).
	app.use("/v1/*", readYourWrites);
	app.use("/v1/l/*", tokenInPathHeaders);
	app.use("/v1/dl/*", tokenInPathHeaders);

	app.route("/v1", authRoutes);
	app.route("/v1", webSessionRoutes);
	app.route("/v1", nodeRoutes);
	app.route("/v1", contentRoutes);
	app.route("/v1", filesBatchRoutes);
	app.route("/v1", deltaRoutes);
	app.route("/v1", uploadRoutes);
	app.route("/v1", tusRoutes);
	app.route("/v1", syncRoutes);
	app.route("/v1", conflictRoutes);
	app.route("/v1", versionRoutes);
	app.route("/v1", shareRoutes);
	app.route("/v1", linkRoutes);
	app.route("/v1", activityRoutes);
	app.route("/v1", downloadUrlRoutes);
	app.route("/v1", webhookRoutes);
	// Answers 404 unless DRILLS is "on" (src/shared/drills.ts).
	app.route("/", drillRoutes);
	app.route("/", opsRoutes);

	app.openAPIRegistry.registerComponent("securitySchemes", "bearerAuth", { type: "http", scheme: "bearer", bearerFormat: "JWT" });
	// Generated from the route definitions on first request, then served from
	// memory: generating it costs milliseconds of CPU, and it cannot change
	// while the isolate lives.
	let openApiDocument: ReturnType<typeof app.getOpenAPI31Document> | null = null;
	app.get("/v1/openapi.json", (c) => c.json((openApiDocument ??= app.getOpenAPI31Document(OPENAPI_DOCUMENT_INFO))));

	app.notFound((c) => errorResponse(c, "NOT_FOUND", `no route for ${c.req.method} ${new URL(c.req.url).pathname}`));
	app.onError(onError);
	return app;
}

/** The document's info; the paths and schemas come from the routes. */
const OPENAPI_DOCUMENT_INFO: Parameters<OpenAPIHono["getOpenAPI31Document"]>[0] = {
	openapi: "3.1.0",
	info: {
		title: "Drive API",
		version: "1.0.0",
		description:
			"Edge-native file storage and sync. Errors always use the envelope `{ error: { code, message, request_id, details? } }`. " +
			"Every route but CORS preflights and this document is rate limited per route class, per user or per client address: past a limit, " +
			"`429 RATE_LIMITED` with `Retry-After`; every limited answer carries `RateLimit-Policy`, a refusal also `RateLimit` " +
			"(draft-ietf-httpapi-ratelimit-headers-11; classes and limits in docs/api.md, Rate limits). " +
			"Read-your-writes: every answer that read or changed the user's data carries `Drive-Bookmark`; send the newest one seen on every request, " +
			"and reads see at least that state, on any read replica (a malformed one is 400; docs/api.md, Read-your-writes). " +
			"Extension: any route may answer `503 UNAVAILABLE` with `Retry-After` when a part of Drive fails or does not answer in time (a database shard, the user's hub); " +
			"send the same request again after it: a change answered so did not happen, or landed and a retry finds it (docs/api.md, Retries).",
	},
	servers: [{ url: "http://127.0.0.1:8787", description: "Local development" }],
};
