// The capacity model for 10M DAU: the assumptions (ASSUMPTIONS, change them
// here), the platform's published limits (LIMITS, each with its page), and
// the figures the bench measured on the local stack (bench/scenarios/capacity.mjs)
// -> docs/capacity.md and the capacity section of BENCHMARKS.md.
// `npm run capacity` measures and writes both; `npm run capacity -- --model`
// rewrites docs/capacity.md from the saved figures (bench/baselines/capacity.json)
// after an assumption changed.
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

/** Every assumption of the model, in one place. Each says where it comes from. */
export const ASSUMPTIONS = {
	dau: { value: 10_000_000, why: "the issue's target (iteration 5 of the design)" },
	usersPerDau: { value: 2, why: "registered accounts per daily active one (a MAU/DAU of about 2 for file sync products)" },
	peakToAverage: { value: 3, why: "peak hour over the day's average (operations.md §5.4)" },
	/** Requests per DAU per day by route class: the classes the bench measured. 150 in all (operations.md §5.4). */
	mix: {
		value: {
			"GET /v1/me": 5,
			"GET /v1/nodes/:id": 25,
			"GET /v1/nodes/:id/children": 25,
			"GET /v1/changes": 60,
			"GET /v1/files/:id/content": 20,
			"PUT /v1/files/content (new file)": 5,
			"PUT /v1/files/:id/content (new version)": 5,
			"PATCH /v1/nodes/:id (rename)": 5,
		},
		why: "a sync client's day: mostly change pulls after notifications, listings and opens; 15 changes (operations.md assumed 10)",
	},
	filesPerUser: { value: 2_000, why: "files and folders an account holds (operations.md §5.4)" },
	versionsPerFile: {
		value: 1.5,
		why: "versions kept per file: most files never change; retention keeps 30 days / 100 versions (VERSION_MAX_*)",
	},
	extraBlocksPerVersion: {
		value: 1,
		why: "blocks beyond the first of an average version: most files are under one 1 MiB block, a few are large",
	},
	journalDays: { value: 30, why: "JOURNAL_RETENTION_DAYS in wrangler.toml" },
	shardFill: { value: 0.5, why: "fill a shard to half its 10 GB, to leave room for growth and for moving users (operations.md §5.1)" },
	utilisation: { value: 0.5, why: "run a database or object at half its throughput at peak" },
	directoryQueriesPerMiss: {
		value: 1,
		why: "directory queries of an authenticated request whose caller is not cached: readCaller, one join of devices and users (workers/api/services/sessions.ts)",
	},
	directoryCacheHit: {
		value: 0.5,
		why: "share of authenticated requests that need no directory read once the shard rides in the token and callers are cached for 30 s per isolate (ADR 0030). Measured: 38 % in the load bench (BENCHMARKS.md, load: 2,000 devices at about 1.4 requests a minute each, most requests a device's first in 30 s), 71 % for a device requesting every 5 s and 100 % within a burst (test/api/directory-cache.test.ts); a day of sync is mostly bursts (a pull after a notification, then its downloads), so half",
	},
	statementsPerCommit: {
		value: 12,
		why: "statements in a one-file commit's D1 batch and its reads (workers/notify/tree-ops.ts: precondition reads, node, version, block list, user blocks, journal, usage); the notify worker's D1 time is not wrapped, so counted, not timed",
	},
	storedBytesPerUser: { value: 2 * 2 ** 30, why: "2 GiB of file versions per account" },
	dedupAndCompression: { value: 0.8, why: "stored R2 bytes over logical bytes (shared blocks, deflate where it helps)" },
	infrequentAccessShare: {
		value: 0.5,
		why: "share of stored bytes old enough to tier to Infrequent Access (COLD_AFTER_DAYS = 90, ADR 0027)",
	},
	uploadedBytesPerDau: { value: 20e6, why: "bytes uploaded per DAU per day, in about 1 MiB blocks (CHUNK_AVG_SIZE)" },
	downloadedBytesPerDau: { value: 50e6, why: "bytes downloaded per DAU per day" },
	hottestBlockShare: {
		value: 1e-4,
		why: "share of block writes that land on the single most common block (the empty file, a popular installer's blocks)",
	},
	heavyUserRequestsPerSecond: {
		value: 50,
		why: "the busiest account's sustained requests per second (an API integration), below its 100 changes/s budget",
	},
	webhookAdoption: { value: 0.05, why: "share of changes with at least one webhook endpoint (operations.md §1)" },
	largestDownloadBytes: { value: 10 * 2 ** 30, why: "MAX_FILE_BYTES: one 10 GiB file in one response" },
};

