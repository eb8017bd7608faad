/**
 * Many small files downloaded in few requests (docs/api.md, "Batches of
 * small files"): `POST /v1/files/batch/content` answers up to 256 versions
 * of at most 1 MiB each as a stream of frames, so a sync client's first
 * download of thousands of small files is not bound by one request per file.
 *
 * Only fetch, streams and WebCrypto are used, so this runs in Node 22 and
 * browsers.
 *
 * @module
 */
import { sha256Hex } from "../shared/crypto";
import type { ErrorCode } from "../shared/errors";
import { BATCH_LIMITS } from "./batch";
import { DriveApiError, type DriveClient } from "./http";

/** One version to download: a file of the caller's own tree and one of its versions. */
export interface DownloadItem {
	fileId: string;
	versionId: string;
}

/**
 * What became of one item: its bytes, checked against `sha256`, or why not.
 * `NOT_FOUND` (a shared item, or one gone), `INVALID_REQUEST` with
 * `details: [{reason: "too_large"}]` and `INTERNAL` are for the single
 * download (`GET /v1/files/{id}/content`) to settle.
 */
export type DownloadOutcome = { ok: true; bytes: Uint8Array; sha256: string } | { ok: false; error: DriveApiError };

type Frame =
	| { index: number; file_id: string; version_id: string; size: number; sha256: string }
	| { index: number; error: { code: string; status: number; message: string; details?: unknown[] } };

/**
 * Downloads `items`, in as few requests as the server's limits allow; one
 * outcome per item, in order. Items the server leaves for another request
 * (`batch_full`) are asked again in the next. Bytes that do not hash to
 * their frame's `sha256` are a `CHECKSUM_MISMATCH` outcome, never returned.
 * A request refused as a whole (past the client's retries, 401, a broken
 * answer) throws.
 */
export async function downloadFiles(
	client: DriveClient,
	items: DownloadItem[],
	opts: { signal?: AbortSignal } = {},
): Promise<DownloadOutcome[]> {
	const outcomes: (DownloadOutcome | undefined)[] = items.map(() => undefined);
	let queue = items.map((_, at) => at);
	while (queue.length > 0) {
		const group = queue.slice(0, BATCH_LIMITS.files);
		const answers = await downloadGroup(
			client,
			group.map((at) => items[at] as DownloadItem),
			opts.signal,
		);
		const again: number[] = [];
		for (const [k, answer] of answers.entries()) {
			const at = group[k] as number;
			if (!answer.ok && isBatchFull(answer.error) && k > 0) again.push(at);
			else outcomes[at] = answer;
		}
		queue = [...again, ...queue.slice(group.length)];
	}
	return outcomes as DownloadOutcome[];
}

/** Whether the server left an item for another request. The first item of a request always fits, so it is kept as an error then. */
function isBatchFull(error: DriveApiError): boolean {
	return (error.details ?? []).some((d) => typeof d === "object" && d !== null && (d as { reason?: unknown }).reason === "batch_full");
}

async function downloadGroup(client: DriveClient, items: DownloadItem[], signal: AbortSignal | undefined): Promise<DownloadOutcome[]> {
	const json = { items: items.map((item) => ({ file_id: item.fileId, version_id: item.versionId })) };
	let res: Response;
	try {
		res = await client.request("POST", "/v1/files/batch/content", { json, ...(signal ? { signal } : {}) });
	} catch (err) {
		// A batch that reaches nothing of the caller's is one 404: each item is then NOT_FOUND.
		if (err instanceof DriveApiError && err.code === "NOT_FOUND") return items.map(() => ({ ok: false, error: err }));
		throw err;
	}
	const reader = new FrameReader(res.body);
	const outcomes: DownloadOutcome[] = [];
	try {
		for (let index = 0; index < items.length; index++) {
			const frame = JSON.parse(new TextDecoder().decode(await reader.line())) as Frame;
			if (frame.index !== index) throw broken(`frame ${frame.index} came where frame ${index} was due`);
			if ("error" in frame) {
				const { code, status, message, details } = frame.error;
				// A newer server may add codes: kept verbatim, as toApiError does.
				outcomes.push({
					ok: false,
					error: new DriveApiError({ code: code as ErrorCode, status, message, ...(details ? { details } : {}) }),
				});
				continue;
			}
			const bytes = await reader.bytes(frame.size);
			const actual = await sha256Hex(bytes);
			outcomes.push(
				actual === frame.sha256
					? { ok: true, bytes, sha256: actual }
					: {
							ok: false,
							error: new DriveApiError({
								code: "CHECKSUM_MISMATCH",
								// statusOf("CHECKSUM_MISMATCH"), written out: importing it would pull zod into the web bundle, whose eval probe breaks the app's CSP.
								status: 460,
								message: `file ${frame.file_id} (version ${frame.version_id}) did not hash to the SHA-256 its frame announced`,
								details: [{ index, expected: frame.sha256, actual }],
							}),
						},
			);
		}
	} finally {
		await reader.cancel();
	}
	return outcomes;
}

function broken(message: string): DriveApiError {
	return new DriveApiError({ code: "HTTP_ERROR", status: 200, message: `batch download: ${message}` });
}

/** Lines and byte runs out of a response body, without holding more than a chunk past what was asked. */
class FrameReader {
	#reader: ReadableStreamDefaultReader<Uint8Array> | null;
	#buffer: Uint8Array = new Uint8Array(0);

	constructor(body: ReadableStream<Uint8Array> | null) {
		this.#reader = body?.getReader() ?? null;
	}

	/** The bytes up to the next `\n`, without it. */
	async line(): Promise<Uint8Array> {
		for (let from = 0; ;) {
			const end = this.#buffer.indexOf(10, from);
			if (end >= 0) {
				const line = this.#buffer.subarray(0, end);
				this.#buffer = this.#buffer.subarray(end + 1);
				return line;
			}
			from = this.#buffer.byteLength;
			if (!(await this.#more())) throw broken("the answer ended inside a frame's header");
		}
	}

	/** Exactly `size` bytes, each chunk copied once into them. */
	async bytes(size: number): Promise<Uint8Array> {
		const out = new Uint8Array(size);
		let filled = Math.min(size, this.#buffer.byteLength);
		out.set(this.#buffer.subarray(0, filled));
		this.#buffer = this.#buffer.subarray(filled);
		while (filled < size) {
			const chunk = await this.#read();
			if (chunk === null) throw broken("the answer ended inside a file");
			const take = Math.min(size - filled, chunk.byteLength);
			out.set(chunk.subarray(0, take), filled);
			filled += take;
			this.#buffer = chunk.subarray(take);
		}
		return out;
	}

	async cancel(): Promise<void> {
		await this.#reader?.cancel().catch(() => undefined);
	}

	async #read(): Promise<Uint8Array | null> {
		if (!this.#reader) return null;
		const { done, value } = await this.#reader.read();
		return done ? null : value;
	}

	/** Appends the next chunk to what is buffered (headers are short: this copies little). */
	async #more(): Promise<boolean> {
		const value = await this.#read();
		if (value === null) return false;
		const joined = new Uint8Array(this.#buffer.byteLength + value.byteLength);
		joined.set(this.#buffer);
		joined.set(value, this.#buffer.byteLength);
		this.#buffer = joined;
		return true;
	}
}
