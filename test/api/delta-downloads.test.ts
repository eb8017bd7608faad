/** Delta downloads: a version's block list, one block of it, and the client that fetches only what it lacks (docs/api.md, "Delta downloads"). */
import { exports } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { DeltaDownloadError, downloadBlocks, DriveClient, type DownloadedBlock } from "../../src/client";
import { chunkBoundaries } from "../../src/shared/chunking";
import type { BlockList } from "../../src/shared/schemas/delta";
import { concat } from "../support/bytes";
import { api, bytesEqual, call, expectError, expectJson, randomBytes, sha256, versionBlocks, type TestUser } from "./helpers";
import { share, usersOnDifferentShards } from "./sharing";

const MiB = 1024 * 1024;
const RANDOM_HASH = "0".repeat(64);

/** The Drive client of `user`, calling the api worker in-process. */
function clientOf(user: TestUser): DriveClient {
	return new DriveClient({
		baseUrl: "http://drive.test",
		token: user.token,
		fetch: (input, init) => exports.default.fetch(new Request(input, init)),
		retries: 0,
	});
}

function list(user: TestUser, id: string, query: Record<string, string> = {}): Promise<Response> {
	const qs = new URLSearchParams(query).toString();
	return call(`/v1/files/${id}/blocks${qs === "" ? "" : `?${qs}`}`, { token: user.token });
}

function block(user: TestUser, id: string, hash: string, query: Record<string, string> = {}, headers: Record<string, string> = {}) {
	const qs = new URLSearchParams(query).toString();
	return call(`/v1/files/${id}/blocks/${hash}${qs === "" ? "" : `?${qs}`}`, { token: user.token, headers });
}

/** Every block of a version, following `next_offset` with pages of `limit`. */
async function listAllBlocks(user: TestUser, id: string, query: Record<string, string> = {}): Promise<BlockList> {
	const first = await expectJson<BlockList>(await list(user, id, query), 200);
	const blocks = [...first.blocks];
	for (let next = first.next_offset; next !== null;) {
		const page = await expectJson<BlockList>(await list(user, id, { ...query, offset: String(next) }), 200);
		expect(page.version_id).toBe(first.version_id);
		blocks.push(...page.blocks);
		next = page.next_offset;
	}
	return { ...first, blocks, next_offset: null };
}

/** All the bytes of a delta download, and the blocks it handed out. */
async function drain(download: AsyncIterable<Uint8Array>): Promise<Uint8Array> {
	const parts: Uint8Array[] = [];
	for await (const part of download) parts.push(part);
	return concat(parts);
}

/** `data` with `count` bytes flipped at `at`. */
function edited(data: Uint8Array, at: number, count: number): Uint8Array<ArrayBuffer> {
	const out = new Uint8Array(data);
	for (let i = at; i < at + count; i++) out[i] = (out[i] ?? 0) ^ 0xff;
	return out;
}

/** A fresh user with one file of `size` random bytes in their root. */
async function fileOf(name: string, size: number, seed: number) {
	const user = await api.signup();
	const data = randomBytes(size, seed);
	const made = await api.upload(user, user.rootId, name, data);
	return { user, data, made };
}

