// The block collector against a real local stack (wrangler dev, both
// workers): how many candidate blocks a sweep examines per second with the
// 4 shards' units running at once (beside the same sweep one shard after the
// other, and beside candidates that are headed instead of listed), and what a
// sweep running costs commits: 4 KiB file versions per second with and
// without a sweep of other blocks at the same time, paired.
import { randomBytes } from "node:crypto";
import { performance } from "node:perf_hooks";
import { sleep } from "../lib/http.mjs";
import { cpuDuring, cpuMsOf } from "../lib/proc.mjs";
import { median, pairedRatio } from "../lib/stats.mjs";
import { client, fileCommitRate } from "../lib/sync-client.mjs";

const DEFAULTS = {
	/** Rounds of the sweep part; each runs every kind of sweep once, in a rotating order. */
	sweepRounds: 5,
	/** Candidates seeded before each sweep: a full unit (1,000) for each of the 4 shards. */
	blocks: 4000,
	/** Prefixes the listed sweeps' hashes fall in: about 62 of a unit's 1,000 per prefix, past LIST_FROM (services/gc.ts). */
	listPrefixes: 16,
	/** Rounds of the commit part; each runs commits without and with a sweep, the order alternating. */
	commitRounds: 6,
	/** Commits of the warm-up. */
	commits: 300,
	concurrency: 16,
	/** Files the commits write versions of: few enough versions each that retention releases none (VERSION_MAX_VERSIONS). */
	files: 200,
	commitBytes: 4096,
	/** Candidates seeded before each round of the commit part: what the sweep drains while the commits are counted. */
	backlog: 8000,
	/** Commits under way before they are counted. */
	leadMs: 1000,
	/** The side without a sweep counts commits over a window as long as the last sweep's; this long before there was one. */
	windowMs: 5000,
};

/** Fewer blocks, rounds and commits: a check that every path runs, not figures. */
const QUICK = { sweepRounds: 2, blocks: 400, listPrefixes: 2, commitRounds: 2, commits: 60, backlog: 1600, windowMs: 1000 };

/** The kinds of sweep each round of the sweep part runs. */
const SWEEPS = {
	parallel: { serial: false, list: true },
	serial: { serial: true, list: true },
	headed: { serial: false, list: false },
};

/**
 * Both parts, each on its own fresh stack; `options` overrides DEFAULTS.
 * @param {import("../lib/stack.mjs").Context} ctx
 */
export async function measure(ctx, options = {}) {
	const o = { ...DEFAULTS, ...(ctx.quick ? QUICK : {}), ...options };
	const log = (line) => ctx.log(`lifecycle: ${line}`);
	const settings = {
		blocks: o.blocks,
		listPrefixes: o.listPrefixes,
		concurrency: o.concurrency,
		commits: o.commits,
		files: o.files,
		commitBytes: o.commitBytes,
	};
	let stack = await ctx.startStack();
	let sweeps;
	try {
		sweeps = await sweepPart(stack, o, log);
	} finally {
		await stack.stop();
	}
	stack = await ctx.startStack();
	try {
		return { settings, sweeps, commits: await commitPart(stack, o, log) };
	} finally {
		await stack.stop();
	}
}

/** A JSON POST to a bench route. */
async function post(stack, path, body) {
	const res = await fetch(`${stack.url}${path}`, {
		method: "POST",
		headers: { "Content-Type": "application/json" },
		body: JSON.stringify(body),
	});
	if (!res.ok) throw new Error(`POST ${path}: ${res.status} ${(await res.text()).slice(0, 500)}`);
	return res.json();
}

async function tombstones(stack) {
	const res = await fetch(`${stack.url}/_bench/gc/tombstones`);
	if (!res.ok) throw new Error(`GET /_bench/gc/tombstones: ${res.status}`);
	return (await res.json()).perShard;
}

const runtimeOf = (stack) => stack.procs.filter((p) => p.role === "runtime");

/**
 * Each round seeds `blocks` candidates and sweeps them, once for every kind
 * in SWEEPS; every candidate is garbage, so every one is examined, claimed
 * in every shard, checked again, deleted and recorded.
 */
