/**
 * The error envelope every route answers with, shared with clients.
 * Codes are stable; each maps to exactly one HTTP status.
 */
import { z } from "@hono/zod-openapi";

export const ErrorCode = z.enum([
	"INVALID_REQUEST",
	"UNAUTHENTICATED",
	"FORBIDDEN",
	"NOT_FOUND",
	"NAME_TAKEN",
	"EMAIL_TAKEN",
	"VERSION_CONFLICT",
	"MISSING_BLOCKS",
	"UPLOAD_OFFSET_MISMATCH",
	"CURSOR_RESET",
	"RANGE_NOT_SATISFIABLE",
	"PRECONDITION_FAILED",
	"PAYLOAD_TOO_LARGE",
	"UNSUPPORTED_MEDIA_TYPE",
	"HASH_MISMATCH",
	"CHECKSUM_MISMATCH",
	"RATE_LIMITED",
	"QUOTA_EXCEEDED",
	"BLOCKS_RECLAIMED",
	"PASSWORD_REQUIRED",
	"LINK_EXPIRED",
	"UNAVAILABLE",
	"INTERNAL",
]);
export type ErrorCode = z.infer<typeof ErrorCode>;

export type ErrorStatus = 400 | 401 | 403 | 404 | 409 | 410 | 412 | 416 | 413 | 415 | 422 | 429 | 460 | 500 | 503 | 507;

/** The HTTP status of each code. Exhaustive: a new code will not compile without one. */
export function statusOf(code: ErrorCode): ErrorStatus {
	switch (code) {
		case "INVALID_REQUEST":
			return 400;
		case "UNAUTHENTICATED":
			return 401;
		case "FORBIDDEN":
			return 403;
		case "NOT_FOUND":
			return 404;
		case "NAME_TAKEN":
		case "EMAIL_TAKEN":
		case "VERSION_CONFLICT":
		case "MISSING_BLOCKS":
		case "UPLOAD_OFFSET_MISMATCH":
			return 409;
		case "CURSOR_RESET":
			return 410;
		// A public link past its expiry or download limit: the holder already knows its 128-bit token, so this enumerates nothing.
		case "LINK_EXPIRED":
			return 410;
		// A public link with a password, and no valid link session: one code for a missing and a wrong password.
		case "PASSWORD_REQUIRED":
			return 401;
		case "RANGE_NOT_SATISFIABLE":
			return 416;
		case "PRECONDITION_FAILED":
			return 412;
		case "PAYLOAD_TOO_LARGE":
			return 413;
		// tus 1.0: a PATCH or creation-with-upload body must be application/offset+octet-stream.
		case "UNSUPPORTED_MEDIA_TYPE":
			return 415;
		case "HASH_MISMATCH":
			return 422;
		// tus 1.0 checksum extension: 460 Checksum Mismatch.
		case "CHECKSUM_MISMATCH":
			return 460;
		case "RATE_LIMITED":
			return 429;
		case "QUOTA_EXCEEDED":
			return 507;
		case "INTERNAL":
			return 500;
		// The collector deleted blocks the request stored while it ran: send it again.
		case "BLOCKS_RECLAIMED":
			return 503;
		// A component failed or timed out (D1, the user's Durable Object): nothing changed, or a retry answers what did (docs/decisions/0033-failure-handling.md).
		case "UNAVAILABLE":
			return 503;
	}
}

export const ErrorBody = z
	.object({
		error: z.object({
			code: ErrorCode,
			message: z.string(),
			request_id: z.string(),
			details: z.array(z.unknown()).optional(),
		}),
	})
	.openapi("Error");
export type ErrorBody = z.infer<typeof ErrorBody>;

/**
 * One entry of an envelope's `details`: a block hash, or a flat record such
 * as `{ field, message }`. Plain data, so that it crosses RPC typed.
 */
export type ErrorDetail = string | { [key: string]: string | number | boolean | null };

/** An expected failure: what went wrong, in the terms of the error envelope. */
export interface Failure {
	code: ErrorCode;
	message: string;
	details?: ErrorDetail[];
}

/**
 * What services and Durable Object RPC methods return for anything that can
 * be refused: a tagged union survives structured clone across RPC, where an
 * Error loses its class (workers-oauth-provider's `Result`).
 */
export type Result<T> = { ok: true; value: T } | Refusal;

/** The failing side of a {@link Result}; assignable to every Result. */
export type Refusal = { ok: false; error: Failure };

/** A successful {@link Result}. */
export function ok<T>(value: T): { ok: true; value: T } {
	return { ok: true, value };
}

/** A failed {@link Result}. */
export function fail(code: ErrorCode, message: string, details?: ErrorDetail[]): Refusal {
	return { ok: false, error: details === undefined ? { code, message } : { code, message, details } };
}

/** The error envelope for `failure`, as every worker answers it. */
export function errorBody(failure: Failure, requestId: string): ErrorBody {
	const body: ErrorBody = { error: { code: failure.code, message: failure.message, request_id: requestId } };
	if (failure.details !== undefined && failure.details.length > 0) body.error.details = failure.details;
	return body;
}

/** The error envelope as a Response, for code outside the api's Hono app (the Durable Object, the notify worker). */
export function failureResponse(failure: Failure, requestId: string): Response {
	return Response.json(errorBody(failure, requestId), { status: statusOf(failure.code) });
}