describe("the block list", () => {
	it("lists a version's blocks in offset order, tiling the file, as stored", async () => {
		const { user, data, made } = await fileOf("five.bin", 5 * MiB, 11);
		const listed = await expectJson<BlockList>(await list(user, made.node.id), 200);
		expect(listed).toMatchObject({
			node_id: made.node.id,
			version_id: made.version.id,
			size: data.length,
			content_hash: await sha256(data),
			next_offset: null,
		});
		expect(listed.blocks).toEqual(await versionBlocks(user.id, made.version.id));
		expect(listed.blocks.map((b) => b.size)).toEqual(chunkBoundaries(data));
		let offset = 0;
		for (const b of listed.blocks) {
			expect(b.offset).toBe(offset);
			expect(b.hash).toBe(await sha256(data.subarray(b.offset, b.offset + b.size)));
			offset += b.size;
		}
		expect(offset).toBe(data.length);
	});

	it("comes in pages chained by next_offset", async () => {
		const { user, made } = await fileOf("six.bin", 6 * MiB, 12);
		const whole = await expectJson<BlockList>(await list(user, made.node.id), 200);
		expect(whole.blocks.length).toBeGreaterThan(2);
		const first = await expectJson<BlockList>(await list(user, made.node.id, { limit: "2" }), 200);
		expect(first.blocks).toEqual(whole.blocks.slice(0, 2));
		expect(first.next_offset).toBe(whole.blocks[2]?.offset);
		expect((await listAllBlocks(user, made.node.id, { limit: "2" })).blocks).toEqual(whole.blocks);
		const last = whole.blocks[whole.blocks.length - 1];
		const tail = await expectJson<BlockList>(await list(user, made.node.id, { offset: String(last?.offset), limit: "1" }), 200);
		expect(tail.blocks).toEqual([last]);
		expect(tail.next_offset).toBeNull();
	});

	it("lists an empty file as no blocks", async () => {
		const user = await api.signup();
		const made = await api.upload(user, user.rootId, "empty.txt", new Uint8Array(0));
		const listed = await expectJson<BlockList>(await list(user, made.node.id), 200);
		expect(listed).toMatchObject({ size: 0, blocks: [], next_offset: null });
	});

	it("refuses a bad limit or offset with 400 and the envelope", async () => {
		const user = await api.signup();
		const made = await api.upload(user, user.rootId, "a.txt", "abc");
		await expectError(await list(user, made.node.id, { limit: "0" }), 400, "INVALID_REQUEST");
		await expectError(await list(user, made.node.id, { limit: "5001" }), 400, "INVALID_REQUEST");
		await expectError(await list(user, made.node.id, { offset: "-1" }), 400, "INVALID_REQUEST");
		await expectError(await list(user, made.node.id, { offset: "x" }), 400, "INVALID_REQUEST");
	});
});

describe("one block", () => {
	it("serves a block of the version as immutable bytes named by their hash", async () => {
		const { user, data, made } = await fileOf("three.bin", 3 * MiB, 13);
		const listed = await expectJson<BlockList>(await list(user, made.node.id), 200);
		const second = listed.blocks[1];
		if (!second) throw new Error("expected two blocks at least");
		const res = await block(user, made.node.id, second.hash);
		expect(res.status).toBe(200);
		expect(res.headers.get("Content-Type")).toBe("application/octet-stream");
		expect(res.headers.get("ETag")).toBe(`"${second.hash}"`);
		expect(res.headers.get("Cache-Control")).toBe("private, max-age=31536000, immutable");
		expect(res.headers.get("Content-Length")).toBe(String(second.size));
		const bytes = new Uint8Array(await res.arrayBuffer());
		expect(bytesEqual(bytes, data.subarray(second.offset, second.offset + second.size))).toBe(true);

		const again = await block(user, made.node.id, second.hash, {}, { "If-None-Match": `"${second.hash}"` });
		expect(again.status).toBe(304);
		expect(again.headers.get("ETag")).toBe(`"${second.hash}"`);
	});

	it("answers 404 for a hash the version does not hold, even one another file holds", async () => {
		const user = await api.signup();
		const mine = await api.upload(user, user.rootId, "mine.txt", "mine");
		const other = await api.upload(user, user.rootId, "other.txt", "other");
		await expectError(await block(user, mine.node.id, RANDOM_HASH), 404, "NOT_FOUND");
		await expectError(await block(user, mine.node.id, await sha256("other")), 404, "NOT_FOUND");
		expect((await block(user, other.node.id, await sha256("other"))).status).toBe(200);
	});

	it("refuses a hash that is not 64 lowercase hex characters with 400 and the envelope", async () => {
		const user = await api.signup();
		const made = await api.upload(user, user.rootId, "a.txt", "abc");
		for (const bad of ["abc", "A".repeat(64), `${"0".repeat(63)}g`, "0".repeat(65)]) {
			const refused = await expectError(await block(user, made.node.id, bad), 400, "INVALID_REQUEST");
			expect(JSON.stringify(refused.error.details)).toContain("hash");
		}
	});
});

