/// <reference types="node" />
/**
 * Version history, sharing and public links in the browser: a file with
 * three versions lists them, downloads an old one, restores it and pins one;
 * a folder shared with a second person (their own browser profile) as viewer
 * then editor appears in their "Shared with me"; a public link with an
 * expiry and a password, opened in a fresh profile, asks for the password
 * and then downloads.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Browser, BrowserContext, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { expectClean, freshEmail, launch, newContext, openPage, screenshot, signUpInPage } from "./browser";
import { downloaded, pick, rowAction, uploadsDone } from "./ui";

let browser: Browser;
let owner: BrowserContext;
let page: Page;
let dir: string;

const text = (name: string, content: string) => ({ name, mimeType: "text/plain", buffer: Buffer.from(content) });

beforeAll(async () => {
	dir = mkdtempSync(join(tmpdir(), "drive-web-share-"));
	browser = await launch();
	owner = await newContext(browser);
	page = await openPage(owner);
	await signUpInPage(page);
}, 120_000);
afterAll(async () => {
	await browser?.close();
	rmSync(dir, { recursive: true, force: true });
});

describe("version history, sharing and links in the browser", () => {
	it("lists three versions, downloads an old one, restores it and pins one", async () => {
		for (const [i, content] of ["first draft", "second draft", "third draft"].entries()) {
			await pick(page, "Upload files", text("notes.txt", content));
			await uploadsDone(page, i + 1);
		}
		await page.getByRole("button", { name: "notes.txt", exact: true }).waitFor();
		await page.getByRole("button", { name: "Clear" }).click();
		await rowAction(page, "notes.txt", "Version history");
		const dialog = page.getByRole("dialog", { name: "Version history of notes.txt" });
		const rows = dialog.getByRole("row");
		// The header row and three versions, newest first.
		await rows.nth(3).waitFor();
		expect(await rows.count()).toBe(4);
		await screenshot(page, "version-history");

		const oldest = rows.nth(3);
		const saved = await downloaded(page, () => oldest.getByRole("button", { name: /^Download/ }).click());
		expect(saved.text).toBe("first draft");

		await oldest.getByRole("button", { name: /^Restore/ }).click();
		await rows.nth(4).waitFor();
		expect(await rows.count()).toBe(5);
		// The restored content is the new head.
		const head = await downloaded(page, () =>
			rows
				.nth(1)
				.getByRole("button", { name: /^Download/ })
				.click(),
		);
		expect(head.text).toBe("first draft");

		await rows.nth(2).getByRole("button", { name: /^Pin/ }).click();
		await rows
			.nth(2)
			.getByRole("button", { name: /^Unpin/, pressed: true })
			.waitFor();
		await dialog.getByRole("button", { name: "Close" }).click();
		expectClean(page);
	}, 180_000);

	it("shares a folder with a second person as viewer, then editor", async () => {
		const team = join(dir, "Team");
		mkdirSync(team, { recursive: true });
		writeFileSync(join(team, "plan.txt"), "the plan");
		await pick(page, "Upload folder", team);
		await uploadsDone(page, 1);

		const other = await newContext(browser);
		const theirs = await openPage(other);
		const email = await signUpInPage(theirs, freshEmail("member"));

		await rowAction(page, "Team", "Share");
		const dialog = page.getByRole("dialog", { name: "Share Team" });
		await dialog.getByLabel("Email address").fill(email);
		await dialog.getByLabel("Role", { exact: true }).selectOption("viewer");
		await dialog.getByRole("button", { name: "Share", exact: true }).click();
		const role = dialog.getByRole("combobox", { name: `Role of ${email}` });
		await role.waitFor();
		expect(await role.inputValue()).toBe("viewer");

		await theirs.getByRole("link", { name: "Shared with me" }).click();
		const row = theirs.getByRole("row", { name: /Team/ });
		await row.getByRole("cell", { name: "Viewer" }).waitFor();
		// A viewer reads and downloads, with no control that would change the folder.
		await theirs.getByRole("link", { name: "Team" }).click();
		await theirs.getByRole("button", { name: "plan.txt", exact: true }).waitFor();
		await theirs.getByText("View only: shared with you as a viewer.").waitFor();
		expect(await theirs.getByRole("button", { name: "Upload files" }).count()).toBe(0);
		expect(await theirs.getByRole("button", { name: "New folder" }).count()).toBe(0);
		await theirs.getByRole("button", { name: "Actions for plan.txt" }).click();
		expect(await theirs.getByRole("menuitem", { name: "Move to trash" }).count()).toBe(0);
		await theirs.keyboard.press("Escape");
		await theirs.getByRole("link", { name: "Shared with me" }).click();

		await Promise.all([
			page.waitForResponse((res) => res.request().method() === "PATCH" && res.url().includes("/members/") && res.ok()),
			role.selectOption("editor"),
		]);
		await theirs.reload();
		await theirs.getByRole("row", { name: /Team/ }).getByRole("cell", { name: "Editor" }).waitFor();
		await theirs.getByRole("link", { name: "Team" }).click();
		await theirs.getByRole("button", { name: "plan.txt", exact: true }).waitFor();
		await theirs.getByRole("button", { name: "Upload files" }).waitFor();

		await screenshot(page, "share-dialog");
		await dialog.getByRole("button", { name: "Close" }).click();
		await page.getByRole("button", { name: "Clear" }).click();
		expectClean(theirs);
		expectClean(page);
		await other.close();
	}, 180_000);

	it("opens a public link with an expiry and a password in a fresh browser, and downloads", async () => {
		await pick(page, "Upload files", text("brief.txt", "for your eyes"));
		await uploadsDone(page, 1);
		await page.getByRole("button", { name: "brief.txt", exact: true }).waitFor();
		await rowAction(page, "brief.txt", "Share");
		const dialog = page.getByRole("dialog", { name: "Share brief.txt" });
		await dialog.getByLabel("Expires (optional)").fill("2099-01-01T12:00");
		await dialog.getByLabel("Link password (optional)").fill("open sesame");
		await dialog.getByRole("button", { name: "Create link" }).click();
		const link = dialog.getByLabel(/^New link/);
		await link.waitFor();
		const url = await link.inputValue();
		expect(url).toMatch(/\/s\/[A-Za-z0-9_-]{22}$/);
		await dialog.getByRole("listitem").filter({ hasText: "password" }).waitFor();

		const stranger = await newContext(browser);
		const visitor = await openPage(stranger, new URL(url).pathname);
		await visitor.getByRole("heading", { name: "This link is protected" }).waitFor();
		await visitor.getByLabel("Password").fill("wrong");
		await visitor.getByRole("button", { name: "Open" }).click();
		await visitor.getByRole("alert").getByText("That password is not right.").waitFor();
		await visitor.getByLabel("Password").fill("open sesame");
		await visitor.getByRole("button", { name: "Open" }).click();
		await visitor.getByRole("heading", { name: "brief.txt" }).waitFor();
		const saved = await downloaded(visitor, () => visitor.getByRole("button", { name: "Download" }).click());
		expect(saved.name).toBe("brief.txt");
		expect(saved.text).toBe("for your eyes");
		expectClean(visitor);
		await stranger.close();
		expectClean(page);
	}, 180_000);
});
