/// <reference types="node" />
/**
 * Two real `drive sync --watch` clients and the API as a third writer, on
 * one remote folder, driven by a seeded random script (issue 17, "Must
 * show"; the commands' contract is /work/notes/sync-contract.md).
 *
 * Per seed: a fresh account; clients A and B, each with a config directory
 * of its own (`drive login --device "laptop A"`), both talking to the stack
 * through a loopback TCP proxy; each runs `drive sync <dir> /Sync --init
 * --watch --json` as a child process. The script (test/support/sync-script.ts)
 * creates files (1–16 KiB, and 6–12 MiB ones that go through upload
 * sessions), edits, renames (case-only ones too), moves, makes folders and
 * deletes, on A's folder, B's folder and through the API, in small batches;
 * some batches end with a wait for quiescence, others run on. Two edits of
 * one file on A and B in the same tick, and an edit against a delete, make
 * conflicts. Faults, once per seed: A or B is killed with SIGKILL while it
 * uploads a large file (on its `progress` event) and started again, and the
 * proxy drops every connection and refuses new ones for a few seconds.
 *
 * Quiescence (no sleeps decide anything; a generous deadline only fails the
 * test): both clients' last round ended with an `idle` event whose cursor is
 * the server's latest (`GET /v1/changes/latest`), and the trees of A, B and
 * the remote folder are equal (paths, types, SHA-256; `.drive/` left out).
 * Deletions held back by the mass-delete guard are confirmed as a user
 * would: that client is restarted with `--force`.
 *
 * At the end:
 * - A == B == remote;
 * - `drive status --json` of each folder lists no problem and no held deletes;
 * - nothing is lost, by two rules (see {@link checkNothingLost}).
 *
 * Knobs: SYNC_SEEDS (default 20) seeds of SYNC_OPS (default 12) ops each,
 * SYNC_PARALLEL (default 3) seeds at a time; SYNC_SEED=<n> runs seed n only
 * (the failure message prints the seed, this command and the op script with
 * what each op did); SYNC_VERBOSE=1 prints each script and what it did; SYNC_QUIESCE_MS (default 120000) is the hang guard of a
 * wait for quiescence. A soak: SYNC_SEEDS=100 SYNC_OPS=200.
 * The seed fixes the script, not the timing of its run.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { beforeAll, describe, expect, inject, it } from "vitest";
import { PASSWORD, type Reply, type TestUser, type Version } from "../support/harness";
import { generate, sha256Of, stackHarness } from "../support/stack";
import {
	ApiWriter,
	hashesUnder,
	LocalTree,
	LocalWriter,
	remoteTree,
	SyncChild,
	treeDiff,
	type Outcome,
	type Tree,
} from "../support/sync-clients";
import { decodeJournalCursor } from "../../src/shared/journal";
import { drive } from "../support/cli";
import { formatScript, generateScript, Model, opsOf, type Op, type Script, type Step, type Writer } from "../support/sync-script";
import { TcpProxy } from "../support/tcp-proxy";

const h = stackHarness();
const SEEDS = process.env.SYNC_SEED !== undefined ? [Number(process.env.SYNC_SEED)] : range(Number(process.env.SYNC_SEEDS ?? 20));
const OPS = Number(process.env.SYNC_OPS ?? 12);
const PARALLEL = Number(process.env.SYNC_PARALLEL ?? 3);
const QUIESCE_MS = Number(process.env.SYNC_QUIESCE_MS ?? 120_000);
/** How long the proxy stays down at most; it comes back sooner once both clients reported the outage. */
const OUTAGE_MS = 2_000;
const REMOTE = "/Sync";

function range(n: number): number[] {
	return Array.from({ length: n }, (_, k) => k + 1);
}

