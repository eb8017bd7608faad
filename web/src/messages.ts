/**
 * The one place an error becomes words. The API answers codes and reasons
 * (docs/api.md, "Errors"); a person reads a sentence about what they did,
 * never a code, a status or a stack trace.
 */
import { DriveApiError, isAbortError, SourceChangedError } from "../../src/client";

/** What the person was doing, so the sentence can name it. */
export interface ErrorContext {
	/** The file or folder name involved. */
	name?: string;
}

function reasonOf(err: DriveApiError): string | undefined {
	for (const detail of err.details ?? []) {
		if (typeof detail === "object" && detail !== null && "reason" in detail && typeof detail.reason === "string") return detail.reason;
	}
	return undefined;
}

function fieldMessage(err: DriveApiError): string | undefined {
	for (const detail of err.details ?? []) {
		if (typeof detail === "object" && detail !== null && "message" in detail && typeof detail.message === "string") return detail.message;
	}
	return undefined;
}

const REASONS: Record<string, string> = {
	read_only: "You can view this, but not change it. Ask the owner for edit access.",
	owner_only: "Only the owner can do that.",
	cross_owner_move: "Items can't be moved between different people's files. Make a copy instead.",
	mount_inside_share: "A shared folder can't be placed inside another shared folder.",
	contains_mount: "This folder holds something shared with you, so it can't be shared or moved there.",
	share_root: "Only the owner can move or rename the shared item itself.",
	self_share: "You can't share with yourself.",
	unknown_user: "There is no Drive account with that email address.",
	too_many_pinned: "Too many versions of this file are kept forever. Unpin one first.",
	head_version: "That is already the current version.",
	cross_site: "This request came from another site and was refused.",
	download_url_expired: "The download link expired. Try again.",
	insecure_origin: "Drive must be opened over https.",
	stale_base: "Someone else changed this file first. Your version was kept as a conflicted copy.",
	not_a_conflict: "This conflict was already settled.",
	wrong_password: "That password isn't right.",
};

/** A sentence for any failure the app can meet. */
export function describeError(err: unknown, context: ErrorContext = {}): string {
	if (isAbortError(err)) return "Cancelled.";
	if (err instanceof SourceChangedError)
		return context.name !== undefined
			? `“${context.name}” changed while it was being uploaded. Upload it again.`
			: "The file changed while it was being uploaded. Upload it again.";
	if (!(err instanceof DriveApiError)) {
		if (err instanceof TypeError) return "Drive can't be reached. Check your connection and try again.";
		return "Something went wrong. Try again.";
	}
	const reason = reasonOf(err);
	if (reason !== undefined && REASONS[reason] !== undefined) return REASONS[reason];
	const name = context.name;
	switch (err.code) {
		case "NAME_TAKEN":
			return name !== undefined
				? `Something named “${name}” is already here. Choose another name.`
				: "Something with that name is already here.";
		case "EMAIL_TAKEN":
			return "An account with this email address already exists. Sign in instead.";
		case "UNAUTHENTICATED":
			return err.message.includes("password") || err.message.includes("credentials")
				? "That email and password don't match."
				: "Your session ended. Sign in again.";
		case "FORBIDDEN":
			return "You don't have permission to do that.";
		case "NOT_FOUND":
			return name !== undefined ? `“${name}” no longer exists. It may have been moved or deleted.` : "That item no longer exists.";
		case "VERSION_CONFLICT":
			return name !== undefined
				? `“${name}” was changed by someone else. Reload to see their version.`
				: "This file was changed by someone else.";
		case "QUOTA_EXCEEDED":
			return "Your storage is full. Delete files or empty the trash to make room.";
		case "RATE_LIMITED":
			return "Too many requests. Wait a moment and try again.";
		case "PAYLOAD_TOO_LARGE":
			return name !== undefined ? `“${name}” is too large.` : "That is too large.";
		case "PASSWORD_REQUIRED":
			return "This link needs a password.";
		case "LINK_EXPIRED":
			return "This link has expired.";
		case "HASH_MISMATCH":
		case "CHECKSUM_MISMATCH":
		case "MISSING_BLOCKS":
		case "BLOCKS_RECLAIMED":
			return "The upload was damaged on the way. Try again.";
		case "INVALID_REQUEST": {
			const message = fieldMessage(err);
			return message !== undefined ? `${capitalise(message)}.` : "Drive couldn't accept that. Check what you entered.";
		}
		case "UNAVAILABLE":
			return "Drive is briefly unavailable. Try again in a moment.";
		case "INTERNAL":
		case "HTTP_ERROR":
			return "Drive had a problem. Try again in a moment.";
		default:
			return "Something went wrong. Try again.";
	}
}

function capitalise(text: string): string {
	return text.charAt(0).toUpperCase() + text.slice(1).replace(/\.$/, "");
}
