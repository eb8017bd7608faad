/** The OpenAPI document, and what every route shares: the error envelope, Request-Id, CORS, unknown routes. */
import { describe, expect, it } from "vitest";
import { expectError } from "../support/envelope";
import { expectOk, type ErrorBody } from "../support/harness";
import { api } from "./helpers";

type Parameter = { in: string; name: string; schema?: { enum?: unknown[]; const?: unknown } };
type Operation = { security?: Record<string, string[]>[]; responses?: Record<string, unknown>; parameters?: Parameter[] };
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
	return expectOk(await api.call<Document>("/v1/openapi.json"), 200);
}

/** An id of the right shape for a path parameter that names nothing. */
const NOBODY = "nod_00000000000000000000000000";

/** A value for a header parameter the document pins down (a literal or an enum). */
function headerValue(p: Parameter): string | undefined {
	const value = p.schema?.const ?? p.schema?.enum?.[0];
	return value === undefined ? undefined : String(value);
}

describe("openapi: the document", () => {
	it("is served without authentication as OpenAPI 3.1.0", async () => {
		const res = await api.call<Document>("/v1/openapi.json");
		expect(res.headers.get("Content-Type")).toMatch(/^application\/json/);
		const doc = expectOk(res, 200);
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
				const url = path.replace(/\{[^}]+\}/g, NOBODY);
				const res = await api.request(url, {
					method: method.toUpperCase(),
					body: method === "get" || method === "head" ? undefined : "{}",
				});
				if (res.status === 404) {
					const text = await res.text();
					expect(text, `${method.toUpperCase()} ${path}`).not.toContain("no route for");
				}
			}
		}
	});
});

describe("openapi: security", () => {
	// Auth is wired per route group; the document is the contract. Each
	// request carries what the operation's own preconditions ask for (the
	// headers it declares), so that only the missing token can refuse it.
	it("answers 401 UNAUTHENTICATED in the envelope, without a token, to every operation that declares security", async () => {
		const doc = await openapi();
		const secured = Object.entries(doc.paths).flatMap(([path, item]) =>
			Object.entries(item)
				.filter(([method, op]) => HTTP_METHODS.has(method) && (op.security?.length ?? 0) > 0)
				.map(([method, op]) => ({ method: method.toUpperCase(), path, op })),
		);
		expect(secured.length).toBeGreaterThan(20);
		for (const { method, path, op } of secured) {
			const headers: Record<string, string> = {};
			for (const p of op.parameters ?? []) {
				const value = p.in === "header" ? headerValue(p) : undefined;
				if (value !== undefined) headers[p.name] = value;
			}
			const hasBody = method !== "GET" && method !== "HEAD";
			if (hasBody && headers["content-type"] === undefined) headers["Content-Type"] = "application/json";
			const res = await api.request(path.replace(/\{[^}]+\}/g, NOBODY), { method, headers, body: hasBody ? "{}" : undefined });
			if (method === "HEAD") {
				// A HEAD answer has no body to carry the envelope.
				expect(res.status, `${method} ${path}`).toBe(401);
				expect(res.headers.get("WWW-Authenticate"), `${method} ${path}`).toMatch(/^Bearer/);
				continue;
			}
			const envelope = await expectError(res, 401, "UNAUTHENTICATED").catch((err: unknown) => {
				throw new Error(`${method} ${path}: ${err instanceof Error ? err.message : String(err)}`);
			});
			expect(envelope.error.code).toBe("UNAUTHENTICATED");
		}
	});
});

describe("openapi: envelope and Request-Id on every response", () => {
	it("answers an unknown route with the 404 envelope", async () => {
		const res = await api.request("/v1/no/such/route");
		await expectError(res, 404, "NOT_FOUND");
		await expectError(await api.request("/nope"), 404, "NOT_FOUND");
		// Under an authenticated prefix: a signed-in caller learns there is no such route.
		const user = await api.signup();
		await expectError(await api.request("/v1/trash", { method: "PUT", token: user.token }), 404, "NOT_FOUND");
		await expectError(await api.request(`/v1/nodes/${user.rootId}/unknown`, { token: user.token }), 404, "NOT_FOUND");
	});

	it("sets a fresh Request-Id on successes, validator hits, streams and errors alike", async () => {
		const user = await api.signup();
		const committed = await api.upload(user, user.rootId, "id.txt", "request ids");
		const etag = `"${committed.version.id}"`;
		const responses: [string, Response][] = [
			["200 json", await api.request("/v1/nodes/root", { token: user.token })],
			["200 openapi", await api.request("/v1/openapi.json")],
			[
				"201 put",
				await api.request(`/v1/files/content?parent_id=${user.rootId}&name=another.txt`, { method: "PUT", token: user.token, body: "x" }),
			],
			["200 stream", await api.request(`/v1/files/${committed.node.id}/content`, { token: user.token })],
			["206 range", await api.request(`/v1/files/${committed.node.id}/content`, { token: user.token, headers: { Range: "bytes=0-3" } })],
			["304", await api.request(`/v1/files/${committed.node.id}/content`, { token: user.token, headers: { "If-None-Match": etag } })],
			["401", await api.request("/v1/me")],
			[
				"400",
				await api.request("/v1/folders", { method: "POST", token: user.token, body: "{", headers: { "Content-Type": "application/json" } }),
			],
			["404", await api.request("/v1/nodes/nod_00000000000000000000000000", { token: user.token })],
			["416", await api.request(`/v1/files/${committed.node.id}/content`, { token: user.token, headers: { Range: "bytes=999-" } })],
			[
				"413",
				await api.request(`/v1/files/content?parent_id=${user.rootId}&name=big`, {
					method: "PUT",
					token: user.token,
					body: "x",
					headers: { "Content-Length": "100000001" },
				}),
			],
			["204 logout", await api.request("/v1/auth/logout", { method: "POST", token: (await api.signup()).token })],
		];
		const ids = new Set<string>();
		for (const [what, res] of responses) {
			const id = res.headers.get("Request-Id");
			expect(id, what).toMatch(/^req_[0-9a-z]+$/);
			ids.add(id ?? "");
			if (res.status >= 400) {
				const envelope = (await res.json()) as ErrorBody;
				expect(envelope.error.request_id, what).toBe(id);
			} else await res.arrayBuffer();
		}
		expect(ids.size).toBe(responses.length);
	});

	it("answers CORS preflights and exposes the headers clients read", async () => {
		const res = await api.request("/v1/files/x/content", {
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
		const user = await api.signup();
		const folder = await api.mkdir(user, user.rootId, "cors");
		const got = await api.request(`/v1/nodes/${folder.id}`, { token: user.token, headers: { Origin: "https://app.example" } });
		const exposed = (got.headers.get("Access-Control-Expose-Headers") ?? "").toLowerCase();
		for (const header of ["etag", "content-range", "content-disposition", "request-id", "retry-after"]) expect(exposed).toContain(header);
	});
});