/** At most `n` seeds run at once (each is two node processes and a stream of requests). */
class Slots {
	#free: number;
	#queue: (() => void)[] = [];
	constructor(n: number) {
		this.#free = n;
	}
	async run<T>(work: () => Promise<T>): Promise<T> {
		if (this.#free > 0) this.#free--;
		else await new Promise<void>((resolve) => this.#queue.push(resolve));
		try {
			return await work();
		} finally {
			const next = this.#queue.shift();
			if (next !== undefined) next();
			else this.#free++;
		}
	}
}
const slots = new Slots(PARALLEL);

type Local = "A" | "B";

/** A content write that was applied: its hash must survive (see {@link checkNothingLost}). */
interface Written {
	op: Op & { t: "create" | "edit" };
	hash: string;
	window: number;
	order: number;
}

/** An op that was applied, in the order applied, with the window it ran in. */
interface Applied {
	op: Op;
	window: number;
	order: number;
}

/** One seed's world: an account, the proxy, two clients, three writers, and what they did. */
class World {
	readonly children: Record<Local, SyncChild>;
	readonly trees: Record<Local, LocalTree>;
	readonly locals: Record<Local, LocalWriter>;
	readonly api: ApiWriter;
	readonly written: Written[] = [];
	readonly applied: Applied[] = [];
	readonly outcome = new Map<number, string>();
	/** Deletions the mass-delete guard held back, each answered with a restart with --force. */
	readonly forced: string[] = [];
	/** Windows end at each wait for quiescence. */
	window = 0;
	#order = 0;

	private constructor(
		readonly seed: number,
		readonly user: TestUser,
		readonly remoteId: string,
		readonly proxy: TcpProxy,
		readonly base: string,
		configs: Record<Local, string>,
	) {
		const dir = (name: Local) => join(base, name);
		this.children = { A: new SyncChild("A", dir("A"), configs.A, REMOTE), B: new SyncChild("B", dir("B"), configs.B, REMOTE) };
		this.trees = { A: new LocalTree(dir("A")), B: new LocalTree(dir("B")) };
		this.locals = { A: new LocalWriter(dir("A")), B: new LocalWriter(dir("B")) };
		this.api = new ApiWriter(h, user, remoteId);
	}

	/** A fresh account with the remote folder, the proxy, and A and B signed in through it (not started). */
	static async create(seed: number): Promise<World> {
		const user = await h.signup("api writer");
		const remote = await h.mkdir(user, user.rootId, REMOTE.slice(1));
		const proxy = await TcpProxy.start(inject("baseUrl"));
		const base = mkdtempSync(join(tmpdir(), `drive-sync-${seed}-`));
		const configs = { A: join(base, "config-A"), B: join(base, "config-B") };
		for (const name of ["A", "B"] as const) {
			mkdirSync(join(base, name));
			const login = await drive(
				configs[name],
				["login", "--email", user.email, "--password-stdin", "--device", `laptop ${name}`, "--json"],
				`${PASSWORD}\n`,
				{ DRIVE_SERVER: proxy.url },
			);
			if (login.code !== 0) throw new Error(`drive login for ${name} exited ${login.code}: ${login.stderr}`);
		}
		return new World(seed, user, remote.id, proxy, base, configs);
	}

	/** Stops what is still running and removes the folders. */
	async dispose(): Promise<void> {
		await Promise.all(Object.values(this.children).map((c) => c.kill("SIGKILL")));
		await this.proxy.close();
		rmSync(this.base, { recursive: true, force: true });
	}

	/** The bytes op `i` writes. */
	content(op: Op & { size: number }): Buffer {
		return generate(op.size, `${this.seed}:${op.i}`);
	}

	/** Applies one step: the local ops in the same tick (in order), then the API's. */
	async applyStep(step: Step): Promise<void> {
		const results: [Op, Outcome, Buffer | undefined][] = [];
		const contents = new Map(step.map((op) => [op.i, op.t === "create" || op.t === "edit" ? this.content(op) : undefined]));
		for (const op of step)
			if (op.w !== "api") results.push([op, this.locals[op.w as Local].apply(op, contents.get(op.i)), contents.get(op.i)]);
		for (const op of step) if (op.w === "api") results.push([op, await this.api.apply(op, contents.get(op.i)), contents.get(op.i)]);
		for (const [op, outcome, content] of results) {
			this.outcome.set(op.i, outcome);
			for (const child of Object.values(this.children))
				child.note(`#${op.i} ${op.w} ${op.t} ${op.t === "move" ? `${op.from} -> ${op.to}` : op.path}: ${outcome}`);
			if (outcome !== "ok") continue;
			const order = this.#order++;
			this.applied.push({ op, window: this.window, order });
			if ((op.t === "create" || op.t === "edit") && content !== undefined)
				this.written.push({ op, hash: sha256Of(content), window: this.window, order });
		}
	}

	/** Runs a script's batches, with its faults; waits for quiescence where the script says. */
	async run(script: Script): Promise<void> {
		for (const [n, batch] of script.batches.entries()) {
			if (batch.drop) {
				await this.proxy.drop();
				for (const child of Object.values(this.children)) child.note("proxy dropped");
			}
			const dropMarks = { A: this.children.A.events.length, B: this.children.B.events.length };
			for (const step of batch.steps) {
				const marks = { A: this.children.A.events.length, B: this.children.B.events.length };
				await this.applyStep(step);
				const kill = step.find((op) => op.i === script.killAt);
				if (kill !== undefined && this.outcome.get(kill.i) === "ok" && kill.t === "create")
					await this.killDuringUpload(kill, marks[kill.w as Local]);
			}
			if (batch.drop) {
				await this.outage(dropMarks);
				await this.proxy.restore();
				for (const child of Object.values(this.children)) child.note("proxy restored");
			}
			if (batch.quiesce) {
				await this.quiescence(`after batch ${n}`);
				this.window++;
			}
		}
	}

	/** SIGKILL to the client that uploads `op`'s file, on its first upload progress event for it; then starts it again. */
	async killDuringUpload(op: Op & { t: "create" }, from: number): Promise<void> {
		const child = this.children[op.w as Local];
		await child.waitFor(
			`${child.name}'s upload of ${op.path}`,
			(e) => e.event === "progress" && e.kind === "upload" && e.path === op.path,
			QUIESCE_MS,
			from,
		);
		await child.kill("SIGKILL");
		child.note(`SIGKILL during the upload of ${op.path}`);
		this.outcome.set(op.i, "ok, uploader killed mid-upload");
		child.start();
		// Linked again before the script goes on, so a later proxy drop never lands in its start-up (the offline start has a test of its own).
		await child.waitFor(`${child.name} to start again`, (e) => e.event === "started", QUIESCE_MS);
	}

	/** The length of the outage: until both clients reported an error since the drop, at most {@link OUTAGE_MS}. */
	async outage(marks: Record<Local, number>): Promise<void> {
		const until = Date.now() + OUTAGE_MS;
		const reported = (name: Local) => this.children[name].events.slice(marks[name]).some((e) => e.event === "error");
		while (Date.now() < until && !(reported("A") && reported("B"))) {
			await Promise.race([this.children.A.changed(until - Date.now()), this.children.B.changed(until - Date.now())]);
		}
	}

	/**
	 * Waits until the clients in `who` ended a round idle at the server's
	 * latest cursor and their trees equal the remote one; answers that tree.
	 */
	async quiescence(what: string, who: readonly Local[] = ["A", "B"]): Promise<Tree> {
		const guard = Date.now() + QUIESCE_MS;
		let state = "";
		for (;;) {
			for (const name of who) {
				const crashed = this.children[name].crashed;
				if (crashed !== null) throw new Error(`${what}: ${crashed}\n${this.children[name].tail()}`);
			}
			// The mass-delete guard held deletions back (a script may delete most of a tree): the user's answer is --force.
			for (const name of who) {
				const idle = this.children[name].lastIdle();
				if (idle !== null && idle.held !== null && idle.held !== undefined) {
					this.children[name].note(`held deletions ${JSON.stringify(idle.held)}: restarting with --force`);
					this.forced.push(`${name}: ${JSON.stringify(idle.held)}`);
					await this.children[name].kill("SIGTERM");
					this.children[name].start(["--force"]);
				}
			}
			const latest = await h.latest(this.user);
			const cursors = who.map((name) => this.children[name].idleCursor());
			if (cursors.every((c) => c !== null && seqOf(c) === seqOf(latest))) {
				const remote = await remoteTree(h, this.user, this.remoteId);
				const trees: Record<string, Tree> = { remote };
				let complete = true;
				for (const name of who) {
					const tree = this.trees[name].snapshot();
					if (tree === null) complete = false;
					else trees[name] = tree;
				}
				if (complete) {
					const diff = treeDiff(trees);
					if (diff.length === 0) return remote;
					state = `idle at the latest cursor, but the trees differ:\n${diff.join("\n")}`;
				}
			} else state = `idle cursors ${who.map((name, k) => `${name}=${cursors[k]}`).join(" ")}, latest ${latest}`;
			if (Date.now() > guard) {
				const tails = who.map((name) => `--- ${name}:\n${this.children[name].tail()}`).join("\n");
				throw new Error(`${what}: no quiescence within ${QUIESCE_MS} ms (hang guard): ${state}\n${tails}`);
			}
			await Promise.race(who.map((name) => this.children[name].changed(500)));
		}
	}

	/** What the run did, in numbers. */
	summary(): string {
		const events = (name: Local) => this.children[name].history.filter((l) => l.includes('"event":"action"')).length;
		return `applied ${this.applied.length} ops, ${this.written.length} writes; actions: A ${events("A")}, B ${events("B")}; proxy connections ${this.proxy.accepted}; forced: ${this.forced.join(", ") || "none"}; starts: A ${this.children.A.starts}, B ${this.children.B.starts}`;
	}

	/** `drive status --json` of a client's folder. */
	async status(name: Local): Promise<{ state: string; problems: unknown[]; held: unknown }> {
		const child = this.children[name];
		const run = await drive(child.config, ["status", child.dir, "--json"]);
		if (run.code !== 0) throw new Error(`drive status of ${name} exited ${run.code}: ${run.stderr}`);
		return JSON.parse(run.stdout) as { state: string; problems: unknown[]; held: unknown };
	}

	/**
	 * Nothing lost, by two rules.
	 *
	 * 1. Every content written and applied (by A, B or the API) is still
	 *    somewhere: the head of a live file in the remote folder (conflicted
	 *    copies included), a version of any file the journal ever named (live
	 *    or in the server's trash; versions of a trashed file stay listed), or
	 *    a file in A's or B's `.drive/trash/`. Exempt: a local write that the
	 *    same client overwrote or deleted again in the same window (before
	 *    quiescence), since it may never have been uploaded — the user
	 *    replaced it themselves.
	 * 2. The last applied write of every file the script leaves alive is the
	 *    head of a live file (its own or a conflicted copy), unless a delete
	 *    that may have reached it (see Op.affects) was applied after it.
	 * 3. Edit against delete: when A and B edit and delete one file in the
	 *    same tick, the deleting client never saw the edit, so the edit wins
	 *    (ADR 0009, sync-contract): its content is the head of a live file,
	 *    unless a folder that held the file was deleted later.
	 */
	async checkNothingLost(script: Script, remote: Tree): Promise<void> {
		const heads = new Set([...remote.values()].filter((v) => v.startsWith("file ")).map((v) => v.slice(5)));
		const fileIds = new Set<string>();
		for (let cursor: string | null = null; ;) {
			const page = await h.page(this.user, cursor, 1000);
			for (const entry of page.entries) if (entry.node.type === "file") fileIds.add(entry.node.id);
			cursor = page.cursor;
			if (!page.has_more) break;
		}
		const versions = new Set<string>();
		for (const id of fileIds) {
			for (let cursor: string | null = null; ;) {
				const query: string = cursor === null ? "" : `&cursor=${encodeURIComponent(cursor)}`;
				const reply: Reply<{ items: Version[]; next_cursor: string | null }> = await h.call<{
					items: Version[];
					next_cursor: string | null;
				}>(`/v1/files/${id}/versions?limit=100${query}`, {
					token: this.user.token,
				});
				if (reply.status !== 200) throw new Error(`versions of ${id}: ${reply.status} ${reply.text}`);
				for (const v of reply.body.items) versions.add(v.content_hash);
				cursor = reply.body.next_cursor;
				if (cursor === null) break;
			}
		}
		const trash = new Set([
			...hashesUnder(join(this.base, "A", ".drive", "trash")),
			...hashesUnder(join(this.base, "B", ".drive", "trash")),
		]);
		const lost: string[] = [];
		for (const w of this.written) {
			if (heads.has(w.hash) || versions.has(w.hash) || trash.has(w.hash)) continue;
			const replacedByItsWriter =
				w.op.w !== "api" &&
				this.applied.some(
					(a) =>
						a.order > w.order &&
						a.window === w.window &&
						a.op.w === w.op.w &&
						(((a.op.t === "edit" || a.op.t === "create") && a.op.file === w.op.file) ||
							(a.op.t === "delete" && a.op.affects.includes(w.op.file))),
				);
			if (!replacedByItsWriter)
				lost.push(`#${w.op.i} ${w.op.w} ${w.op.t} ${w.op.path} (${w.hash.slice(0, 8)}): in no head, version or local trash`);
		}
		const notHead: string[] = [];
		for (const file of script.alive) {
			const last = this.written.filter((w) => w.op.file === file).at(-1);
			if (last === undefined || heads.has(last.hash)) continue;
			const deletedSince = this.applied.some((a) => a.order > last.order && a.op.t === "delete" && a.op.affects.includes(file));
			if (!deletedSince)
				notHead.push(
					`#${last.op.i} ${last.op.w} ${last.op.t} ${last.op.path} (${last.hash.slice(0, 8)}): the file's last write is no head`,
				);
		}
		const deletedOverEdits: string[] = [];
		for (const step of script.batches.flatMap((b) => b.steps)) {
			const edit = step.find((op) => op.t === "edit");
			const del = step.find((op) => op.t === "delete");
			if (edit === undefined || del === undefined || del.t !== "delete" || edit.w === "api" || del.w === "api") continue;
			const written = this.written.find((w) => w.op.i === edit.i);
			const deleted = this.applied.find((a) => a.op.i === del.i);
			if (written === undefined || deleted === undefined || heads.has(written.hash)) continue;
			const folderDeletedLater = this.applied.some(
				(a) => a.order > deleted.order && a.op.t === "delete" && del.ancestors.includes(a.op.node),
			);
			if (!folderDeletedLater)
				deletedOverEdits.push(
					`#${edit.i} ${edit.w} edit ${edit.path} (${written.hash.slice(0, 8)}) against #${del.i} ${del.w} delete: the edit is no head`,
				);
		}
		const failures = [
			...lost.map((l) => `lost: ${l}`),
			...deletedOverEdits.map((l) => `edit lost to a delete that never saw it: ${l}`),
			...notHead.map((l) => `not a head: ${l}`),
		];
		if (failures.length > 0) throw new Error(`nothing lost? no:\n${failures.join("\n")}`);
	}

	/** The end: quiescence, equal trees, clean status, nothing lost, and a clean stop. */
	async verify(script: Script): Promise<void> {
		const remote = await this.quiescence("at the end");
		const trees = { A: this.trees.A.snapshot(), B: this.trees.B.snapshot() };
		expect(trees.A).toEqual(remote);
		expect(trees.B).toEqual(remote);
		for (const name of ["A", "B"] as const) {
			const status = await this.status(name);
			expect(status.problems, `${name}'s problems`).toEqual([]);
			expect(status.held ?? null, `${name}'s held deletes`).toBeNull();
		}
		await this.checkNothingLost(script, remote);
		for (const name of ["A", "B"] as const) {
			const exit = await this.children[name].kill("SIGTERM");
			expect(exit.code, `${name}'s exit code after SIGTERM`).toBe(0);
		}
	}
}

/** Runs `work` in a fresh world; a failure names the seed, how to replay it, and the script with each op's outcome. */
async function inWorld(seed: number, script: Script, work: (world: World) => Promise<void>): Promise<void> {
	const world = await World.create(seed);
	try {
		await work(world);
		if (process.env.SYNC_VERBOSE === "1")
			console.log(
				`${formatScript(script, world.outcome)}\n${world.summary()}\n--- A:\n${world.children.A.tail(400, true)}\n--- B:\n${world.children.B.tail(400, true)}`,
			);
	} catch (err) {
		const message = err instanceof Error ? err.message : String(err);
		// Every line of both clients, beside the test's ops, for reading the failure in full.
		const log = join(tmpdir(), `drive-sync-seed-${seed}-${Date.now()}.log`);
		writeFileSync(
			log,
			`${formatScript(script, world.outcome)}\n--- A:\n${world.children.A.tail(Infinity, true)}\n--- B:\n${world.children.B.tail(Infinity, true)}\n`,
		);
		throw new Error(
			[
				`seed ${seed} failed: ${message}`,
				`both clients' whole output: ${log}`,
				`replay: SYNC_SEED=${seed} SYNC_OPS=${OPS} npx vitest run --project e2e test/e2e/sync-random.e2e.test.ts`,
				formatScript(script, world.outcome),
				`--- A's last lines:\n${world.children.A.tail(30)}`,
				`--- B's last lines:\n${world.children.B.tail(30)}`,
			].join("\n"),
			{ cause: err },
		);
	} finally {
		await world.dispose();
	}
}

beforeAll(async () => {
	// The first run bundles src/cli; do it once before the clients start side by side.
	const run = await drive(mkdtempSync(join(tmpdir(), "drive-sync-build-")), ["--version"]);
	expect(run.code, run.stderr).toBe(0);
}, 300_000);

describe("the randomized test's own parts", () => {
	it("generates the same script for a seed, with every kind of op and both faults", () => {
		const a = generateScript({ seed: 7, ops: 200, faults: true, large: true });
		expect(generateScript({ seed: 7, ops: 200, faults: true, large: true })).toEqual(a);
		expect(generateScript({ seed: 8, ops: 200, faults: true, large: true })).not.toEqual(a);
		const ops = opsOf(a);
		const kinds = new Set(ops.map((op) => (op.t === "move" ? op.kind : op.t)));
		expect([...kinds].sort()).toEqual(["case", "create", "delete", "edit", "mkdir", "move", "rename"]);
		expect(new Set(ops.map((op) => op.w))).toEqual(new Set(["A", "B", "api"]));
		const pairs = a.batches.flatMap((b) => b.steps).filter((s) => s.length === 2);
		expect(pairs.some((s) => s.every((op) => op.t === "edit"))).toBe(true);
		expect(pairs.some((s) => s.some((op) => op.t === "delete"))).toBe(true);
		const kill = ops.find((op) => op.i === a.killAt);
		expect(kill).toMatchObject({ t: "create" });
		expect(kill?.w).not.toBe("api");
		expect((kill as Op & { size: number }).size).toBeGreaterThan(6 * 1024 * 1024 - 1);
		expect(a.batches.filter((b) => b.drop)).toHaveLength(1);
		expect(a.batches.at(-1)?.quiesce).toBe(true);
		// Indices are unique and in order: they seed each write's content.
		expect(ops.map((op) => op.i)).toEqual(range(ops.length).map((k) => k - 1));
	});

	it("drops every connection through the proxy and refuses new ones until restored", async () => {
		const proxy = await TcpProxy.start(inject("baseUrl"));
		try {
			expect((await fetch(`${proxy.url}/v1/openapi.json`)).status).toBe(200);
			const user = await h.signup();
			// A long poll holds its connection open: the drop must break it.
			const sent = proxy.bytesUp;
			const held = fetch(`${proxy.url}/v1/changes/longpoll?cursor=${encodeURIComponent(await h.latest(user))}&timeout=60`, {
				headers: { Authorization: `Bearer ${user.token}` },
			}).then(
				async (res) => `answered ${res.status} ${await res.text()}`,
				(err: unknown) => `failed: ${String(err)}`,
			);
			await eventuallyTrue("the long poll to go through the proxy", () => proxy.bytesUp > sent);
			await proxy.drop();
			expect(await held).toMatch(/^failed/);
			await expect(fetch(`${proxy.url}/v1/openapi.json`)).rejects.toThrow(/fetch failed/);
			await proxy.restore();
			expect((await fetch(`${proxy.url}/v1/openapi.json`)).status).toBe(200);
		} finally {
			await proxy.close();
		}
	});

	it("writes a script the same way to a local folder and through the API, and snapshots both alike", async () => {
		const user = await h.signup();
		const remote = await h.mkdir(user, user.rootId, "Mirror");
		const dir = mkdtempSync(join(tmpdir(), "drive-mirror-"));
		try {
			const local = new LocalWriter(dir);
			const api = new ApiWriter(h, user, remote.id);
			const script = generateScript({ seed: 3, ops: 60, writers: ["A"] });
			let applied = 0;
			for (const op of opsOf(script)) {
				const content = op.t === "create" || op.t === "edit" ? generate(op.size, `mirror:${op.i}`) : undefined;
				const there = local.apply(op, content);
				const here = await api.apply(op, content);
				expect(here, `#${op.i} ${JSON.stringify(op)}`).toBe(there);
				if (there === "ok") applied++;
			}
			expect(applied).toBe(opsOf(script).length);
			const tree = new LocalTree(dir).snapshot();
			expect(tree).not.toBeNull();
			expect(treeDiff({ local: tree as Tree, remote: await remoteTree(h, user, remote.id) })).toEqual([]);
			expect((tree as Tree).size).toBeGreaterThan(5);
		} finally {
			rmSync(dir, { recursive: true, force: true });
		}
	});
});

describe.concurrent("two drive sync --watch clients and the API, seeded", () => {
	for (const seed of SEEDS) {
		it(`seed ${seed}`, () =>
			slots.run(async () => {
				const script = generateScript({ seed, ops: OPS, faults: true, large: true });
				await inWorld(seed, script, async (world) => {
					world.children.A.start();
					world.children.B.start();
					await world.quiescence("at the start");
					await world.run(script);
					await world.verify(script);
				});
			}));
	}
});

describe("a client that was stopped", () => {
	it("comes back after 100 changes on each side (its own folder, the other client, the API) and all converge", async () => {
		const seed = Number(process.env.SYNC_SEED ?? 1000);
		const model = new Model();
		// A base everyone has: files in a few folders, made through the API.
		const base = generateScript({ seed, ops: 30, writers: ["api"], quiesce: 0, from: model });
		// Then, in one window while B is stopped: 100 changes each by A (its client running), the API and B (offline).
		const offline = generateScript({ seed: seed + 1, ops: 300, writers: ["A", "B", "api"], quiesce: 0, batchSteps: 10, from: model });
		const script: Script = { seed, batches: [...base.batches, ...offline.batches], killAt: null, alive: offline.alive };
		await inWorld(seed, script, async (world) => {
			world.children.A.start();
			world.children.B.start();
			for (const step of base.batches.flatMap((b) => b.steps)) await world.applyStep(step);
			await world.quiescence("after the base");
			world.window++;
			expect((await world.children.B.kill("SIGTERM")).code).toBe(0);
			for (const step of offline.batches.flatMap((b) => b.steps)) await world.applyStep(step);
			const by = (w: Writer) => opsOf(offline).filter((op) => op.w === w && world.outcome.get(op.i) === "ok").length;
			// Most ops apply (a few meet a name taken or a parent gone); the count is printed on failure with the script.
			expect({ A: by("A") >= 80, B: by("B") >= 80, api: by("api") >= 80 }, `applied: A ${by("A")}, B ${by("B")}, api ${by("api")}`).toEqual(
				{
					A: true,
					B: true,
					api: true,
				},
			);
			await world.quiescence("A alone, B stopped", ["A"]);
			world.children.B.start();
			await world.verify(script);
		});
	});
});

/** A journal cursor's position (cursors are opaque to clients, but two encodings of one position are the same place). */
function seqOf(cursor: string): number | null {
	return decodeJournalCursor(cursor)?.seq ?? null;
}

describe("a client started while the server cannot be reached", () => {
	it("keeps trying, and syncs what changed meanwhile once the server is back", async () => {
		const seed = 2000;
		const script: Script = { seed, batches: [], killAt: null, alive: [] };
		await inWorld(seed, script, async (world) => {
			await world.proxy.refuse();
			world.children.A.note("proxy refusing");
			const data = generate(5000, "offline start");
			writeFileSync(join(world.children.A.dir, "written offline.txt"), data);
			world.children.A.start();
			// The outage lasts for more tries than one request's retries (DriveClient: 5), or until A exits (which the wait below reports).
			await eventuallyTrue("A to try a dozen times", () => world.proxy.refused >= 12 || !world.children.A.running);
			await world.proxy.restore();
			world.children.A.note("proxy restored");
			const remote = await world.quiescence("after the outage", ["A"]);
			expect(remote.get("written offline.txt")).toBe(`file ${sha256Of(data)}`);
			expect((await world.children.A.kill("SIGTERM")).code).toBe(0);
		});
	});
});

/** Waits until `check()` holds, polling; fails after the hang guard. */
async function eventuallyTrue(what: string, check: () => boolean): Promise<void> {
	const guard = Date.now() + 60_000;
	while (!check()) {
		if (Date.now() > guard) throw new Error(`${what}: not so within 60 s (hang guard)`);
		await new Promise((resolve) => setTimeout(resolve, 20));
	}
}
