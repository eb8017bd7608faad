/**
 * The changes a UserHub makes to a file's version history: pin and label,
 * delete one version, and thin the history by the retention policy
 * (src/shared/retention.ts). Like tree-ops.ts they run inside the hub's
 * queue, so they are ordered with commits and restores, and each lands in
 * one D1 batch with its activity row.
 */
import { and, eq, sql, type SQL } from "drizzle-orm";
import { notFound } from "../../src/shared/commit/failures";
import { activityStatement, type ActivityActor } from "../../src/shared/activity";
import { runBatch, type BatchQuery } from "../../src/shared/db/batch";
import { inList, slices } from "../../src/shared/db/lists";
import { toVersion } from "../../src/shared/db/mappers";
import { versions, type NodeRow, type VersionRow } from "../../src/shared/db/schema";
import { findNode, findVersion } from "../../src/shared/db/tree";
import { fail, ok, type Result } from "../../src/shared/errors";
import { versionsToExpire, type RetentionPolicy } from "../../src/shared/retention";
import type { Version } from "../../src/shared/schemas/nodes";
import type { Actor } from "./contract";
import type { Tree } from "./tree-ops";

/** Versions of one file that may be pinned or labelled at once (Google Drive's limit). */
export const MAX_KEPT_VERSIONS = 200;

/** Versions one thinning run drops for one file at most, so that its batch stays small; the next run takes the rest. */
export const MAX_EXPIRED_PER_RUN = 500;

/** The version's new flags: absent fields stay as they are. */
export interface UpdateVersionInput {
	nodeId: string;
	versionId: string;
	keepForever?: boolean;
	/** null removes the label. */
	label?: string | null;
	actor: Actor;
}

/**
 * Pins, unpins or labels a version. A pinned or labelled version is kept by
 * retention; at most {@link MAX_KEPT_VERSIONS} per file. Changing nothing
 * answers the version and writes nothing.
 */
export async function updateVersion(tree: Tree, input: UpdateVersionInput): Promise<Result<Version>> {
	const found = await fileVersion(tree, input.nodeId, input.versionId);
	if (!found.ok) return found;
	const { file, version } = found.value;
	const keepForever = input.keepForever ?? version.keepForever;
	const label = input.label === undefined ? version.label : input.label;
	const after: VersionRow = { ...version, keepForever, label };
	if (keepForever === version.keepForever && label === version.label) return ok(toVersion(after, file.headVersionId));
	const { db, userId } = tree;
	if (!isKept(version) && isKept(after)) {
		const [kept] = await db.all<{ n: number }>(
			sql`SELECT COUNT(*) AS n FROM versions WHERE user_id = ${userId} AND node_id = ${file.id} AND (keep_forever = 1 OR label IS NOT NULL)`,
		);
		if ((kept?.n ?? 0) >= MAX_KEPT_VERSIONS)
			return fail("INVALID_REQUEST", `a file keeps at most ${MAX_KEPT_VERSIONS} pinned or labelled versions; unpin or unlabel one first`, [
				{ reason: "too_many_pinned", limit: MAX_KEPT_VERSIONS },
			]);
	}
	const actor = userActor(tree, input.actor);
	const record = { userId, actor, nodeId: file.id, versionId: version.id };
	const statements: (BatchQuery | D1PreparedStatement)[] = [
		db
			.update(versions)
			.set({ keepForever, label })
			.where(and(eq(versions.userId, userId), eq(versions.id, version.id))),
	];
	if (keepForever !== version.keepForever)
		statements.push(activityStatement(db.$client, { ...record, event: keepForever ? "version.pinned" : "version.unpinned" }));
	if (label !== version.label) statements.push(activityStatement(db.$client, { ...record, event: "version.labelled", details: { label } }));
	await runBatch(db.$client, statements);
	return ok(toVersion(after, file.headVersionId));
}

/**
 * Deletes one version that is not the head, freeing its storage exactly as
 * purging a file does ({@link releaseVersions}).
 */
export async function deleteVersion(tree: Tree, input: { nodeId: string; versionId: string; actor: Actor }): Promise<Result<void>> {
	const found = await fileVersion(tree, input.nodeId, input.versionId);
	if (!found.ok) return found;
	const { file, version } = found.value;
	if (file.headVersionId === version.id)
		return fail("INVALID_REQUEST", "the head version cannot be deleted; restore or commit another version first, or delete the file", [
			{ reason: "head_version" },
		]);
	await dropVersions(tree, [version.id], {
		userId: tree.userId,
		event: "version.deleted",
		actor: userActor(tree, input.actor),
		nodeId: file.id,
		versionId: version.id,
		details: { size: version.size },
	});
	return ok(undefined);
}

/**
 * Thins a file's history by `policy` at `now`, dropping at most
 * {@link MAX_EXPIRED_PER_RUN} versions with one `version.expired` activity
 * row. Answers how many went; a missing file or a lone version costs one
 * read and drops nothing.
 */
