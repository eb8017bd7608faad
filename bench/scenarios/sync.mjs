// Realtime sync benchmark against a real local stack (wrangler dev, both
// workers): commit-to-WebSocket-frame latency with 1, 100 and 1,000 connected
// devices of one user, the long poll's wake latency, and commits per second
// for one user (serialized by its UserHub) and for 8 users in parallel, each
// beside a baseline measured in the same run.
//
//   import { benchSync } from "./sync.mjs";
//   const { figures, markdown } = await benchSync({ baseUrl });
//
// Standalone (starts its own stack on a free port with fresh storage):
//   node bench/sync.mjs [--base-url http://127.0.0.1:8787] [--json]
import { loadavg } from "node:os";
import { performance } from "node:perf_hooks";
import { pool, sleep } from "../lib/http.mjs";
import { summarize } from "../lib/stats.mjs";
import { client, dial, fileCommitRate } from "../lib/sync-client.mjs";

const DEFAULTS = {
	levels: [1, 100, 1000],
	samples: 50,
	spacingMs: 300,
	longpollSamples: 50,
	commitsOneUser: 500,
	commitsPerUserParallel: 150,
	parallelUsers: 8,
	concurrency: 16,
	loginConcurrency: 8,
	/** Which parts to run. */
	parts: { websocket: true, longpoll: true, commits: true },
	/** Origin the sockets dial; defaults to baseUrl (a profiling knob: e.g. the user worker's own port, past wrangler's proxy). */
	wsBaseUrl: undefined,
};

/** Fewer devices, samples and commits: a check that every path runs, not figures. */
const QUICK = {
	levels: [1, 10],
	samples: 10,
	longpollSamples: 10,
	commitsOneUser: 100,
	commitsPerUserParallel: 30,
	parallelUsers: 4,
};

const ms = (v) => (Number.isFinite(v) ? `${v.toFixed(1)} ms` : "n/a");

// ---- the measurements ------------------------------------------------------

/** Round trip of a trivial authenticated GET: the floor under every other latency here. */
async function floorLatency(api, device, n = 100) {
	for (let i = 0; i < 10; i++) await api.root(device);
	const times = [];
	for (let i = 0; i < n; i++) {
		const t0 = performance.now();
		const res = await api.root(device);
		if (res.status !== 200) throw new Error(`GET /v1/nodes/root: ${res.status}`);
		times.push(performance.now() - t0);
	}
	return summarize(times);
}

/** A JSON ping's round trip through the user's hub: the floor for a frame. */
async function pingLatency(listener, n = 50) {
	const times = [];
	for (let i = 0; i < n; i++) {
		const t0 = performance.now();
		const pong = listener.next((f) => f.type === "pong", 5000);
		listener.ws.send(JSON.stringify({ type: "ping" }));
		times.push((await pong) - t0);
	}
	return summarize(times.filter(Number.isFinite));
}

/**
 * Commit-to-frame latency with the given listeners connected: a separate
 * device PUTs a tiny file; for each listener, the time from the PUT's answer
 * reaching the client to that listener's `changes` frame (negative when the
 * frame overtakes the answer).
 */
async function frameLatency(api, committer, listeners, { samples, spacingMs }, tag) {
	const fromAnswer = [];
	const fromSend = [];
	const spread = [];
	const answers = [];
	let missed = 0;
	let lastCursor = null;
	for (let s = 0; s < samples; s++) {
		const started = performance.now();
		const arrivals = listeners.map((l) => l.next((f) => f.type === "changes" && f.cursor !== lastCursor, 10_000));
		const t0 = performance.now();
		const res = await api.putTiny(committer, `${tag}-${s}.txt`);
		const answered = performance.now();
		answers.push(answered - t0);
		if (res.status !== 201) throw new Error(`PUT: ${res.status} ${JSON.stringify(res.body)}`);
		const times = await Promise.all(arrivals);
		const arrived = times.filter(Number.isFinite);
		if (arrived.length > 1) spread.push(Math.max(...arrived) - Math.min(...arrived));
		for (const at of times) {
			if (!Number.isFinite(at)) {
				missed++;
				continue;
			}
			fromAnswer.push(at - answered);
			fromSend.push(at - t0);
		}
		const last = listeners[0]?.frames.findLast((f) => f.frame.type === "changes");
		lastCursor = last?.frame.cursor ?? lastCursor;
		// Keep commits apart so the hub's coalescing (4 frames/s) never merges two.
		const wait = spacingMs - (performance.now() - started);
		if (wait > 0) await sleep(wait);
	}
	return {
		fromAnswer: summarize(fromAnswer),
		fromSend: summarize(fromSend),
		spread: summarize(spread),
		answer: summarize(answers),
		missed,
	};
}

