// The sync client (`drive sync`, src/sync/engine) against a real local
// stack, each figure beside `rsync` between two local folders as the floor:
// the first sync of 10,000 small files up and down, a 1-byte edit of a
// 100 MiB file reaching the other client, a change on one watching client
// appearing on the other, and a watching client's CPU and memory while idle
// over 10,000 files. Every client is a `drive` process of the snapshot's
// CLI (bin/drive.mjs) with its own config directory.
import { spawn, spawnSync } from "node:child_process";
import { createCipheriv, createHash, randomBytes } from "node:crypto";
import { closeSync, cpSync, mkdirSync, openSync, readdirSync, readFileSync, readSync, rmSync, writeFileSync, writeSync } from "node:fs";
import { connect, createServer } from "node:net";
import { join, relative } from "node:path";
import { performance } from "node:perf_hooks";
import { expectStatus, PASSWORD, signup } from "../lib/http.mjs";
import { cpuDuring, cpuMsOf, memoryOf } from "../lib/proc.mjs";
import { summarize } from "../lib/stats.mjs";

const KiB = 1024;
const MiB = 1024 * KiB;

const DEFAULTS = {
	/** Files of the first sync, sizes uniform in [minBytes, maxBytes]. */
	files: 10_000,
	/** Top folders, each with `subfolders` folders; files go to the leaves at random. */
	topFolders: 20,
	subfolders: 15,
	minBytes: 1 * KiB,
	maxBytes: 16 * KiB,
	/** The file whose middle byte is edited. */
	bigBytes: 100 * MiB,
	/** Change latency: timed samples of each kind, after `warmup` untimed ones. */
	latencySamples: 50,
	warmup: 5,
	/** Idle: seconds after the first idle event before the window, and the window. */
	settleSeconds: 5,
	idleSeconds: 30,
	seed: 17,
};

/** Smaller sizes and fewer samples: a check that every path runs, not figures. */
const QUICK = {
	files: 500,
	topFolders: 4,
	subfolders: 5,
	bigBytes: 10 * MiB,
	latencySamples: 10,
	warmup: 2,
	settleSeconds: 2,
	idleSeconds: 5,
};

/** Hang guard of one awaited event or command. */
const WAIT_MS = 30 * 60_000;
const EVENT_WAIT_MS = 60_000;

/**
 * @param {import("../lib/stack.mjs").Context} ctx
 */