describe("two versions that share most blocks", () => {
	it("lists only the changed blocks as new, and the client fetches only those", async () => {
		const user = await api.signup();
		const first = randomBytes(8 * MiB, 14);
		const second = edited(first, 4 * MiB, 100);
		const v1 = await api.upload(user, user.rootId, "big.bin", first);
		const v2 = await api.upload(user, user.rootId, "big.bin", second, { status: 200 });

		const old = await listAllBlocks(user, v1.node.id, { version_id: v1.version.id });
		const head = await listAllBlocks(user, v1.node.id);
		expect(old.version_id).toBe(v1.version.id);
		expect(head.version_id).toBe(v2.version.id);
		const oldHashes = new Set(old.blocks.map((b) => b.hash));
		const changed = head.blocks.filter((b) => !oldHashes.has(b.hash));
		// Content-defined chunking: an edit in one place changes the block holding it (and at most a neighbour).
		expect(changed.length).toBeGreaterThanOrEqual(1);
		expect(changed.length).toBeLessThanOrEqual(2);
		for (const b of changed) expect(b.offset).toBeLessThanOrEqual(4 * MiB + 100);
		for (const b of changed) expect(b.offset + b.size).toBeGreaterThan(4 * MiB);

		// A device holding the first version downloads the second.
		const held = new Map<string, Uint8Array>();
		for (const b of old.blocks) held.set(b.hash, first.subarray(b.offset, b.offset + b.size));
		const asked: string[] = [];
		const seen: DownloadedBlock[] = [];
		const download = await downloadBlocks(clientOf(user), v1.node.id, {
			have: async (hash) => {
				asked.push(hash);
				return held.get(hash) ?? null;
			},
			onBlock: (b) => seen.push(b),
			pageSize: 3,
		});
		expect(download).toMatchObject({ versionId: v2.version.id, size: second.length, contentHash: await sha256(second) });
		const bytes = await drain(download);
		expect(bytesEqual(bytes, second)).toBe(true);
		expect(asked).toEqual(head.blocks.map((b) => b.hash));
		expect(seen.filter((b) => b.source === "remote").map((b) => b.hash)).toEqual(changed.map((b) => b.hash));
		const changedBytes = changed.reduce((sum, b) => sum + b.size, 0);
		expect(download.stats).toEqual({
			blocksFetched: changed.length,
			bytesFetched: changedBytes,
			blocksReused: head.blocks.length - changed.length,
			bytesReused: second.length - changedBytes,
		});
		expect(download.stats.bytesFetched).toBeLessThan(second.length / 2);

		// The first version, pinned, and with nothing held: every block fetched.
		const whole = await downloadBlocks(clientOf(user), v1.node.id, { versionId: v1.version.id });
		expect(bytesEqual(await drain(whole), first)).toBe(true);
		expect(whole.stats).toMatchObject({ blocksReused: 0, bytesFetched: first.length });
	});

	it("fetches a held block whose bytes do not match its hash instead of using them", async () => {
		const { user, data, made } = await fileOf("two.bin", 2 * MiB, 15);
		const download = await downloadBlocks(clientOf(user), made.node.id, { have: async () => new Uint8Array(300 * 1024) });
		expect(bytesEqual(await drain(download), data)).toBe(true);
		expect(download.stats).toMatchObject({ blocksReused: 0, bytesFetched: data.length });
	});

	it("keeps reading the version it started on when the file changes meanwhile", async () => {
		const { user, data, made } = await fileOf("moving.bin", 4 * MiB, 16);
		const download = await downloadBlocks(clientOf(user), made.node.id, { pageSize: 1, readAhead: 1 });
		await api.upload(user, user.rootId, "moving.bin", edited(data, 0, 10), { status: 200 });
		expect(download.versionId).toBe(made.version.id);
		expect(bytesEqual(await drain(download), data)).toBe(true);
	});
});

