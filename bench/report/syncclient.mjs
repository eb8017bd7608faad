// The sync client section: first sync up and down, a 1-byte edit of a big file, change latency, idle cost; each beside rsync or a floor.
import { bytesOf, exact, mark, measuredLine, MiB, msec, pct, table } from "./format.mjs";

/** Targets from the issue (17). */
const TARGETS = { firstSyncSeconds: 60, editBytes: 2 * MiB, p99Ms: 1000 };

const s2 = (ms) => `${(ms / 1000).toFixed(2)} s`;
const s1 = (ms) => `${(ms / 1000).toFixed(1)} s`;
const perSecond = (n, ms) => `${Math.round(n / (ms / 1000)).toLocaleString("en-US")}/s`;
const mbOf = (bytes) => `${(bytes / 1e6).toFixed(0)} MB`;
const cpuOf = (ms) => `${(ms / 1000).toFixed(2)} s`;
const counts = (actions) =>
	Object.entries(actions)
		.map(([kind, n]) => `${exact(n)} ${kind}`)
		.join(", ") || "none";

/** The sync client section from its figures (scenarios/syncclient.mjs): its markdown and verdicts. */
export function render(f, meta) {
	const o = f.settings;
	const fs = f.firstSync;
	const e = f.edit;
	const l = f.latency;
	const idle = f.idle;
	const upOk = fs.up.ms <= TARGETS.firstSyncSeconds * 1000;
	const downOk = fs.down.ms <= TARGETS.firstSyncSeconds * 1000;
	const upBytes = e.up.transferBytes.upload ?? 0;
	const downBytes = e.down.transferBytes.download ?? 0;
	const upEditOk = upBytes <= TARGETS.editBytes;
	const downEditOk = downBytes <= TARGETS.editBytes;
	const p99Ok = l.client.total.p99 <= TARGETS.p99Ms;
	const stackCpu = (run) => cpuOf((run.stackCpuMs.runtime ?? 0) + (run.stackCpuMs.proxy ?? 0));

	const firstRow = (label, run, ok) => [
		label,
		s1(run.ms),
		perSecond(fs.files, run.ms),
		cpuOf(run.clientCpuMs),
		stackCpu(run),
		counts(run.actions),
		`${mark(ok)} ≤ ${TARGETS.firstSyncSeconds} s`,
	];
	const firstRows = [
		firstRow("up: `drive sync A /bulk --init` (A holds the files, the server folder is empty)", fs.up, upOk),
		firstRow("down: `drive sync B /bulk --init` (B is a fresh folder)", fs.down, downOk),
		[
			"floor: `rsync -a A/ dst/` of the same tree, two local folders",
			fs.rsyncMs === null ? "n/a" : s2(fs.rsyncMs),
			fs.rsyncMs === null ? "n/a" : perSecond(fs.files, fs.rsyncMs),
			"",
			"",
			"",
			"",
		],
	];

	const editRow = (label, run, engineBytes, ok) => [
		label,
		bytesOf(engineBytes),
		`${bytesOf(run.wire.up)} up, ${bytesOf(run.wire.down)} down`,
		s2(run.ms),
		counts(run.actions),
		ok === null ? "" : `${mark(ok)} ≤ ${bytesOf(TARGETS.editBytes)}`,
	];
	const editRows = [
		editRow("A: `drive sync A` uploads the edit", e.up, upBytes, upEditOk),
		editRow("B: `drive sync B` downloads it (delta: blocks its old copy lacks)", e.down, downBytes, downEditOk),
		[
			"A then B: the edit reaching the other client",
			bytesOf(upBytes + downBytes),
			`${bytesOf(e.up.wire.up + e.up.wire.down + e.down.wire.up + e.down.wire.down)} both ways`,
			s2(e.up.ms + e.down.ms),
			"",
			"",
		],
		[
			"floor: `rsync -a -I --no-whole-file --stats` of the edited file over the old copy",
			e.rsync === null ? "n/a" : `${bytesOf(e.rsync.literal)} literal data`,
			e.rsync === null ? "n/a" : `${bytesOf(e.rsync.sent)} sent, ${bytesOf(e.rsync.received)} received`,
			e.rsync === null ? "n/a" : s2(e.rsync.ms),
			"",
			"",
		],
		...[
			["for scale: the first upload of the file (A, `--init`)", e.initialUp, "upload", "up"],
			["for scale: its first download (B, `--init`)", e.initialDown, "download", "down"],
		].map(([label, run, kind, way]) => [
			label,
			bytesOf(run.transferBytes[kind] ?? 0),
			`${bytesOf(run.wire[way])} ${way}`,
			s2(run.ms),
			"",
			"",
		]),
	];

	const latencyRows = [
		[
			"file written in A's folder → B's `download` action",
			msec(l.client.total.p50),
			msec(l.client.total.p99),
			msec(l.client.total.max),
			`${mark(p99Ok)} p99 ≤ ${exact(TARGETS.p99Ms)} ms`,
		],
		["… of which: written → A's `upload` action", msec(l.client.upload.p50), msec(l.client.upload.p99), msec(l.client.upload.max), ""],
		[
			"… of which: A's `upload` action → B's `download` action",
			msec(l.client.download.p50),
			msec(l.client.download.p99),
			msec(l.client.download.max),
			"",
		],
		[
			"baseline: API `PUT /v1/files/content` sent → B's `download` action",
			msec(l.api.total.p50),
			msec(l.api.total.p99),
			msec(l.api.total.max),
			"",
		],
		[
			"baseline: that PUT answered → B's `download` action",
			msec(l.api.afterCommit.p50),
			msec(l.api.afterCommit.p99),
			msec(l.api.afterCommit.max),
			"",
		],
		["the API commit itself (PUT sent → answered)", msec(l.api.commit.p50), msec(l.api.commit.p99), msec(l.api.commit.max), ""],
	];

	const mbRss = (bytes) => `${(bytes / 1e6).toFixed(1)} MB`;
	const idleRows = [
		[
			`\`drive sync B --watch\` over ${exact(idle.files)} files`,
			cpuOf(idle.cpuMs),
			`${((idle.cpuMs / idle.windowMs) * 100).toFixed(2)} %`,
			mbRss(idle.rss.mean),
			mbRss(idle.rss.max),
			mbRss(idle.hwm),
		],
		[
			'floor: `node -e "setInterval(() => {}, 1000)"`, the same window',
			cpuOf(idle.floor.cpuMs),
			`${((idle.floor.cpuMs / idle.windowMs) * 100).toFixed(2)} %`,
			mbRss(idle.floor.rss.mean),
			mbRss(idle.floor.rss.max),
			"",
		],
	];

	// Requests by route of both runs, the most answer time first: where the first sync's time goes.
	const routeRows = ["up", "down"].flatMap((side) =>
		Object.entries(fs[side].requests ?? {})
			.sort((x, y) => y[1].ms - x[1].ms)
			.filter(([, r], i, all) => r.ms >= all.reduce((sum, [, other]) => sum + other.ms, 0) / 100)
			.map(([route, r]) => [side, `\`${route}\``, exact(r.n), (r.n / fs.files).toFixed(2), s1(r.ms), msec(r.ms / r.n)]),
	);
	const runtimeMs = (run) => run.stackCpuMs.runtime ?? 0;
	/** The first sync's files at one fully busy runtime thread: the floor of its wall time on this stack. */
	const ceiling = (run) => `${s1(runtimeMs(run))} (${perSecond(fs.files, runtimeMs(run))})`;
	const markdown = `## Sync client: first sync, a 1-byte edit, change latency, idle cost

${measuredLine(meta)}

One fresh stack. Every client is a \`drive\` process of the snapshot's CLI (\`node bin/drive.mjs\`, the engine in src/sync/engine), signed in as its own device with its own \`DRIVE_CONFIG_DIR\`; each part uses its own user. A run is timed whole, from the process's start to its exit (Node start-up, sign-in check, every round); the bench syncs the disk (\`sync\`) before each. Client CPU is the \`drive\` process's utime + stime; stack CPU that of both workerd processes (runtime + proxy) over the run. ${f.rsync ? `rsync ${f.rsync}.` : "rsync was not found: no floor."}

### First sync of ${exact(fs.files)} files

${exact(fs.files)} files of ${bytesOf(o.minBytes)}–${bytesOf(o.maxBytes)} (seeded sizes and content, ${mbOf(fs.bytes)} in all) in ${exact(fs.folders)} folders (${o.topFolders} folders of ${o.subfolders}). Up: client A runs \`drive sync A /bulk --init\` once over the folder holding them, with the server folder empty; down: client B runs \`drive sync B /bulk --init\` into a fresh folder. B's tree is then compared with A's, file by file (SHA-256). The floor is \`rsync -a\` of the same tree between two local folders.

${table(["run", "time", "files/s", "client CPU", "stack CPU", "actions", "target"], firstRows, ["l", "r", "r", "r", "r", "l", "l"])}

Where the time goes: the requests each run made, by route, as \`wrangler dev\` logged them (routes with at least 1 % of the run's answer time), with the time the stack took to answer each, summed (requests run several at a time, so the sum can exceed the run's wall time). The runtime thread (our workers and the local D1/R2 simulators) used ${msec(runtimeMs(fs.up) / fs.files)} of CPU per file up and ${msec(runtimeMs(fs.down) / fs.files)} down; over the run's wall time that is ${pct(runtimeMs(fs.up) / fs.up.ms)} and ${pct(runtimeMs(fs.down) / fs.down.ms)} of one core. At that CPU per file, a runtime thread busy all the time would take at least ${ceiling(fs.up)} up and ${ceiling(fs.down)} down: the wall time also waits on round trips and the client on a shared machine, but the CPU per file alone decides whether the target can be met. The client's rounds: ${exact(fs.up.plans)} plan(s) up, ${exact(fs.down.plans)} down; first action after ${s2(fs.up.firstActionMs)} up and ${s2(fs.down.firstActionMs)} down (start-up, sign-in check, pull, scan, plan).

${table(["run", "route", "requests", "per file", "answer time, summed", "mean"], routeRows, ["l", "l", "r", "r", "r", "r"])}

### One byte edited in a ${bytesOf(e.bytes)} file

A ${bytesOf(e.bytes)} file of random bytes (so every FastCDC block is distinct) is synced to both clients; then the byte at offset ${exact(e.offset)} is changed on A, A runs \`drive sync A\` once and then B runs \`drive sync B\` once. "Engine bytes" are what the engine reports in its \`action\` event: block bytes sent for an upload, bytes received for a download (a delta download fetches only the blocks its old copy lacks). "On the wire" counts every byte both ways of a TCP proxy in front of the stack that these two clients talk through: requests and their headers, block lists, the journal reads of each run and all. B's file is checked against A's (SHA-256).

${table(["run", "engine bytes", "on the wire", "time", "actions", "target"], editRows, ["l", "r", "r", "r", "l", "l"])}

Each side moves the FastCDC block that holds the edited byte (blocks of 256 KiB to 4 MiB, 1 MiB on average; two blocks when the edit moves a cut point), so the figure depends on where the byte falls: on a 4 MiB block it would be 4 MiB each way. rsync's blocks are far smaller (about the square root of the file's size, 10 KiB here): it sends one of them as literal data, and the checksums of all of them the other way.

### A change on one client appearing on the other

Two clients run \`drive sync --watch --json\` on one server folder (defaults: the file watcher as a hint, a rescan every 60 s, the sync WebSocket). ${exact(l.samples)} samples after ${o.warmup} of warm-up, each of two kinds, alternating: a new small file written into A's folder, timed until B's \`{"event":"action","kind":"download"}\` for it arrives on B's stdout (B's copy is then checked); and the baseline, the same kind of file committed through the API (\`PUT /v1/files/content\`), timed until the same event, which leaves out A's half of the path. Each sample waits for both events and 300 ms more before the next.

${table(["path", "p50", "p99", "max", "target"], latencyRows, ["l", "r", "r", "r", "l"])}

### Idle with ${exact(idle.files)} files watched

Client B, after the first sync, runs \`drive sync B --watch\` over its ${exact(idle.files)} files with the defaults: the periodic rescan every ${exact(idle.rescanMs / 1000)} s (\`DRIVE_SYNC_RESCAN_MS\` unset), the file watches (one per folder on Linux), the sync WebSocket. Its start-up (first round: pull, scan of every file, an empty plan) took ${s2(idle.startupMs)} and ${cpuOf(idle.startupCpuMs)} of CPU. ${o.settleSeconds} s after its first \`idle\` event, the window of ${s1(idle.windowMs)} starts: CPU is utime + stime from \`/proc/<pid>/stat\` over the window, RSS is VmRSS from \`/proc/<pid>/status\` once a second (VmHWM is the process's peak since it started), beside an idle Node process measured over the same window. ${idle.rounds === 0 ? "No round ran in the window (no rescan fell in it)." : `${idle.rounds} round(s) ran in the window (${idle.actions} actions).`} A rescan costs about what a \`drive sync B\` with nothing to do costs: that run took ${s2(idle.noopRun.ms)} and ${cpuOf(idle.noopRun.cpuMs)} of CPU, start-up included (${exact(idle.noopRun.actions)} actions). Spread over the ${exact(idle.rescanMs / 1000)} s between rescans, that is at most ${((idle.noopRun.cpuMs / idle.rescanMs) * 100).toFixed(1)} % of a core on top of the window's figure: with the defaults, the rescan, not the waiting, is most of an idle client's CPU.

${table(["process", "CPU in the window", "CPU ÷ wall", "RSS (mean)", "RSS (max)", "VmHWM"], idleRows, ["l", "r", "r", "r", "r", "r"])}
`;
	const v = (figure, value, target, ok) => ({ section: "syncclient", figure, value, target, ok });
	const verdicts = [
		v(`first sync up, ${exact(fs.files)} files`, s1(fs.up.ms), `≤ ${TARGETS.firstSyncSeconds} s`, upOk),
		v(`first sync down, ${exact(fs.files)} files`, s1(fs.down.ms), `≤ ${TARGETS.firstSyncSeconds} s`, downOk),
		v("1-byte edit: block bytes uploaded", bytesOf(upBytes), `≤ ${bytesOf(TARGETS.editBytes)}`, upEditOk),
		v("1-byte edit: bytes downloaded", bytesOf(downBytes), `≤ ${bytesOf(TARGETS.editBytes)}`, downEditOk),
		v("change on A → B's download, p99", msec(l.client.total.p99), `≤ ${exact(TARGETS.p99Ms)} ms`, p99Ok),
	];
	return { markdown, verdicts };
}