/** Long poll wake latency: commit answer to long-poll answer, on the client's clock. */
async function longpollLatency(api, committer, poller, samples) {
	const fromAnswer = [];
	for (let s = 0; s < samples; s++) {
		const cursor = await api.latest(poller);
		let answeredAt = NaN;
		const poll = api.request(`/v1/changes/longpoll?cursor=${encodeURIComponent(cursor)}&timeout=30`, { token: poller.token }).then((r) => {
			answeredAt = performance.now();
			return r;
		});
		// Let the poll reach the hub and park before committing.
		await sleep(150);
		const res = await api.putTiny(committer, `poll-${s}.txt`);
		const committedAt = performance.now();
		if (res.status !== 201) throw new Error(`PUT: ${res.status}`);
		const polled = await poll;
		if (polled.status !== 200 || polled.body?.changes !== true)
			throw new Error(`longpoll: ${polled.status} ${JSON.stringify(polled.body)}`);
		fromAnswer.push(answeredAt - committedAt);
	}
	return summarize(fromAnswer);
}

/** `count` folder creations by `device` with `concurrency` in flight: commits per second. */
async function commitRate(api, device, count, concurrency, tag) {
	const parent = await api.mkdir(device, device.rootId, `rate-${tag}`);
	if (parent.status !== 201) throw new Error(`mkdir: ${parent.status}`);
	const latencies = [];
	const t0 = performance.now();
	await pool(count, concurrency, async (i) => {
		const s = performance.now();
		const res = await api.mkdir(device, parent.body.id, `f-${i}`);
		if (res.status !== 201) throw new Error(`mkdir: ${res.status} ${JSON.stringify(res.body)}`);
		latencies.push(performance.now() - s);
	});
	const seconds = (performance.now() - t0) / 1000;
	return { count, seconds, perSecond: count / seconds, latency: summarize(latencies) };
}

/** The same number of trivial authenticated GETs at the same concurrency: the baseline for commits/s. */
async function readRate(api, device, count, concurrency) {
	const t0 = performance.now();
	await pool(count, concurrency, async () => {
		const res = await api.root(device);
		if (res.status !== 200) throw new Error(`root: ${res.status}`);
	});
	const seconds = (performance.now() - t0) / 1000;
	return { count, seconds, perSecond: count / seconds };
}

/**
 * Runs every sync benchmark on a fresh stack; `options` overrides DEFAULTS.
 * @param {import("../lib/stack.mjs").Context} ctx
 * @param {Partial<typeof DEFAULTS>} [options]
 */
export async function measure(ctx, options = {}) {
	const stack = await ctx.startStack();
	try {
		return await run(
			stack.url,
			{ ...DEFAULTS, ...(ctx.quick ? QUICK : {}), ...options, parts: { ...DEFAULTS.parts, ...options.parts } },
			(line) => ctx.log(`sync: ${line}`),
		);
	} finally {
		await stack.stop();
	}
}

