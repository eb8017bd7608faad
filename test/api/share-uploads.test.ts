/**
 * Editors upload into a share through upload sessions and tus
 * (docs/decisions/0025): the upload is the editor's, the file and the quota
 * the owner's, the commit goes through the owner's hub, and dedup counts only
 * the blocks the editor holds.
 */
import { env } from "cloudflare:workers";
import { beforeAll, describe, expect, it } from "vitest";
import { collectBlocks } from "../../workers/api/services/gc";
import { expectOk, type Body } from "../support/harness";
import {
	api,
	bytesEqual,
	call,
	expectError,
	expectJson,
	journal,
	randomBytes,
	sha256,
	shardOfUser,
	withQuota,
	type TestUser,
} from "./helpers";
import { journalUntil, mountIn, share, usersOnDifferentShards } from "./sharing";
import { b64, OCTETS, TUS } from "./tus-helpers";

interface Block {
	hash: string;
	size: number;
	bytes: Uint8Array;
}

let seed = 7_000;
async function makeBlocks(count: number, size = 16 * 1024): Promise<Block[]> {
	const out: Block[] = [];
	for (let i = 0; i < count; i++) {
		const bytes = randomBytes(size, seed++);
		out.push({ hash: await sha256(bytes), size, bytes });
	}
	return out;
}

function concat(blocks: Block[]): Uint8Array {
	const out = new Uint8Array(blocks.reduce((n, b) => n + b.size, 0));
	let at = 0;
	for (const b of blocks) {
		out.set(b.bytes, at);
		at += b.size;
	}
	return out;
}

function createSession(user: TestUser, parentId: string, name: string, blocks: Block[]) {
	const size = blocks.reduce((n, b) => n + b.size, 0);
	return api.createUpload(user, { parent_id: parentId, name, size, blocks: blocks.map(({ hash, size }) => ({ hash, size })) });
}

/** Creates a session into `parentId`, sends what it asks for; returns its id (not committed). */
async function sendSession(user: TestUser, parentId: string, name: string, blocks: Block[]): Promise<string> {
	const session = expectOk(await createSession(user, parentId, name, blocks), 201);
	const byHash = new Map(blocks.map((b) => [b.hash, b]));
	for (const hash of session.missing) {
		const block = byHash.get(hash);
		if (!block) throw new Error(`asked for unknown block ${hash}`);
		const res = await api.putBlock(user, session.upload_id, hash, block.bytes);
		if (res.status !== 204) throw new Error(`PUT block: ${res.status} ${await res.text()}`);
	}
	return session.upload_id;
}

async function bytesUsed(user: TestUser): Promise<number> {
	const me = await expectJson<{ usage: { bytes_used: number } }>(await call("/v1/me", { token: user.token }), 200);
	return me.usage.bytes_used;
}

async function authorOf(owner: TestUser, versionId: string): Promise<string | null> {
	const db = await shardOfUser(owner.id);
	const row = await db.prepare("SELECT author_id FROM versions WHERE id = ?").bind(versionId).first<{ author_id: string | null }>();
	return row?.author_id ?? null;
}

/** An owner's folder shared with an editor and a viewer (all on different shards), and the members' mounts. */
async function sharedFolder(options: { ownerQuota?: number } = {}) {
	const [first, editor, viewer, stranger] = await usersOnDifferentShards(4);
	if (!first || !editor || !viewer || !stranger) throw new Error("unreachable");
	// Set before any member reaches the share: the api remembers an owner's quota for a minute.
	const owner = options.ownerQuota === undefined ? first : await withQuota(first, options.ownerQuota);
	const project = await api.mkdir(owner, owner.rootId, "Project");
	const made = await share(owner, project.id, [
		{ user: editor, role: "editor" },
		{ user: viewer, role: "viewer" },
	]);
	const editorMount = mountIn(await journalUntil(editor, (es) => es.some((e) => e.node.mount !== undefined)));
	const viewerMount = mountIn(await journalUntil(viewer, (es) => es.some((e) => e.node.mount !== undefined)));
	return { owner, editor, viewer, stranger, project, shareId: made.id, editorMount, viewerMount };
}

