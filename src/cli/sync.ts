/// <reference types="node" />
/**
 * `drive sync DIR` and `drive status DIR`: the two-way sync of a local
 * folder (src/sync/engine, ADR 0029). The link between the folder and the
 * server folder lives in `DIR/.drive/state.db`; a folder without that marker
 * is never synced, so a missing disk or a typo cannot read as "everything was
 * deleted".
 *
 * @module
 */
import { mkdirSync, statSync } from "node:fs";
import { resolve as resolvePath } from "node:path";
import type { Command } from "commander";
import type { DriveClient } from "../client";
import type { Me } from "../shared/schemas/auth";
import type { Node } from "../shared/schemas/nodes";
import { isTransient, SyncEngine } from "../sync/engine/engine";
import type { SyncEvent } from "../sync/engine/execute";
import { openState, type SyncState } from "../sync/state";
import { CliError, EXIT, type Output } from "./output";
import { Progress, progressMode } from "./progress";
import { resolve } from "./remote";
import type { Tokens } from "./tokens";

interface Common {
	json?: boolean;
	quiet?: boolean;
}

/** What the sync commands need from the rest of the CLI. */
export interface SyncCommandDeps {
	out: Output;
	signedIn: () => { client: DriveClient; tokens: Tokens };
	common: (cmd: Command) => Command;
}

function notLinked(dir: string): CliError {
	return new CliError(
		"NOT_A_SYNC_FOLDER",
		`${dir} is not a synced folder (no .drive/ in it): run drive sync ${dir} [remote] --init`,
		EXIT.usage,
	);
}

/** Opens the state of a linked folder, or links it with `--init`. */
async function link(
	deps: SyncCommandDeps,
	dir: string,
	remote: string | undefined,
	init: boolean,
): Promise<{ state: SyncState; client: DriveClient; deviceName: string }> {
	const { client, tokens } = deps.signedIn();
	let state: SyncState;
	try {
		state = openState(dir, { create: false });
	} catch {
		if (!init) throw notLinked(dir);
		mkdirSync(dir, { recursive: true });
		state = openState(dir, { create: true });
	}
	const linked = state.getMeta("remote_root_id");
	if (linked !== null) {
		// A linked folder needs no request to start: a client started while offline waits for the server in its loop.
		if (state.getMeta("user_id") !== tokens.credentials.user_id)
			throw new CliError("FORBIDDEN", `${dir} is linked to another account; sign in as that account or sync another folder`, EXIT.usage);
		if (remote !== undefined && init) {
			// A check of the user's intent, not needed to sync: while the server is unreachable the link as stored stands.
			const named = await resolve(client, remote).catch((err: unknown) => {
				if (isTransient(err) || (err instanceof CliError && err.exit === EXIT.unavailable)) return null;
				throw err;
			});
			if (named !== null && named.id !== linked)
				throw new CliError("INVALID_REQUEST", `${dir} is already linked to another server folder (${linked})`, EXIT.usage);
		}
		return { state, client, deviceName: state.getMeta("device_name") ?? "drive CLI" };
	}
	if (!init) throw notLinked(dir);
	const me = await client.json<Me>("GET", "/v1/me");
	const node: Node = await resolve(client, remote ?? "/");
	if (node.type !== "folder") throw new CliError("INVALID_REQUEST", `not a folder: ${remote}`, EXIT.usage);
	const deviceName = me.device?.name ?? "drive CLI";
	state.transaction(() => {
		state.setMeta("server", tokens.credentials.server);
		state.setMeta("user_id", me.user.id);
		state.setMeta("remote_root_id", node.id);
		state.setMeta("device_id", tokens.credentials.device_id);
		state.setMeta("device_name", deviceName);
		state.setMeta("root_dev", String(statSync(dir, { bigint: true }).dev));
	});
	return { state, client, deviceName };
}

/**
 * `link`, and with `--watch` again with backoff while the server cannot be
 * reached: a client started offline (at login, on a laptop without network)
 * waits for the server instead of exiting.
 */
async function linkWaiting(
	deps: SyncCommandDeps,
	root: string,
	remote: string | undefined,
	opts: Common & { init?: boolean; watch?: boolean },
	out: Output,
): Promise<Awaited<ReturnType<typeof link>>> {
	for (let attempt = 0; ; attempt++) {
		try {
			return await link(deps, root, remote, opts.init === true);
		} catch (err) {
			const unavailable = isTransient(err) || (err instanceof CliError && err.exit === EXIT.unavailable);
			if (opts.watch !== true || !unavailable) throw err;
			const message = err instanceof Error ? err.message : String(err);
			if (out.json) out.stdout.write(`${JSON.stringify({ event: "error", code: "UNAVAILABLE", message })}\n`);
			else out.log(`drive: ${message}; retrying`);
			await new Promise((resolve) => setTimeout(resolve, Math.min(30_000, 500 * 2 ** Math.min(attempt, 6))));
		}
	}
}

/** True if a process with this pid runs (signal 0 checks without sending). */
function alive(pid: number): boolean {
	try {
		process.kill(pid, 0);
		return true;
	} catch (err) {
		return (err as NodeJS.ErrnoException).code === "EPERM";
	}
}

