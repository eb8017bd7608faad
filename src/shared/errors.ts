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
	"HASH_MISMATCH",
	"CHECKSUM_MISMATCH",
	"RATE_LIMITED",
	"QUOTA_EXCEEDED",
	"INTERNAL",
]);
export type ErrorCode = z.infer<typeof ErrorCode>;

export type ErrorStatus = 400 | 401 | 403 | 404 | 409 | 410 | 412 | 416 | 413 | 422 | 429 | 460 | 500 | 507;

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
		case "RANGE_NOT_SATISFIABLE":
			return 416;
		case "PRECONDITION_FAILED":
			return 412;
		case "PAYLOAD_TOO_LARGE":
			return 413;
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

/** An expected failure, returned (never thrown) by services and Durable Object RPC. */
export interface Failure {
	ok: false;
	code: ErrorCode;
	message: string;
	details?: unknown[];
}
/** A tagged result: survives structured clone across RPC, unlike an Error's class. */
export type Result<T> = ({ ok: true } & T) | Failure;

/** Builds a {@link Failure}. */
export function fail(code: ErrorCode, message: string, details?: unknown[]): Failure {
	return details === undefined ? { ok: false, code, message } : { ok: false, code, message, details };
}
