/// <reference types="node" />
/**
 * Deduplication end to end: the same 100 MiB uploaded twice adds no block
 * object to R2 the second time, and the second upload through a session
 * sends zero block bytes.
 *
 * How R2 objects are counted: the local stack keeps R2 under its
 * `--persist-to` directory, as miniflare's bucket: one SQLite metadata
 * database (`v3/r2/miniflare-R2BucketObject/<id>.sqlite`, table
 * `_mf_objects`, one row per object key) and one file per object body
 * (`v3/r2/<bucket>/blobs/`). The test counts both: rows whose key starts
 * with `blocks/` (exactly the block store's objects, docs/storage.md) and
 * blob files (what is physically on disk, which would also catch an
 * overwrite that leaked its old body). The persist directory is read from
 * the command line of the `wrangler dev` serving the injected base URL.
 */
import { createCipheriv, createHash } from "node:crypto";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import * as tus from "tus-js-client";
import { beforeAll, describe, expect, inject, it } from "vitest";
import { chunkBoundaries } from "../../src/shared/chunking";

const BASE = inject("baseUrl");
const MiB = 1024 * 1024;
const SIZE = 100 * MiB;

interface User {
	token: string;
	rootId: string;
}

interface Block {
	hash: string;
	offset: number;
	size: number;
}

async function signup(): Promise<User> {
	const email = `dedup-e2e-${Date.now()}-${Math.random().toString(36).slice(2, 8)}@example.com`;
	const res = await fetch(`${BASE}/v1/auth/signup`, {
		method: "POST",
		headers: { "Content-Type": "application/json" },
		body: JSON.stringify({ email, password: "correct horse battery staple", device_name: "dedup e2e" }),
	});
	expect(res.status).toBe(201);
	const { access_token: token } = (await res.json()) as { access_token: string };
	const root = (await (await fetch(`${BASE}/v1/nodes/root`, { headers: { Authorization: `Bearer ${token}` } })).json()) as { id: string };
	return { token, rootId: root.id };
}

/** The `--persist-to` directory of the wrangler dev process listening on `port`. */
function persistDirOf(port: string): string {
	for (const pid of readdirSync("/proc")) {
		if (!/^\d+$/.test(pid)) continue;
		let argv: string[];
		try {
			argv = readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0");
		} catch {
			continue;
		}
		if (!argv.some((a) => a.endsWith("wrangler.js") || a.endsWith("cli.js") || a.endsWith("/wrangler"))) continue;
		const p = argv.indexOf("--port");
		const d = argv.indexOf("--persist-to");
		if (p >= 0 && argv[p + 1] === port && d >= 0 && argv[d + 1]) return argv[d + 1] as string;
	}
	throw new Error(`no wrangler dev with --port ${port} found in /proc`);
}

/** node:sqlite, loaded at run time (Node 22; vite does not know the builtin). */
type SqliteModule = {
	DatabaseSync: new (path: string, options?: { readOnly?: boolean }) => { prepare(sql: string): { get(): unknown }; close(): void };
};
const sqlite = process.getBuiltinModule("node:sqlite") as SqliteModule;

/** R2 block objects (metadata rows under `blocks/`) and blob files on disk. */
function countObjects(persistTo: string): { blockObjects: number; blobFiles: number } {
	const r2 = join(persistTo, "v3", "r2");
	const metaDir = join(r2, "miniflare-R2BucketObject");
	let blockObjects = 0;
	for (const name of existsSync(metaDir) ? readdirSync(metaDir) : []) {
		if (!name.endsWith(".sqlite") || name === "metadata.sqlite") continue;
		const db = new sqlite.DatabaseSync(join(metaDir, name), { readOnly: true });
		try {
			const row = db.prepare("SELECT COUNT(*) AS n FROM _mf_objects WHERE key LIKE 'blocks/%'").get() as { n: number };
			blockObjects += row.n;
		} finally {
			db.close();
		}
	}
	let blobFiles = 0;
	for (const bucket of readdirSync(r2)) {
		const blobs = join(r2, bucket, "blobs");
		if (existsSync(blobs)) blobFiles += readdirSync(blobs).length;
	}
	return { blockObjects, blobFiles };
}

/** Counts once the store has settled (an overwrite's old body is removed after the put answers). */
async function settledCount(persistTo: string): Promise<{ blockObjects: number; blobFiles: number }> {
	let last = countObjects(persistTo);
	for (let i = 0; i < 20; i++) {
		await new Promise((r) => setTimeout(r, 250));
		const now = countObjects(persistTo);
		if (now.blockObjects === last.blockObjects && now.blobFiles === last.blobFiles) return now;
		last = now;
	}
	return last;
}

/** 100 MiB of deterministic incompressible bytes. */
function generate(size: number, seed: string): Buffer {
	const cipher = createCipheriv("aes-256-ctr", createHash("sha256").update(seed).digest(), Buffer.alloc(16));
	return cipher.update(Buffer.alloc(size));
}

