/**
 * tus 1.0 at /v1/tus (docs/api.md, "tus: resumable uploads";
 * https://tus.io/protocols/resumable-upload): discovery, creation,
 * creation-with-upload, checksum, termination, ownership, and content-defined
 * chunking that does not depend on where the PATCHes split the file.
 * creation-defer-length, concatenation and the conformance fixes are in
 * tus-extensions.test.ts.
 */
import { env } from "cloudflare:workers";
import { beforeAll, describe, expect, it } from "vitest";
import { blockObjectKey } from "../../src/shared/blocks";
import { bytesEqual, randomBytes, sha256 } from "../support/bytes";
import { expectError, runAuthSuite } from "../support/envelope";
import type { Body, TestUser } from "../support/harness";
import { api, versionBlocks } from "./helpers";
import { b64, cuts, digest, expectedBlocks, KiB, MiB, OCTETS, patchAt, TUS } from "./tus-helpers";

const metadata = (user: TestUser, name: string, extra: Record<string, string> = {}) => api.tusMetadata(user.rootId, name, extra);

/** POST /v1/tus; with `data`, creation-with-upload. */
const createTus = (user: TestUser, name: string, length: number, data?: Body, headers: Record<string, string> = {}) =>
	api.tusCreate(user, name, length, data === undefined ? { headers } : { data, headers });
/** Creates an upload; its URL. */
const start = (user: TestUser, name: string, length: number) => api.tusStart(user, name, length);
const patch = (user: TestUser, path: string, offset: number, data: Body, headers: Record<string, string> = {}) =>
	api.tusPatch(user, path, offset, data, headers);
const head = (user: TestUser, path: string) => api.tusHead(user, path);
const offsetOf = (user: TestUser, path: string) => api.tusOffset(user, path);
const download = (user: TestUser, id: string) => api.download(user, id);
const getNode = (user: TestUser, id: string) => api.node(user, id);

/** A small deterministic PRNG for split patterns (mulberry32). */
function prng(seed: number): () => number {
	let a = seed >>> 0;
	return () => {
		a = (a + 0x6d2b79f5) | 0;
		let t = Math.imul(a ^ (a >>> 15), a | 1);
		t = (t + Math.imul(t ^ (t >>> 7), t | 61)) ^ t;
		return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
	};
}

