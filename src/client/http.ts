/**
 * A small fetch wrapper for Drive's HTTP API (docs/api.md), used by the
 * command-line client and the web page.
 *
 * Only web-standard APIs (fetch, AbortSignal, setTimeout) are used so the same
 * module runs in Node 22 and browsers; nothing here may import `node:`.
 *
 * @module
 */
import { BOOKMARK_HEADER, formatBookmarks, mergeBookmarks, parseBookmarks, type Bookmarks } from "../shared/bookmarks";
import type { ErrorCode } from "../shared/errors";
import type { Disposition, DownloadUrl } from "../shared/schemas/download-urls";

/**
 * The `code` of a {@link DriveApiError}: one of the API's codes, or
 * `HTTP_ERROR` when the answer was not Drive's error envelope (a proxy's HTML
 * page, a platform 502, ...).
 */
export type DriveApiErrorCode = ErrorCode | "HTTP_ERROR";

/** A non-2xx answer from the API, decoded from the error envelope. */
export class DriveApiError extends Error {
	override readonly name = "DriveApiError";
	/** The stable error code from the envelope. */
	readonly code: DriveApiErrorCode;
	/** The HTTP status. */
	readonly status: number;
	/** `error.details` from the envelope, when the server sent any. */
	readonly details: unknown[] | undefined;
	/** The request id (envelope `request_id`, else the `Request-Id` header), for support tickets and logs. */
	readonly requestId: string | undefined;

	constructor(init: { code: DriveApiErrorCode; status: number; message: string; details?: unknown[]; requestId?: string }) {
		super(init.message);
		this.code = init.code;
		this.status = init.status;
		this.details = init.details;
		this.requestId = init.requestId;
	}
}

/**
 * Where the bearer token comes from: a fixed string, or a function called
 * before every attempt (retries included), so a provider that refreshes the
 * access token ahead of its expiry keeps a long upload authenticated.
 * Returning null or undefined sends no Authorization header.
 */
export type TokenProvider = string | (() => string | null | undefined | Promise<string | null | undefined>);

/** The fetch signature the client needs; inject one for tests or custom agents. */
export type FetchLike = (input: string, init: RequestInit) => Promise<Response>;

/** Settings of a {@link DriveClient}. */
export interface DriveClientOptions {
	/** Origin (and optional path prefix) of the api worker, e.g. `http://127.0.0.1:8787`. Routes add `/v1/...`. */
	baseUrl: string;
	/** The bearer token or its provider. */
	token?: TokenProvider;
	/** Defaults to the global fetch. */
	fetch?: FetchLike;
	/** Retries after the first attempt for retryable failures; default 5. */
	retries?: number;
	/** First backoff ceiling in ms; doubled per retry; default 250. */
	backoffBaseMs?: number;
	/** Largest backoff ceiling in ms; default 20,000. */
	backoffMaxMs?: number;
	/**
	 * The longest `Retry-After` the client waits for, in ms; default 120,000.
	 * A server asking for more fails the request at once instead of hanging it.
	 */
	maxRetryAfterMs?: number;
	/**
	 * A `Drive-Bookmark` value to start from: what {@link DriveClient.bookmark}
	 * answered in an earlier run, so that a new process reads its own writes too.
	 */
	bookmark?: string;
}

/** A value of a query parameter; undefined drops the parameter. */
export type QueryValue = string | number | boolean | undefined;

/** Details of a retry, for logging. */
export interface RetryInfo {
	/** 1 for the first retry. */
	attempt: number;
	/** How long the client waits before it. */
	delayMs: number;
	/** The failure being retried: a network error or a {@link DriveApiError}. */
	error: unknown;
}

