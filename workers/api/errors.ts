/**
 * ApiError and the one error handler: every failure leaves as the envelope
 * `{ error: { code, message, request_id, details? } }`.
 */
import { isUserMoved, saysUserMoved } from "../../src/shared/db/moved";
import { redactedCause, stackFrames } from "../../src/shared/log";
import { isTransient, RETRY_AFTER_SECONDS } from "../../src/shared/transient";
import type { Context } from "hono";
import { HTTPException } from "hono/http-exception";
import type { ContentfulStatusCode } from "hono/utils/http-status";
import { errorBody, statusOf, type ErrorCode, type ErrorDetail, type Failure, type Result } from "../../src/shared/errors";
import type { AppEnv } from "./env";
import { forgetUser } from "./services/sessions";

/** An expected failure with a stable code; thrown by handlers, mapped by {@link onError}. */
export class ApiError extends HTTPException {
	readonly code: ErrorCode;
	readonly details: ErrorDetail[] | undefined;
	readonly headers: Record<string, string> | undefined;

	constructor(code: ErrorCode, message: string, details?: ErrorDetail[], headers?: Record<string, string>) {
		// 460 (tus Checksum Mismatch) is outside the registered status codes Hono types.
		super(statusOf(code) as ContentfulStatusCode, { message });
		this.code = code;
		this.details = details;
		this.headers = headers;
	}

	/** Turns a service's returned {@link Failure} into a throwable error. */
	static from(failure: Failure): ApiError {
		return new ApiError(failure.code, failure.message, failure.details);
	}
}

/** The success value of `result`, or its failure thrown as an {@link ApiError} for {@link onError} to answer. */
export function unwrap<T>(result: Result<T>): T {
	if (!result.ok) throw ApiError.from(result.error);
	return result.value;
}

/**
 * Retry-After for a refusal that says when to retry (RATE_LIMITED carries
 * `retry_after_seconds` in its details), so every source of a 429 sets it.
 */
function retryAfter(code: ErrorCode, details: ErrorDetail[] | undefined): Record<string, string> {
	// A component that failed (docs/decisions/0033-failure-handling.md): the client retries soon.
	if (code === "UNAVAILABLE") return { "Retry-After": String(RETRY_AFTER_SECONDS) };
	for (const detail of details ?? []) {
		if (typeof detail === "object" && typeof detail.retry_after_seconds === "number")
			return { "Retry-After": String(detail.retry_after_seconds) };
	}
	return {};
}

/** The envelope for `code`. */
export function errorResponse(
	c: Context<AppEnv>,
	code: ErrorCode,
	message: string,
	details?: ErrorDetail[],
	headers?: Record<string, string>,
): Response {
	const body = errorBody(details === undefined ? { code, message } : { code, message, details }, c.get("requestId") ?? "unknown");
	return c.json(body, statusOf(code) as ContentfulStatusCode, { ...retryAfter(code, details), ...headers });
}

function codeForStatus(status: number): ErrorCode {
	switch (status) {
		case 401:
			return "UNAUTHENTICATED";
		case 403:
			return "FORBIDDEN";
		case 404:
			return "NOT_FOUND";
		case 412:
			return "PRECONDITION_FAILED";
		case 413:
			return "PAYLOAD_TOO_LARGE";
		case 429:
			return "RATE_LIMITED";
		default:
			return status >= 500 ? "INTERNAL" : "INVALID_REQUEST";
	}
}

/** The app's only error handler. Internals never reach the client. */
export function onError(err: Error, c: Context<AppEnv>): Response {
	if (err instanceof ApiError) {
		if (err.code === "UNAVAILABLE" && saysUserMoved(err.details)) return movedAway(c, err.message);
		if (err.code === "INTERNAL") console.error(JSON.stringify({ request_id: c.get("requestId"), error: err.message }));
		return errorResponse(
			c,
			err.code,
			err.code === "INTERNAL" ? "something went wrong on our side; it has been logged" : err.message,
			err.details,
			err.headers,
		);
	}
	if (isUserMoved(err)) return movedAway(c);
	if (err instanceof HTTPException) {
		const code = codeForStatus(err.status);
		if (code !== "INTERNAL") return errorResponse(c, code, err.message || code.toLowerCase().replace(/_/g, " "));
	}
	// D1, R2 or the user's Durable Object failed, was reset or timed out: retryable (docs/decisions/0033-failure-handling.md).
	if (isTransient(err)) {
		console.error(JSON.stringify({ request_id: c.get("requestId"), unavailable: redactedCause(err) }));
		return errorResponse(c, "UNAVAILABLE", "a part of Drive is briefly unavailable; send the request again");
	}
	console.error(JSON.stringify({ request_id: c.get("requestId"), error: redactedCause(err), stack: stackFrames(err) }));
	return errorResponse(c, "INTERNAL", "something went wrong on our side; it has been logged");
}

/**
 * A request met the old shard of a user who moved (docs/decisions/0034): the
 * caller this isolate remembered named it, so it is dropped, and the client
 * sends the request again.
 */
function movedAway(c: Context<AppEnv>, message = "the account moved to another database; send the request again"): Response {
	const caller = c.get("caller") as AppEnv["Variables"]["caller"] | undefined;
	if (caller) forgetUser(caller.userId);
	return errorResponse(c, "UNAVAILABLE", message);
}
