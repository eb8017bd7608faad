// CI check: env.d.ts must match what `wrangler types` generates from both
// configs, so a binding added to a wrangler.toml cannot go untyped.
import { spawnSync } from "node:child_process";
import { readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { ROOT, wranglerEnv } from "./local-stack.mjs";

// Generated beside env.d.ts: the import paths inside are relative to it.
const out = join(ROOT, ".env-check.d.ts");
const res = spawnSync(
	process.execPath,
	[
		join(ROOT, "node_modules/.bin/wrangler"),
		"types",
		"-c",
		"wrangler.toml",
		"-c",
		"workers/notify/wrangler.toml",
		"--include-runtime",
		"false",
		out,
	],
	{ cwd: ROOT, env: wranglerEnv(), encoding: "utf8" },
);
if (res.status !== 0) {
	console.error(res.stdout, res.stderr);
	process.exit(1);
}
// The header names the output path; compare everything after it.
const body = (s) => s.split("\n").slice(2).join("\n");
const fresh = readFileSync(out, "utf8");
rmSync(out);
if (body(fresh) !== body(readFileSync(join(ROOT, "env.d.ts"), "utf8"))) {
	console.error("env.d.ts is stale: run `npm run types` and commit the result.");
	process.exit(1);
}
console.log("env.d.ts is current.");
