// Formatting shared by the section renderers.

export const KiB = 1024;
export const MiB = 1024 * KiB;
export const GiB = 1024 * MiB;
export const mark = (ok) => (ok ? "✅" : "❌");
export const plural = (n, word) => `${n} ${word}${n === 1 ? "" : "s"}`;
export const pct = (ratio) => `${Math.round(ratio * 100)} %`;
export const secs = (ms) => `${(ms / 1000).toFixed(2)} s`;
export const msec = (v) => (Number.isFinite(v) ? `${v.toFixed(1)} ms` : "n/a");
export const mbs = (v) => `${Math.round(v).toLocaleString("en-US")} MB/s`;
export const mb = (bytes) => `${(bytes / 1e6).toFixed(1)} MB`;
export const exact = (n) => (n === null || n === undefined || Number.isNaN(n) ? "n/a" : n.toLocaleString("en-US"));
export const bytesOf = (n) =>
	n === null || n === undefined || Number.isNaN(n)
		? "n/a"
		: n >= GiB
			? `${(n / GiB).toFixed(2)} GiB`
			: n >= MiB
				? `${(n / MiB).toFixed(2)} MiB`
				: n >= KiB
					? `${(n / KiB).toFixed(1)} KiB`
					: `${n} B`;

/** A markdown table; `align` has one of "l" or "r" per column. */
export function table(header, rows, align = header.map(() => "l")) {
	const escape = (cell) => String(cell ?? "").replaceAll("|", "\\|");
	return [
		`| ${header.join(" | ")} |`,
		`|${header.map((_, i) => (align[i] === "r" ? "---:" : "---")).join("|")}|`,
		...rows.map((r) => `| ${r.map(escape).join(" | ")} |`),
	].join("\n");
}

/** The verdict table shared by the chunker and content sections; `ok` null means reported only. */
export function verdictTable(rows) {
	return table(
		["Figure", "Drive", "Baseline (same run)", "Drive / baseline", "Target", "Met"],
		rows.map((r) => [r.figure, r.drive, r.baseline, r.ratio, r.target, r.ok === null ? "" : mark(r.ok)]),
	);
}

/** When, where and how a section was measured. */
export function measuredLine(meta) {
	const m = meta.machine;
	const quick = meta.quick ? " **Quick mode: smaller sizes and fewer rounds, a check that the paths run, not figures to compare.**" : "";
	const busy =
		Math.max(meta.load.start, meta.load.end) > m.cores
			? ` **The load average exceeded the ${m.cores} cores: wall-time figures (rates, latencies, throughput) are noisy; CPU per request holds up better.**`
			: "";
	return (
		`Measured on ${meta.when} at \`${m.commit}\` by \`${meta.command}\`, on ${m.cpu} (${m.cores} cores, ${(m.ramBytes / GiB).toFixed(1)} GiB RAM), ${m.os}, Node ${m.node}, wrangler ${m.wrangler} (workerd ${m.workerd}); ` +
		`workerd's V8 flags \`${meta.v8Flags || "(none)"}\`; 1-minute load average ${meta.load.start.toFixed(2)} at the start and ${meta.load.end.toFixed(2)} at the end.${busy}${quick}`
	);
}

/** Verdict rows for the console. */
export const verdictsOf = (section, rows) =>
	rows.filter((r) => r.ok !== null).map((r) => ({ section, figure: r.figure, value: r.drive, target: r.target, ok: r.ok }));
