// The local stack as the bench runs it: from a snapshot of the source tree,
// with bench/worker.ts as the api worker's entry, on a free port with fresh
// storage, stopped with everything it spawned.
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { freePort, groupMembers, workerdProcesses } from "../../scripts/local-stack.mjs";

/** The api worker's entry on the bench's stacks: the production app plus the /_bench routes. */
export const BENCH_MAIN = "bench/worker.ts";

/**
 * What run.mjs gives each scenario's measure(ctx): the snapshot, a scratch
 * directory, quick mode, a logger, and fresh stacks (each with its own
 * storage) that the scenario stops when done.
 * @typedef {{ tree: string, tmp: string, quick: boolean, log: (line: string) => void, startStack: (options?: { localTraces?: boolean, vars?: Record<string, string> }) => Promise<BenchStack> }} Context
 * @typedef {Awaited<ReturnType<typeof startBenchStack>>} BenchStack
 */

/** V8 flags of the bench's workerd (bench/README.md, "Compiles on the main thread"). */
export const BENCH_V8_FLAGS = "--no-concurrent-recompilation";

/**
 * Points the snapshot's wrangler.toml at {@link BENCH_MAIN}, and runs that
 * worker first for `/_bench/*` and the drill control `/__drills` too (the asset router would answer those
 * paths otherwise): the bench runs the repo's own config with only those two
 * lines changed, so its bindings, vars and flags cannot drift from production's.
 * @param {string} tree a snapshot made by snapshotTree (scripts/local-stack.mjs)
 */
export function writeBenchConfig(tree) {
	// A snapshot has no .git: never rewrite the repository's own config (deploys would ship the bench routes).
	if (existsSync(join(tree, ".git")))
		throw new Error(`${tree} is a git checkout, not a snapshot: the bench config goes into snapshots only`);
	const file = join(tree, "wrangler.toml");
	const toml = readFileSync(file, "utf8");
	if (toml.includes(`main = "${BENCH_MAIN}"`)) return;
	const one = (pattern, what) => {
		const found = toml.match(new RegExp(pattern.source, "gm")) ?? [];
		if (found.length !== 1) throw new Error(`${file}: expected one ${what}, found ${found.length}`);
		return found[0];
	};
	const main = one(/^main = ".*"$/, 'top-level main = "..."');
	const first = one(/^run_worker_first = \[.*\]$/, "run_worker_first = [...] (of [assets])");
	const header = `# Written by bench/lib/stack.mjs from the repository's wrangler.toml; only main (${main}) and run_worker_first (${first}) differ.\n`;
	writeFileSync(
		file,
		header +
			toml
				.replace(/^main = ".*"$/m, `main = "${BENCH_MAIN}"`)
				.replace(/^run_worker_first = \[(.*)\]$/m, (_, list) => `run_worker_first = [${list}, "/_bench/*", "/__drills"]`),
	);
}

/**
 * Starts the stack from `tree` with bench/worker.ts as the api worker's entry.
 * The runtime compiles on its main thread ({@link BENCH_V8_FLAGS}, unless
 * MINIFLARE_WORKERD_V8_FLAGS is already set; empty keeps V8's defaults).
 * `localTraces` keeps wrangler dev's local trace collector on, as `npm start`
 * has it; the measured stacks run without it (bench/README.md, "The local
 * trace collector").
 * @param {string} tree
 * @param {{ persistTo: string, localTraces?: boolean, vars?: Record<string, string> }} options
 */
export async function startBenchStack(tree, { persistTo, localTraces = false, vars = {} }) {
	process.env.MINIFLARE_WORKERD_V8_FLAGS ??= BENCH_V8_FLAGS;
	if (process.env.MINIFLARE_WORKERD_V8_FLAGS === "") delete process.env.MINIFLARE_WORKERD_V8_FLAGS;
	// The snapshot's own copy, so that its ROOT (cwd, configs, migrations) is the snapshot.
	const stackModule = join(tree, "scripts", "local-stack.mjs");
	if (!existsSync(stackModule)) throw new Error(`${stackModule} is missing`);
	const { startStack, stopStack } = await import(pathToFileURL(stackModule).href);
	writeBenchConfig(tree);
	const port = await freePort();
	const env = { X_LOCAL_OBSERVABILITY: localTraces ? "true" : "false" };
	const stack = await startStack({ port, persistTo, stdio: "pipe", env, vars, notifyConfig: notifyConfigWith(tree, vars, port) });
	const pgid = stack.child.pid;
	const procs = workerdProcesses(pgid);
	let stopped = false;
	const handle = {
		url: stack.url,
		pgid,
		/** The stack's workerd processes: the runtime (our workers, the R2/D1 simulators) first, then the proxy. */
		procs,
		persistTo,
		localTraces,
		log: stack.log,
		/** Stops wrangler and everything it spawned; escalates to SIGKILL if SIGTERM is not enough. */
		async stop() {
			if (stopped) return;
			stopped = true;
			stopStack(stack.child, "SIGTERM");
			if (await waitForEmptyGroup(pgid, 15_000)) return;
			stopStack(stack.child, "SIGKILL");
			if (!(await waitForEmptyGroup(pgid, 5_000)))
				throw new Error(`processes ${groupMembers(pgid).join(", ")} of the stack survived SIGKILL`);
		},
		/** For process "exit" handlers, which cannot wait. */
		killNow() {
			if (!stopped) stopStack(stack.child, "SIGKILL");
		},
	};
	if (!procs.some((p) => p.role === "runtime")) {
		await handle.stop();
		throw new Error(`no workerd runtime in process group ${pgid}`);
	}
	return handle;
}

/**
 * wrangler dev's `--var` reaches only the first config's worker, so a stack
 * started with vars (DRILLS=on) gets a copy of the notify worker's config with
 * them added, one file per stack (wrangler watches its configs).
 */
function notifyConfigWith(tree, vars, port) {
	const base = "workers/notify/wrangler.toml";
	if (Object.keys(vars).length === 0) return base;
	const toml = readFileSync(join(tree, base), "utf8");
	if (!/^\[vars\]$/m.test(toml)) throw new Error(`${base}: no [vars] table to add ${Object.keys(vars).join(", ")} to`);
	let out = toml;
	for (const [k, v] of Object.entries(vars)) {
		const line = `${k} = ${JSON.stringify(v)}`;
		const existing = new RegExp(`^${k} = .*$`, "m");
		out = existing.test(out) ? out.replace(existing, line) : out.replace(/^\[vars\]$/m, `[vars]\n${line}`);
	}
	const name = `workers/notify/wrangler.vars-${port}.toml`;
	writeFileSync(join(tree, name), out);
	return name;
}

async function waitForEmptyGroup(pgid, ms) {
	const deadline = Date.now() + ms;
	while (groupMembers(pgid).length > 0) {
		if (Date.now() > deadline) return false;
		await new Promise((r) => setTimeout(r, 100));
	}
	return true;
}
