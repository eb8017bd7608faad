// The load section: many users with two socket devices each, a mix of requests for a fixed time; the directory cache on beside off.
import { exact, mark, measuredLine, msec, pct, table } from "./format.mjs";

/** Targets from the issue (18). */
const TARGETS = { serverErrors: 0 };

/** The two stacks of a run, in the order of the columns. */
const MODES = [
	["cacheOn", "directory cache on"],
	["cacheOff", "directory cache off"],
];

/** The classes in the order of the tables; each names its route. */
const CLASSES = {
	list: "list a folder: `GET /v1/nodes/:id/children`",
	download: "download: `GET /v1/files/:id/content`",
	"upload-version": "upload a new version: `PUT /v1/files/:id/content`",
	"upload-new": "upload a new file: `PUT /v1/files/content`",
	rename: "rename: `PATCH /v1/nodes/:id`",
	changes: "pull after a `changes` frame: `GET /v1/changes`",
};

const rate = (v) => `${Math.round(v).toLocaleString("en-US")}/s`;
const per = (v) => (Number.isFinite(v) ? v.toFixed(2) : "n/a");
const cpu = (ms) => (Number.isFinite(ms) ? `${ms.toFixed(2)} ms` : "n/a");

/** Operations of both workers, summed per "BINDING target" key. */
function operations(run) {
	const sum = {};
	for (const side of ["api", "notify"]) for (const [k, n] of Object.entries(run.operations[side] ?? {})) sum[k] = (sum[k] ?? 0) + n;
	return sum;
}

/** D1 operations (queries and batches) per database binding, with the hubs' part. */
function d1Load(run) {
	const all = operations(run);
	const byBinding = {};
	for (const [key, n] of Object.entries(all)) {
		const [binding, target] = key.split(" ");
		if (!target.startsWith("d1.")) continue;
		byBinding[binding] ??= { ops: 0, hub: 0 };
		byBinding[binding].ops += n;
		byBinding[binding].hub += run.operations.notify?.[key] ?? 0;
	}
	const total = Object.values(byBinding).reduce((a, b) => a + b.ops, 0);
	return { byBinding, total, all };
}

const errorsOf = (e) => e.status5xx + e.network;
const errorCell = (e) => `${exact(e.status5xx)} · ${exact(e.status429)} · ${exact(e.status4xx)} · ${exact(e.network)}`;