describe("discovery and protocol", () => {
	it("advertises version, all seven extensions, the maximum size and the checksum algorithms on OPTIONS", async () => {
		const res = await api.request("/v1/tus", { method: "OPTIONS" });
		expect(res.status).toBeLessThan(300);
		expect(res.headers.get("Tus-Resumable")).toBe("1.0.0");
		expect(res.headers.get("Tus-Version")?.split(",")).toContain("1.0.0");
		const extensions = (res.headers.get("Tus-Extension") ?? "").split(",").map((e) => e.trim());
		expect(extensions.sort()).toEqual(
			["creation", "creation-with-upload", "creation-defer-length", "expiration", "checksum", "termination", "concatenation"].sort(),
		);
		expect(res.headers.get("Tus-Max-Size")).toBe(String(10 * 1024 * MiB));
		const algorithms = (res.headers.get("Tus-Checksum-Algorithm") ?? "").split(",").map((a) => a.trim());
		expect(algorithms).toEqual(expect.arrayContaining(["sha1", "sha256"]));
	});

	it("lets browsers use it: the CORS preflight allows the tus headers and responses expose them", async () => {
		const preflight = await api.request("/v1/tus/upl_x", {
			method: "OPTIONS",
			headers: {
				Origin: "https://app.example",
				"Access-Control-Request-Method": "PATCH",
				"Access-Control-Request-Headers": "tus-resumable,upload-offset,upload-checksum,content-type,authorization",
			},
		});
		expect(preflight.status).toBeLessThan(300);
		const allowed = (preflight.headers.get("Access-Control-Allow-Headers") ?? "").toLowerCase();
		for (const h of ["tus-resumable", "upload-offset", "upload-length", "upload-metadata", "upload-checksum"]) expect(allowed).toContain(h);
		expect(preflight.headers.get("Access-Control-Allow-Methods") ?? "").toContain("PATCH");
		const user = await api.signup();
		const created = await createTus(user, "cors.bin", 10, undefined, { Origin: "https://app.example" });
		expect(created.status).toBe(201);
		const exposed = (created.headers.get("Access-Control-Expose-Headers") ?? "").toLowerCase();
		for (const h of ["location", "upload-offset", "tus-resumable", "upload-expires"]) expect(exposed).toContain(h);
	});

	// The version check runs after CORS, so browsers can read the 412.
	it("lets browsers read a 412 too (CORS headers on the version error)", async () => {
		const user = await api.signup();
		const res = await api.request("/v1/tus", {
			method: "POST",
			token: user.token,
			headers: { Origin: "https://app.example", "Upload-Length": "10", "Upload-Metadata": metadata(user, "cors412.bin") },
		});
		expect(res.status).toBe(412);
		expect(res.headers.get("Access-Control-Allow-Origin")).toBe("*");
	});

	it("sends Tus-Resumable and the CORS headers on error answers too", async () => {
		const user = await api.signup();
		const path = await start(user, "errors.bin", 10);
		const res = await patch(user, path, 0, new Uint8Array(10), {
			Origin: "https://app.example",
			"Upload-Checksum": `sha1 ${await digest("SHA-1", new Uint8Array(3))}`,
		});
		await expectError(res.clone(), 460, "CHECKSUM_MISMATCH");
		expect(res.headers.get("Tus-Resumable")).toBe("1.0.0");
		expect(res.headers.get("Access-Control-Allow-Origin")).toBe("*");
	});

	it("refuses an Upload-Length over the maximum size with 413", async () => {
		const user = await api.signup();
		await expectError(await createTus(user, "huge.bin", 10 * 1024 * MiB + 1), 413, "PAYLOAD_TOO_LARGE");
	});

	it("answers 412 when Tus-Resumable is missing or names another version", async () => {
		const user = await api.signup();
		const path = await start(user, "v.bin", 10);
		const noHeader = await api.request("/v1/tus", {
			method: "POST",
			token: user.token,
			headers: { "Upload-Length": "10", "Upload-Metadata": metadata(user, "a") },
		});
		await expectError(noHeader, 412, "PRECONDITION_FAILED");
		const old = await api.request("/v1/tus", {
			method: "POST",
			token: user.token,
			headers: { "Tus-Resumable": "0.2.2", "Upload-Length": "10", "Upload-Metadata": metadata(user, "a") },
		});
		await expectError(old, 412, "PRECONDITION_FAILED");
		expect(old.headers.get("Tus-Version")).toBe("1.0.0");
		const headWithout = await api.request(path, { method: "HEAD", token: user.token });
		expect(headWithout.status).toBe(412);
		expect(headWithout.headers.get("Tus-Version")).toBe("1.0.0");
		const patchWithout = await api.request(path, {
			method: "PATCH",
			token: user.token,
			headers: { "Upload-Offset": "0", "Content-Type": OCTETS },
			body: new Uint8Array(10),
		});
		await expectError(patchWithout, 412, "PRECONDITION_FAILED");
		expect(await offsetOf(user, path)).toBe(0);
	});

	it("requires filename and parent_id in Upload-Metadata", async () => {
		const user = await api.signup();
		const only = (pairs: Record<string, string>) =>
			api.request("/v1/tus", {
				method: "POST",
				token: user.token,
				headers: {
					...TUS,
					"Upload-Length": "10",
					"Upload-Metadata": Object.entries(pairs)
						.map(([k, v]) => `${k} ${b64(v)}`)
						.join(","),
				},
			});
		await expectError(await only({ parent_id: user.rootId }), 400, "INVALID_REQUEST");
		await expectError(await only({ filename: "x.bin" }), 400, "INVALID_REQUEST");
		await expectError(
			await api.request("/v1/tus", { method: "POST", token: user.token, headers: { ...TUS, "Upload-Length": "10" } }),
			400,
			"INVALID_REQUEST",
		);
	});

	it("answers 201 with Location, Upload-Expires and no offset change on creation", async () => {
		const user = await api.signup();
		const before = Date.now();
		const res = await createTus(user, "created.bin", 1000);
		const after = Date.now();
		expect(res.status).toBe(201);
		const location = res.headers.get("Location") ?? "";
		expect(location).toMatch(/\/v1\/tus\/upl_/);
		const expires = Date.parse(res.headers.get("Upload-Expires") ?? "");
		// 24 hours from the request (Upload-Expires is an HTTP-date, to the second).
		expect(expires).toBeGreaterThanOrEqual(Math.floor(before / 1000) * 1000 + 24 * 3600_000);
		expect(expires).toBeLessThanOrEqual(after + 24 * 3600_000);
		const h = await head(user, new URL(location).pathname);
		expect(h.status).toBe(200);
		expect(h.headers.get("Upload-Offset")).toBe("0");
		expect(h.headers.get("Upload-Length")).toBe("1000");
		expect(h.headers.get("Upload-Metadata")).toBe(metadata(user, "created.bin"));
		expect(h.headers.get("Cache-Control")).toBe("no-store");
		expect(h.headers.get("Drive-Node-Id")).toBeNull();
	});

	it("requires a bearer token", async () => {
		const res = await api.request("/v1/tus", { method: "POST", headers: { ...TUS, "Upload-Length": "1" } });
		await expectError(res, 401, "UNAUTHENTICATED");
	});
});