/** The platform's published limits, each with the page that states it. */
export const LIMITS = {
	d1Size: { value: 10e9, text: "10 GB per database, not raisable", url: "https://developers.cloudflare.com/d1/platform/limits/" },
	d1Throughput: {
		text: "one database processes queries one at a time: 1 ms per query ≈ 1,000 queries/s",
		url: "https://developers.cloudflare.com/d1/platform/limits/",
	},
	d1Bindings: {
		value: 5000,
		text: "about 5,000 D1 bindings per Worker script (1 MB of metadata)",
		url: "https://developers.cloudflare.com/d1/platform/limits/",
	},
	d1Databases: {
		value: 50_000,
		text: "50,000 databases per account (Workers Paid; raisable)",
		url: "https://developers.cloudflare.com/d1/platform/limits/",
	},
	d1Queries: { value: 1000, text: "1,000 queries per Worker invocation", url: "https://developers.cloudflare.com/d1/platform/limits/" },
	subrequests: {
		value: 10_000,
		text: "10,000 subrequests per request (Workers Paid)",
		url: "https://developers.cloudflare.com/workers/platform/limits/",
	},
	doThroughput: {
		value: 1000,
		text: "soft limit of 1,000 requests per second per object",
		url: "https://developers.cloudflare.com/durable-objects/platform/limits/",
	},
	r2KeyWrites: {
		value: 1,
		text: "1 write per second to the same key (429 above)",
		url: "https://developers.cloudflare.com/r2/platform/limits/",
	},
	r2ClassA: {
		value: 4.5,
		text: "$4.50 per million Class A (writes); $9.00 in Infrequent Access",
		url: "https://developers.cloudflare.com/r2/pricing/",
	},
	r2ClassB: {
		value: 0.36,
		text: "$0.36 per million Class B (reads); $0.90 in Infrequent Access",
		url: "https://developers.cloudflare.com/r2/pricing/",
	},
	r2ClassBIa: { value: 0.9, text: "$0.90 per million Class B in Infrequent Access", url: "https://developers.cloudflare.com/r2/pricing/" },
	r2Storage: { value: 0.015, text: "$0.015 per GB-month Standard", url: "https://developers.cloudflare.com/r2/pricing/" },
	r2StorageIa: {
		value: 0.01,
		text: "$0.01 per GB-month Infrequent Access, $0.01 per GB retrieved",
		url: "https://developers.cloudflare.com/r2/pricing/",
	},
	queueThroughput: {
		value: 5000,
		text: "5,000 messages per second per queue",
		url: "https://developers.cloudflare.com/queues/platform/limits/",
	},
};

const A = Object.fromEntries(Object.entries(ASSUMPTIONS).map(([k, v]) => [k, v.value]));
const DAY = 86_400;
const MONTH_DAYS = 30;

/** Per-request operation counts of a class, both workers added up, split by what they reach. */
function opsOf(cls) {
	const both = [cls.api, cls.notify ?? {}];
	const sum = (test) =>
		both.reduce(
			(n, counts) =>
				n +
				Object.entries(counts)
					.filter(([k]) => test(k))
					.reduce((m, [, v]) => m + v, 0),
			0,
		);
	const per = (test) => sum(test) / cls.requests;
	return {
		directory: per((k) => k.startsWith("DIRECTORY d1.")),
		shard: per((k) => k.startsWith("SHARD_") && k.includes(" d1.")),
		shardBatches: per((k) => k.startsWith("SHARD_") && k.endsWith(" d1.batch")),
		hub: per((k) => k === "USER_HUB do.call"),
		r2Put: per((k) => k.endsWith(" r2.put")),
		r2Get: per((k) => k.endsWith(" r2.get") || k.endsWith(" r2.head")),
		r2Other: per((k) => k.endsWith(" r2.delete") || k.endsWith(" r2.list")),
	};
}

/** Mean D1 time per query on the api side, over every class: meta.duration where the result had it, wall time otherwise. */
function queryTimes(perClass) {
	let metaMs = 0;
	let metaQueries = 0;
	let wallMs = 0;
	let calls = 0;
	for (const cls of Object.values(perClass))
		for (const t of Object.values(cls.d1 ?? {})) {
			metaMs += t.metaMs;
			metaQueries += t.metaQueries;
			wallMs += t.wallMs;
			calls += t.calls;
		}
	return { metaMs: metaQueries > 0 ? metaMs / metaQueries : 0, wallMs: calls > 0 ? wallMs / calls : 0, metaQueries, calls };
}

/** Bytes of one measured delta: the file's growth (pages) and the rows' own bytes (payload), per unit. */
function perUnit(delta, units) {
	const file = delta["(file)"]?.pages ?? 0;
	const rows = Object.entries(delta)
		.filter(([k]) => k !== "(file)")
		.map(([name, d]) => ({ name, payload: d.payload / units, pages: d.pages / units, cells: d.cells / units }))
		.sort((a, b) => b.payload - a.payload);
	const payload = rows.reduce((n, r) => n + r.payload, 0);
	const journal = rows.filter((r) => JOURNAL.has(r.name)).reduce((n, r) => n + r.payload, 0);
	// What stays once the journal entry is pruned: the file's growth in proportion to the rows that stay.
	const kept = payload > 0 ? (file / units) * (1 - journal / payload) : 0;
	return { file: file / units, kept, payload, rows };
}