/** Options of one request. */
export interface RequestOptions {
	query?: Record<string, QueryValue>;
	/** A JSON body; sets `Content-Type: application/json`. */
	json?: unknown;
	/**
	 * A raw body. Only replayable kinds are accepted: a retry must be able to
	 * send the same bytes again, which a ReadableStream cannot.
	 */
	body?: Uint8Array<ArrayBuffer> | ArrayBuffer | Blob | string;
	headers?: Record<string, string>;
	signal?: AbortSignal;
	/** Overrides the client's retry count for this request. */
	retries?: number;
	/** Called before each retry. */
	onRetry?: (info: RetryInfo) => void;
}

const DEFAULTS = { retries: 5, backoffBaseMs: 250, backoffMaxMs: 20_000, maxRetryAfterMs: 120_000 } as const;

/**
 * Whether an HTTP status is worth retrying: 429 and 5xx, except the 5xx that
 * no retry can fix — 501 and 505 (the server cannot do it) and 507
 * (`QUOTA_EXCEEDED`: the user is out of space until they delete something).
 */
export function isRetryableStatus(status: number): boolean {
	if (status === 429) return true;
	return status >= 500 && status <= 599 && status !== 501 && status !== 505 && status !== 507;
}

/** True for the error fetch and our sleeps reject with when a signal aborts. */
export function isAbortError(err: unknown): boolean {
	return typeof err === "object" && err !== null && "name" in err && (err.name === "AbortError" || err.name === "TimeoutError");
}

/**
 * Parses `Retry-After` (RFC 9110 §10.2.3): delay-seconds or an HTTP-date.
 * @returns milliseconds to wait, or undefined when absent or malformed.
 */
export function parseRetryAfter(value: string | null, now: number = Date.now()): number | undefined {
	if (value === null) return undefined;
	const trimmed = value.trim();
	if (/^\d+$/.test(trimmed)) return Number(trimmed) * 1000;
	const date = Date.parse(trimmed);
	if (Number.isNaN(date)) return undefined;
	return Math.max(0, date - now);
}

/** The reason an aborted signal carries, as the error to throw. */
function abortReason(signal: AbortSignal): unknown {
	return signal.reason ?? new DOMException("The operation was aborted.", "AbortError");
}

function isAborted(signal: AbortSignal): boolean {
	return signal.aborted;
}

/** Waits `ms`, or rejects with the signal's reason as soon as it aborts. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
	return new Promise((resolve, reject) => {
		if (signal === undefined) {
			setTimeout(resolve, ms);
			return;
		}
		if (signal.aborted) {
			reject(abortReason(signal));
			return;
		}
		const onAbort = (): void => {
			clearTimeout(timer);
			reject(abortReason(signal));
		};
		const timer = setTimeout(() => {
			signal.removeEventListener("abort", onAbort);
			resolve();
		}, ms);
		signal.addEventListener("abort", onAbort, { once: true });
	});
}

function isRecord(value: unknown): value is Record<string, unknown> {
	return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** Builds a {@link DriveApiError} from a non-2xx response, consuming its body. */
export async function toApiError(res: Response): Promise<DriveApiError> {
	const headerId = res.headers.get("Request-Id") ?? undefined;
	let text = "";
	try {
		text = await res.text();
	} catch {
		// A body that breaks mid-read still leaves us the status.
	}
	let parsed: unknown;
	try {
		parsed = JSON.parse(text);
	} catch {
		parsed = undefined;
	}
	const envelope = isRecord(parsed) && isRecord(parsed.error) ? parsed.error : undefined;
	if (envelope !== undefined && typeof envelope.code === "string" && typeof envelope.message === "string") {
		return new DriveApiError({
			// The server's codes are a closed set, but a newer server may add one;
			// keep it verbatim rather than guessing.
			code: envelope.code as ErrorCode,
			status: res.status,
			message: envelope.message,
			details: Array.isArray(envelope.details) ? envelope.details : undefined,
			requestId: typeof envelope.request_id === "string" ? envelope.request_id : headerId,
		});
	}
	return new DriveApiError({
		code: "HTTP_ERROR",
		status: res.status,
		message: `HTTP ${res.status}${res.statusText === "" ? "" : ` ${res.statusText}`}`,
		requestId: headerId,
	});
}

