/**
 * Webhook events (docs/api.md, "Webhooks"): their types, how a journal change
 * becomes one, and the payload every endpoint receives. Shared with clients,
 * which can type what they receive.
 */
import { encodeJournalCursor } from "../journal";
import type { ChangeKind, ChangeReason } from "../schemas/sync";
import type { Node } from "../schemas/nodes";

/** Every event type, in the order the documentation lists them. */
export const WEBHOOK_EVENT_TYPES = [
	"file.created",
	"file.updated",
	"file.moved",
	"file.trashed",
	"file.restored",
	"file.deleted",
	"file.conflict_created",
	"folder.created",
	"folder.updated",
	"folder.moved",
	"folder.trashed",
	"folder.restored",
	"folder.deleted",
	"share.created",
	"share.member_added",
	"share.role_changed",
	"share.member_removed",
	"share.left",
	"share.deleted",
	"webhook.test",
	"webhook.endpoint_disabled",
] as const;
export type WebhookEventType = (typeof WEBHOOK_EVENT_TYPES)[number];

/** What an endpoint may subscribe to: a type, or every type of a family (`file.*`). */
export const WEBHOOK_EVENT_FILTERS: readonly string[] = [...WEBHOOK_EVENT_TYPES, "file.*", "folder.*", "share.*", "webhook.*"];

/** The body of every delivery (Standard Webhooks' `{type, timestamp, data}`). */
export interface WebhookPayload<D = Record<string, unknown>> {
	type: WebhookEventType;
	/** When the event happened (ISO 8601), not when it was sent. */
	timestamp: string;
	data: D;
}

/** `data` of a file or folder event: the journal change it comes from. */
export interface ChangeEventData {
	user_id: string;
	/** The change's number in the user's journal, the one GET /v1/changes shows. */
	seq: number;
	/** A cursor just after this change: GET /v1/changes?cursor= continues from here. */
	cursor: string;
	/** The node after the change. */
	node: Node;
	/** For moves and renames: where the node was before. */
	previous?: { parent_id: string | null; name: string };
	/** In a share member's journal: why a node appeared or left (as in ChangeEntry). */
	reason?: ChangeReason;
}

/** The event type of a journal change. A conflicted copy's creation is its own type, so integrations can flag it. */
export function eventTypeOf(kind: ChangeKind, node: Pick<Node, "type" | "conflict_of">): WebhookEventType {
	if (node.type === "file" && kind === "created" && node.conflict_of) return "file.conflict_created";
	return `${node.type}.${kind}` as WebhookEventType;
}

/** True when an endpoint subscribed to `filters` (null: everything) wants `type`. */
export function wants(filters: readonly string[] | null, type: WebhookEventType): boolean {
	if (filters === null) return true;
	const family = `${type.slice(0, type.indexOf("."))}.*`;
	return filters.includes(type) || filters.includes(family);
}

/** A journal row as the shard holds it. */
export interface JournalRow {
	user_id: string;
	seq: number;
	kind: ChangeKind;
	node: string;
	created_at: string;
	reason: string | null;
	previous: string | null;
}

/** The event of a journal change, as sent (and signed) on every attempt. */
export function changeEvent(row: JournalRow): WebhookPayload<ChangeEventData> {
	const node = JSON.parse(row.node) as Node;
	const data: ChangeEventData = {
		user_id: row.user_id,
		seq: row.seq,
		cursor: encodeJournalCursor({ userId: row.user_id, seq: row.seq }),
		node,
	};
	if (row.previous) data.previous = JSON.parse(row.previous) as ChangeEventData["previous"];
	if (row.reason) data.reason = row.reason as ChangeReason;
	return { type: eventTypeOf(row.kind, node), timestamp: row.created_at, data };
}

/** Share events, from the activity log of the share's owner (src/shared/activity.ts). */
export const SHARE_EVENT_TYPES: ReadonlySet<string> = new Set(WEBHOOK_EVENT_TYPES.filter((t) => t.startsWith("share.")));

/** An activity row as the shard holds it. */
export interface ActivityRow {
	id: string;
	user_id: string;
	at: string;
	event: string;
	actor_type: string;
	actor_id: string | null;
	node_id: string | null;
	share_id: string | null;
	details: string | null;
}

/** `data` of a share event. It has no journal entry of its own: `seq` and `cursor` are where the journal stood when it was sent. */
export interface ShareEventData {
	user_id: string;
	share_id: string | null;
	/** The shared folder. */
	node_id: string | null;
	actor: { type: string; id: string | null };
	/** The member and role, where the event has them. */
	details: Record<string, unknown> | null;
	seq: number;
	cursor: string;
}

/** The event of a share's activity row, with the journal's position when it was read. */
export function shareEvent(row: ActivityRow, journalSeq: number): WebhookPayload<ShareEventData> {
	return {
		type: row.event as WebhookEventType,
		timestamp: row.at,
		data: {
			user_id: row.user_id,
			share_id: row.share_id,
			node_id: row.node_id,
			actor: { type: row.actor_type, id: row.actor_id },
			details: row.details === null ? null : (JSON.parse(row.details) as Record<string, unknown>),
			seq: journalSeq,
			cursor: encodeJournalCursor({ userId: row.user_id, seq: journalSeq }),
		},
	};
}