export async function measure(ctx, options = {}) {
	const o = { ...DEFAULTS, ...(ctx.quick ? QUICK : {}), ...options };
	const log = (line) => ctx.log(`syncclient: ${line}`);
	const work = join(ctx.tmp, "syncclient");
	rmSync(work, { recursive: true, force: true });
	mkdirSync(work, { recursive: true });
	const cli = join(ctx.tree, "bin", "drive.mjs");
	const procs = new Set();
	const killAll = () => {
		for (const child of procs) if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
	};
	process.once("exit", killAll);
	const stack = await ctx.startStack();
	const drive = new Drive(cli, work, procs);
	const proxy = await byteCounter(stack.url);
	try {
		const rsync = rsyncVersion();
		if (rsync === null) log("rsync is not installed: the floors are left out (apt-get install rsync)");

		// ---- 1. first sync of many small files, up (A) and down (B)
		log(`first sync: generating ${o.files} files in ${o.topFolders * (o.subfolders + 1)} folders`);
		const bulkUser = await signup(stack.url, "syncclient-bulk");
		await makeFolder(stack.url, bulkUser, "bulk");
		const a = join(work, "A");
		const b = join(work, "B");
		const tree = generateTree(a, o);
		const rsyncMs = rsync === null ? null : rsyncTree(a, join(work, "rsync-dst"));
		const clientA = await drive.login("A", stack.url, bulkUser.email);
		const clientB = await drive.login("B", stack.url, bulkUser.email);
		log(`first sync: up (rsync -a took ${rsyncMs === null ? "n/a" : `${(rsyncMs / 1000).toFixed(2)} s`})`);
		const up = await timedSync(drive, clientA, [a, "/bulk", "--init"], stack);
		log(`first sync: up took ${(up.ms / 1000).toFixed(1)} s (${up.actions.upload ?? 0} uploads); down`);
		const down = await timedSync(drive, clientB, [b, "/bulk", "--init"], stack);
		log(`first sync: down took ${(down.ms / 1000).toFixed(1)} s (${down.actions.download ?? 0} downloads)`);
		const same = sameTree(a, b);
		if (!same.ok) throw new Error(`first sync: B differs from A: ${same.why}`);
		const firstSync = { files: tree.files, folders: tree.folders, bytes: tree.bytes, rsyncMs, up, down };

		// ---- 4. idle: B watching the 10,000 files it just downloaded
		log(`idle: B watching ${o.files} files`);
		const idle = await measureIdle(drive, clientB, b, o);
		// What a rescan costs: one run with nothing to do over the same files (start-up, pull, scan, empty plan).
		const noop = await timedSync(drive, clientB, [b], stack);
		idle.noopRun = { ms: noop.ms, cpuMs: noop.clientCpuMs, actions: noop.done?.actions ?? null };
		log(`idle: ${(idle.cpuMs / 1000).toFixed(2)} CPU s in ${o.idleSeconds} s, RSS ${(idle.rss.max / 1e6).toFixed(0)} MB`);

		// ---- 2. a 1-byte edit of a big file, through the byte-counting proxy
		log(`edit: ${o.bigBytes / MiB} MiB file`);
		const bigUser = await signup(stack.url, "syncclient-big");
		await makeFolder(stack.url, bigUser, "big");
		const ea = join(work, "EA");
		const eb = join(work, "EB");
		mkdirSync(ea, { recursive: true });
		const bigFile = join(ea, "big.bin");
		writeRandom(bigFile, o.bigBytes);
		const clientEA = await drive.login("EA", proxy.url, bigUser.email);
		const clientEB = await drive.login("EB", proxy.url, bigUser.email);
		const viaProxy = async (client, args) => {
			proxy.reset();
			const run = await timedSync(drive, client, args, stack);
			return { ...run, wire: proxy.counts() };
		};
		const initialUp = await viaProxy(clientEA, [ea, "/big", "--init"]);
		const initialDown = await viaProxy(clientEB, [eb, "/big", "--init"]);
		const rsyncDir = join(work, "rsync-big");
		mkdirSync(rsyncDir, { recursive: true });
		if (rsync !== null) cpSync(bigFile, join(rsyncDir, "big.bin"));
		const at = Math.floor(o.bigBytes / 2);
		flipByte(bigFile, at);
		log("edit: one byte changed; A syncs, then B");
		const editUp = await viaProxy(clientEA, [ea]);
		const editDown = await viaProxy(clientEB, [eb]);
		if (sha256File(join(eb, "big.bin")) !== sha256File(bigFile)) throw new Error("edit: B's copy differs from A's after the sync");
		const rsyncEdit = rsync === null ? null : rsyncDelta(bigFile, join(rsyncDir, "big.bin"));
		rmSync(rsyncDir, { recursive: true, force: true });
		const edit = { bytes: o.bigBytes, offset: at, initialUp, initialDown, up: editUp, down: editDown, rsync: rsyncEdit };
		log(
			`edit: up ${editUp.transferBytes.upload ?? 0} block bytes (${editUp.wire.up} on the wire), down ${editDown.transferBytes.download ?? 0} bytes (${editDown.wire.down} on the wire)`,
		);

		// ---- 3. change latency between two watching clients
		log(`latency: ${o.latencySamples} samples of each kind`);
		const latency = await measureLatency(drive, stack.url, work, o, log);

		return { settings: { ...o }, rsync, firstSync, edit, latency, idle };
	} finally {
		await drive.stopAll();
		killAll();
		process.off("exit", killAll);
		await proxy.close();
		await stack.stop();
		rmSync(work, { recursive: true, force: true });
	}
}

