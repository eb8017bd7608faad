/**
 * Many small files in few requests (docs/api.md, "Batches of small files"):
 * `POST /v1/files/batch` commits up to 256 files of at most 1 MiB each in one
 * request, so a sync client's first upload of thousands of small files is
 * not bound by one request per file. Larger files go through `uploadFile`.
 *
 * Only fetch, FormData and WebCrypto are used, so this runs in Node 22 and
 * browsers.
 *
 * @module
 */
import { sha256Hex } from "../shared/crypto";
import type { ErrorCode } from "../shared/errors";
import type { CommitResult } from "../shared/schemas/nodes";
import { DriveApiError, type DriveClient } from "./http";

/** Files per request, bytes per file and per request: the server's limits. */
export const BATCH_LIMITS = { files: 256, fileBytes: 1024 * 1024, bytes: 16 * 1024 * 1024 } as const;

/** One file of a batch: a new file (`parentId` + `name`) or a new version of one (`fileId`, optionally `ifMatch`). */
export interface BatchFile {
	parentId?: string;
	name?: string;
	fileId?: string;
	/** With `fileId`: the version edited; a stale one becomes a conflicted copy (or fails under `onConflict: "fail"`). */
	ifMatch?: string | null;
	/** A new file only: a file another device put at the name meanwhile is never replaced (docs/api.md, "Commits and conflicts"). */
	createOnly?: boolean;
	onConflict?: "copy" | "fail";
	bytes: Uint8Array;
}

/** What became of one file: its commit (a new file, a new version, or a conflicted copy: see `result.conflict`), or why it was refused. */
export type BatchOutcome = { ok: true; result: CommitResult } | { ok: false; error: DriveApiError };

type ItemAnswer = CommitResult | { error: { code: string; status: number; message: string; details?: unknown[] } };

/**
 * Commits `files`, in order, in as few requests as the server's limits allow
 * ({@link BATCH_LIMITS}); one outcome per file, in order. Files fail
 * independently; a request refused as a whole (a network failure past the
 * client's retries, a limit, 401) throws.
 * @throws RangeError for a file over 1 MiB or one that names neither a folder and name nor a file id.
 */
export async function commitFiles(client: DriveClient, files: BatchFile[], opts: { signal?: AbortSignal } = {}): Promise<BatchOutcome[]> {
	for (const [i, file] of files.entries()) {
		if (file.bytes.byteLength > BATCH_LIMITS.fileBytes)
			throw new RangeError(`commitFiles: file ${i} has ${file.bytes.byteLength} bytes; at most ${BATCH_LIMITS.fileBytes} go in a batch`);
		if ((file.fileId === undefined) === (file.parentId === undefined || file.name === undefined))
			throw new RangeError(`commitFiles: file ${i} must name parentId and name, or fileId`);
	}
	const outcomes: BatchOutcome[] = [];
	for (const group of groups(files)) outcomes.push(...(await commitGroup(client, group, opts.signal)));
	return outcomes;
}

/** `files` cut into requests within the limits, in order. */
function* groups(files: BatchFile[]): Generator<BatchFile[]> {
	let group: BatchFile[] = [];
	let bytes = 0;
	for (const file of files) {
		if (group.length === BATCH_LIMITS.files || bytes + file.bytes.byteLength > BATCH_LIMITS.bytes) {
			yield group;
			group = [];
			bytes = 0;
		}
		group.push(file);
		bytes += file.bytes.byteLength;
	}
	if (group.length > 0) yield group;
}

async function commitGroup(client: DriveClient, files: BatchFile[], signal: AbortSignal | undefined): Promise<BatchOutcome[]> {
	const items = await Promise.all(files.map(manifestItem));
	const form = new FormData();
	form.append("manifest", JSON.stringify({ items }));
	for (const [i, file] of files.entries()) form.append("file", new Blob([file.bytes as Uint8Array<ArrayBuffer>]), `${i}`);
	// A Response serializes the form and picks the boundary; its Blob can be sent again on a retry.
	const encoded = new Response(form);
	const body = await encoded.blob();
	const headers = { "Content-Type": encoded.headers.get("Content-Type") ?? "" };
	const answer = await client.json<{ results: ItemAnswer[] }>("POST", "/v1/files/batch", { body, headers, ...(signal ? { signal } : {}) });
	return answer.results.map((item) => {
		if (!("error" in item)) return { ok: true, result: { node: item.node, version: item.version, conflict: item.conflict } };
		const { code, status, message, details } = item.error;
		// A newer server may add codes: kept verbatim, as toApiError does.
		return { ok: false, error: new DriveApiError({ code: code as ErrorCode, status, message, ...(details ? { details } : {}) }) };
	});
}

async function manifestItem(file: BatchFile): Promise<Record<string, unknown>> {
	const item: Record<string, unknown> = { size: file.bytes.byteLength, sha256: await sha256Hex(file.bytes) };
	if (file.fileId !== undefined) item.file_id = file.fileId;
	else Object.assign(item, { parent_id: file.parentId, name: file.name });
	if (file.ifMatch != null) item.if_match = file.ifMatch;
	if (file.createOnly === true) item.create_only = true;
	if (file.onConflict !== undefined) item.on_conflict = file.onConflict;
	return item;
}
