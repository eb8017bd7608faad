/// <reference types="node" />
/**
 * Steps the transfer tests share: picking files through the app's own
 * buttons (the browser's file chooser, as a person would), waiting for the
 * uploads panel to finish, opening a row's action, and saving a download.
 */
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import type { Page } from "playwright-core";

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
