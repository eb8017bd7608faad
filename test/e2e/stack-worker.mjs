// Starts the e2e stack in a worker thread of vitest's main process:
// startStack applies the D1 migrations with spawnSync, which would otherwise
// hold up every other project's tests for the tens of seconds they take.
// The thread keeps the stack's output pipes open until the main thread stops
// the stack (by process group) and terminates it.
import { readFileSync } from "node:fs";
import { parentPort, workerData } from "node:worker_threads";

/** @type {{ localStack: string, port: number, persistTo: string }} */
const { localStack, port, persistTo } = workerData;
try {
	/** @type {typeof import("../../scripts/local-stack.mjs")} */
	const local = await import(localStack);
	// The webhook tests' receiver listens on 127.0.0.1, which the guard refuses by default.
	const stack = await local.startStack({ port, persistTo, stdio: "pipe", vars: { WEBHOOK_ALLOW_LOOPBACK: "true" } });
	const pid = stack.child.pid;
	parentPort?.postMessage({ pid, command: readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0").filter(Boolean) });
} catch (err) {
	parentPort?.postMessage({ error: err instanceof Error ? (err.stack ?? err.message) : String(err) });
}
