/// <reference types="node" />
/**
 * The sync engine's transfers: uploads through the client's upload library
 * (delta, dedup, sessions resumable after a crash) and downloads into
 * `.drive/tmp/`, verified against the version's SHA-256 before they may
 * take a path. A download over an older copy of the same file fetches only
 * the blocks that copy lacks (docs/api.md, "Delta downloads").
 */
import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import { mkdir, open, rm, stat } from "node:fs/promises";
import { join } from "node:path";
import { Readable } from "node:stream";
import {
	downloadBlocks,
	DriveApiError,
	SourceChangedError,
	uploadFile,
	type DriveClient,
	type UploadOptions,
	type UploadResult,
} from "../../client";
import type { BlockList } from "../../shared/schemas/delta";
import { STATE_DIR, type SyncState } from "../state";

/** Files at least this large are downloaded as blocks when an older local copy can supply most of them. */
export const DELTA_MIN_BYTES = 4 * 1024 * 1024;

/** Bytes moved by one transfer, for progress. */
export type OnBytes = (done: number, total: number) => void;

export interface UploadRequest {
	path: string;
	abs: string;
	parentId: string;
	name: string;
	/** The version this upload replaces (`If-Match`); null for a new file, which is then created only if the name is free. */
	ifMatch: string | null;
	/** The local fingerprint the upload started from: a session of other bytes is not resumed. */
	sig: string;
	onBytes: OnBytes;
}

/**
 * Uploads a file, resuming the session of an earlier run for the same path
 * and fingerprint (a SIGKILL mid-upload loses nothing already sent).
 */
export async function uploadTracked(client: DriveClient, state: SyncState, req: UploadRequest): Promise<UploadResult> {
	const earlier = state.transfers().find((t) => t.kind === "upload" && t.path === req.path);
	const resumable = earlier !== undefined && earlier.sig === req.sig && earlier.uploadId !== null;
	if (earlier !== undefined && !resumable) state.finishTransfer(earlier.id);
	const id = resumable
		? earlier.id
		: state.startTransfer({
				kind: "upload",
				nodeId: null,
				path: req.path,
				baseVersion: req.ifMatch,
				uploadId: null,
				tmpPath: null,
				sig: req.sig,
			});
	const attempt = (uploadId: string | undefined) => {
		const options: UploadOptions = {
			parentId: req.parentId,
			name: req.name,
			onConflict: "copy",
			onSession: (s) => state.updateTransfer(id, { uploadId: s.uploadId }),
			onProgress: (p) => req.onBytes(p.bytesSent, p.bytesToSend),
		};
		if (req.ifMatch !== null) options.baseVersionId = req.ifMatch;
		else options.createOnly = true;
		if (uploadId !== undefined) options.uploadId = uploadId;
		return uploadFile(client, () => Readable.toWeb(createReadStream(req.abs)) as ReadableStream<Uint8Array>, options);
	};
	let result: UploadResult;
	try {
		result = await attempt(resumable ? (earlier.uploadId ?? undefined) : undefined);
	} catch (err) {
		const stale = err instanceof SourceChangedError || (err instanceof DriveApiError && err.code === "NOT_FOUND");
		if (!resumable || !stale) {
			if (err instanceof SourceChangedError) state.finishTransfer(id);
			throw err;
		}
		state.updateTransfer(id, { uploadId: null });
		result = await attempt(undefined);
	}
	state.finishTransfer(id);
	return result;
}

export interface DownloadRequest {
	nodeId: string;
	versionId: string;
	contentHash: string;
	size: number;
	/** A local file holding version `base` of the same node, whose blocks need not be fetched again. */
	base: { abs: string; versionId: string } | null;
	onBytes: OnBytes;
}

/** Where a download of `versionId` is written while it runs; a restart resumes it with `Range`. */
export function tmpPathOf(root: string, nodeId: string, versionId: string): string {
	return join(root, STATE_DIR, "tmp", `${nodeId}.${versionId}`);
}

/**
 * Downloads a version into its temporary file, fsynced and verified.
 * @returns the temporary file's path, and the bytes received over the network.
 * @throws DriveApiError, or an Error when the bytes do not hash to the version's SHA-256 (the file is removed).
 */
