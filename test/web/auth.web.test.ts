/// <reference types="node" />
/**
 * The browser session (docs/decisions/0026-web-app.md): a sign-up holds its
 * session in the HttpOnly cookie across reloads, tabs reloading at the same
 * moment never sign each other out, sign-out clears the cookie, and a wrong
 * password reads as a sentence.
 */
import type { Browser, BrowserContext } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { baseUrl, expectClean, freshEmail, launch, newContext, openPage, PASSWORD, signUpInPage } from "./browser";
import { pick, uploadsDone } from "./ui";

let browser: Browser;
beforeAll(async () => {
	browser = await launch();
});
afterAll(async () => {
	await browser?.close();
});

async function sessionCookies(context: BrowserContext) {
	return (await context.cookies()).filter((c) => c.name === "drive_rt" || c.name === "__Host-drive_rt");
}

describe("the browser session", () => {
	it("survives reloads, including two tabs reloading at once, and sign-out clears it", async () => {
		const context = await newContext(browser);
		const first = await openPage(context);
		const email = await signUpInPage(first);
		expect(await sessionCookies(context)).toHaveLength(1);

		await first.reload();
		await first.getByRole("button", { name: "Sign out" }).waitFor();
		await first.getByText(email).waitFor();

		// Two tabs of one profile share the cookie; both refresh it on load at the same moment.
		const second = await openPage(context);
		await second.getByRole("button", { name: "Sign out" }).waitFor();
		await Promise.all([first.reload(), second.reload()]);
		await Promise.all([
			first.getByRole("button", { name: "Sign out" }).waitFor(),
			second.getByRole("button", { name: "Sign out" }).waitFor(),
		]);
		// And once more, after the rotation both just made.
		await Promise.all([first.reload(), second.reload()]);
		await Promise.all([
			first.getByRole("button", { name: "Sign out" }).waitFor(),
			second.getByRole("button", { name: "Sign out" }).waitFor(),
		]);
		expect(await sessionCookies(context)).toHaveLength(1);

		await first.getByRole("button", { name: "Sign out" }).click();
		await first.getByRole("button", { name: "Sign in" }).waitFor();
		// The other tab hears of it and shows sign-in too.
		await second.getByRole("button", { name: "Sign in" }).waitFor();
		expect(await sessionCookies(context)).toEqual([]);
		await first.reload();
		await first.getByRole("button", { name: "Sign in" }).waitFor();
		expectClean(first);
		expectClean(second);
		await context.close();
	});

	it("signs in an existing account, and says so in words when the password is wrong", async () => {
		const email = freshEmail("auth");
		const made = await fetch(`${baseUrl()}/v1/auth/signup`, {
			method: "POST",
			headers: { "Content-Type": "application/json" },
			body: JSON.stringify({ email, password: PASSWORD, device_name: "test" }),
		});
		expect(made.status).toBe(201);

		const context = await newContext(browser);
		const page = await openPage(context);
		await page.getByLabel("Email").fill(email);
		await page.getByLabel("Password").fill("not the password at all");
		await page.getByRole("button", { name: "Sign in" }).click();
		const alert = page.getByRole("alert");
		await alert.waitFor();
		expect(await alert.textContent()).toBe("That email and password don't match.");
		expect(await sessionCookies(context)).toEqual([]);

		await page.getByLabel("Password").fill(PASSWORD);
		await page.getByRole("button", { name: "Sign in" }).click();
		await page.getByRole("button", { name: "Sign out" }).waitFor();
		await page.getByText("This folder is empty.").waitFor();
		expect(await sessionCookies(context)).toHaveLength(1);
		expectClean(page);
		await context.close();
	});

	it("shows storage used by files, history and trash, and deletes the account once the password is given again", async () => {
		const context = await newContext(browser);
		const page = await openPage(context);
		const email = await signUpInPage(page);
		await pick(page, "Upload files", { name: "kept.txt", mimeType: "text/plain", buffer: Buffer.from("a file worth counting") });
		await uploadsDone(page, 1);

		await page.getByRole("button", { name: email }).click();
		const dialog = page.getByRole("dialog", { name: "Your account" });
		const usage = dialog.getByRole("definition");
		await usage.first().getByText("21 bytes").waitFor();
		expect(await dialog.getByRole("term").allTextContents()).toEqual(["Files", "Version history", "Trash", "Used"]);

		await dialog.getByRole("button", { name: "Delete account…" }).click();
		await dialog.getByLabel("Type your password to confirm").fill("not the password at all");
		await dialog.getByRole("button", { name: "Delete my account" }).click();
		expect(await dialog.getByRole("alert").textContent()).toBe("That password isn't right.");
		await dialog.getByLabel("Type your password to confirm").fill(PASSWORD);
		await dialog.getByRole("button", { name: "Delete my account" }).click();
		await page.getByRole("button", { name: "Sign in" }).waitFor();
		await page.getByText("Your account is being deleted.", { exact: false }).waitFor();
		expect(await sessionCookies(context)).toEqual([]);

		await page.getByLabel("Email").fill(email);
		await page.getByLabel("Password").fill(PASSWORD);
		await page.getByRole("button", { name: "Sign in" }).click();
		expect(await page.getByRole("alert").textContent()).toBe("That email and password don't match.");
		expectClean(page);
		await context.close();
	});
});
