// `npm run capacity`: measures the capacity model's inputs on a fresh local
// stack (the bench's `capacity` section) and writes docs/capacity.md and the
// section of BENCHMARKS.md, keeping the figures in bench/baselines/capacity.json.
// `npm run capacity -- --model` rewrites docs/capacity.md from those saved
// figures without a stack, after an assumption in bench/capacity/model.mjs changed.
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { writeCapacityDoc } from "../bench/capacity/model.mjs";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const { values: args } = parseArgs({ options: { model: { type: "boolean" } } });

if (args.model) {
	const saved = JSON.parse(readFileSync(join(ROOT, "bench", "baselines", "capacity.json"), "utf8"));
	const { file } = writeCapacityDoc(saved.figures, saved.meta);
	console.log(`wrote ${file} from bench/baselines/capacity.json (measured ${saved.meta.when})`);
} else {
	const run = spawnSync(process.execPath, [join(ROOT, "bench", "run.mjs"), "--only", "capacity", "--save-baseline"], {
		stdio: "inherit",
		cwd: ROOT,
	});
	process.exit(run.status ?? 1);
}
