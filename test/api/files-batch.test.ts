/**
 * POST /v1/files/batch (docs/api.md, "Batches of small files"): many small
 * files in one multipart request, committed through one hub call, each item
 * answered on its own; a request over a limit or with a part that does not
 * match its item changes nothing.
 */
import { exports } from "cloudflare:workers";
import { beforeAll, describe, expect, it } from "vitest";
import { commitFiles, DriveClient } from "../../src/client";
import { expectOk, type TestUser } from "../support/harness";
import { api, blobCount, bytesEqual, expectError, journal, randomBytes, sha256, shardOfUser, withQuota } from "./helpers";
import { share } from "./sharing";

interface Item {
	parent_id?: string;
	name?: string;
	file_id?: string;
	if_match?: string;
	create_only?: boolean;
	on_conflict?: "copy" | "fail";
	size: number;
	sha256: string;
}

type ItemResult =
	| {
			status: "created" | "updated" | "conflict";
			node: { id: string; name: string; conflict_of?: string | null };
			version: { id: string };
			conflict: unknown;
	  }
	| { error: { code: string; status: number; message: string } };

let seed = 5000;

/** A file for a batch: random bytes, and the manifest item naming them. */
async function file(fields: Omit<Item, "size" | "sha256">, size = 4096): Promise<{ item: Item; bytes: Uint8Array }> {
	const bytes = randomBytes(size, seed++);
	return { item: { ...fields, size, sha256: await sha256(bytes) }, bytes };
}

/** POSTs a batch: the manifest (as given, or built from the files), then one part per file. */
async function post(user: TestUser, files: { item: Item; bytes: Uint8Array }[], manifest?: unknown): Promise<Response> {
	const form = new FormData();
	form.append("manifest", JSON.stringify(manifest ?? { items: files.map((f) => f.item) }));
	for (const [i, f] of files.entries()) form.append("file", new Blob([f.bytes as Uint8Array<ArrayBuffer>]), `f${i}`);
	const encoded = new Response(form);
	return api.request("/v1/files/batch", {
		method: "POST",
		token: user.token,
		body: new Uint8Array(await encoded.arrayBuffer()),
		headers: { "Content-Type": encoded.headers.get("Content-Type") ?? "" },
	});
}

async function batch(user: TestUser, files: { item: Item; bytes: Uint8Array }[]): Promise<ItemResult[]> {
	const res = await post(user, files);
	if (res.status !== 200) throw new Error(`batch: ${res.status} ${await res.text()}`);
	return ((await res.json()) as { results: ItemResult[] }).results;
}

function client(user: TestUser): DriveClient {
	return new DriveClient({
		baseUrl: "http://drive.test",
		token: user.token,
		retries: 0,
		fetch: (input, init) => exports.default.fetch(new Request(input, init)),
	});
}

/** What nobody may see change when a batch is refused: the folder's names and the stored objects. */
async function snapshot(user: TestUser, folderId: string): Promise<{ names: string[]; blobs: number }> {
	return { names: (await api.listAll(user, folderId)).map((n) => n.name).sort(), blobs: await blobCount() };
}

