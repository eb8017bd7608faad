/**
 * Create-only uploads (docs/api.md, "Commits and conflicts"): `If-None-Match: *`
 * on PUT content, `create_only` on upload sessions and in tus metadata. A file
 * at the name when the commit lands is never given a version by it: the
 * upload becomes a conflicted copy, or 409 VERSION_CONFLICT with on_conflict=fail.
 */
import { beforeAll, describe, expect, it } from "vitest";
import { expectOk, type TestUser } from "../support/harness";
import { api, expectError, randomBytes, sha256 } from "./helpers";

const CREATE_ONLY = { "If-None-Match": "*" };

/** PUT content create-only. */
function createOnly(user: TestUser, name: string, data: string, query: Record<string, string> = {}) {
	return api.putContent(user, user.rootId, name, data, { headers: CREATE_ONLY, query });
}

/** The names of the live files under the root. */
async function rootNames(user: TestUser): Promise<string[]> {
	return (await api.listAll(user, user.rootId)).map((n) => n.name).sort();
}

/** Opens a one-block session for `bytes` at `name` with `extra` in its body; returns its id once every block is sent. */
async function session(user: TestUser, name: string, bytes: Uint8Array, extra: Record<string, unknown>): Promise<string> {
	const hash = await sha256(bytes);
	const created = expectOk(
		await api.createUpload(user, {
			parent_id: user.rootId,
			name,
			size: bytes.byteLength,
			blocks: [{ hash, size: bytes.byteLength }],
			...extra,
		}),
		201,
	);
	for (const missing of created.missing) expect((await api.putBlock(user, created.upload_id, missing, bytes)).status).toBe(204);
	return created.upload_id;
}

