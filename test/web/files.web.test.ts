/// <reference types="node" />
/**
 * The Files view and the trash in Chromium: new folder, rename (and a taken
 * name read as a sentence), move by dialog and by drag, trash, restore,
 * delete forever, empty trash; a folder of 10,000 children listed with a
 * bounded number of rows in the DOM; sorting; the phone layout.
 */
import type { Browser, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { expectClean, launch, newContext, openPage, screenshot, signUpInPage } from "./browser";
import { mkdir, mkdirMany, putFile, rootId, tokenFor } from "./seed";
import { row } from "./ui";

let browser: Browser;
beforeAll(async () => {
	browser = await launch();
});
afterAll(async () => {
	await browser?.close();
});

async function rowAction(page: Page, name: string, action: string): Promise<void> {
	await page.getByRole("button", { name: `Actions for ${name}`, exact: true }).click();
	await page.getByRole("menuitem", { name: action, exact: true }).click();
}

async function newFolder(page: Page, name: string): Promise<void> {
	await page.getByRole("button", { name: "New folder" }).click();
	const dialog = page.getByRole("dialog", { name: "New folder" });
	await dialog.getByLabel("Folder name").fill(name);
	await dialog.getByRole("button", { name: "Create" }).click();
	await dialog.waitFor({ state: "detached" });
	await row(page, name).waitFor();
}

describe("the Files view", () => {
	it("creates, renames, moves by dialog and by drag, trashes, restores and deletes forever", async () => {
		const context = await newContext(browser);
		const page = await openPage(context);
		const email = await signUpInPage(page);
		await page.getByText("This folder is empty.").waitFor();

		await newFolder(page, "Reports");
		await newFolder(page, "Archive");
		const token = await tokenFor(email);
		const root = await rootId(token);
		await putFile(token, root, "notes.txt", "some notes");
		await putFile(token, root, "budget.xlsx", "1,2,3");
		await page.reload();
		await row(page, "notes.txt").waitFor();
		await screenshot(page, "file-list");

		// Rename through the row menu.
		await rowAction(page, "notes.txt", "Rename");
		let dialog = page.getByRole("dialog", { name: "Rename “notes.txt”" });
		await dialog.getByLabel("New name").fill("summary.txt");
		await dialog.getByRole("button", { name: "Rename" }).click();
		await row(page, "summary.txt").waitFor();
		expect(await row(page, "notes.txt").count()).toBe(0);

		// F2 on a focused row renames too; a taken name is said in words and changes nothing.
		await row(page, "summary.txt").focus();
		await page.keyboard.press("F2");
		dialog = page.getByRole("dialog", { name: "Rename “summary.txt”" });
		await dialog.getByLabel("New name").fill("Reports");
		await dialog.getByRole("button", { name: "Rename" }).click();
		const alert = dialog.getByRole("alert");
		await alert.waitFor();
		expect(await alert.textContent()).toBe("Something named “Reports” is already here. Choose another name.");
		await dialog.getByRole("button", { name: "Cancel" }).click();
		await dialog.waitFor({ state: "detached" });
		expect(await row(page, "summary.txt").count()).toBe(1);

		// Move by dialog: browse into Reports, move there.
		await rowAction(page, "summary.txt", "Move");
		dialog = page.getByRole("dialog", { name: "Move “summary.txt”" });
		await dialog.getByRole("button", { name: "Reports" }).click();
		await dialog.getByText("No folders here.").waitFor();
		await dialog.getByRole("button", { name: "Move here" }).click();
		await row(page, "summary.txt").waitFor({ state: "detached" });

		// Open Reports: the file is there, the breadcrumbs lead back.
		await row(page, "Reports").getByRole("link", { name: "Reports" }).click();
		await page.getByRole("heading", { name: "Reports" }).waitFor();
		await row(page, "summary.txt").waitFor();
		const crumbs = page.getByRole("navigation", { name: "Breadcrumbs" });

		// Move by drag: onto the "My files" breadcrumb, then onto the Archive row.
		await row(page, "summary.txt").dragTo(crumbs.getByRole("link", { name: "My files" }));
		await page.getByText("This folder is empty.").waitFor();
		await crumbs.getByRole("link", { name: "My files" }).click();
		await row(page, "summary.txt").waitFor();
		await row(page, "summary.txt").dragTo(row(page, "Archive"));
		await row(page, "summary.txt").waitFor({ state: "detached" });
		await row(page, "Archive").dblclick();
		await page.getByRole("heading", { name: "Archive" }).waitFor();
		await row(page, "summary.txt").waitFor();

		// Trash from the menu, and a folder with the Delete key.
		await rowAction(page, "summary.txt", "Move to trash");
		await page.getByText("This folder is empty.").waitFor();
		await crumbs.getByRole("link", { name: "My files" }).click();
		await row(page, "Reports").focus();
		await page.keyboard.press("Delete");
		await row(page, "Reports").waitFor({ state: "detached" });

		// The trash lists both; restore one, delete the other forever.
		await page.getByRole("link", { name: "Trash" }).click();
		await page.getByRole("heading", { name: "Trash" }).waitFor();
		await page.getByRole("rowheader", { name: "summary.txt" }).waitFor();
		await page.getByRole("rowheader", { name: "Reports" }).waitFor();
		await page.getByRole("button", { name: "Restore summary.txt" }).click();
		await page.getByRole("rowheader", { name: "summary.txt" }).waitFor({ state: "detached" });
		await page.getByRole("button", { name: "Delete Reports forever" }).click();
		dialog = page.getByRole("dialog", { name: "Delete forever?" });
		await dialog.getByRole("button", { name: "Delete forever" }).click();
		await page.getByText("The trash is empty.").first().waitFor();

		// The restored file is back in Archive.
		await page.getByRole("link", { name: "My files" }).click();
		await row(page, "Archive").getByRole("link", { name: "Archive" }).click();
		await row(page, "summary.txt").waitFor();

		// Empty trash, after a confirmation.
		await rowAction(page, "summary.txt", "Move to trash");
		await page.getByText("This folder is empty.").waitFor();
		await page.getByRole("link", { name: "Trash" }).click();
		await page.getByRole("rowheader", { name: "summary.txt" }).waitFor();
		await page.getByRole("button", { name: "Empty trash" }).click();
		dialog = page.getByRole("dialog", { name: "Empty the trash?" });
		await dialog.getByRole("button", { name: "Empty trash" }).click();
		await page.getByRole("rowheader", { name: "summary.txt" }).waitFor({ state: "detached" });
		expectClean(page);
		await context.close();
	});

	it("lists 10,000 children with a bounded number of rows in the DOM, reaches the last with End, and sorts", async () => {
		const context = await newContext(browser);
		const page = await openPage(context);
		const email = await signUpInPage(page);
		const token = await tokenFor(email);
		const big = await mkdir(token, await rootId(token), "Big");
		const total = 10_000;
		const names = Array.from({ length: total }, (_, i) => `item ${String(i + 1).padStart(5, "0")}`);
		// Folders are the quickest child to make: 1,000 per request (POST /v1/folders/batch), two requests at a time.
		const batches = Array.from({ length: total / 1000 }, (_, i) => names.slice(i * 1000, (i + 1) * 1000));
		for (let i = 0; i < batches.length; i += 2) await Promise.all(batches.slice(i, i + 2).map((batch) => mkdirMany(token, big.id, batch)));

		await page.goto(`/f/${big.id}`);
		const grid = page.getByRole("grid");
		await page.locator(`[role=grid][aria-rowcount="${total + 1}"]`).waitFor();
		await row(page, "item 00001").waitFor();
		const rendered = await grid.getByRole("row").count();
		expect(rendered).toBeGreaterThan(5);
		expect(rendered).toBeLessThan(80);

		await row(page, "item 00001").focus();
		await page.keyboard.press("End");
		await row(page, "item 10000").waitFor();
		await page.waitForFunction(`document.activeElement?.getAttribute("aria-rowindex") === "${total + 1}"`);
		expect(await page.evaluate<string | null>(`document.activeElement?.getAttribute("aria-rowindex") ?? null`)).toBe(String(total + 1));
		expect(await grid.getByRole("row").count()).toBeLessThan(80);
		await page.keyboard.press("Home");
		await row(page, "item 00001").waitFor();

		// Sorting by name toggles the order.
		const nameHeader = page.getByRole("columnheader", { name: "Name" });
		expect(await nameHeader.getAttribute("aria-sort")).toBe("ascending");
		await nameHeader.getByRole("button").click();
		expect(await nameHeader.getAttribute("aria-sort")).toBe("descending");
		await row(page, "item 10000").waitFor();
		expect(await grid.locator('[aria-rowindex="2"] .name').textContent()).toBe("item 10000");
		await nameHeader.getByRole("button").click();
		await grid.locator('[aria-rowindex="2"] .name', { hasText: /^item 00001$/ }).waitFor();
		expect(await grid.locator('[aria-rowindex="2"] .name').textContent()).toBe("item 00001");
		expectClean(page);
		await context.close();
	});

	it("fits a phone: secondary columns hidden, row actions reachable", async () => {
		const context = await newContext(browser, { phone: true });
		const page = await openPage(context);
		const email = await signUpInPage(page);
		const token = await tokenFor(email);
		const root = await rootId(token);
		await mkdir(token, root, "Photos");
		await putFile(token, root, "A rather long file name for a small screen.txt", "hello");
		await page.reload();
		await row(page, "Photos").waitFor();
		expect(await page.getByRole("columnheader", { name: "Modified" }).isVisible()).toBe(false);
		await page.getByRole("button", { name: "Actions for A rather long file name for a small screen.txt" }).click();
		await page.getByRole("menuitem", { name: "Rename" }).waitFor();
		expect(await page.getByRole("menuitem", { name: "Move to trash" }).isVisible()).toBe(true);
		// Focus is on the first item, and Escape from there closes the menu.
		await page.waitForFunction(`document.activeElement?.getAttribute("role") === "menuitem"`);
		await page.keyboard.press("Escape");
		await page.getByRole("menu").waitFor({ state: "detached" });
		// Escape also closes it when focus has gone elsewhere on the page.
		await page.getByRole("button", { name: "Actions for A rather long file name for a small screen.txt" }).click();
		await page.getByRole("menuitem", { name: "Rename" }).waitFor();
		await page.evaluate(`document.activeElement instanceof HTMLElement && document.activeElement.blur()`);
		await page.keyboard.press("Escape");
		await page.getByRole("menu").waitFor({ state: "detached" });
		await screenshot(page, "phone");
		expectClean(page);
		await context.close();
	});
});