describe("receiving bytes", () => {
	let user: TestUser;
	beforeAll(async () => {
		user = await api.signup();
	});

	it("takes the first bytes with the creation request (creation-with-upload)", async () => {
		const data = randomBytes(600 * KiB, 21);
		const res = await createTus(user, "cwu.bin", data.length, data.slice(0, 400 * KiB));
		expect(res.status).toBe(201);
		expect(res.headers.get("Upload-Offset")).toBe(String(400 * KiB));
		const path = new URL(res.headers.get("Location") ?? "").pathname;
		expect(await offsetOf(user, path)).toBe(400 * KiB);
		const last = await patch(user, path, 400 * KiB, data.slice(400 * KiB));
		expect(last.status).toBe(204);
		const nodeId = last.headers.get("Drive-Node-Id") ?? "";
		expect(bytesEqual((await download(user, nodeId)).bytes, data)).toBe(true);
	});

	it("completes a whole upload sent with the creation request", async () => {
		const data = randomBytes(300 * KiB, 22);
		const res = await createTus(user, "whole.bin", data.length, data);
		expect(res.status).toBe(201);
		expect(res.headers.get("Upload-Offset")).toBe(String(data.length));
		const nodeId = res.headers.get("Drive-Node-Id") ?? "";
		expect(nodeId).toMatch(/^nod_/);
		expect((await getNode(user, nodeId)).content_hash).toBe(await sha256(data));
	});

	it("answers 409 to a PATCH at the wrong offset and keeps nothing of it", async () => {
		const data = randomBytes(200 * KiB, 23);
		const path = await start(user, "offset.bin", data.length);
		expect((await patch(user, path, 0, data.slice(0, 100 * KiB))).status).toBe(204);
		const ahead = await patch(user, path, 150 * KiB, data.slice(150 * KiB));
		const envelope = await expectError(ahead, 409, "UPLOAD_OFFSET_MISMATCH");
		expect(envelope.error.details).toEqual([{ offset: 100 * KiB }]);
		await expectError(await patch(user, path, 0, data.slice(0, 100 * KiB)), 409, "UPLOAD_OFFSET_MISMATCH");
		expect(await offsetOf(user, path)).toBe(100 * KiB);
		const nodeId = await patchAt(user, path, data, [data.length], 100 * KiB);
		expect(bytesEqual((await download(user, nodeId)).bytes, data)).toBe(true);
	});

	it("rejects a PATCH whose Content-Type is not application/offset+octet-stream", async () => {
		const path = await start(user, "ctype.bin", 100);
		const res = await patch(user, path, 0, new Uint8Array(100), { "Content-Type": "application/octet-stream" });
		expect(res.status).toBeGreaterThanOrEqual(400);
		expect(res.status).toBeLessThan(500);
		expect(await offsetOf(user, path)).toBe(0);
	});

	it("accepts PATCHes whose sha1 or sha256 Upload-Checksum matches", async () => {
		const data = randomBytes(2 * MiB + 77, 24);
		const path = await start(user, "sums.bin", data.length);
		const first = data.slice(0, MiB + 5);
		const okSha1 = await patch(user, path, 0, first, { "Upload-Checksum": `sha1 ${await digest("SHA-1", first)}` });
		expect(okSha1.status).toBe(204);
		expect(okSha1.headers.get("Upload-Offset")).toBe(String(first.length));
		const rest = data.slice(first.length);
		const okSha256 = await patch(user, path, first.length, rest, { "Upload-Checksum": `sha256 ${await digest("SHA-256", rest)}` });
		expect(okSha256.status).toBe(204);
		const nodeId = okSha256.headers.get("Drive-Node-Id") ?? "";
		expect(bytesEqual((await download(user, nodeId)).bytes, data)).toBe(true);
		expect(await versionBlocks(user.id, (await getNode(user, nodeId)).version_id ?? "")).toEqual(await expectedBlocks(data));
	});

	it("answers 460 to a checksum mismatch, keeps nothing of that PATCH, and resumes cleanly", async () => {
		const data = randomBytes(3 * MiB + 1234, 25);
		const path = await start(user, "badsum.bin", data.length);
		const head1 = data.slice(0, MiB / 2);
		expect((await patch(user, path, 0, head1)).status).toBe(204);
		const piece = data.slice(MiB / 2, 2 * MiB + 99);
		const wrong = await digest("SHA-256", data.slice(0, piece.length));
		await expectError(await patch(user, path, head1.length, piece, { "Upload-Checksum": `sha256 ${wrong}` }), 460, "CHECKSUM_MISMATCH");
		expect(await offsetOf(user, path)).toBe(head1.length);
		const wrongSha1 = await digest("SHA-1", data.slice(0, piece.length));
		await expectError(await patch(user, path, head1.length, piece, { "Upload-Checksum": `sha1 ${wrongSha1}` }), 460, "CHECKSUM_MISMATCH");
		expect(await offsetOf(user, path)).toBe(head1.length);
		await expectError(await patch(user, path, head1.length, piece, { "Upload-Checksum": "md5 AAAA" }), 400, "INVALID_REQUEST");
		// The same bytes, correctly summed, then the rest: the file and its blocks are exact.
		expect((await patch(user, path, head1.length, piece, { "Upload-Checksum": `sha256 ${await digest("SHA-256", piece)}` })).status).toBe(
			204,
		);
		const last = await patch(user, path, head1.length + piece.length, data.slice(head1.length + piece.length));
		expect(last.status).toBe(204);
		const node = await getNode(user, last.headers.get("Drive-Node-Id") ?? "");
		expect(node.content_hash).toBe(await sha256(data));
		expect(await versionBlocks(user.id, node.version_id ?? "")).toEqual(await expectedBlocks(data));
	});

	it("answers 400 to a PATCH that goes past Upload-Length", async () => {
		const data = randomBytes(1000, 26);
		const path = await start(user, "past.bin", data.length);
		await expectError(await patch(user, path, 0, randomBytes(1001, 27)), 400, "INVALID_REQUEST");
		expect(await offsetOf(user, path)).toBe(0);
		expect((await patch(user, path, 0, data.slice(0, 600))).status).toBe(204);
		await expectError(await patch(user, path, 600, data.slice(0, 401)), 400, "INVALID_REQUEST");
		expect(await offsetOf(user, path)).toBe(600);
		const done = await patch(user, path, 600, data.slice(600));
		expect(done.status).toBe(204);
		expect(bytesEqual((await download(user, done.headers.get("Drive-Node-Id") ?? "")).bytes, data)).toBe(true);
	});

	it("answers 400 to a multi-block PATCH past Upload-Length, and the upload stays consistent", async () => {
		const data = randomBytes(3 * MiB, 29);
		const path = await start(user, "past-big.bin", data.length);
		const tooLong = new Uint8Array(data.length + 1);
		tooLong.set(data);
		await expectError(await patch(user, path, 0, tooLong), 400, "INVALID_REQUEST");
		const offset = await offsetOf(user, path);
		// Blocks cut before the overrun was seen may have been kept; the offset says so.
		expect([0, ...cuts(data)]).toContain(offset);
		const done = await patch(user, path, offset, data.slice(offset));
		expect(done.status).toBe(204);
		const node = await getNode(user, done.headers.get("Drive-Node-Id") ?? "");
		expect(await versionBlocks(user.id, node.version_id ?? "")).toEqual(await expectedBlocks(data));
	});

	it("refuses a PATCH declared over 100 MB on its headers alone", async () => {
		const path = await start(user, "too-big.bin", 200_000_000);
		// The body never ends: the answer must not wait for it.
		const { readable, writable } = new IdentityTransformStream();
		const writer = writable.getWriter();
		void writer.write(new Uint8Array(64 * KiB)).catch(() => undefined);
		const res = await patch(user, path, 0, readable, { "Content-Length": "100000001" });
		await expectError(res, 413, "PAYLOAD_TOO_LARGE");
		await writer.abort().catch(() => undefined);
		expect(await offsetOf(user, path)).toBe(0);
	});

	it("keeps what arrived before a PATCH broke, says so in the offset, and resumes to the same blocks", async () => {
		const data = randomBytes(5 * MiB, 28);
		const path = await start(user, "broken.bin", data.length);
		const sent = 3 * MiB + 17;
		// A native stream aborted mid-body, announced as the whole rest of the file.
		const { readable: breaking, writable } = new IdentityTransformStream();
		const writer = writable.getWriter();
		const feeding = (async () => {
			for (let pos = 0; pos < sent; pos += 256 * KiB) await writer.write(data.slice(pos, Math.min(sent, pos + 256 * KiB)));
			await writer.abort(new Error("connection reset"));
		})().catch(() => undefined);
		const res = await patch(user, path, 0, breaking, { "Content-Length": String(data.length) });
		await feeding;
		const offset = await offsetOf(user, path);
		// Two correct outcomes: the runtime reports the break (then the offset
		// is the end of the last block completed before it), or it presents
		// the body as ended (then every byte that arrived is kept, the pending
		// ones as the saved chunker tail). In-process calls do the latter; the
		// e2e suite covers real dropped connections.
		const lastWholeBlock = cuts(data)
			.filter((c) => c <= sent)
			.at(-1);
		if (res.status === 204) expect(offset).toBe(sent);
		else expect(offset).toBe(lastWholeBlock);
		const rest = await patch(user, path, offset, data.slice(offset));
		expect(rest.status).toBe(204);
		const node = await getNode(user, rest.headers.get("Drive-Node-Id") ?? "");
		expect(node.content_hash).toBe(await sha256(data));
		expect(await versionBlocks(user.id, node.version_id ?? "")).toEqual(await expectedBlocks(data));
	});
});

