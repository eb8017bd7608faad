/**
 * tus 1.0 rules an external conformity suite found broken, the
 * creation-defer-length and concatenation extensions, and the tus parts of
 * audit findings H4, H5, L17 and M13, each with raw requests
 * (https://tus.io/protocols/resumable-upload). tus-js-client runs the same
 * extensions end to end in test/e2e/tus.e2e.test.ts.
 */
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { blockObjectKey } from "../../src/shared/blocks";
import {
	blobKeys,
	bytesEqual,
	call,
	download,
	expectError,
	expectJson,
	getNode,
	listAll,
	mkdir,
	randomBytes,
	sha256,
	shardOfUser,
	signup,
	upload,
	versionBlocks,
	withQuota,
	type TestUser,
} from "./helpers";
import {
	b64,
	createTus,
	digest,
	expectedBlocks,
	head,
	KiB,
	locationOf,
	metadata,
	MiB,
	OCTETS,
	offsetOf,
	patch,
	start,
	TUS,
} from "./tus-helpers";

const MAX_FILE_BYTES = 10 * 1024 * MiB;

/** The user's upload rows, straight from their shard. */
async function uploadRows(user: TestUser): Promise<{ id: string; offset: number; hash_state: string | null }[]> {
	const db = await shardOfUser(user.id);
	const { results } = await db
		.prepare("SELECT id, offset, hash_state FROM uploads WHERE user_id = ? ORDER BY created_at")
		.bind(user.id)
		.all<{ id: string; offset: number; hash_state: string | null }>();
	return results;
}

function idOf(path: string): string {
	return path.split("/").pop() ?? "";
}

/** POST /v1/tus with `Upload-Defer-Length: 1`. */
function createDeferred(user: TestUser, name: string): Promise<Response> {
	return call("/v1/tus", {
		method: "POST",
		token: user.token,
		headers: { ...TUS, "Upload-Defer-Length": "1", "Upload-Metadata": metadata(user, name) },
	});
}

/** A partial upload of `data`, created (with metadata-free headers, as tus-js-client sends them) and sent in one PATCH. */
async function partial(user: TestUser, data: Uint8Array): Promise<string> {
	const path = await locationOf(
		await call("/v1/tus", {
			method: "POST",
			token: user.token,
			headers: { ...TUS, "Upload-Concat": "partial", "Upload-Length": String(data.length) },
		}),
	);
	if (data.length > 0) expect((await patch(user, path, 0, data)).status).toBe(204);
	return path;
}

/** POST /v1/tus creating a final upload of `parts` (paths or URLs). */
function createFinal(user: TestUser, name: string, parts: string[], headers: Record<string, string> = {}): Promise<Response> {
	return call("/v1/tus", {
		method: "POST",
		token: user.token,
		headers: { ...TUS, "Upload-Concat": `final;${parts.join(" ")}`, "Upload-Metadata": metadata(user, name), ...headers },
	});
}

/** `blocks` moved `by` bytes further into the file. */
function shifted(blocks: { offset: number; size: number; hash: string }[], by: number) {
	return blocks.map((b) => ({ ...b, offset: b.offset + by }));
}

describe("discovery", () => {
	it("Tus-Extension advertises creation-defer-length and concatenation", async () => {
		const res = await call("/v1/tus", { method: "OPTIONS" });
		const extensions = (res.headers.get("Tus-Extension") ?? "").split(",").map((e) => e.trim());
		expect(extensions).toEqual(expect.arrayContaining(["creation-defer-length", "concatenation"]));
	});
});