/** The load section from its figures (scenarios/load.mjs), beside `baseline` (a saved run) when there is one: its markdown and verdicts. */
export function render(f, meta, baseline) {
	const s = f.settings;
	const runs = MODES.filter(([k]) => f[k]).map(([k, label]) => ({ key: k, label, run: f[k], d1: d1Load(f[k]) }));
	const head = (first) => [first, ...runs.map((r) => r.label)];
	const align = (n) => ["l", ...Array(n).fill("r")];

	const summaryRows = [
		["requests per second (all classes)", ...runs.map((r) => rate(r.run.perSecond))],
		["requests in the window", ...runs.map((r) => `${exact(r.run.requests)} in ${r.run.seconds.toFixed(1)} s`)],
		[
			"errors: 5xx · 429 · other 4xx · network",
			...runs.map((r) => `${errorCell(r.run.errors)} ${mark(errorsOf(r.run.errors) <= TARGETS.serverErrors)}`),
		],
		["sockets open · closed during the window", ...runs.map((r) => `${exact(r.run.sockets)} · ${exact(r.run.socketsLost)}`)],
		["`changes` frames received", ...runs.map((r) => exact(r.run.frames.changes))],
		[
			"runtime CPU per request (workerd runtime · proxy)",
			...runs.map((r) => `${cpu(r.run.cpuMsPerRequest.runtime)} · ${cpu(r.run.cpuMsPerRequest.proxy)}`),
		],
		["runtime thread busy (its CPU over the window)", ...runs.map((r) => pct(r.run.runtimeBusy))],
		["D1 operations per request (all databases)", ...runs.map((r) => per(r.d1.total / r.run.requests))],
		[
			"1-minute load average at the window's start · end",
			...runs.map((r) => `${r.run.load.start.toFixed(2)} · ${r.run.load.end.toFixed(2)}`),
		],
		["setup (signups, logins, seeding, sockets)", ...runs.map((r) => `${r.run.setupSeconds.toFixed(0)} s`)],
	];

	const classRows = Object.entries(CLASSES).map(([k, label]) => [
		label,
		...runs.flatMap((r) => {
			const c = r.run.classes[k];
			return [`${pct(c.n / r.run.requests)} · ${rate(c.perSecond)}`, `${msec(c.p50)} · ${msec(c.p99)}`, errorCell(c.errors)];
		}),
	]);
	const classHead = [
		"class",
		...runs.flatMap((r) => [`share · rate (${r.label})`, `p50 · p99 (${r.label})`, `5xx · 429 · 4xx · net (${r.label})`]),
	];

	const bindings = [...new Set(runs.flatMap((r) => Object.keys(r.d1.byBinding)))].sort((a, b) =>
		a === "DIRECTORY" ? -1 : b === "DIRECTORY" ? 1 : a.localeCompare(b),
	);
	const users = (r, b) => {
		const i = /^SHARD_(\d+)$/.exec(b)?.[1];
		return i === undefined ? "" : ` · ${exact(r.run.usersPerShard[Number(i)])} users`;
	};
	const shareRows = bindings.map((b) => [
		`\`${b}\``,
		...runs.flatMap((r) => {
			const x = r.d1.byBinding[b] ?? { ops: 0, hub: 0 };
			return [`${exact(x.ops)} (hubs ${exact(x.hub)})${users(r, b)}`, pct(x.ops / r.d1.total), per(x.ops / r.run.requests)];
		}),
	]);
	const countOf = (r, target, binding) =>
		Object.entries(r.d1.all)
			.filter(([k]) => k.endsWith(` ${target}`) && (binding === undefined || k.startsWith(`${binding} `)))
			.reduce((a, [, v]) => a + v, 0);
	const otherRow = (label, target, binding) => [
		label,
		...runs.flatMap((r) => {
			const n = countOf(r, target, binding);
			return [exact(n), "", per(n / r.run.requests)];
		}),
	];
	// Only the R2 operations the mix made (it deletes and lists nothing).
	const r2 = ["r2.put", "r2.get", "r2.head", "r2.delete", "r2.list"].filter((t) => runs.some((r) => countOf(r, t) > 0));
	shareRows.push(...r2.map((t) => otherRow(`R2 \`${t}\``, t)), otherRow("Durable Object calls (`USER_HUB`)", "do.call", "USER_HUB"));
	const shareHead = ["binding", ...runs.flatMap((r) => [`operations (${r.label})`, "share of D1", "per request"])];

	const samples = runs.flatMap((r) => r.run.errorSamples.map((e) => `${r.label}: ${e}`));
	const dir = (r) => r.d1.byBinding.DIRECTORY?.ops ?? 0;
	const base = baseline?.figures;
	const baseLine = base?.cacheOn
		? `Saved baseline (${baseline.source}, measured ${baseline.meta.when} at \`${baseline.meta.machine.commit}\`): ${rate(base.cacheOn.perSecond)} with the cache on, ${base.cacheOff ? rate(base.cacheOff.perSecond) : "n/a"} off; directory share ${pct(dir({ d1: d1Load(base.cacheOn) }) / d1Load(base.cacheOn).total)} on.`
		: "No saved baseline: the cache-off run is this section's baseline, measured in the same run.";

	const markdown = `## Load: ${exact(s.users)} users on ${s.shards} shards, ${s.devicesPerUser} socket devices each

${measuredLine(meta)}

Two fresh stacks, one after the other, both with \`DRILLS=on\` (src/shared/drills.ts: every D1, R2 and Durable Object binding of the api and the notify worker counts its operations; no fault is set): the first with \`DIRECTORY_CACHE=on\` (the default), the second with \`DIRECTORY_CACHE=off\` (every authenticated request reads the directory's primary). On each, ${exact(s.users)} users sign up (placed on the ${s.shards} shards by \`placeUser\`), each logs in a second device, makes a folder and seeds ${s.files} files of ${exact(s.minBytes)}–${exact(s.maxBytes)} bytes in one \`POST /v1/files/batch\`, and every device opens the sync WebSocket (ticket, then upgrade): ${exact(s.users * s.devicesPerUser)} sockets from the bench's one Node process. Then, for ${s.seconds} s, ${s.inFlight} requests are in flight at any time (a closed loop: each lane sends its next request when the last is answered, so the stack runs at its capacity for this mix and the rate is that capacity on this machine). A lane first serves a device whose socket sent a \`changes\` frame (it pulls \`GET /v1/changes\` from its cursor, as the sync client does), else picks one of the ${exact(s.users * s.devicesPerUser)} devices at random and an action by weight: ${s.mix.map((m) => `${m.op} ${m.weight}`).join(", ")} (the reasons are in bench/scenarios/load.mjs). Uploads are ${exact(s.minBytes)}–${exact(s.maxBytes)} random bytes. The bench's client, the proxy and the runtime share the machine's cores; the latencies include waiting in the runtime's one thread. The two stacks run one after the other, not interleaved, so their rates and latencies also differ by the machine's load at the time (its load average is in the table): compare the columns by runtime CPU and D1 operations per request, which hold up under load.

### Requests

${table(head("figure"), summaryRows, align(runs.length))}

### Per route class

${table(classHead, classRows, ["l", ...runs.flatMap(() => ["r", "r", "r"])])}

### Each database's share of the load

D1 operations (statements run on their own, and batches, each counted once) by binding, over the window, from \`POST /__drills {"reset":true}\` on both workers; "hubs" is the part the users' Durable Objects (the notify worker) ran; each stack places its own users (\`placeUser\`), so the users per shard differ a little between the columns.

${table(shareHead, shareRows, ["l", ...runs.flatMap(() => ["r", "r", "r"])])}

${baseLine}${samples.length > 0 ? `\n\nFirst errors: ${samples.map((e) => `\`${e}\``).join(", ")}.` : ""}
`;
	const verdicts = runs.map((r) => ({
		section: "load",
		figure: `5xx and network errors, ${r.label}`,
		value: `${exact(errorsOf(r.run.errors))} of ${exact(r.run.requests)} (${rate(r.run.perSecond)})`,
		target: `${TARGETS.serverErrors}`,
		ok: errorsOf(r.run.errors) <= TARGETS.serverErrors,
	}));
	return { markdown, verdicts };
}