export async function thinVersions(
	tree: Tree,
	input: { nodeId: string; now: number; policy: RetentionPolicy },
): Promise<Result<{ expired: number }>> {
	const { db, userId } = tree;
	const file = await findNode(db, userId, input.nodeId);
	if (file?.type !== "file") return ok({ expired: 0 });
	// Commit order, as versionsToExpire wants it (services/versions.ts says why rowid is commit order).
	const rows = await db.all<{ id: string; created_at: string; kept: number; author_id: string | null }>(
		sql`SELECT id, created_at, (keep_forever = 1 OR label IS NOT NULL) AS kept, author_id FROM versions
			WHERE user_id = ${userId} AND node_id = ${file.id} ORDER BY rowid`,
	);
	if (rows.length <= 1) return ok({ expired: 0 });
	const history = rows.map((r) => ({
		id: r.id,
		createdAt: Date.parse(r.created_at),
		kept: r.kept === 1,
		isHead: r.id === file.headVersionId,
		authorId: r.author_id,
	}));
	const expired = versionsToExpire(history, input.now, input.policy).slice(0, MAX_EXPIRED_PER_RUN);
	if (expired.length === 0) return ok({ expired: 0 });
	await dropVersions(tree, expired, {
		userId,
		event: "version.expired",
		actor: { type: "system" },
		nodeId: file.id,
		details: { count: expired.length },
	});
	return ok({ expired: expired.length });
}

/**
 * What deleting some of the user's versions writes, and the bytes it frees:
 * their block lists and rows, then each block no version of the user lists
 * any more leaves user_blocks and becomes a candidate for the collector,
 * which checks every shard before it deletes anything. `which` selects rows
 * of `versions` (`node_id IN …` to purge files, `id IN …` for versions).
 */
export async function releaseVersions(tree: Tree, which: SQL): Promise<{ bytes: number; statements: BatchQuery[] }> {
	const { db, userId } = tree;
	const chosen = sql`SELECT id FROM versions WHERE user_id = ${userId} AND ${which}`;
	const [sized] = await db.all<{ bytes: number }>(
		sql`SELECT COALESCE(SUM(size), 0) AS bytes FROM versions WHERE user_id = ${userId} AND ${which}`,
	);
	const blocks = await db.all<{ hash: string }>(sql`SELECT DISTINCT hash FROM version_blocks WHERE version_id IN (${chosen})`);
	const now = new Date().toISOString();
	const statements: BatchQuery[] = [
		db.run(sql`DELETE FROM version_blocks WHERE version_id IN (${chosen})`),
		db.run(sql`DELETE FROM versions WHERE user_id = ${userId} AND ${which}`),
	];
	for (const slice of slices(blocks.map((b) => b.hash))) {
		const hashes = JSON.stringify(slice);
		statements.push(
			// A block leaves the user's set once no version of theirs lists it...
			db.run(sql`DELETE FROM user_blocks WHERE user_id = ${userId} AND hash IN (SELECT value FROM json_each(${hashes}))
				AND NOT EXISTS (SELECT 1 FROM version_blocks vb JOIN versions v ON v.id = vb.version_id
					WHERE vb.hash = user_blocks.hash AND v.user_id = ${userId})`),
			// ...and then the collector checks every shard before it deletes anything.
			db.run(sql`INSERT INTO gc_candidates (hash, enqueued_at) SELECT value, ${now} FROM json_each(${hashes})
				WHERE NOT EXISTS (SELECT 1 FROM user_blocks WHERE user_id = ${userId} AND hash = value)
				ON CONFLICT (hash) DO UPDATE SET enqueued_at = excluded.enqueued_at`),
		);
	}
	return { bytes: sized?.bytes ?? 0, statements };
}

/** Deletes versions of one file (never its head) with their activity row, in one batch; the usage drops by their bytes. */
async function dropVersions(tree: Tree, ids: string[], record: Parameters<typeof activityStatement>[1]): Promise<void> {
	const { db } = tree;
	const released = await releaseVersions(tree, inList(sql`id`, ids));
	try {
		await runBatch(db.$client, [...released.statements, tree.usage.change(-released.bytes, 0), activityStatement(db.$client, record)]);
	} catch (err) {
		tree.usage.forget();
		throw err;
	}
	tree.usage.landed(-released.bytes, 0);
}

async function fileVersion(tree: Tree, nodeId: string, versionId: string): Promise<Result<{ file: NodeRow; version: VersionRow }>> {
	const [file, version] = await Promise.all([findNode(tree.db, tree.userId, nodeId), findVersion(tree.db, tree.userId, versionId)]);
	if (file?.type !== "file") return notFound("file");
	if (version?.nodeId !== file.id) return notFound("version");
	return ok({ file, version });
}

function isKept(version: VersionRow): boolean {
	return version.keepForever || version.label !== null;
}

function userActor(tree: Tree, actor: Actor): ActivityActor {
	return { type: "user", id: actor.userId ?? tree.userId, device: actor.deviceName };
}
