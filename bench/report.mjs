// Figures -> BENCHMARKS.md. Each section is rendered from the figures its
// scenario returned (bench/scenarios/<name>.mjs) and stands between markers,
// so that a run of some sections rewrites those and keeps the others.
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, relative } from "node:path";
import { render as capacity } from "./report/capacity.mjs";
import { render as chunker } from "./report/chunker.mjs";
import { render as content } from "./report/content.mjs";
import { render as lifecycle } from "./report/lifecycle.mjs";
import { render as load } from "./report/load.mjs";
import { render as sharing } from "./report/sharing.mjs";
import { render as small } from "./report/small.mjs";
import { render as sync } from "./report/sync.mjs";
import { render as syncclient } from "./report/syncclient.mjs";
import { render as uploads } from "./report/uploads.mjs";
import { render as web } from "./report/web.mjs";
import { render as webhooks } from "./report/webhooks.mjs";

/** The sections, in the order of the file and of a full run. */
export const SECTIONS = [
	"chunker",
	"content",
	"uploads",
	"sync",
	"sharing",
	"small",
	"web",
	"lifecycle",
	"webhooks",
	"syncclient",
	"capacity",
	"load",
];

/**
 * Writes `file`: the sections in `results` rendered anew (beside their
 * baselines, where a renderer shows one), every other section kept as the
 * file has it. Returns the verdicts of the rendered sections.
 * @param {string} file
 * @param {Record<string, { meta: object, figures: object }>} results
 * @param {Record<string, { meta: object, figures: object } | undefined>} baselines
 */
export function writeReport(file, results, baselines) {
	const old = existsSync(file) ? readFileSync(file, "utf8") : "";
	const verdicts = [];
	const blocks = [];
	for (const name of SECTIONS) {
		const kept = new RegExp(`<!-- bench:${name} -->\\n[\\s\\S]*?<!-- /bench:${name} -->\\n`).exec(old)?.[0];
		if (!(name in results)) {
			if (kept) blocks.push(kept);
			continue;
		}
		const section = RENDER[name](results[name].figures, results[name].meta, baselines[name]);
		verdicts.push(...section.verdicts);
		blocks.push(`<!-- bench:${name} -->\n${section.markdown.trim()}\n<!-- /bench:${name} -->\n`);
	}
	writeFileSync(file, `${HEADER}\n${blocks.join("\n")}`);
	return verdicts;
}

const HEADER = `# Benchmarks

Written by \`npm run bench\` (bench/run.mjs); \`npm run bench -- --only <section>\` rewrites one section and keeps the others. Do not edit by hand. Each section says when, at which commit and on which machine it was measured. How the bench measures, and why, is in [bench/README.md](bench/README.md#methodology). MB = 10^6 bytes; throughput is bytes over wall time.
`;

const RENDER = { chunker, content, uploads, sync, sharing, small, web, lifecycle, webhooks, syncclient, capacity, load };

/**
 * Writes one section's figures (and when, where and how they were measured)
 * as JSON, numbers to 6 significant digits and formatted as the repo's
 * Prettier config says: what `--save-baseline` keeps and `--baseline` reads.
 * @param {string} file
 * @param {{ section: string, meta: object, figures: object }} result
 */
export async function saveFigures(file, result) {
	mkdirSync(dirname(file), { recursive: true });
	const round = (_, v) => (typeof v === "number" && !Number.isInteger(v) ? Number(v.toPrecision(6)) : v);
	const prettier = await import("prettier");
	const options = (await prettier.resolveConfig(file)) ?? {};
	writeFileSync(file, await prettier.format(JSON.stringify(result, round), { ...options, filepath: file }));
}

/**
 * The first of `files` that holds saved figures of section `name`, with the
 * file's path (relative to `root` when inside it) as its `source`.
 * @param {string} root
 * @param {string} name
 * @param {(string | undefined)[]} files
 */
export function readBaseline(root, name, files) {
	for (const file of files) {
		if (file === undefined || !existsSync(file)) continue;
		const saved = JSON.parse(readFileSync(file, "utf8"));
		if (saved.section === name) return { ...saved, source: file.startsWith(root) ? relative(root, file) : file };
	}
	return undefined;
}