describe("If-None-Match: * on PUT content", () => {
	let user: TestUser;
	beforeAll(async () => {
		user = await api.signup("Ada's laptop");
	});

	it("creates a file at a free name", async () => {
		const made = expectOk(await createOnly(user, "free.txt", "mine"), 201);
		expect(made.conflict).toBeNull();
		expect(made.node.name).toBe("free.txt");
		expect(await api.text(user, made.node.id)).toBe("mine");
	});

	it("keeps the upload as a conflicted copy when a file has the name, and leaves that file's head alone", async () => {
		const theirs = await api.upload(user, user.rootId, "taken.txt", "theirs");
		const copy = expectOk(await createOnly(user, "taken.txt", "mine"), 201);
		expect(copy.conflict).toEqual({ node_id: theirs.node.id, reason: "stale_base" });
		expect(copy.node.id).not.toBe(theirs.node.id);
		expect(copy.node.conflict_of).toBe(theirs.node.id);
		expect(copy.node.name).toMatch(/^taken \(conflicted copy Ada's laptop \d{4}-\d{2}-\d{2} \d{6}\)\.txt$/);
		expect(await api.text(user, copy.node.id)).toBe("mine");
		const head = await api.node(user, theirs.node.id);
		expect(head.version_id).toBe(theirs.version.id);
		expect(await api.text(user, theirs.node.id)).toBe("theirs");
	});

	it("answers 409 VERSION_CONFLICT with on_conflict=fail, and changes nothing", async () => {
		const theirs = await api.upload(user, user.rootId, "kept.txt", "theirs");
		const before = await rootNames(user);
		const res = await api.request(
			`/v1/files/content?${new URLSearchParams({ parent_id: user.rootId, name: "kept.txt", on_conflict: "fail" })}`,
			{
				method: "PUT",
				token: user.token,
				body: "mine",
				headers: CREATE_ONLY,
			},
		);
		const error = await expectError(res, 409, "VERSION_CONFLICT");
		expect(error.error.details).toEqual([{ node_id: theirs.node.id, head_version_id: theirs.version.id }]);
		expect((await api.node(user, theirs.node.id)).version_id).toBe(theirs.version.id);
		expect(await rootNames(user)).toEqual(before);
	});

	it("answers a retry of its own create with the version it made, not a copy of itself", async () => {
		const first = expectOk(await createOnly(user, "retried.txt", "same bytes"), 201);
		const again = expectOk(await createOnly(user, "retried.txt", "same bytes"), 200);
		expect(again.version.id).toBe(first.version.id);
		expect(again.node.id).toBe(first.node.id);
		expect((await rootNames(user)).filter((n) => n.startsWith("retried"))).toEqual(["retried.txt"]);
	});

	it("still answers 409 NAME_TAKEN for a folder at the name", async () => {
		await api.mkdir(user, user.rootId, "a folder");
		await expectError(
			await api.request(`/v1/files/content?parent_id=${user.rootId}&name=a%20folder`, {
				method: "PUT",
				token: user.token,
				body: "x",
				headers: CREATE_ONLY,
			}),
			409,
			"NAME_TAKEN",
		);
	});

	it("refuses a tag list, and If-Match with it, before anything is stored", async () => {
		const theirs = await api.upload(user, user.rootId, "guarded.txt", "theirs");
		const url = `/v1/files/content?parent_id=${user.rootId}&name=guarded.txt`;
		const tagged = await api.request(url, {
			method: "PUT",
			token: user.token,
			body: "x",
			headers: { "If-None-Match": `"${theirs.version.id}"` },
		});
		await expectError(tagged, 400, "INVALID_REQUEST");
		const both = await api.request(url, {
			method: "PUT",
			token: user.token,
			body: "x",
			headers: { ...CREATE_ONLY, "If-Match": theirs.version.id },
		});
		await expectError(both, 400, "INVALID_REQUEST");
		expect((await api.node(user, theirs.node.id)).version_id).toBe(theirs.version.id);
	});
});

describe("create_only on upload sessions", () => {
	let user: TestUser;
	beforeAll(async () => {
		user = await api.signup("Ada's laptop");
	});

	it("creates a file at a free name", async () => {
		const id = await session(user, "fresh.bin", randomBytes(5000, 101), { create_only: true });
		const made = expectOk(await api.commitUpload(user, id), 201);
		expect(made.conflict).toBeNull();
		expect(made.node.name).toBe("fresh.bin");
	});

	it("becomes a conflicted copy when the name was taken after the session began", async () => {
		const id = await session(user, "raced.bin", randomBytes(5000, 102), { create_only: true });
		const theirs = await api.upload(user, user.rootId, "raced.bin", "another device's file");
		const copy = expectOk(await api.commitUpload(user, id), 201);
		expect(copy.conflict).toEqual({ node_id: theirs.node.id, reason: "stale_base" });
		expect(copy.node.id).not.toBe(theirs.node.id);
		expect((await api.node(user, theirs.node.id)).version_id).toBe(theirs.version.id);
		// Committing again answers the same copy (commits are idempotent).
		expect(expectOk(await api.commitUpload(user, id), 201).node.id).toBe(copy.node.id);
	});

	it("fails at commit with on_conflict=fail, and at creation when the name is already taken", async () => {
		const id = await session(user, "refused.bin", randomBytes(5000, 103), { create_only: true, on_conflict: "fail" });
		const theirs = await api.upload(user, user.rootId, "refused.bin", "another device's file");
		const before = await rootNames(user);
		await expectError(await api.commitUpload(user, id), 409, "VERSION_CONFLICT");
		expect((await api.node(user, theirs.node.id)).version_id).toBe(theirs.version.id);
		expect(await rootNames(user)).toEqual(before);
		const late = randomBytes(100, 104);
		const res = await api.createUpload(user, {
			parent_id: user.rootId,
			name: "refused.bin",
			size: late.byteLength,
			blocks: [{ hash: await sha256(late), size: late.byteLength }],
			create_only: true,
			on_conflict: "fail",
		});
		await expectError(res, 409, "VERSION_CONFLICT");
	});

	it("refuses create_only with base_version_id", async () => {
		const theirs = await api.upload(user, user.rootId, "edited.bin", "v1");
		const res = await api.createUpload(user, {
			parent_id: user.rootId,
			name: "edited.bin",
			size: 0,
			blocks: [],
			create_only: true,
			base_version_id: theirs.version.id,
		});
		await expectError(res, 400, "INVALID_REQUEST");
	});
});

describe("create_only in tus metadata", () => {
	it("keeps a complete upload onto a taken name as a conflicted copy", async () => {
		const user = await api.signup("Ada's laptop");
		const theirs = await api.upload(user, user.rootId, "tus.bin", "theirs");
		const data = randomBytes(3000, 105);
		const res = await api.tusCreate(user, "tus.bin", data.byteLength, {
			data,
			headers: { "Upload-Metadata": api.tusMetadata(user.rootId, "tus.bin", { create_only: "true" }) },
		});
		expect(res.status).toBe(201);
		const nodeId = res.headers.get("Drive-Node-Id") ?? "";
		expect(nodeId).not.toBe(theirs.node.id);
		expect((await api.node(user, nodeId)).conflict_of).toBe(theirs.node.id);
		expect((await api.node(user, theirs.node.id)).version_id).toBe(theirs.version.id);
	});
});
