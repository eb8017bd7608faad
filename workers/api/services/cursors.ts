/** Opaque pagination cursors: base64url JSON, validated on the way back in. */
import type { z } from "zod";
import { ApiError } from "../errors";

/** Encodes a cursor value. */
export function encodeCursor(value: unknown): string {
	const bytes = new TextEncoder().encode(JSON.stringify(value));
	let binary = "";
	for (const b of bytes) binary += String.fromCharCode(b);
	return btoa(binary).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

/** Decodes a cursor, or throws INVALID_REQUEST if it was not one of ours. */
export function decodeCursor<T>(cursor: string, schema: z.ZodType<T>): T {
	try {
		const binary = atob(cursor.replace(/-/g, "+").replace(/_/g, "/"));
		const bytes = Uint8Array.from(binary, (ch) => ch.charCodeAt(0));
		const parsed = schema.safeParse(JSON.parse(new TextDecoder().decode(bytes)));
		if (parsed.success) return parsed.data;
	} catch {
		// fall through: malformed base64 or JSON is the client's error
	}
	throw new ApiError("INVALID_REQUEST", "cursor is not valid; start again without one", [{ field: "cursor" }]);
}