describe("POST /v1/files/batch", () => {
	let user: TestUser;
	beforeAll(async () => {
		user = await api.signup("Ada's laptop");
	});

	it("commits 200 small files in one request, with consecutive journal entries", async () => {
		const folder = await api.mkdir(user, user.rootId, "many");
		const files = await Promise.all(
			Array.from({ length: 200 }, (_, i) => file({ parent_id: folder.id, name: `f${i}.txt`, create_only: true })),
		);
		const before = (await journal(user.id)).length;
		const results = await batch(user, files);
		expect(results).toHaveLength(200);
		for (const [i, result] of results.entries()) {
			if ("error" in result) throw new Error(`item ${i}: ${result.error.message}`);
			expect(result.status).toBe("created");
			expect(result.node.name).toBe(`f${i}.txt`);
		}
		expect(await api.listAll(user, folder.id)).toHaveLength(200);
		for (const i of [0, 117, 199]) {
			const result = results[i] as { node: { id: string } };
			const { bytes } = await api.download(user, result.node.id);
			expect(bytesEqual(bytes, (files[i] as { bytes: Uint8Array }).bytes)).toBe(true);
		}
		const entries = (await journal(user.id)).slice(before);
		expect(entries.map((e) => e.kind)).toEqual(Array(200).fill("created"));
		const first = entries[0]?.seq ?? 0;
		expect(entries.map((e) => e.seq)).toEqual(Array.from({ length: 200 }, (_, i) => first + i));
		expect(entries.map((e) => e.node_id)).toEqual(results.map((r) => (r as { node: { id: string } }).node.id));
	});

	it("answers each item on its own: a stale edit becomes a copy, a bad name is refused, the others land", async () => {
		const folder = await api.mkdir(user, user.rootId, "mixed");
		const edited = await api.upload(user, folder.id, "doc.txt", "v1");
		const v2 = await api.upload(user, folder.id, "doc.txt", "v2", { ifMatch: edited.version.id, status: 200 });
		const other = await api.upload(user, folder.id, "other.txt", "o1");
		const theirs = await api.upload(user, folder.id, "taken.txt", "another device's");
		const files = [
			await file({ parent_id: folder.id, name: "new.txt", create_only: true }),
			await file({ file_id: edited.node.id, if_match: edited.version.id }),
			await file({ parent_id: folder.id, name: "bad/name.txt" }),
			await file({ file_id: other.node.id, if_match: other.version.id }),
			await file({ parent_id: folder.id, name: "twice.txt", create_only: true }),
			await file({ parent_id: folder.id, name: "TWICE.txt", create_only: true, on_conflict: "fail" }),
			await file({ parent_id: folder.id, name: "twice.txt", create_only: true }),
			await file({ parent_id: folder.id, name: "taken.txt", create_only: true, on_conflict: "fail" }),
			await file({ parent_id: "nod_missing", name: "lost.txt" }),
		];
		const results = await batch(user, files);
		expect(results.map((r) => ("error" in r ? r.error.code : r.status))).toEqual([
			"created",
			"conflict",
			"INVALID_REQUEST",
			"updated",
			"created",
			"VERSION_CONFLICT",
			"conflict",
			"VERSION_CONFLICT",
			"NOT_FOUND",
		]);
		const [created, copy, , updated, twice, , twiceCopy] = results as {
			node: { id: string; name: string; conflict_of?: string | null };
			conflict: unknown;
		}[];
		expect(created?.node.name).toBe("new.txt");
		expect(copy?.conflict).toEqual({ node_id: edited.node.id, reason: "stale_base" });
		expect(copy?.node.name).toMatch(/^doc \(conflicted copy Ada's laptop \d{4}-\d{2}-\d{2} \d{6}\)\.txt$/);
		expect(updated?.node.id).toBe(other.node.id);
		// The second create-only item at a name an earlier item took: a copy, with its own free name.
		expect(twiceCopy?.conflict).toEqual({ node_id: twice?.node.id, reason: "stale_base" });
		expect(twiceCopy?.node.name).toMatch(/^twice \(conflicted copy Ada's laptop .*\)\.txt$/);
		// What lost keeps its head.
		expect((await api.node(user, edited.node.id)).version_id).toBe(v2.version.id);
		expect((await api.node(user, theirs.node.id)).version_id).toBe(theirs.version.id);
		expect(await api.text(user, theirs.node.id)).toBe("another device's");
		// The refused items' blocks are queued for the collector.
		const db = await shardOfUser(user.id);
		const refused = [2, 5, 7, 8].map((i) => files[i]?.item.sha256 ?? "");
		const { results: queued } = await db
			.prepare("SELECT hash FROM gc_candidates WHERE hash IN (SELECT value FROM json_each(?))")
			.bind(JSON.stringify(refused))
			.all<{ hash: string }>();
		expect(queued.map((r) => r.hash).sort()).toEqual([...refused].sort());
	});

	it("serializes batches that race for one name: one creates it, the other's create-only item becomes a copy", async () => {
		const folder = await api.mkdir(user, user.rootId, "race");
		const [a, b] = await Promise.all(
			[0, 1].map(async () => batch(user, [await file({ parent_id: folder.id, name: "same.txt", create_only: true })])),
		);
		const statuses = [a?.[0], b?.[0]].map((r) => (r && "status" in r ? r.status : "error"));
		expect(statuses.sort()).toEqual(["conflict", "created"]);
		expect((await api.listAll(user, folder.id)).map((n) => n.name).filter((n) => n === "same.txt")).toHaveLength(1);
	});

	it("refuses every item of a request that does not fit the quota, and stores nothing for it", async () => {
		const small = await withQuota(await api.signup("Small laptop"), 10_000);
		const blobs = await blobCount();
		const results = await batch(small, [
			await file({ parent_id: small.rootId, name: "a.bin" }, 4000),
			await file({ parent_id: small.rootId, name: "b.bin" }, 4000),
			await file({ parent_id: small.rootId, name: "c.bin" }, 4000),
		]);
		expect(results.map((r) => ("error" in r ? r.error.code : r.status))).toEqual(["QUOTA_EXCEEDED", "QUOTA_EXCEEDED", "QUOTA_EXCEEDED"]);
		expect(await api.listAll(small, small.rootId)).toEqual([]);
		expect(await blobCount()).toBe(blobs);
		expect(await batch(small, [await file({ parent_id: small.rootId, name: "fits.bin" }, 4000)])).toMatchObject([{ status: "created" }]);
	});

	it("refuses a request over a limit, or with a part that does not match its item, and changes nothing", async () => {
		const folder = await api.mkdir(user, user.rootId, "limits");
		const one = await file({ parent_id: folder.id, name: "ok.txt" });
		const before = await snapshot(user, folder.id);

		const tooMany = Array.from({ length: 257 }, (_, i) => ({ ...one.item, name: `n${i}.txt` }));
		await expectError(
			await post(
				user,
				tooMany.map((item) => ({ item, bytes: one.bytes })),
			),
			400,
			"INVALID_REQUEST",
		);

		const big = await file({ parent_id: folder.id, name: "big.bin" }, 2 * 1024 * 1024);
		await expectError(await post(user, [one, big]), 413, "PAYLOAD_TOO_LARGE");

		const resized = { item: { ...one.item, size: one.item.size + 1 }, bytes: one.bytes };
		await expectError(await post(user, [one, resized]), 400, "INVALID_REQUEST");

		const wrongHash = { item: { ...one.item, name: "wrong.txt", sha256: "0".repeat(64) }, bytes: one.bytes };
		const mismatch = await expectError(await post(user, [one, wrongHash]), 422, "HASH_MISMATCH");
		expect(mismatch.error.details).toEqual([{ index: 1, expected: "0".repeat(64), actual: one.item.sha256 }]);

		await expectError(await post(user, [one], { items: [one.item, one.item] }), 400, "INVALID_REQUEST");
		await expectError(await post(user, [one], { items: [{ ...one.item, file_id: "nod_x" }] }), 400, "INVALID_REQUEST");
		await expectError(await post(user, [one], "not a manifest"), 400, "INVALID_REQUEST");
		const json = await api.request("/v1/files/batch", { method: "POST", token: user.token, json: { items: [one.item] } });
		await expectError(json, 415, "UNSUPPORTED_MEDIA_TYPE");

		expect(await snapshot(user, folder.id)).toEqual(before);
		expect(await batch(user, [one])).toMatchObject([{ status: "created" }]);
	});

	it("reaches only the caller's own tree: a member of a share is refused per item, and the owner's folder is unchanged", async () => {
		const owner = await api.signup("Owner's laptop");
		const shared = await api.mkdir(owner, owner.rootId, "shared");
		const viewer = await api.signup("Viewer's laptop");
		const editor = await api.signup("Editor's laptop");
		await share(owner, shared.id, [
			{ user: viewer, role: "viewer" },
			{ user: editor, role: "editor" },
		]);
		for (const member of [viewer, editor]) {
			// Alone, such an item makes the whole request a 404; beside an item of their own, it is refused on its own.
			await expectError(await post(member, [await file({ parent_id: shared.id, name: "intruder.txt" })]), 404, "NOT_FOUND");
			const mixed = await batch(member, [
				await file({ parent_id: shared.id, name: "intruder.txt" }),
				await file({ parent_id: member.rootId, name: "mine.txt", create_only: true }),
			]);
			expect(mixed).toMatchObject([{ error: { code: "NOT_FOUND", status: 404 } }, { status: "created" }]);
		}
		expect(await api.listAll(owner, shared.id)).toEqual([]);
	});

	it("is what the client's commitFiles sends: outcomes in order, refusals as DriveApiErrors", async () => {
		const folder = await api.mkdir(user, user.rootId, "client");
		const existing = await api.upload(user, folder.id, "exists.txt", "theirs");
		const outcomes = await commitFiles(client(user), [
			{ parentId: folder.id, name: "a.txt", createOnly: true, bytes: new TextEncoder().encode("a") },
			{ parentId: folder.id, name: "exists.txt", createOnly: true, onConflict: "fail", bytes: new TextEncoder().encode("mine") },
			{ fileId: existing.node.id, ifMatch: existing.version.id, bytes: new TextEncoder().encode("edit") },
		]);
		expect(outcomes.map((o) => o.ok)).toEqual([true, false, true]);
		const refused = outcomes[1];
		if (refused?.ok !== false) throw new Error("expected a refusal");
		expect(refused.error).toMatchObject({ name: "DriveApiError", code: "VERSION_CONFLICT", status: 409 });
		const edit = outcomes[2];
		if (edit?.ok !== true) throw new Error("expected a commit");
		expect(edit.result.node.id).toBe(existing.node.id);
		expect(await api.text(user, existing.node.id)).toBe("edit");
		expect(
			expectOk(await api.children(user, folder.id), 200)
				.items.map((n) => n.name)
				.sort(),
		).toEqual(["a.txt", "exists.txt"]);
	});
});
