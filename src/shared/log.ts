/**
 * What an exception may put in the logs. Workers Logs are read widely, so no
 * value from a request or a row may reach them (audit L6).
 */
import { DrizzleQueryError } from "drizzle-orm";

/**
 * What the log may say about an unexpected error: a failed query's message
 * carries its bound parameters (emails, password hashes, file names), so
 * only its SQL is kept, and quoted text is cut out of every other message.
 */
export function redactedCause(err: unknown, depth = 0): Record<string, unknown> {
	if (!(err instanceof Error)) return { type: typeof err };
	const out: Record<string, unknown> = { name: err.name };
	if (err instanceof DrizzleQueryError) out.query = err.query;
	else out.message = err.message.replace(/'[^']*'|"[^"]*"|`[^`]*`/g, "'…'").slice(0, 500);
	if (err.cause !== undefined && depth < 3) out.cause = redactedCause(err.cause, depth + 1);
	return out;
}

/** The stack's frames without its first lines, which repeat the unredacted message. */
export function stackFrames(err: Error): string | undefined {
	return err.stack
		?.split("\n")
		.filter((line) => /^\s+at /.test(line))
		.join("\n");
}