/**
 * A client for one Drive deployment: resolves routes against the base URL,
 * adds the bearer token, decodes the error envelope into {@link DriveApiError},
 * and retries with exponential backoff and full jitter on network errors, 429
 * (honouring `Retry-After`) and 5xx — never on other 4xx, whose answer would
 * not change.
 *
 * Every request is retried, POSTs included: the routes this client drives are
 * safe to repeat (a repeated session create leaves an orphan that expires;
 * block PUTs are idempotent).
 */
export class DriveClient {
	/** The base URL without a trailing slash. */
	readonly baseUrl: string;
	readonly #token: TokenProvider | undefined;
	readonly #fetch: FetchLike;
	readonly #retries: number;
	readonly #backoffBaseMs: number;
	readonly #backoffMaxMs: number;
	readonly #maxRetryAfterMs: number;
	/** The newest bookmark per shard seen in answers and sync frames (docs/api.md, "Read-your-writes (Drive-Bookmark)"). */
	readonly #bookmarks: Bookmarks = new Map();

	constructor(options: DriveClientOptions) {
		this.baseUrl = options.baseUrl.replace(/\/+$/, "");
		this.#token = options.token;
		// Bound to globalThis: browsers throw "Illegal invocation" when fetch is
		// called as a method of another object.
		this.#fetch = options.fetch ?? ((input, init) => globalThis.fetch(input, init));
		this.#retries = options.retries ?? DEFAULTS.retries;
		this.#backoffBaseMs = options.backoffBaseMs ?? DEFAULTS.backoffBaseMs;
		this.#backoffMaxMs = options.backoffMaxMs ?? DEFAULTS.backoffMaxMs;
		this.#maxRetryAfterMs = options.maxRetryAfterMs ?? DEFAULTS.maxRetryAfterMs;
		this.noteBookmark(options.bookmark);
	}