/** Turns engine events into the CLI's output: NDJSON on stdout, or lines and a live progress view. */
function reporter(out: Output, opts: Common): { emit: (e: SyncEvent) => void; progress: Progress } {
	const progress = new Progress(progressMode(process.stderr, { json: out.json, quiet: opts.quiet === true }), "sync");
	const inFlight = new Map<string, number>();
	let bytesFinished = 0;
	let files = 0;
	const emit = (e: SyncEvent) => {
		if (out.json) {
			out.stdout.write(`${JSON.stringify(e)}\n`);
			return;
		}
		switch (e.event) {
			case "plan":
				progress.update({ filesTotal: files + Number(e.actions), bytesTotal: bytesFinished + Number(e.bytes) });
				return;
			case "progress":
				inFlight.set(String(e.path), Number(e.bytes_done));
				progress.update({ bytesDone: bytesFinished + [...inFlight.values()].reduce((a, b) => a + b, 0) });
				return;
			case "action": {
				files++;
				bytesFinished += inFlight.get(String(e.path)) ?? 0;
				inFlight.delete(String(e.path));
				progress.abandon();
				if (opts.quiet !== true)
					out.stdout.write(`${String(e.kind).padEnd(13)} ${e.from === undefined ? "" : `${String(e.from)} -> `}${String(e.path)}\n`);
				progress.update({ filesDone: files });
				return;
			}
			case "problem":
				progress.abandon();
				out.stderr.write(`drive: ${String(e.path)}: ${String(e.message)} (${String(e.code)})\n`);
				return;
			case "error":
				progress.abandon();
				out.stderr.write(`drive: ${String(e.message)}; retrying\n`);
				return;
			case "idle":
				progress.done();
				return;
		}
	};
	return { emit, progress };
}

export function registerSyncCommands(program: Command, deps: SyncCommandDeps): void {
	const { out } = deps;
	deps
		.common(program.command("sync"))
		.description("two-way sync of a local folder with a Drive folder (once, or with --watch until stopped)")
		.argument("<dir>", "the local folder")
		.argument("[remote]", "the Drive folder to link with --init (a path or node id)", undefined)
		.option("--init", "link the folder (creating it and its .drive/ marker) on first use")
		.option("--watch", "keep syncing: follow changes on the server and on disk until interrupted")
		.option("--force", "run deletions that the mass-delete guard held back")
		.action(async (dir: string, remote: string | undefined, opts: Common & { init?: boolean; watch?: boolean; force?: boolean }) => {
			const root = resolvePath(dir);
			const { state, client, deviceName } = await linkWaiting(deps, root, remote, opts, out);
			const pid = Number(state.getMeta("engine_pid") ?? 0);
			if (pid !== 0 && pid !== process.pid && alive(pid) && state.getMeta("engine_state") !== "stopped")
				throw new CliError("BUSY", `another drive sync (pid ${pid}) is syncing ${root}`, EXIT.conflict);
			state.setMeta("engine_pid", String(process.pid));
			const { emit, progress } = reporter(out, opts);
			const engine = new SyncEngine({
				client,
				state,
				root,
				deviceName,
				emit,
				force: opts.force === true,
				rescanMs: Number(process.env.DRIVE_SYNC_RESCAN_MS ?? 60_000),
			});
			emit({ event: "started", root, remote_root_id: engine.rootId });
			try {
				if (opts.watch === true) {
					const stop = new AbortController();
					const onSignal = () => stop.abort();
					process.once("SIGINT", onSignal);
					process.once("SIGTERM", onSignal);
					await engine.watch(stop.signal);
					progress.done();
					return;
				}
				const result = await engine.runOnce();
				const problems = state.problems();
				state.setMeta("engine_state", "stopped");
				if (out.json)
					emit({ event: "done", cursor: result.cursor, actions: result.actions, problems, held: result.held, settled: result.settled });
				else {
					progress.done();
					out.stdout.write(
						`in sync: ${result.actions} change${result.actions === 1 ? "" : "s"}${problems.length > 0 ? `, ${problems.length} problem(s): run drive status` : ""}\n`,
					);
					if (result.held !== null)
						out.stderr.write(
							`drive: ${result.held.deletes} deletions held back by the mass-delete guard: check, then run drive sync --force\n`,
						);
				}
			} finally {
				state.setMeta("engine_state", "stopped");
				state.close();
			}
		});

	deps
		.common(program.command("status"))
		.description("show a synced folder's state: running or not, problems, held deletions")
		.argument("[dir]", "the local folder", ".")
		.action((dir: string) => {
			const root = resolvePath(dir);
			let state: SyncState;
			try {
				state = openState(root, { create: false });
			} catch {
				throw notLinked(dir);
			}
			try {
				const pid = Number(state.getMeta("engine_pid") ?? 0);
				const running = pid !== 0 && alive(pid);
				const recorded = state.getMeta("engine_state");
				const held = state.getMeta("held");
				const value = {
					root,
					remote_root_id: state.getMeta("remote_root_id"),
					cursor: state.getMeta("cursor"),
					state: running && recorded !== null && recorded !== "stopped" ? recorded : "stopped",
					pid: running ? pid : null,
					problems: state.problems(),
					held: held === null || held === "" ? null : (JSON.parse(held) as unknown),
					transfers: state.transfers().length,
					last_idle_at: state.getMeta("last_idle_at"),
				};
				out.result(value, () => {
					const lines = [`${root} (${value.state}${value.pid === null ? "" : `, pid ${value.pid}`})`];
					if (value.last_idle_at !== null) lines.push(`last in sync at ${value.last_idle_at}`);
					if (value.transfers > 0) lines.push(`${value.transfers} transfer(s) to resume`);
					if (value.held !== null) lines.push(`deletions held back by the mass-delete guard: run drive sync --force to apply them`);
					for (const p of value.problems) lines.push(`problem: ${p.path}: ${p.message} (${p.code})`);
					if (value.problems.length === 0) lines.push("no problems");
					return lines.join("\n");
				});
			} finally {
				state.close();
			}
		});
}
