/**
 * Runs the real `drive` command (bin/drive.mjs, which bundles src/cli) as a
 * child process with a config directory of its own, for the e2e tests.
 */
import { spawn } from "node:child_process";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { expect, inject } from "vitest";

export const BIN = join(import.meta.dirname, "../../bin/drive.mjs");

export interface Run {
	code: number;
	stdout: string;
	stderr: string;
}

/** Runs `drive args` with its own config directory; `input` goes to stdin. */
export function drive(config: string, args: string[], input = "", env: Record<string, string> = {}): Promise<Run> {
	return new Promise((resolve, reject) => {
		const child = spawn(process.execPath, [BIN, ...args], {
			env: { ...process.env, DRIVE_CONFIG_DIR: config, DRIVE_SERVER: inject("baseUrl"), ...env },
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

/** Runs `drive args --json`, expects exit 0 and parses stdout. */
export async function json<T>(config: string, args: string[], input = ""): Promise<T> {
	const run = await drive(config, [...args, "--json"], input);
	expect(run.code, run.stderr).toBe(0);
	return JSON.parse(run.stdout) as T;
}

/** The error envelope `--json` prints on stderr (its last line). */
export function envelope(run: Run): { error: { code: string; message: string } } {
	const lines = run.stderr.trim().split("\n");
	return JSON.parse(lines[lines.length - 1] ?? "") as { error: { code: string; message: string } };
}

export function freshDir(tag: string): string {
	return mkdtempSync(join(tmpdir(), `drive-cli-${tag}-`));
}
