// The lifecycle section: the block collector's sweep throughput, and commits per second while a sweep runs.
import { exact, mark, measuredLine, msec, pct, secs, table } from "./format.mjs";

/** Targets from the issue (15). */
const TARGETS = { blocksPerSecond: 5000, commitDrop: 0.05 };

const rate = (v) => `${Math.round(v).toLocaleString("en-US")}/s`;
const each = (values, format = rate) => values.map((v) => format(v)).join(", ");
const cpu = (ms) => (Number.isFinite(ms) ? `${ms.toFixed(2)} ms` : "n/a");

/** The lifecycle section from its figures (scenarios/lifecycle.mjs), beside `baseline` (saved figures of another run) when there is one: its markdown and verdicts. */
export function render(f, meta, baseline) {
	const s = f.settings;
	const w = f.sweeps;
	const c = f.commits;
	const shards = w.tombstones.after.length;
	const perPrefix = (prefixes) => {
		const n = s.blocks / shards / prefixes;
		return n < 10 ? n.toFixed(1) : String(Math.round(n));
	};
	const sweepOk = w.parallel.perSecond >= TARGETS.blocksPerSecond;
	const drop = 1 - c.ratio.median;
	const commitOk = drop <= TARGETS.commitDrop;
	const base = baseline?.figures.sweeps;
	const then = (kind) => (base ? `${rate(base[kind].perSecond)} · ${cpu(base[kind].cpuPerBlockMs)}` : "–");
	const sweepRows = [
		[
			`${shards} shards' units at once, hashes in ${s.listPrefixes} prefixes (≈ ${perPrefix(s.listPrefixes)} per prefix in a unit: listed)`,
			rate(w.parallel.perSecond),
			each(w.parallel.each),
			cpu(w.parallel.cpuPerBlockMs),
			"",
			then("parallel"),
			`${mark(sweepOk)} ≥ ${exact(TARGETS.blocksPerSecond)}/s`,
		],
		[
			`baseline: the same, one shard's units after the other's`,
			rate(w.serial.perSecond),
			each(w.serial.each),
			cpu(w.serial.cpuPerBlockMs),
			`at once ÷ one after the other: ${w.parallelOverSerial.median.toFixed(2)}× (${each(w.parallelOverSerial.each, (v) => `${v.toFixed(2)}×`)})`,
			then("serial"),
			"",
		],
		[
			`baseline: ${shards} shards' units at once, hashes in all 256 prefixes (≈ ${perPrefix(256)} per prefix in a unit: each object headed, ADR 0017's path)`,
			rate(w.headed.perSecond),
			each(w.headed.each),
			cpu(w.headed.cpuPerBlockMs),
			`listed ÷ headed: ${w.listedOverHeaded.median.toFixed(2)}× (${each(w.listedOverHeaded.each, (v) => `${v.toFixed(2)}×`)})`,
			then("headed"),
			"",
		],
	];
	const r2 = w.serial.r2;
	const rest = 1 - r2.list.share - r2.head.share - r2.delete.share;
	const per1000 = (ms) => msec((ms * 1000) / s.blocks);
	const r2Row = (label, call, unit) => [
		label,
		exact(Math.round(call.calls)),
		`${exact(Math.round(call.keys))} ${unit}`,
		msec(call.ms),
		per1000(call.ms),
		pct(call.share),
	];
	const restMs = w.serial.ms * rest;
	const r2Rows = [
		r2Row("`list` (the listed prefixes, from each unit's first hash to its last)", r2.list, "objects"),
		r2Row("`head` (hashes of prefixes below LIST_FROM)", r2.head, "objects"),
		r2Row("`delete` (up to 1,000 keys a call)", r2.delete, "keys"),
		[
			"the rest: D1 (due candidates, references twice in every shard, tombstones in every shard, deletion records in every shard, progress rows) and our code",
			"",
			"",
			msec(restMs),
			per1000(restMs),
			pct(rest),
		],
	];
	const commitRows = [
		[
			"without a sweep",
			rate(c.without.perSecond),
			each(c.without.each),
			secs(c.without.seconds * 1000),
			pct(c.without.runtimeCpuShare),
			"",
			"",
		],
		[
			`while a sweep examines ${exact(c.backlog)} other blocks (${rate(c.sweepPerSecond)})`,
			rate(c.with.perSecond),
			each(c.with.each),
			secs(c.with.seconds * 1000),
			pct(c.with.runtimeCpuShare),
			`${c.ratio.median.toFixed(2)}× (${each(c.ratio.each, (v) => `${v.toFixed(2)}×`)})`,
			`${mark(commitOk)} drop ${pct(drop)}, target ≤ ${pct(TARGETS.commitDrop)}`,
		],
	];
	const baseLine = baseline
		? `The saved baseline is the run measured on ${baseline.meta.when} at \`${baseline.meta.machine.commit}\` (${baseline.source}; 1-minute load average ${baseline.meta.load.start.toFixed(2)} at its start and ${baseline.meta.load.end.toFixed(2)} at its end), whose commits with a sweep running ran at ${baseline.figures.commits.ratio.median.toFixed(2)}× those without. \`--baseline <file>\` shows another saved run (bench/README.md, "Baselines").`
		: 'No saved baseline: `--baseline <file>` shows one beside these figures (bench/README.md, "Baselines").';
	const tomb = (list) => list.map(exact).join(" / ");
	const markdown = `## Lifecycle: the block collector

${measuredLine(meta)}

### Sweep throughput

Each round seeds ${exact(s.blocks)} block objects of 1 KiB into R2 and queues each as a collector candidate in the shard its hash falls in (\`POST /_bench/gc/seed\`), then \`POST /_bench/gc/sweep\` runs one sweep unit per shard (\`runUnit\`, as the queue consumer runs it, progress rows included) and its successors until nothing is due, at a policy clock two hours ahead, so that every candidate and object is past the grace period (bench/routes.ts, served only by the bench's stacks). Every candidate is garbage: each is looked up in every shard, tombstoned in every shard, looked up again, its object's upload time read (a listing of its prefix, or a head), its object deleted, and the deletion recorded in every shard (ADR 0017). Blocks per second are the candidates examined over the route's own time; ${w.rounds} rounds run each kind of sweep once, in a rotating order, each on fresh candidates; the figure is the median of rounds. Runtime CPU is utime + stime of the workerd runtime (our workers and the D1 and R2 simulators, one thread) over the sweep.

Two baselines from the same rounds. On this local runtime one thread runs our workers and the D1 and R2 simulators, so units running at once can only overlap their waits: the sweep one shard after the other shows what running the ${shards} units at once buys here, and lets the bench time the sweep's R2 calls without overlap, which splits its time into R2 and the rest (table below). The sweep of hashes over all 256 prefixes is what a unit of random hashes looks like when the backlog is small: about ${perPrefix(256)} per prefix, each object headed as before ADR 0027; with ${s.listPrefixes} prefixes, each prefix holds enough of a unit's hashes to be listed instead. Only the seeded objects are in the bucket, so a listing here reads few objects no unit wants (those of the other shards' units): in production a prefix also holds every live block, and a unit lists at most 5 pages of it before it heads the rest.

${table(["sweep", "blocks/s (median)", "each round", "runtime CPU per block", "paired ratio (median; each round)", "saved baseline: blocks/s · CPU per block", "target"], sweepRows, ["l", "r", "r", "r", "l", "r", "l"])}

${baseLine}

The sweep one shard after the other, its R2 calls timed (median of rounds; wall time while at least one call of the kind was in flight, and its share of the sweep's ${exact(Math.round(w.serial.ms))} ms):

${table(["part of the sweep", "calls", "objects", "time", "per 1,000 blocks", "share"], r2Rows, ["l", "r", "r", "r", "r", "r"])}

Seeding costs more than sweeping here: ${cpu(w.seeding.cpuPerBlockMs)} of runtime CPU per 1 KiB object put and queued (${rate(w.seeding.perSecond)}). The tombstones and deletion records each shard holds (every sweep adds one per block to every shard; kept 48 hours, TOMBSTONE_RETENTION_MS in services/gc.ts) went from ${tomb(w.tombstones.before)} to ${tomb(w.tombstones.after)} during this part.

### Commits per second while a sweep runs

A fresh stack. One user commits new versions of ${exact(s.files)} files back to back, each a \`PUT /v1/files/content\` of ${exact(s.commitBytes)} fresh bytes, ${s.concurrency} in flight. On one side of a round a sweep runs meanwhile: ${c.leadMs / 1000} s after the commits start, \`POST /_bench/gc/sweep\` drains a backlog of ${exact(c.backlog)} other blocks seeded before the round (${s.listPrefixes} prefixes, as above; one unit per shard, the ${shards} shards at once, as parallel queue consumers would), and the commits answered while it ran are counted. The other side counts the commits answered over a window as long, after the same lead, with no sweep. The order alternates each round (${c.rounds} rounds, after a warm-up); the verdict is the median of each round's ratio, with ÷ without (bench/README.md, "Paired ratios"). The runtime column is the workerd runtime's CPU time over the window's wall time: the share of its one thread in use.

${table(["commits", "commits/s (median)", "each round", "window (median)", "runtime thread busy", "with ÷ without (median; each round)", "target"], commitRows, ["l", "r", "r", "r", "r", "l", "l"])}

The runtime's one thread was busy ${pct(c.without.runtimeCpuShare)} of the window without a sweep and ${pct(c.with.runtimeCpuShare)} with one, and the sweep examined ${rate(c.sweepPerSecond)} while the commits ran, against ${rate(w.parallel.perSecond)} alone in the first part (another stack): the commits got what the sweep left of that thread. In this local stack the sweep's work (our sweep code, and the D1 and R2 simulators' work for it) runs on the thread that serves the commits, and each of its statements and R2 calls carries up to 1,000 rows or keys where a commit's carry a few, while both wait their turn on that thread and in each simulator's queue. The guard itself runs alike on both sides: every commit's batch checks its new block references against the tombstones (the \`user_blocks\` trigger, migrations/shard/0006), a lookup by hash, whether a sweep runs or not; a sweep adds tombstones for it to find. In production the sweep runs in its own isolate and each shard is its own D1 database, but a D1 database also runs one statement at a time: what a commit shares with a sweep there is its shard, while each of the sweep's statements holds it (for every unit, in every shard: the references looked up twice, the tombstones written, the deletions recorded; the split above shows their local cost). The tombstones and deletion records per shard went from ${tomb(c.tombstones.before)} to ${tomb(c.tombstones.after)} during this part.
`;
	const verdicts = [
		{
			section: "lifecycle",
			figure: `sweep, blocks examined per second, ${shards} shards`,
			value: rate(w.parallel.perSecond),
			target: `≥ ${exact(TARGETS.blocksPerSecond)}/s`,
			ok: sweepOk,
		},
		{
			section: "lifecycle",
			figure: "commits/s with a sweep running ÷ without",
			value: `${c.ratio.median.toFixed(2)}× (drop ${pct(drop)})`,
			target: `drop ≤ ${pct(TARGETS.commitDrop)}`,
			ok: commitOk,
		},
	];
	return { markdown, verdicts };
}
