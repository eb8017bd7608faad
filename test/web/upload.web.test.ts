/// <reference types="node" />
/**
 * Uploads in the browser: a 5 MiB file picked through "Upload files" shows
 * its progress; a 50 MiB upload interrupted by a reload resumes once the
 * same file is picked again, sending only what the server lacks, and
 * downloads back byte for byte; a picked folder keeps its tree.
 */
import { createHash, randomBytes } from "node:crypto";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Browser, BrowserContext, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { expectClean, launch, newContext, openPage, screenshot, signUpInPage } from "./browser";
import { downloaded, pick, rowAction, uploadsDone } from "./ui";

const MiB = 1024 * 1024;
let browser: Browser;
let context: BrowserContext;
let page: Page;
let dir: string;

beforeAll(async () => {
	dir = mkdtempSync(join(tmpdir(), "drive-web-upload-"));
	browser = await launch();
	context = await newContext(browser);
	page = await openPage(context);
	await signUpInPage(page);
}, 120_000);
afterAll(async () => {
	await browser?.close();
	rmSync(dir, { recursive: true, force: true });
});

/**
 * Records every value each progress bar shows, from the page itself (a
 * MutationObserver), so a value that lasts one frame is not missed.
 */
async function recordProgress(target: Page): Promise<void> {
	await target.evaluate(`(() => {
		const seen = (window.__progress = []);
		const snap = () => document.querySelectorAll("[aria-valuenow]").forEach((el) =>
			seen.push({ name: el.getAttribute("aria-label"), value: Number(el.getAttribute("aria-valuenow")) }));
		new MutationObserver(snap).observe(document.body, { subtree: true, childList: true, attributes: true, attributeFilter: ["aria-valuenow"] });
	})()`);
}

/** The page's document, typed for the little the tests read (this file has no DOM lib). */
interface PageDocument {
	querySelector(selector: string): { getAttribute(name: string): string | null } | null;
}

/** Waits, in the page, until the progress bar named `name` shows a value strictly between `low` and `high`. */
async function progressBetween(target: Page, name: string, low: number, high: number): Promise<void> {
	await target.waitForFunction(
		({ name, low, high }) => {
			const doc = (globalThis as unknown as { document: PageDocument }).document;
			const value = Number(doc.querySelector(`[aria-label="${name}"]`)?.getAttribute("aria-valuenow"));
			return value > low && value < high;
		},
		{ name, low, high },
		{ timeout: 120_000 },
	);
}

const progressOf = (target: Page, name: string) =>
	target.evaluate<number[]>(`window.__progress.filter((p) => p.name === ${JSON.stringify(name)}).map((p) => p.value)`);

/** Opens the folder row named `name` as a person does, by clicking it (in-app navigation). */
async function openFolder(target: Page, name: string): Promise<void> {
	await target.getByRole("link", { name, exact: true }).click();
}

/** Bytes of block uploads (PUT /v1/uploads/:id/blocks…) the page sends from now on. */
function countBlockBytes(target: Page): { bytes: () => number; requests: () => number } {
	let bytes = 0;
	let requests = 0;
	target.on("requestfinished", (request) => {
		if (request.method() !== "PUT" || !/\/v1\/uploads\/[^/]+\/blocks/.test(request.url())) return;
		requests++;
		// The body is a Blob, which the protocol does not hand over; its size is reported once the request is done.
		void request.sizes().then((sizes) => (bytes += sizes.requestBodySize));
	});
	return { bytes: () => bytes, requests: () => requests };
}

describe("uploads in the browser", () => {
	it("shows the progress of a 5 MiB upload", async () => {
		await recordProgress(page);
		await pick(page, "Upload files", { name: "report.bin", mimeType: "application/octet-stream", buffer: randomBytes(5 * MiB) });
		await uploadsDone(page, 1);
		const seen = await progressOf(page, "Uploading report.bin");
		expect(seen.some((v) => v > 0 && v < 100)).toBe(true);
		await page.getByRole("button", { name: "report.bin", exact: true }).waitFor();
		await page.getByRole("button", { name: "Clear" }).click();
		expectClean(page);
	}, 180_000);

	it("resumes a 50 MiB upload after a reload, sending only what is missing, and downloads it intact", async () => {
		const file = join(dir, "big.bin");
		const content = randomBytes(50 * MiB);
		writeFileSync(file, content);
		const sha256 = createHash("sha256").update(content).digest("hex");
		// A slower uplink keeps the upload in flight long enough to reload in the middle of it, however fast the machine.
		const cdp = await context.newCDPSession(page);
		await cdp.send("Network.emulateNetworkConditions", {
			offline: false,
			latency: 0,
			downloadThroughput: -1,
			uploadThroughput: 8 * MiB,
		});
		await pick(page, "Upload files", file);
		await progressBetween(page, "Uploading big.bin", 0, 100);
		await screenshot(page, "upload-in-progress");
		await page.reload();
		await cdp.detach().catch(() => undefined);

		const sent = countBlockBytes(page);
		await pick(page, "Resume big.bin — choose the file again", file);
		await uploadsDone(page, 1);
		expect(sent.requests()).toBeGreaterThan(0);
		expect(sent.bytes()).toBeLessThan(content.length);

		await page.getByRole("button", { name: "big.bin", exact: true }).waitFor();
		const saved = await downloaded(page, () => rowAction(page, "big.bin", "Download"));
		expect(saved.name).toBe("big.bin");
		expect(saved.sha256).toBe(sha256);
		await page.getByRole("button", { name: "Clear" }).click();
		expectClean(page);
	}, 300_000);

	it("keeps the tree of a picked folder", async () => {
		const album = join(dir, "album");
		mkdirSync(join(album, "2026", "june"), { recursive: true });
		writeFileSync(join(album, "cover.txt"), "cover");
		writeFileSync(join(album, "2026", "notes.txt"), "notes");
		writeFileSync(join(album, "2026", "june", "beach.txt"), "beach");
		await pick(page, "Upload folder", album);
		await uploadsDone(page, 3);
		await openFolder(page, "album");
		await page.getByRole("button", { name: "cover.txt", exact: true }).waitFor();
		await openFolder(page, "2026");
		await page.getByRole("button", { name: "notes.txt", exact: true }).waitFor();
		await openFolder(page, "june");
		await page.getByRole("button", { name: "beach.txt", exact: true }).waitFor();
		expectClean(page);
	}, 180_000);
});
