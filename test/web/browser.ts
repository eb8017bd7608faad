/// <reference types="node" />
/**
 * Headless Chromium for the browser tests: Debian's `chromium` (installed by
 * .ci/run with apt; never a browser download) driven by playwright-core,
 * against the e2e project's local stack (`inject("baseUrl")`).
 *
 * Every page opened through {@link openPage} records console errors, uncaught
 * exceptions, failed requests the app did not expect and CSP violations;
 * {@link expectClean} fails the test on any of them.
 */
import { existsSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import { chromium, type Browser, type BrowserContext, type Page } from "playwright-core";
import { expect, inject } from "vitest";

const CANDIDATES = [process.env.CHROMIUM_PATH, "/usr/bin/chromium", "/usr/bin/chromium-browser"];

/** Where Chromium is; the tests fail with this sentence rather than skip when it is missing. */
export function chromiumPath(): string {
	for (const candidate of CANDIDATES) if (candidate && existsSync(candidate)) return candidate;
	throw new Error("Chromium is not installed: run `apt-get install -y chromium` (.ci/run does), or set CHROMIUM_PATH");
}

export const baseUrl = (): string => inject("baseUrl");

export async function launch(): Promise<Browser> {
	return chromium.launch({
		executablePath: chromiumPath(),
		headless: true,
		// --no-sandbox: CI runs as root in a container, where Chromium's sandbox cannot start.
		args: ["--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"],
	});
}

/** Problems seen on a page; a clean page has none. */
export interface PageProblems {
	console: string[];
	csp: string[];
}

const problemsOf = new WeakMap<Page, PageProblems>();

/** A fresh browser profile (cookie jar) at the stack's origin: one per simulated device or person. */
export async function newContext(browser: Browser, options: { phone?: boolean } = {}): Promise<BrowserContext> {
	const context = await browser.newContext({
		baseURL: baseUrl(),
		acceptDownloads: true,
		...(options.phone
			? { viewport: { width: 390, height: 844 }, deviceScaleFactor: 2, isMobile: true, hasTouch: true }
			: { viewport: { width: 1280, height: 800 } }),
	});
	// CSP violations surface as DOM events, not console messages: record them from the page itself.
	// A string, not a function: it runs in the page, and this file is type-checked without the DOM lib.
	await context.addInitScript({
		content: `document.addEventListener("securitypolicyviolation", (e) => console.error("CSP violation: " + e.violatedDirective + " " + e.blockedURI));`,
	});
	return context;
}

export async function openPage(context: BrowserContext, path = "/"): Promise<Page> {
	const page = await context.newPage();
	const problems: PageProblems = { console: [], csp: [] };
	problemsOf.set(page, problems);
	page.on("console", (message) => {
		if (message.type() !== "error") return;
		const text = message.text();
		// A 4xx the app asked for and handled (a refused name, a signed-out refresh) is logged by Chromium as a failed resource; the app's own handling is what the tests check.
		if (/^Failed to load resource: the server responded with a status of 4\d\d/.test(text)) return;
		(text.startsWith("CSP violation") ? problems.csp : problems.console).push(text);
	});
	page.on("pageerror", (error) => problems.console.push(`uncaught: ${error.message}`));
	await page.goto(path);
	return page;
}

/** Fails when the page logged an error, threw, or broke the Content-Security-Policy. */
export function expectClean(page: Page): void {
	const problems = problemsOf.get(page);
	expect(problems?.csp ?? []).toEqual([]);
	expect(problems?.console ?? []).toEqual([]);
}

let counter = 0;
/** A unique address per call, so files running side by side never share an account. */
export function freshEmail(tag: string): string {
	return `web-${tag}-${process.pid}-${Date.now().toString(36)}-${counter++}@example.com`;
}

export const PASSWORD = "correct horse battery staple";

/** Signs up through the page's own form and waits for the file list. */
export async function signUpInPage(page: Page, email = freshEmail("user")): Promise<string> {
	await page.getByRole("button", { name: "Create an account" }).click();
	await page.getByLabel("Email").fill(email);
	await page.getByLabel("Password").fill(PASSWORD);
	await page.getByRole("button", { name: "Create account" }).click();
	await page.getByRole("button", { name: "Sign out" }).waitFor();
	return email;
}

/**
 * Saves a screenshot under .wrangler/screenshots/ always, and under
 * docs/screenshots/ when UPDATE_SCREENSHOTS=1, so a normal run never dirties
 * the tree.
 */
export async function screenshot(page: Page, name: string): Promise<void> {
	const dirs = [join(process.cwd(), ".wrangler", "screenshots")];
	if (process.env.UPDATE_SCREENSHOTS === "1") dirs.push(join(process.cwd(), "docs", "screenshots"));
	for (const dir of dirs) {
		mkdirSync(dir, { recursive: true });
		await page.screenshot({ path: join(dir, `${name}.png`) });
	}
}