describe("X-HTTP-Method-Override", () => {
	it("X-HTTP-Method-Override: a POST naming PATCH, HEAD or DELETE is that request", async () => {
		const user = await signup();
		const data = randomBytes(300 * KiB, 61);
		const path = await start(user, "override.bin", data.length);
		const post = (method: string, headers: Record<string, string> = {}, body?: Uint8Array) =>
			call(path, { method: "POST", token: user.token, headers: { ...TUS, "X-HTTP-Method-Override": method, ...headers }, body });

		const first = await post("PATCH", { "Upload-Offset": "0", "Content-Type": OCTETS }, data.slice(0, 100 * KiB));
		expect(first.status).toBe(204);
		expect(first.headers.get("Upload-Offset")).toBe(String(100 * KiB));
		// The overridden PATCH follows PATCH's rules: a stale offset is a 409.
		await expectError(
			await post("PATCH", { "Upload-Offset": "0", "Content-Type": OCTETS }, data.slice(0, 10)),
			409,
			"UPLOAD_OFFSET_MISMATCH",
		);

		const status = await post("HEAD");
		expect(status.status).toBe(200);
		expect(status.headers.get("Upload-Offset")).toBe(String(100 * KiB));
		expect(status.headers.get("Upload-Length")).toBe(String(data.length));

		// The header's value is a method name whatever its case.
		const last = await post("patch", { "Upload-Offset": String(100 * KiB), "Content-Type": OCTETS }, data.slice(100 * KiB));
		expect(last.status).toBe(204);
		const nodeId = last.headers.get("Drive-Node-Id") ?? "";
		expect((await getNode(user, nodeId)).content_hash).toBe(await sha256(data));

		expect((await post("DELETE")).status).toBe(204);
		expect((await head(user, path)).status).toBe(404);
	});
});

describe("termination", () => {
	it("termination of a completed upload: DELETE answers 204, then HEAD, PATCH and DELETE answer 404, and the file stays", async () => {
		const user = await signup();
		const data = randomBytes(200 * KiB, 62);
		const created = await createTus(user, "kept.bin", data.length, data);
		const path = await locationOf(created);
		const nodeId = created.headers.get("Drive-Node-Id") ?? "";
		expect(nodeId).toMatch(/^nod_/);
		expect((await head(user, path)).status).toBe(200);

		expect((await call(path, { method: "DELETE", token: user.token, headers: TUS })).status).toBe(204);
		// 404, not 410: the cleanup soon removes the row, after which 404 is all
		// the server can say, and tus clients treat both alike.
		const after = await head(user, path);
		expect(after.status).toBe(404);
		expect(after.headers.get("Upload-Offset")).toBeNull();
		await expectError(await patch(user, path, data.length, new Uint8Array(0)), 404, "NOT_FOUND");
		await expectError(await call(path, { method: "DELETE", token: user.token, headers: TUS }), 404, "NOT_FOUND");

		// The upload resource is gone; the file it became is the user's.
		expect(bytesEqual((await download(user, nodeId)).bytes, data)).toBe(true);
	});
});

describe("Content-Type", () => {
	it("415: a creation-with-upload body of another Content-Type is refused, and nothing is created", async () => {
		const user = await signup();
		const body = randomBytes(1000, 63);
		for (const contentType of ["application/octet-stream", "text/plain", null]) {
			const headers: Record<string, string> = { ...TUS, "Upload-Length": "1000", "Upload-Metadata": metadata(user, "typed.bin") };
			if (contentType !== null) headers["Content-Type"] = contentType;
			const res = await call("/v1/tus", { method: "POST", token: user.token, headers, body });
			await expectError(res, 415, "UNSUPPORTED_MEDIA_TYPE");
		}
		expect(await uploadRows(user)).toEqual([]);
		// A creation without bytes may carry any Content-Type: some clients always send one.
		const empty = await call("/v1/tus", {
			method: "POST",
			token: user.token,
			headers: { ...TUS, "Upload-Length": "1000", "Upload-Metadata": metadata(user, "typed.bin"), "Content-Type": "text/plain" },
			body: new Uint8Array(0),
		});
		expect(empty.status).toBe(201);
		// Parameters and case do not matter.
		const withParams = await createTus(user, "params.bin", 1000, body, { "Content-Type": "Application/Offset+Octet-Stream; q=1" });
		expect(withParams.status).toBe(201);
		expect(withParams.headers.get("Drive-Node-Id")).toMatch(/^nod_/);
	});

	it("L17: a PATCH with another Content-Type answers 415 and keeps nothing", async () => {
		const user = await signup();
		const path = await start(user, "l17.bin", 100);
		await expectError(await patch(user, path, 0, new Uint8Array(100), { "Content-Type": "text/plain" }), 415, "UNSUPPORTED_MEDIA_TYPE");
		const without = await call(path, {
			method: "PATCH",
			token: user.token,
			headers: { ...TUS, "Upload-Offset": "0" },
			body: new Uint8Array(100),
		});
		await expectError(without, 415, "UNSUPPORTED_MEDIA_TYPE");
		expect(await offsetOf(user, path)).toBe(0);
	});
});

