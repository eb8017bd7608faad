// The machine a section was measured on, for the report.
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { arch, cpus, loadavg, release, totalmem } from "node:os";
import { join } from "node:path";

/** CPU, RAM, OS, Node, wrangler and workerd versions, and the commit of `root`. */
export function machine(root) {
	const cpuinfo = readFileSync("/proc/cpuinfo", "utf8");
	const model = /^model name\s*:\s*(.+)$/m.exec(cpuinfo)?.[1]?.trim() ?? cpus()[0]?.model ?? "unknown";
	const version = (file) => {
		try {
			return JSON.parse(readFileSync(join(root, file), "utf8")).version;
		} catch {
			return "unknown";
		}
	};
	// Ask the binary rather than trust package.json alone: it is what runs.
	const wrangler = spawnSync(process.execPath, [join(root, "node_modules", "wrangler", "bin", "wrangler.js"), "--version"], {
		encoding: "utf8",
		env: { ...process.env, WRANGLER_SEND_METRICS: "false" },
	});
	const git = (...args) => spawnSync("git", args, { cwd: root, encoding: "utf8" }).stdout?.trim() ?? "";
	return {
		cpu: model,
		cores: cpus().length,
		ramBytes: totalmem(),
		os: `Linux ${release()} ${arch()}`,
		node: process.version,
		wrangler: /(\d+\.\d+\.\d+)/.exec(wrangler.stdout ?? "")?.[1] ?? version("node_modules/wrangler/package.json"),
		workerd: version("node_modules/wrangler/node_modules/workerd/package.json"),
		commit: `${git("rev-parse", "--short", "HEAD") || "unknown"}${git("status", "--porcelain") === "" ? "" : " (with uncommitted changes)"}`,
	};
}

/** The 1-minute load average. */
export const load = () => loadavg()[0];
