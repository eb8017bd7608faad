/// <reference types="node" />
/**
 * Conflicts in the browser: two devices of one person save the same file
 * from the same version (the race is run from Node with If-Match, which is
 * deterministic); the losing save is marked "Conflicted copy" in the list of
 * both devices and listed in the Conflicts view, where "Keep both" and "Keep
 * this one" settle it and every open view follows.
 */
import type { Browser, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { baseUrl, expectClean, launch, newContext, openPage, signUpInPage } from "./browser";
import { apiJson, putFile, rootId, tokenFor, type Seeded } from "./seed";
import { signInInPage } from "./ui";

let browser: Browser;
beforeAll(async () => {
	browser = await launch();
});
afterAll(async () => {
	await browser?.close();
});

/** Two saves of `name` from the same base version: one wins, the other becomes a conflicted copy. */
async function race(token: string, parentId: string, name: string, base: string, texts: [string, string]) {
	const [x, y] = await Promise.all(texts.map((text) => putFile(token, parentId, name, text, base)));
	const copy = [x, y].find((r) => r?.conflict !== null);
	const winner = [x, y].find((r) => r?.conflict === null);
	if (!copy || !winner) throw new Error("expected one winner and one conflicted copy");
	return { copy: copy.node, winner: winner.node };
}

async function text(token: string, id: string): Promise<string> {
	const res = await fetch(`${baseUrl()}/v1/files/${id}/content`, { headers: { Authorization: `Bearer ${token}` } });
	expect(res.status).toBe(200);
	return res.text();
}

const conflictItem = (page: Page, copyName: string) => page.getByRole("listitem", { name: copyName, exact: true });

describe("conflicts", () => {
	it("are marked in the list, listed in the Conflicts view, and settled by keep both or keep this one", async () => {
		const contextA = await newContext(browser);
		const a = await openPage(contextA);
		const email = await signUpInPage(a);
		const contextB = await newContext(browser);
		const b = await openPage(contextB);
		await signInInPage(b, email);

		const token = await tokenFor(email);
		const root = await rootId(token);
		const plan = await putFile(token, root, "plan.txt", "version one");
		const first = await race(token, root, "plan.txt", plan.version.id, ["laptop edit", "phone edit"]);

		// Both devices show the copy, marked, without a reload.
		for (const page of [a, b]) {
			const copyRow = page.getByRole("row").filter({ hasText: first.copy.name });
			await copyRow.getByText("Conflicted copy", { exact: true }).waitFor();
		}
		await a.getByRole("link", { name: "Conflicts" }).click();
		await conflictItem(a, first.copy.name).waitFor();
		await b.getByRole("link", { name: "Conflicts" }).click();
		await conflictItem(b, first.copy.name).waitFor();

		// Keep both: the copy stays as an ordinary file; both devices' lists empty.
		await a.getByRole("button", { name: `Keep both: ${first.copy.name}` }).click();
		await conflictItem(a, first.copy.name).waitFor({ state: "detached" });
		await conflictItem(b, first.copy.name).waitFor({ state: "detached" });
		await a.getByText("No conflicts. Everything is in sync.").waitFor();
		const kept = await apiJson<Seeded & { conflict_of: string | null; trashed: boolean }>(token, "GET", `/v1/nodes/${first.copy.id}`);
		expect(kept).toMatchObject({ conflict_of: null, trashed: false });

		// A second race; keep the copy: its content becomes the original's, the copy goes to the trash.
		const head = await apiJson<{ version_id: string }>(token, "GET", `/v1/nodes/${first.winner.id}`);
		const second = await race(token, root, "plan.txt", head.version_id, ["final words", "other words"]);
		const copyText = await text(token, second.copy.id);
		await conflictItem(a, second.copy.name).waitFor();
		await conflictItem(b, second.copy.name).waitFor();
		await a.getByRole("button", { name: `Keep the conflicted copy ${second.copy.name}` }).click();
		await conflictItem(a, second.copy.name).waitFor({ state: "detached" });
		await conflictItem(b, second.copy.name).waitFor({ state: "detached" });
		expect(await text(token, second.winner.id)).toBe(copyText);
		expect(await apiJson<{ trashed: boolean }>(token, "GET", `/v1/nodes/${second.copy.id}`)).toMatchObject({ trashed: true });

		// A third; keep the original: the copy goes to the trash, the original is as it was.
		const now = await apiJson<{ version_id: string }>(token, "GET", `/v1/nodes/${first.winner.id}`);
		const before = await text(token, first.winner.id);
		const third = await race(token, root, "plan.txt", now.version_id, ["left", "right"]);
		const winnerText = await text(token, third.winner.id);
		await conflictItem(a, third.copy.name).waitFor();
		await a.getByRole("button", { name: `Keep the original of plan.txt` }).click();
		await conflictItem(a, third.copy.name).waitFor({ state: "detached" });
		expect(winnerText).not.toBe(before);
		expect(await text(token, third.winner.id)).toBe(winnerText);
		expect(await apiJson<{ trashed: boolean }>(token, "GET", `/v1/nodes/${third.copy.id}`)).toMatchObject({ trashed: true });

		// Back in the file list of B: no conflicted copy left.
		await b.getByRole("link", { name: "My files" }).click();
		await b.getByRole("row").filter({ hasText: first.copy.name }).waitFor();
		expect(await b.getByText("Conflicted copy", { exact: true }).count()).toBe(0);
		expectClean(a);
		expectClean(b);
		await contextA.close();
		await contextB.close();
	});
});