function revoke(owner: TestUser, shareId: string, member: TestUser): Promise<Response> {
	return call(`/v1/shares/${shareId}/members/${member.id}`, { method: "DELETE", token: owner.token });
}

function tusCreate(user: TestUser, parentId: string, name: string, length: number): Promise<Response> {
	const meta = `filename ${b64(name)},parent_id ${b64(parentId)}`;
	return call("/v1/tus", {
		method: "POST",
		token: user.token,
		headers: { ...TUS, "Upload-Length": String(length), "Upload-Metadata": meta },
	});
}

function tusPatch(user: TestUser, path: string, offset: number, data: Body): Promise<Response> {
	return call(path, {
		method: "PATCH",
		token: user.token,
		headers: { ...TUS, "Upload-Offset": String(offset), "Content-Type": OCTETS },
		body: data,
	});
}

describe("an editor's upload session into a share", () => {
	let fixture: Awaited<ReturnType<typeof sharedFolder>>;
	beforeAll(async () => {
		fixture = await sharedFolder();
	});

	it("lands in the owner's tree byte-exact, charged to the owner, attributed to the editor, and answers a retry the same", async () => {
		const { owner, editor, project, editorMount } = fixture;
		const [ownerBefore, editorBefore] = [await bytesUsed(owner), await bytesUsed(editor)];
		const blocks = await makeBlocks(3);
		const id = await sendSession(editor, editorMount.id, "report.bin", blocks);
		const committed = expectOk(await api.commitUpload(editor, id), 201);
		// As the editor sees it: under their mount.
		expect(committed.node.parent_id).toBe(editorMount.id);
		const data = concat(blocks);
		expect(committed.node.content_hash).toBe(await sha256(data));

		const inOwners = (await api.listAll(owner, project.id)).find((n) => n.name === "report.bin");
		expect(inOwners?.id).toBe(committed.node.id);
		const { bytes } = await api.download(owner, committed.node.id);
		expect(bytesEqual(bytes, data)).toBe(true);
		expect(await authorOf(owner, committed.version.id)).toBe(editor.id);

		expect(await bytesUsed(owner)).toBe(ownerBefore + data.byteLength);
		expect(await bytesUsed(editor)).toBe(editorBefore);

		// A retry whose answer was lost gets the same answer; the status names the file.
		const again = expectOk(await api.commitUpload(editor, id), 201);
		expect(again).toEqual(committed);
		const status = expectOk(await api.uploadStatus(editor, id), 200);
		expect(status.committed).toEqual({ node_id: committed.node.id, version_id: committed.version.id });
	});

	it("asks the editor for a block the owner already stores (nobody learns what the owner has)", async () => {
		const { owner, editor, project, editorMount } = fixture;
		const [ownersBlock] = await makeBlocks(1);
		if (!ownersBlock) throw new Error("unreachable");
		expectOk(await api.commitUpload(owner, await sendSession(owner, project.id, "owners.bin", [ownersBlock])), 201);

		const [fresh] = await makeBlocks(1);
		if (!fresh) throw new Error("unreachable");
		const session = expectOk(await createSession(editor, editorMount.id, "probe.bin", [ownersBlock, fresh]), 201);
		expect(session.missing).toEqual([ownersBlock.hash, fresh.hash]);
		// Committing without sending it is refused the same way as for any block nobody has.
		const refused = await api.commitUpload(editor, session.upload_id);
		expect(refused.status).toBe(409);
		expect((refused.body as unknown as { error: { details: string[] } }).error.details).toEqual([ownersBlock.hash, fresh.hash]);
	});

	it("uploads into any folder of the share by the owner's id, and the editor's own full quota does not matter", async () => {
		const { owner, editor, project } = fixture;
		const sub = await api.mkdir(owner, project.id, "Sub");
		const full = await withQuota(editor, 0);
		// Their own tree is full...
		await expectError(await createSession(full, full.rootId, "mine.bin", await makeBlocks(1)), 507, "QUOTA_EXCEEDED");
		// ...the owner's is not.
		const blocks = await makeBlocks(2);
		const committed = expectOk(await api.commitUpload(full, await sendSession(full, sub.id, "deep.bin", blocks)), 201);
		expect(committed.node.parent_id).toBe(sub.id);
		expect(bytesEqual((await api.download(owner, committed.node.id)).bytes, concat(blocks))).toBe(true);
	});

	it("refuses a viewer (403 read_only) and a stranger (404), creating nothing", async () => {
		const { owner, viewer, stranger, project, viewerMount } = fixture;
		const blocks = await makeBlocks(1);
		const before = (await journal(owner.id)).length;
		const denied = (await expectError(await createSession(viewer, viewerMount.id, "v.bin", blocks), 403, "FORBIDDEN")) as {
			error: { details: { reason: string }[] };
		};
		expect(denied.error.details).toEqual([{ reason: "read_only" }]);
		await expectError(await tusCreate(viewer, project.id, "v.bin", 10), 403, "FORBIDDEN");
		const strangers = (await expectError(await createSession(stranger, project.id, "s.bin", blocks), 404, "NOT_FOUND")) as {
			error: { message: string };
		};
		const randoms = (await expectError(
			await createSession(stranger, "nod_00000000000000000000000000", "s.bin", blocks),
			404,
			"NOT_FOUND",
		)) as { error: { message: string } };
		expect(strangers.error.message).toBe(randoms.error.message);
		await expectError(await tusCreate(stranger, project.id, "s.bin", 10), 404, "NOT_FOUND");
		expect((await journal(owner.id)).length).toBe(before);
	});
});