	/**
	 * The `Drive-Bookmark` this client sends: per shard, the newest bookmark it
	 * saw. Every request carries it, so that a read sees at least what the
	 * client wrote or was told of; "" before the first answer.
	 */
	get bookmark(): string {
		return formatBookmarks(this.#bookmarks);
	}

	/**
	 * Takes in a `Drive-Bookmark` value from elsewhere: a sync frame's
	 * `bookmark`, which makes the next read see the change the frame announced.
	 * Keeps only what is newer; ignores a value it cannot read.
	 */
	noteBookmark(value: string | null | undefined): void {
		if (value === null || value === undefined || value === "") return;
		const parsed = parseBookmarks(value);
		if (parsed !== null) mergeBookmarks(this.#bookmarks, parsed);
	}

	/** The absolute URL of `path` (which starts with `/v1/`) with `query`. */
	url(path: string, query?: Record<string, QueryValue>): string {
		let url = this.baseUrl + path;
		if (query !== undefined) {
			const params = new URLSearchParams();
			for (const [key, value] of Object.entries(query)) if (value !== undefined) params.set(key, String(value));
			const qs = params.toString();
			if (qs !== "") url += `?${qs}`;
		}
		return url;
	}

	/**
	 * Sends a request, retrying retryable failures.
	 *
	 * @returns the 2xx response, body unread.
	 * @throws DriveApiError for a non-2xx answer that is not retryable or
	 *   outlived its retries; the network error itself when the last attempt
	 *   failed to connect; the signal's reason when aborted.
	 */
	async request(method: string, path: string, options: RequestOptions = {}): Promise<Response> {
		const retries = options.retries ?? this.#retries;
		const url = this.url(path, options.query);
		const signal = options.signal;
		for (let attempt = 0; ; attempt++) {
			if (signal?.aborted === true) throw abortReason(signal);
			const headers: Record<string, string> = { ...options.headers };
			const token = typeof this.#token === "function" ? await this.#token() : this.#token;
			if (token !== undefined && token !== null) headers.Authorization = `Bearer ${token}`;
			const bookmark = this.bookmark;
			if (bookmark !== "" && headers[BOOKMARK_HEADER] === undefined) headers[BOOKMARK_HEADER] = bookmark;
			let body: RequestInit["body"];
			if (options.json !== undefined) {
				headers["Content-Type"] = "application/json";
				body = JSON.stringify(options.json);
			} else if (options.body !== undefined) {
				body = options.body;
			}
			const init: RequestInit = { method, headers };
			if (body !== undefined) init.body = body;
			if (signal !== undefined) init.signal = signal;

			let failure: unknown;
			let retryAfterMs: number | undefined;
			let res: Response | undefined;
			try {
				res = await this.#fetch(url, init);
			} catch (err) {
				// Re-read through a call: TypeScript narrowed `aborted` to false at
				// the top of the loop, but the signal may have fired since.
				if (signal !== undefined && isAborted(signal)) throw abortReason(signal);
				// An AbortError without our signal aborting came from the caller's
				// own fetch wrapper (a timeout, say): theirs to handle, not a
				// network failure to retry.
				if (isAbortError(err)) throw err;
				failure = err;
			}
			if (res !== undefined) {
				this.noteBookmark(res.headers.get(BOOKMARK_HEADER));
				if (res.ok) return res;
				const apiError = await toApiError(res);
				if (!isRetryableStatus(res.status)) throw apiError;
				retryAfterMs = parseRetryAfter(res.headers.get("Retry-After"));
				failure = apiError;
			}
			if (attempt >= retries) throw failure;
			if (retryAfterMs !== undefined && retryAfterMs > this.#maxRetryAfterMs) throw failure;
			const delayMs = Math.max(retryAfterMs ?? 0, this.#backoff(attempt));
			options.onRetry?.({ attempt: attempt + 1, delayMs, error: failure });
			await sleep(delayMs, signal);
		}
	}

	/**
	 * Sends a request and parses the JSON answer. The shape is the caller's
	 * claim, not checked here.
	 */
	async json<T = unknown>(method: string, path: string, options: RequestOptions = {}): Promise<T> {
		const res = await this.request(method, path, options);
		return (await res.json()) as T;
	}

	/** Sends a request whose answer has no body worth reading (204 and the like). */
	async send(method: string, path: string, options: RequestOptions = {}): Promise<void> {
		const res = await this.request(method, path, options);
		// Drain it so the connection goes back to the pool.
		await res.body?.cancel();
	}

	/**
	 * A URL that downloads a file without a bearer token, for a browser's
	 * `<a href download>`, `<img>` or `<video>` (docs/api.md, "Download URLs").
	 * It serves the head at the time of asking (or `versionId`) for 60 seconds;
	 * past that it answers 401 with reason `download_url_expired`, so ask for
	 * one per use rather than keeping it. Absolute when `baseUrl` is, relative
	 * to the page when `baseUrl` is "".
	 */
	async downloadUrl(
		fileId: string,
		options: { versionId?: string; disposition?: Disposition; signal?: AbortSignal } = {},
	): Promise<string> {
		const made = await this.json<DownloadUrl>("POST", `/v1/files/${encodeURIComponent(fileId)}/download-url`, {
			json: { version_id: options.versionId, disposition: options.disposition },
			signal: options.signal,
		});
		return this.baseUrl + made.url;
	}

	/**
	 * Full jitter (AWS Architecture Blog, "Exponential Backoff And Jitter"):
	 * a uniform delay under an exponentially growing ceiling spreads out
	 * clients that failed together, so they do not retry in lockstep.
	 */
	#backoff(attempt: number): number {
		const ceiling = Math.min(this.#backoffMaxMs, this.#backoffBaseMs * 2 ** attempt);
		return Math.floor(Math.random() * ceiling);
	}
}
