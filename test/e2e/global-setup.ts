/// <reference types="node" />
/**
 * vitest globalSetup for the "e2e" project: starts one real local stack (both
 * workers under `wrangler dev`, fresh storage, a free port) shared by every
 * e2e file, provides its URL as `inject("baseUrl")`, and stops it afterwards
 * without leaving a wrangler, esbuild or workerd process behind.
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
import { cpSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import type { TestProject } from "vitest/node";
import { freePort, groupMembers, snapshotTree } from "../../scripts/local-stack.mjs";

type LocalStack = typeof import("../../scripts/local-stack.mjs");

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
	const cleanUp = () => rmSync(work, { recursive: true, force: true });
	let stack: Awaited<ReturnType<LocalStack["startStack"]>>;
	let stopStack: LocalStack["stopStack"];
	try {
		snapshotTree(root, tree);
		// The snapshot's own copy, so that wrangler runs from the snapshot (local-stack.mjs resolves ROOT from itself).
		const local = (await import(pathToFileURL(join(tree, "scripts", "local-stack.mjs")).href)) as LocalStack;
		stopStack = local.stopStack;
		stack = await local.startStack({ port: await freePort(), persistTo, stdio: "pipe" });
	} catch (err) {
		cleanUp();
		throw err;
	}
	const pgid = stack.child.pid;
	if (pgid === undefined) throw new Error("wrangler dev has no pid");

	// Last resort if vitest exits without running the teardown (a crash, a
	// second Ctrl-C): "exit" handlers must be synchronous, so no waiting.
	const killOnExit = () => stopStack(stack.child, "SIGKILL");
	process.once("exit", killOnExit);

	// Nothing has written to the stack yet (it has only served openapi.json).
	cpSync(persistTo, template, { recursive: true });
	project.provide("baseUrl", stack.url);
	project.provide("persistTo", persistTo);
	project.provide("template", template);
	project.provide("stackCommand", readFileSync(`/proc/${pgid}/cmdline`, "utf8").split("\0").filter(Boolean));
	project.provide("stackTree", tree);

	return async () => {
		process.off("exit", killOnExit);
		stopStack(stack.child, "SIGTERM");
		if (!(await waitForEmptyGroup(pgid, 15_000))) {
			stopStack(stack.child, "SIGKILL");
			if (!(await waitForEmptyGroup(pgid, 5_000)))
				console.error(`e2e: processes ${groupMembers(pgid).join(", ")} of the local stack survived SIGKILL`);
		}
		cleanUp();
	};
}