/** The journal's tables and indexes: pruned after journalDays, so modelled on their own. */
const JOURNAL = new Set(["changes", "changes_by_time", "sqlite_autoindex_changes_1"]);

/** Every derived figure of the model. */
export function model(figures) {
	const b = figures.bytes;
	const bytes = {
		file: perUnit(b.perFile, b.files),
		version: perUnit(b.perVersion, b.files),
		bigFile: perUnit(b.perBigFile, b.bigFiles),
		change: perUnit(b.perRename, b.renames),
	};
	const blocksPerBig = b.bigBlocks / b.bigFiles;
	// A big file is a file with (blocks - 1) extra blocks. Its few files grow the database by a few pages,
	// too coarse to divide, so the extra blocks' row bytes are scaled by the pages-to-payload ratio of the 4,096 files.
	const pagesPerPayload = bytes.file.payload > 0 ? bytes.file.file / bytes.file.payload : 1;
	const extraPayload = (x) => x.rows.filter((r) => !JOURNAL.has(r.name)).reduce((n, r) => n + r.payload, 0);
	const perExtraBlock =
		blocksPerBig > 1 ? ((extraPayload(bytes.bigFile) - extraPayload(bytes.file)) / (blocksPerBig - 1)) * pagesPerPayload : 0;
	const q = queryTimes(figures.perClass);
	const queryMs = Math.max(q.metaMs, 0.05);
	const classes = Object.fromEntries(Object.entries(figures.perClass).map(([name, cls]) => [name, opsOf(cls)]));
	const mix = A.mix;
	const perDay = Object.values(mix).reduce((n, v) => n + v, 0);
	const weighted = (field) => Object.entries(mix).reduce((n, [name, count]) => n + count * (classes[name]?.[field] ?? 0), 0) / perDay;
	const commitsPerDau =
		mix["PUT /v1/files/content (new file)"] + mix["PUT /v1/files/:id/content (new version)"] + mix["PATCH /v1/nodes/:id (rename)"];

	const rps = (A.dau * perDay) / DAY;
	const peak = rps * A.peakToAverage;
	const users = A.dau * A.usersPerDau;
	const rows = [];
	const row = (r) => rows.push(r);
	const units = (need, perUnit) => Math.ceil(need / perUnit);

	row({
		resource: "api requests",
		driver: "requests per DAU per day",
		assumption: `${perDay} requests/DAU/day (mix below)`,
		avg: rps,
		peak,
		limit: "no request rate limit on Workers Paid",
		units: "—",
		cost: "—",
		source: link(LIMITS.subrequests),
		measured: "—",
	});

	const dirMeasured = weighted("directory");
	const dirPeakUncached = peak * A.directoryQueriesPerMiss;
	const dirPeak = dirPeakUncached * (1 - A.directoryCacheHit);
	const perDb = (1000 / queryMs) * A.utilisation;
	row({
		resource: "directory reads",
		driver: "authenticated requests × (1 − caller cache hit) × queries per miss",
		assumption: `cache hit ${pct(A.directoryCacheHit)}, ${A.directoryQueriesPerMiss} query per miss (measured locally: ${fmt(dirMeasured, 2)}/request, one warm isolate)`,
		avg: dirPeak / A.peakToAverage,
		peak: dirPeak,
		limit: `${fmt(1000 / queryMs)} queries/s per primary (${fmt(queryMs, 3)} ms/query)`,
		units: `${units(dirPeak, perDb)} × one primary's throughput (${units(dirPeakUncached, perDb)} with no cache): one primary plus read replicas`,
		cost: "—",
		source: link(LIMITS.d1Throughput),
		measured: "DIRECTORY d1.* per request (POST /__drills); ms/query from meta.duration (/_bench/d1-times)",
	});

	const shardReadPerReq = weighted("shard");
	const shardPeak = peak * shardReadPerReq;
	const readShards = units(shardPeak, perDb);
	row({
		resource: "shard queries",
		driver: "shard queries (reads and commit batches) per request",
		assumption: `${fmt(shardReadPerReq, 2)} queries/request measured (both workers)`,
		avg: rps * shardReadPerReq,
		peak: shardPeak,
		limit: `${fmt(1000 / queryMs)} queries/s per shard primary`,
		units: `${readShards} shards`,
		cost: "—",
		source: link(LIMITS.d1Throughput),
		measured: "SHARD_n d1.query + d1.batch per request, api and notify (POST /__drills)",
	});

	const commitsAvg = (A.dau * commitsPerDau) / DAY;
	const commitsPeak = commitsAvg * A.peakToAverage;
	const commitMs = A.statementsPerCommit * queryMs;
	const perShardCommits = 1000 / commitMs;
	row({
		resource: "shard commits",
		driver: "changes per DAU per day",
		assumption: `${commitsPerDau} changes/DAU/day; ${A.statementsPerCommit} statements a commit`,
		avg: commitsAvg,
		peak: commitsPeak,
		limit: `${fmt(perShardCommits)} commits/s per shard primary (${fmt(commitMs, 2)} ms of D1 each)`,
		units: `${units(commitsPeak, perShardCommits * A.utilisation)} shards`,
		cost: "—",
		source: link(LIMITS.d1Throughput),
		measured: `locally ${fmt(figures.commits.perShard.perSecond)} commits/s with ${figures.commits.perShard.users} users of one shard (a floor: one local thread runs everything)`,
	});

	const filesBytes = A.filesPerUser * bytes.file.kept;
	const versionsBytes = A.filesPerUser * (A.versionsPerFile - 1) * bytes.version.kept;
	const blocksBytes = A.filesPerUser * A.versionsPerFile * A.extraBlocksPerVersion * perExtraBlock;
	const journalBytes = (commitsPerDau / A.usersPerDau) * A.journalDays * bytes.change.file;
	const perUser = filesBytes + versionsBytes + blocksBytes + journalBytes;
	const totalMeta = users * perUser;
	const shardsForBytes = units(totalMeta, LIMITS.d1Size.value * A.shardFill);
	row({
		resource: "shard bytes",
		driver: "metadata bytes per account × accounts",
		assumption: `${fmtInt(A.filesPerUser)} files, ${A.versionsPerFile} versions/file, ${A.extraBlocksPerVersion} extra block/version, ${A.journalDays} days of journal; ${fmtInt(users)} accounts`,
		avg: `${mb(perUser)}/account, ${tb(totalMeta)} in all`,
		peak: "—",
		limit: `10 GB per database, filled to ${pct(A.shardFill)}; ~5,000 D1 bindings per Worker`,
		units: `${fmtInt(shardsForBytes)} shards`,
		cost: "—",
		source: `${link(LIMITS.d1Size)}`,
		measured: `dbstat of the shard's SQLite file before/after ${fmtInt(b.files)} files, their new versions, ${b.bigFiles} files of 8 MiB and ${fmtInt(b.renames)} renames`,
	});

	const hubPeak = A.heavyUserRequestsPerSecond * weighted("hub");
	row({
		resource: "DO hub (one user)",
		driver: "the busiest account's requests",
		assumption: `${A.heavyUserRequestsPerSecond} requests/s, ${fmt(weighted("hub"), 2)} hub calls/request measured`,
		avg: "—",
		peak: hubPeak,
		limit: `1,000 requests/s per object (soft); ${fmt(figures.commits.perHub.perSecond)} commits/s measured per hub locally`,
		units: "1 object per account",
		cost: "—",
		source: link(LIMITS.doThroughput),
		measured: "USER_HUB do.call per request (POST /__drills); one user's commits/s, 16 in flight",
	});

	const uploadClasses = ["PUT /v1/files/content (new file)", "PUT /v1/files/:id/content (new version)"];
	const putsPerSmallUpload = uploadClasses.reduce((n, c) => n + (classes[c]?.r2Put ?? 0), 0) / uploadClasses.length;
	const blockPutsPerDau = A.uploadedBytesPerDau / 2 ** 20;
	const smallUploadsPerDau = uploadClasses.reduce((n, c) => n + mix[c], 0);
	const classAPerDay = A.dau * Math.max(blockPutsPerDau, smallUploadsPerDau * putsPerSmallUpload);
	row({
		resource: "R2 Class A",
		driver: "block puts: uploaded bytes ÷ 1 MiB, at least the measured puts per small upload",
		assumption: `${mb(A.uploadedBytesPerDau)}/DAU/day; ${fmt(putsPerSmallUpload, 2)} puts per small upload measured`,
		avg: classAPerDay / DAY,
		peak: (classAPerDay / DAY) * A.peakToAverage,
		limit: "no account rate limit",
		units: "—",
		cost: usd(((classAPerDay * MONTH_DAYS) / 1e6) * LIMITS.r2ClassA.value),
		source: link(LIMITS.r2ClassA),
		measured: "BLOBS r2.put per upload request (POST /__drills)",
	});

	const getsPerDownload = classes["GET /v1/files/:id/content"]?.r2Get ?? 1;
	const classBPerDay = A.dau * Math.max(A.downloadedBytesPerDau / 2 ** 20, mix["GET /v1/files/:id/content"] * getsPerDownload);
	const iaB = classBPerDay * 0.1;
	row({
		resource: "R2 Class B",
		driver: "block gets: downloaded bytes ÷ 1 MiB, at least the measured gets per small download",
		assumption: `${mb(A.downloadedBytesPerDau)}/DAU/day; ${fmt(getsPerDownload, 2)} gets per small download measured; 10 % of reads hit IA`,
		avg: classBPerDay / DAY,
		peak: (classBPerDay / DAY) * A.peakToAverage,
		limit: "no account rate limit",
		units: "—",
		cost: usd((((classBPerDay - iaB) * MONTH_DAYS) / 1e6) * LIMITS.r2ClassB.value + ((iaB * MONTH_DAYS) / 1e6) * LIMITS.r2ClassBIa.value),
		source: link(LIMITS.r2ClassB),
		measured: "BLOBS r2.get per download request (POST /__drills)",
	});

	const storedGb = (users * A.storedBytesPerUser * A.dedupAndCompression) / 1e9;
	const iaGb = storedGb * A.infrequentAccessShare;
	row({
		resource: "R2 storage",
		driver: "stored bytes per account × accounts",
		assumption: `${gib(A.storedBytesPerUser)}/account × ${A.dedupAndCompression} after dedup; ${pct(A.infrequentAccessShare)} in IA`,
		avg: `${pb(storedGb * 1e9)}`,
		peak: "—",
		limit: "unlimited per bucket",
		units: "—",
		cost: usd((storedGb - iaGb) * LIMITS.r2Storage.value + iaGb * LIMITS.r2StorageIa.value),
		source: link(LIMITS.r2Storage),
		measured: "—",
	});

	const hotWrites = (classAPerDay / DAY) * A.peakToAverage * A.hottestBlockShare;
	row({
		resource: "R2 writes to one key",
		driver: "puts of the most common block",
		assumption: `${A.hottestBlockShare} of block puts hit one key`,
		avg: hotWrites / A.peakToAverage,
		peak: hotWrites,
		limit: "1 write/s per key",
		units: hotWrites > 1 ? "over: absorb 429 (ADR 0032)" : "within",
		cost: "—",
		source: link(LIMITS.r2KeyWrites),
		measured: "—",
	});

	const webhookPeak = commitsPeak * A.webhookAdoption;
	const gcPeak = commitsPeak * 0.01;
	row({
		resource: "queues",
		driver: "webhook fan-out per change with an endpoint; collector units",
		assumption: `${pct(A.webhookAdoption)} of changes have an endpoint; collector ≈ 1 % of changes`,
		avg: (webhookPeak + gcPeak) / A.peakToAverage,
		peak: webhookPeak + gcPeak,
		limit: "5,000 messages/s per queue",
		units: `${units(webhookPeak, LIMITS.queueThroughput.value * A.utilisation)} fan-out queue`,
		cost: "—",
		source: link(LIMITS.queueThroughput),
		measured: "—",
	});

	const blocks10g = A.largestDownloadBytes / 2 ** 20;
	const downloadQueries = (classes["GET /v1/files/:id/content"]?.shard ?? 0) + (classes["GET /v1/files/:id/content"]?.directory ?? 0);
	row({
		resource: "subrequests per invocation",
		driver: "blocks of the largest download + its D1 queries",
		assumption: `${gib(A.largestDownloadBytes)} in ~1 MiB blocks; ${fmt(downloadQueries, 1)} D1 queries measured per download`,
		avg: "—",
		peak: blocks10g + downloadQueries,
		limit: "10,000 subrequests; 1,000 D1 queries",
		units: blocks10g + downloadQueries > LIMITS.subrequests.value ? "over: bound blocks per response (ADR 0032)" : "within",
		cost: "—",
		source: link(LIMITS.subrequests),
		measured: "D1 and R2 operations per download (POST /__drills)",
	});

	return {
		rows,
		bytes,
		perExtraBlock,
		blocksPerBig,
		perUser: { filesBytes, versionsBytes, blocksBytes, journalBytes, total: perUser },
		totalMeta,
		shardsForBytes,
		readShards,
		readShardsAt1ms: units(shardPeak, 1000 * A.utilisation),
		pagesPerPayload: bytes.file.payload > 0 ? bytes.file.file / bytes.file.payload : 1,
		hotWrites,
		queryTimes: q,
		queryMs,
		classes,
		dirPeak,
		dirPeakUncached,
		commitsPeak,
	};
}

