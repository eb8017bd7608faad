/**
 * POST /v1/files/batch/content (docs/api.md, "Batches of small files"): many
 * small versions downloaded in one request, as a stream of frames in item
 * order; items fail on their own, bad input is refused whole.
 */
import { env, exports } from "cloudflare:workers";
import { beforeAll, describe, expect, it } from "vitest";
import { commitFiles, downloadFiles, DriveClient } from "../../src/client";
import { blockObjectKey } from "../../src/shared/blocks";
import type { TestUser } from "../support/harness";
import { api, bytesEqual, expectError, randomBytes, settlePurges, sha256, shardOfUser, versionBlocks } from "./helpers";
import { share } from "./sharing";

const TYPE = "application/vnd.drive.batch+octet-stream";

type Header =
	| { index: number; file_id: string; version_id: string; size: number; sha256: string }
	| { index: number; error: { code: string; status: number; message: string; details?: unknown[] } };

let seed = 9000;

function client(user: TestUser, onRequest?: (url: string) => void): DriveClient {
	return new DriveClient({
		baseUrl: "http://drive.test",
		token: user.token,
		retries: 0,
		fetch: (input, init) => {
			onRequest?.(input);
			return exports.default.fetch(new Request(input, init));
		},
	});
}

interface Made {
	fileId: string;
	versionId: string;
	bytes: Uint8Array;
}

/** Files of random bytes committed into `parentId` by the upload batch; each with its head version. */
async function files(user: TestUser, parentId: string, sizes: number[]): Promise<Made[]> {
	const made = sizes.map((size) => ({ parentId, name: `f${seed}.bin`, bytes: randomBytes(size, seed++) }));
	const outcomes = await commitFiles(client(user), made);
	return outcomes.map((outcome, i) => {
		if (!outcome.ok) throw outcome.error;
		return { fileId: outcome.result.node.id, versionId: outcome.result.version.id, bytes: (made[i] as { bytes: Uint8Array }).bytes };
	});
}

function post(user: TestUser, body: unknown): Promise<Response> {
	return api.request("/v1/files/batch/content", {
		method: "POST",
		token: user.token,
		body: typeof body === "string" ? body : JSON.stringify(body),
		headers: { "Content-Type": "application/json" },
	});
}

/** Splits an answer into its frames: each header, and the bytes after it. */
function frames(body: Uint8Array): { header: Header; bytes: Uint8Array | null }[] {
	const out: { header: Header; bytes: Uint8Array | null }[] = [];
	let at = 0;
	while (at < body.byteLength) {
		const end = body.indexOf(10, at);
		expect(end).toBeGreaterThanOrEqual(0);
		const header = JSON.parse(new TextDecoder().decode(body.subarray(at, end))) as Header;
		at = end + 1;
		if ("error" in header) {
			out.push({ header, bytes: null });
			continue;
		}
		out.push({ header, bytes: body.subarray(at, at + header.size) });
		at += header.size;
	}
	expect(at).toBe(body.byteLength);
	return out;
}

/** One file of random bytes, as {@link files} makes them. */
async function oneFile(user: TestUser, parentId: string, size: number): Promise<Made> {
	return (await files(user, parentId, [size]))[0] as Made;
}

async function download(user: TestUser, items: { file_id: string; version_id: string }[]) {
	const res = await post(user, { items });
	if (res.status !== 200) throw new Error(`batch download: ${res.status} ${await res.text()}`);
	expect(res.headers.get("Content-Type")).toBe(TYPE);
	return frames(new Uint8Array(await res.arrayBuffer()));
}

const item = (f: { fileId: string; versionId: string }) => ({ file_id: f.fileId, version_id: f.versionId });

