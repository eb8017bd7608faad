/**
 * Reads and prunes the activity log (migrations/shard/0009_activity.sql;
 * docs/api.md, "Activity"). Rows are written by whoever makes the change,
 * in the change's batch (src/shared/activity.ts); this module only reads and
 * expires them.
 */
import { z } from "zod";
import { PRUNE_ACTIVITY } from "../../../src/shared/activity";
import { inList } from "../../../src/shared/db/lists";
import { users } from "../../../src/shared/db/schema";
import type { ShardDb } from "../../../src/shared/db/shards";
import { fail, ok, type Result } from "../../../src/shared/errors";
import type { ActivityItem, ActivityPage } from "../../../src/shared/schemas/activity";
import type { Caller } from "../env";
import { accessTo } from "./access";
import { decodeCursor, pageOf } from "./cursors";
import { openDirectory } from "./directory";
import { shardFor } from "./hub";

const ActivityCursor = z.object({ i: z.string().max(64) });

/** Above every id newId makes: the keyset's start. */
const NEWEST = "~";

// ?2 null reads every node's events; ids are time-ordered, so the keyset on id reads newest first.
const LIST_ACTIVITY = `SELECT id, at, event, actor_type, actor_id, actor_device, node_id, share_id, link_id, version_id, details
	FROM activity WHERE user_id = ?1 AND (?2 IS NULL OR node_id = ?2) AND id < ?3 ORDER BY id DESC LIMIT ?4`;

interface ActivityRow {
	id: string;
	at: string;
	event: string;
	actor_type: "user" | "link" | "system";
	actor_id: string | null;
	actor_device: string | null;
	node_id: string | null;
	share_id: string | null;
	link_id: string | null;
	version_id: string | null;
	details: string | null;
}

/**
 * One page of activity, newest first. Without `nodeId`, the caller's own
 * log. With it, the events about that node (not the nodes under it): from
 * the caller's log for their own node, from the owner's log for a node
 * shared with the caller as editor. A viewer is refused (403 read_only); a
 * node the caller may not see is the usual 404.
 */
export async function activityPage(
	env: Env,
	caller: Caller,
	query: { nodeId?: string; limit: number; cursor?: string },
): Promise<Result<ActivityPage>> {
	const after = query.cursor === undefined ? ok({ i: NEWEST }) : decodeCursor(query.cursor, ActivityCursor);
	if (!after.ok) return after;
	let owner: Caller = caller;
	let nodeId: string | null = null;
	let asEditor = false;
	if (query.nodeId !== undefined) {
		const access = await accessTo(env, caller, query.nodeId);
		if (!access) return fail("NOT_FOUND", "node not found");
		if (access.role === "viewer") return fail("FORBIDDEN", "a share's activity is for its owner and editors", [{ reason: "read_only" }]);
		owner = access.scope;
		nodeId = access.nodeId;
		asEditor = access.role === "editor";
	}
	const rows = (
		await shardFor(env, owner)
			.$client.prepare(LIST_ACTIVITY)
			.bind(owner.userId, nodeId, after.value.i, query.limit + 1)
			.all<ActivityRow>()
	).results;
	const emails = await emailsOf(
		env,
		rows.slice(0, query.limit).flatMap((r) => (r.actor_type === "user" && r.actor_id !== null ? [r.actor_id] : [])),
	);
	return ok(
		pageOf(
			rows,
			query.limit,
			(row) => toItem(row, emails, asEditor),
			(last) => ({ i: last.id }),
		),
	);
}

/** The users' emails, in one query whatever their number. */
async function emailsOf(env: Env, ids: string[]): Promise<Map<string, string>> {
	const distinct = [...new Set(ids)];
	if (distinct.length === 0) return new Map();
	const found = await openDirectory(env.DIRECTORY)
		.select({ id: users.id, email: users.email })
		.from(users)
		.where(inList(users.id, distinct));
	return new Map(found.map((u) => [u.id, u.email]));
}

/** A row as the API lists it. An editor reading the owner's log sees that a link event happened, not which link nor its settings: links are the owner's. */
function toItem(row: ActivityRow, emails: Map<string, string>, asEditor: boolean): ActivityItem {
	const hideLink = asEditor && (row.event.startsWith("link.") || row.actor_type === "link");
	const actor: ActivityItem["actor"] = { type: row.actor_type };
	if (row.actor_type === "user" && row.actor_id !== null) {
		actor.id = row.actor_id;
		const email = emails.get(row.actor_id);
		if (email !== undefined) actor.email = email;
		if (row.actor_device !== null) actor.device = row.actor_device;
	} else if (row.actor_type === "link" && row.actor_id !== null && !hideLink) actor.id = row.actor_id;
	return {
		id: row.id,
		at: row.at,
		event: row.event,
		actor,
		node_id: row.node_id,
		share_id: row.share_id,
		link_id: hideLink ? null : row.link_id,
		version_id: row.version_id,
		details: hideLink ? null : parseDetails(row.details),
	};
}

function parseDetails(details: string | null): Record<string, unknown> | null {
	if (details === null) return null;
	try {
		const parsed: unknown = JSON.parse(details);
		return typeof parsed === "object" && parsed !== null && !Array.isArray(parsed) ? (parsed as Record<string, unknown>) : null;
	} catch {
		return null;
	}
}

/** Steps of {@link PRUNE_ACTIVITY} per shard and run: what is left waits for the next run. */
export const PRUNE_ACTIVITY_STEPS = 20;

/** Deletes one shard's activity rows older than `cutoff`, in bounded steps; the number deleted. */
export async function pruneActivity(db: ShardDb, cutoff: string, steps = PRUNE_ACTIVITY_STEPS): Promise<number> {
	let deleted = 0;
	for (let step = 0; step < steps; step++) {
		const result = await db.$client.prepare(PRUNE_ACTIVITY).bind(cutoff).run();
		const changes = result.meta.changes;
		deleted += changes;
		if (changes === 0) break;
	}
	return deleted;
}