// ---- formatting
const fmt = (n, digits = 0) =>
	typeof n === "number" ? n.toLocaleString("en-US", { maximumFractionDigits: digits, minimumFractionDigits: digits }) : String(n);
const fmtInt = (n) => fmt(n, 0);
const pct = (x) => `${fmt(x * 100, 0)} %`;
const mb = (b) => `${fmt(b / 1e6, 1)} MB`;
const tb = (b) => `${fmt(b / 1e12, 1)} TB`;
const pb = (b) => `${fmt(b / 1e15, 1)} PB`;
const gib = (b) => `${fmt(b / 2 ** 30, 0)} GiB`;
const usd = (x) => `$${fmt(x, 0)}/month`;
const link = (limit) => `[${new URL(limit.url).pathname.replace(/\/$/, "").split("/").slice(1).join("/")}](${limit.url})`;
const cell = (v) => (typeof v === "number" ? fmt(v, v < 10 ? 2 : 0) : v);

/** docs/capacity.md from the figures (and the figures of an earlier run, shown beside them for bytes per file). */
export function capacityDoc(figures, meta, baseline) {
	const m = model(figures);
	const out = [];
	out.push(`# Capacity model: 10M DAU

Written by \`npm run capacity\` (bench/capacity/model.mjs) from figures measured on the local stack (bench/scenarios/capacity.mjs) and the platform's published limits. Do not edit by hand: change an assumption in \`ASSUMPTIONS\` at the top of bench/capacity/model.mjs and run \`npm run capacity -- --model\` (no stack; it reuses the saved figures), or \`npm run capacity\` to measure again. Measured ${meta?.when ?? "—"} at ${meta?.machine?.commit ?? "—"}${meta?.quick ? " (**quick run: not comparable**)" : ""}.

## Assumptions

| name | value | why |
| --- | --- | --- |
${Object.entries(ASSUMPTIONS)
	.map(
		([k, v]) =>
			`| \`${k}\` | ${
				typeof v.value === "object"
					? Object.entries(v.value)
							.map(([c, n]) => `${c}: ${n}`)
							.join("; ")
					: fmt(v.value, Number.isInteger(v.value) ? 0 : 4)
			} | ${v.why} |`,
	)
	.join("\n")}

