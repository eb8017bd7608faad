// TypeScript modules of the tree, bundled with esbuild for the bench's Node process.
import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { pathToFileURL } from "node:url";

/**
 * Bundles `entry` of `tree` into `outfile` and imports it.
 * @param {string} tree the snapshot being measured
 * @param {string} entry e.g. "src/shared/chunking.ts"
 * @param {string} outfile
 * @param {"node" | "neutral"} platform
 */
export function bundle(tree, entry, outfile, platform = "node") {
	const res = spawnSync(
		join(tree, "node_modules", ".bin", "esbuild"),
		[
			join(tree, entry),
			"--bundle",
			"--format=esm",
			`--platform=${platform}`,
			"--target=es2022",
			`--outfile=${outfile}`,
			"--log-level=warning",
		],
		{ encoding: "utf8" },
	);
	if (res.status !== 0) throw new Error(`esbuild ${entry}: ${res.stderr || res.error}`);
	return import(pathToFileURL(outfile).href);
}