describe("creation-defer-length", () => {
	it("creation-defer-length: HEAD says Upload-Defer-Length: 1 until a PATCH's Upload-Length sets the length, which completes the file", async () => {
		const user = await signup();
		const data = randomBytes(3 * MiB + 12_345, 64);
		const path = await locationOf(await createDeferred(user, "deferred.bin"));
		const before = await head(user, path);
		expect(before.status).toBe(200);
		expect(before.headers.get("Upload-Defer-Length")).toBe("1");
		expect(before.headers.get("Upload-Length")).toBeNull();
		expect(before.headers.get("Upload-Offset")).toBe("0");

		expect((await patch(user, path, 0, data.slice(0, 2 * MiB))).status).toBe(204);
		const during = await head(user, path);
		expect(during.headers.get("Upload-Defer-Length")).toBe("1");
		expect(during.headers.get("Upload-Offset")).toBe(String(2 * MiB));

		const last = await patch(user, path, 2 * MiB, data.slice(2 * MiB), { "Upload-Length": String(data.length) });
		expect(last.status).toBe(204);
		const nodeId = last.headers.get("Drive-Node-Id") ?? "";
		const node = await getNode(user, nodeId);
		expect(node).toMatchObject({ name: "deferred.bin", size: data.length, content_hash: await sha256(data) });
		expect(await versionBlocks(user.id, node.version_id ?? "")).toEqual(await expectedBlocks(data));
		const after = await head(user, path);
		expect(after.headers.get("Upload-Defer-Length")).toBeNull();
		expect(after.headers.get("Upload-Length")).toBe(String(data.length));
		expect(after.headers.get("Drive-Node-Id")).toBe(nodeId);
	});

	it("creation-defer-length: an empty PATCH may declare the length at the offset and so complete the upload", async () => {
		// tus-js-client sends this when its source ends exactly where a chunk did.
		const user = await signup();
		const data = randomBytes(MiB + 3, 65);
		const path = await locationOf(await createDeferred(user, "ends-on-chunk.bin"));
		expect((await patch(user, path, 0, data)).status).toBe(204);
		const last = await patch(user, path, data.length, new Uint8Array(0), { "Upload-Length": String(data.length) });
		expect(last.status).toBe(204);
		expect(last.headers.get("Upload-Offset")).toBe(String(data.length));
		const node = await getNode(user, last.headers.get("Drive-Node-Id") ?? "");
		expect(node.content_hash).toBe(await sha256(data));
		expect(await versionBlocks(user.id, node.version_id ?? "")).toEqual(await expectedBlocks(data));
	});

	it("creation-defer-length: the length is checked when it becomes known, bytes before it count against the quota, and it never changes", async () => {
		const owner = await signup();
		const user = await withQuota(owner, MiB);
		const data = randomBytes(700 * KiB, 66);
		const path = await locationOf(await createDeferred(user, "quota.bin"));
		expect((await patch(user, path, 0, data.slice(0, 600 * KiB))).status).toBe(204);
		// 600 KiB in, 600 KiB more would pass the 1 MiB quota: refused before a byte is read.
		await expectError(await patch(user, path, 600 * KiB, randomBytes(600 * KiB, 67)), 507, "QUOTA_EXCEEDED");
		await expectError(await patch(user, path, 600 * KiB, new Uint8Array(0), { "Upload-Length": String(2 * MiB) }), 507, "QUOTA_EXCEEDED");
		await expectError(
			await patch(user, path, 600 * KiB, new Uint8Array(0), { "Upload-Length": String(MAX_FILE_BYTES + 1) }),
			413,
			"PAYLOAD_TOO_LARGE",
		);
		await expectError(await patch(user, path, 600 * KiB, new Uint8Array(0), { "Upload-Length": "100" }), 400, "INVALID_REQUEST");
		await expectError(
			await patch(user, path, 600 * KiB, data.slice(600 * KiB), { "Upload-Length": String(650 * KiB) }),
			400,
			"INVALID_REQUEST",
		);
		const head1 = await head(user, path);
		expect(head1.headers.get("Upload-Offset")).toBe(String(600 * KiB));
		expect(head1.headers.get("Upload-Defer-Length")).toBe("1");

		// Declared in a PATCH that does not complete the upload; then it is fixed.
		expect((await patch(user, path, 600 * KiB, data.slice(600 * KiB, 650 * KiB), { "Upload-Length": String(data.length) })).status).toBe(
			204,
		);
		await expectError(
			await patch(user, path, 650 * KiB, data.slice(650 * KiB), { "Upload-Length": String(data.length + 1) }),
			400,
			"INVALID_REQUEST",
		);
		const done = await patch(user, path, 650 * KiB, data.slice(650 * KiB), { "Upload-Length": String(data.length) });
		expect(done.status).toBe(204);
		expect((await getNode(user, done.headers.get("Drive-Node-Id") ?? "")).content_hash).toBe(await sha256(data));
	});

	it("creation-defer-length: Upload-Defer-Length must be 1 and excludes Upload-Length", async () => {
		const user = await signup();
		const create = (headers: Record<string, string>) =>
			call("/v1/tus", { method: "POST", token: user.token, headers: { ...TUS, "Upload-Metadata": metadata(user, "x.bin"), ...headers } });
		await expectError(await create({ "Upload-Defer-Length": "2" }), 400, "INVALID_REQUEST");
		await expectError(await create({ "Upload-Defer-Length": "1", "Upload-Length": "10" }), 400, "INVALID_REQUEST");
		await expectError(await create({}), 400, "INVALID_REQUEST");
		expect(await uploadRows(user)).toEqual([]);
	});
});