## Measured inputs

How each was measured: one fresh local stack (\`wrangler dev\`, both workers, local D1/R2) started with \`DRILLS=on\`.

- **Operations per request** by route class: ${figures.options.perClass} requests of each class one after the other, then \`POST /__drills {"reset":true}\` reads both workers' counts of D1 queries and batches, R2 operations and hub calls (src/shared/drills.ts).
- **D1 time per query**: the bench worker wraps every D1 binding (bench/d1-timing.ts) and adds up \`meta.duration\` of each \`run\`/\`all\`/batch result (the database's own time: ${fmt(m.queryTimes.metaMs, 3)} ms mean over ${fmtInt(m.queryTimes.metaQueries)} queries) and the wall time of every call as the worker saw it (${fmt(m.queryTimes.wallMs, 2)} ms mean over ${fmtInt(m.queryTimes.calls)} calls, including the local hop). The model uses \`meta.duration\` (at least 0.05 ms): it is what occupies a D1 primary. Local SQLite on this machine is faster than a replicated primary, so per-shard throughput here is an upper bound; the published rule (1 ms ≈ 1,000 queries/s) is the check.
- **Bytes of metadata**: the shard's SQLite file read with \`dbstat\` (node:sqlite, read-only) before and after one user makes ${fmtInt(figures.bytes.files)} one-block files (\`POST /v1/files/batch\`), a new version of each, ${figures.bytes.bigFiles} files of 8 MiB (${fmt(m.blocksPerBig, 1)} blocks each) and ${fmtInt(figures.bytes.renames)} renames (journal only). "file" is the database file's growth (pages, what the 10 GB counts); "payload" is the rows' own bytes.
- **Commits per second**: one user's hub (${fmt(figures.commits.perHub.perSecond)} /s, 16 in flight) and ${figures.commits.perShard.users} users of one shard at once (${fmt(figures.commits.perShard.perSecond)} /s); small \`PUT\`s after a warm-up. One local workerd thread runs the workers, the hub and the D1 and R2 simulators, so these are floors, not a D1 primary's ceiling.

### Operations per request (both workers)

| route class | directory queries | shard queries | of which batches | hub calls | R2 puts | R2 gets/heads | api D1 ms (meta) |
| --- | --- | --- | --- | --- | --- | --- | --- |
${Object.entries(m.classes)
	.map(([name, c]) => {
		const t = Object.values(figures.perClass[name].d1 ?? {}).reduce((n, x) => n + x.metaMs, 0) / figures.perClass[name].requests;
		return `| ${name} | ${fmt(c.directory, 2)} | ${fmt(c.shard, 2)} | ${fmt(c.shardBatches, 2)} | ${fmt(c.hub, 2)} | ${fmt(c.r2Put, 2)} | ${fmt(c.r2Get, 2)} | ${fmt(t, 3)} |`;
	})
	.join("\n")}

### Bytes of metadata

| unit | file growth (bytes) | without its journal entry | row payload (bytes) | largest tables and indexes (payload bytes) |
| --- | --- | --- | --- | --- |
${[
	["file (one block, its first version, its journal entry)", m.bytes.file],
	["version (a new version of a one-block file)", m.bytes.version],
	["journal change (a rename)", m.bytes.change],
]
	.map(([name, u]) => `| ${name} | ${fmt(u.file)} | ${fmt(u.kept)} | ${fmt(u.payload)} | ${top(u.rows)} |`)
	.join("\n")}
| extra block of a version | | ${fmt(m.perExtraBlock)} | | from ${figures.bytes.bigFiles} files of ${fmt(m.blocksPerBig, 1)} blocks: their rows' payload, scaled by the files' pages per payload byte |
${baselineBytes(figures, baseline)}
## The model

Average and peak are per second. "Units" is what the peak needs at ${pct(A.utilisation)} of a unit's throughput (shards: at ${pct(A.shardFill)} fill).

| resource | driver | per-DAU assumption | average/s | peak/s | per-unit limit | units needed | monthly cost | source | how measured |
| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |
${m.rows.map((r) => `| ${r.resource} | ${r.driver} | ${r.assumption} | ${cell(r.avg)} | ${cell(r.peak)} | ${r.limit} | ${r.units} | ${r.cost} | ${r.source} | ${r.measured} |`).join("\n")}

Metadata per account: ${mb(m.perUser.filesBytes)} files, ${mb(m.perUser.versionsBytes)} extra versions, ${mb(m.perUser.blocksBytes)} extra blocks, ${mb(m.perUser.journalBytes)} journal: ${mb(m.perUser.total)}; ${tb(m.totalMeta)} for ${fmtInt(A.dau * A.usersPerDau)} accounts.

## Where it breaks first

${breaks(m)}
`);
	return { markdown: out.join("\n"), model: m };
}

