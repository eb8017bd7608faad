/**
 * The failure-drill control (src/shared/drills.ts, routes/drills.ts): off
 * unless DRILLS is "on", counts per binding, faults in the api's isolate and
 * in the notify worker's. The fault-injection tests build on it.
 */
import { createExecutionContext, waitOnExecutionContext } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { afterEach, describe, expect, it } from "vitest";
import { clearFaults } from "../../src/shared/drills";
import worker from "../../workers/api/index";
import { Harness } from "../support/harness";
import { api, expectError, expectJson, signup } from "./helpers";

interface Counts {
	api: Record<string, number>;
	notify: Record<string, number>;
}

const drills = (body: unknown) => api.request("/__drills", { method: "POST", json: body });

afterEach(async () => {
	clearFaults();
	await drills({ api: null, notify: null });
});

describe("failure drills", () => {
	it("are not there unless DRILLS is on", async () => {
		const off = new Harness(async (request) => {
			const ctx = createExecutionContext();
			const res = await worker.fetch(request, { ...env, DRILLS: "off" } as Env, ctx);
			await waitOnExecutionContext(ctx);
			return res;
		}, "http://drive.test");
		await expectError(await off.request("/__drills", { method: "POST", json: {} }), 404, "NOT_FOUND");
	});

	it("count each binding's operations in both workers", async () => {
		await expectJson(await drills({ reset: true }), 200);
		const user = await signup();
		await expectJson(await api.request("/v1/me", { token: user.token }), 200);
		const counts = await expectJson<Counts>(await drills({ reset: true }), 200);
		expect(Object.keys(counts.api).some((key) => key.startsWith("DIRECTORY "))).toBe(true);
		expect(Object.keys(counts.notify).some((key) => key.startsWith("SHARD_"))).toBe(true);
	});

	it("fail the operations a rule names, as many times as it says", async () => {
		const user = await signup();
		await expectJson(await drills({ api: [{ target: "do.call", binding: "USER_HUB", effect: "error", times: 1 }] }), 200);
		const refused = await api.request("/v1/folders", { method: "POST", token: user.token, json: { parent_id: user.rootId, name: "a" } });
		expect(refused.status).toBeGreaterThanOrEqual(500);
		await refused.body?.cancel();
		await expectJson(
			await api.request("/v1/folders", { method: "POST", token: user.token, json: { parent_id: user.rootId, name: "a" } }),
			201,
		);
	});

	it("refuse a malformed rule with the envelope", async () => {
		await expectError(await drills({ api: [{ target: "disk.spin", effect: "error" }] }), 400, "INVALID_REQUEST");
	});
});
