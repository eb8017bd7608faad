/// <reference types="node" />
/** Runs the real `drive` command (bin/drive.mjs, which bundles src/cli) as a child process, for the e2e tests. */
import { spawn } from "node:child_process";
import { join } from "node:path";

export const BIN = join(import.meta.dirname, "../../bin/drive.mjs");

/** How a `drive` run ended. */
export interface Run {
	code: number;
	stdout: string;
	stderr: string;
}

/** Runs `drive args` to its end with `config` as DRIVE_CONFIG_DIR; `input` goes to stdin. */
export function runDrive(config: string, args: string[], input = "", env: Record<string, string> = {}): Promise<Run> {
	return new Promise((resolve, reject) => {
		const child = spawn(process.execPath, [BIN, ...args], {
			env: { ...process.env, DRIVE_CONFIG_DIR: config, ...env },
			stdio: ["pipe", "pipe", "pipe"],
		});
		let stdout = "";
		let stderr = "";
		child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
		child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
		child.on("error", reject);
		child.on("close", (code) => resolve({ code: code ?? -1, stdout, stderr }));
		child.stdin.end(input);
	});
}
