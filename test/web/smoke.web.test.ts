/// <reference types="node" />
/**
 * The app is served by the api worker's static assets with the security
 * headers, loads in Chromium without a console error or CSP violation, and a
 * person can sign up, stay signed in across a reload and sign out.
 */
import type { Browser } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { baseUrl, expectClean, launch, newContext, openPage, signUpInPage } from "./browser";

let browser: Browser;
beforeAll(async () => {
	browser = await launch();
});
afterAll(async () => {
	await browser?.close();
});

describe("the web app", () => {
	it("is served at / and at app paths with a strict CSP, nosniff and no referrer", async () => {
		for (const path of ["/", "/f/some-folder", "/trash"]) {
			const res = await fetch(`${baseUrl()}${path}`);
			expect(res.status, path).toBe(200);
			expect(res.headers.get("content-type")).toContain("text/html");
			const csp = res.headers.get("content-security-policy") ?? "";
			expect(csp).toContain("script-src 'self'");
			expect(csp).toContain("frame-ancestors 'none'");
			expect(csp).not.toContain("unsafe-inline");
			expect(res.headers.get("x-content-type-options")).toBe("nosniff");
			expect(res.headers.get("referrer-policy")).toBe("no-referrer");
			const html = await res.text();
			// No inline script: the only script is the hashed bundle.
			expect(html).not.toMatch(/<script(?![^>]*\bsrc=)[^>]*>/);
			const script = /src="(\/assets\/main-[^"]+\.js)"/.exec(html)?.[1];
			expect(script).toBeDefined();
			const js = await fetch(`${baseUrl()}${script}`);
			expect(js.headers.get("cache-control")).toContain("immutable");
		}
		// The API keeps answering with its own envelope.
		const api = await fetch(`${baseUrl()}/v1/nope`);
		expect(api.status).toBe(404);
		expect(((await api.json()) as { error: { code: string } }).error.code).toBe("NOT_FOUND");
	});

	it("signs up, keeps the session across a reload, and signs out clearing the cookie", async () => {
		const context = await newContext(browser);
		const page = await openPage(context);
		await signUpInPage(page);
		const cookies = await context.cookies();
		const session = cookies.find((c) => c.name === "drive_rt" || c.name === "__Host-drive_rt");
		expect(session?.httpOnly).toBe(true);
		expect(session?.sameSite).toBe("Strict");
		expect(await page.evaluate<string>("document.cookie")).not.toContain("drive_rt");
		await page.reload();
		await page.getByRole("button", { name: "Sign out" }).waitFor();
		await page.getByRole("button", { name: "Sign out" }).click();
		await page.getByRole("button", { name: "Sign in" }).waitFor();
		expect((await context.cookies()).filter((c) => c.name.endsWith("drive_rt"))).toEqual([]);
		await page.reload();
		await page.getByRole("button", { name: "Sign in" }).waitFor();
		expectClean(page);
		await context.close();
	});
});