describe("content-defined chunking across PATCH boundaries", () => {
	let user: TestUser;
	let data: Uint8Array;
	let expected: { offset: number; size: number; hash: string }[];
	let boundaries: number[];

	beforeAll(async () => {
		user = await api.signup();
		data = randomBytes(6 * MiB + 4321, 31);
		expected = await expectedBlocks(data);
		boundaries = cuts(data);
		expect(boundaries.length).toBeGreaterThanOrEqual(4);
	});

	async function uploadWith(name: string, ends: number[]): Promise<void> {
		const path = await start(user, name, data.length);
		const nodeId = await patchAt(user, path, data, ends);
		const node = await getNode(user, nodeId);
		expect(node.content_hash).toBe(await sha256(data));
		const stored = await versionBlocks(user.id, node.version_id ?? "");
		expect(stored, `split at ${ends.join(",")}`).toEqual(expected);
	}

	it("cuts one whole PATCH exactly like chunkBoundaries", async () => {
		await uploadWith("one.bin", [data.length]);
	});

	it("cuts randomly split PATCHes exactly like chunkBoundaries", async () => {
		for (const s of [1, 2, 3]) {
			const random = prng(s);
			const ends = new Set<number>([data.length]);
			const pieces = 2 + Math.floor(random() * 6);
			for (let i = 0; i < pieces; i++) ends.add(1 + Math.floor(random() * (data.length - 1)));
			await uploadWith(
				`random-${s}.bin`,
				[...ends].sort((a, b) => a - b),
			);
		}
	});

	it("cuts 1-byte PATCHes around every boundary exactly like chunkBoundaries", async () => {
		const ends = new Set<number>([data.length]);
		for (const b of boundaries.slice(0, -1)) for (const e of [b - 2, b - 1, b, b + 1, b + 2]) ends.add(e);
		await uploadWith(
			"bytes.bin",
			[...ends].sort((a, b) => a - b),
		);
	});

	it("cuts PATCHes that end just before, at and after the 256 KiB minimum and the 4 MiB maximum like chunkBoundaries", async () => {
		const ends = new Set<number>([data.length]);
		for (const e of [256 * KiB - 1, 256 * KiB, 256 * KiB + 1, 4 * MiB - 1, 4 * MiB, 4 * MiB + 1]) ends.add(e);
		await uploadWith(
			"limits.bin",
			[...ends].sort((a, b) => a - b),
		);
	});
});

