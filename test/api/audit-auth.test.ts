/**
 * Regression tests for the audit's auth and sync findings
 * (shared/notes/audit.md), one or more per finding, named after it.
 */
import { env } from "cloudflare:workers";
import { drizzle } from "drizzle-orm/d1";
import { Hono } from "hono";
import { describe, expect, it } from "vitest";
import { users } from "../../src/shared/db/schema";
import type { AppEnv } from "../../workers/api/env";
import { onError } from "../../workers/api/errors";
import { BLOCK_LIST_BODY_LIMIT } from "../../workers/api/middleware/body-limit";
import { requestId } from "../../workers/api/middleware/request-id";
import { call, expectError, expectJson, put, signup } from "./helpers";

describe("M11: JSON body limits", () => {
	it("M11: refuses a login body over the auth limit with 413 PAYLOAD_TOO_LARGE, declared or streamed", async () => {
		const big = JSON.stringify({ email: "a@example.com", password: "a".repeat(100_000) });
		const declared = await call("/v1/auth/login", { method: "POST", body: big });
		const envelope = await expectError(declared, 413, "PAYLOAD_TOO_LARGE");
		expect(envelope.error.details).toEqual([{ limit_bytes: 16 * 1024 }]);
		// Without Content-Length the body is cut off once it passes the limit.
		const streamed = new ReadableStream<Uint8Array>({
			start(controller) {
				controller.enqueue(new TextEncoder().encode(big));
				controller.close();
			},
		});
		const res = await call("/v1/auth/login", { method: "POST", body: streamed, headers: { "Content-Type": "application/json" } });
		expect(res.headers.get("Content-Length")).toBeNull();
		await expectError(res, 413, "PAYLOAD_TOO_LARGE");
	});

	it("M11: refuses an oversized body on an authenticated JSON route, and lets a raw content upload of the same size through", async () => {
		const user = await signup();
		const name = "n".repeat(70_000);
		await expectError(
			await call("/v1/folders", { method: "POST", token: user.token, body: JSON.stringify({ parent_id: user.rootId, name }) }),
			413,
			"PAYLOAD_TOO_LARGE",
		);
		// File content is raw bytes, even when it is JSON: its own limits apply.
		const content = JSON.stringify({ name });
		const uploaded = await put(user, user.rootId, "big.json", content, { "Content-Type": "application/json" });
		expect((await expectJson<{ version: { size: number } }>(uploaded, 201)).version.size).toBe(content.length);
	});

	it("M11: lets a maximal block list through to validation, and refuses one over the block-list limit", async () => {
		const user = await signup();
		const entry = { hash: "a".repeat(64), size: 8 * 1024 * 1024 };
		const blocks = Array.from({ length: 163_840 }, () => entry);
		// An empty name fails validation: a 400 shows the body was read and parsed.
		const maximal = JSON.stringify({ parent_id: user.rootId, name: "", size: 1, blocks });
		expect(maximal.length).toBeGreaterThan(14_000_000);
		expect(maximal.length).toBeLessThan(BLOCK_LIST_BODY_LIMIT);
		await expectError(await call("/v1/uploads", { method: "POST", token: user.token, body: maximal }), 400, "INVALID_REQUEST");
		const over = JSON.stringify({ parent_id: user.rootId, name: "x", size: 1, blocks, padding: "p".repeat(3_000_000) });
		await expectError(await call("/v1/uploads", { method: "POST", token: user.token, body: over }), 413, "PAYLOAD_TOO_LARGE");
	});
});

describe("L6: secrets in logs", () => {
	it("L6: logs a failed query's SQL and cause, never its parameters", async () => {
		const user = await signup();
		const email = `secret-${crypto.randomUUID()}@example.com`;
		const passwordHash = `pbkdf2-sha256$100000$${crypto.randomUUID()}$hash`;
		// A real failed query: the id is taken, so the insert breaks the primary key.
		const failure = await drizzle(env.DIRECTORY)
			.insert(users)
			.values({ id: user.id, email, passwordHash, shard: 0, quotaBytes: 1, createdAt: new Date().toISOString() })
			.then(
				() => null,
				(err: unknown) => err,
			);
		expect(String(failure)).toContain(email);
		const app = new Hono<AppEnv>();
		app.use(requestId);
		app.get("/", () => {
			throw failure;
		});
		app.onError(onError);
		const logged: string[] = [];
		const consoleError = console.error;
		console.error = (...args: unknown[]) => logged.push(args.map(String).join(" "));
		let res: Response;
		try {
			res = await app.request("/");
		} finally {
			console.error = consoleError;
		}
		const envelope = await expectError(res, 500, "INTERNAL");
		const log = logged.join("\n");
		expect(log).not.toContain(email);
		expect(log).not.toContain(passwordHash);
		expect(logged).toHaveLength(1);
		const entry = JSON.parse(logged[0] ?? "") as { request_id: string; error: { query: string; cause: { message: string } } };
		expect(entry.request_id).toBe(envelope.error.request_id);
		expect(entry.error.query).toMatch(/^insert into "users"/);
		expect(entry.error.cause.message).toMatch(/UNIQUE constraint failed: users\.id/);
	});
});
