#!/usr/bin/env node
// The `drive` command (README "Command line"). The CLI is TypeScript in
// src/cli; Node 22 cannot import the repo's extensionless imports directly,
// so this bundles it with esbuild into .cli-build/ when a source is newer
// than the bundle, then runs it.
import { mkdirSync, readFileSync, renameSync, statSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const outDir = join(root, ".cli-build");
const bundle = join(outDir, "drive.mjs");
const inputsFile = join(outDir, "inputs.json");

/** True when the bundle is missing or any file it was built from changed since. */
function stale() {
	let built;
	try {
		built = statSync(bundle).mtimeMs;
		const inputs = JSON.parse(readFileSync(inputsFile, "utf8"));
		return inputs.some((file) => statSync(join(root, file)).mtimeMs > built);
	} catch {
		return true;
	}
}

if (stale()) {
	const { build } = await import("esbuild");
	mkdirSync(outDir, { recursive: true });
	// Written under a per-process name and renamed: two first runs at once each build, and neither reads half a file.
	const temp = `${bundle}.${process.pid}.tmp`;
	const result = await build({
		absWorkingDir: root,
		entryPoints: ["src/cli/main.ts"],
		bundle: true,
		platform: "node",
		format: "esm",
		target: "node22",
		packages: "external",
		outfile: temp,
		metafile: true,
		logLevel: "error",
	});
	writeFileSync(`${inputsFile}.${process.pid}.tmp`, JSON.stringify(Object.keys(result.metafile.inputs)));
	renameSync(`${inputsFile}.${process.pid}.tmp`, inputsFile);
	renameSync(temp, bundle);
}

// node:sqlite (the refresh lock) warns that it is experimental on every run; that is noise on a CLI's stderr.
const printWarning = process.listeners("warning");
process.removeAllListeners("warning");
process.on("warning", (warning) => {
	if (warning.name === "ExperimentalWarning" && /SQLite/.test(warning.message)) return;
	for (const listener of printWarning) listener(warning);
});

const { main } = await import(pathToFileURL(bundle).href);
process.exitCode = await main(process.argv.slice(2));
