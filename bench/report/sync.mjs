// The sync section: commit → frame latency, long poll wake, commits per second.
import { mark, measuredLine, msec, table } from "./format.mjs";

/** Targets from the issue. */
const TARGETS = { ws100P50Ms: 15, ws100P99Ms: 75, ws1000P99Ms: 250, commitsPerSecondOneUser: 300 };

/** The sync section from its figures (scenarios/sync.mjs): its markdown and verdicts. */
export function render(f, meta) {
	const at = (n) => f.websocket.find((w) => w.devices === n)?.fromAnswer;
	const judge = (value, limit) => (value === undefined ? null : value <= limit);
	const t = {
		ws100P50: judge(at(100)?.p50, TARGETS.ws100P50Ms),
		ws100P99: judge(at(100)?.p99, TARGETS.ws100P99Ms),
		ws1000P99: judge(at(1000)?.p99, TARGETS.ws1000P99Ms),
		commitsOneUser: f.commits.oneUser ? f.commits.oneUser.perSecond >= TARGETS.commitsPerSecondOneUser : null,
	};
	const target = (ok, text) => (ok === null ? "" : `${mark(ok)} ${text}`);
	const parts = [
		`## Sync

${measuredLine(meta)}

From one Node process, on the client's clock. Floor: a trivial authenticated GET (\`/v1/nodes/root\`) round trip takes p50 ${msec(f.baseline.getRoot.p50)}, p99 ${msec(f.baseline.getRoot.p99)} (n = ${f.baseline.getRoot.n}).`,
	];
	if (f.websocket.length > 0) {
		const rows = f.websocket.map((w) => {
			let tgt = "";
			if (w.devices === 100)
				tgt = `${target(t.ws100P50, `p50 ≤ ${TARGETS.ws100P50Ms} ms`)}, ${target(t.ws100P99, `p99 ≤ ${TARGETS.ws100P99Ms} ms`)}`;
			if (w.devices === 1000) tgt = target(t.ws1000P99, `p99 ≤ ${TARGETS.ws1000P99Ms} ms`);
			return [
				w.devices.toLocaleString("en-US"),
				`${w.fromAnswer.n}${w.missed ? ` (${w.missed} missed)` : ""}`,
				msec(w.fromAnswer.p50),
				msec(w.fromAnswer.p99),
				msec(w.fromAnswer.max),
				`${msec(w.fromSend.p50)} / ${msec(w.fromSend.p99)}`,
				msec(w.answer.p50),
				w.devices > 1 ? `${msec(w.spread.p50)} / ${msec(w.spread.p99)}` : "–",
				msec(w.pingRtt?.p50),
				tgt,
			];
		});
		const logins = f.loginSeconds ? ` (the logins took ${f.loginSeconds.toFixed(0)} s)` : "";
		parts.push(`### Commit answer → \`changes\` frame on every other device

Each commit is a PUT of a 1-byte file by a device that holds no socket; commits are ≥ ${f.settings.spacingMs} ms apart so that the hub's coalescing (4 frames/s) never merges two. Every socket has its own ticket. A user has at most 100 devices and 10 sockets per device, so up to 100 sockets each is a separate device, and past that the sockets share the 100 devices, 10 each at 1,000${logins}.

${table(["connected devices", "frames", "p50", "p99", "max", "PUT sent → frame p50 / p99", "PUT round trip p50", "first → last frame of one commit p50 / p99", "ping RTT p50 (floor)", "target"], rows, ["r", "r", "r", "r", "r", "r", "r", "r", "r", "l"])}

A negative latency means the frame reached the device before the PUT's answer reached the committer: the hub broadcasts as soon as the commit's D1 batch lands, and the answer still travels back through the hub's RPC return and the api worker. The targets are judged on the signed figures, as specified; the "PUT sent → frame" column is the whole path.`);
	}
	if (f.longpoll) {
		const lp = f.longpoll;
		parts.push(`### Long poll wake

${table(["samples", "commit answer → long poll answer p50", "p99", "max"], [[lp.n, msec(lp.p50), msec(lp.p99), msec(lp.max)]], ["r", "r", "r", "r"])}`);
	}
	const { oneUser: one, filesOneUser: files, parallel: par } = f.commits;
	if (one || par) {
		const rows = [];
		const reads = f.baseline.readsOneUser?.perSecond;
		if (one)
			rows.push([
				"1 user",
				one.count,
				one.seconds.toFixed(2),
				one.perSecond.toFixed(0),
				reads.toFixed(0),
				(one.perSecond / reads).toFixed(2),
				target(t.commitsOneUser, `≥ ${TARGETS.commitsPerSecondOneUser}/s`),
			]);
		if (files)
			rows.push([
				`1 user, file versions (\`PUT /v1/files/content\` of a few bytes, ${files.files} files)`,
				files.count,
				files.seconds.toFixed(2),
				files.perSecond.toFixed(0),
				reads.toFixed(0),
				(files.perSecond / reads).toFixed(2),
				"(reported)",
			]);
		if (par) {
			const base = f.baseline.readsParallel.perSecond;
			rows.push([
				`${par.users} users in parallel`,
				par.count,
				par.seconds.toFixed(2),
				`${par.perSecond.toFixed(0)} (per user p50 ${par.perUser.p50.toFixed(0)})`,
				base.toFixed(0),
				(par.perSecond / base).toFixed(2),
				"",
			]);
		}
		parts.push(`### Commits per second

Folder creations (each one commit through the user's hub, which serializes them; folder creations waiting together share one D1 batch, docs/decisions/0010) with ${f.settings.concurrency} requests in flight per user. The file-version row is the whole content path for a tiny file: the body is chunked, hashed, encrypted and written to R2 in parallel, then committed through the same hub, so it measures the api worker more than the hub. Raw D1 write rates cannot be reached from outside the stack, so the baseline is the same number of \`GET /v1/nodes/root\` at the same concurrency, measured just before and just after (mean shown).

${table(["workload", "commits", "seconds", "commits/s", "baseline reads/s", "commits ÷ reads", "target"], rows, ["l", "r", "r", "r", "r", "r", "l"])}`);
	}
	const verdicts = [
		["commit → frame, 100 devices, p50", at(100)?.p50, `≤ ${TARGETS.ws100P50Ms} ms`, t.ws100P50],
		["commit → frame, 100 devices, p99", at(100)?.p99, `≤ ${TARGETS.ws100P99Ms} ms`, t.ws100P99],
		["commit → frame, 1,000 devices, p99", at(1000)?.p99, `≤ ${TARGETS.ws1000P99Ms} ms`, t.ws1000P99],
	]
		.map(([figure, value, tgt, ok]) => ({ section: "sync", figure, value: msec(value), target: tgt, ok }))
		.concat(
			one
				? [
						{
							section: "sync",
							figure: "commits/s, one user",
							value: `${one.perSecond.toFixed(0)}/s`,
							target: `≥ ${TARGETS.commitsPerSecondOneUser}/s`,
							ok: t.commitsOneUser,
						},
					]
				: [],
		)
		.filter((v) => v.ok !== null);
	return { markdown: `${parts.join("\n\n")}\n`, verdicts };
}
