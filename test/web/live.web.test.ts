/// <reference types="node" />
/**
 * Live updates (web/src/live.ts): another device of the same person (a
 * second browser context) sees a file made in the first one's UI, and one
 * made through the API, with no reload; a dropped socket reconnects and
 * still delivers; with the socket unusable, long poll delivers.
 */
import type { Browser, BrowserContext, Page, WebSocketRoute } from "playwright-core";
import { afterAll, beforeAll, describe, it } from "vitest";
import { expectClean, launch, newContext, openPage, signUpInPage } from "./browser";
import { putFile, rootId, tokenFor } from "./seed";
import { row, signInInPage } from "./ui";

let browser: Browser;
beforeAll(async () => {
	browser = await launch();
});
afterAll(async () => {
	await browser?.close();
});

const SOCKET = /\/v1\/sync\/ws/;

/** The top bar's live indicator reads `text`. */
async function liveIs(page: Page, text: string): Promise<void> {
	await page.getByRole("status").filter({ hasText: text }).first().waitFor();
}

/** A second device of `email`: a context of its own, signed in, on My files. */
async function secondDevice(
	email: string,
	prepare?: (context: BrowserContext) => Promise<void>,
): Promise<{ context: BrowserContext; page: Page }> {
	const context = await newContext(browser);
	await prepare?.(context);
	const page = await openPage(context);
	await signInInPage(page, email);
	return { context, page };
}

describe("live updates", () => {
	it("show another device's changes, from its UI and from the API, without a reload", async () => {
		const contextA = await newContext(browser);
		const a = await openPage(contextA);
		const email = await signUpInPage(a);
		const b = await secondDevice(email);
		await liveIs(b.page, "Live");

		await a.getByRole("button", { name: "New folder" }).click();
		const dialog = a.getByRole("dialog", { name: "New folder" });
		await dialog.getByLabel("Folder name").fill("Made on A");
		await dialog.getByRole("button", { name: "Create" }).click();
		await row(b.page, "Made on A").waitFor();

		const token = await tokenFor(email);
		await putFile(token, await rootId(token), "from-the-api.txt", "hello");
		await row(b.page, "from-the-api.txt").waitFor();
		await row(a, "from-the-api.txt").waitFor();
		expectClean(a);
		expectClean(b.page);
		await contextA.close();
		await b.context.close();
	});

	it("reconnect after the socket drops, with a new ticket, and keep delivering", async () => {
		const owner = await newContext(browser);
		const setup = await openPage(owner);
		const email = await signUpInPage(setup);
		const token = await tokenFor(email);
		const root = await rootId(token);

		const sockets: WebSocketRoute[] = [];
		let connected: () => void = () => undefined;
		let nth = 0;
		const waitForSocket = (n: number) =>
			new Promise<void>((resolve) => {
				nth = n;
				connected = resolve;
				if (sockets.length >= n) resolve();
			});
		const b = await secondDevice(email, (context) =>
			context.routeWebSocket(SOCKET, (ws) => {
				ws.connectToServer();
				sockets.push(ws);
				if (sockets.length >= nth) connected();
			}),
		);
		await waitForSocket(1);
		await liveIs(b.page, "Live");

		// The network drops the socket: the page opens a new one (a new ticket), the server greets it.
		const second = waitForSocket(2);
		await sockets[0]?.close({ code: 1006, reason: "dropped" });
		await second;
		await liveIs(b.page, "Live");
		await putFile(token, root, "after-the-drop.txt", "still here");
		await row(b.page, "after-the-drop.txt").waitFor();
		expectClean(b.page);
		await owner.close();
		await b.context.close();
	});

	it("fall back to long poll when the socket never works, and deliver through it", async () => {
		const owner = await newContext(browser);
		const setup = await openPage(owner);
		const email = await signUpInPage(setup);
		const token = await tokenFor(email);
		// Every socket is cut before the server can greet it.
		const b = await secondDevice(email, (context) =>
			context.routeWebSocket(SOCKET, (ws) => void ws.close({ code: 1011, reason: "blocked" })),
		);
		await liveIs(b.page, "Live (polling)");
		await putFile(token, await rootId(token), "by-long-poll.txt", "polled");
		await row(b.page, "by-long-poll.txt").waitFor();
		expectClean(b.page);
		await owner.close();
		await b.context.close();
	});
});
