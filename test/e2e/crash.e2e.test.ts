/// <reference types="node" />
/**
 * Crash test: the whole local stack (wrangler, esbuild, both workerd
 * runtimes) is killed with SIGKILL in the middle of uploads, restarted on
 * the same storage and port, and the uploads resume to byte-exact files:
 * a 150 MiB tus upload through tus-js-client, and an upload session with
 * half of its blocks sent.
 *
 * This file runs its own stack (not the shared one from global-setup),
 * since it kills it.
 */
import type { ChildProcess } from "node:child_process";
import { spawn, spawnSync } from "node:child_process";
import { createCipheriv, createHash } from "node:crypto";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { freePort } from "../../scripts/local-stack.mjs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import * as tus from "tus-js-client";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { chunkBoundaries } from "../../src/shared/chunking";

const MiB = 1024 * 1024;
const TUS_SIZE = 150 * MiB;
const SESSION_SIZE = 24 * MiB;

interface LocalStack {
	startStack(options: { port: number; persistTo: string; stdio: "pipe" }): Promise<{ child: ChildProcess; url: string; log: () => string }>;
	stopStack(child: ChildProcess, signal?: NodeJS.Signals): void;
	wranglerEnv(extra?: Record<string, string>): NodeJS.ProcessEnv;
}

interface User {
	token: string;
	rootId: string;
}

interface Block {
	hash: string;
	offset: number;
	size: number;
}

const ROOT = resolve(fileURLToPath(import.meta.url), "..", "..", "..");

/** Pids in process group `pgid`, as pgrep sees them (zombies included until reaped). */
function pgrepGroup(pgid: number): number[] {
	const res = spawnSync("pgrep", ["-g", String(pgid)], { encoding: "utf8" });
	if (res.error) throw res.error;
	return res.stdout.split("\n").filter(Boolean).map(Number);
}

/** The workerd processes in process group `pgid`, from /proc. */
function workerdsIn(pgid: number): number[] {
	const out: number[] = [];
	for (const entry of readdirSync("/proc")) {
		if (!/^\d+$/.test(entry)) continue;
		try {
			const stat = readFileSync(`/proc/${entry}/stat`, "utf8");
			const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
			if (Number(fields[2]) !== pgid) continue;
			if (readFileSync(`/proc/${entry}/cmdline`, "utf8").split("\0")[0]?.endsWith("/workerd")) out.push(Number(entry));
		} catch {
			// exited meanwhile
		}
	}
	return out;
}

async function waitFor(what: string, check: () => boolean, ms: number): Promise<void> {
	const deadline = Date.now() + ms;
	while (!check()) {
		if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
		await new Promise((r) => setTimeout(r, 100));
	}
}

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

/** node:sqlite, loaded at run time (Node 22; vite does not know the builtin). */
type SqliteModule = {
	DatabaseSync: new (
		path: string,
		options?: { readOnly?: boolean },
	) => { prepare(sql: string): { all(...params: unknown[]): unknown[] }; close(): void };
};
const sqlite = process.getBuiltinModule("node:sqlite") as SqliteModule;

/** A version's block list, read from whichever local D1 shard file holds it. */
function versionBlocksOnDisk(persistTo: string, versionId: string): { offset: number; size: number; hash: string }[] {
	const dir = join(persistTo, "v3", "d1", "miniflare-D1DatabaseObject");
	for (const name of existsSync(dir) ? readdirSync(dir) : []) {
		if (!name.endsWith(".sqlite") || name === "metadata.sqlite") continue;
		const db = new sqlite.DatabaseSync(join(dir, name), { readOnly: true });
		try {
			const rows = db.prepare("SELECT offset, size, hash FROM version_blocks WHERE version_id = ? ORDER BY offset").all(versionId) as {
				offset: number;
				size: number;
				hash: string;
			}[];
			if (rows.length > 0) return rows.map((r) => ({ offset: r.offset, size: r.size, hash: r.hash }));
		} catch {
			// the directory database has no version_blocks
		} finally {
			db.close();
		}
	}
	return [];
}

