/** The OpenAPI document, and what every route shares: the error envelope, Request-Id, CORS, unknown routes. */
import { describe, expect, it } from "vitest";
import { call, expectError, expectJson, mkdir, put, signup, upload, type ErrorEnvelope } from "./helpers";

type Operation = { security?: Record<string, string[]>[]; responses?: Record<string, unknown> };
type Document = {
	openapi: string;
	info: { title: string; version: string };
	paths: Record<string, Record<string, Operation>>;
	components?: { securitySchemes?: Record<string, { type: string; scheme?: string }> };
};

/** Every route API.md lists that exists so far, and whether it needs a bearer token. */
const ROUTES: [method: string, path: string, bearer: boolean][] = [
	["post", "/v1/auth/signup", false],
	["post", "/v1/auth/login", false],
	["post", "/v1/auth/refresh", false],
	["post", "/v1/auth/logout", true],
	["get", "/v1/me", true],
	["get", "/v1/nodes/root", true],
	["get", "/v1/nodes/{id}", true],
	["patch", "/v1/nodes/{id}", true],
	["delete", "/v1/nodes/{id}", true],
	["get", "/v1/nodes/{id}/children", true],
	["post", "/v1/folders", true],
	["post", "/v1/nodes/{id}/restore", true],
	["get", "/v1/trash", true],
	["put", "/v1/files/content", true],
	["get", "/v1/files/{id}/content", true],
];

const HTTP_METHODS = new Set(["get", "put", "post", "delete", "patch", "head", "options", "trace"]);

async function openapi(): Promise<Document> {
	return expectJson<Document>(await call("/v1/openapi.json"), 200);
}

describe("openapi: the document", () => {
	it("is served without authentication as OpenAPI 3.1.0", async () => {
		const res = await call("/v1/openapi.json");
		expect(res.headers.get("Content-Type")).toMatch(/^application\/json/);
		const doc = await expectJson<Document>(res, 200);
		expect(doc.openapi).toBe("3.1.0");
		expect(doc.info.title).toBeTruthy();
		expect(doc.components?.securitySchemes?.bearerAuth).toMatchObject({ type: "http", scheme: "bearer" });
	});

	it.each(ROUTES)("documents %s %s", async (method, path, bearer) => {
		const doc = await openapi();
		const operation = doc.paths[path]?.[method];
		expect(operation, `${method.toUpperCase()} ${path} is missing; documented: ${Object.keys(doc.paths).join(", ")}`).toBeDefined();
		expect(Object.keys(operation?.responses ?? {}).length).toBeGreaterThan(0);
		if (bearer) expect(operation?.security).toEqual([{ bearerAuth: [] }]);
	});

	it("documents only routes the app answers", async () => {
		const doc = await openapi();
		for (const [path, item] of Object.entries(doc.paths)) {
			for (const method of Object.keys(item).filter((m) => HTTP_METHODS.has(m))) {
				const url = path.replace(/\{[^}]+\}/g, "nod_00000000000000000000000000");
				const res = await call(url, { method: method.toUpperCase(), body: method === "get" || method === "head" ? undefined : "{}" });
				if (res.status === 404) {
					const text = await res.text();
					expect(text, `${method.toUpperCase()} ${path}`).not.toContain("no route for");
				}
			}
		}
	});
});

describe("openapi: envelope and Request-Id on every response", () => {
	it("answers an unknown route with the 404 envelope", async () => {
		const res = await call("/v1/no/such/route");
		await expectError(res, 404, "NOT_FOUND");
		await expectError(await call("/nope"), 404, "NOT_FOUND");
		// Under an authenticated prefix: a signed-in caller learns there is no such route.
		const user = await signup();
		await expectError(await call("/v1/trash", { method: "PUT", token: user.token }), 404, "NOT_FOUND");
		await expectError(await call(`/v1/nodes/${user.rootId}/unknown`, { token: user.token }), 404, "NOT_FOUND");
	});

	it("sets a fresh Request-Id on successes, validator hits, streams and errors alike", async () => {
		const user = await signup();
		const committed = await upload(user, user.rootId, "id.txt", "request ids");
		const etag = `"${committed.version.id}"`;
		const responses: [string, Response][] = [
			["200 json", await call("/v1/nodes/root", { token: user.token })],
			["200 openapi", await call("/v1/openapi.json")],
			["201 put", await put(user, user.rootId, "another.txt", "x")],
			["200 stream", await call(`/v1/files/${committed.node.id}/content`, { token: user.token })],
			["206 range", await call(`/v1/files/${committed.node.id}/content`, { token: user.token, headers: { Range: "bytes=0-3" } })],
			["304", await call(`/v1/files/${committed.node.id}/content`, { token: user.token, headers: { "If-None-Match": etag } })],
			["401", await call("/v1/me")],
			["400", await call("/v1/folders", { method: "POST", token: user.token, body: "{" })],
			["404", await call("/v1/nodes/nod_00000000000000000000000000", { token: user.token })],
			["416", await call(`/v1/files/${committed.node.id}/content`, { token: user.token, headers: { Range: "bytes=999-" } })],
			["413", await put(user, user.rootId, "big", "x", { "Content-Length": "100000001" })],
			["204 logout", await call("/v1/auth/logout", { method: "POST", token: (await signup()).token })],
		];
		const ids = new Set<string>();
		for (const [what, res] of responses) {
			const id = res.headers.get("Request-Id");
			expect(id, what).toMatch(/^req_[0-9a-z]+$/);
			ids.add(id ?? "");
			if (res.status >= 400) {
				const envelope = (await res.json()) as ErrorEnvelope;
				expect(envelope.error.request_id, what).toBe(id);
			} else await res.arrayBuffer();
		}
		expect(ids.size).toBe(responses.length);
	});

	it("answers CORS preflights and exposes the headers clients read", async () => {
		const res = await call("/v1/files/x/content", {
			method: "OPTIONS",
			headers: {
				Origin: "https://app.example",
				"Access-Control-Request-Method": "GET",
				"Access-Control-Request-Headers": "Authorization, Range",
			},
		});
		expect(res.status).toBeLessThan(300);
		expect(res.headers.get("Access-Control-Allow-Origin")).toBe("*");
		expect(res.headers.get("Access-Control-Allow-Headers")?.toLowerCase()).toContain("range");
		// Browsers send blocks in batches too.
		expect(res.headers.get("Access-Control-Allow-Headers")?.toLowerCase()).toContain("drive-blocks");
		const user = await signup();
		const folder = await mkdir(user, user.rootId, "cors");
		const got = await call(`/v1/nodes/${folder.id}`, { token: user.token, headers: { Origin: "https://app.example" } });
		const exposed = (got.headers.get("Access-Control-Expose-Headers") ?? "").toLowerCase();
		for (const header of ["etag", "content-range", "content-disposition", "request-id", "retry-after"]) expect(exposed).toContain(header);
	});
});