describe("POST /v1/files/batch/content", () => {
	let user: TestUser;
	beforeAll(async () => {
		user = await api.signup("Ada's laptop");
	});

	it("answers 200 small files byte for byte, in order, in one request", async () => {
		const folder = await api.mkdir(user, user.rootId, "two-hundred");
		const made = await files(
			user,
			folder.id,
			Array.from({ length: 200 }, (_, i) => 1024 + ((i * 997) % (15 * 1024))),
		);
		const got = await download(user, made.map(item));
		expect(got).toHaveLength(200);
		for (const [i, { header, bytes }] of got.entries()) {
			const want = made[i] as { fileId: string; versionId: string; bytes: Uint8Array };
			expect(header).toEqual({
				index: i,
				file_id: want.fileId,
				version_id: want.versionId,
				size: want.bytes.byteLength,
				sha256: await sha256(want.bytes),
			});
			expect(bytesEqual(bytes as Uint8Array, want.bytes)).toBe(true);
		}
	});

	it("answers an earlier version, and an empty file with no bytes", async () => {
		const first = await api.upload(user, user.rootId, "history.txt", "first");
		await api.upload(user, user.rootId, "history.txt", "second", { status: 200 });
		const empty = await api.upload(user, user.rootId, "empty.txt", "");
		const got = await download(user, [
			{ file_id: first.node.id, version_id: first.version.id },
			{ file_id: empty.node.id, version_id: empty.version.id },
		]);
		expect(new TextDecoder().decode(got[0]?.bytes as Uint8Array)).toBe("first");
		expect(got[1]).toMatchObject({ header: { index: 1, size: 0, sha256: await sha256(new Uint8Array(0)) } });
	});

	it("refuses items on their own: another user's, unknown, mismatched, a folder, too large", async () => {
		const other = await api.signup("Bob's laptop");
		const theirs = await oneFile(other, other.rootId, 2048);
		const mine = await oneFile(user, user.rootId, 3000);
		const second = await oneFile(user, user.rootId, 4000);
		const big = await api.upload(user, user.rootId, "big.bin", randomBytes(2 * 1024 * 1024, seed++));
		const folder = await api.mkdir(user, user.rootId, "a-folder");
		const trashed = await api.upload(user, user.rootId, "gone.txt", "gone soon");
		await api.request(`/v1/nodes/${trashed.node.id}`, { method: "DELETE", token: user.token });
		await api.request("/v1/trash", { method: "DELETE", token: user.token });
		await settlePurges(user.id);
		const got = await download(user, [
			item(theirs),
			item(mine),
			{ file_id: "nod_unknown", version_id: mine.versionId },
			{ file_id: second.fileId, version_id: mine.versionId },
			{ file_id: big.node.id, version_id: big.version.id },
			{ file_id: folder.id, version_id: mine.versionId },
			{ file_id: trashed.node.id, version_id: trashed.version.id },
			item(second),
		]);
		expect(got.map(({ header }) => ("error" in header ? header.error.code : "ok"))).toEqual([
			"NOT_FOUND",
			"ok",
			"NOT_FOUND",
			"NOT_FOUND",
			"INVALID_REQUEST",
			"NOT_FOUND",
			"NOT_FOUND",
			"ok",
		]);
		expect(got[4]?.header).toMatchObject({ index: 4, error: { status: 400, details: [{ reason: "too_large" }] } });
		expect(got[0]?.header).toMatchObject({ index: 0, error: { status: 404 } });
		expect(bytesEqual(got[1]?.bytes as Uint8Array, mine.bytes)).toBe(true);
		expect(bytesEqual(got[7]?.bytes as Uint8Array, second.bytes)).toBe(true);
		// Alone, items that reach nothing of the caller's make the whole request a 404.
		await expectError(await post(user, { items: [item(theirs)] }), 404, "NOT_FOUND");
	});

	it("stamps each version sent as read, and makes an unreadable block its item's error frame", async () => {
		const folder = await api.mkdir(user, user.rootId, "damaged");
		const [lost, kept] = await files(user, folder.id, [7000, 7001]);
		const [block] = await versionBlocks(user.id, (lost as Made).versionId);
		await env.BLOBS.delete(blockObjectKey((block as { hash: string }).hash));
		const got = await download(user, [item(lost as Made), item(kept as Made)]);
		expect(got[0]?.header).toMatchObject({ index: 0, error: { code: "INTERNAL", status: 500 } });
		expect(bytesEqual(got[1]?.bytes as Uint8Array, (kept as Made).bytes)).toBe(true);
		const shard = await shardOfUser(user.id);
		const row = await shard
			.prepare("SELECT read_month FROM versions WHERE id = ?")
			.bind((kept as Made).versionId)
			.first<{ read_month: number | null }>();
		expect(row?.read_month).not.toBeNull();
	});

	it("refuses bad input whole with 400", async () => {
		const mine = await oneFile(user, user.rootId, 100);
		const one = item(mine);
		await expectError(await post(user, { items: Array.from({ length: 257 }, () => one) }), 400, "INVALID_REQUEST");
		await expectError(await post(user, { items: [] }), 400, "INVALID_REQUEST");
		await expectError(await post(user, "{not json"), 400, "INVALID_REQUEST");
		await expectError(await post(user, { items: [{ file_id: mine.fileId }] }), 400, "INVALID_REQUEST");
		await expectError(await post(user, { items: [{ file_id: "x".repeat(65), version_id: mine.versionId }] }), 400, "INVALID_REQUEST");
		await expectError(await post(user, [one]), 400, "INVALID_REQUEST");
		// 256 items is the limit, not past it.
		const got = await download(
			user,
			Array.from({ length: 256 }, () => one),
		);
		expect(got).toHaveLength(256);
	});

	it("reaches only the caller's own tree: a share member's item is NOT_FOUND", async () => {
		const owner = await api.signup("Owner's laptop");
		const member = await api.signup("Member's laptop");
		const shared = await api.mkdir(owner, owner.rootId, "shared");
		const inShare = await oneFile(owner, shared.id, 1500);
		await share(owner, shared.id, [{ user: member, role: "editor" }]);
		await expectError(await post(member, { items: [item(inShare)] }), 404, "NOT_FOUND");
		const own = await oneFile(member, member.rootId, 1600);
		const got = await download(member, [item(inShare), item(own)]);
		expect(got[0]?.header).toMatchObject({ index: 0, error: { code: "NOT_FOUND", status: 404 } });
		expect(bytesEqual(got[1]?.bytes as Uint8Array, own.bytes)).toBe(true);
		// The owner reads the same file in a batch.
		const owned = await download(owner, [item(inShare)]);
		expect(bytesEqual(owned[0]?.bytes as Uint8Array, inShare.bytes)).toBe(true);
	});

	it("downloadFiles: round trip past the 16 MiB cap, in order, items refused on their own", async () => {
		const folder = await api.mkdir(user, user.rootId, "big-batch");
		const mib = 1024 * 1024;
		const made = await files(user, folder.id, [...Array.from({ length: 18 }, () => mib), 5000]);
		const big = await api.upload(user, folder.id, "big.bin", randomBytes(mib + 1, seed++));
		const requests: string[] = [];
		const wanted = [
			...made.slice(0, 9).map(item),
			{ file_id: big.node.id, version_id: big.version.id },
			{ file_id: "nod_nope", version_id: "ver_nope" },
			...made.slice(9).map(item),
		].map((i) => ({ fileId: i.file_id, versionId: i.version_id }));
		const outcomes = await downloadFiles(
			client(user, (url) => requests.push(url)),
			wanted,
		);
		expect(outcomes).toHaveLength(wanted.length);
		// 16 MiB fit in the first request; the rest come in a second.
		expect(requests).toHaveLength(2);
		const expected = [...made.slice(0, 9), null, null, ...made.slice(9)];
		for (const [i, outcome] of outcomes.entries()) {
			const want = expected[i];
			if (want) {
				expect(outcome.ok, `item ${i}`).toBe(true);
				if (outcome.ok) {
					expect(bytesEqual(outcome.bytes, want.bytes)).toBe(true);
					expect(outcome.sha256).toBe(await sha256(want.bytes));
				}
			}
		}
		expect(outcomes[9]).toMatchObject({ ok: false, error: { code: "INVALID_REQUEST", status: 400, details: [{ reason: "too_large" }] } });
		expect(outcomes[10]).toMatchObject({ ok: false, error: { code: "NOT_FOUND", status: 404 } });
		// A request whose items all reach nothing answers per item.
		expect(await downloadFiles(client(user), [{ fileId: "nod_nope", versionId: "ver_nope" }])).toMatchObject([
			{ ok: false, error: { code: "NOT_FOUND" } },
		]);
	});

	it("downloadFiles: bytes that do not match their frame's sha256 are an error, never returned", async () => {
		const good = new TextEncoder().encode("hello");
		const frame = (i: number, sha: string) =>
			`${JSON.stringify({ index: i, file_id: `nod_${i}`, version_id: `ver_${i}`, size: 5, sha256: sha })}\n`;
		const body = `${frame(0, await sha256(good))}hello${frame(1, "0".repeat(64))}hello`;
		const fake = new DriveClient({
			baseUrl: "http://drive.test",
			token: "t",
			retries: 0,
			fetch: async () => new Response(body, { headers: { "Content-Type": TYPE } }),
		});
		const outcomes = await downloadFiles(fake, [
			{ fileId: "nod_0", versionId: "ver_0" },
			{ fileId: "nod_1", versionId: "ver_1" },
		]);
		expect(outcomes[0]).toMatchObject({ ok: true, sha256: await sha256(good) });
		expect(outcomes[1]).toMatchObject({ ok: false, error: { code: "CHECKSUM_MISMATCH" } });
	});
});