function top(rows) {
	return rows
		.slice(0, 5)
		.map((r) => `${r.name} ${fmt(r.payload)}`)
		.join(", ");
}

function baselineBytes(figures, baseline) {
	if (baseline?.meta?.when === undefined) return "";
	if (!baseline?.figures?.bytes) return "";
	const before = model(baseline.figures);
	const now = model(figures);
	const line = (name, f) => `| ${name} | ${fmt(f(before))} | ${fmt(f(now))} | ${fmt((1 - f(now) / f(before)) * 100, 0)} % |`;
	return `
Before and after [ADR 0035](decisions/0035-metadata-bytes-per-file.md) (before: ${baseline.meta?.when ?? "?"} at ${baseline.meta?.machine?.commit ?? "?"}, \`${baseline.source}\`):

| bytes (file growth) | before | after | cut |
| --- | --- | --- | --- |
${line("per file (without its journal entry)", (x) => x.bytes.file.kept)}
${line("per version (without its journal entry)", (x) => x.bytes.version.kept)}
${line("per extra block", (x) => x.perExtraBlock)}
${line("per journal change", (x) => x.bytes.change.file)}
${line("per account (model)", (x) => x.perUser.total)}
${line("shards for 10M DAU", (x) => x.shardsForBytes)}
`;
}