async function sweepPart(stack, o, log) {
	const runtime = runtimeOf(stack);
	const kinds = Object.keys(SWEEPS);
	const rounds = [];
	const seeding = [];
	const tombstonesBefore = await tombstones(stack);
	for (let r = 0; r < o.sweepRounds; r++) {
		const order = kinds.map((_, i) => kinds[(i + r) % kinds.length]);
		const round = {};
		for (const kind of order) {
			const { serial, list } = SWEEPS[kind];
			const seeded = await cpuDuring(runtime, () => post(stack, "/_bench/gc/seed", { n: o.blocks, prefixes: list ? o.listPrefixes : 256 }));
			seeding.push({ ms: seeded.result.ms, cpuMs: seeded.cpu.runtime });
			const swept = await cpuDuring(runtime, () => post(stack, "/_bench/gc/sweep", { serial }));
			const { examined, deleted, ms, r2 } = swept.result;
			if (examined !== o.blocks || deleted !== o.blocks)
				throw new Error(`${kind} sweep examined ${examined} and deleted ${deleted} of ${o.blocks} garbage candidates`);
			round[kind] = { examined, ms, perSecond: (examined / ms) * 1000, cpuMs: swept.cpu.runtime, r2 };
			log(
				`round ${r + 1}, ${kind}: ${examined} blocks in ${ms.toFixed(0)} ms (${round[kind].perSecond.toFixed(0)}/s, runtime CPU ${swept.cpu.runtime} ms)`,
			);
		}
		rounds.push(round);
	}
	const of = (kind) => ({
		perSecond: median(rounds.map((r) => r[kind].perSecond)),
		each: rounds.map((r) => r[kind].perSecond),
		cpuPerBlockMs: median(rounds.map((r) => r[kind].cpuMs / r[kind].examined)),
		ms: median(rounds.map((r) => r[kind].ms)),
	});
	const r2 = (call) => ({
		calls: median(rounds.map((r) => r.serial.r2[call].calls)),
		keys: median(rounds.map((r) => r.serial.r2[call].keys)),
		ms: median(rounds.map((r) => r.serial.r2[call].ms)),
		share: median(rounds.map((r) => r.serial.r2[call].ms / r.serial.ms)),
	});
	return {
		rounds: rounds.length,
		parallel: of("parallel"),
		serial: { ...of("serial"), r2: { list: r2("list"), head: r2("head"), delete: r2("delete") } },
		headed: of("headed"),
		parallelOverSerial: pairedRatio(
			rounds,
			(r) => r.parallel.perSecond,
			(r) => r.serial.perSecond,
		),
		listedOverHeaded: pairedRatio(
			rounds,
			(r) => r.parallel.perSecond,
			(r) => r.headed.perSecond,
		),
		seeding: {
			cpuPerBlockMs: median(seeding.map((s) => s.cpuMs / o.blocks)),
			perSecond: median(seeding.map((s) => (o.blocks / s.ms) * 1000)),
		},
		tombstones: { before: tombstonesBefore, after: await tombstones(stack) },
	};
}

/**
 * Paired rounds of 4 KiB file versions committed back to back, with
 * `concurrency` in flight, without and with a sweep running, the order
 * alternating. On the side with a sweep, commits per second are counted
 * while the sweep drains a backlog of other blocks seeded before the round
 * (outside both sides): one unit per shard, the shards at once, as parallel
 * queue consumers would, each with its successors. The side without counts
 * them over a window as long, after the same lead.
 */
async function commitPart(stack, o, log) {
	const [runtime] = runtimeOf(stack);
	const api = client(stack.url, "lifecycle");
	const user = await api.signup("bench lifecycle");
	const body = () => randomBytes(o.commitBytes);
	log(`warm-up: ${o.commits} commits, one sweep`);
	await fileCommitRate(api, user, o.commits, o.concurrency, o.files, { body });
	await post(stack, "/_bench/gc/seed", { n: o.blocks, prefixes: o.listPrefixes });
	await post(stack, "/_bench/gc/sweep", {});
	const tombstonesBefore = await tombstones(stack);

	/** Commits back to back; `window()` runs once they are under way, and the commits answered meanwhile are counted. */
	const side = async (window) => {
		const answered = [];
		let stop = false;
		const commits = fileCommitRate(api, user, Infinity, o.concurrency, o.files, {
			body,
			until: () => stop,
			onCommit: (at) => answered.push(at),
		});
		try {
			await sleep(o.leadMs);
			const cpu0 = cpuMsOf(runtime.pid);
			const opened = performance.now();
			const swept = await window();
			const closed = performance.now();
			const cpuMs = cpuMsOf(runtime.pid) - cpu0;
			const seconds = (closed - opened) / 1000;
			const count = answered.filter((at) => at > opened && at <= closed).length;
			return { count, seconds, perSecond: count / seconds, runtimeCpuShare: cpuMs / (closed - opened), swept };
		} finally {
			stop = true;
			await commits;
		}
	};

	const rounds = [];
	let windowMs = o.windowMs;
	for (let r = 0; r < o.commitRounds; r++) {
		await post(stack, "/_bench/gc/seed", { n: o.backlog, prefixes: o.listPrefixes });
		const round = {};
		for (const which of r % 2 === 0 ? ["without", "with"] : ["with", "without"]) {
			if (which === "without") round.without = await side(() => sleep(windowMs));
			else {
				round.with = await side(() => post(stack, "/_bench/gc/sweep", {}));
				if (round.with.swept.examined < o.backlog)
					throw new Error(`the sweep examined ${round.with.swept.examined} of ${o.backlog} candidates`);
				windowMs = round.with.seconds * 1000;
			}
		}
		rounds.push(round);
		log(
			`round ${r + 1}: ${round.without.perSecond.toFixed(1)} commits/s without, ${round.with.perSecond.toFixed(1)} while a sweep examined ${o.backlog} blocks in ${round.with.seconds.toFixed(1)} s`,
		);
	}
	const sideOf = (which) => ({
		perSecond: median(rounds.map((r) => r[which].perSecond)),
		each: rounds.map((r) => r[which].perSecond),
		commits: median(rounds.map((r) => r[which].count)),
		seconds: median(rounds.map((r) => r[which].seconds)),
		runtimeCpuShare: median(rounds.map((r) => r[which].runtimeCpuShare)),
	});
	return {
		rounds: rounds.length,
		backlog: o.backlog,
		leadMs: o.leadMs,
		without: sideOf("without"),
		with: sideOf("with"),
		ratio: pairedRatio(
			rounds,
			(r) => r.with.perSecond,
			(r) => r.without.perSecond,
		),
		sweepPerSecond: median(rounds.map((r) => o.backlog / r.with.seconds)),
		tombstones: { before: tombstonesBefore, after: await tombstones(stack) },
	};
}