describe("an editor's upload and the block collector (docs/decisions/0017)", () => {
	let fixture: Awaited<ReturnType<typeof sharedFolder>>;
	beforeAll(async () => {
		fixture = await sharedFolder();
	});

	it("keeps the blocks of an open upload into a share until the owner's commit references them", async () => {
		const { owner, editor, editorMount } = fixture;
		const blocks = await makeBlocks(2);
		const id = await sendSession(editor, editorMount.id, "kept.bin", blocks);
		// Both blocks are candidates everywhere, and the collector runs with no grace period.
		for (const user of [owner, editor]) {
			const db = await shardOfUser(user.id);
			await db.batch(
				blocks.map((b) =>
					db.prepare("INSERT OR IGNORE INTO gc_candidates (hash, enqueued_at) VALUES (?, '2000-01-01T00:00:00.000Z')").bind(b.hash),
				),
			);
		}
		const report = await collectBlocks(env, env.BLOBS, { graceMs: 0 });
		// Listed by the editor's open upload, in the editor's shard: kept for a later run, in both shards.
		expect(report.deferred).toBeGreaterThanOrEqual(4);
		const committed = expectOk(await api.commitUpload(editor, id), 201);
		expect(bytesEqual((await api.download(owner, committed.node.id)).bytes, concat(blocks))).toBe(true);
	});

	it("asks again for a block the owner's shard has doomed, and commits once it is sent again", async () => {
		const { owner, editor, editorMount } = fixture;
		const blocks = await makeBlocks(2);
		const [doomed] = blocks;
		if (!doomed) throw new Error("unreachable");
		const id = await sendSession(editor, editorMount.id, "doomed.bin", blocks);
		const ownerDb = await shardOfUser(owner.id);
		await ownerDb
			.prepare("INSERT INTO doomed_blocks (hash, run_id, doomed_at) VALUES (?, 'test-run', ?)")
			.bind(doomed.hash, new Date().toISOString())
			.run();
		const before = await journal(owner.id);
		const refused = await api.commitUpload(editor, id);
		expect(refused.status).toBe(409);
		expect((refused.body as unknown as { error: { code: string; details: string[] } }).error).toMatchObject({
			code: "MISSING_BLOCKS",
			details: [doomed.hash],
		});
		expect(await journal(owner.id)).toEqual(before);
		expect(expectOk(await api.uploadStatus(editor, id), 200).missing).toEqual([doomed.hash]);
		// The sweep released it; the editor sends it again.
		await ownerDb.prepare("DELETE FROM doomed_blocks WHERE run_id = 'test-run'").run();
		expect((await api.putBlock(editor, id, doomed.hash, doomed.bytes)).status).toBe(204);
		const committed = expectOk(await api.commitUpload(editor, id), 201);
		expect(bytesEqual((await api.download(owner, committed.node.id)).bytes, concat(blocks))).toBe(true);
	});

	it("answers the same version when the owner's commit landed but the upload was not marked committed", async () => {
		const { owner, editor, project, editorMount } = fixture;
		const id = await sendSession(editor, editorMount.id, "once.bin", await makeBlocks(2));
		const first = expectOk(await api.commitUpload(editor, id), 201);
		const editorDb = await shardOfUser(editor.id);
		await editorDb.prepare("UPDATE uploads SET committed_version_id = NULL WHERE id = ?").bind(id).run();
		const again = expectOk(await api.commitUpload(editor, id), 201);
		expect(again).toEqual(first);
		expect((await api.listAll(owner, project.id)).filter((n) => n.name === "once.bin")).toHaveLength(1);
		const ownerDb = await shardOfUser(owner.id);
		const count = await ownerDb.prepare("SELECT COUNT(*) AS n FROM versions WHERE node_id = ?").bind(first.node.id).first<{ n: number }>();
		expect(count?.n).toBe(1);
	});
});