describe("concatenation", () => {
	it("concatenation: partials become one file when a final names them, byte-exact, its blocks the partials' own at shifted offsets", async () => {
		const user = await signup();
		const data = randomBytes(5 * MiB + 123, 68);
		const ends = [2 * MiB + 7, 3 * MiB, data.length];
		const pieces = ends.map((end, i) => data.slice(i === 0 ? 0 : ends[i - 1], end));
		const paths = [];
		for (const piece of pieces) paths.push(await partial(user, piece));

		// A complete partial is a part, not a file.
		const partHead = await head(user, paths[0] ?? "");
		expect(partHead.status).toBe(200);
		expect(partHead.headers.get("Upload-Concat")).toBe("partial");
		expect(partHead.headers.get("Upload-Offset")).toBe(partHead.headers.get("Upload-Length"));
		expect(partHead.headers.get("Drive-Node-Id")).toBeNull();
		expect(await listAll(user, user.rootId)).toEqual([]);

		// Nothing is stored again: the final's blocks are the partials'.
		const stored = (await blobKeys()).length;
		const urls = paths.map((p, i) => (i === 1 ? p : `http://drive.test${p}`));
		const created = await createFinal(user, "joined.bin", urls);
		expect(created.status).toBe(201);
		expect((await blobKeys()).length).toBe(stored);
		const nodeId = created.headers.get("Drive-Node-Id") ?? "";
		const node = await getNode(user, nodeId);
		expect(node).toMatchObject({ name: "joined.bin", size: data.length, content_hash: await sha256(data) });
		expect(bytesEqual((await download(user, nodeId)).bytes, data)).toBe(true);
		const expected = [];
		let at = 0;
		for (const piece of pieces) {
			expected.push(...shifted(await expectedBlocks(piece), at));
			at += piece.length;
		}
		expect(await versionBlocks(user.id, node.version_id ?? "")).toEqual(expected);

		const finalPath = await locationOf(created);
		const finalHead = await head(user, finalPath);
		expect(finalHead.status).toBe(200);
		expect(finalHead.headers.get("Upload-Concat")).toBe(`final;${urls.join(" ")}`);
		expect(finalHead.headers.get("Upload-Offset")).toBe(String(data.length));
		expect(finalHead.headers.get("Upload-Length")).toBe(String(data.length));
		expect(finalHead.headers.get("Drive-Node-Id")).toBe(nodeId);
		await expectError(await patch(user, finalPath, data.length, new Uint8Array(0)), 403, "FORBIDDEN");
		expect((await listAll(user, user.rootId)).map((n) => n.name)).toEqual(["joined.bin"]);
	});

	it("concatenation: a partial may appear twice in one final and may be empty; once concatenated it is closed and frees its hold on the quota", async () => {
		const user = await signup();
		const a = randomBytes(300 * KiB, 69);
		const pa = await partial(user, a);
		const empty = await partial(user, new Uint8Array(0));
		const twice = await createFinal(user, "twice.bin", [pa, empty, pa]);
		expect(twice.status).toBe(201);
		const doubled = new Uint8Array(2 * a.length);
		doubled.set(a);
		doubled.set(a, a.length);
		expect((await getNode(user, twice.headers.get("Drive-Node-Id") ?? "")).content_hash).toBe(await sha256(doubled));
		// tus lets a server delete partials once concatenated: the final holds their blocks now.
		await expectError(await createFinal(user, "once.bin", [pa]), 404, "NOT_FOUND");
		const me = await expectJson<{ usage: { reserved_bytes: number; bytes_used: number } }>(
			await call("/v1/me", { token: user.token }),
			200,
		);
		expect(me.usage).toMatchObject({ reserved_bytes: 0, bytes_used: 2 * a.length });
	});

	it("concatenation: a final naming an unfinished partial, an upload that is no partial, or an unknown one is refused, and creates nothing", async () => {
		const [user, other] = await Promise.all([signup(), signup()]);
		const done = await partial(user, randomBytes(1000, 70));
		const unfinished = await locationOf(
			await call("/v1/tus", {
				method: "POST",
				token: user.token,
				headers: { ...TUS, "Upload-Concat": "partial", "Upload-Length": "2000" },
			}),
		);
		const ordinary = await start(user, "ordinary.bin", 10);
		const foreign = await partial(other, randomBytes(1000, 71));
		const rows = (await uploadRows(user)).length;

		await expectError(await createFinal(user, "f.bin", [done, unfinished]), 400, "INVALID_REQUEST");
		await expectError(await createFinal(user, "f.bin", [done, ordinary]), 400, "INVALID_REQUEST");
		await expectError(await createFinal(user, "f.bin", [done, "/v1/tus/upl_nothere"]), 404, "NOT_FOUND");
		await expectError(await createFinal(user, "f.bin", [done, foreign]), 404, "NOT_FOUND");
		await expectError(await createFinal(user, "f.bin", [done, "/v1/nodes/x"]), 400, "INVALID_REQUEST");
		await expectError(await createFinal(user, "f.bin", []), 400, "INVALID_REQUEST");
		await expectError(await createFinal(user, "f.bin", [done], { "Upload-Length": "1000" }), 400, "INVALID_REQUEST");
		const withBytes = await call("/v1/tus", {
			method: "POST",
			token: user.token,
			headers: { ...TUS, "Upload-Concat": `final;${done}`, "Upload-Metadata": metadata(user, "f.bin"), "Content-Type": OCTETS },
			body: new Uint8Array(3),
		});
		await expectError(withBytes, 403, "FORBIDDEN");
		const bad = await call("/v1/tus", {
			method: "POST",
			token: user.token,
			headers: { ...TUS, "Upload-Concat": "whole", "Upload-Length": "10", "Upload-Metadata": metadata(user, "f.bin") },
		});
		await expectError(bad, 400, "INVALID_REQUEST");
		expect((await uploadRows(user)).length).toBe(rows);
		expect((await listAll(user, user.rootId)).map((n) => n.name)).toEqual([]);
	});

	it("concatenation: partials need no target but count against the file size limit and the quota", async () => {
		const owner = await signup();
		const user = await withQuota(owner, 2 * MiB);
		const create = (length: number) =>
			call("/v1/tus", {
				method: "POST",
				token: user.token,
				headers: { ...TUS, "Upload-Concat": "partial", "Upload-Length": String(length) },
			});
		await expectError(await create(MAX_FILE_BYTES + 1), 413, "PAYLOAD_TOO_LARGE");
		await expectError(await create(2 * MiB + 1), 507, "QUOTA_EXCEEDED");
		const a = await partial(user, randomBytes(600 * KiB, 72));
		const b = await partial(user, randomBytes(600 * KiB, 73));
		// Open partials hold their bytes against the quota like any open upload.
		await expectError(await create(MiB), 507, "QUOTA_EXCEEDED");
		// The final is checked like any upload: the sum of its parts, against what is stored.
		await upload(user, user.rootId, "stored.bin", randomBytes(MiB, 74));
		await expectError(await createFinal(user, "big.bin", [a, b]), 507, "QUOTA_EXCEEDED");
	});
});