describe("kill -9 in the middle of uploads", () => {
	let stackModule: LocalStack;
	let persistTo: string;
	let port: number;
	let base: string;
	let child: ChildProcess | null = null;

	const api = async <T>(
		user: User | null,
		path: string,
		init: { method?: string; json?: unknown } = {},
	): Promise<{ status: number; body: T }> => {
		const headers: Record<string, string> = {};
		if (user) headers.Authorization = `Bearer ${user.token}`;
		if (init.json !== undefined) headers["Content-Type"] = "application/json";
		const res = await fetch(`${base}${path}`, {
			method: init.method ?? "GET",
			headers,
			body: init.json === undefined ? undefined : JSON.stringify(init.json),
		});
		const text = await res.text();
		return { status: res.status, body: (text ? JSON.parse(text) : null) as T };
	};

	const start = async (): Promise<void> => {
		const stack = await stackModule.startStack({ port, persistTo, stdio: "pipe" });
		child = stack.child;
		base = stack.url;
	};

	/**
	 * Runs the killed stack's exact command line again (same storage, same
	 * port). startStack would do too, but it first re-applies every D1
	 * migration, five wrangler runs that find nothing to do and cost ~40 s here.
	 */
	const restart = async (argv: string[]): Promise<void> => {
		const [command, ...args] = argv as [string, ...string[]];
		const next = spawn(command, args, { cwd: ROOT, env: stackModule.wranglerEnv(), stdio: ["ignore", "pipe", "pipe"], detached: true });
		let log = "";
		next.stdout?.on("data", (d) => (log += d));
		next.stderr?.on("data", (d) => (log += d));
		child = next;
		const deadline = Date.now() + 180_000;
		for (;;) {
			if (next.exitCode !== null) throw new Error(`restarted wrangler dev exited with ${next.exitCode}\n${log}`);
			const up = await fetch(`${base}/v1/openapi.json`).then(
				(r) => r.ok,
				() => false,
			);
			if (up) return;
			if (Date.now() > deadline) throw new Error(`restarted wrangler dev did not come up\n${log}`);
			await new Promise((r) => setTimeout(r, 250));
		}
	};

	beforeAll(async () => {
		stackModule = (await import(pathToFileURL(join(ROOT, "scripts", "local-stack.mjs")).href)) as LocalStack;
		persistTo = mkdtempSync(join(tmpdir(), "drive-crash-e2e-"));
		port = await freePort();
		await start();
	}, 300_000);

	afterAll(async () => {
		const running = child;
		if (running?.pid !== undefined && running.exitCode === null && running.signalCode === null) {
			const pgid = running.pid;
			stackModule.stopStack(running, "SIGTERM");
			await waitFor("the stack to stop", () => pgrepGroup(pgid).length === 0, 15_000).catch(() => {
				stackModule.stopStack(running, "SIGKILL");
			});
		}
		if (persistTo) rmSync(persistTo, { recursive: true, force: true });
	}, 60_000);

	it(
		"resumes a tus upload and an upload session to byte-exact files after the stack is killed with SIGKILL and restarted",
		{ timeout: 600_000 },
		async () => {
			const signup = await api<{ access_token: string }>(null, "/v1/auth/signup", {
				method: "POST",
				json: { email: `crash-${Date.now()}@example.com`, password: "correct horse battery staple", device_name: "crash e2e" },
			});
			expect(signup.status).toBe(201);
			const token = signup.body.access_token;
			const root = await api<{ id: string }>({ token, rootId: "" }, "/v1/nodes/root");
			const user: User = { token, rootId: root.body.id };

			// An upload session with the first half of its blocks sent.
			const sessionData = generate(SESSION_SIZE, "crash-e2e-session");
			const sessionBlocks = blocksOf(sessionData);
			const created = await api<{ upload_id: string; missing: string[] }>(user, "/v1/uploads", {
				method: "POST",
				json: {
					parent_id: user.rootId,
					name: "session-after-crash.bin",
					size: SESSION_SIZE,
					blocks: sessionBlocks.map(({ hash, size }) => ({ hash, size })),
					content_hash: createHash("sha256").update(sessionData).digest("hex"),
				},
			});
			expect(created.status).toBe(201);
			const { upload_id: uploadId, missing } = created.body;
			expect(missing).toEqual(sessionBlocks.map((b) => b.hash));
			const half = Math.floor(missing.length / 2);
			const byHash = new Map(sessionBlocks.map((b) => [b.hash, b]));
			const putBlock = async (hash: string): Promise<void> => {
				const b = byHash.get(hash) as Block;
				const res = await fetch(`${base}/v1/uploads/${uploadId}/blocks/${hash}`, {
					method: "PUT",
					headers: { Authorization: `Bearer ${user.token}` },
					body: sessionData.subarray(b.offset, b.offset + b.size),
				});
				expect(res.status).toBe(204);
			};
			for (const hash of missing.slice(0, half)) await putBlock(hash);

			// A 150 MiB tus upload, and SIGKILL to the whole stack at about 40 %.
			const tusData = generate(TUS_SIZE, "crash-e2e-tus");
			const tusSha256 = createHash("sha256").update(tusData).digest("hex");
			const options = {
				endpoint: `${base}/v1/tus`,
				chunkSize: 25 * MiB,
				headers: { Authorization: `Bearer ${user.token}` },
				metadata: { filename: "tus-after-crash.bin", parent_id: user.rootId },
				retryDelays: null,
			};
			const victim = child as ChildProcess;
			const pgid = victim.pid as number;
			const commandLine = readFileSync(`/proc/${pgid}/cmdline`, "utf8").split("\0").filter(Boolean);
			expect(commandLine).toEqual(expect.arrayContaining(["dev", "--port", String(port), "--persist-to", persistTo]));
			expect(workerdsIn(pgid).length).toBeGreaterThanOrEqual(1);
			let uploadUrl = "";
			let killedAt = 0;
			const exited = new Promise<void>((r) => victim.once("exit", () => r()));
			const clientError = await new Promise<unknown>((resolveUpload) => {
				const upload = new tus.Upload(tusData, {
					...options,
					onUploadUrlAvailable: () => {
						uploadUrl = upload.url ?? "";
					},
					onProgress: (sent, total) => {
						if (killedAt === 0 && sent >= 0.4 * total) {
							killedAt = sent;
							stackModule.stopStack(victim, "SIGKILL");
						}
					},
					onSuccess: () => resolveUpload(new Error("finished before the kill")),
					onError: resolveUpload,
				});
				upload.start();
			});
			expect(killedAt).toBeGreaterThan(0);
			expect(clientError).toBeInstanceOf(Error);
			expect(String(clientError)).not.toContain("finished before the kill");
			await exited;
			// Nothing of the old stack survives: not wrangler, not esbuild, not workerd.
			await waitFor("the killed stack's processes to disappear", () => pgrepGroup(pgid).length === 0, 10_000);
			expect(workerdsIn(pgid)).toEqual([]);

			// Restart on the same storage and port.
			await restart(commandLine);

			// tus: HEAD says what survived; a new client object resumes from there.
			const headRes = await fetch(uploadUrl, {
				method: "HEAD",
				headers: { Authorization: `Bearer ${user.token}`, "Tus-Resumable": "1.0.0" },
			});
			expect(headRes.status).toBe(200);
			const survived = Number(headRes.headers.get("Upload-Offset"));
			expect(survived).toBeLessThanOrEqual(killedAt);
			expect(survived).toBeGreaterThan(0);
			let firstPatchOffset = -1;
			const nodeId = await new Promise<string>((resolveUpload, reject) => {
				const upload = new tus.Upload(tusData, {
					...options,
					retryDelays: [0, 1000, 3000, 5000],
					uploadUrl,
					onBeforeRequest: (req) => {
						if (req.getMethod() === "PATCH" && firstPatchOffset < 0) firstPatchOffset = Number(req.getHeader("Upload-Offset"));
					},
					onSuccess: ({ lastResponse }) => resolveUpload(lastResponse.getHeader("Drive-Node-Id") ?? ""),
					onError: reject,
				});
				upload.start();
			});
			expect(firstPatchOffset).toBe(survived);
			const node = await api<{ size: number; content_hash: string; version_id: string }>(user, `/v1/nodes/${nodeId}`);
			expect(node.body).toMatchObject({ size: TUS_SIZE, content_hash: tusSha256 });
			const download = await fetch(`${base}/v1/files/${nodeId}/content`, { headers: { Authorization: `Bearer ${user.token}` } });
			expect(download.status).toBe(200);
			expect(
				createHash("sha256")
					.update(Buffer.from(await download.arrayBuffer()))
					.digest("hex"),
			).toBe(tusSha256);
			// The interrupted upload produced exactly the blocks of an uninterrupted one.
			const expectedBlocks = blocksOf(tusData).map(({ offset, size, hash }) => ({ offset, size, hash }));
			expect(versionBlocksOnDisk(persistTo, node.body.version_id)).toEqual(expectedBlocks);

			// Session: exactly the unsent half is missing; send it, commit, compare.
			const status = await api<{ missing: string[] }>(user, `/v1/uploads/${uploadId}`);
			expect(status.status).toBe(200);
			expect(status.body.missing).toEqual(missing.slice(half));
			for (const hash of status.body.missing) await putBlock(hash);
			const committed = await api<{ node: { id: string; content_hash: string } }>(user, `/v1/uploads/${uploadId}/commit`, {
				method: "POST",
				json: {},
			});
			expect(committed.status).toBe(201);
			const sessionSha256 = createHash("sha256").update(sessionData).digest("hex");
			expect(committed.body.node.content_hash).toBe(sessionSha256);
			const back = await fetch(`${base}/v1/files/${committed.body.node.id}/content`, {
				headers: { Authorization: `Bearer ${user.token}` },
			});
			expect(
				createHash("sha256")
					.update(Buffer.from(await back.arrayBuffer()))
					.digest("hex"),
			).toBe(sessionSha256);
		},
	);
});