describe("an owner whose storage is full", () => {
	it("refuses the editor's upload with 507 and no figures", async () => {
		const { editor, editorMount } = await sharedFolder({ ownerQuota: 1024 });
		const res = await createSession(editor, editorMount.id, "big.bin", await makeBlocks(1, 4096));
		const body = (await expectError(res, 507, "QUOTA_EXCEEDED")) as { error: { message: string; details?: unknown } };
		expect(body.error.message).toBe("the owner's storage is full");
		expect(body.error.message).not.toMatch(/\d/);
		expect(body.error.details).toBeUndefined();
	});
});

describe("an editor's tus upload into a share", () => {
	it("lands in the owner's tree, byte-exact", async () => {
		const { owner, editor, project, editorMount } = await sharedFolder();
		const data = randomBytes(300 * 1024, seed++);
		const path = new URL((await tusCreate(editor, editorMount.id, "video.bin", data.byteLength)).headers.get("Location") ?? "").pathname;
		expect((await tusPatch(editor, path, 0, data.slice(0, 100 * 1024))).status).toBe(204);
		const last = await tusPatch(editor, path, 100 * 1024, data.slice(100 * 1024));
		expect(last.status).toBe(204);
		const nodeId = last.headers.get("Drive-Node-Id");
		expect(nodeId).not.toBeNull();
		const inOwners = (await api.listAll(owner, project.id)).find((n) => n.name === "video.bin");
		expect(inOwners?.id).toBe(nodeId);
		expect(bytesEqual((await api.download(owner, nodeId ?? "")).bytes, data)).toBe(true);
		// HEAD answers the same file again.
		const head = await call(path, { method: "HEAD", token: editor.token, headers: TUS });
		expect(head.headers.get("Drive-Node-Id")).toBe(nodeId);
	});

	it("concatenates the editor's partial uploads into the share, and takes a deferred length", async () => {
		const { owner, editor, editorMount } = await sharedFolder();
		const data = randomBytes(120 * 1024, seed++);
		const parts: string[] = [];
		for (const piece of [data.slice(0, 50 * 1024), data.slice(50 * 1024)]) {
			const created = await call("/v1/tus", {
				method: "POST",
				token: editor.token,
				headers: { ...TUS, "Upload-Length": String(piece.byteLength), "Upload-Concat": "partial" },
			});
			const path = new URL(created.headers.get("Location") ?? "").pathname;
			expect((await tusPatch(editor, path, 0, piece)).status).toBe(204);
			parts.push(path);
		}
		const final = await call("/v1/tus", {
			method: "POST",
			token: editor.token,
			headers: {
				...TUS,
				"Upload-Concat": `final;${parts.join(" ")}`,
				"Upload-Metadata": `filename ${b64("joined.bin")},parent_id ${b64(editorMount.id)}`,
			},
		});
		expect(final.status).toBe(201);
		const joined = final.headers.get("Drive-Node-Id") ?? "";
		expect(bytesEqual((await api.download(owner, joined)).bytes, data)).toBe(true);

		const meta = `filename ${b64("later.bin")},parent_id ${b64(editorMount.id)}`;
		const deferred = await call("/v1/tus", {
			method: "POST",
			token: editor.token,
			headers: { ...TUS, "Upload-Defer-Length": "1", "Upload-Metadata": meta },
		});
		const path = new URL(deferred.headers.get("Location") ?? "").pathname;
		const last = await call(path, {
			method: "PATCH",
			token: editor.token,
			headers: { ...TUS, "Upload-Offset": "0", "Content-Type": OCTETS, "Upload-Length": String(data.byteLength) },
			body: data,
		});
		expect(last.status).toBe(204);
		expect(bytesEqual((await api.download(owner, last.headers.get("Drive-Node-Id") ?? "")).bytes, data)).toBe(true);
	});

	it("answers the next PATCH 404 after the editor is removed, and commits nothing", async () => {
		const { owner, editor, project, editorMount, shareId } = await sharedFolder();
		const data = randomBytes(200 * 1024, seed++);
		const path = new URL((await tusCreate(editor, editorMount.id, "cut.bin", data.byteLength)).headers.get("Location") ?? "").pathname;
		expect((await tusPatch(editor, path, 0, data.slice(0, 64 * 1024))).status).toBe(204);
		expect((await revoke(owner, shareId, editor)).status).toBe(204);
		const before = await journal(owner.id);
		await expectError(await tusPatch(editor, path, 64 * 1024, data.slice(64 * 1024)), 404, "NOT_FOUND");
		expect((await call(path, { method: "HEAD", token: editor.token, headers: TUS })).status).toBe(404);
		expect(await journal(owner.id)).toEqual(before);
		expect((await api.listAll(owner, project.id)).map((n) => n.name)).not.toContain("cut.bin");
	});
});