describe("H5: a complete upload whose commit failed is never reported as finished", () => {
	// tus-js-client (lib/upload.js) retries a PATCH answered 409, 423 or 5xx
	// (defaultOnShouldRetry), and a retry starts over with HEAD
	// (_resumeUpload): if HEAD reports Upload-Offset == Upload-Length it calls
	// onSuccess without sending anything. So after a last PATCH whose commit
	// was refused, HEAD must not say "complete" unless the file exists. When
	// HEAD answers an error instead, tus-js-client forgets the upload (4xx)
	// and creates a new one, whose creation meets the same refusal, until its
	// retries run out and onError gets it (the e2e suite runs this).
	it("H5: when a folder took the name, HEAD answers 409 NAME_TAKEN, and commits once the name is free", async () => {
		const user = await signup();
		const data = randomBytes(2048, 74);
		const path = await start(user, "x.bin", data.length);
		expect((await patch(user, path, 0, data.slice(0, 1024))).status).toBe(204);
		const folder = await mkdir(user, user.rootId, "x.bin");
		await expectError(await patch(user, path, 1024, data.slice(1024)), 409, "NAME_TAKEN");
		const refused = await head(user, path);
		expect(refused.status).toBe(409);
		expect(refused.headers.get("Upload-Offset")).toBeNull();
		expect((await head(user, path)).status).toBe(409);

		expect((await call(`/v1/nodes/${folder.id}`, { method: "DELETE", token: user.token })).status).toBe(200);
		const committed = await head(user, path);
		expect(committed.status).toBe(200);
		expect(committed.headers.get("Upload-Offset")).toBe("2048");
		const nodeId = committed.headers.get("Drive-Node-Id") ?? "";
		expect(bytesEqual((await download(user, nodeId)).bytes, data)).toBe(true);
		expect((await head(user, path)).headers.get("Drive-Node-Id")).toBe(nodeId);
	});

	it("H5: HEAD answers the commit's failure for the quota, a stale base with on_conflict=fail, and a parent gone", async () => {
		const owner = await signup();
		const data = randomBytes(4096, 75);

		// The quota shrank between creation and the last byte.
		const quotaPath = await start(owner, "quota.bin", data.length);
		const small = await withQuota(owner, 100);
		await expectError(await patch(small, quotaPath, 0, data), 507, "QUOTA_EXCEEDED");
		expect((await head(small, quotaPath)).status).toBe(507);
		const big = await withQuota(owner, 15 * 1024 * MiB);
		const quotaHead = await head(big, quotaPath);
		expect(quotaHead.status).toBe(200);
		expect(quotaHead.headers.get("Drive-Node-Id")).toMatch(/^nod_/);

		// The file changed since the version the client edited, and it asked to fail.
		const v1 = await upload(big, big.rootId, "edit.txt", "one");
		const stalePath = await start(big, "edit.txt", data.length, {
			"Upload-Metadata": metadata(big, "edit.txt", { base_version_id: v1.version.id, on_conflict: "fail" }),
		});
		await upload(big, big.rootId, "edit.txt", "two", 200, { "If-Match": v1.version.id });
		await expectError(await patch(big, stalePath, 0, data), 409, "VERSION_CONFLICT");
		expect((await head(big, stalePath)).status).toBe(409);

		// The folder went to the trash.
		const folder = await mkdir(big, big.rootId, "gone");
		const gonePath = await start(big, "in-gone.bin", data.length, {
			"Upload-Metadata": `filename ${b64("in-gone.bin")},parent_id ${b64(folder.id)}`,
		});
		expect((await call(`/v1/nodes/${folder.id}`, { method: "DELETE", token: big.token })).status).toBe(200);
		await expectError(await patch(big, gonePath, 0, data), 404, "NOT_FOUND");
		expect((await head(big, gonePath)).status).toBe(404);
	});
});

