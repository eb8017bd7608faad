// The uploads section: delta re-uploads, 1 GiB through sessions and tus, 10 GiB.
import { GiB, bytesOf, exact, mark, mbs, measuredLine, pct, plural, secs, table } from "./format.mjs";

/** Targets from the issues. */
const TARGETS = {
	deltaBlockBytes: 2 * 2 ** 20,
	deltaMetaBytes: 64 * 2 ** 10,
	appendBlockBytes: 3 * 2 ** 20,
	throughputRatio: 0.7,
};

/** The uploads section from its figures (scenarios/uploads.mjs): its markdown and verdicts. */
export function render(f, meta) {
	const { delta, throughput: tp, huge, traced } = f;
	const deltaRows = delta.rows.map((r) => {
		const limit = r.case === "d" ? TARGETS.appendBlockBytes : TARGETS.deltaBlockBytes;
		const ok = r.blockBytes <= limit && r.metaBytes <= TARGETS.deltaMetaBytes;
		const rsync = r.rsync ? `${bytesOf(r.rsync.sent)} (${bytesOf(r.rsync.received)})` : "rsync not installed";
		return {
			ok,
			figure: `delta ${r.label}`,
			drive: bytesOf(r.blockBytes),
			target: `≤ ${bytesOf(limit)} blocks, ≤ 64 KiB meta`,
			cells: [
				r.label,
				`${bytesOf(r.blockBytes)} (${r.missingBlocks} of ${r.blocks} blocks)`,
				`${bytesOf(r.metaBytes)} (create body ${bytesOf(r.createBodyBytes)})`,
				bytesOf(r.fixed4MiBBytes),
				rsync,
				r.case === "d" ? "≤ 2 MiB + 1 MiB blocks, ≤ 64 KiB meta" : "≤ 2 MiB blocks, ≤ 64 KiB meta",
				mark(ok),
			],
		};
	});
	const label = {
		raw: "raw R2 put, one piece at a time (baseline)",
		raw4: "raw R2 put, 4 pieces in flight",
		sessions: "upload session",
		tus: "tus",
	};
	const judged = new Set(["sessions", "tus"]);
	const memory = (run) => (run.memory ? `${bytesOf(run.memory.runtime?.peak)} / ${bytesOf(run.memory.proxy?.peak)}` : "n/a");
	const size = bytesOf(tp.fileBytes).replace(".00 ", " ");
	const tpRows = Object.keys(tp.rounds).map((name) => {
		const run = tp.best[name];
		const ratio = tp.pairedMedian[name];
		const ok = judged.has(name) ? ratio >= TARGETS.throughputRatio : null;
		return {
			ok,
			figure: `${size} through ${label[name]} vs raw`,
			drive: pct(ratio),
			target: "≥ 70 %",
			cells: [
				label[name],
				pct(ratio),
				ok === null ? "" : `≥ 70 % ${mark(ok)}`,
				tp.paired[name].map(pct).join(", "),
				tp.rounds[name].map((r) => r.mbPerS.toFixed(1)).join(", "),
				`${(run.ms / 1000).toFixed(1)} s, ${run.mbPerS.toFixed(1)} MB/s`,
				pct(run.mbPerS / tp.best.raw.mbPerS),
				memory(run),
			],
		};
	});
	const hashS = tp.best.sessions.hashMs
		? `The first block batch of the sessions upload left ${(tp.best.sessions.hashMs / 1000).toFixed(1)} s after the start (hashing goes on alongside); `
		: "";
	let hugeText =
		"The 10 GiB run is off; `BENCH_10GIB=1 npm run bench -- --only uploads` turns it on (it takes tens of minutes on this machine).\n";
	if (huge) {
		const rss = huge.memory
			? `${bytesOf(huge.memory.runtime?.before)} → ${bytesOf(huge.memory.runtime?.peak)} / ${bytesOf(huge.memory.proxy?.before)} → ${bytesOf(huge.memory.proxy?.peak)}`
			: "n/a";
		hugeText = `### ${huge.bytes === 10 * GiB ? "10 GiB" : `${bytesOf(huge.bytes)} (a shortened dry run of the 10 GiB path)`}

One ${bytesOf(huge.bytes)} file through ${huge.path}; the bytes are generated as tus-js-client reads them and hashed on the way out, then the download is streamed through SHA-256.

${table(
	[
		"upload",
		"of which the last PATCH",
		"download",
		"byte-exact",
		"workerd RSS before → peak (runtime / proxy)",
		"bench process peak RSS (whole run)",
		"local storage used (whole run)",
	],
	[
		[
			`${(huge.uploadMs / 1000).toFixed(0)} s, ${huge.uploadMbPerS.toFixed(1)} MB/s`,
			`${(huge.lastPatchMs / 1000).toFixed(0)} s`,
			`${(huge.downloadMs / 1000).toFixed(0)} s, ${huge.downloadMbPerS.toFixed(1)} MB/s`,
			`${mark(huge.byteExact)} (SHA-256 ${huge.sha256.slice(0, 16)}…)`,
			rss,
			bytesOf(huge.clientRssPeakBytes),
			bytesOf(huge.diskBytes),
		],
	],
)}
`;
	}
	const tracedTable = table(
		["path", "vs raw (median of rounds)", "each round vs its raw", "all rounds"],
		Object.entries(traced.rounds).map(([name, runs]) => [
			label[name],
			pct(traced.pairedMedian[name]),
			traced.paired[name].map(pct).join(", "),
			runs.map((r) => `${secs(r.ms)} (${mbs(r.mbPerS)})`).join(", "),
		]),
	);
	const markdown = `## Uploads: delta re-upload, throughput, 10 GiB

${measuredLine(meta)}

### Re-uploading a ${bytesOf(delta.fileBytes).replace(".00 ", " ")} file after a small edit

One user uploads random bytes through an upload session, then re-uploads each edited variant as a new version of it. *Block bytes* are the bodies of the block PUTs actually sent (the sizes of the \`missing\` blocks); *requests/metadata* is everything else on the wire, counted by a TCP proxy in front of the stack: the create request with its block list, every request line and header, the commit, and all responses. The fixed 4 MiB column applies Dropbox's scheme to the same two files (bytes of the variant's 4 MiB blocks whose hash the original lacks); rsync is \`rsync --stats --no-whole-file -I\` between two local directories (*Total bytes sent*; the receiver's block checksums going the other way are in parentheses).

${table(
	["case", "sessions: block bytes", "sessions: requests/metadata", "fixed 4 MiB blocks", "rsync sent (received)", "target", ""],
	deltaRows.map((r) => r.cells),
	["l", "r", "r", "r", "r", "l", "l"],
)}

Exact bytes: ${delta.rows.map((r) => `(${r.case}) ${exact(r.blockBytes)} block + ${exact(r.requestMetaBytes)} request + ${exact(r.responseBytes)} response`).join("; ")}.${delta.rsync ? ` rsync ${delta.rsync}.` : ""}

### Throughput, ${size}

The same ${size} of random bytes (a file on disk, read from the page cache) through each path, each upload by a fresh user, in ${plural(tp.rounds.raw.length, "interleaved round")}. *vs raw* is the median over rounds of the path's throughput over the same round's raw put (bench/README.md, "Paired ratios"); each round's ratio is listed, and the best round of each path next to the best raw round as well. Raw is \`PUT /_bench/raw/:key\` (an R2 put of the body, nothing else) in 95,000,000-byte pieces, one at a time; the same with four pieces in flight is shown for comparison. Sessions is ${tp.best.sessions.via}, timed from the first byte read (hashing included) to the commit's answer. tus is ${tp.best.tus.via}; the server carries the file's SHA-256 from PATCH to PATCH in the isolate's memory, so the last PATCH commits without reading the upload back (it would, if a PATCH had reached another isolate). Later rounds and paths rewrite block objects that already exist (tus always does); a rewrite costs the same as a new put here. Every measurement starts after \`sync\`.

${table(
	[
		"path",
		"vs raw (median of rounds)",
		"target",
		"each round vs its raw",
		"all rounds (MB/s)",
		"best round",
		"best vs best raw",
		"workerd peak RSS, best round (runtime / proxy)",
	],
	tpRows.map((r) => r.cells),
	["l", "r", "l", "l", "l", "r", "r", "l"],
)}

${hashS}${(tp.best.tus.lastPatchMs / 1000).toFixed(1)} s of the tus time is its last 50 MiB PATCH.

The same paths on a stack with wrangler dev's local trace collector on, as \`npm start\` runs it (bench/README.md, "The local trace collector"), ${plural(traced.rounds.raw.length, "interleaved round")}:

${tracedTable}

${hugeText}`;
	const verdicts = [...deltaRows, ...tpRows]
		.filter((r) => r.ok !== null)
		.map((r) => ({ section: "uploads", figure: r.figure, value: r.drive, target: r.target, ok: r.ok }));
	if (huge)
		verdicts.push({
			section: "uploads",
			figure: `${bytesOf(huge.bytes)} through tus, byte-exact`,
			value: `${huge.uploadMbPerS.toFixed(1)} MB/s up`,
			target: "byte-exact",
			ok: huge.byteExact,
		});
	return { markdown, verdicts };
}