const users = (a) => a.dau * a.usersPerDau;

function breaks(m) {
	const ceiling = LIMITS.d1Bindings.value;
	const lines = [];
	const at80 = Math.ceil(m.totalMeta / (LIMITS.d1Size.value * 0.8));
	const hashCut = (A.filesPerUser * A.versionsPerFile * (1 + A.extraBlocksPerVersion) * 3 + A.filesPerUser * 2) * 32 * m.pagesPerPayload;
	const afterHashes = Math.ceil((m.totalMeta - users(A) * hashCut) / (LIMITS.d1Size.value * 0.8));
	lines.push(
		`1. **Shard count from bytes: ${fmtInt(m.shardsForBytes)} shards** for ${tb(m.totalMeta)} of metadata at ${pct(A.shardFill)} fill, against about ${fmtInt(ceiling)} D1 bindings per Worker script and ${fmtInt(LIMITS.d1Databases.value)} databases per account (raisable). ${m.shardsForBytes > ceiling ? "This is over the binding ceiling: the `SHARD_<n>` design, every shard bound to the api and notify workers, breaks here first, long before any throughput limit." : `This is within the binding ceiling (${pct(m.shardsForBytes / ceiling)} of it), but it is the resource closest to a hard wall.`} Account storage (${tb(m.totalMeta)}) is also far above D1's default per-account storage and needs a raised limit.
   - Bytes per file set it, and ADR 0035 cut them (before/after above). Filling shards to 80 % instead of 50 % (moves, ADR 0034, make rebalancing cheap) needs ${fmtInt(at80)}; storing the hashes as 32-byte BLOBs (about 3 hashes per block reference and 2 per version, measured payload above) would bring that to about ${fmtInt(afterHashes)}. Neither gets under ${fmtInt(ceiling)} with ${fmtInt(A.filesPerUser)} files per account.
   - **The fix**: take the per-database binding out of the design. Either group shards behind several Workers (each holds up to ~${fmtInt(ceiling)} bindings; the api routes to the group's Worker through a service binding, the shard index in the token picks it), or move each user's tree and journal into the user's own Durable Object SQLite (10 GB per object, no binding per database, one transaction for tree and journal as ADR 0001 wanted; reads then go through the object, without read replicas). The first keeps D1 and its replicas and is the smaller change; the second removes shard sizing altogether. Decide before about ${fmt((ceiling * LIMITS.d1Size.value * A.shardFill) / (m.perUser.total * A.usersPerDau) / 1e6, 1)} million DAU, where ${fmtInt(ceiling)} shards at ${pct(A.shardFill)} fill run out under these assumptions.`,
	);
	lines.push(
		`2. **Directory reads: ${fmt(m.dirPeakUncached)} queries/s at peak without the cache**, one primary. With the shard in the access token and callers cached (ADR 0030) that falls to ${fmt(m.dirPeak)}/s; read replicas (Sessions API, ADR 0031) spread the rest. Without both fixes the directory primary breaks before anything else at about ${fmt((1000 / m.queryMs) * A.utilisation)} queries/s.`,
	);
	lines.push(
		`3. **Shard throughput** needs ${fmtInt(m.readShards)} shards for queries at ${fmt(m.queryMs, 3)} ms each; far fewer than the bytes need, so bytes, not load, set the shard count. If production queries take 1 ms (the docs' example) instead, they need ${fmtInt(m.readShardsAt1ms)} shards, still under the bytes' count; bookmarked replica reads (ADR 0031) take reads off the primaries.`,
	);
	lines.push(
		`4. **R2 per-key writes**: the most common block gets ${fmt(m.hotWrites, 2)} puts/s at peak under the assumption above, ${m.hotWrites > 1 ? "over" : "under"} the 1/s per key; a share ten times higher, or a burst of the same installer, passes it, and the always-write rule then meets 429s. Hot-block writes treat a 429 on a block that already exists as stored (ADR 0032). **Subrequests**: a 10 GiB download is over 10,000 blocks in one invocation; downloads are bounded per response (ADR 0032).`,
	);
	lines.push(
		`5. The **user's hub** (one Durable Object per account) is far from 1,000 requests/s for any human; API integrations are held by the per-account change budget (100/s).`,
	);
	return lines.join("\n");
}