/** The `drive` processes of the section, each client with its own DRIVE_CONFIG_DIR. */
class Drive {
	constructor(cli, work, procs) {
		this.cli = cli;
		this.work = work;
		this.procs = procs;
	}

	/** Starts `drive args...` for `client`; the child's stdout is read as NDJSON events. */
	spawn(client, args) {
		const child = spawn(process.execPath, [this.cli, ...args], {
			env: { ...process.env, DRIVE_CONFIG_DIR: client.configDir },
			stdio: ["pipe", "pipe", "pipe"],
		});
		this.procs.add(child);
		child.once("exit", () => this.procs.delete(child));
		return child;
	}

	/** Signs a new client (device) in through `server`. */
	async login(name, server, email) {
		const client = { name, configDir: join(this.work, `config-${name}`) };
		const child = this.spawn(client, ["login", "--server", server, "--email", email, "--password-stdin", "--device", `bench ${name}`]);
		child.stdin.end(PASSWORD);
		const { code, stderr } = await finished(child);
		if (code !== 0) throw new Error(`drive login (${name}): exit ${code}: ${stderr}`);
		return client;
	}

	/** `drive sync ... --json` once; resolves with its events (each with the bench's arrival time `at`), exit code and CPU. */
	async run(client, args) {
		const child = this.spawn(client, ["sync", ...args, "--json"]);
		child.stdin.end();
		const events = [];
		lines(child.stdout, (event) => events.push(event));
		// /proc/<pid>/stat is gone once the process is reaped: the last reading before its exit is its CPU.
		let cpu = 0;
		const poll = setInterval(() => {
			try {
				cpu = cpuMsOf(child.pid);
			} catch {
				// Exited between two readings.
			}
		}, 100);
		const { code, stderr } = await finished(child).finally(() => clearInterval(poll));
		if (code !== 0) throw new Error(`drive sync ${args.join(" ")}: exit ${code}: ${stderr.slice(-2000)}`);
		return { events, cpuMs: cpu };
	}

	/** `drive sync <dir> --watch --json` until stopped. */
	watch(client, args, env = {}) {
		const child = spawn(process.execPath, [this.cli, "sync", ...args, "--watch", "--json"], {
			env: { ...process.env, DRIVE_CONFIG_DIR: client.configDir, ...env },
			stdio: ["ignore", "pipe", "pipe"],
		});
		this.procs.add(child);
		child.once("exit", () => this.procs.delete(child));
		return new Watcher(child);
	}

	/** SIGTERM to every child still running, SIGKILL after 5 s. */
	async stopAll() {
		await Promise.all(
			[...this.procs].map(async (child) => {
				if (child.exitCode !== null || child.signalCode !== null) return;
				const timer = setTimeout(() => child.kill("SIGKILL"), 5000);
				child.kill("SIGTERM");
				await finished(child);
				clearTimeout(timer);
			}),
		);
	}
}

/** A `drive sync --watch --json` process: its events as they arrive, and waits on them. */
class Watcher {
	constructor(child) {
		this.child = child;
		this.events = [];
		this.waiters = [];
		this.stderr = "";
		child.stderr.on("data", (d) => (this.stderr = (this.stderr + d).slice(-4000)));
		lines(child.stdout, (event) => {
			this.events.push(event);
			for (const w of [...this.waiters]) if (w.match(event)) w.resolve(event);
		});
		this.exited = finished(child);
	}

	/** The first event from now on that `match` accepts (with its arrival time `at`); rejects after `ms`. */
	next(match, ms = EVENT_WAIT_MS) {
		return new Promise((resolve, reject) => {
			const w = {
				match,
				resolve: (event) => {
					clearTimeout(timer);
					this.waiters.splice(this.waiters.indexOf(w), 1);
					resolve(event);
				},
			};
			const timer = setTimeout(() => {
				this.waiters.splice(this.waiters.indexOf(w), 1);
				reject(new Error(`no matching event within ${ms} ms (pid ${this.child.pid}); stderr: ${this.stderr}`));
			}, ms);
			this.waiters.push(w);
		});
	}