describe("H4: every stored block is recorded", () => {
	it("H4: a PATCH with Upload-Checksum that goes past the upload's end records the blocks it stored, so the cleanup can collect them", async () => {
		const user = await signup();
		const data = randomBytes(3 * MiB, 76);
		const path = await start(user, "h4.bin", data.length);
		const tooLong = new Uint8Array(data.length + 1);
		tooLong.set(data);
		// Streamed without Content-Length, so the overrun shows only after blocks are stored.
		const { readable, writable } = new IdentityTransformStream();
		const writer = writable.getWriter();
		const feeding = (async () => {
			for (let at = 0; at < tooLong.length; at += 256 * KiB) await writer.write(tooLong.slice(at, at + 256 * KiB));
			await writer.close();
		})().catch(() => undefined);
		const res = await patch(user, path, 0, readable, { "Upload-Checksum": `sha256 ${await digest("SHA-256", tooLong)}` });
		await writer.abort().catch(() => undefined);
		await feeding;
		await expectError(res, 400, "INVALID_REQUEST");
		expect(await offsetOf(user, path)).toBe(0);
		const db = await shardOfUser(user.id);
		const { results } = await db.prepare("SELECT hash FROM upload_received WHERE upload_id = ?").bind(idOf(path)).all<{ hash: string }>();
		const expected = (await expectedBlocks(data)).map((b) => b.hash);
		expect(results.length).toBeGreaterThan(0);
		for (const { hash } of results) {
			expect(expected).toContain(hash);
			expect(await env.BLOBS.head(blockObjectKey(hash))).not.toBeNull();
		}
		// Every block object of this upload in R2 is recorded.
		const keys = new Set(await blobKeys());
		const storedBlocks = expected.filter((h) => keys.has(blockObjectKey(h)));
		expect(results.map((r) => r.hash).sort()).toEqual([...new Set(storedBlocks)].sort());
	});
});

