/** The change journal, long poll, WebSocket sync channel and conflicts. */
import { z } from "@hono/zod-openapi";
import { Node } from "./nodes";

export const ChangeKind = z.enum(["created", "updated", "moved", "trashed", "restored", "deleted"]);
export type ChangeKind = z.infer<typeof ChangeKind>;

export const Cursor = z.string().min(1).max(200).openapi({ example: "c1_dXNyXzAxam…", description: "Opaque" });

/** Why a node left a member's view of a share (extension; docs/api.md, "Sharing"). */
export const ChangeReason = z.enum(["moved_out", "moved_in", "unshared", "unmounted"]);
export type ChangeReason = z.infer<typeof ChangeReason>;

export const ChangeEntry = z
	.object({
		seq: z.number().int(),
		kind: ChangeKind,
		node: Node,
		created_at: z.string(),
		reason: ChangeReason.optional().openapi({
			description:
				"Extension, only in a share member's journal: `moved_out` (a `deleted`: moved out of the share, the owner still has it), `moved_in` (a `created`: moved into the share; list a folder's children), `unshared` (a `deleted` mount: the share ended or your access was removed), `unmounted` (you removed the mount).",
		}),
	})
	.openapi("ChangeEntry");
export type ChangeEntry = z.infer<typeof ChangeEntry>;

export const ChangesQuery = z.object({
	cursor: Cursor.optional(),
	limit: z.coerce.number().int().min(1).max(1000).default(500),
});

export const ChangesPage = z.object({ entries: z.array(ChangeEntry), cursor: Cursor, has_more: z.boolean() }).openapi("ChangesPage");
export type ChangesPage = z.infer<typeof ChangesPage>;

/** The read-your-writes header as an OpenAPI parameter; middleware/bookmarks.ts parses it for every /v1 route. */
export const BookmarkHeaders = z.object({
	"drive-bookmark": z.string().optional().openapi({
		description:
			'Extension: the newest `Drive-Bookmark` the client saw (answers, or a WebSocket frame\'s `bookmark`); the read sees at least that state. Up to 16 `<shard>.<bookmark>` entries; malformed: 400 (docs/api.md, "Read-your-writes (Drive-Bookmark)").',
		example: "2.00000085-0000024c-00004c6d-8e611177d83f7fb2f0396d0847be2cc6",
	}),
});

export const LatestCursor = z.object({ cursor: Cursor }).openapi("LatestCursor");

export const LongpollQuery = z.object({
	cursor: Cursor,
	timeout: z.coerce
		.number()
		.int()
		.min(1)
		.max(120)
		.default(60)
		.openapi({ description: "Seconds, 1 to 120; the server adds up to 10 % jitter below it" }),
});

export const LongpollResult = z
	.object({
		changes: z.boolean(),
		backoff: z.number().int().optional().openapi({ description: "Seconds to wait before the next long poll" }),
	})
	.openapi("LongpollResult");

export const SyncTicket = z.object({ ticket: z.string(), expires_in: z.number().int() }).openapi("SyncTicket");

/** Frames the server sends on the sync WebSocket. */
/** A frame's `Drive-Bookmark` entry: send it with the next read (docs/api.md, "Read-your-writes (Drive-Bookmark)"). */
const FrameBookmark = z.string().max(300).optional();

export const ServerMessage = z.discriminatedUnion("type", [
	z.object({ type: z.literal("hello"), cursor: Cursor, bookmark: FrameBookmark }),
	z.object({ type: z.literal("changes"), cursor: Cursor, bookmark: FrameBookmark }),
	z.object({ type: z.literal("pong") }),
	z.object({ type: z.literal("error"), message: z.string() }),
]);
export type ServerMessage = z.infer<typeof ServerMessage>;

/**
 * Frames a client may send. The literal text "ping" is answered "pong" by
 * the runtime without waking the object; a JSON ping gets a JSON pong.
 */
export const ClientMessage = z.discriminatedUnion("type", [z.object({ type: z.literal("ping") })]);
export type ClientMessage = z.infer<typeof ClientMessage>;

export const ConflictItem = z
	.object({ node: Node, conflicts_with: Node.nullable().openapi({ description: "The file this copy lost against (null if purged)" }) })
	.openapi("ConflictItem");

export const ConflictPage = z.object({ items: z.array(ConflictItem), next_cursor: z.string().nullable() }).openapi("ConflictPage");
export type ConflictPage = z.infer<typeof ConflictPage>;

export const ResolveConflictBody = z
	.object({
		keep: z.enum(["both", "original", "copy"]).default("both").openapi({
			description:
				"both (default): the copy stays, no longer marked; original: the copy goes to the trash; copy: the copy's content becomes the original's new version (based on its current head, no bytes re-sent), then the copy goes to the trash",
		}),
	})
	.strict()
	.openapi("ResolveConflictBody");
