/**
 * Failure playbooks (docs/operations.md, "Failure playbooks"; ADR 0033): the
 * notify worker unavailable. Every call the api makes to a UserHub fails
 * (drills in the api's own isolate, src/shared/drills.ts): reads and
 * downloads keep working from the shard and R2; writes and the sync
 * channel answer a retryable 503 and change nothing; a client retries.
 */
import { exports } from "cloudflare:workers";
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { DriveClient } from "../../src/client";
import { clearFaults, faultsFired, setFaults, type FaultRule } from "../../src/shared/drills";
import { expectError } from "../support/envelope";
import { expectOk, SyncSocket, type CommitResult, type Reply, type TestUser } from "../support/harness";
import { api, journal } from "./helpers";

/** Every call to a UserHub fails, as when the notify worker cannot be reached. */
const HUB_CALL: FaultRule = { target: "do.call", effect: "error", binding: "USER_HUB", times: 0 };
const HUB_DOWN = [HUB_CALL];

async function expectUnavailable(reply: Reply<unknown> | Response): Promise<void> {
	const retryAfter = reply.headers.get("Retry-After");
	await expectError(reply, 503, "UNAVAILABLE");
	expect(Number(retryAfter)).toBeGreaterThan(0);
}

afterEach(() => {
	clearFaults();
});

describe("the notify worker unavailable", () => {
	let user: TestUser;
	let file: CommitResult;
	let folderId: string;
	beforeAll(async () => {
		user = await api.signup();
		folderId = (await api.mkdir(user, user.rootId, "docs")).id;
		file = await api.upload(user, folderId, "a.txt", "hello");
	});

	it("keeps reads working: listing, metadata, changes, downloads, block lists and batch content", async () => {
		const cursor = await api.latest(user);
		setFaults(HUB_DOWN);
		expect((await api.listAll(user, user.rootId)).map((n) => n.name)).toEqual(["docs"]);
		expect((await api.node(user, file.node.id)).path).toBe("/docs/a.txt");
		expect(expectOk(await api.changes(user, null), 200).entries.map((e) => e.node.name)).toEqual(["docs", "a.txt"]);
		expect(expectOk(await api.changes(user, cursor), 200).entries).toEqual([]);
		expect(await api.text(user, file.node.id)).toBe("hello");
		const blocks = await api.request(`/v1/files/${file.node.id}/blocks`, { token: user.token });
		expect(blocks.status).toBe(200);
		const batch = await api.request("/v1/files/batch/content", {
			method: "POST",
			token: user.token,
			body: JSON.stringify({ items: [{ file_id: file.node.id, version_id: file.version.id }] }),
			headers: { "Content-Type": "application/json" },
		});
		expect(batch.status).toBe(200);
		expect(new TextDecoder().decode(await batch.arrayBuffer())).toContain("hello");
		// None of these went to the hub.
		expect(faultsFired()).toEqual([0]);
	});

	it("answers every write with a retryable 503 and changes nothing", async () => {
		const before = await journal(user.id);
		setFaults(HUB_DOWN);
		await expectUnavailable(await api.createFolder(user, user.rootId, "new"));
		await expectUnavailable(await api.putContent(user, folderId, "b.txt", "new file"));
		await expectUnavailable(await api.putContent(user, folderId, "a.txt", "edit", { ifMatch: file.version.id }));
		await expectUnavailable(await api.patchNode(user, file.node.id, { name: "renamed.txt" }));
		await expectUnavailable(await api.trash(user, file.node.id));
		clearFaults();
		expect(await journal(user.id)).toEqual(before);
		expect(await api.text(user, file.node.id)).toBe("hello");
		expect((await api.listAll(user, folderId)).map((n) => n.name)).toEqual(["a.txt"]);
	});

	it("fails the long poll, the sync ticket and the WebSocket upgrade cleanly", async () => {
		const cursor = await api.latest(user);
		const { ticket } = await api.ticket(user);
		setFaults(HUB_DOWN);
		await expectUnavailable(await api.longpoll(user, cursor, 30));
		await expectUnavailable(await api.call("/v1/sync/ticket", { method: "POST", token: user.token }));
		const dialed = await api.dial(ticket);
		expect(dialed instanceof SyncSocket ? 101 : dialed.status).toBe(503);
	});

	it("lets a client's retry land the write once the hub answers again", async () => {
		const client = new DriveClient({
			baseUrl: "http://drive.test",
			token: user.token,
			fetch: (input, init) => exports.default.fetch(new Request(input, init)),
		});
		// The first attempt finds the hub down; the client waits as Retry-After says and sends it again.
		setFaults([{ ...HUB_CALL, times: 1 }]);
		const retries: number[] = [];
		const made = await client.json<{ id: string; name: string }>("POST", "/v1/folders", {
			json: { parent_id: user.rootId, name: "retried" },
			onRetry: (info) => retries.push(info.attempt),
		});
		expect(retries).toEqual([1]);
		expect(made.name).toBe("retried");
		expect((await api.listAll(user, user.rootId)).filter((n) => n.name === "retried").map((n) => n.id)).toEqual([made.id]);
	});
});
