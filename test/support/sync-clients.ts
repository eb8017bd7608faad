/// <reference types="node" />
/**
 * The moving parts of the sync e2e tests (test/e2e/sync-random.e2e.test.ts):
 * a `drive sync --watch --json` child process and its NDJSON events, the
 * writers that apply a script's ops to a local folder or through the API,
 * and snapshots of a local folder and of a remote folder to compare.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { createHash } from "node:crypto";
import {
	closeSync,
	ftruncateSync,
	linkSync,
	lstatSync,
	mkdirSync,
	openSync,
	readdirSync,
	readFileSync,
	renameSync,
	rmSync,
	statSync,
	unlinkSync,
	writeFileSync,
	writeSync,
} from "node:fs";
import { join } from "node:path";
import { DriveApiError, DriveClient, uploadFile } from "../../src/client";
import { BIN } from "./cli";
import type { CommitResult, Harness, Node, TestUser } from "./harness";
import type { Op } from "./sync-script";

/** One NDJSON line of `drive sync --json` (sync-contract: started, action, progress, problem, idle, error, done). */
export interface SyncEvent {
	event: string;
	[field: string]: unknown;
}

/** Events that say what a sync round is doing; the last of them tells whether the client is idle. */
const ROUND_EVENTS = new Set(["started", "plan", "action", "progress", "problem", "idle", "error"]);

/**
 * A `drive sync <dir> <remote> --init --watch --json` child. {@link events}
 * holds the current process's events; {@link history} keeps every line of
 * every process (for failure messages).
 */
export class SyncChild {
	events: SyncEvent[] = [];
	readonly history: string[] = [];
	#child: ChildProcess | null = null;
	#exit: { code: number | null; signal: NodeJS.Signals | null } | null = null;
	#expectExit = false;
	#waiters: (() => void)[] = [];
	/** Processes started so far. */
	starts = 0;
	readonly #born = Date.now();

	constructor(
		readonly name: string,
		readonly dir: string,
		readonly config: string,
		readonly remote: string,
	) {}

	/** Starts the process; `extra` adds options (e.g. `--force`). */
	start(extra: string[] = []): void {
		if (this.#child !== null) throw new Error(`${this.name} is running already`);
		this.events = [];
		this.#exit = null;
		this.#expectExit = false;
		this.starts++;
		const generation = this.starts;
		const child = spawn(process.execPath, [BIN, "sync", this.dir, this.remote, "--init", "--watch", "--json", ...extra], {
			env: { ...process.env, DRIVE_CONFIG_DIR: this.config },
			stdio: ["ignore", "pipe", "pipe"],
		});
		this.#child = child;
		let out = "";
		child.stdout?.on("data", (d: Buffer) => {
			out += d.toString();
			for (let nl = out.indexOf("\n"); nl >= 0; nl = out.indexOf("\n")) {
				const line = out.slice(0, nl);
				out = out.slice(nl + 1);
				this.#line(generation, line);
			}
		});
		let err = "";
		child.stderr?.on("data", (d: Buffer) => {
			err += d.toString();
			for (let nl = err.indexOf("\n"); nl >= 0; nl = err.indexOf("\n")) {
				this.#remember(`${this.name}#${generation} stderr: ${err.slice(0, nl)}`);
				err = err.slice(nl + 1);
			}
		});
		child.on("exit", (code, signal) => {
			this.#exit = { code, signal };
			this.#remember(`${this.name}#${generation} exited: code ${code} signal ${signal}`);
			this.#child = null;
			this.#wake();
		});
	}

	#line(generation: number, line: string): void {
		if (line.trim() === "") return;
		this.#remember(`${this.name}#${generation}: ${line}`);
		try {
			const event = JSON.parse(line) as SyncEvent;
			if (typeof event === "object" && event !== null && typeof event.event === "string") this.events.push(event);
		} catch {
			// Not an event: kept in the history only.
		}
		this.#wake();
	}

	/** Adds a line of the test's own (an op it applied, a fault) to the history, to read beside the client's. */
	note(line: string): void {
		this.#remember(`test: ${line}`);
	}