	async stop() {
		if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill("SIGTERM");
		const timer = setTimeout(() => this.child.kill("SIGKILL"), 5000);
		const result = await this.exited;
		clearTimeout(timer);
		return result;
	}
}

/** Calls `onEvent` with each JSON line of `stream`, stamped with its arrival time `at` (performance.now()). */
function lines(stream, onEvent) {
	let rest = "";
	stream.setEncoding("utf8");
	stream.on("data", (chunk) => {
		const at = performance.now();
		rest += chunk;
		let nl;
		while ((nl = rest.indexOf("\n")) >= 0) {
			const line = rest.slice(0, nl);
			rest = rest.slice(nl + 1);
			if (line.trim() === "") continue;
			try {
				onEvent({ ...JSON.parse(line), at });
			} catch {
				// Not an event line.
			}
		}
	});
}

/** Resolves with the exit code and the tail of stderr once `child` has exited. */
function finished(child) {
	let stderr = "";
	child.stderr?.on("data", (d) => (stderr = (stderr + d).slice(-8000)));
	if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve({ code: child.exitCode, stderr });
	return new Promise((resolve) => child.once("exit", (code, signal) => resolve({ code: code ?? signal, stderr })));
}

/** One `drive sync` run, timed whole (process start to exit), with its actions counted and the runtime's CPU. */
async function timedSync(drive, client, args, stack) {
	spawnSync("sync");
	const logFrom = stack.log().length;
	const t0 = performance.now();
	const { result, cpu } = await cpuDuring(stack.procs, () => drive.run(client, args));
	const ms = performance.now() - t0;
	const requests = requestsIn(stack.log().slice(logFrom));
	const actions = {};
	const transferBytes = {};
	let firstAction = null;
	for (const e of result.events) {
		if (e.event !== "action") continue;
		firstAction ??= e.at - t0;
		actions[e.kind] = (actions[e.kind] ?? 0) + 1;
		if (typeof e.bytes === "number") transferBytes[e.kind] = (transferBytes[e.kind] ?? 0) + e.bytes;
	}
	const done = result.events.find((e) => e.event === "done") ?? null;
	const problems = result.events.filter((e) => e.event === "problem").length;
	const errors = result.events.filter((e) => e.event === "error").length;
	const plans = result.events.filter((e) => e.event === "plan").length;
	return {
		ms,
		firstActionMs: firstAction,
		actions,
		transferBytes,
		plans,
		problems,
		errors,
		clientCpuMs: result.cpuMs,
		stackCpuMs: cpu,
		requests,
		done: done === null ? null : { actions: done.actions, settled: done.settled, problems: done.problems?.length ?? 0 },
	};
}

/**
 * The requests wrangler dev logged (\`[wrangler:info] GET /v1/... 200 OK (12ms)\`),
 * by method and route (ids and queries left out): how many, and the
 * server-side time they took in all.
 */