function blocksOf(data: Buffer): Block[] {
	const out: Block[] = [];
	let offset = 0;
	for (const size of chunkBoundaries(data)) {
		out.push({
			hash: createHash("sha256")
				.update(data.subarray(offset, offset + size))
				.digest("hex"),
			offset,
			size,
		});
		offset += size;
	}
	return out;
}

/**
 * One upload through a session, with raw fetch: create, PUT the missing
 * blocks (4 at a time), commit. Returns the commit and the block bytes sent.
 */
async function sessionUpload(
	user: User,
	name: string,
	data: Buffer,
	blocks: Block[],
): Promise<{ missing: number; blockBytes: number; nodeId: string; contentHash: string; status: number }> {
	const headers = { Authorization: `Bearer ${user.token}`, "Content-Type": "application/json" };
	const created = await fetch(`${BASE}/v1/uploads`, {
		method: "POST",
		headers,
		body: JSON.stringify({
			parent_id: user.rootId,
			name,
			size: data.length,
			blocks: blocks.map(({ hash, size }) => ({ hash, size })),
			content_hash: createHash("sha256").update(data).digest("hex"),
		}),
	});
	expect(created.status).toBe(201);
	const session = (await created.json()) as { upload_id: string; missing: string[] };
	const byHash = new Map(blocks.map((b) => [b.hash, b]));
	const queue = [...session.missing];
	let blockBytes = 0;
	const worker = async () => {
		for (let hash = queue.shift(); hash !== undefined; hash = queue.shift()) {
			const block = byHash.get(hash);
			if (!block) throw new Error(`asked for unknown block ${hash}`);
			const body = data.subarray(block.offset, block.offset + block.size);
			const res = await fetch(`${BASE}/v1/uploads/${session.upload_id}/blocks/${hash}`, {
				method: "PUT",
				headers: { Authorization: `Bearer ${user.token}` },
				body,
			});
			expect(res.status).toBe(204);
			blockBytes += body.length;
		}
	};
	await Promise.all([worker(), worker(), worker(), worker()]);
	const committed = await fetch(`${BASE}/v1/uploads/${session.upload_id}/commit`, { method: "POST", headers, body: "{}" });
	const result = (await committed.json()) as { node: { id: string; content_hash: string } };
	return {
		missing: session.missing.length,
		blockBytes,
		nodeId: result.node.id,
		contentHash: result.node.content_hash,
		status: committed.status,
	};
}

describe("deduplication through the local stack", () => {
	let user: User;
	let persistTo: string;
	let data: Buffer;
	let blocks: Block[];
	let sha256: string;

	beforeAll(async () => {
		user = await signup();
		persistTo = persistDirOf(new URL(BASE).port);
		data = generate(SIZE, "dedup-e2e-100MiB");
		sha256 = createHash("sha256").update(data).digest("hex");
		blocks = blocksOf(data);
	});

	it("adds no block object when the same 100 MiB is uploaded a second time, and the second session sends no block bytes", async () => {
		const distinct = new Set(blocks.map((b) => b.hash)).size;
		const before = await settledCount(persistTo);

		const first = await sessionUpload(user, "first-100MiB.bin", data, blocks);
		expect(first.status).toBe(201);
		expect(first.missing).toBe(distinct);
		expect(first.blockBytes).toBe(SIZE);
		expect(first.contentHash).toBe(sha256);
		const afterFirst = await settledCount(persistTo);
		expect(afterFirst.blockObjects - before.blockObjects).toBe(distinct);
		expect(afterFirst.blobFiles - before.blobFiles).toBe(distinct);

		const second = await sessionUpload(user, "second-100MiB.bin", data, blocks);
		expect(second.status).toBe(201);
		expect(second.missing).toBe(0);
		expect(second.blockBytes).toBe(0);
		expect(second.contentHash).toBe(sha256);
		expect(second.nodeId).not.toBe(first.nodeId);
		expect(await settledCount(persistTo)).toEqual(afterFirst);
	});

	it("adds no block object when the same bytes come again through tus, which rewrites each block under the same key", async () => {
		const before = await settledCount(persistTo);
		const nodeId = await new Promise<string>((resolve, reject) => {
			const upload = new tus.Upload(data, {
				endpoint: `${BASE}/v1/tus`,
				chunkSize: 50 * MiB,
				headers: { Authorization: `Bearer ${user.token}` },
				metadata: { filename: "third-100MiB.bin", parent_id: user.rootId },
				retryDelays: null,
				onSuccess: ({ lastResponse }) => resolve(lastResponse.getHeader("Drive-Node-Id") ?? ""),
				onError: reject,
			});
			upload.start();
		});
		const node = (await (await fetch(`${BASE}/v1/nodes/${nodeId}`, { headers: { Authorization: `Bearer ${user.token}` } })).json()) as {
			content_hash: string;
		};
		expect(node.content_hash).toBe(sha256);
		expect(await settledCount(persistTo)).toEqual(before);
	});
});
