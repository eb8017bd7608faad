/** Opaque pagination cursors: base64url JSON, validated on the way back in. */
import { base64url } from "jose";
import type { z } from "zod";
import { fail, ok, type Result } from "../../../src/shared/errors";

/** Encodes a cursor value. */
export function encodeCursor(value: unknown): string {
	return base64url.encode(JSON.stringify(value));
}

/** Decodes a cursor; INVALID_REQUEST if it was not one of ours. */
export function decodeCursor<T>(cursor: string, schema: z.ZodType<T>): Result<T> {
	try {
		const parsed = schema.safeParse(JSON.parse(new TextDecoder().decode(base64url.decode(cursor))));
		if (parsed.success) return ok(parsed.data);
	} catch {
		// fall through: malformed base64 or JSON is the client's error
	}
	return fail("INVALID_REQUEST", "cursor is not valid; start again without one", [{ field: "cursor" }]);
}

/** The first `limit` of `rows` (fetched with one more, to tell whether a next page exists), mapped, with the cursor after the last. */
export function pageOf<R, T>(
	rows: R[],
	limit: number,
	map: (row: R) => T,
	cursorOf: (last: R) => unknown,
): { items: T[]; next_cursor: string | null } {
	const items = rows.slice(0, limit);
	const last = items.at(-1);
	return { items: items.map(map), next_cursor: rows.length > limit && last !== undefined ? encodeCursor(cursorOf(last)) : null };
}
