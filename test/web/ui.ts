/// <reference types="node" />
/** Ways the browser tests find and drive the app's UI, by role and accessible name. */
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
