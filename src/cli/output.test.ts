/// <reference types="node" />
import { describe, expect, it } from "vitest";
import { DriveApiError } from "../client";
import { CliError, envelopeOf, EXIT, exitCodeOf, formatBytes } from "./output";

const apiError = (code: string, status: number) =>
	new DriveApiError({ code: code as "NOT_FOUND", status, message: code.toLowerCase(), requestId: "req_1" });

describe("exit codes", () => {
	it("maps the API's error codes to the documented exit codes", () => {
		expect(exitCodeOf(apiError("UNAUTHENTICATED", 401))).toBe(EXIT.notSignedIn);
		expect(exitCodeOf(apiError("NOT_FOUND", 404))).toBe(EXIT.notFound);
		expect(exitCodeOf(apiError("NAME_TAKEN", 409))).toBe(EXIT.conflict);
		expect(exitCodeOf(apiError("VERSION_CONFLICT", 409))).toBe(EXIT.conflict);
		expect(exitCodeOf(apiError("RATE_LIMITED", 429))).toBe(EXIT.unavailable);
		expect(exitCodeOf(apiError("INTERNAL", 500))).toBe(EXIT.unavailable);
		expect(exitCodeOf(apiError("QUOTA_EXCEEDED", 507))).toBe(EXIT.error);
		expect(exitCodeOf(apiError("INVALID_REQUEST", 400))).toBe(EXIT.error);
	});

	it("maps failures of the machine: no connection, no local file", () => {
		expect(exitCodeOf(new TypeError("fetch failed"))).toBe(EXIT.unavailable);
		expect(exitCodeOf(Object.assign(new Error("ENOENT: no such file"), { code: "ENOENT" }))).toBe(EXIT.notFound);
		expect(exitCodeOf(new CliError("USAGE", "x", EXIT.usage))).toBe(EXIT.usage);
	});
});

describe("envelopeOf", () => {
	it("keeps the API's envelope, request id and details", () => {
		const err = new DriveApiError({ code: "NAME_TAKEN", status: 409, message: "taken", requestId: "req_9", details: [{ field: "name" }] });
		expect(envelopeOf(err)).toEqual({ error: { code: "NAME_TAKEN", message: "taken", request_id: "req_9", details: [{ field: "name" }] } });
	});

	it("gives local failures the same shape", () => {
		expect(envelopeOf(new TypeError("fetch failed", { cause: new Error("connect ECONNREFUSED") }))).toEqual({
			error: { code: "UNAVAILABLE", message: "fetch failed: connect ECONNREFUSED" },
		});
	});
});

describe("formatBytes", () => {
	it("uses SI units", () => {
		expect([0, 999, 1000, 1500, 12_345_678, 3e12].map(formatBytes)).toEqual(["0 B", "999 B", "1.0 kB", "1.5 kB", "12 MB", "3.0 TB"]);
	});
});
