// The local stack as the benchmarks need it: started from a snapshot of the
// source tree on a free port with fresh storage, its workerd processes
// found, their memory sampled, and everything stopped afterwards.
import { spawnSync } from "node:child_process";
import { existsSync, readdirSync, readFileSync, readlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { freePort, groupMembers, snapshotTree, workerdProcesses } from "../scripts/local-stack.mjs";

export { freePort, groupMembers, snapshotTree, workerdProcesses };

/**
 * Resident set size and its high-water mark of a process, in bytes.
 * @param {number} pid
 * @returns {{ rss: number, hwm: number }}
 */
export function memoryOf(pid) {
	const status = readFileSync(`/proc/${pid}/status`, "utf8");
	const field = (name) => Number(new RegExp(`^${name}:\\s+(\\d+) kB`, "m").exec(status)?.[1] ?? NaN) * 1024;
	return { rss: field("VmRSS"), hwm: field("VmHWM") };
}

/**
 * Samples the RSS of `pids` every `intervalMs` until the returned stop()
 * is called. A 20 ms poll can miss a short spike, so stop() also reports a
 * peak from VmHWM whenever the high-water mark rose during the sampling
 * (the kernel tracks it exactly).
 * @param {number[]} pids
 * @param {number} intervalMs
 */
export function sampleMemory(pids, intervalMs = 20) {
	const start = new Map(pids.map((pid) => [pid, memoryOf(pid)]));
	const peak = new Map(pids.map((pid) => [pid, start.get(pid).rss]));
	let peakTotal = [...peak.values()].reduce((a, b) => a + b, 0);
	let samples = 0;
	const timer = setInterval(() => {
		let total = 0;
		for (const pid of pids) {
			const { rss } = memoryOf(pid);
			total += rss;
			if (rss > peak.get(pid)) peak.set(pid, rss);
		}
		if (total > peakTotal) peakTotal = total;
		samples++;
	}, intervalMs);
	return {
		/** @returns {{ samples: number, peakTotal: number, perPid: Map<number, { before: number, peak: number }> }} */
		stop() {
			clearInterval(timer);
			const perPid = new Map();
			for (const pid of pids) {
				const end = memoryOf(pid);
				const hwmPeak = end.hwm > start.get(pid).hwm ? end.hwm : 0;
				perPid.set(pid, { before: start.get(pid).rss, peak: Math.max(peak.get(pid), end.rss, hwmPeak) });
			}
			return { samples, peakTotal, perPid };
		},
	};
}

/** The median of a non-empty list of numbers. */
export function median(values) {
	const sorted = [...values].sort((a, b) => a - b);
	const mid = sorted.length >> 1;
	return sorted.length % 2 === 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

/** V8 flags of the bench's workerd (see startBenchStack). */
export const BENCH_V8_FLAGS = "--no-concurrent-recompilation";

/** The api worker's entry on the bench's stacks: the production app plus the /_bench routes. */
export const BENCH_MAIN = "bench/worker.ts";

/**
 * Points the snapshot's wrangler.toml at {@link BENCH_MAIN}: the bench runs
 * the repo's own config, with `main` the only line changed, so its bindings,
 * vars and flags cannot drift from production's.
 * @param {string} tree a snapshot made by {@link snapshotTree}
 */
export function writeBenchConfig(tree) {
	const file = join(tree, "wrangler.toml");
	const toml = readFileSync(file, "utf8");
	const mains = toml.match(/^main = ".*"$/gm) ?? [];
	if (mains.length !== 1) throw new Error(`${file}: expected one top-level main = "...", found ${mains.length}`);
	const header = `# Written by bench/stack.mjs from the repository's wrangler.toml; only main differs (${mains[0]}).\n`;
	writeFileSync(file, header + toml.replace(/^main = ".*"$/m, `main = "${BENCH_MAIN}"`));
}

/**
 * Starts the stack from `tree` (a snapshot made by {@link snapshotTree}),
 * with bench/worker.ts as the api worker's entry ({@link writeBenchConfig}).
 *
 * `localTraces` keeps wrangler dev's local trace collector on, as `npm
 * start` has it; the measured stacks run without it (docs/decisions/0013).
 * The collector is a tail worker on the runtime's one thread that writes
 * every span (each R2 put, D1 query, RPC call) to its own SQLite database,
 * so it charges a path by the number of its subrequests: about 0.04 s per
 * 90 MiB content upload, which makes ~100 of them, against nothing for the
 * raw put, which makes one. Deployed, spans are collected outside the
 * Worker's isolate.
 * @param {string} tree
 * @param {{ persistTo: string, localTraces?: boolean }} options
 */
export async function startBenchStack(tree, { persistTo, localTraces = false }) {
	// In this local workerd, V8's concurrent optimizing compiles sometimes
	// never land, leaving a hot function in a lower tier for the life of its
	// isolate: ours (the chunker was 10x slower) and the R2 simulator's alike,
	// so either side of a comparison could run slow at random (ADR 0012).
	// Compiling on the main thread instead takes that lottery out of the
	// figures; it costs each compile a few ms of the measured thread. A
	// value already in the environment wins (empty for V8's defaults).
	process.env.MINIFLARE_WORKERD_V8_FLAGS ??= BENCH_V8_FLAGS;
	if (process.env.MINIFLARE_WORKERD_V8_FLAGS === "") delete process.env.MINIFLARE_WORKERD_V8_FLAGS;
	const stackModule = join(tree, "scripts", "local-stack.mjs");
	if (!existsSync(stackModule)) throw new Error(`${stackModule} is missing`);
	const { startStack, stopStack } = await import(pathToFileURL(stackModule).href);
	if (!readFileSync(join(tree, "wrangler.toml"), "utf8").includes(`main = "${BENCH_MAIN}"`)) writeBenchConfig(tree);
	const port = await freePort();
	const env = { X_LOCAL_OBSERVABILITY: localTraces ? "true" : "false" };
	const stack = await startStack({ port, persistTo, stdio: "pipe", env });
	const pgid = stack.child.pid;
	let stopped = false;
	return {
		url: stack.url,
		pgid,
		log: stack.log,
		/** Stops wrangler and everything it spawned; escalates to SIGKILL if SIGTERM is not enough. */
		async stop() {
			if (stopped) return;
			stopped = true;
			stopStack(stack.child, "SIGTERM");
			if (await waitForEmptyGroup(pgid, 15_000)) return;
			stopStack(stack.child, "SIGKILL");
			if (!(await waitForEmptyGroup(pgid, 5_000)))
				throw new Error(`processes ${groupMembers(pgid).join(", ")} of the stack survived SIGKILL`);
		},
		/** For process "exit" handlers, which cannot wait. */
		killNow() {
			if (!stopped) stopStack(stack.child, "SIGKILL");
		},
	};
}

async function waitForEmptyGroup(pgid, ms) {
	const deadline = Date.now() + ms;
	while (groupMembers(pgid).length > 0) {
		if (Date.now() > deadline) return false;
		await new Promise((r) => setTimeout(r, 100));
	}
	return true;
}

/**
 * CPU time (user + system) a process has used so far, in ms. Everything in
 * the local runtime (our workers, the R2 and D1 simulators) runs on one
 * workerd thread, so CPU per request is the figure that survives a busy
 * machine, where wall time does not.
 * @param {number} pid
 */
export function cpuMsOf(pid) {
	const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
	const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
	return ((Number(fields[11]) + Number(fields[12])) * 1000) / CLOCK_TICKS;
}

/** USER_HZ: the unit of utime/stime in /proc/<pid>/stat (100 on every Linux we run). */
const CLOCK_TICKS = (() => {
	const res = spawnSync("getconf", ["CLK_TCK"], { encoding: "utf8" });
	const ticks = Number(res.stdout?.trim());
	return Number.isFinite(ticks) && ticks > 0 ? ticks : 100;
})();

/**
 * TCP ports `pid` listens on, from its socket inodes and /proc/net/tcp.
 * workerd is started with `--inspector-addr=127.0.0.1:0`, so this is how to
 * find its inspector.
 * @param {number} pid
 */
export function listeningPorts(pid) {
	const inodes = new Set();
	for (const fd of readdirSync(`/proc/${pid}/fd`)) {
		try {
			const m = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`));
			if (m) inodes.add(m[1]);
		} catch {
			// fd closed meanwhile
		}
	}
	const ports = [];
	for (const file of ["/proc/net/tcp", "/proc/net/tcp6"]) {
		let text;
		try {
			text = readFileSync(file, "utf8");
		} catch {
			continue;
		}
		for (const line of text.split("\n").slice(1)) {
			const f = line.trim().split(/\s+/);
			// State 0A is LISTEN.
			if (f.length > 9 && f[3] === "0A" && inodes.has(f[9])) ports.push(parseInt(f[1].split(":")[1], 16));
		}
	}
	return ports;
}

/**
 * Connects to one isolate of a workerd process through its V8 inspector,
 * to read that isolate's own memory (Runtime.getHeapUsage: JS heap plus
 * ArrayBuffer backing stores). RSS covers the whole process, including
 * the local R2/D1 simulators, which production does not run beside us;
 * the isolate figure is the part our code controls. Null when the
 * inspector cannot be found.
 * @param {number} pid
 * @param {string} targetId e.g. "core:user:drive-api"
 */
export async function inspectIsolate(pid, targetId) {
	// The first session on a fresh isolate sometimes never answers (seen
	// with workerd 1.20261117 on a busy machine); a new session does.
	for (let attempt = 0; attempt < 3; attempt++) {
		const url = await inspectorUrl(pid, targetId);
		if (url === null) return null;
		const session = await openSession(url);
		if (session === null) continue;
		try {
			await session.usage();
			return session;
		} catch {
			session.close();
		}
	}
	return null;
}

async function inspectorUrl(pid, targetId) {
	for (const port of listeningPorts(pid)) {
		try {
			const res = await fetch(`http://127.0.0.1:${port}/json/list`, { signal: AbortSignal.timeout(2000) });
			const targets = await res.json();
			const target = Array.isArray(targets) ? targets.find((t) => t.id === targetId) : undefined;
			if (target?.webSocketDebuggerUrl) return target.webSocketDebuggerUrl;
		} catch {
			// not an inspector port
		}
	}
	return null;
}

async function openSession(url) {
	const ws = new WebSocket(url);
	const ready = await new Promise((done) => {
		ws.onopen = () => done(true);
		ws.onerror = () => done(false);
		setTimeout(() => done(false), 5000);
	});
	if (!ready) {
		ws.close();
		return null;
	}
	let nextId = 0;
	const pending = new Map();
	ws.onmessage = (event) => {
		const msg = JSON.parse(String(event.data));
		pending.get(msg.id)?.(msg);
		pending.delete(msg.id);
	};
	const call = (method) =>
		new Promise((done, fail) => {
			const id = ++nextId;
			const timer = setTimeout(() => {
				pending.delete(id);
				fail(new Error(`${method} timed out`));
			}, 5000);
			pending.set(id, (msg) => {
				clearTimeout(timer);
				done(msg.result);
			});
			ws.send(JSON.stringify({ id, method }));
		});
	return {
		/** @returns {Promise<{ heap: number, buffers: number }>} bytes */
		async usage() {
			const r = await call("Runtime.getHeapUsage");
			return { heap: r.usedSize, buffers: r.backingStorageSize ?? 0 };
		},
		close() {
			ws.close();
		},
	};
}

/**
 * Polls an isolate's memory while an operation runs (one request in
 * flight at a time, so a slow answer cannot pile up calls).
 * @param {{ usage(): Promise<{ heap: number, buffers: number }> } | null} isolate
 */
export function sampleIsolate(isolate, intervalMs = 50) {
	if (isolate === null) return { stop: async () => null };
	let stopped = false;
	let peak = { heap: 0, buffers: 0, total: 0 };
	let before = null;
	const loop = (async () => {
		while (!stopped) {
			const u = await isolate.usage().catch(() => null);
			if (u !== null) {
				before ??= u;
				const total = u.heap + u.buffers;
				if (total > peak.total) peak = { ...u, total };
			}
			await new Promise((r) => setTimeout(r, intervalMs));
		}
	})();
	return {
		async stop() {
			stopped = true;
			await loop;
			return before === null
				? null
				: { before: before.heap + before.buffers, peak: peak.total, peakHeap: peak.heap, peakBuffers: peak.buffers };
		},
	};
}
