/**
 * The upload queue: one job per file through src/client's uploadFile, a few
 * files in flight at once, each with its own AbortController and progress,
 * and resumable after a reload (upload/resume.ts). Folders named by a
 * dropped or picked tree are created first, reusing any that already exist.
 */
import { signal } from "@preact/signals";
import { DriveApiError, isAbortError, uploadFile, type UploadProgress } from "../../../src/client";
import { nameKey } from "../../../src/shared/names";
import { call, children, client, createFolder } from "../api";
import { describeError } from "../messages";
import { user } from "../session";
import { notify } from "../toasts";
import { forget, remember, sameFile, type Resumable } from "./resume";

/** A file picked or dropped, with the folder path under the drop target ("" for a plain file). */
export interface UploadItem {
	file: File;
	/** Folders between the target and the file, e.g. "Photos/2026". */
	relativeDir: string;
}

export interface UploadJob {
	id: string;
	name: string;
	size: number;
	parentId: string;
	bytesDone: number;
	state: "queued" | "hashing" | "uploading" | "committing" | "done" | "failed" | "cancelled";
	error?: string;
	cancel: () => void;
	/** 0–100, never going back; 100 only once committed. */
	percent: number;
	/** Where the file goes under the target, for the panel ("" for the target itself). */
	relativeDir: string;
}

export const uploads = signal<UploadJob[]>([]);

/** Files uploading at once; each also sends several block batches at once. */
const FILES_IN_FLIGHT = 3;
/** Smaller than the library's 16 MiB default: a reload or a dropped connection loses at most one batch per request in flight, and progress moves in finer steps. */
const BATCH_BYTES = 4 * 1024 * 1024;

interface Task {
	id: string;
	file: File;
	parent: () => Promise<string>;
	controller: AbortController;
	uploadId?: string;
	resumed: boolean;
}

const waiting: Task[] = [];
const running = new Map<string, Task>();
let nextId = 1;

function patch(id: string, change: Partial<UploadJob>): void {
	uploads.value = uploads.value.map((job) => (job.id === id ? { ...job, ...change } : job));
}

/** Upload ids this page is working on, so the panel does not offer them for resuming. */
export function runningUploadIds(): Set<string> {
	return new Set([...running.values()].flatMap((task) => (task.uploadId === undefined ? [] : [task.uploadId])));
}

function addJob(file: File, relativeDir: string, parentId: string, parent: () => Promise<string>, uploadId?: string): void {
	const id = `u${nextId++}`;
	const controller = new AbortController();
	const task: Task = { id, file, parent, controller, resumed: uploadId !== undefined };
	if (uploadId !== undefined) task.uploadId = uploadId;
	waiting.push(task);
	uploads.value = [
		...uploads.value,
		{
			id,
			name: file.name,
			size: file.size,
			parentId,
			relativeDir,
			bytesDone: 0,
			percent: 0,
			state: "queued",
			cancel: () => cancel(id),
		},
	];
}

/** Queues files (from a picker or a drop) for upload into `parentId`, creating the folders their relativeDir names. */
export function startUploads(items: UploadItem[], parentId: string): void {
	const folders = new Folders(parentId);
	for (const item of items) {
		const dir = item.relativeDir;
		addJob(item.file, dir, parentId, () => folders.ensure(dir));
	}
	pump();
}

/**
 * Continues an upload from an earlier page load with the file picked again.
 * Returns false (and starts nothing) when the file is not the one the session was for.
 */
export function resumeUpload(record: Resumable, file: File): boolean {
	if (!sameFile(record, file)) return false;
	addJob(file, "", record.parentId, () => Promise.resolve(record.parentId), record.uploadId);
	pump();
	return true;
}

export function cancel(id: string): void {
	const queued = waiting.findIndex((task) => task.id === id);
	if (queued >= 0) {
		const [task] = waiting.splice(queued, 1);
		if (task?.uploadId !== undefined) void abandon(task.uploadId);
		patch(id, { state: "cancelled" });
		return;
	}
	running.get(id)?.controller.abort();
}

export function cancelAll(): void {
	for (const task of [...waiting]) cancel(task.id);
	for (const task of running.values()) task.controller.abort();
}

/** Removes finished, failed and cancelled jobs from the panel. */
export function clearFinished(): void {
	uploads.value = uploads.value.filter((job) => job.state !== "done" && job.state !== "failed" && job.state !== "cancelled");
}

