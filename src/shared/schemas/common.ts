/** Building blocks shared by the request and response schemas. */
import { z } from "@hono/zod-openapi";

export const NodeId = z.string().min(1).max(64).openapi({ example: "nod_01jd8x4k2m3n4p5q6r7s8t9v0w" });
export const VersionId = z.string().min(1).max(64).openapi({ example: "ver_01jd8x4k2m3n4p5q6r7s8t9v0w" });
export const Sha256Hex = z
	.string()
	.regex(/^[0-9a-f]{64}$/, "must be 64 lowercase hex characters (SHA-256)")
	.openapi({ example: "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855" });
export const Timestamp = z.string().openapi({ example: "2026-11-24T17:29:48.000Z", description: "ISO-8601, UTC" });

/** `?limit=1..1000&cursor=` on every paginated list. */
export const PageQuery = z.object({
	limit: z.coerce.number().int().min(1).max(1000).default(100).openapi({ example: 100 }),
	cursor: z.string().max(512).optional(),
});

export const IdParam = z.object({ id: z.string().min(1).max(64) });