	#remember(line: string): void {
		const at = `+${((Date.now() - this.#born) / 1000).toFixed(1)}s `;
		this.history.push(at + (line.length > 400 ? `${line.slice(0, 400)}…` : line));
		if (this.history.length > 4000) this.history.splice(0, 1000);
	}

	#wake(): void {
		for (const wake of this.#waiters.splice(0)) wake();
	}

	get running(): boolean {
		return this.#child !== null;
	}

	/** Set when the process ended without the test asking it to. */
	get crashed(): string | null {
		if (this.#exit === null || this.#expectExit) return null;
		return `${this.name} exited on its own (code ${this.#exit.code}, signal ${this.#exit.signal})`;
	}

	/** Resolves at the next event or exit, or after `ms` (a poll interval, never a condition). */
	changed(ms: number): Promise<void> {
		return new Promise((resolve) => {
			const timer = setTimeout(resolve, ms);
			this.#waiters.push(() => {
				clearTimeout(timer);
				resolve();
			});
		});
	}

	/** The first event of this process from `from` on that matches, waiting up to `ms` (a hang guard). */
	async waitFor(what: string, match: (e: SyncEvent) => boolean, ms: number, from = 0): Promise<SyncEvent> {
		const guard = Date.now() + ms;
		for (;;) {
			const found = this.events.slice(from).find(match);
			if (found !== undefined) return found;
			if (this.crashed !== null) throw new Error(`${what}: ${this.crashed}`);
			if (Date.now() > guard) throw new Error(`${what}: not seen within ${ms} ms (hang guard)`);
			await this.changed(250);
		}
	}

	/** The last round's `idle` event if the last round event is one, else null. */
	lastIdle(): SyncEvent | null {
		for (let n = this.events.length - 1; n >= 0; n--) {
			const e = this.events[n] as SyncEvent;
			if (ROUND_EVENTS.has(e.event)) return e.event === "idle" ? e : null;
		}
		return null;
	}

	/** The cursor of the last round if it ended idle (the last round event is `idle`), else null. */
	idleCursor(): string | null {
		for (let n = this.events.length - 1; n >= 0; n--) {
			const e = this.events[n] as SyncEvent;
			if (!ROUND_EVENTS.has(e.event)) continue;
			return e.event === "idle" && typeof e.cursor === "string" ? e.cursor : null;
		}
		return null;
	}

	/** Kills the process with `signal` and waits until it is gone. */
	async kill(signal: NodeJS.Signals = "SIGKILL", guardMs = 60_000): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
		const child = this.#child;
		if (child === null) return this.#exit ?? { code: null, signal: null };
		this.#expectExit = true;
		child.kill(signal);
		const guard = Date.now() + guardMs;
		while (this.#child !== null) {
			if (Date.now() > guard) {
				child.kill("SIGKILL");
				throw new Error(`${this.name} did not exit within ${guardMs} ms of ${signal}`);
			}
			await this.changed(250);
		}
		return this.#exit ?? { code: null, signal: null };
	}

	/** The last `n` lines of the history: the client's own, or with the test's notes among them. */
	tail(n = 40, notes = false): string {
		const lines = notes ? this.history : this.history.filter((l) => !/^\+[\d.]+s test: /.test(l));
		return lines.slice(-n).join("\n");
	}
}

// ---- snapshots -------------------------------------------------------------------

/** A tree as path → "folder" or "file <sha256>"; paths relative, with `/`. */
export type Tree = Map<string, string>;

const sha256 = (data: Uint8Array): string => createHash("sha256").update(data).digest("hex");

/**
 * Snapshots of a local folder, `.drive/` left out; a file's hash is kept
 * while its size, mtime and inode stay the same, so polling stays cheap.
 */
export class LocalTree {
	readonly #hashes = new Map<string, { sig: string; hash: string }>();

	constructor(readonly root: string) {}

	/** The tree, or null if it changed under the walk (a file vanished midway): try again. */
	snapshot(): Tree | null {
		const tree: Tree = new Map();
		try {
			this.#walk("", tree);
		} catch (err) {
			if ((err as NodeJS.ErrnoException).code === "ENOENT") return null;
			throw err;
		}
		return tree;
	}

	#walk(rel: string, tree: Tree): void {
		for (const name of readdirSync(join(this.root, rel)).sort()) {
			if (rel === "" && name === ".drive") continue;
			const path = rel === "" ? name : `${rel}/${name}`;
			const full = join(this.root, path);
			const st = lstatSync(full);
			if (st.isDirectory()) {
				tree.set(path, "folder");
				this.#walk(path, tree);
			} else if (st.isFile()) {
				const sig = `${st.size}:${st.mtimeMs}:${st.ino}`;
				let cached = this.#hashes.get(path);
				if (cached?.sig !== sig) {
					cached = { sig, hash: sha256(readFileSync(full)) };
					this.#hashes.set(path, cached);
				}
				tree.set(path, `file ${cached.hash}`);
			} else {
				tree.set(path, "other");
			}
		}
	}
}

