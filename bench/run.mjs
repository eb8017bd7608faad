// `npm run bench [-- --only <section,...>] [--quick] [--save-baseline] [--baseline <file>] [--out <file>]`:
// runs each section's scenario (bench/scenarios/<name>.mjs) on stacks started
// from a snapshot of the tree and writes its figures into BENCHMARKS.md
// (bench/report.mjs). bench/README.md has the options and the method. Exits
// non-zero only on errors: a missed target is a finding.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { snapshotTree } from "../scripts/local-stack.mjs";
import { load, machine } from "./lib/machine.mjs";
import { startBenchStack } from "./lib/stack.mjs";
import { readBaseline, saveFigures, SECTIONS, writeReport } from "./report.mjs";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const flag = (type) => ({ type });
const { values: args } = parseArgs({
	options: {
		only: flag("string"),
		quick: flag("boolean"),
		"save-baseline": flag("boolean"),
		baseline: flag("string"),
		out: flag("string"),
	},
});
const only = args.only?.split(",").map((s) => s.trim()) ?? SECTIONS;
const unknown = only.filter((name) => !SECTIONS.includes(name));
if (unknown.length > 0) throw new Error(`unknown section(s) ${unknown.join(", ")}; the sections are ${SECTIONS.join(", ")}`);
const quick = args.quick === true;
// Quick figures are not comparable, so they never land in BENCHMARKS.md unless --out says so.
const out = resolve(args.out ?? (quick ? join(tmpdir(), "drive-bench-quick.md") : join(ROOT, "BENCHMARKS.md")));
const command = `npm run bench${process.argv.length > 2 ? ` -- ${process.argv.slice(2).join(" ")}` : ""}`;
const log = (line) => console.error(`[bench] ${line}`);

const tmp = mkdtempSync(join(tmpdir(), "drive-bench-"));
const tree = join(tmp, "tree");
const stacks = new Set();
// On a signal nothing awaits: kill the stacks and drop the scratch directory on the way out.
const killAll = () => {
	for (const stack of stacks) stack.killNow();
	rmSync(tmp, { recursive: true, force: true });
};
process.once("exit", killAll);
for (const signal of ["SIGINT", "SIGTERM"]) process.once(signal, () => process.exit(130));

/** What each scenario's measure() gets (lib/stack.mjs, Context). */
const ctx = {
	tree,
	tmp,
	quick,
	log,
	/** A fresh stack with its own storage; the scenario stops it, and run.mjs does at the end of each section. */
	async startStack({ localTraces = false, vars = {} } = {}) {
		log(`starting a stack${localTraces ? " with the local trace collector on" : ""}`);
		const stack = await startBenchStack(tree, { persistTo: join(tmp, `state-${stacks.size}`), localTraces, vars });
		stacks.add(stack);
		return stack;
	},
};

const results = {};
const baselines = {};
try {
	snapshotTree(ROOT, tree);
	const info = machine(ROOT);
	for (const name of only) {
		log(`section ${name}`);
		const when = `${new Date().toISOString().slice(0, 19).replace("T", " ")} UTC`;
		const loadStart = load();
		const figures = await (await import(`./scenarios/${name}.mjs`)).measure(ctx);
		for (const stack of stacks) await stack.stop();
		const v8Flags = process.env.MINIFLARE_WORKERD_V8_FLAGS ?? "";
		const meta = { when, load: { start: loadStart, end: load() }, command, quick, machine: info, v8Flags };
		results[name] = { section: name, meta, figures };
		const saved = join(tmpdir(), "drive-bench", `${name}.json`);
		await saveFigures(saved, results[name]);
		log(`figures of ${name} in ${saved}`);
		const kept = join(ROOT, "bench", "baselines", `${name}.json`);
		if (args["save-baseline"]) await saveFigures(kept, results[name]);
		baselines[name] = readBaseline(ROOT, name, [args.baseline, kept]);
	}
	const verdicts = writeReport(out, results, baselines);
	for (const v of verdicts) console.log(`${v.ok ? "✅" : "❌"} ${v.section}: ${v.figure}: ${v.value} (target ${v.target})`);
	console.log(`\nwrote ${out}`);
} catch (err) {
	const last = [...stacks].at(-1);
	if (last) console.error(`stack log (tail):\n${last.log().split("\n").slice(-40).join("\n")}`);
	throw err;
} finally {
	for (const stack of stacks) await stack.stop();
	process.off("exit", killAll);
	rmSync(tmp, { recursive: true, force: true });
}