describe("completion", () => {
	let user: TestUser;
	beforeAll(async () => {
		user = await api.signup();
	});

	it("completes a zero-length upload at creation with a node", async () => {
		const res = await createTus(user, "empty.bin", 0);
		expect(res.status).toBe(201);
		expect(res.headers.get("Upload-Offset")).toBe("0");
		const nodeId = res.headers.get("Drive-Node-Id") ?? "";
		expect(nodeId).toMatch(/^nod_/);
		const node = await getNode(user, nodeId);
		expect(node).toMatchObject({ name: "empty.bin", size: 0, content_hash: await sha256(new Uint8Array(0)) });
		expect((await download(user, nodeId)).bytes.length).toBe(0);
		const h = await head(user, new URL(res.headers.get("Location") ?? "").pathname);
		expect(h.headers.get("Drive-Node-Id")).toBe(nodeId);
	});

	it("names the node on HEAD once complete, and the content downloads byte-exact", async () => {
		const data = randomBytes(2 * MiB + 3, 41);
		const path = await start(user, "done.bin", data.length);
		const nodeId = await patchAt(user, path, data, [MiB, data.length]);
		const h = await head(user, path);
		expect(h.status).toBe(200);
		expect(h.headers.get("Upload-Offset")).toBe(String(data.length));
		expect(h.headers.get("Drive-Node-Id")).toBe(nodeId);
		const node = await getNode(user, nodeId);
		expect(node).toMatchObject({ name: "done.bin", size: data.length, content_hash: await sha256(data), parent_id: user.rootId });
		const { bytes } = await download(user, nodeId);
		expect(await sha256(bytes)).toBe(await sha256(data));
		// A PATCH after completion changes nothing and commits nothing new.
		const again = await patch(user, path, data.length, new Uint8Array(0));
		expect(again.status).toBe(204);
		expect(again.headers.get("Drive-Node-Id")).toBe(nodeId);
		expect((await getNode(user, nodeId)).version_id).toBe(node.version_id);
	});

	it("hashes the file as its PATCHes arrive, so the last PATCH reads nothing back", async () => {
		// With the running hash (services/running-hash.ts) the stored blocks are
		// never read back to hash the file; with the first block's object gone,
		// a read-back would fail. (tus-extensions.test.ts has the same after a
		// 460, whose PATCH leaves no hash behind in the isolate.)
		const data = randomBytes(6 * MiB, 43);
		const path = await start(user, "running.bin", data.length);
		expect((await patch(user, path, 0, data.slice(0, 5 * MiB))).status).toBe(204);
		const [first] = await expectedBlocks(data);
		await env.BLOBS.delete(blockObjectKey(first?.hash ?? ""));
		const last = await patch(user, path, 5 * MiB, data.slice(5 * MiB));
		expect(last.status).toBe(204);
		const node = await getNode(user, last.headers.get("Drive-Node-Id") ?? "");
		expect(node.content_hash).toBe(await sha256(data));
	});

	it("follows the conflict rule for a stale base_version_id in Upload-Metadata", async () => {
		const v1 = await api.upload(user, user.rootId, "edit.txt", "one");
		await api.upload(user, user.rootId, "edit.txt", "two", { ifMatch: v1.version.id, status: 200 });
		const data = new TextEncoder().encode("three");
		const res = await createTus(user, "edit.txt", data.length, data, {
			"Upload-Metadata": metadata(user, "edit.txt", { base_version_id: v1.version.id }),
		});
		expect(res.status).toBe(201);
		const copyId = res.headers.get("Drive-Node-Id") ?? "";
		expect(copyId).not.toBe(v1.node.id);
		expect((await getNode(user, copyId)).name).toMatch(/^edit \(conflicted copy Test laptop .+\)\.txt$/);
	});
});

