/**
 * Three test projects:
 * - "workers": tests inside workerd (api worker + notify worker as an
 *   auxiliary worker) against real local D1, R2 and Durable Objects;
 * - "shared":  the pure modules in src/shared, in Node (clients run there too);
 * - "e2e":     Node clients against the real local stack (wrangler dev). The
 *   stack starts in the background while the other projects' files run
 *   (they are queued first: OthersThenE2e); the e2e files then run side by
 *   side against it, and beside the last of the others, each in accounts of
 *   its own.
 *
 * No test depends on timing or on how busy the machine is: they wait for
 * events and conditions, with generous deadlines only as hang guards.
 *
 * Longer runs, for a soak rather than `npm test`:
 * - CONVERGENCE_RUNS=1000 (default 50): runs of the randomized convergence
 *   property (test/e2e/convergence.e2e.test.ts, which lists its other knobs).
 */
import { cloudflareTest, readD1Migrations } from "@cloudflare/vitest-plugin";
import { buildSync } from "esbuild";
import { readFileSync } from "node:fs";
import { relative } from "node:path";
import { defineConfig } from "vitest/config";
import { BaseSequencer, type TestSpecification } from "vitest/node";

const NOTIFY_BUNDLE = ".wrangler/test-build/notify.mjs";

/** The notify worker's D1 database ids (directory and shards), read from its config so both workers share them. */
function notifyDatabases(): Record<string, string> {
	const toml = readFileSync("workers/notify/wrangler.toml", "utf8");
	const out: Record<string, string> = {};
	for (const m of toml.matchAll(/binding = "(DIRECTORY|SHARD_\d+)"[\s\S]*?database_id = "([^"]+)"/g)) out[m[1] as string] = m[2] as string;
	return out;
}

/**
 * The slowest files' durations on a fresh clone (`bash .ci/run`, 2 cores,
 * 2026-12-04). CI starts without vitest's results cache, so without these
 * the longest-first order below falls back to file order, and the 130 s
 * randomized sync test started last among the e2e files and set the end of
 * the run. Only the order depends on them; the cache's figure wins locally.
 */
const MEASURED_MS: Record<string, number> = {
	"e2e:test/e2e/sync-random.e2e.test.ts": 130_000,
	"e2e:test/e2e/authz-matrix.e2e.test.ts": 86_000,
	"workers:test/api/gc-interleave.test.ts": 49_000,
	"e2e:test/e2e/convergence.e2e.test.ts": 32_000,
	"workers:test/api/audit-gc.test.ts": 31_000,
	"workers:test/api/lifecycle-purge.test.ts": 28_000,
	"e2e:test/e2e/cli.e2e.test.ts": 24_000,
	"e2e:test/web/files.web.test.ts": 24_000,
	"workers:test/api/audit-auth.test.ts": 22_000,
	"e2e:test/web/upload.web.test.ts": 21_000,
};
/** What a file not measured is taken to last: shorter than the measured ones. */
const UNMEASURED_MS = 10_000;

/**
 * Queues every file but the e2e ones first, longest first across projects
 * (vitest runs projects one after the other, by name, which put e2e first),
 * then the e2e files, longest first: they wait for the stack, which takes
 * tens of seconds to come up.
 */
class OthersThenE2e extends BaseSequencer {
	override async sort(files: TestSpecification[]): Promise<TestSpecification[]> {
		const duration = (f: TestSpecification) => {
			const key = `${f.project.name}:${relative(this.ctx.config.root, f.moduleId)}`;
			return this.ctx.cache.getFileTestResults(key)?.duration ?? MEASURED_MS[key] ?? UNMEASURED_MS;
		};
		const longestFirst = (list: TestSpecification[]) => [...list].sort((a, b) => duration(b) - duration(a));
		const isE2e = (f: TestSpecification) => f.project.name === "e2e";
		return [...longestFirst(files.filter((f) => !isE2e(f))), ...longestFirst(files.filter(isE2e))];
	}
}

export default defineConfig(async () => {
	// The auxiliary worker must be a bundle: build the notify worker first.
	buildSync({
		entryPoints: ["workers/notify/index.ts"],
		bundle: true,
		format: "esm",
		platform: "browser",
		conditions: ["workerd", "worker", "browser"],
		target: "es2023",
		external: ["cloudflare:*"],
		outfile: NOTIFY_BUNDLE,
		logLevel: "warning",
	});
	const directoryMigrations = await readD1Migrations("migrations/directory");
	const shardMigrations = await readD1Migrations("migrations/shard");
	return {
		test: {
			// Two cores: while one file waits on the stack or on workerd, another can run.
			maxWorkers: 3,
			sequence: { sequencer: OthersThenE2e },
			projects: [
				{
					plugins: [
						cloudflareTest({
							wrangler: { configPath: "./wrangler.toml" },
							miniflare: {
								bindings: {
									JWT_SECRET: "test-secret-0123456789abcdef0123456789abcdef",
									BLOCK_KEYS: "k1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8",
									PASSWORD_PEPPER: "test-pepper-0123456789abcdef0123456789abcdef",
									LOGIN_SLOWDOWN_MS: "1",
									OPS_SECRET: "test-ops-secret",
									// Failure drills (src/shared/drills.ts): every test runs through the wrapped bindings.
									DRILLS: "on",
									TEST_DIRECTORY_MIGRATIONS: directoryMigrations,
									TEST_SHARD_MIGRATIONS: shardMigrations,
								},
								// A low limit that test/api/rate-limits.test.ts puts in place of a class's binding.
								ratelimits: { RATE_LIMIT_TEST: { namespace_id: "9999", simple: { limit: 3, period: 10 } } },
								workers: [
									{
										name: "drive-notify",
										modules: true,
										scriptPath: NOTIFY_BUNDLE,
										compatibilityDate: "2026-11-01",
										bindings: { DRILLS: "on" },
										durableObjects: { USER_HUB: { className: "UserHub", useSQLite: true } },
										d1Databases: notifyDatabases(),
									},
								],
							},
						}),
					],
					test: {
						name: "workers",
						include: ["test/api/**/*.test.ts"],
						setupFiles: ["test/api/setup.ts"],
						globalSetup: ["test/api/global-setup.ts"],
						// Timeouts are hang guards: generous, so that a loaded machine is never the reason a test fails.
						testTimeout: 120_000,
					},
				},
				{
					// The notify worker as the main worker: its Durable Object can be
					// tested from inside (runInDurableObject works on main-worker objects only).
					plugins: [
						cloudflareTest({
							wrangler: { configPath: "./workers/notify/wrangler.toml" },
							miniflare: {
								bindings: { DRILLS: "on", TEST_DIRECTORY_MIGRATIONS: directoryMigrations, TEST_SHARD_MIGRATIONS: shardMigrations },
							},
						}),
					],
					test: {
						name: "notify",
						include: ["test/notify/**/*.test.ts"],
						setupFiles: ["test/api/setup.ts"],
						testTimeout: 60_000,
					},
				},
				{
					test: {
						name: "shared",
						environment: "node",
						include: ["src/shared/**/*.test.ts", "src/client/**/*.test.ts", "src/cli/**/*.test.ts", "src/sync/**/*.test.ts"],
						testTimeout: 120_000,
					},
				},
				{
					test: {
						name: "e2e",
						environment: "node",
						include: ["test/e2e/**/*.test.ts", "test/web/**/*.test.ts"],
						globalSetup: ["test/e2e/global-setup.ts"],
						setupFiles: ["test/e2e/setup.ts"],
						testTimeout: 600_000,
						hookTimeout: 300_000,
					},
				},
			],
		},
	};
});