function requestsIn(log) {
	const routes = {};
	for (const m of log.matchAll(/\[wrangler:info\] (\S+) (\S+) (\d+)[^(\n]*\((\d+)ms\)/g)) {
		const path = m[2]
			.replace(/\?.*$/, "")
			.replace(/\/[a-z]{3}_[0-9a-z]{20,}/g, "/:id")
			.replace(/\/[0-9a-f]{64}/g, "/:hash");
		const key = `${m[1]} ${path}`;
		const r = (routes[key] ??= { n: 0, ms: 0, statuses: {} });
		r.n++;
		r.ms += Number(m[4]);
		r.statuses[m[3]] = (r.statuses[m[3]] ?? 0) + 1;
	}
	return routes;
}

/** A seeded stream of bytes (AES-256-CTR of zeros): the same tree on every run. */
function seededBytes(seed) {
	const key = createHash("sha256").update(`syncclient ${seed}`).digest();
	const cipher = createCipheriv("aes-256-ctr", key, Buffer.alloc(16));
	return (n) => cipher.update(Buffer.alloc(n));
}

/** mulberry32: seeded sizes and folders. */
function prng(seed) {
	let s = seed >>> 0;
	return () => {
		s = (s + 0x6d2b79f5) >>> 0;
		let t = s;
		t = Math.imul(t ^ (t >>> 15), t | 1);
		t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
		return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
	};
}

/** Writes the first sync's tree into `dir`: folders d00/s00..., files of seeded sizes and content. */
function generateTree(dir, o) {
	const random = prng(o.seed);
	const bytes = seededBytes(o.seed);
	const leaves = [];
	for (let t = 0; t < o.topFolders; t++) {
		const top = `d${String(t).padStart(2, "0")}`;
		for (let s = 0; s < o.subfolders; s++) {
			const leaf = join(dir, top, `s${String(s).padStart(2, "0")}`);
			mkdirSync(leaf, { recursive: true });
			leaves.push(leaf);
		}
	}
	let total = 0;
	for (let i = 0; i < o.files; i++) {
		const size = o.minBytes + Math.floor(random() * (o.maxBytes - o.minBytes + 1));
		const leaf = leaves[Math.floor(random() * leaves.length)];
		writeFileSync(join(leaf, `f${String(i).padStart(5, "0")}.bin`), bytes(size));
		total += size;
	}
	return { files: o.files, folders: o.topFolders * (o.subfolders + 1), bytes: total };
}

/** Every file under `dir` (outside .drive/) by relative path, with its SHA-256. */
function treeOf(dir) {
	const out = new Map();
	const walk = (d) => {
		for (const entry of readdirSync(d, { withFileTypes: true })) {
			const abs = join(d, entry.name);
			const rel = relative(dir, abs);
			if (rel === ".drive") continue;
			if (entry.isDirectory()) {
				out.set(`${rel}/`, "dir");
				walk(abs);
			} else out.set(rel, createHash("sha256").update(readFileSync(abs)).digest("hex"));
		}
	};
	walk(dir);
	return out;
}

function sameTree(a, b) {
	const ta = treeOf(a);
	const tb = treeOf(b);
	if (ta.size !== tb.size) return { ok: false, why: `${ta.size} entries against ${tb.size}` };
	for (const [path, hash] of ta) if (tb.get(path) !== hash) return { ok: false, why: `${path} differs` };
	return { ok: true };
}

async function makeFolder(base, user, name) {
	const res = await fetch(`${base}/v1/folders`, {
		method: "POST",
		headers: { Authorization: `Bearer ${user.token}`, "Content-Type": "application/json" },
		body: JSON.stringify({ parent_id: user.rootId, name }),
	});
	await expectStatus(res, `POST /v1/folders ${name}`, 201);
	return (await res.json()).id;
}

function writeRandom(file, size) {
	const fd = openSync(file, "w");
	try {
		for (let done = 0; done < size; done += 8 * MiB) writeSync(fd, randomBytes(Math.min(8 * MiB, size - done)));
	} finally {
		closeSync(fd);
	}
}

/** Changes the byte at `offset` in place (same size). */
function flipByte(file, offset) {
	const fd = openSync(file, "r+");
	try {
		const one = Buffer.alloc(1);
		readSync(fd, one, 0, 1, offset);
		one[0] ^= 0xff;
		writeSync(fd, one, 0, 1, offset);
	} finally {
		closeSync(fd);
	}
}

function sha256File(file) {
	return createHash("sha256").update(readFileSync(file)).digest("hex");
}

function rsyncVersion() {
	const res = spawnSync("rsync", ["--version"], { encoding: "utf8" });
	return res.status === 0 ? (/version (\S+)/.exec(res.stdout)?.[1] ?? "?") : null;
}

/** `rsync -a src/ dst/` of a whole tree between two local folders, timed; dst is removed after. */
function rsyncTree(src, dst) {
	spawnSync("sync");
	const t0 = performance.now();
	const res = spawnSync("rsync", ["-a", `${src}/`, `${dst}/`], { encoding: "utf8" });
	const ms = performance.now() - t0;
	if (res.status !== 0) throw new Error(`rsync: ${res.stderr}`);
	rmSync(dst, { recursive: true, force: true });
	return ms;
}

/** `rsync -a -I --no-whole-file --stats` of the edited file over the old copy: its delta transfer, timed. */
function rsyncDelta(src, dst) {
	spawnSync("sync");
	const t0 = performance.now();
	// -I: the old copy was made moments ago, so size and mtime (to the second) could look unchanged.
	const res = spawnSync("rsync", ["-a", "-I", "--no-whole-file", "--stats", src, dst], { encoding: "utf8" });
	const ms = performance.now() - t0;
	if (res.status !== 0) throw new Error(`rsync: ${res.stderr}`);
	if (sha256File(src) !== sha256File(dst)) throw new Error("rsync produced other bytes");
	const stat = (name) => Number(new RegExp(`${name}: ([\\d,]+)`).exec(res.stdout)?.[1].replace(/,/g, "") ?? NaN);
	return {
		ms,
		literal: stat("Literal data"),
		matched: stat("Matched data"),
		sent: stat("Total bytes sent"),
		received: stat("Total bytes received"),
	};
}

/**
 * A TCP proxy in front of the stack that counts the bytes each way: what a
 * client really sent and received, requests, block lists and all.
 */
function byteCounter(target) {
	const url = new URL(target);
	let up = 0;
	let down = 0;
	const sockets = new Set();
	const server = createServer((client) => {
		const upstream = connect(Number(url.port), url.hostname);
		for (const s of [client, upstream]) {
			sockets.add(s);
			s.once("close", () => sockets.delete(s));
		}
		client.on("data", (d) => (up += d.length));
		upstream.on("data", (d) => (down += d.length));
		client.pipe(upstream);
		upstream.pipe(client);
		client.on("error", () => upstream.destroy());
		upstream.on("error", () => client.destroy());
	});
	return new Promise((resolve) =>
		server.listen(0, "127.0.0.1", () =>
			resolve({
				url: `http://127.0.0.1:${server.address().port}`,
				reset() {
					up = 0;
					down = 0;
				},
				counts: () => ({ up, down }),
				close() {
					for (const s of sockets) s.destroy();
					return new Promise((r) => server.close(() => r()));
				},
			}),
		),
	);
}

/**
 * B watching its folder: after its first idle event and `settleSeconds`, the
 * CPU it uses over `idleSeconds` and its RSS, beside an idle Node process
 * measured over the same window.
 */
async function measureIdle(drive, client, dir, o) {
	const t0 = performance.now();
	const watcher = drive.watch(client, [dir]);
	const first = await watcher.next((e) => e.event === "idle", WAIT_MS);
	const startupMs = first.at - t0;
	const startupCpuMs = cpuMsOf(watcher.child.pid);
	const floor = spawn(process.execPath, ["-e", "setInterval(() => {}, 1000)"], { stdio: "ignore" });
	drive.procs.add(floor);
	try {
		await sleep(o.settleSeconds * 1000);
		const pids = { drive: watcher.child.pid, floor: floor.pid };
		const cpu0 = { drive: cpuMsOf(pids.drive), floor: cpuMsOf(pids.floor) };
		const seen = watcher.events.length;
		const rss = { drive: [], floor: [] };
		const w0 = performance.now();
		while (performance.now() - w0 < o.idleSeconds * 1000) {
			for (const side of ["drive", "floor"]) rss[side].push(memoryOf(pids[side])?.rss ?? NaN);
			await sleep(1000);
		}
		const windowMs = performance.now() - w0;
		const cpu = { drive: cpuMsOf(pids.drive) - cpu0.drive, floor: cpuMsOf(pids.floor) - cpu0.floor };
		const during = watcher.events.slice(seen);
		const stats = (list) => ({ mean: list.reduce((a, v) => a + v, 0) / list.length, max: Math.max(...list) });
		return {
			files: o.files,
			startupMs,
			startupCpuMs,
			windowMs,
			cpuMs: cpu.drive,
			rss: stats(rss.drive),
			hwm: memoryOf(pids.drive)?.hwm ?? NaN,
			floor: { cpuMs: cpu.floor, rss: stats(rss.floor) },
			rounds: during.filter((e) => e.event === "idle").length,
			actions: during.filter((e) => e.event === "action").length,
			rescanMs: Number(process.env.DRIVE_SYNC_RESCAN_MS ?? 60_000),
		};
	} finally {
		floor.kill("SIGTERM");
		await watcher.stop();
	}
}

/**
 * Two watching clients on one server folder; each sample writes a small new
 * file into A's folder and times until B reports downloading it. The
 * baseline samples write the file through the API instead (PUT
 * /v1/files/content), so only B's half of the path is in them.
 */
async function measureLatency(drive, base, work, o, log) {
	const user = await signup(base, "syncclient-live");
	const liveId = await makeFolder(base, user, "live");
	const la = join(work, "LA");
	const lb = join(work, "LB");
	const clientA = await drive.login("LA", base, user.email);
	const clientB = await drive.login("LB", base, user.email);
	const watchA = drive.watch(clientA, [la, "/live", "--init"]);
	const watchB = drive.watch(clientB, [lb, "/live", "--init"]);
	try {
		await Promise.all([watchA.next((e) => e.event === "idle"), watchB.next((e) => e.event === "idle")]);
		const downloaded = (w, path) => w.next((e) => e.event === "action" && e.kind === "download" && e.path === path);
		const settle = async () => {
			// Both clients finish the rounds the change woke (each also hears its own commit), then a short gap.
			await sleep(300);
		};
		const client = { total: [], upload: [], download: [] };
		const api = { total: [], afterCommit: [], commit: [] };
		for (let i = -o.warmup; i < o.latencySamples; i++) {
			const n = i + o.warmup;
			// The client's path: A's watcher sees the new file, uploads it; B hears of it and downloads it.
			{
				const name = `c-${n}.txt`;
				const content = `sample ${n} ${randomBytes(8).toString("hex")}\n`;
				const uploaded = watchA.next((e) => e.event === "action" && e.kind === "upload" && e.path === name);
				const arrived = downloaded(watchB, name);
				const t0 = performance.now();
				writeFileSync(join(la, name), content);
				const [up, down] = await Promise.all([uploaded, arrived]);
				if (readFileSync(join(lb, name), "utf8") !== content) throw new Error(`latency: ${name} arrived with other bytes`);
				if (i >= 0) {
					client.total.push(down.at - t0);
					client.upload.push(up.at - t0);
					client.download.push(down.at - up.at);
				}
				await settle();
			}
			// The baseline: the same kind of file committed through the API; B downloads it (and so does A).
			{
				const name = `api-${n}.txt`;
				const content = `api sample ${n} ${randomBytes(8).toString("hex")}\n`;
				const arrived = downloaded(watchB, name);
				const alsoA = downloaded(watchA, name);
				await user.freshToken();
				const t0 = performance.now();
				const res = await fetch(`${base}/v1/files/content?${new URLSearchParams({ parent_id: liveId, name })}`, {
					method: "PUT",
					headers: { Authorization: `Bearer ${user.token}` },
					body: content,
				});
				const answered = performance.now();
				await expectStatus(res, `PUT ${name}`, 201);
				await res.arrayBuffer();
				const [down] = await Promise.all([arrived, alsoA]);
				if (i >= 0) {
					api.total.push(down.at - t0);
					api.afterCommit.push(down.at - answered);
					api.commit.push(answered - t0);
				}
				await settle();
			}
			if (i >= 0 && (n + 1) % 10 === 0) log(`latency: ${i + 1} of ${o.latencySamples}`);
		}
		const sum = (list) => summarize(list);
		return {
			samples: o.latencySamples,
			client: { total: sum(client.total), upload: sum(client.upload), download: sum(client.download) },
			api: { total: sum(api.total), afterCommit: sum(api.afterCommit), commit: sum(api.commit) },
		};
	} finally {
		await Promise.all([watchA.stop(), watchB.stop()]);
	}
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
