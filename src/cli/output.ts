/// <reference types="node" />
/**
 * What the CLI prints and how it exits: results on stdout (one JSON document
 * with `--json`), errors on stderr (the API's error envelope with `--json`),
 * and one exit code per kind of failure, so scripts can branch on it.
 *
 * @module
 */
import { DriveApiError } from "../client";

/** The exit codes, documented in `drive --help` and the README ("Command line"). */
export const EXIT = {
	ok: 0,
	error: 1,
	usage: 2,
	notSignedIn: 3,
	notFound: 4,
	conflict: 5,
	unavailable: 6,
} as const;

/** The help text's table of {@link EXIT}. */
export const EXIT_HELP = `
Exit codes:
  0  success
  1  any other error (a refused request, a file that changed, a hash that did not match)
  2  usage: an unknown command or option, a missing argument
  3  not signed in: no credentials, or the server signed this device out (run drive login)
  4  not found: no such remote file or folder, or no such local file
  5  conflict: a name already taken, a stale version
  6  the server could not be reached, or is unavailable or rate limiting after retries
`;

/** A failure the CLI itself detects, with the envelope code it reports. */
export class CliError extends Error {
	override readonly name = "CliError";
	constructor(
		readonly code: string,
		message: string,
		readonly exit: number = EXIT.error,
		readonly details?: unknown[],
	) {
		super(message);
	}
}

/** The exit code for an error thrown by a command. */
export function exitCodeOf(err: unknown): number {
	if (err instanceof CliError) return err.exit;
	if (err instanceof DriveApiError) {
		switch (err.code) {
			case "UNAUTHENTICATED":
				return EXIT.notSignedIn;
			case "NOT_FOUND":
				return EXIT.notFound;
			case "NAME_TAKEN":
			case "EMAIL_TAKEN":
			case "VERSION_CONFLICT":
				return EXIT.conflict;
			case "RATE_LIMITED":
				return EXIT.unavailable;
			default:
				return err.status >= 500 && err.status !== 507 ? EXIT.unavailable : EXIT.error;
		}
	}
	// fetch rejects with a TypeError when it cannot connect at all.
	if (err instanceof TypeError && /fetch failed/.test(err.message)) return EXIT.unavailable;
	if (isErrno(err) && err.code === "ENOENT") return EXIT.notFound;
	return EXIT.error;
}

function isErrno(err: unknown): err is NodeJS.ErrnoException {
	return err instanceof Error && "code" in err && typeof err.code === "string";
}

/** The API's error envelope for any error, so `--json` callers parse one shape. */
export function envelopeOf(err: unknown): { error: { code: string; message: string; request_id?: string; details?: unknown[] } } {
	if (err instanceof DriveApiError) {
		const error: { code: string; message: string; request_id?: string; details?: unknown[] } = { code: err.code, message: err.message };
		if (err.requestId !== undefined) error.request_id = err.requestId;
		if (err.details !== undefined) error.details = err.details;
		return { error };
	}
	if (err instanceof CliError)
		return {
			error:
				err.details === undefined
					? { code: err.code, message: err.message }
					: { code: err.code, message: err.message, details: err.details },
		};
	const exit = exitCodeOf(err);
	const code = exit === EXIT.unavailable ? "UNAVAILABLE" : exit === EXIT.notFound ? "NOT_FOUND" : "ERROR";
	const cause = err instanceof Error && err.cause instanceof Error ? `: ${err.cause.message}` : "";
	return { error: { code, message: (err instanceof Error ? err.message : String(err)) + cause } };
}

/** Where a command writes: `json` picks the machine-readable form of everything. */
export class Output {
	constructor(
		readonly json: boolean,
		readonly stdout: NodeJS.WritableStream = process.stdout,
		readonly stderr: NodeJS.WritableStream = process.stderr,
	) {}

	/** Prints a command's result: `value` as one JSON document, or the human lines. */
	result(value: unknown, human: () => string): void {
		if (this.json) this.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
		else {
			const text = human();
			if (text !== "") this.stdout.write(text.endsWith("\n") ? text : `${text}\n`);
		}
	}

	/** A log line on stderr (never with `--json`, whose stderr is machine-readable). */
	log(line: string): void {
		if (!this.json) this.stderr.write(`${line}\n`);
	}

	/** Reports a failure on stderr and returns its exit code. */
	fail(err: unknown): number {
		const envelope = envelopeOf(err);
		if (this.json) this.stderr.write(`${JSON.stringify(envelope)}\n`);
		else {
			const id = envelope.error.request_id === undefined ? "" : ` [request ${envelope.error.request_id}]`;
			this.stderr.write(`drive: ${envelope.error.message} (${envelope.error.code})${id}\n`);
		}
		return exitCodeOf(err);
	}
}

/** `12.3 MB`-style sizes for humans (SI units, like `ls -h --si`). */
export function formatBytes(bytes: number): string {
	if (bytes < 1000) return `${bytes} B`;
	const units = ["kB", "MB", "GB", "TB"];
	let value = bytes;
	let unit = "B";
	for (const u of units) {
		if (value < 1000) break;
		value /= 1000;
		unit = u;
	}
	return `${value < 10 ? value.toFixed(1) : Math.round(value)} ${unit}`;
}