/** Every file's SHA-256 under `dir` (recursively); empty if it does not exist. */
export function hashesUnder(dir: string): string[] {
	const out: string[] = [];
	let names: string[];
	try {
		names = readdirSync(dir);
	} catch {
		return out;
	}
	for (const name of names) {
		const full = join(dir, name);
		const st = lstatSync(full);
		if (st.isDirectory()) out.push(...hashesUnder(full));
		else if (st.isFile()) out.push(sha256(readFileSync(full)));
	}
	return out;
}

/** The remote folder `rootId` as a {@link Tree}, walked through the children route. */
export async function remoteTree(h: Harness, user: Pick<TestUser, "token">, rootId: string): Promise<Tree> {
	const tree: Tree = new Map();
	const walk = async (id: string, rel: string): Promise<void> => {
		for (const node of await h.listAll(user, id)) {
			const path = rel === "" ? node.name : `${rel}/${node.name}`;
			if (node.type === "folder") {
				tree.set(path, "folder");
				await walk(node.id, path);
			} else tree.set(path, `file ${node.content_hash}`);
		}
	};
	await walk(rootId, "");
	return new Map([...tree].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}

/** Lines that differ between named trees, for a failure message (empty when all are equal). */
export function treeDiff(trees: Record<string, Tree>): string[] {
	const names = Object.keys(trees);
	const paths = new Set(names.flatMap((n) => [...(trees[n] as Tree).keys()]));
	const out: string[] = [];
	for (const path of [...paths].sort()) {
		const values = names.map((n) => (trees[n] as Tree).get(path) ?? "-");
		if (new Set(values).size > 1) out.push(`${path}: ${names.map((n, k) => `${n}=${short(values[k] as string)}`).join(" ")}`);
	}
	return out;
}

const short = (value: string): string => (value.startsWith("file ") ? `file ${value.slice(5, 13)}` : value);

// ---- writers ------------------------------------------------------------------------

/** What applying an op did: `ok`, or why it was skipped. */
export type Outcome = "ok" | `skipped: ${string}`;

/** Applies ops to a local folder, as a user (or an editor) would, without ever replacing something by accident. */
export class LocalWriter {
	constructor(readonly root: string) {}

	/** Applies `op` synchronously; `content` is what a create or edit writes. */
	apply(op: Op, content?: Uint8Array): Outcome {
		try {
			return this.#apply(op, content);
		} catch (err) {
			const code = (err as NodeJS.ErrnoException).code;
			if (code === "ENOENT" || code === "EEXIST" || code === "ENOTDIR" || code === "EISDIR" || code === "ENOTEMPTY")
				return `skipped: ${code}`;
			throw err;
		}
	}

	#apply(op: Op, content?: Uint8Array): Outcome {
		const full = (path: string): string => join(this.root, ...path.split("/"));
		switch (op.t) {
			case "create":
				if (this.#twin(op.path)) return "skipped: a name differing in case only is there";
				writeFileSync(full(op.path), content as Uint8Array, { flag: "wx" });
				return "ok";
			case "mkdir":
				if (this.#twin(op.path)) return "skipped: a name differing in case only is there";
				mkdirSync(full(op.path));
				return "ok";
			case "edit":
				if (!statSync(full(op.path)).isFile()) return "skipped: not a file";
				writeInPlace(full(op.path), content as Uint8Array);
				return "ok";
			case "move": {
				const st = lstatSync(full(op.from));
				if (op.kind !== "case" && this.#twin(op.to)) return "skipped: the target name is taken";
				if (op.kind === "case" && this.#names(op.to).includes(op.to.split("/").pop() as string)) return "skipped: the target name is taken";
				if (st.isDirectory()) {
					// rename(2) replaces an empty directory at the target; the check above keeps it from doing so.
					renameSync(full(op.from), full(op.to));
				} else {
					// link + unlink: fails with EEXIST instead of replacing a file that appeared at the target.
					linkSync(full(op.from), full(op.to));
					unlinkSync(full(op.from));
				}
				return "ok";
			}
			case "delete":
				lstatSync(full(op.path));
				rmSync(full(op.path), { recursive: true });
				return "ok";
		}
	}

	/** The names in the folder that would hold `path`. */
	#names(path: string): string[] {
		const parts = path.split("/");
		parts.pop();
		return readdirSync(join(this.root, ...parts));
	}

	/** Whether the folder of `path` holds a name equal to its last part ignoring case. */
	#twin(path: string): boolean {
		const name = (path.split("/").pop() as string).toLowerCase();
		return this.#names(path).some((n) => n.toLowerCase() === name);
	}
}

/** Rewrites a file in place, as most editors save small files; "r+" never creates one that vanished meanwhile. */
function writeInPlace(path: string, content: Uint8Array): void {
	const fd = openSync(path, "r+");
	try {
		writeSync(fd, content, 0, content.byteLength, 0);
		ftruncateSync(fd, content.byteLength);
	} finally {
		closeSync(fd);
	}
}

/** Applies ops through the API (the third writer), with a DriveClient as any app would. */
export class ApiWriter {
	readonly client: DriveClient;

	constructor(
		readonly h: Harness,
		readonly user: TestUser,
		readonly rootId: string,
	) {
		this.client = new DriveClient({ baseUrl: h.baseUrl, token: user.token });
	}

	/** The live node at `path` under the root, or undefined. */
	async resolve(path: string): Promise<Node | undefined> {
		let id = this.rootId;
		let node: Node | undefined;
		for (const part of path.split("/")) {
			node = (await this.h.listAll(this.user, id)).find((n) => n.name === part);
			if (node === undefined) return undefined;
			id = node.id;
		}
		return node;
	}

	async apply(op: Op, content?: Uint8Array): Promise<Outcome> {
		try {
			return await this.#apply(op, content);
		} catch (err) {
			if (err instanceof DriveApiError && [400, 404, 409].includes(err.status)) return `skipped: ${err.status} ${err.code}`;
			throw err;
		}
	}

	async #apply(op: Op, content?: Uint8Array): Promise<Outcome> {
		const parentOf = async (path: string): Promise<{ parent: Node | undefined; name: string }> => {
			const parts = path.split("/");
			const name = parts.pop() as string;
			const parent = parts.length === 0 ? ({ id: this.rootId, type: "folder" } as Node) : await this.resolve(parts.join("/"));
			return { parent: parent?.type === "folder" ? parent : undefined, name };
		};
		const taken = async (parentId: string, name: string): Promise<boolean> =>
			(await this.h.listAll(this.user, parentId)).some((n) => n.name.toLowerCase() === name.toLowerCase());
		switch (op.t) {
			case "create": {
				const { parent, name } = await parentOf(op.path);
				if (parent === undefined) return "skipped: no parent";
				if (await taken(parent.id, name)) return "skipped: the name is taken";
				await this.#write(content as Uint8Array, { parentId: parent.id, name });
				return "ok";
			}
			case "edit": {
				const node = await this.resolve(op.path);
				if (node?.type !== "file" || node.version_id === null) return "skipped: no such file";
				await this.#write(content as Uint8Array, { parentId: node.parent_id as string, name: node.name, base: node.version_id });
				return "ok";
			}
			case "mkdir": {
				const { parent, name } = await parentOf(op.path);
				if (parent === undefined) return "skipped: no parent";
				await this.client.json("POST", "/v1/folders", { json: { parent_id: parent.id, name } });
				return "ok";
			}
			case "move": {
				const node = await this.resolve(op.from);
				if (node === undefined) return "skipped: no such node";
				const { parent, name } = await parentOf(op.to);
				if (parent === undefined) return "skipped: no target folder";
				await this.client.json("PATCH", `/v1/nodes/${node.id}`, { json: { name, parent_id: parent.id } });
				return "ok";
			}
			case "delete": {
				const node = await this.resolve(op.path);
				if (node === undefined) return "skipped: no such node";
				await this.client.send("DELETE", `/v1/nodes/${node.id}`);
				return "ok";
			}
		}
	}

	/** A small write as one PUT, a large one through an upload session (both with the base version, if any). */
	async #write(content: Uint8Array, target: { parentId: string; name: string; base?: string }): Promise<CommitResult> {
		const bytes = new Uint8Array(content);
		if (bytes.byteLength > 4 * 1024 * 1024) {
			const options: Parameters<typeof uploadFile>[2] = { parentId: target.parentId, name: target.name };
			if (target.base !== undefined) options.baseVersionId = target.base;
			return uploadFile(this.client, new Blob([bytes]), options);
		}
		// If-None-Match: * asks the server to keep a new file from replacing one that took its name meanwhile (where supported).
		const headers: Record<string, string> = target.base === undefined ? { "If-None-Match": "*" } : { "If-Match": target.base };
		return this.client.json<CommitResult>("PUT", "/v1/files/content", {
			query: { parent_id: target.parentId, name: target.name },
			body: bytes,
			headers,
		});
	}
}
