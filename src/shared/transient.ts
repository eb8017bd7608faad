/**
 * Telling a component's failure (D1, a Durable Object, a wait that ran out)
 * from a bug: the first answers 503 UNAVAILABLE with Retry-After, which
 * clients retry; the second stays 500 INTERNAL (docs/decisions/0033-failure-handling.md).
 */

/** Thrown when a wait on a component ran past its deadline; the operation may still finish, so a retry must be idempotent. */
export class DeadlineExceeded extends Error {
	/** As the runtime marks a Durable Object error worth retrying. */
	readonly retryable = true;

	constructor(what: string, ms: number) {
		super(`${what} did not finish within ${ms} ms`);
		this.name = "DeadlineExceeded";
	}
}

/** A Durable Object call the platform failed (the object was reset, moved or is unreachable), as opposed to an error its own code threw. */
export class ObjectUnavailable extends Error {
	readonly retryable = true;

	constructor(cause: unknown) {
		super("the Durable Object could not answer", { cause });
		this.name = "ObjectUnavailable";
	}
}

/** Seconds a client waits before it retries an UNAVAILABLE answer. */
export const RETRY_AFTER_SECONDS = 1;

/**
 * Whether `err` is a component failing rather than a bug: a Durable Object
 * error the runtime marks `retryable`, `overloaded` or `durableObjectReset`
 * (https://developers.cloudflare.com/durable-objects/best-practices/error-handling/),
 * a D1 error other than one in the SQL itself or a broken constraint, or a {@link DeadlineExceeded}.
 * Follows `cause`, where drizzle puts the D1 error.
 */
export function isTransient(err: unknown, depth = 0): boolean {
	if (typeof err !== "object" || err === null || depth > 3) return false;
	const e = err as { retryable?: unknown; overloaded?: unknown; durableObjectReset?: unknown; message?: unknown; cause?: unknown };
	if (e.retryable === true || e.overloaded === true || e.durableObjectReset === true) return true;
	const message = typeof e.message === "string" ? e.message : "";
	// A statement D1 could not run, or a constraint it broke, is a bug: a retry would fail the same way.
	if (
		/\bD1[_ ]/.test(message) &&
		!/SQLITE_ERROR|SQLITE_CONSTRAINT|constraint failed|syntax error|no such (table|column|function)/i.test(message)
	)
		return true;
	return isTransient(e.cause, depth + 1);
}

/** Races `work` against a deadline: it rejects with {@link DeadlineExceeded} if `work` has not settled after `ms`. */
export function withDeadline<T>(work: Promise<T>, ms: number, what: string): Promise<T> {
	let timer: ReturnType<typeof setTimeout> | undefined;
	const expired = new Promise<never>((_, reject) => {
		timer = setTimeout(() => reject(new DeadlineExceeded(what, ms)), ms);
	});
	return Promise.race([work, expired]).finally(() => clearTimeout(timer));
}
