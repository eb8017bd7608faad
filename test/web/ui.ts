/// <reference types="node" />
/**
 * Ways the browser tests find and drive the app's UI, by role and accessible
 * name: rows, sign-in, picking files through the app's own buttons (the
 * browser's file chooser, as a person would), waiting for the uploads panel,
 * a row's actions, and saving a download.
 */
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import type { Page } from "playwright-core";
import { PASSWORD } from "./browser";

/** The file list's row whose name cell is exactly `name`. */
export const row = (page: Page, name: string) =>
	page
		.getByRole("grid")
		.getByRole("row")
		.filter({ has: page.getByRole("gridcell", { name, exact: true }) });

/** Signs an existing account in through the page's form (another device of it). */
export async function signInInPage(page: Page, email: string): Promise<void> {
	await page.getByLabel("Email").fill(email);
	await page.getByLabel("Password").fill(PASSWORD);
	await page.getByRole("button", { name: "Sign in" }).click();
	await page.getByRole("button", { name: "Sign out" }).waitFor();
}

export type Pickable = string | string[] | { name: string; mimeType: string; buffer: Buffer };

/** Clicks a button that opens a file chooser (e.g. "Upload files") and picks `files`. */
export async function pick(page: Page, button: string, files: Pickable): Promise<void> {
	const [chooser] = await Promise.all([page.waitForEvent("filechooser"), page.getByRole("button", { name: button }).click()]);
	await chooser.setFiles(files);
}

/** Waits until the uploads panel says `done` uploads finished out of `done` (none failed or still running). */
export async function uploadsDone(page: Page, done: number): Promise<void> {
	await page.getByRole("complementary", { name: "Uploads" }).getByText(`${done} of ${done} done`).waitFor({ timeout: 120_000 });
}

/** Opens the actions menu of the row named `name` in the file list and picks `action`. */
export async function rowAction(page: Page, name: string, action: string): Promise<void> {
	await page.getByRole("button", { name: `Actions for ${name}` }).click();
	await page.getByRole("menuitem", { name: action }).click();
}

/** Runs `start`, which must begin a download, and answers the SHA-256 and text of what was saved. */
export async function downloaded(page: Page, start: () => Promise<unknown>): Promise<{ name: string; sha256: string; text: string }> {
	const [download] = await Promise.all([page.waitForEvent("download", { timeout: 120_000 }), start()]);
	const failure = await download.failure();
	if (failure !== null) throw new Error(`download failed: ${failure}`);
	const bytes = readFileSync(await download.path());
	return { name: download.suggestedFilename(), sha256: createHash("sha256").update(bytes).digest("hex"), text: bytes.toString("utf8") };
}
