/** File content: PUT upload, GET download with ranges and validators, commits and conflicts (docs/api.md, "File content", "Commits and conflicts"). */
import { describe, expect, it } from "vitest";
import { CHUNK_MIN_SIZE, chunkBoundaries, chunkerScanner } from "../../src/shared/chunking";
import { bytesEqual, randomBytes, sha256 } from "../support/bytes";
import { expectError, runAuthSuite } from "../support/envelope";
import { expectOk, type Body, type Node, type NodePage, type TestUser } from "../support/harness";
import { api, blobCount, journal, versionBlocks, withQuota } from "./helpers";

const MiB = 1024 * 1024;
const text = (s: string) => new TextEncoder().encode(s);

/** PUT content with extra headers and query parameters. */
function put(
	user: TestUser,
	parentId: string,
	name: string,
	data: Body,
	headers: Record<string, string> = {},
	query: Record<string, string> = {},
) {
	return api.putContent(user, parentId, name, data, { headers, query });
}

/** PUT content, asserting `status`. */
function upload(user: TestUser, parentId: string, name: string, data: Body, status = 201, headers: Record<string, string> = {}) {
	return api.upload(user, parentId, name, data, { status, headers });
}

/** GET content with `headers`, asserting `status`. */
function download(user: TestUser, id: string, headers: Record<string, string> = {}, status = 200) {
	return api.download(user, id, { headers, status });
}

const remove = (user: TestUser, id: string) => api.trash(user, id);

/** Uploads `data` and checks that it downloads byte-exact, with the right size, hash and block layout. */
async function roundTrip(user: TestUser, name: string, data: Uint8Array): Promise<{ nodeId: string; versionId: string }> {
	const committed = await upload(user, user.rootId, name, data);
	const hash = await sha256(data);
	expect(committed.node).toMatchObject({
		type: "file",
		name,
		size: data.length,
		content_hash: hash,
		version_id: committed.version.id,
		trashed: false,
	});
	expect(committed.version).toMatchObject({ node_id: committed.node.id, size: data.length, content_hash: hash, device_id: user.deviceId });
	expect(committed.conflict).toBeNull();
	const { res, bytes } = await download(user, committed.node.id);
	expect(res.headers.get("Content-Length")).toBe(String(data.length));
	expect(bytes.length).toBe(data.length);
	expect(bytesEqual(bytes, data)).toBe(true);
	const blocks = await versionBlocks(user.id, committed.version.id);
	expect(blocks.map((b) => b.size)).toEqual(chunkBoundaries(data));
	let offset = 0;
	for (const b of blocks) {
		expect(b.offset).toBe(offset);
		offset += b.size;
	}
	expect(offset).toBe(data.length);
	return { nodeId: committed.node.id, versionId: committed.version.id };
}

