// The small-request section: reads and 4 KiB uploads beside the 404 floor, with a saved baseline.
import { mark, measuredLine, msec, pct, plural, table } from "./format.mjs";

/** Targets from the issue: metadata reads beside the 404 floor, 4 KiB uploads by one user. */
const TARGETS = { smallReadVsFloor: 0.85, smallUploadsPerSecond: 200, smallDownloadsPerSecond: 170 };

/** What each row of the small-request section sends. */
const SMALL_ROWS = {
	floor: "floor: unauthenticated `GET /v1/<unknown>` → 404",
	d1Read: "ceiling: unauthenticated `GET /_bench/d1`, one D1 read and nothing else",
	me: "`GET /v1/me`",
	node: "`GET /v1/nodes/:id` (a file two folders down)",
	children: "`GET /v1/nodes/:id/children` (40 children)",
	r2Put: "ceiling: `PUT /_bench/raw/:key`, 4 KiB, one R2 put and nothing else",
	putNew: "`PUT /v1/files/content`, 4 KiB, a new file",
	putVersion: "`PUT /v1/files/content`, 4 KiB, a new version",
	putBatch: "`POST /v1/files/batch`, 64 new files of 4 KiB per request (rate and CPU per file, latency per request)",
	getBatch: "`POST /v1/files/batch/content`, 64 files of 4 KiB per request (rate and CPU per file, latency per request)",
};

/** The small-request section from its figures (scenarios/small.mjs), beside `baseline` (saved figures of an earlier run) when there is one: its markdown and verdicts. */
export function render(f, meta, baseline) {
	const s = f.settings;
	const isRead = (name) => name === "me" || name === "node" || name === "children";
	const isUpload = (name) => name === "putNew" || name === "putVersion" || name === "putBatch";
	// A sync client's first download of 10,000 small files in a minute.
	const isDownload = (name) => name === "getBatch";
	const judge = (name, row) =>
		isRead(name)
			? row.vsFloor.median >= TARGETS.smallReadVsFloor
			: isUpload(name)
				? row.rate >= TARGETS.smallUploadsPerSecond
				: isDownload(name)
					? row.rate >= TARGETS.smallDownloadsPerSecond
					: null;
	const tgt = (name) =>
		isRead(name)
			? `≥ ${pct(TARGETS.smallReadVsFloor)} of the floor`
			: isUpload(name)
				? `≥ ${TARGETS.smallUploadsPerSecond}/s`
				: isDownload(name)
					? `≥ ${TARGETS.smallDownloadsPerSecond}/s`
					: "";
	const cpu = (row) => `${row.cpuMsPerRequest.runtime.toFixed(2)} ms`;
	const rate = (row) => `${row.rate.toFixed(0)}/s`;
	const base = baseline?.figures;
	const sameRun = baseline?.meta.when === meta.when;
	const baseCell = (stackName, name) => {
		const row = base?.[stackName]?.rows[name];
		return row ? `${rate(row)} · ${pct(row.vsFloor.median)} · ${cpu(row)}` : "–";
	};
	const rows = (stackName, judged) =>
		Object.keys(SMALL_ROWS).map((name) => {
			const row = f[stackName].rows[name];
			const ok = judged ? judge(name, row) : null;
			return [
				SMALL_ROWS[name],
				rate(row),
				msec(row.latency.p50),
				msec(row.latency.p99),
				name === "floor" ? "100 %" : `${pct(row.vsFloor.median)} (${row.vsFloor.each.map(pct).join(", ")})`,
				cpu(row),
				`${row.cpuMsPerRequest.proxy.toFixed(2)} ms`,
				baseCell(stackName, name),
				...(judged ? [tgt(name), ok === null ? "" : mark(ok)] : []),
			];
		});
	const header = [
		"request",
		"rate (median of rounds)",
		"p50",
		"p99",
		"rate ÷ floor's just before (median; each round)",
		"runtime CPU / request",
		"proxy CPU / request",
		"baseline: rate · ÷ floor · CPU",
	];
	const align = ["l", "r", "r", "r", "r", "r", "r", "r", "l", "l"];
	const baseLine = base
		? `The baseline columns are ${sameRun ? "this run's own figures: this run was saved as the baseline" : `the figures measured on ${baseline.meta.when} at \`${baseline.meta.machine.commit}\``} (${baseline.source}).`
		: "No baseline: `npm run bench -- --only small --save-baseline` saves one to bench/baselines/small.json.";
	const m = f.measured;
	const verdicts = Object.keys(SMALL_ROWS)
		.filter((name) => judge(name, m.rows[name]) !== null)
		.map((name) => ({
			section: "small",
			figure: SMALL_ROWS[name],
			value: isRead(name) ? `${pct(m.rows[name].vsFloor.median)} of the floor` : rate(m.rows[name]),
			target: tgt(name),
			ok: judge(name, m.rows[name]),
		}));
	const markdown = `## Small requests

${measuredLine(meta)}

${s.clients} clients, each on its own keep-alive connection (node:http; ${m.connections} connections were opened in all), send requests back to back as one user. After a warm-up of ${s.warmUp} requests of every row (uploads: ${Math.ceil(s.warmUp / 2)}), each of ${plural(s.rounds, "round")} runs every row in the order below, a fixed number of requests each (${s.reads} for a read, ${s.writes} for an upload), and each right after ${s.floor} requests of the floor: a row's rate is divided by that floor's, and the median of those ratios is its figure (bench/README.md, "Paired ratios"). The floor's own row sums all its phases. Every answer's status is checked, and every upload's stored size and SHA-256. CPU per request is utime + stime of the workerd runtime (our workers and the local R2/D1 simulators, one thread) over the row's requests, from /proc. Uploads write fresh random bytes; new files get distinct names in one folder, new versions go to ${4 * s.clients} files, each written by one client only, so no two requests race on one file. The two ceiling rows are not our API: one D1 read, and one R2 put of 4 KiB, each with nothing else (bench/routes.ts, served only by the bench's stacks). In this local stack the D1 and R2 simulators run on the same workerd thread as our workers, so their CPU is the runtime's: no authenticated read can be cheaper than the D1 row, and no upload of new content faster than the R2 row.

${table([...header, "target", "met"], rows("measured", true), align)}

${baseLine} \`--baseline <file>\` shows another saved run (bench/README.md, "Baselines").

### With wrangler dev's local trace collector on

What \`npm start\` users see (the issue's figures were taken this way): the same rows on a second stack that keeps the collector on, ${plural(f.traced.rounds, "round")}. The verdicts above come from the stack without it (bench/README.md, "The local trace collector").

${table(header, rows("traced", false), align)}
`;
	return { markdown, verdicts };
}