export async function downloadVerified(
	client: DriveClient,
	root: string,
	req: DownloadRequest,
): Promise<{ tmp: string; received: number }> {
	const tmp = tmpPathOf(root, req.nodeId, req.versionId);
	await mkdir(join(root, STATE_DIR, "tmp"), { recursive: true });
	let received: number;
	let digest: string;
	if (req.base !== null && req.size >= DELTA_MIN_BYTES) ({ received, digest } = await deltaInto(client, tmp, req, req.base));
	else ({ received, digest } = await rangeInto(client, tmp, req));
	if (digest !== req.contentHash) {
		await rm(tmp, { force: true });
		throw new Error(`the downloaded bytes of ${req.nodeId} do not match its SHA-256; nothing was written`);
	}
	return { tmp, received };
}

/** Plain download with `Range` + `If-Range` resume of a partial file of the same version. */
async function rangeInto(client: DriveClient, tmp: string, req: DownloadRequest): Promise<{ received: number; digest: string }> {
	let offset = await stat(tmp).then(
		(st) => st.size,
		() => 0,
	);
	if (offset > req.size) offset = 0;
	const hash = createHash("sha256");
	if (offset > 0) for await (const chunk of createReadStream(tmp, { start: 0, end: offset - 1 })) hash.update(chunk as Buffer);
	const fh = await open(tmp, offset === 0 ? "w" : "r+", 0o600);
	let received = 0;
	try {
		const headers: Record<string, string> = offset > 0 ? { Range: `bytes=${offset}-`, "If-Range": `"${req.versionId}"` } : {};
		const res = await client.request("GET", `/v1/files/${encodeURIComponent(req.nodeId)}/content`, {
			headers,
			query: { version_id: req.versionId },
		});
		let h = hash;
		if (res.status === 200 && offset > 0) {
			// The whole file came back (If-Range did not match): start over.
			offset = 0;
			h = createHash("sha256");
		}
		await fh.truncate(offset);
		for await (const chunk of res.body ?? []) {
			const bytes = chunk as Uint8Array;
			await fh.write(bytes, 0, bytes.length, offset);
			h.update(bytes);
			offset += bytes.length;
			received += bytes.length;
			req.onBytes(offset, req.size);
		}
		await fh.sync();
		return { received, digest: h.digest("hex") };
	} finally {
		await fh.close();
	}
}

/** Fetches only the blocks the older local copy lacks; the rest is read from it. */
async function deltaInto(
	client: DriveClient,
	tmp: string,
	req: DownloadRequest,
	base: { abs: string; versionId: string },
): Promise<{ received: number; digest: string }> {
	const where = new Map<string, { offset: number; size: number }>();
	for (let offset: number | null = 0; offset !== null;) {
		const page: BlockList = await client.json<BlockList>("GET", `/v1/files/${encodeURIComponent(req.nodeId)}/blocks`, {
			query: { version_id: base.versionId, offset, limit: 5000 },
		});
		for (const b of page.blocks) where.set(b.hash, { offset: b.offset, size: b.size });
		offset = page.next_offset;
	}
	const source = await open(base.abs, "r");
	const fh = await open(tmp, "w", 0o600);
	try {
		const download = await downloadBlocks(client, req.nodeId, {
			versionId: req.versionId,
			have: async (hash) => {
				const at = where.get(hash);
				if (at === undefined) return null;
				const bytes = new Uint8Array(at.size);
				const { bytesRead } = await source.read(bytes, 0, at.size, at.offset);
				return bytesRead === at.size ? bytes : null;
			},
		});
		const hash = createHash("sha256");
		let offset = 0;
		for await (const bytes of download) {
			await fh.write(bytes, 0, bytes.length, offset);
			hash.update(bytes);
			offset += bytes.length;
			req.onBytes(offset, req.size);
		}
		await fh.sync();
		return { received: download.stats.bytesFetched, digest: hash.digest("hex") };
	} finally {
		await fh.close();
		await source.close();
	}
}