describe("a revoke racing an editor's session commit", () => {
	it("either lets the commit stand, attributed to the editor, or refuses it with nothing written", async () => {
		const { owner, editor, project, editorMount, shareId } = await sharedFolder();
		const blocks = await makeBlocks(4);
		const id = await sendSession(editor, editorMount.id, "race.bin", blocks);
		const [commit, revoked] = await Promise.all([api.commitUpload(editor, id), revoke(owner, shareId, editor)]);
		expect(revoked.status).toBe(204);
		const listed = (await api.listAll(owner, project.id)).filter((n) => n.name === "race.bin");
		const db = await shardOfUser(owner.id);
		const versions = await db
			.prepare("SELECT id, author_id FROM versions WHERE user_id = ? AND author_id = ?")
			.bind(owner.id, editor.id)
			.all<{ id: string; author_id: string }>();
		if (commit.status === 201) {
			const committed = commit.body as { node: { id: string }; version: { id: string } };
			expect(listed.map((n) => n.id)).toEqual([committed.node.id]);
			expect(versions.results.map((v) => v.id)).toEqual([committed.version.id]);
			expect(bytesEqual((await api.download(owner, committed.node.id)).bytes, concat(blocks))).toBe(true);
		} else {
			expect(commit.status).toBe(404);
			expect(listed).toEqual([]);
			expect(versions.results).toEqual([]);
		}
		// Either way, the upload is gone for the editor now.
		await expectError(await call(`/v1/uploads/${id}/commit`, { method: "POST", token: editor.token, body: "{}" }), 404, "NOT_FOUND");
	});
});
