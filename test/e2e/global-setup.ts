/// <reference types="node" />
/**
 * vitest globalSetup for the "e2e" project: starts one real local stack (both
 * workers under `wrangler dev`, fresh storage, a free port) shared by every
 * e2e file, provides its URL as `inject("baseUrl")`, and stops it afterwards
 * without leaving a wrangler, esbuild or workerd process behind.
 *
 * The stack comes up in the background (migrations and `wrangler dev` take
 * tens of seconds), while the other projects' tests run; each e2e file
 * waits for it first (test/e2e/setup.ts, stackReady).
 *
 * The stack runs from a snapshot of the source tree taken here: `wrangler
 * dev` restarts the runtime whenever a source file is saved, which fails the
 * requests in flight with 503 ("worker restarted mid-request") and would
 * test a mix of two versions. The run tests the tree as it was at its start.
 *
 * Right after the stack comes up, before any test ran, its state (migrated
 * and empty) is copied: a test that kills a stack starts its own on a copy
 * (test/support/stack.ts startOwnStack) instead of migrating another one.
 */
import { cpSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { Worker } from "node:worker_threads";
import type { TestProject } from "vitest/node";
import { freePort, groupMembers, snapshotTree } from "../../scripts/local-stack.mjs";
import type { StackReady } from "../support/stack";

/** What stack-worker.mjs reports: the stack's process group and command line, or why it did not come up. */
type Started = { pid: number; command: string[] } | { error: string };

/** SIGTERM or SIGKILL to a process group; false when it is gone already. */
function signalGroup(pgid: number, signal: NodeJS.Signals): boolean {
	try {
		process.kill(-pgid, signal);
		return true;
	} catch {
		return false;
	}
}

async function waitForEmptyGroup(pgid: number, ms: number): Promise<boolean> {
	const deadline = Date.now() + ms;
	while (groupMembers(pgid).length > 0) {
		if (Date.now() > deadline) return false;
		await new Promise((r) => setTimeout(r, 100));
	}
	return true;
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
	const root = resolve(fileURLToPath(import.meta.url), "..", "..", "..");
	const work = mkdtempSync(join(tmpdir(), "drive-e2e-"));
	const tree = join(work, "tree");
	const persistTo = join(work, "state");
	const template = join(work, "template");
	const ready = join(work, "ready.json");
	const port = await freePort();
	snapshotTree(root, tree);
	project.provide("baseUrl", `http://127.0.0.1:${port}`);
	project.provide("persistTo", persistTo);
	project.provide("template", template);
	project.provide("stackTree", tree);
	project.provide("stackReady", ready);

	// The snapshot's own local-stack.mjs, so that wrangler runs from the snapshot (it resolves ROOT from itself).
	const worker = new Worker(new URL("./stack-worker.mjs", import.meta.url), {
		workerData: { localStack: pathToFileURL(join(tree, "scripts", "local-stack.mjs")).href, port, persistTo },
	});
	let pgid: number | null = null;
	// Last resort if vitest exits without running the teardown (a crash, a
	// second Ctrl-C): "exit" handlers must be synchronous, so no waiting.
	const killOnExit = () => {
		if (pgid !== null) signalGroup(pgid, "SIGKILL");
	};
	process.once("exit", killOnExit);
	const report = (state: StackReady) => writeFileSync(ready, JSON.stringify(state));
	const started = new Promise<void>((done) => {
		worker.once("error", (err) => {
			report({ error: err.stack ?? err.message });
			done();
		});
		worker.once("message", (message: Started) => {
			if ("error" in message) report(message);
			else {
				pgid = message.pid;
				// Nothing has written to the stack yet (it has only served openapi.json).
				cpSync(persistTo, template, { recursive: true });
				report({ command: message.command });
			}
			done();
		});
	});

	return async () => {
		await started;
		process.off("exit", killOnExit);
		if (pgid !== null && signalGroup(pgid, "SIGTERM") && !(await waitForEmptyGroup(pgid, 15_000))) {
			signalGroup(pgid, "SIGKILL");
			if (!(await waitForEmptyGroup(pgid, 5_000)))
				console.error(`e2e: processes ${groupMembers(pgid).join(", ")} of the local stack survived SIGKILL`);
		}
		await worker.terminate();
		rmSync(work, { recursive: true, force: true });
	};
}
