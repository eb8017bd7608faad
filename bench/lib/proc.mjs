// What the bench reads about the stack's processes: CPU time and memory from
// /proc, and an isolate's own memory through workerd's V8 inspector.
import { spawnSync } from "node:child_process";
import { readdirSync, readFileSync, readlinkSync } from "node:fs";

/** USER_HZ: the unit of utime/stime in /proc/<pid>/stat (100 on every Linux we run). */
const CLOCK_TICKS = (() => {
	const res = spawnSync("getconf", ["CLK_TCK"], { encoding: "utf8" });
	const ticks = Number(res.stdout?.trim());
	return Number.isFinite(ticks) && ticks > 0 ? ticks : 100;
})();

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

/**
 * CPU used by each of the stack's workerd processes (by role) while `fn` runs.
 * @template T
 * @param {{ pid: number, role: string }[]} procs
 * @param {() => Promise<T>} fn
 * @returns {Promise<{ result: T, cpu: Record<string, number> }>}
 */
export async function cpuDuring(procs, fn) {
	const before = procs.map((p) => cpuMsOf(p.pid));
	const result = await fn();
	return { result, cpu: Object.fromEntries(procs.map((p, i) => [p.role, cpuMsOf(p.pid) - before[i]])) };
}

/**
 * Resident set size and its high-water mark of a process, in bytes; null once it has exited.
 * @param {number} pid
 */
export function memoryOf(pid) {
	let status;
	try {
		status = readFileSync(`/proc/${pid}/status`, "utf8");
	} catch {
		return null;
	}
	const field = (name) => Number(new RegExp(`^${name}:\\s+(\\d+) kB`, "m").exec(status)?.[1] ?? NaN) * 1024;
	return { rss: field("VmRSS"), hwm: field("VmHWM") };
}

/**
 * Samples the RSS of the stack's workerd processes every `intervalMs` until
 * the returned stop() is called. A poll can miss a short spike, so stop()
 * also takes VmHWM as the peak whenever the high-water mark rose during the
 * sampling (the kernel tracks it exactly). A process that exits is dropped.
 * @param {{ pid: number, role: string }[]} procs
 * @param {number} intervalMs
 */
export function sampleMemory(procs, intervalMs = 20) {
	const start = new Map(procs.map((p) => [p.pid, memoryOf(p.pid)]));
	const peak = new Map(procs.map((p) => [p.pid, start.get(p.pid)?.rss ?? 0]));
	const sum = (values) => values.reduce((a, b) => a + b, 0);
	let peakTotal = sum([...peak.values()]);
	const timer = setInterval(() => {
		let total = 0;
		for (const { pid } of procs) {
			const rss = memoryOf(pid)?.rss ?? 0;
			total += rss;
			if (rss > peak.get(pid)) peak.set(pid, rss);
		}
		if (total > peakTotal) peakTotal = total;
	}, intervalMs);
	return {
		/** @returns {Record<string, { before: number, peak: number }> & { total: { before: number, peak: number } }} bytes, by role */
		stop() {
			clearInterval(timer);
			const out = {};
			for (const { pid, role } of procs) {
				const first = start.get(pid);
				const end = memoryOf(pid);
				const hwmPeak = first && end && end.hwm > first.hwm ? end.hwm : 0;
				out[role] = { before: first?.rss ?? NaN, peak: Math.max(peak.get(pid), end?.rss ?? 0, hwmPeak) };
			}
			out.total = { before: sum(Object.values(out).map((m) => m.before)), peak: peakTotal };
			return out;
		},
	};
}

/**
 * TCP ports `pid` listens on, from its socket inodes and /proc/net/tcp.
 * workerd is started with `--inspector-addr=127.0.0.1:0`, so this is how to
 * find its inspector.
 * @param {number} pid
 */
function listeningPorts(pid) {
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