describe("content: upload and download", () => {
	it("round-trips an empty file", async () => {
		const user = await api.signup();
		const { nodeId } = await roundTrip(user, "empty.bin", new Uint8Array(0));
		const node = await api.node(user, nodeId);
		expect(node.content_hash).toBe("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
	});

	it("round-trips a one-byte file", async () => {
		const user = await api.signup();
		await roundTrip(user, "one.bin", new Uint8Array([0xa5]));
	});

	it("round-trips a file that ends exactly on a content-defined block boundary", async () => {
		const user = await api.signup();
		const data = randomBytes(8 * MiB, 0xb0a7);
		const cuts = chunkBoundaries(data);
		expect(cuts.length).toBeGreaterThan(2);
		const [first = 0, second = 0] = cuts;
		const prefix = data.slice(0, first + second);
		// The prefix chunks exactly as it did inside the longer data: two whole blocks.
		expect(chunkBoundaries(prefix)).toEqual([first, second]);
		await roundTrip(user, "boundary.bin", prefix);
	});

	it("round-trips a file of exactly CHUNK_MIN_SIZE bytes as one block", async () => {
		const user = await api.signup();
		const data = randomBytes(CHUNK_MIN_SIZE, 0x5eed);
		const { versionId } = await roundTrip(user, "min.bin", data);
		expect((await versionBlocks(user.id, versionId)).length).toBe(1);
	});

	it("round-trips 30 MiB of random bytes, matching SHA-256 and content_hash", async () => {
		const user = await api.signup();
		const data = randomBytes(30 * MiB, 0x30);
		const expected = await sha256(data);
		const committed = await upload(user, user.rootId, "big.bin", data);
		expect(committed.node.size).toBe(30 * MiB);
		expect(committed.node.content_hash).toBe(expected);
		const res = await api.request(`/v1/files/${committed.node.id}/content`, { token: user.token });
		expect(res.status).toBe(200);
		expect(res.headers.get("Content-Length")).toBe(String(30 * MiB));
		const got = new Uint8Array(await res.arrayBuffer());
		expect(got.length).toBe(30 * MiB);
		expect(await sha256(got)).toBe(expected);
		const blocks = await versionBlocks(user.id, committed.version.id);
		expect(blocks.length).toBeGreaterThan(5);
		expect(blocks.reduce((n, b) => n + b.size, 0)).toBe(30 * MiB);
	});

	it("chunks with the WebAssembly gear loop, to the cuts of the JavaScript one", async () => {
		// The worker installs it at startup (workers/api/index.ts). The cuts are
		// the storage format: roundTrip checks them against chunkBoundaries,
		// which always runs the JavaScript loop.
		const user = await api.signup();
		await roundTrip(user, "wasm.bin", randomBytes(9 * MiB, 0x9a5));
		expect(chunkerScanner()).toBe("wasm");
	});

	it("answers ETag, Repr-Digest, Content-Type and Content-Disposition on a download", async () => {
		const user = await api.signup();
		const data = text("hello, headers");
		const committed = await upload(user, user.rootId, "r\u00e9sum\u00e9 2026.txt", data);
		const putEtag = committed.version.id;
		const { res } = await download(user, committed.node.id);
		expect(res.headers.get("ETag")).toBe(`"${putEtag}"`);
		expect(res.headers.get("Accept-Ranges")).toBe("bytes");
		expect(res.headers.get("Content-Type")).toBe("text/plain; charset=utf-8");
		const disposition = res.headers.get("Content-Disposition") ?? "";
		expect(disposition).toMatch(/^attachment; /);
		expect(disposition).toContain("filename*=UTF-8''r%C3%A9sum%C3%A9%202026.txt");
		expect(disposition).toContain('filename="r_sum_ 2026.txt"');
		const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", data));
		expect(res.headers.get("Repr-Digest")).toBe(`sha-256=:${btoa(String.fromCharCode(...digest))}:`);
		expect(res.headers.get("X-Content-Type-Options")).toBe("nosniff");
	});

	it("refuses to be loaded as a script, style or worker of the app's origin", async () => {
		const user = await api.signup();
		const { node } = await upload(user, user.rootId, "evil.js", "fetch('/v1/auth/web/refresh', {method: 'POST'})");
		for (const dest of ["script", "style", "worker", "serviceworker"]) {
			const res = await api.request(`/v1/files/${node.id}/content`, { token: user.token, headers: { "Sec-Fetch-Dest": dest } });
			await expectError(res, 403, "FORBIDDEN");
		}
		for (const dest of ["document", "iframe", "image", "empty"]) await download(user, node.id, { "Sec-Fetch-Dest": dest }, 200);
	});

	it.each([
		["photo.JPG", "image/jpeg"],
		["data.json", "application/json"],
		["archive.tar.gz", "application/gzip"],
		["README", "application/octet-stream"],
		// Scripts and stylesheets go out as text: nosniff then keeps them from running or applying in our origin.
		["app.js", "text/plain; charset=utf-8"],
		["lib.mjs", "text/plain; charset=utf-8"],
		["site.css", "text/plain; charset=utf-8"],
		["weird.xyz123", "application/octet-stream"],
	])("guesses the Content-Type of %s as %s", async (name, type) => {
		const user = await api.signup();
		const { node } = await upload(user, user.rootId, name, "x");
		const { res } = await download(user, node.id);
		expect(res.headers.get("Content-Type")).toBe(type);
	});

	it("serves inline when asked, still with filename*", async () => {
		const user = await api.signup();
		const { node } = await upload(user, user.rootId, "pic.png", "png");
		const res = await api.request(`/v1/files/${node.id}/content?disposition=inline`, { token: user.token });
		expect(res.headers.get("Content-Disposition")).toBe(`inline; filename="pic.png"; filename*=UTF-8''pic.png`);
	});

	it("answers HEAD with the download's headers and no body", async () => {
		const user = await api.signup();
		const { node, version } = await upload(user, user.rootId, "head.txt", "twelve bytes");
		const res = await api.request(`/v1/files/${node.id}/content`, { method: "HEAD", token: user.token });
		expect(res.status).toBe(200);
		expect(res.headers.get("ETag")).toBe(`"${version.id}"`);
		expect(res.headers.get("Content-Length")).toBe("12");
		expect((await res.arrayBuffer()).byteLength).toBe(0);
	});

	it("downloads an earlier version by version_id", async () => {
		const user = await api.signup();
		const v1 = await upload(user, user.rootId, "v.txt", "first");
		const v2 = await upload(user, user.rootId, "v.txt", "second", 200);
		expect(new TextDecoder().decode((await download(user, v1.node.id, {})).bytes)).toBe("second");
		const old = await api.request(`/v1/files/${v1.node.id}/content?version_id=${v1.version.id}`, { token: user.token });
		expect(await old.text()).toBe("first");
		expect(old.headers.get("ETag")).toBe(`"${v1.version.id}"`);
		expect(v2.version.id).not.toBe(v1.version.id);
	});
});

describe("content: ranges and validators", () => {
	// One multi-block file for every range test; each test signs up its own user.
	const data = randomBytes(3 * MiB, 0x7a11);
	const cuts = chunkBoundaries(data);
	const size = data.length;

	async function setup(): Promise<{ user: TestUser; id: string; versionId: string }> {
		const user = await api.signup();
		const committed = await upload(user, user.rootId, "ranges.bin", data);
		return { user, id: committed.node.id, versionId: committed.version.id };
	}

	async function expectRange(user: TestUser, id: string, header: string, start: number, end: number): Promise<void> {
		const { res, bytes } = await download(user, id, { Range: header }, 206);
		expect(res.headers.get("Content-Range")).toBe(`bytes ${start}-${end}/${size}`);
		expect(res.headers.get("Content-Length")).toBe(String(end - start + 1));
		expect(bytes.length).toBe(end - start + 1);
		expect(bytesEqual(bytes, data.subarray(start, end + 1))).toBe(true);
	}

	it("has more than one block to range over", () => {
		expect(cuts.length).toBeGreaterThanOrEqual(2);
	});

	it("serves bytes=a-b inside one block with 206", async () => {
		const { user, id } = await setup();
		await expectRange(user, id, "bytes=10-99", 10, 99);
		await expectRange(user, id, "bytes=0-0", 0, 0);
	});

	it("serves a range that spans blocks", async () => {
		const { user, id } = await setup();
		const boundary = cuts[0] ?? 0;
		await expectRange(user, id, `bytes=${boundary - 1000}-${boundary + 1000}`, boundary - 1000, boundary + 1000);
		await expectRange(user, id, `bytes=${boundary}-${boundary}`, boundary, boundary);
		await expectRange(user, id, `bytes=5-${size - 6}`, 5, size - 6);
	});

	it("serves bytes=a- to the end", async () => {
		const { user, id } = await setup();
		await expectRange(user, id, `bytes=${size - 12345}-`, size - 12345, size - 1);
	});

	it("serves a suffix range bytes=-n", async () => {
		const { user, id } = await setup();
		await expectRange(user, id, "bytes=-500", size - 500, size - 1);
		await expectRange(user, id, `bytes=-${size + 10}`, 0, size - 1);
	});

	it("clamps a last-byte position past the end", async () => {
		const { user, id } = await setup();
		await expectRange(user, id, `bytes=${size - 10}-${size + 1000}`, size - 10, size - 1);
	});

	it("answers a range past the end with 416, Content-Range bytes */size and the envelope", async () => {
		const { user, id } = await setup();
		for (const header of [`bytes=${size}-`, `bytes=${size + 100}-${size + 200}`, "bytes=-0"]) {
			const res = await api.request(`/v1/files/${id}/content`, { token: user.token, headers: { Range: header } });
			expect(res.headers.get("Content-Range")).toBe(`bytes */${size}`);
			const envelope = await expectError(res, 416, "RANGE_NOT_SATISFIABLE");
			expect(envelope.error.details).toEqual([{ size }]);
		}
	});

	it("answers any range of an empty file with 416 bytes */0", async () => {
		const user = await api.signup();
		const { node } = await upload(user, user.rootId, "empty", new Uint8Array(0));
		const res = await api.request(`/v1/files/${node.id}/content`, { token: user.token, headers: { Range: "bytes=0-" } });
		expect(res.headers.get("Content-Range")).toBe("bytes */0");
		await expectError(res, 416, "RANGE_NOT_SATISFIABLE");
	});

	it("serves the whole file with 200 for multiple ranges", async () => {
		const { user, id } = await setup();
		const { res, bytes } = await download(user, id, { Range: "bytes=0-9,20-29" }, 200);
		expect(res.headers.get("Content-Range")).toBeNull();
		expect(bytesEqual(bytes, data)).toBe(true);
	});

	it("ignores a syntactically invalid range and serves the whole file", async () => {
		const { user, id } = await setup();
		for (const header of ["bytes=9-2", "items=0-9", "bytes=abc"]) {
			const { bytes } = await download(user, id, { Range: header }, 200);
			expect(bytes.length).toBe(size);
		}
	});

	it("honours If-Range: the current ETag gets the range, a stale one the whole file", async () => {
		const { user, id, versionId } = await setup();
		await download(user, id, { Range: "bytes=0-9", "If-Range": `"${versionId}"` }, 206);
		const { res, bytes } = await download(user, id, { Range: "bytes=0-9", "If-Range": '"ver_somethingelse"' }, 200);
		expect(res.headers.get("Content-Range")).toBeNull();
		expect(bytesEqual(bytes, data)).toBe(true);
	});

	// Regression: If-Range must use the strong comparison (RFC 9110 §13.1.5): a weak
	// entity-tag never matches, so the whole file must be sent. etagMatches()
	// in workers/api/routes/content.ts strips "W/" and serves the range.
	it("serves the whole file when If-Range carries a weak entity-tag", async () => {
		const { user, id, versionId } = await setup();
		await download(user, id, { Range: "bytes=0-9", "If-Range": `W/"${versionId}"` }, 200);
	});

	it("answers ETag as the quoted version id, and If-None-Match with it gets 304", async () => {
		const { user, id, versionId } = await setup();
		const { res } = await download(user, id);
		expect(res.headers.get("ETag")).toBe(`"${versionId}"`);
		const cached = await api.request(`/v1/files/${id}/content`, { token: user.token, headers: { "If-None-Match": `"${versionId}"` } });
		expect(cached.status).toBe(304);
		expect(cached.headers.get("ETag")).toBe(`"${versionId}"`);
		expect(await cached.text()).toBe("");
		const star = await api.request(`/v1/files/${id}/content`, { token: user.token, headers: { "If-None-Match": "*" } });
		expect(star.status).toBe(304);
		const list = await api.request(`/v1/files/${id}/content`, {
			token: user.token,
			headers: { "If-None-Match": `"ver_other", "${versionId}"` },
		});
		expect(list.status).toBe(304);
	});

	it("answers 200 when If-None-Match names another version", async () => {
		const { user, id } = await setup();
		const { bytes } = await download(user, id, { "If-None-Match": '"ver_stale"' }, 200);
		expect(bytes.length).toBe(size);
	});

	it("gives a new version a new ETag, so the old one no longer matches", async () => {
		const user = await api.signup();
		const v1 = await upload(user, user.rootId, "e.txt", "one");
		const v2 = await upload(user, user.rootId, "e.txt", "two", 200);
		const res = await api.request(`/v1/files/${v1.node.id}/content`, {
			token: user.token,
			headers: { "If-None-Match": `"${v1.version.id}"` },
		});
		expect(res.status).toBe(200);
		expect(res.headers.get("ETag")).toBe(`"${v2.version.id}"`);
		expect(await res.text()).toBe("two");
	});
});

describe("content: commits and conflicts", () => {
	it("answers 200 and a new version when uploading to an existing name", async () => {
		const user = await api.signup();
		const first = await upload(user, user.rootId, "doc.txt", "v1");
		const second = await upload(user, user.rootId, "doc.txt", "version two", 200);
		expect(second.node.id).toBe(first.node.id);
		expect(second.version.id).not.toBe(first.version.id);
		expect(second.node).toMatchObject({ version_id: second.version.id, size: 11 });
		expect(second.conflict).toBeNull();
		expect(new TextDecoder().decode((await download(user, first.node.id)).bytes)).toBe("version two");
		// A case-only different name is the same file.
		const third = await upload(user, user.rootId, "DOC.TXT", "three", 200);
		expect(third.node.id).toBe(first.node.id);
		expect(names(await api.listAll(user, user.rootId))).toEqual(["doc.txt"]);
	});

	it("answers PUT with the version's ETag", async () => {
		const user = await api.signup();
		const res = await put(user, user.rootId, "etag.txt", "e");
		const committed = expectOk(res, 201);
		expect(res.headers.get("ETag")).toBe(`"${committed.version.id}"`);
	});

	it("accepts If-Match with the current version (quoted or bare) and answers 200", async () => {
		const user = await api.signup();
		const v1 = await upload(user, user.rootId, "m.txt", "one");
		const v2 = await upload(user, user.rootId, "m.txt", "two", 200, { "If-Match": v1.version.id });
		expect(v2.conflict).toBeNull();
		const v3 = await upload(user, user.rootId, "m.txt", "three", 200, { "If-Match": `"${v2.version.id}"` });
		expect(v3.conflict).toBeNull();
		expect(v3.node.id).toBe(v1.node.id);
		expect(names(await api.listAll(user, user.rootId))).toEqual(["m.txt"]);
	});

	it("keeps a stale If-Match as a conflicted copy (201) beside the winner", async () => {
		const user = await api.signup("Ada's laptop");
		const base = await upload(user, user.rootId, "notes.txt", "base");
		const winner = await upload(user, user.rootId, "notes.txt", "winner", 200, { "If-Match": base.version.id });
		const loserBytes = randomBytes(5000, 0x1053);
		const before = Date.now();
		const loser = await upload(user, user.rootId, "notes.txt", loserBytes, 201, { "If-Match": base.version.id });
		const after = Date.now();
		expect(loser.conflict).toEqual({ node_id: base.node.id, reason: "stale_base" });
		expect(loser.node.id).not.toBe(base.node.id);
		const match = /^notes \(conflicted copy Ada's laptop (\d{4})-(\d{2})-(\d{2}) (\d{2})(\d{2})(\d{2})\)\.txt$/.exec(loser.node.name);
		expect(match, loser.node.name).not.toBeNull();
		const [, y, mo, d, h, mi, s] = match ?? [];
		const stamp = Date.UTC(Number(y), Number(mo) - 1, Number(d), Number(h), Number(mi), Number(s));
		// Stamped while the request ran (to the second).
		expect(stamp).toBeGreaterThanOrEqual(Math.floor(before / 1000) * 1000);
		expect(stamp).toBeLessThanOrEqual(after);
		// Both contents are intact.
		expect(new TextDecoder().decode((await download(user, base.node.id)).bytes)).toBe("winner");
		expect((await api.node(user, base.node.id)).version_id).toBe(winner.version.id);
		expect(bytesEqual((await download(user, loser.node.id)).bytes, loserBytes)).toBe(true);
		expect(names(await api.listAll(user, user.rootId)).sort()).toEqual([loser.node.name, "notes.txt"].sort());
	});

	it("answers 409 VERSION_CONFLICT for a stale If-Match with on_conflict=fail, and commits nothing", async () => {
		const user = await api.signup();
		const base = await upload(user, user.rootId, "strict.txt", "base");
		const winner = await upload(user, user.rootId, "strict.txt", "winner", 200, { "If-Match": base.version.id });
		const entries = await journal(user.id);
		const children = await api.listAll(user, user.rootId);
		const res = await put(user, user.rootId, "strict.txt", "loser", { "If-Match": base.version.id }, { on_conflict: "fail" });
		const envelope = await expectError(res, 409, "VERSION_CONFLICT");
		expect(envelope.error.details).toEqual([{ node_id: base.node.id, head_version_id: winner.version.id }]);
		expect(await journal(user.id)).toEqual(entries);
		expect(await api.listAll(user, user.rootId)).toEqual(children);
		expect(new TextDecoder().decode((await download(user, base.node.id)).bytes)).toBe("winner");
	});

	// Regression: PUT /v1/files/content used to ingest the whole body into R2 before the hub
	// refuses the commit, so an upload refused with VERSION_CONFLICT leaves
	// orphan blocks behind (workers/api/routes/content.ts, before ingest()).
	it("stores no blocks for an upload refused with VERSION_CONFLICT", async () => {
		const user = await api.signup();
		const base = await upload(user, user.rootId, "strict.bin", "base");
		await upload(user, user.rootId, "strict.bin", "winner", 200, { "If-Match": base.version.id });
		const objects = await blobCount();
		const res = await put(
			user,
			user.rootId,
			"strict.bin",
			randomBytes(300_000, 0xfa11),
			{ "If-Match": base.version.id },
			{ on_conflict: "fail" },
		);
		await expectError(res, 409, "VERSION_CONFLICT");
		expect(await blobCount()).toBe(objects);
	});

	it("brings a file deleted meanwhile back with the edit when If-Match names its version", async () => {
		const user = await api.signup();
		const folder = await api.mkdir(user, user.rootId, "work");
		const base = await upload(user, folder.id, "draft.txt", "draft 1");
		expectOk(await remove(user, base.node.id), 200);
		const edit = await upload(user, folder.id, "draft.txt", "draft 2", 200, { "If-Match": base.version.id });
		expect(edit.node).toMatchObject({
			id: base.node.id,
			parent_id: folder.id,
			name: "draft.txt",
			trashed: false,
			version_id: edit.version.id,
		});
		expect(edit.conflict).toBeNull();
		expect(await api.node(user, base.node.id)).toMatchObject({ trashed: false });
		expect(new TextDecoder().decode((await download(user, base.node.id)).bytes)).toBe("draft 2");
		expect(names(await api.listAll(user, folder.id))).toEqual(["draft.txt"]);
		const trash = expectOk(await api.call<NodePage>("/v1/trash", { token: user.token }), 200);
		expect(trash.items).toEqual([]);
		expect((await journal(user.id)).at(-1)?.kind).toBe("restored");
	});

	it("numbers every change in the journal 1..n with the right kinds", async () => {
		const user = await api.signup();
		const folder = await api.mkdir(user, user.rootId, "Journal");
		const v1 = await upload(user, folder.id, "a.txt", "1");
		await upload(user, folder.id, "a.txt", "2", 200);
		expectOk(await api.patchNode(user, v1.node.id, { name: "b.txt" }), 200);
		expectOk(await api.patchNode(user, v1.node.id, { parent_id: user.rootId }), 200);
		expectOk(await remove(user, v1.node.id), 200);
		expectOk(await api.restore(user, v1.node.id), 200);
		const conflicted = await upload(user, user.rootId, "b.txt", "3", 201, { "If-Match": v1.version.id });
		// Refused requests add nothing.
		await expectError(await put(user, user.rootId, "bad/name", "x"), 400, "INVALID_REQUEST");
		await expectError(
			await put(user, user.rootId, "b.txt", "x", { "If-Match": v1.version.id }, { on_conflict: "fail" }),
			409,
			"VERSION_CONFLICT",
		);
		const rows = await journal(user.id);
		expect(rows.map((r) => r.seq)).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
		expect(rows.map((r) => r.kind)).toEqual(["created", "created", "updated", "moved", "moved", "trashed", "restored", "created"]);
		expect(rows.map((r) => r.node_id)).toEqual([
			folder.id,
			v1.node.id,
			v1.node.id,
			v1.node.id,
			v1.node.id,
			v1.node.id,
			v1.node.id,
			conflicted.node.id,
		]);
		const last = JSON.parse(rows[7]?.node ?? "{}") as Node;
		expect(last).toMatchObject({ id: conflicted.node.id, name: conflicted.node.name, version_id: conflicted.version.id });
	});
});

describe("content: errors", () => {
	it("refuses a declared Content-Length over 100,000,000 with 413 and creates nothing", async () => {
		const user = await api.signup();
		const objects = await blobCount();
		const res = await put(user, user.rootId, "huge.bin", "tiny body", { "Content-Length": "100000001" });
		await expectError(res, 413, "PAYLOAD_TOO_LARGE");
		expect(await api.listAll(user, user.rootId)).toEqual([]);
		expect(await journal(user.id)).toEqual([]);
		expect(await blobCount()).toBe(objects);
	});

	it("refuses an upload over the user's quota with 507 and creates nothing", async () => {
		const user = await withQuota(await api.signup(), 10);
		const objects = await blobCount();
		await expectError(await put(user, user.rootId, "fat.bin", randomBytes(11, 0x0b)), 507, "QUOTA_EXCEEDED");
		expect(await api.listAll(user, user.rootId)).toEqual([]);
		expect(await journal(user.id)).toEqual([]);
		expect(await blobCount()).toBe(objects);
		await upload(user, user.rootId, "fits.bin", randomBytes(10, 0x0a));
	});

	it("rejects missing or invalid query parameters with 400", async () => {
		const user = await api.signup();
		await expectError(
			await api.request(`/v1/files/content?name=x`, { method: "PUT", token: user.token, body: "x" }),
			400,
			"INVALID_REQUEST",
		);
		await expectError(
			await api.request(`/v1/files/content?parent_id=${user.rootId}`, { method: "PUT", token: user.token, body: "x" }),
			400,
			"INVALID_REQUEST",
		);
		await expectError(await put(user, user.rootId, "x.txt", "x", {}, { on_conflict: "explode" }), 400, "INVALID_REQUEST");
		await expectError(await put(user, user.rootId, "x.txt", "x", { "If-Match": "v".repeat(65) }), 400, "INVALID_REQUEST");
		expect(await journal(user.id)).toEqual([]);
	});

	it("answers 404 for an upload into a missing folder or a file", async () => {
		const user = await api.signup();
		const file = await upload(user, user.rootId, "f.txt", "f");
		await expectError(await put(user, "nod_00000000000000000000000000", "x.txt", "x"), 404, "NOT_FOUND");
		await expectError(await put(user, file.node.id, "x.txt", "x"), 404, "NOT_FOUND");
	});

	it("answers 404 for the content of a folder, a missing node or an unknown version", async () => {
		const user = await api.signup();
		const folder = await api.mkdir(user, user.rootId, "dir");
		const file = await upload(user, user.rootId, "f.txt", "f");
		const other = await upload(user, user.rootId, "g.txt", "g");
		await expectError(await api.request(`/v1/files/${folder.id}/content`, { token: user.token }), 404, "NOT_FOUND");
		await expectError(await api.request(`/v1/files/nod_00000000000000000000000000/content`, { token: user.token }), 404, "NOT_FOUND");
		await expectError(await api.request(`/v1/files/${file.node.id}/content?version_id=ver_0000`, { token: user.token }), 404, "NOT_FOUND");
		// A version of another file of the same user is not this file's version.
		await expectError(
			await api.request(`/v1/files/${file.node.id}/content?version_id=${other.version.id}`, { token: user.token }),
			404,
			"NOT_FOUND",
		);
	});
});

function names(nodes: Node[]): string[] {
	return nodes.map((n) => n.name);
}

// Every content route answers 401 without a token: openapi.test.ts walks them all.
runAuthSuite(api, "content", (user) => ({ path: `/v1/files/content?parent_id=${user.rootId}&name=x.txt`, method: "PUT", body: "x" }));
