/**
 * The activity log's rows (migrations/shard/0009_activity.sql): what people
 * did with shares, links and versions. A row goes into the same D1 batch as
 * the change it records, through {@link activityStatement}, so the log never
 * claims a change that did not happen nor misses one that did.
 */
import { newId } from "./ids";

/** Who did it: a signed-in user (and their device), a public link's holder, or the system (retention, purges). */
export type ActivityActor = { type: "user"; id: string; device: string | null } | { type: "link"; id: string } | { type: "system" };

/** Every event the log records; the API lists them as they are named here. */
export type ActivityEvent =
	| "share.created"
	| "share.member_added"
	| "share.role_changed"
	| "share.member_removed"
	| "share.left"
	| "share.deleted"
	| "link.created"
	| "link.updated"
	| "link.revoked"
	| "link.downloaded"
	| "link.uploaded"
	| "link.password_failed"
	| "link.locked"
	| "version.restored"
	| "version.pinned"
	| "version.unpinned"
	| "version.labelled"
	| "version.deleted"
	| "version.expired";

export interface ActivityRecord {
	/** Whose log it goes in: the owner of what changed. */
	userId: string;
	event: ActivityEvent;
	actor: ActivityActor;
	nodeId?: string | null;
	shareId?: string | null;
	linkId?: string | null;
	versionId?: string | null;
	/** Event-specific facts (a role, a label, a count); never a secret. */
	details?: Record<string, unknown> | null;
}

/** Days an activity row is kept; the cron prunes older ones. */
export const ACTIVITY_RETENTION_DAYS = 180;

/** The last millisecond an id was made for here: ids made by one isolate (a user's hub) always increase. */
let lastIdMs = 0;

const INSERT_ACTIVITY = `INSERT INTO activity (user_id, id, at, event, actor_type, actor_id, actor_device, node_id, share_id, link_id, version_id, details)
	VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)`;

/** The statement that records one event; put it in the batch of the change it describes. */
export function activityStatement(db: D1Database, record: ActivityRecord, now = new Date()): D1PreparedStatement {
	const actor = record.actor;
	// Ids order the log; two events in one millisecond still get increasing ids.
	lastIdMs = Math.max(now.getTime(), lastIdMs + 1);
	return db
		.prepare(INSERT_ACTIVITY)
		.bind(
			record.userId,
			newId("act", lastIdMs),
			now.toISOString(),
			record.event,
			actor.type,
			actor.type === "system" ? null : actor.id,
			actor.type === "user" ? actor.device : null,
			record.nodeId ?? null,
			record.shareId ?? null,
			record.linkId ?? null,
			record.versionId ?? null,
			record.details ? JSON.stringify(record.details) : null,
		);
}

/** ?1 cutoff ISO time: deletes rows older than the retention, in bounded steps (the cron repeats it). */
export const PRUNE_ACTIVITY = `DELETE FROM activity WHERE (user_id, id) IN (SELECT user_id, id FROM activity WHERE at < ?1 LIMIT 5000)`;