// The shared auth checks on a PATCH of an upload; every tus route is in openapi.test.ts's security walk.
runAuthSuite(api, "tus", async (user) => ({
	path: await start(user, "auth.bin", 10),
	method: "PATCH",
	headers: { ...TUS, "Upload-Offset": "0", "Content-Type": OCTETS },
	body: new Uint8Array(10),
}));

describe("termination and ownership", () => {
	let owner: TestUser;
	let other: TestUser;
	beforeAll(async () => {
		[owner, other] = await Promise.all([api.signup(), api.signup()]);
	});

	it("terminates an upload: DELETE answers 204, then HEAD and PATCH answer 404", async () => {
		const data = randomBytes(100 * KiB, 51);
		const path = await start(owner, "gone.bin", data.length);
		expect((await patch(owner, path, 0, data.slice(0, 50 * KiB))).status).toBe(204);
		const del = await api.request(path, { method: "DELETE", token: owner.token, headers: TUS });
		expect(del.status).toBe(204);
		expect((await head(owner, path)).status).toBe(404);
		await expectError(await patch(owner, path, 50 * KiB, data.slice(50 * KiB)), 404, "NOT_FOUND");
		await expectError(await api.request(path, { method: "DELETE", token: owner.token, headers: TUS }), 404, "NOT_FOUND");
	});

	it("answers 404 to another user's HEAD, PATCH and DELETE, and leaves the upload alone", async () => {
		const data = randomBytes(100 * KiB, 52);
		const path = await start(owner, "mine.bin", data.length);
		expect((await patch(owner, path, 0, data.slice(0, 40 * KiB))).status).toBe(204);
		expect((await head(other, path)).status).toBe(404);
		await expectError(await patch(other, path, 40 * KiB, data.slice(40 * KiB)), 404, "NOT_FOUND");
		await expectError(await api.request(path, { method: "DELETE", token: other.token, headers: TUS }), 404, "NOT_FOUND");
		expect(await offsetOf(owner, path)).toBe(40 * KiB);
		const done = await patch(owner, path, 40 * KiB, data.slice(40 * KiB));
		expect(done.status).toBe(204);
		expect(bytesEqual((await download(owner, done.headers.get("Drive-Node-Id") ?? "")).bytes, data)).toBe(true);
	});
});