/** Ends a session for good: the server drops it and its blocks, and it is no longer offered for resuming. */
async function abandon(uploadId: string): Promise<void> {
	await forget(uploadId);
	await call("DELETE", `/v1/uploads/${encodeURIComponent(uploadId)}`, { retries: 1 }).catch(() => undefined);
}

function pump(): void {
	while (running.size < FILES_IN_FLIGHT) {
		const task = waiting.shift();
		if (task === undefined) return;
		running.set(task.id, task);
		void run(task).finally(() => {
			running.delete(task.id);
			pump();
			if (running.size === 0 && waiting.length === 0) announce();
		});
	}
}

/** Jobs already counted in a "complete" message, so each message counts only the latest round. */
const announced = new Set<string>();

function announce(): void {
	const jobs = uploads.value.filter((job) => !announced.has(job.id));
	for (const job of jobs) announced.add(job.id);
	const done = jobs.filter((job) => job.state === "done").length;
	const failed = jobs.filter((job) => job.state === "failed").length;
	if (failed > 0) notify(`${failed} of ${done + failed} uploads failed.`, "error");
	else if (done > 0) notify(done === 1 ? "Upload complete." : `${done} uploads complete.`);
}

async function run(task: Task): Promise<void> {
	const { file, controller } = task;
	const size = file.size;
	let percent = 0;
	const onProgress = (p: UploadProgress): void => {
		// A resumed session already holds some blocks: they count as done once the session says how many are left.
		const already = task.resumed && p.phase !== "hashing" ? size - p.bytesToSend : 0;
		const fraction = size === 0 ? 0 : (already + p.bytesSent) / size;
		percent = Math.max(percent, Math.min(99, Math.floor(fraction * 100)));
		patch(task.id, { state: p.phase, bytesDone: already + p.bytesSent, percent });
	};
	try {
		patch(task.id, { state: "hashing" });
		const parentId = await task.parent();
		if (controller.signal.aborted) throw controller.signal.reason;
		const owner = user.value?.id ?? "";
		await uploadFile(client, file, {
			parentId,
			name: file.name,
			signal: controller.signal,
			concurrency: 3,
			batchBytes: BATCH_BYTES,
			onProgress,
			...(task.uploadId !== undefined ? { uploadId: task.uploadId } : {}),
			onSession: ({ uploadId, expiresAt }) => {
				task.uploadId = uploadId;
				void remember({ uploadId, expiresAt, userId: owner, name: file.name, size, lastModified: file.lastModified, parentId });
			},
		});
		patch(task.id, { state: "done", percent: 100, bytesDone: size });
		if (task.uploadId !== undefined) await forget(task.uploadId);
	} catch (err) {
		if (controller.signal.aborted || isAbortError(err)) {
			patch(task.id, { state: "cancelled" });
			if (task.uploadId !== undefined) await abandon(task.uploadId);
			return;
		}
		patch(task.id, { state: "failed", error: describeError(err, { name: file.name }) });
		// A session that is gone (expired, or its folder deleted) cannot be resumed; any other failure can, after a reload.
		if (task.uploadId !== undefined && err instanceof DriveApiError && err.status === 404) await forget(task.uploadId);
	}
}

/** Creates the folders of a dropped tree once each, in order, reusing existing ones of the same name. */
class Folders {
	private readonly made = new Map<string, Promise<string>>();

	constructor(private readonly rootId: string) {}

	ensure(path: string): Promise<string> {
		if (path === "") return Promise.resolve(this.rootId);
		let known = this.made.get(path);
		if (known === undefined) {
			const cut = path.lastIndexOf("/");
			const above = cut < 0 ? "" : path.slice(0, cut);
			const name = path.slice(cut + 1);
			known = this.ensure(above).then((parentId) => folderIn(parentId, name));
			this.made.set(path, known);
		}
		return known;
	}
}

/** A new folder, or the one already there with that name (NAME_TAKEN). */
async function folderIn(parentId: string, name: string): Promise<string> {
	try {
		return (await createFolder(parentId, name)).id;
	} catch (err) {
		if (!(err instanceof DriveApiError) || err.code !== "NAME_TAKEN") throw err;
		const key = nameKey(name);
		let cursor: string | undefined;
		do {
			const page = await children(parentId, cursor);
			const found = page.items.find((node) => node.type === "folder" && nameKey(node.name) === key);
			if (found) return found.id;
			cursor = page.next_cursor ?? undefined;
		} while (cursor !== undefined);
		// A file holds the name: say so, as the create did.
		throw err;
	}
}
