/// <reference types="node" />
/**
 * Runs a plan's actions against the server and the disk, and updates S
 * after each one (the contract is on the planner's `Action` type; the
 * in-memory twin is src/sync/fake-world.ts). Every local write re-checks
 * what the plan saw first, and none can replace something it did not
 * expect: files move with link(2) + unlink(2), which fails when the target
 * exists, instead of rename(2), which would silently replace it. A
 * precondition that no longer holds skips the action: the next plan sees
 * the new state.
 */
import { lstat, mkdir, rename, rmdir, unlink, link, rm, open, readFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { DriveApiError, isRetryableStatus, type DriveClient } from "../../client";
import { commitFiles, type BatchFile, type BatchOutcome } from "../../client/batch";
import type { CommitResult, Node } from "../../shared/schemas/nodes";
import type { Action, Expected, RemoteItem, SyncedItem } from "../planner";
import { STATE_DIR, type SyncState } from "../state";
import { fileIdOf, hashFile, type ScannedItem } from "./scan";
import { downloadVerified, uploadTracked } from "./transfer";

/** An action whose precondition no longer holds; nothing was changed, and the next plan decides again. */
export class Skip extends Error {
	override readonly name = "Skip";
}

/** An action the server refused for good (a name, a permission, the quota): reported, retried with backoff. */
export class Refused extends Error {
	override readonly name = "Refused";
	constructor(
		readonly code: string,
		message: string,
	) {
		super(message);
	}
}

/** What the engine tells its caller: NDJSON events with `--json`, lines or a live view otherwise. */
export type SyncEvent = { event: string } & Record<string, unknown>;
export type EmitEvent = (event: SyncEvent) => void;

export interface ExecContext {
	client: DriveClient;
	state: SyncState;
	/** The local folder, absolute. */
	root: string;
	rootId: string;
	/** R and L as the plan saw them. */
	remote: ReadonlyMap<string, RemoteItem>;
	local: ReadonlyMap<string, ScannedItem>;
	/** S, kept equal to the database as actions land. */
	synced: Map<string, SyncedItem>;
	emit: EmitEvent;
	/** Where `trash_local` puts what the server deleted: `.drive/trash/<stamp>/`. */
	trashStamp: string;
}

type UploadAction = Extract<Action, { kind: "upload" }>;

const parentOf = (path: string): string => (path.includes("/") ? path.slice(0, path.lastIndexOf("/")) : "");
const baseOf = (path: string): string => path.slice(path.lastIndexOf("/") + 1);
const within = (path: string, folder: string): boolean => path === folder || path.startsWith(`${folder}/`);
const errno = (err: unknown): string | undefined => (err as NodeJS.ErrnoException | undefined)?.code;

/** Progress events of one transfer, at most every 100 ms, always the first. */
function progressOf(emit: EmitEvent, kind: "upload" | "download", path: string): (done: number, total: number) => void {
	let last = Number.NEGATIVE_INFINITY;
	return (done, total) => {
		const now = Date.now();
		if (now - last < 100 && done < total) return;
		last = now;
		emit({ event: "progress", kind, path, bytes_done: done, bytes_total: total });
	};
}

/** The synced root and S-known live folders by local path, plus the folders this run created. */
export class Executor {
	/** Local path → node id of the folders created on the server by this plan (`parentId: null` means one of these). */
	readonly #created = new Map<string, string>();

	constructor(readonly ctx: ExecContext) {}

	/**
	 * Runs one action. @returns the bytes a transfer moved over the network (block bytes sent, or bytes received), else undefined.
	 * @throws Skip, Refused, or a transient error (network, 5xx, 429) that ends the round.
	 */
	async run(a: Action): Promise<number | void> {
		switch (a.kind) {
			case "create_folder":
				return this.#createFolder(a);
			case "upload":
				return this.#upload(a);
			case "move_remote":
				return this.#moveRemote(a);
			case "delete_remote":
				return this.#deleteRemote(a);
			case "mkdir_local":
				return this.#mkdirLocal(a);
			case "download":
				return this.#download(a);
			case "move_local":
				return this.#moveLocal(a);
			case "trash_local":
				return this.#trashLocal(a);
			case "record":
				return this.#record(a);
			case "record_path":
				return this.#moveSynced(a.nodeId, a.path);
			case "forget":
				return this.#dropSynced(a.nodeId);
		}
	}

	#abs(path: string): string {
		return join(this.ctx.root, ...path.split("/"));
	}

	/** The server folder for the parent of local `path`: the plan's, else the single live S folder there. */
	#remoteParent(path: string, planned: string | null): string {
		if (planned !== null) return planned;
		const parent = parentOf(path);
		if (parent === "") return this.ctx.rootId;
		const made = this.#created.get(parent);
		if (made !== undefined) return made;
		const live = (this.#foldersAt().get(parent) ?? []).filter((id) => this.ctx.synced.get(id)?.path === parent && this.ctx.remote.has(id));
		if (live.length !== 1) throw new Skip(`no single server folder for "${parent}" yet`);
		return live[0] as string;
	}

	/** S folders by path, built once per plan (entries are re-checked against S when used, since S moves as actions land). */
	#folderIndex: Map<string, string[]> | undefined;
	#foldersAt(): Map<string, string[]> {
		if (this.#folderIndex === undefined) {
			this.#folderIndex = new Map();
			for (const s of this.ctx.synced.values()) {
				if (s.type !== "folder") continue;
				const list = this.#folderIndex.get(s.path) ?? [];
				list.push(s.nodeId);
				this.#folderIndex.set(s.path, list);
			}
		}
		return this.#folderIndex;
	}

	#setSynced(item: SyncedItem): void {
		this.ctx.state.putSynced([item]);
		this.ctx.synced.set(item.nodeId, item);
		if (item.type === "folder" && this.#folderIndex !== undefined) {
			const list = this.#folderIndex.get(item.path) ?? [];
			list.push(item.nodeId);
			this.#folderIndex.set(item.path, list);
		}
	}

	#dropSynced(nodeId: string): void {
		this.ctx.state.deleteSynced([nodeId]);
		this.ctx.synced.delete(nodeId);
	}

	/** True if `id` is `ancestor` or below it in R (S paths can be stale, node ids cannot). */
	#descends(id: string, ancestor: string): boolean {
		for (let cur: string | null = id; cur !== null; cur = this.ctx.remote.get(cur)?.parentId ?? null) if (cur === ancestor) return true;
		return false;
	}

	/** A node's S path becomes `to`, and the S paths of the nodes below it follow, in one transaction. */
	#moveSynced(nodeId: string, to: string): void {
		const s = this.ctx.synced.get(nodeId);
		if (s === undefined) return;
		const from = s.path;
		const changed: SyncedItem[] = [];
		for (const other of this.ctx.synced.values()) {
			if (other.nodeId === nodeId || !within(other.path, from) || !this.#descends(other.nodeId, nodeId)) continue;
			changed.push({ ...other, path: to + other.path.slice(from.length) });
		}
		changed.push({ ...s, path: to });
		this.ctx.state.putSynced(changed);
		for (const c of changed) {
			this.ctx.synced.set(c.nodeId, c);
			if (c.type === "folder" && this.#folderIndex !== undefined)
				this.#folderIndex.set(c.path, [...(this.#folderIndex.get(c.path) ?? []), c.nodeId]);
		}
	}

	/** Re-checks a local file against what the plan expected: stat first, re-hash only if the stat moved. */
	async #matches(path: string, expect: Expected): Promise<boolean> {
		let st;
		try {
			st = await lstat(this.#abs(path), { bigint: true });
		} catch {
			return false;
		}
		if (!st.isFile() && !st.isDirectory()) return false;
		const seen = this.ctx.local.get(path);
		const fileId = fileIdOf(st);
		if (expect.fileId !== null && fileId !== expect.fileId) return false;
		if (st.isDirectory()) return expect.contentHash === null;
		if (seen !== undefined && seen.fileId === fileId && seen.size === Number(st.size) && seen.mtimeNs === String(st.mtimeNs))
			return seen.contentHash === expect.contentHash;
		return (await hashFile(this.#abs(path))) === expect.contentHash;
	}

	async #createFolder(a: Extract<Action, { kind: "create_folder" }>): Promise<void> {
		const parentId = this.#remoteParent(a.path, a.parentId);
		const l = this.ctx.local.get(a.path);
		if (l === undefined) throw new Skip(`"${a.path}" is gone`);
		const node = await this.#api(() =>
			this.ctx.client.json<Node>("POST", "/v1/folders", { json: { parent_id: parentId, name: baseOf(a.path) } }),
		);
		if (a.replaces !== null) this.#dropSynced(a.replaces);
		this.#created.set(a.path, node.id);
		this.#setSynced({ nodeId: node.id, path: a.path, type: "folder", versionId: null, contentHash: null, size: 0, fileId: l.fileId });
	}

	async #upload(a: UploadAction): Promise<number> {
		const l = this.ctx.local.get(a.path);
		if (l === undefined || l.type !== "file") throw new Skip(`"${a.path}" is gone`);
		const abs = this.#abs(a.path);
		const parentId =
			a.nodeId === null ? this.#remoteParent(a.path, a.parentId) : (this.ctx.remote.get(a.nodeId)?.parentId ?? this.ctx.rootId);
		const result = await this.#api(() =>
			uploadTracked(this.ctx.client, this.ctx.state, {
				path: a.path,
				abs,
				parentId,
				name: baseOf(a.path),
				ifMatch: a.nodeId === null ? null : a.ifMatch,
				sig: `${l.fileId}:${l.size}:${l.mtimeNs}`,
				onBytes: progressOf(this.ctx.emit, "upload", a.path),
			}),
		);
		this.#uploaded(a, l, result);
		return result.bytesSent;
	}

	/** S after an upload's commit: a new version, a new file, or our bytes kept in a conflicted copy. */
	#uploaded(a: UploadAction, l: ScannedItem, result: CommitResult): void {
		const uploaded = { contentHash: result.version.content_hash, size: result.version.size, fileId: l.fileId };
		if (a.nodeId === null) {
			// Ours is a new node either way; a name taken meanwhile made it a conflicted copy under another name, which S then
			// places at our local path, so the next plan renames the local file to match instead of uploading it twice.
			this.#setSynced({ nodeId: result.node.id, path: a.path, type: "file", versionId: result.version.id, ...uploaded });
			return;
		}
		const s = this.ctx.synced.get(a.nodeId);
		if (result.conflict === null) {
			this.#setSynced({ nodeId: a.nodeId, path: s?.path ?? a.path, type: "file", versionId: result.version.id, ...uploaded });
		} else if (s !== undefined) {
			// Our bytes are safe in the conflicted copy; S takes them, so the winner is downloaded over them (ADR 0029).
			this.#setSynced({ ...s, contentHash: uploaded.contentHash, size: uploaded.size, fileId: uploaded.fileId });
		}
	}

	/**
	 * Uploads small files in one request (`POST /v1/files/batch`): each file is
	 * its own commit with its own outcome, as if uploaded alone.
	 * @returns per action: the bytes sent when it landed, else its Skip, Refused or transient error.
	 */
	async uploadSmall(actions: UploadAction[]): Promise<(Error | number)[]> {
		const out: (Error | number)[] = actions.map(() => 0);
		const sent: { i: number; a: UploadAction; l: ScannedItem; file: BatchFile }[] = [];
		for (const [i, a] of actions.entries()) {
			try {
				const l = this.ctx.local.get(a.path);
				if (l === undefined || l.type !== "file") throw new Skip(`"${a.path}" is gone`);
				const bytes = await readFile(this.#abs(a.path)).catch(() => {
					throw new Skip(`"${a.path}" cannot be read`);
				});
				const file: BatchFile =
					a.nodeId === null
						? { parentId: this.#remoteParent(a.path, a.parentId), name: baseOf(a.path), createOnly: true, onConflict: "copy", bytes }
						: { fileId: a.nodeId, ifMatch: a.ifMatch, onConflict: "copy", bytes };
				sent.push({ i, a, l, file });
			} catch (err) {
				out[i] = err as Error;
			}
		}
		if (sent.length === 0) return out;
		let outcomes: BatchOutcome[];
		try {
			outcomes = await commitFiles(
				this.ctx.client,
				sent.map((x) => x.file),
			);
		} catch (err) {
			// Every item named a shared folder (one 404 for all): each goes up on its own.
			if (err instanceof DriveApiError && err.status === 404) outcomes = sent.map(() => ({ ok: false, error: err }));
			else {
				for (const x of sent) out[x.i] = this.#outcomeOf(err) as Error;
				return out;
			}
		}
		for (const [k, x] of sent.entries()) {
			const outcome = outcomes[k] as BatchOutcome;
			if (outcome.ok) {
				this.#uploaded(x.a, x.l, outcome.result);
				out[x.i] = x.file.bytes.byteLength;
			} else if (outcome.error.status === 404) {
				// Batches reach the caller's own tree only: a file in a shared folder goes up on its own.
				out[x.i] = await this.#upload(x.a).catch((err: unknown) => err as Error);
			} else out[x.i] = this.#outcomeOf(outcome.error) as Error;
		}
		return out;
	}

	async #moveRemote(a: Extract<Action, { kind: "move_remote" }>): Promise<void> {
		await this.#api(() =>
			this.ctx.client.json<Node>("PATCH", `/v1/nodes/${encodeURIComponent(a.nodeId)}`, { json: { parent_id: a.parentId, name: a.name } }),
		);
		this.#moveSynced(a.nodeId, a.to);
	}

	async #deleteRemote(a: Extract<Action, { kind: "delete_remote" }>): Promise<void> {
		try {
			await this.#api(() => this.ctx.client.send("DELETE", `/v1/nodes/${encodeURIComponent(a.nodeId)}`));
		} catch (err) {
			// Already gone on the server: the goal of the action holds.
			if (!(err instanceof Skip)) throw err;
		}
		this.#dropSynced(a.nodeId);
	}

	async #mkdirLocal(a: Extract<Action, { kind: "mkdir_local" }>): Promise<void> {
		const abs = this.#abs(a.path);
		try {
			await mkdir(abs);
		} catch (err) {
			if (errno(err) === "EEXIST" || errno(err) === "ENOENT" || errno(err) === "ENOTDIR")
				throw new Skip(`cannot make "${a.path}": ${errno(err)}`);
			throw err;
		}
		const st = await lstat(abs, { bigint: true });
		this.#setSynced({ nodeId: a.nodeId, path: a.path, type: "folder", versionId: null, contentHash: null, size: 0, fileId: fileIdOf(st) });
	}

	async #download(a: Extract<Action, { kind: "download" }>): Promise<number> {
		const r = this.ctx.remote.get(a.nodeId);
		if (r === undefined || a.versionId === null || a.contentHash === null) throw new Skip(`${a.nodeId} is not a file on the server`);
		const s = this.ctx.synced.get(a.nodeId);
		// The copy on disk is the synced version: the new version's blocks it already holds are read from it.
		const base =
			a.expect !== null && s?.versionId && s.contentHash === a.expect.contentHash
				? { abs: this.#abs(a.path), versionId: s.versionId }
				: null;
		const { tmp, received } = await this.#api(() =>
			downloadVerified(this.ctx.client, this.ctx.root, {
				nodeId: a.nodeId,
				versionId: a.versionId as string,
				contentHash: a.contentHash as string,
				size: r.size,
				base,
				onBytes: progressOf(this.ctx.emit, "download", a.path),
			}),
		);
		const abs = this.#abs(a.path);
		if (a.expect === null) {
			// link(2) fails if the user created something at the path meanwhile; rename(2) would replace it.
			try {
				await link(tmp, abs);
			} catch (err) {
				if (["EEXIST", "ENOENT", "ENOTDIR"].includes(errno(err) ?? "")) throw new Skip(`"${a.path}" is taken or has no folder`);
				throw err;
			}
			await unlink(tmp);
		} else {
			if (!(await this.#matches(a.path, a.expect))) {
				await rm(tmp, { force: true });
				throw new Skip(`"${a.path}" changed since the scan`);
			}
			await rename(tmp, abs);
		}
		await fsyncDir(dirname(abs));
		const st = await lstat(abs, { bigint: true });
		this.#setSynced({
			nodeId: a.nodeId,
			path: a.path,
			type: "file",
			versionId: a.versionId,
			contentHash: a.contentHash,
			size: Number(st.size),
			fileId: fileIdOf(st),
		});
		return received;
	}

	async #moveLocal(a: Extract<Action, { kind: "move_local" }>): Promise<void> {
		const from = this.#abs(a.from);
		const to = this.#abs(a.to);
		const seen = this.ctx.local.get(a.from);
		let st;
		try {
			st = await lstat(from, { bigint: true });
		} catch {
			throw new Skip(`"${a.from}" is gone`);
		}
		// The node the plan meant to move must still be the one there: a file replaced meanwhile keeps its name.
		if (seen === undefined || fileIdOf(st) !== seen.fileId) throw new Skip(`"${a.from}" was replaced since the scan`);
		if (a.caseOnly) {
			// Through a temporary name: on a case-insensitive disk the target "exists" (it is the source).
			const step = `${from}.drive-moving-${process.pid}`;
			await rename(from, step);
			if (await exists(to)) {
				await rename(step, from);
				throw new Skip(`"${a.to}" is taken`);
			}
			await rename(step, to);
		} else if (st.isDirectory()) {
			// rename(2) of a folder replaces only an empty folder; refuse even that.
			if (await exists(to)) throw new Skip(`"${a.to}" is taken`);
			await rename(from, to).catch((err: unknown) => {
				throw ["ENOENT", "ENOTDIR", "ENOTEMPTY", "EEXIST", "EINVAL"].includes(errno(err) ?? "") ? new Skip(String(err)) : err;
			});
		} else {
			try {
				await link(from, to);
			} catch (err) {
				if (["EEXIST", "ENOENT", "ENOTDIR"].includes(errno(err) ?? "")) throw new Skip(`"${a.to}" is taken or has no folder`);
				throw err;
			}
			await unlink(from);
		}
		await fsyncDir(dirname(to));
		if (a.nodeId !== null) this.#moveSynced(a.nodeId, a.to);
	}

	async #trashLocal(a: Extract<Action, { kind: "trash_local" }>): Promise<void> {
		const abs = this.#abs(a.path);
		if (!(await this.#matches(a.path, a.expect))) throw new Skip(`"${a.path}" changed since the scan`);
		const st = await lstat(abs);
		if (st.isDirectory()) {
			// Its children were trashed one by one; anything still inside was made since the scan and stays.
			try {
				await rmdir(abs);
			} catch (err) {
				if (errno(err) === "ENOTEMPTY" || errno(err) === "EEXIST") throw new Skip(`"${a.path}" is not empty`);
				throw err;
			}
		} else {
			const dest = join(this.ctx.root, STATE_DIR, "trash", this.ctx.trashStamp, ...a.path.split("/"));
			await mkdir(dirname(dest), { recursive: true });
			await rename(abs, dest);
		}
		this.#dropSynced(a.nodeId);
	}

	async #record(a: Extract<Action, { kind: "record" }>): Promise<void> {
		const r = this.ctx.remote.get(a.nodeId);
		const l = this.ctx.local.get(a.path);
		if (r === undefined || l === undefined || r.type !== l.type || r.contentHash !== l.contentHash)
			throw new Skip(`"${a.path}" is not equal on both sides`);
		this.#setSynced({
			nodeId: a.nodeId,
			path: a.path,
			type: r.type,
			versionId: r.versionId,
			contentHash: r.contentHash,
			size: r.size,
			fileId: l.fileId,
		});
	}

	/**
	 * Runs a request, turning the server's answers into the engine's outcomes:
	 * 404 and 409 (a stale R) skip, other 4xx are refusals, the rest is transient.
	 */
	async #api<T>(call: () => Promise<T>): Promise<T> {
		try {
			return await call();
		} catch (err) {
			throw this.#outcomeOf(err);
		}
	}

	#outcomeOf(err: unknown): unknown {
		if (!(err instanceof DriveApiError) || isRetryableStatus(err.status)) return err;
		if (err.status === 404 || err.status === 409 || err.status === 412) return new Skip(err.message);
		return new Refused(err.code, err.message);
	}
}

async function exists(path: string): Promise<boolean> {
	try {
		await lstat(path);
		return true;
	} catch {
		return false;
	}
}

/** fsync of the folder makes a rename or link itself durable (they are atomic, not durable). */
async function fsyncDir(dir: string): Promise<void> {
	const fh = await open(dir, "r");
	try {
		await fh.sync();
	} finally {
		await fh.close();
	}
}