async function run(baseUrl, o, log) {
	const wsBaseUrl = o.wsBaseUrl ?? baseUrl;
	const api = client(baseUrl);
	const figures = {
		when: new Date().toISOString(),
		settings: { spacingMs: o.spacingMs, concurrency: o.concurrency },
		load: { start: loadavg()[0] },
		baseline: {},
		websocket: [],
		longpoll: null,
		commits: {},
	};
	const sockets = [];
	try {
		// -- baselines --
		const owner = await api.signup("bench committer");
		const committer = owner;
		log("floor: GET /v1/nodes/root round trip");
		figures.baseline.getRoot = await floorLatency(api, committer);

		// -- WebSocket fan-out --
		const devices = [];
		if (o.parts.websocket || o.parts.longpoll) {
			const maxLevel = o.parts.websocket ? Math.max(...o.levels) : 1;
			// A user has at most 100 devices (the signup's included) and 10 sockets per device: past 99 logins, sockets share devices.
			const logins = Math.min(maxLevel, 99);
			log(`logging in ${logins} devices`);
			const loginStarted = performance.now();
			const logged = await pool(logins, o.loginConcurrency, (i) => api.login(owner, `bench device ${i}`));
			devices.push(...logged);
			figures.loginSeconds = (performance.now() - loginStarted) / 1000;
		}
		if (o.parts.websocket) {
			for (const level of [...o.levels].sort((a, b) => a - b)) {
				log(`opening sockets up to ${level}`);
				const opened = await pool(level - sockets.length, 16, async (k) =>
					dial(wsBaseUrl, await api.ticket(devices[(sockets.length + k) % (devices.length + 1)] ?? committer)),
				);
				sockets.push(...opened);
				if (sockets.length !== level) throw new Error(`have ${sockets.length} sockets, want ${level}`);
				await sleep(500);
				const first = sockets[0];
				const ping = first ? await pingLatency(first, 30) : null;
				log(`measuring ${o.samples} commits with ${level} device(s) connected`);
				const result = await frameLatency(api, committer, sockets, o, `ws${level}`);
				figures.websocket.push({ devices: level, ...result, pingRtt: ping });
				log(`  ${level} devices: p50 ${ms(result.fromAnswer.p50)}, p99 ${ms(result.fromAnswer.p99)} (missed ${result.missed})`);
			}
		}

		// -- long poll (sockets still open, as a real user's other devices would be) --
		if (o.parts.longpoll) {
			log(`long poll wake latency, ${o.longpollSamples} samples`);
			figures.longpoll = await longpollLatency(api, committer, devices[0] ?? committer, o.longpollSamples);
		}

		for (const s of sockets.splice(0)) s.ws.terminate();
		await sleep(500);

		// -- commits per second, each beside reads of the same route count and concurrency, before and after --
		if (o.parts.commits) {
			log(`commits/s, one user: ${o.commitsOneUser} folder creations, concurrency ${o.concurrency}`);
			const solo = await api.signup("bench rate");
			const readsBefore = await readRate(api, solo, o.commitsOneUser, o.concurrency);
			figures.commits.oneUser = await commitRate(api, solo, o.commitsOneUser, o.concurrency, "solo");
			const readsAfter = await readRate(api, solo, o.commitsOneUser, o.concurrency);
			figures.baseline.readsOneUser = {
				before: readsBefore.perSecond,
				after: readsAfter.perSecond,
				perSecond: (readsBefore.perSecond + readsAfter.perSecond) / 2,
			};
			log(`file commits/s, one user: ${o.commitsOneUser} PUTs of small files (new versions of 50 files), concurrency ${o.concurrency}`);
			figures.commits.filesOneUser = await fileCommitRate(api, solo, o.commitsOneUser, o.concurrency, 50);

			log(`commits/s, ${o.parallelUsers} users in parallel: ${o.commitsPerUserParallel} each, concurrency ${o.concurrency} each`);
			const users = await Promise.all(Array.from({ length: o.parallelUsers }, (_, i) => api.signup(`bench rate ${i}`)));
			const total = o.parallelUsers * o.commitsPerUserParallel;
			const reads = async () => {
				const t0 = performance.now();
				await Promise.all(users.map((u) => readRate(api, u, o.commitsPerUserParallel, o.concurrency)));
				return total / ((performance.now() - t0) / 1000);
			};
			const before = await reads();
			const started = performance.now();
			const each = await Promise.all(users.map((u, i) => commitRate(api, u, o.commitsPerUserParallel, o.concurrency, `par-${i}`)));
			const seconds = (performance.now() - started) / 1000;
			const after = await reads();
			figures.commits.parallel = {
				users: o.parallelUsers,
				count: total,
				seconds,
				perSecond: total / seconds,
				perUser: summarize(each.map((e) => e.perSecond)),
			};
			figures.baseline.readsParallel = { before, after, perSecond: (before + after) / 2 };
		}
	} finally {
		for (const s of sockets) s.ws.terminate();
	}
	figures.load.end = loadavg()[0];
	return figures;
}
