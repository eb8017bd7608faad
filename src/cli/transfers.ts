/// <reference types="node" />
/**
 * `drive put` and `drive get`: transfers that survive a crash.
 *
 * - put goes through `uploadFile` (delta and dedup by content-defined
 *   blocks) and keeps the session id in `uploads.json`, keyed by the local
 *   path, size and mtime, so running the same put again resumes it.
 * - get writes `<target>.<version>.drive-partial` beside the target, resumes
 *   it with `Range` + `If-Range: "<version>"`, checks the SHA-256 against the
 *   file's `content_hash`, fsyncs, and renames it over the target.
 *
 * @module
 */
import { createHash } from "node:crypto";
import {
	closeSync,
	createReadStream,
	fsyncSync,
	ftruncateSync,
	openAsBlob,
	openSync,
	readdirSync,
	renameSync,
	rmSync,
	statSync,
	writeSync,
} from "node:fs";
import { basename, dirname, join, resolve as resolvePath } from "node:path";
import { DriveApiError, SourceChangedError, uploadFile, type DriveClient, type UploadResult } from "../client";
import type { Node } from "../shared/schemas/nodes";
import { readJson, writeJson } from "./credentials";
import { CliError, EXIT } from "./output";
import type { Progress } from "./progress";

/** An unfinished upload session, as kept in `uploads.json`. */
interface SavedUpload {
	upload_id: string;
	parent_id: string;
	name: string;
	expires_at: string;
}

const UPLOADS = "uploads.json";

/**
 * For the e2e tests only: `DRIVE_TEST_CRASH_AFTER_BYTES=N` ends the process
 * abruptly once N bytes are sent (block bytes acknowledged) or received, like
 * a crash mid-transfer, so a test can show that the next run resumes without
 * depending on timing.
 */
function crashForTests(bytes: number): void {
	const after = process.env.DRIVE_TEST_CRASH_AFTER_BYTES;
	if (after !== undefined && bytes >= Number(after)) process.exit(70);
}

/** The key of a local file's saved session: a file edited since (size or mtime) starts a new one. */
function uploadKey(path: string, size: number, mtimeMs: number): string {
	return `${resolvePath(path)}\u0000${size}\u0000${mtimeMs}`;
}

function saveUpload(dir: string, key: string, saved: SavedUpload | undefined): void {
	const all = readJson<Record<string, SavedUpload>>(dir, UPLOADS) ?? {};
	if (saved === undefined) delete all[key];
	else all[key] = saved;
	writeJson(dir, UPLOADS, all);
}

/** What `drive put` answers. */
export interface PutResult extends UploadResult {
	resumed: boolean;
}

/** Uploads one local file into `parent`, resuming a session an earlier run left. */
export async function putFile(client: DriveClient, configDir: string, local: string, parent: Node, progress: Progress): Promise<PutResult> {
	const st = statSync(local);
	if (!st.isFile()) throw new CliError("INVALID_REQUEST", `not a file: ${local}`);
	const name = basename(local);
	const key = uploadKey(local, st.size, st.mtimeMs);
	const saved = readJson<Record<string, SavedUpload>>(configDir, UPLOADS)?.[key];
	const resumable =
		saved !== undefined && saved.parent_id === parent.id && saved.name === name && Date.parse(saved.expires_at) > Date.now();
	progress.update({ filesTotal: 1, bytesTotal: st.size });
	let resumed = false;
	const attempt = async (uploadId: string | undefined): Promise<UploadResult> =>
		uploadFile(client, await openAsBlob(local), {
			parentId: parent.id,
			name,
			uploadId,
			onSession: (s) => {
				resumed = s.resumed;
				saveUpload(configDir, key, { upload_id: s.uploadId, parent_id: parent.id, name, expires_at: s.expiresAt });
			},
			onProgress: (p) => {
				progress.update(
					p.phase === "hashing" ? { bytesDone: p.bytesHashed, bytesTotal: st.size } : { bytesDone: p.bytesSent, bytesTotal: p.bytesToSend },
				);
				if (p.bytesSent > 0) crashForTests(p.bytesSent);
			},
		});
	let result: UploadResult;
	try {
		result = await attempt(resumable ? saved.upload_id : undefined);
	} catch (err) {
		// A session that expired or belongs to other bytes: start a new one.
		const stale = err instanceof SourceChangedError || (err instanceof DriveApiError && err.code === "NOT_FOUND");
		if (!resumable || !stale) throw err;
		saveUpload(configDir, key, undefined);
		result = await attempt(undefined);
	}
	saveUpload(configDir, key, undefined);
	progress.done({ filesDone: 1 });
	return { ...result, resumed };
}

/** What `drive get` answers. */
export interface GetResult {
	node: Node;
	path: string;
	bytes: number;
	/** Bytes a partial file of an earlier run already held (0 for a fresh download). */
	resumed_from: number;
	/** Bytes this run received. */
	bytes_downloaded: number;
}

/** Where a download is written while it runs. */
export function partialPath(target: string, versionId: string): string {
	return `${target}.${versionId}.drive-partial`;
}