/** The figures measured before ADR 0035's cut, kept so the doc shows both. */
export const BEFORE_FILE = "bench/capacity/before-0035.json";

/**
 * Writes docs/capacity.md (unless quick: then next to the quick report) and
 * answers the BENCHMARKS.md section: the measured inputs and the headline.
 */
export function writeCapacityDoc(figures, meta) {
	const root = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..");
	const beforeFile = join(root, BEFORE_FILE);
	const before = existsSync(beforeFile) ? { ...JSON.parse(readFileSync(beforeFile, "utf8")), source: BEFORE_FILE } : undefined;
	const { markdown, model: m } = capacityDoc(figures, meta, before);
	const file = meta?.quick ? join(process.env.TMPDIR ?? "/tmp", "drive-capacity-quick.md") : join(root, "docs", "capacity.md");
	writeFileSync(file, markdown);
	const benchSection = `## Capacity inputs

${meta?.when ?? ""} · ${meta?.machine?.commit ?? ""} · \`${meta?.command ?? ""}\`. The capacity model built from these figures is [docs/capacity.md](docs/capacity.md)${meta?.quick ? ` (quick run: written to ${file})` : ""}.

| figure | value |
| --- | --- |
| metadata per file (one block, first version; without its journal entry) | ${fmt(m.bytes.file.kept)} bytes |
| metadata per new version (without its journal entry) | ${fmt(m.bytes.version.kept)} bytes |
| metadata per extra block | ${fmt(m.perExtraBlock)} bytes |
| journal per change | ${fmt(m.bytes.change.file)} bytes |
| D1 time per query (meta.duration, api worker) | ${fmt(m.queryTimes.metaMs, 3)} ms |
| commits/s, one hub | ${fmt(figures.commits.perHub.perSecond)} |
| commits/s, ${figures.commits.perShard.users} hubs on one shard | ${fmt(figures.commits.perShard.perSecond)} |
| files/s through POST /v1/files/batch | ${fmt(figures.bytes.batchFilesPerSecond)} |
| shards for 10M DAU (bytes) | ${fmtInt(m.shardsForBytes)} |
`;
	return { benchSection, verdicts: [], file };
}