describe("M13: the whole-file hash survives from PATCH to PATCH in the upload's row", () => {
	it("M13: each checkpoint saves the hash state, so a PATCH after one that left no hash in memory reads nothing back", async () => {
		const user = await signup();
		const data = randomBytes(6 * MiB, 77);
		const path = await start(user, "m13.bin", data.length);
		expect((await patch(user, path, 0, data.slice(0, 3 * MiB))).status).toBe(204);
		const [row] = await uploadRows(user);
		expect(row?.offset).toBe(3 * MiB);
		expect(row?.hash_state).toMatch(new RegExp(`^sha256:${3 * MiB}:[0-9a-f]{64}:`));

		// A 460 leaves nothing behind, not even a hash in this isolate's memory,
		// as a PATCH that reached another isolate would not.
		const piece = data.slice(3 * MiB, 5 * MiB);
		await expectError(
			await patch(user, path, 3 * MiB, piece, { "Upload-Checksum": `sha256 ${await digest("SHA-256", data.slice(0, 10))}` }),
			460,
			"CHECKSUM_MISMATCH",
		);
		// With the first block's object gone, reading the upload back would fail.
		const [first] = await expectedBlocks(data);
		await env.BLOBS.delete(blockObjectKey(first?.hash ?? ""));
		const last = await patch(user, path, 3 * MiB, data.slice(3 * MiB));
		expect(last.status).toBe(204);
		expect((await getNode(user, last.headers.get("Drive-Node-Id") ?? "")).content_hash).toBe(await sha256(data));
	});
});
