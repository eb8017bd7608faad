// The webhooks section: commit → webhook latency, delivered events per second, and commits with 10 endpoints beside none.
import { exact, mark, measuredLine, msec, pct, table } from "./format.mjs";

/** Targets from the issue (16). */
const TARGETS = { p50Ms: 200, p99Ms: 1000, eventsPerSecond: 200, commitDrop: 0.05 };

const rate = (v) => `${Math.round(v).toLocaleString("en-US")}/s`;
const each = (values, format = rate) => values.map((v) => format(v)).join(", ");

/** The webhooks section from its figures (scenarios/webhooks.mjs): its markdown and verdicts. */
export function render(f, meta) {
	const s = f.settings;
	const l = f.latency;
	const b = f.burst;
	const c = f.commits;
	const p50Ok = l.sent.p50 <= TARGETS.p50Ms && l.missed === 0;
	const p99Ok = l.sent.p99 <= TARGETS.p99Ms && l.missed === 0;
	const rateOk = b.deliveredPerSecond >= TARGETS.eventsPerSecond;
	const drop = 1 - c.ratio.median;
	const commitOk = drop <= TARGETS.commitDrop;
	const latencyRows = [
		[
			"commit sent → webhook received (one endpoint)",
			msec(l.sent.p50),
			msec(l.sent.p99),
			msec(l.sent.max),
			`${mark(p50Ok)} p50 ≤ ${TARGETS.p50Ms} ms · ${mark(p99Ok)} p99 ≤ ${exact(TARGETS.p99Ms)} ms`,
		],
		["commit answered → webhook received", msec(l.webhook.p50), msec(l.webhook.p99), msec(l.webhook.max), ""],
		[
			"baseline: commit answered → WebSocket `changes` frame (the same commits)",
			msec(l.frame.p50),
			msec(l.frame.p99),
			msec(l.frame.max),
			"",
		],
		["the commit itself (PUT sent → answered)", msec(l.commit.p50), msec(l.commit.p99), msec(l.commit.max), ""],
	];
	const burstRows = [
		[
			`delivered to one endpoint (first delivery → last of ${exact(b.events)})`,
			rate(b.deliveredPerSecond),
			`${mark(rateOk)} ≥ ${TARGETS.eventsPerSecond}/s`,
		],
		["baseline: the same changes journalled (the batch requests' own time)", rate(b.journalledPerSecond), ""],
		["requests sent → last delivery received", rate(b.endToEndPerSecond), ""],
	];
	const cpu = (ms) => `${ms.toFixed(2)} ms`;
	const commitRows = [
		["no endpoint", each(c.perSecond.none), "", cpu(c.cpuPerCommit.none), pct(c.busy.none), ""],
		[
			`${s.endpoints} endpoints that want none of these events (the hub kicks, the fan-out reads, nothing is delivered)`,
			each(c.perSecond.filtered),
			`${c.filteredRatio.median.toFixed(2)}× (${each(c.filteredRatio.each, (v) => `${v.toFixed(2)}×`)})`,
			cpu(c.cpuPerCommit.filtered),
			pct(c.busy.filtered),
			"",
		],
		[
			`${s.endpoints} enabled endpoints receiving every event`,
			each(c.perSecond.ten),
			`${c.ratio.median.toFixed(2)}× (${each(c.ratio.each, (v) => `${v.toFixed(2)}×`)})`,
			`${cpu(c.cpuPerCommit.ten)} (+ ${cpu(c.drainCpuPerCommit)} after the leg)`,
			pct(c.busy.ten),
			`${mark(commitOk)} drop ≤ ${pct(TARGETS.commitDrop)}`,
		],
	];
	const markdown = `## Webhooks: latency, delivery rate, and the commit path

${measuredLine(meta)}

One fresh stack, run with \`WEBHOOK_ALLOW_LOOPBACK=true\`; the receiver is a Node HTTP server in the bench's process on 127.0.0.1 that answers 200 at once. Every delivery goes the production path: the user's hub kicks the \`drive-webhook-fanout\` queue after the commit lands, the fan-out reads the journal from the endpoint's cursor and queues the delivery on \`drive-webhook-deliver\`, whose consumer signs and posts it (docs/decisions/0028-webhooks.md). Both queues' consumers have \`max_batch_timeout = 0\`.

### Commit → webhook

${exact(l.webhook.n)} commits, one at a time after ${s.warmup} of warm-up: each a \`PUT /v1/files/content\` of a new small file, with one endpoint subscribed to \`file.created\` and one device holding the sync WebSocket. Times run from the commit's request (the verdict: it includes the commit itself) or its answer to the arrival of its webhook and of its \`changes\` frame, on the bench's clock. The hub kicks the fan-out as soon as the change's batch lands, before its answer travels back, so a webhook can arrive before the answer (a negative time). The WebSocket frame waits for the sync channel's coalescing (at most 4 frames a second per user). These commits come one at a time, more than 50 ms apart, so each is the first of a quiet spell and the hub kicks at once; in a burst, a change waits up to 50 ms for the next kick (ADR 0028).${l.missed > 0 ? ` ${l.missed} webhook(s) did not arrive within ${WAIT_S} s.` : ""}

${table(["path", "p50", "p99", "max", "target"], latencyRows, ["l", "r", "r", "r", "l"])}

### Delivered events per second

${exact(b.events)} folders created through \`POST /v1/folders/batch\` (1,000 a request), one endpoint subscribed to \`folder.created\`: the fan-out reads 200 journal changes a kick and sends its successor, the delivery consumer takes up to 50 messages a batch and posts them at once. The first delivery arrived ${msec(b.firstMs)} after the first request was sent.

${table(["figure", "events/s", "target"], burstRows, ["l", "r", "l"])}

### Commits with 10 endpoints

Three users commit new versions of ${exact(s.files)} small files back to back, ${s.concurrency} in flight: one without endpoints, one with ${s.endpoints} endpoints subscribed only to \`webhook.test\` (every commit still kicks the fan-out, which reads the journal and moves the cursors, but creates no delivery), and one with ${s.endpoints} endpoints subscribed to everything (${s.endpoints} deliveries per commit). Each first makes ${exact(s.commitWarmup)} commits (workerd's JIT warms up over the first thousand or so); then each of ${c.rounds} rounds runs six legs of ${exact(s.commits)} commits, a palindrome (without, filtered, with, with, filtered, without; reversed every other round) so that a steady drift cancels within the round, and a round's figure per user is the mean of its two legs. After each leg with deliveries, the bench waits until every endpoint has received every event (at most ${each(c.drainMs, (v) => msec(v))} per round), so deliveries never run during another user's legs. Ratios are the median of the rounds' (bench/README.md, "Paired ratios"). Runtime CPU is utime + stime of the workerd runtime (our workers and the D1 simulator, one thread) over the leg, per commit; "busy" is that CPU over the leg's wall time. ${exact(c.deliveries)} deliveries in all.

${table(["user", "commits/s, each round", "÷ without (median; each round)", "runtime CPU per commit (median)", "runtime thread busy", "target"], commitRows, ["l", "r", "l", "r", "r", "l"])}

What a commit itself does with endpoints is the hub's kick: one queue send beside the change, coalesced. The filtered row adds the fan-out's reads to it. The deliveries (a signed POST each, claimed and settled with the rest of their consumer batch in one D1 statement each, ${s.endpoints} per commit) run in the queue consumers; on this local stack those run on the same runtime thread as the commits, which is ${pct(c.busy.none)} busy without endpoints, so every millisecond of delivery work is a millisecond the commits wait for. In production the consumers run in their own invocations, and what a commit shares with them is the user's shard, where each delivery writes its claim and its attempt.
`;
	const verdicts = [
		{ section: "webhooks", figure: "commit sent → webhook p50", value: msec(l.sent.p50), target: `≤ ${TARGETS.p50Ms} ms`, ok: p50Ok },
		{
			section: "webhooks",
			figure: "commit sent → webhook p99",
			value: msec(l.sent.p99),
			target: `≤ ${exact(TARGETS.p99Ms)} ms`,
			ok: p99Ok,
		},
		{
			section: "webhooks",
			figure: "events delivered per second, one endpoint",
			value: rate(b.deliveredPerSecond),
			target: `≥ ${TARGETS.eventsPerSecond}/s`,
			ok: rateOk,
		},
		{
			section: "webhooks",
			figure: `commits/s with ${s.endpoints} endpoints ÷ none`,
			value: `${c.ratio.median.toFixed(2)}× (drop ${pct(drop)})`,
			target: `drop ≤ ${pct(TARGETS.commitDrop)}`,
			ok: commitOk,
		},
	];
	return { markdown, verdicts };
}

const WAIT_S = 60;