describe("who may read blocks", () => {
	it("lets share members read, keeps history from viewers, and answers others and the trash with 404", async () => {
		const [owner, editor, viewer, stranger] = await usersOnDifferentShards(4);
		if (!owner || !editor || !viewer || !stranger) throw new Error("unreachable");
		const project = await api.mkdir(owner, owner.rootId, "Project");
		const data = randomBytes(2 * MiB, 17);
		const v1 = await api.upload(owner, project.id, "shared.bin", data);
		await api.upload(owner, project.id, "shared.bin", edited(data, 0, 1), { status: 200 });
		const kept = await api.upload(owner, project.id, "to-trash.txt", "soon in the trash");
		await share(owner, project.id, [
			{ user: editor, role: "editor" },
			{ user: viewer, role: "viewer" },
		]);
		const owned = await listAllBlocks(owner, v1.node.id);
		const hash = owned.blocks[0]?.hash ?? "";

		for (const member of [editor, viewer]) {
			expect(await listAllBlocks(member, v1.node.id)).toEqual(owned);
			expect((await block(member, v1.node.id, hash)).status).toBe(200);
			const download = await downloadBlocks(clientOf(member), v1.node.id);
			expect(bytesEqual(await drain(download), edited(data, 0, 1))).toBe(true);
		}
		// History is for owners and editors, as for the content route.
		expect((await list(editor, v1.node.id, { version_id: v1.version.id })).status).toBe(200);
		await expectError(await list(viewer, v1.node.id, { version_id: v1.version.id }), 403, "FORBIDDEN");
		await expectError(await block(viewer, v1.node.id, hash, { version_id: v1.version.id }), 403, "FORBIDDEN");

		// A viewer may name the head, so their download pins it; once the head moves, it stops.
		const head = owned.version_id;
		expect((await list(viewer, v1.node.id, { version_id: head })).status).toBe(200);
		const viewing = await downloadBlocks(clientOf(viewer), v1.node.id, { pageSize: 1, readAhead: 1 });
		await api.upload(owner, project.id, "shared.bin", "a third version", { status: 200 });
		await expect(drain(viewing)).rejects.toBeInstanceOf(DeltaDownloadError);
		await expectError(await block(viewer, v1.node.id, hash, { version_id: head }), 403, "FORBIDDEN");

		// A stranger gets the 404 of an id that names nothing.
		await expectError(await list(stranger, v1.node.id), 404, "NOT_FOUND");
		await expectError(await block(stranger, v1.node.id, hash), 404, "NOT_FOUND");
		await expectError(await list(owner, "nod_00000000000000000000000000"), 404, "NOT_FOUND");
		await expectError(await block(owner, "nod_00000000000000000000000000", hash), 404, "NOT_FOUND");
		await expectError(await list(owner, project.id), 404, "NOT_FOUND");
		await expectError(await list(owner, v1.node.id, { version_id: "ver_00000000000000000000000000" }), 404, "NOT_FOUND");

		// A file in the trash has left the share: members get 404, the owner what the content route gives.
		const trashedHash = await sha256("soon in the trash");
		expect((await block(editor, kept.node.id, trashedHash)).status).toBe(200);
		await api.trash(owner, kept.node.id);
		for (const member of [editor, viewer, stranger]) {
			await expectError(await list(member, kept.node.id), 404, "NOT_FOUND");
			await expectError(await block(member, kept.node.id, trashedHash), 404, "NOT_FOUND");
			await expectError(await call(`/v1/files/${kept.node.id}/content`, { token: member.token }), 404, "NOT_FOUND");
		}
		const content = await call(`/v1/files/${kept.node.id}/content`, { token: owner.token });
		await content.body?.cancel();
		expect((await list(owner, kept.node.id)).status).toBe(content.status);
		expect((await block(owner, kept.node.id, trashedHash)).status).toBe(content.status);
	});

	it("asks for sign-in", async () => {
		await expectError(await call(`/v1/files/nod_00000000000000000000000000/blocks`), 401, "UNAUTHENTICATED");
		await expectError(await call(`/v1/files/nod_00000000000000000000000000/blocks/${RANDOM_HASH}`), 401, "UNAUTHENTICATED");
	});
});