/** Times a download continues after its connection broke mid-body. */
const BODY_RETRIES = 5;

/** Downloads a file to `target` (a directory gets the file's name), resuming a partial download. */
export async function getFile(client: DriveClient, node: Node, targetArg: string | undefined, progress: Progress): Promise<GetResult> {
	if (node.type !== "file" || node.version_id === null || node.content_hash === null || node.size === null)
		throw new CliError("INVALID_REQUEST", `not a file: ${node.name}`);
	const size = node.size;
	let target = targetArg ?? node.name;
	if (isDirectory(target)) target = join(target, node.name);
	const version = node.version_id;
	const partial = partialPath(target, version);
	dropOtherPartials(target, partial);

	let offset = sizeOf(partial) ?? 0;
	if (offset > size) offset = 0;
	const resumedFrom = offset;
	progress.update({ filesTotal: 1, bytesTotal: size, bytesDone: offset });

	let { digest, received } = await download(client, node.id, version, size, partial, offset, progress);
	if (digest !== node.content_hash && resumedFrom > 0) {
		// The partial held other bytes than the version's (edited by hand, or a disk error): once more from scratch.
		const again = await download(client, node.id, version, size, partial, 0, progress);
		digest = again.digest;
		received += again.received;
	}
	if (digest !== node.content_hash) {
		rmSync(partial, { force: true });
		throw new CliError(
			"CHECKSUM_MISMATCH",
			`the downloaded bytes do not match the file's SHA-256 (${node.content_hash}); nothing was written`,
		);
	}
	renameSync(partial, target);
	fsyncDir(dirname(resolvePath(target)));
	progress.done({ filesDone: 1, bytesDone: size });
	return { node, path: target, bytes: size, resumed_from: resumedFrom, bytes_downloaded: received };
}

/**
 * Fills `partial` from `offset` to the end and fsyncs it.
 * @returns the SHA-256 (hex) of the whole partial file, and the bytes received.
 */
async function download(
	client: DriveClient,
	nodeId: string,
	version: string,
	size: number,
	partial: string,
	start: number,
	progress: Progress,
): Promise<{ digest: string; received: number }> {
	const fd = openSync(partial, start === 0 ? "w" : "r+", 0o600);
	try {
		if (start === 0) ftruncateSync(fd, 0);
		let hash = createHash("sha256");
		let offset = start;
		let received = 0;
		if (offset > 0) await hashPrefix(partial, offset, hash);
		for (let attempt = 0; offset < size; attempt++) {
			if (attempt > BODY_RETRIES) throw new CliError("UNAVAILABLE", "the download kept breaking off", EXIT.unavailable);
			const headers: Record<string, string> = offset > 0 ? { Range: `bytes=${offset}-`, "If-Range": `"${version}"` } : {};
			const res = await client.request("GET", `/v1/files/${encodeURIComponent(nodeId)}/content`, {
				headers,
				query: { version_id: version },
			});
			if (res.status === 200 && offset > 0) {
				// The whole file came back (If-Range did not match): the partial starts again.
				ftruncateSync(fd, 0);
				hash = createHash("sha256");
				offset = 0;
			}
			try {
				for await (const chunk of res.body ?? []) {
					const bytes = chunk as Uint8Array;
					writeSync(fd, bytes, 0, bytes.length, offset);
					hash.update(bytes);
					offset += bytes.length;
					received += bytes.length;
					progress.update({ bytesDone: offset });
					crashForTests(received);
				}
			} catch (err) {
				// A connection that broke mid-body: the next round asks for the rest.
				if (attempt >= BODY_RETRIES) throw err;
			}
		}
		ftruncateSync(fd, offset);
		fsyncSync(fd);
		return { digest: hash.digest("hex"), received };
	} finally {
		closeSync(fd);
	}
}

async function hashPrefix(path: string, length: number, hash: ReturnType<typeof createHash>): Promise<void> {
	for await (const chunk of createReadStream(path, { start: 0, end: length - 1 })) hash.update(chunk as Buffer);
}

function sizeOf(path: string): number | undefined {
	try {
		return statSync(path).size;
	} catch {
		return undefined;
	}
}

function isDirectory(path: string): boolean {
	try {
		return statSync(path).isDirectory();
	} catch {
		return false;
	}
}

/** Removes partial downloads of other versions of the same target: they can never be resumed. */
function dropOtherPartials(target: string, keep: string): void {
	const dir = dirname(resolvePath(target));
	const prefix = `${basename(target)}.ver_`;
	let names: string[];
	try {
		names = readdirSync(dir);
	} catch {
		return;
	}
	for (const name of names) {
		if (name.startsWith(prefix) && name.endsWith(".drive-partial") && join(dir, name) !== resolvePath(keep))
			rmSync(join(dir, name), { force: true });
	}
}

/** fsync of the directory makes the rename itself durable (rename(2) is atomic, not durable). */
function fsyncDir(dir: string): void {
	const fd = openSync(dir, "r");
	try {
		fsyncSync(fd);
	} finally {
		closeSync(fd);
	}
}
