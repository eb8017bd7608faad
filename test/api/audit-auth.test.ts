/**
 * Regression tests for the audit's auth and sync findings
 * (shared/notes/audit.md), one or more per finding, named after it.
 */
import { describe, expect, it } from "vitest";
import { BLOCK_LIST_BODY_LIMIT } from "../../workers/api/middleware/body-limit";
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
