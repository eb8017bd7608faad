/**
 * The changes a UserHub makes to its user's tree, as functions of the tree
 * (shard, journal, quota) and their input. Each reads what it needs, checks
 * it, and writes the change with its journal entry in one D1 batch. They run
 * one at a time, inside the hub's queue, so what they read cannot change
 * before they write.
 */
import { and, eq, sql } from "drizzle-orm";
import {
	invalidName,
	listIncomplete,
	missingBlocks,
	nameTaken,
	nodesExceeded,
	notFound,
	parentNotFound,
	tooDeep,
	versionConflict,
} from "../../src/shared/commit/failures";
import { intentOf, planCommit, usageOf, type CommitPlan, type OnConflict, type TargetView } from "../../src/shared/commit/plan";
import { activityStatement } from "../../src/shared/activity";
import { runBatch, type BatchQuery } from "../../src/shared/db/batch";
import { inList, slices } from "../../src/shared/db/lists";
import { toNode, toVersion, type BlockRef } from "../../src/shared/db/mappers";
import { nodes, uploads, versions, type NodeRow, type VersionRow } from "../../src/shared/db/schema";
import type { ShardDb } from "../../src/shared/db/shards";
import { Columns } from "../../src/shared/db/static";
import {
	ancestry,
	ancestryStatement,
	findLiveChild,
	findNode,
	findRoot,
	findVersion,
	loadTarget,
	loadTargets,
	readAncestry,
	type AncestryRow,
	subtreeHeight,
} from "../../src/shared/db/tree";
import { MAX_FOLDER_DEPTH } from "../../src/shared/limits";
import { committedOutcome, findUpload, isLive, missingBlocks as findMissingBlocks } from "../../src/shared/db/uploads";
import { fail, ok, type Result } from "../../src/shared/errors";
import { newId } from "../../src/shared/ids";
import { checkName, conflictedCopyName, fitName, nameKey, numberedNames, splitExtension } from "../../src/shared/names";
import { blockSource, guardBlocks, guardFrame, guardRefusal } from "./block-guard";
import type { Pending } from "./commit-queue";
import type {
	Actor,
	ChangeKind,
	CommitFileInput,
	CommitFilesInput,
	CommitOutcome,
	CommitUploadInput,
	NodeOutcome,
	UpdateNodeInput,
} from "./contract";
import type { Journal } from "./journal";
import type { Grant, Sharing } from "./sharing";
import type { Usage } from "./usage";

/** One user's tree, as the hub changes it. */
export interface Tree {
	db: ShardDb;
	userId: string;
	journal: Journal;
	usage: Usage;
	/** Nodes (trash included) a user may have. */
	maxNodes: number;
	/**
	 * Levels above a folder (its ancestry's length), remembered between groups
	 * of folder creations so that a burst of them costs no extra read per
	 * group. Every other change clears it: a move, trash or restore may
	 * change a folder's depth.
	 */
	folderDepths: Map<string, number>;
	/** The user's shares: who else may change which nodes (sharing.ts). */
	sharing: Sharing;
	/** Told when a change outside the journal landed (a share event of the activity log), for webhooks (webhook-kick.ts). */
	webhooks?: { changed(): void };
}

/**
 * For a change a share member makes in the owner's tree: their grant on the
 * node, checked here in the queue, so that a revoke and the change are
 * strictly ordered. Nothing to check for the owner.
 */
export async function editorGrant(
	tree: Tree,
	by: string | undefined,
	nodeId: string,
	options: { trashedToo?: boolean; notTheShared?: boolean } = {},
): Promise<Result<Grant | null>> {
	if (by === undefined || by === tree.userId) return ok(null);
	const grant = await tree.sharing.grantOnNode(by, nodeId, options.trashedToo ?? false);
	if (!grant) return notFound("node");
	if (grant.role !== "editor") return fail("FORBIDDEN", "you can view this share but not change it", [{ reason: "read_only" }]);
	if (options.notTheShared && grant.rootId === nodeId)
		return fail("FORBIDDEN", "only the owner can rename, move or delete the shared item itself", [{ reason: "owner_only" }]);
	return ok(grant);
}

/** What a commit of content writes, whichever way its blocks arrived. */
interface ContentCommit {
	parentId: string;
	name: string;
	size: number;
	contentHash: string;
	/** False when the hash is the client's claim, checked after the commit. */
	hashVerified: boolean;
	/** The blocks in file order, or the upload whose block list they are. */
	blocks: BlockRef[] | { uploadId: string; count: number };
	/** For blocks in file order: the shard's gc clock before they were written (block-guard.ts). */
	blocksSince?: number;
	baseVersionId: string | null;
	onConflict: OnConflict;
	/** A new file only (commit/plan.ts CommitIntent). */
	createOnly?: boolean;
	quotaBytes: number;
	actor: Actor;
	/** A public link's upload: recorded in the activity log in the same batch. */
	linkId?: string;
	/** The new version's id, when the api chose it (a member's upload): once written, the commit answers it again. */
	versionId?: string;
	/** An edit of this file by id: a member's grant is checked on the file (a shared file's folder is not shared). */
	fileId?: string;
}

/** A folder creation waiting in the queue; consecutive ones share a batch. */
export interface FolderRequest {
	parentId: string;
	/** Already checked and in NFC. */
	name: string;
	/** A share member creating it in the owner's tree (the grant is checked in the queue). */
	by?: string;
}

/** At most this many folder creations share one batch (two statements each). */
export const FOLDERS_PER_BATCH = 50;

/** ?1 id, ?2 user, ?3 name, ?4 name key, ?5 now, ?6 parent: a no-op unless the parent is a live folder and the name is free. */
const INSERT_FOLDER_UNDER_LIVE_PARENT = `INSERT OR IGNORE INTO nodes (id, user_id, parent_id, type, name, name_key, size, created_at, modified_at)
	SELECT ?1, ?2, id, 'folder', ?3, ?4, 0, ?5, ?5
	FROM nodes WHERE user_id = ?2 AND id = ?6 AND type = 'folder' AND trashed_at IS NULL AND mount_share_id IS NULL`;

/** Free names are looked for this many candidates at a time. */
const NAME_CANDIDATES_PER_QUERY = 50;

/** Creates the user's root folder if it does not exist yet; returns it. */
export async function ensureRoot(tree: Tree): Promise<Result<NodeOutcome>> {
	const existing = await findRoot(tree.db, tree.userId);
	if (existing) return ok({ node: toNode(existing) });
	const now = new Date().toISOString();
	const row: NodeRow = { ...newNodeRow(tree.userId, "", "folder", "", now), parentId: null };
	try {
		await runBatch(tree.db.$client, [tree.db.insert(nodes).values(row), tree.usage.change(0, 1)]);
	} catch (err) {
		tree.usage.forget();
		throw err;
	}
	tree.usage.landed(0, 1);
	return ok({ node: toNode(row) });
}

/** Commits content whose blocks were stored by the api (PUT content). */
export function commitFile(tree: Tree, input: CommitFileInput): Promise<Result<CommitOutcome>> {
	// PUT content: the api hashed these bytes itself as they streamed in.
	return commitContent(tree, { ...input, hashVerified: input.hashVerified ?? true });
}

/**
 * Commits an upload session or tus upload whose blocks have all arrived.
 * Idempotent: committing a committed upload answers the same result, so a
 * client whose answer was lost can simply retry.
 */
export async function commitUpload(tree: Tree, input: CommitUploadInput): Promise<Result<CommitOutcome>> {
	const { db, userId } = tree;
	const upload = await findUpload(db, userId, input.uploadId);
	if (!upload) return notFound("upload");
	if (upload.committedVersionId !== null) return committedResult(tree, upload.committedVersionId);
	if (!isLive(upload)) return notFound("upload");
	if (upload.moreBlocks) return listIncomplete(upload.offset);
	const missing = await findMissingBlocks(db, userId, upload.id);
	if (missing.length > 0) return missingBlocks(missing);
	// A block this user holds was measured when it arrived: a list that gives
	// it another size would describe other bytes than it serves (audit M8).
	const [resized] = await db.all<{ hash: string; size: number }>(sql`SELECT x.hash AS hash, x.size AS size
		FROM upload_blocks b JOIN user_blocks x ON x.user_id = ${userId} AND x.hash = b.hash
		WHERE b.upload_id = ${upload.id} AND b.size != x.size LIMIT 1`);
	if (resized !== undefined)
		return fail("INVALID_REQUEST", `block ${resized.hash} has ${resized.size} bytes, not the size listed; start a new upload`, [
			{ field: "blocks", hash: resized.hash, size: resized.size },
		]);
	// The list must tile the file: indexes 0..n-1, sizes adding up to its size.
	const [list] = await db.all<{ n: number; total: number; last: number }>(
		sql`SELECT COUNT(*) AS n, COALESCE(SUM(size), 0) AS total, COALESCE(MAX(idx), -1) AS last FROM upload_blocks WHERE upload_id = ${upload.id}`,
	);
	const count = list?.n ?? 0;
	if (list?.total !== upload.size || list.last !== count - 1)
		return fail("INVALID_REQUEST", "the upload's block list does not add up to its size; start a new upload");
	return commitContent(tree, {
		parentId: upload.parentId,
		name: upload.name,
		size: upload.size,
		contentHash: input.contentHash,
		hashVerified: input.hashVerified,
		blocks: { uploadId: upload.id, count },
		baseVersionId: upload.baseVersionId,
		onConflict: upload.onConflict,
		createOnly: upload.createOnly,
		quotaBytes: input.quotaBytes,
		actor: { deviceId: upload.deviceId, deviceName: upload.deviceName, ...(upload.actorId ? { userId: upload.actorId } : {}) },
	});
}

function committedResult(tree: Tree, versionId: string): Promise<Result<CommitOutcome>> {
	return committedOutcome(tree.db, tree.userId, versionId);
}

/** A new file, a new version, a revived file or a conflicted copy, as {@link planCommit} decides. */
async function commitContent(tree: Tree, input: ContentCommit): Promise<Result<CommitOutcome>> {
	const name = checkName(input.name);
	if (!name.ok) return invalidName(name.reason);
	const granted = await editorGrant(tree, input.actor.userId, input.fileId ?? input.parentId);
	if (!granted.ok) return granted;
	// A retry of a member's upload commit whose answer was lost (the api marks its upload committed after this).
	if (input.versionId !== undefined && (await findVersion(tree.db, tree.userId, input.versionId)))
		return committedResult(tree, input.versionId);
	const loaded = await loadTarget(tree.db, tree.userId, input.parentId, name.key, input.baseVersionId);
	// A mount stands for someone else's file or folder: its content is theirs (the api sends such commits to the owner).
	if (loaded.parent?.mountShareId) return notFound("folder");
	const member = granted.value === null ? null : input.actor.userId;
	const view = member ? await withinShare(tree, member, loaded) : loaded;
	const planned = planCommit(view, intentOf(name, input));
	if (!planned.ok) return planned;
	const plan = planned.value;
	if (plan.kind === "version" && plan.file.mountShareId !== null) return nameTaken(name.name);
	// Wherever the plan lands, the member must be an editor there too; where it lands in (or on) what was just checked, that is known.
	const checked = input.fileId ?? input.parentId;
	const landsChecked = plan.kind === "version" ? plan.file.id === checked || plan.file.parentId === checked : plan.parentId === checked;
	if (member && !landsChecked) {
		const target = plan.kind !== "version" ? plan.parentId : plan.change === "restored" ? (plan.file.parentId ?? "") : plan.file.id;
		const there = await editorGrant(tree, member, target);
		// A stale edit of a shared file would leave a conflicted copy outside the share: refused instead.
		if (!there.ok && plan.kind === "copy" && input.fileId !== undefined) return versionConflict(input.baseVersionId, plan.winner);
		if (!there.ok) return there;
	}
	const replayed = plan.kind === "copy" ? await replayOf(tree, input, plan.winner) : null;
	if (replayed) return ok(replayed);
	const adds = usageOf(plan, input.size);
	const fits = await tree.usage.check(adds.bytes, adds.nodes, { quotaBytes: input.quotaBytes, maxNodes: tree.maxNodes });
	if (!fits.ok) return fits;
	const now = new Date().toISOString();
	return writeVersion(tree, input, plan, now);
}

/**
 * What earlier files of a batch did to the tree, for planning the later ones
 * (tree-ops.ts commitFiles): rows they changed, by id, and what lives at a
 * name, by folder and name key.
 */
class BatchOverlay {
	readonly #byId: Map<string, NodeRow>;
	readonly #byName: Map<string, NodeRow>;

	constructor(from?: BatchOverlay) {
		this.#byId = from === undefined ? new Map() : new Map(from.#byId);
		this.#byName = from === undefined ? new Map() : new Map(from.#byName);
	}

	/** `view` as the earlier files of the batch left it. */
	view(view: TargetView, parentId: string, key: string): TargetView {
		const fresh = (row: NodeRow | null) => (row === null ? null : (this.#byId.get(row.id) ?? row));
		const at = (folderId: string, row: NodeRow | null) => this.#byName.get(`${folderId}/${key}`) ?? fresh(row);
		const refuge = view.refuge && { folder: view.refuge.folder, child: at(view.refuge.folder.id, view.refuge.child) };
		return { parent: view.parent, child: at(parentId, view.child), edited: fresh(view.edited), refuge };
	}

	/** Name keys in `parentId` that files of the batch took. */
	taken(parentId: string): Set<string> {
		const keys = new Set<string>();
		for (const row of this.#byName.values()) if (row.parentId === parentId) keys.add(row.nameKey);
		return keys;
	}

	place(row: NodeRow): void {
		this.#byId.set(row.id, row);
		if (row.parentId !== null) this.#byName.set(`${row.parentId}/${row.nameKey}`, row);
	}
}

/**
 * Commits groups of small files (POST /v1/files/batch), each file planned
 * as its own commit in order, against the tree as the files before it left
 * it; one request's files go in one D1 batch with consecutive journal
 * entries, so a request costs one target read and one write however many
 * files it holds. Files fail independently; a request whose files do not fit
 * the quota or node limit together fails as a whole.
 */
export async function commitFiles(tree: Tree, group: Pending<CommitFilesInput, Result<Result<CommitOutcome>[]>>[]): Promise<void> {
	const { db, userId } = tree;
	const named = group.map(({ item }) => item.files.map((file) => checkName(file.name)));
	const targets = group.flatMap(({ item }, r) =>
		item.files.flatMap((file, i) => {
			const name = named[r]?.[i];
			return name?.ok ? [{ parentId: file.parentId, key: name.key, baseVersionId: file.baseVersionId }] : [];
		}),
	);
	const views = await loadTargets(db, userId, targets);
	let overlay = new BatchOverlay();
	let next = 0;
	const now = new Date().toISOString();
	for (const [r, pending] of group.entries()) {
		const request = pending.item;
		const results: Result<CommitOutcome>[] = [];
		const prepared: { at: number; version: PreparedVersion }[] = [];
		const local = new BatchOverlay(overlay);
		const size = request.files.reduce((sum, file) => sum + file.size, 0);
		// Every file adds its size (docs/decisions/0018) and at most one node: one check for them all.
		const fits = await tree.usage.check(size, request.files.length, { quotaBytes: request.quotaBytes, maxNodes: tree.maxNodes });
		for (const [i, file] of request.files.entries()) {
			const name = named[r]?.[i];
			if (!name?.ok) {
				results.push(invalidName(name?.reason ?? "invalid name"));
				continue;
			}
			const loaded = views[next++];
			if (!fits.ok || loaded === undefined) {
				results.push(fits.ok ? notFound("parent folder") : fits);
				continue;
			}
			// A mount stands for someone else's folder: batches reach only the caller's own tree, and say no more than for a missing one.
			if (loaded.parent?.mountShareId) {
				results.push(parentNotFound(null));
				continue;
			}
			const input: ContentCommit = {
				...file,
				hashVerified: true,
				blocksSince: request.blocksSince,
				quotaBytes: request.quotaBytes,
				actor: request.actor,
			};
			const planned = planCommit(local.view(loaded, file.parentId, name.key), intentOf(name, file));
			if (!planned.ok) {
				results.push(planned);
				continue;
			}
			const plan = planned.value;
			if (plan.kind === "version" && plan.file.mountShareId !== null) {
				results.push(nameTaken(name.name));
				continue;
			}
			const replayed = plan.kind === "copy" ? await replayOf(tree, input, plan.winner) : null;
			if (replayed) {
				results.push(ok(replayed));
				continue;
			}
			const folder = plan.kind === "version" ? (plan.file.parentId ?? "") : plan.parentId;
			const version = await prepareVersion(tree, input, plan, now, local.taken(folder));
			local.place(version.after);
			prepared.push({ at: results.length, version });
			results.push(ok(version.outcome));
		}
		if (prepared.length > 0) {
			const adds = prepared.reduce(
				(sum, { version }) => ({ bytes: sum.bytes + version.adds.bytes, nodes: sum.nodes + version.adds.nodes }),
				{
					bytes: 0,
					nodes: 0,
				},
			);
			const source = { since: request.blocksSince };
			const guard = guardFrame(db, source);
			try {
				await tree.journal.applyMany(
					prepared.map(({ version }) => ({ statements: [...version.rows, ...version.blocks], kind: version.kind, after: version.after })),
					{ first: [guard.first], last: [guard.last, tree.usage.change(adds.bytes, adds.nodes)] },
				);
				tree.usage.landed(adds.bytes, adds.nodes);
				overlay = local;
			} catch (err) {
				tree.usage.forget();
				const refused = await guardRefusal(db, userId, source, err);
				if (!refused) throw err;
				for (const { at } of prepared) results[at] = refused;
			}
		}
		pending.resolve(ok(results));
	}
}

/**
 * A member's view of a commit's surroundings: an edit follows its file
 * wherever it went (planCommit), but for a member only within what they are
 * shared. A file moved out of the share, or a refuge folder outside it, is
 * not theirs to write to or to learn of: without them the edit lands in the
 * share as a new file or a conflicted copy.
 */
async function withinShare(tree: Tree, member: string, view: TargetView): Promise<TargetView> {
	const edited = view.edited && (await editorGrant(tree, member, view.edited.id, { trashedToo: true })).ok ? view.edited : null;
	const refuge = view.refuge && (await editorGrant(tree, member, view.refuge.folder.id)).ok ? view.refuge : null;
	return { ...view, edited, refuge };
}

/**
 * A retry of an edit that already landed (its answer was lost): the head
 * of the file it would lose against was written by the same device, from the
 * same base, with the same content. It answers that version again instead of
 * making a conflicted copy of the device's own edit (audit L2). The same for
 * a create-only commit that already created its file.
 */
async function replayOf(tree: Tree, input: ContentCommit, winner: NodeRow): Promise<CommitOutcome | null> {
	// A create-only commit's "base" is no version at all: the file's first version has no parent ("").
	const base = input.createOnly ? "" : input.baseVersionId;
	if (base === null || winner.headVersionId === null || winner.contentHash !== input.contentHash) return null;
	const head = await findVersion(tree.db, tree.userId, winner.headVersionId);
	if (head === null || head.parentVersionId !== base || head.deviceId !== input.actor.deviceId) return null;
	return { created: false, node: toNode(winner), version: toVersion(head, winner.headVersionId), conflict: null };
}

/** What a planned commit writes, before it is written: its rows, its statements, and its answer once they land. */
interface PreparedVersion {
	after: NodeRow;
	kind: ChangeKind;
	/** The node and version rows. */
	rows: D1PreparedStatement[];
	/** The version's block list and the user's new blocks: they go inside the commit guard (block-guard.ts). */
	blocks: (BatchQuery | D1PreparedStatement)[];
	adds: { bytes: number; nodes: number };
	outcome: CommitOutcome;
}

/**
 * Builds what a planned commit writes. `taken` holds name keys in the
 * plan's folder that earlier commits of the same batch took but did not
 * write yet, so a copy's or a renamed file's free name skips them too.
 */
async function prepareVersion(
	tree: Tree,
	input: ContentCommit,
	plan: CommitPlan,
	now: string,
	taken?: ReadonlySet<string>,
): Promise<PreparedVersion> {
	const { db, userId } = tree;
	let node: NodeRow;
	let conflict: CommitOutcome["conflict"] = null;
	if (plan.kind === "version") node = plan.file;
	else if (plan.kind === "new") node = newNodeRow(userId, plan.parentId, "file", plan.name, now);
	else if (plan.kind === "renamed")
		node = newNodeRow(userId, plan.parentId, "file", await freeName(tree, plan.parentId, plan.name, taken), now);
	else {
		// Named for the device and the time, never replacing anything.
		const copyName = await freeName(tree, plan.parentId, conflictedCopyName(plan.name, input.actor.deviceName, new Date(now)), taken);
		node = { ...newNodeRow(userId, plan.parentId, "file", copyName, now), conflictOf: plan.winner.id };
		conflict = { node_id: plan.winner.id, reason: "stale_base" };
	}
	const isNew = plan.kind !== "version";
	const version: VersionRow = {
		id: input.versionId ?? newId("ver"),
		userId,
		nodeId: node.id,
		parentVersionId: isNew ? "" : (node.headVersionId ?? ""),
		size: input.size,
		contentHash: input.contentHash,
		blockCount: Array.isArray(input.blocks) ? input.blocks.length : input.blocks.count,
		deviceId: input.actor.deviceId,
		createdAt: now,
		hashVerified: input.hashVerified,
		keepForever: false,
		label: null,
		authorId: input.actor.userId ?? null,
		readMonth: null,
	};
	const after: NodeRow = { ...node, size: input.size, headVersionId: version.id, contentHash: input.contentHash, modifiedAt: now };
	// Static SQL: this batch is on the path of every commit (src/shared/db/static.ts).
	const head = isNew
		? insertNodeStatement(db, after)
		: db.$client
				.prepare(UPDATE_FILE_HEAD)
				.bind(
					after.parentId,
					after.name,
					after.nameKey,
					after.size,
					after.headVersionId,
					after.contentHash,
					now,
					after.trashedAt,
					after.trashRootId,
					userId,
					node.id,
				);
	return {
		after,
		kind: plan.kind === "version" ? plan.change : "created",
		rows: [head, db.$client.prepare(INSERT_VERSION).bind(...VERSION_COLUMNS.values(version))],
		blocks: blockListStatements(tree, version.id, input.blocks, now),
		adds: usageOf(plan, input.size),
		outcome: { created: isNew, node: toNode(after), version: toVersion(version, after.headVersionId), conflict },
	};
}

async function writeVersion(tree: Tree, input: ContentCommit, plan: CommitPlan, now: string): Promise<Result<CommitOutcome>> {
	const { db, userId } = tree;
	const prepared = await prepareVersion(tree, input, plan, now);
	const { adds, after } = prepared;
	const source = blockSource(input.blocks, input.blocksSince);
	const statements: (BatchQuery | D1PreparedStatement)[] = [
		...prepared.rows,
		...guardBlocks(db, source, prepared.blocks),
		tree.usage.change(adds.bytes, adds.nodes),
	];
	if (input.linkId !== undefined) {
		const actor = { type: "link", id: input.linkId } as const;
		statements.push(
			activityStatement(db.$client, {
				userId,
				event: "link.uploaded",
				actor,
				nodeId: after.id,
				linkId: input.linkId,
				versionId: prepared.outcome.version.id,
			}),
		);
	}
	try {
		await tree.journal.apply(statements, prepared.kind, after);
	} catch (err) {
		tree.usage.forget();
		const refused = await guardRefusal(db, userId, source, err);
		if (refused) return refused;
		throw err;
	}
	tree.usage.landed(adds.bytes, adds.nodes);
	return ok(prepared.outcome);
}

/**
 * Records the hash the api computed from a version's stored blocks, for a
 * version committed with the client's declared hash (audit M7). A wrong claim
 * is replaced, and when the version is its file's head the node changes too,
 * journaled as an update so devices learn the true hash.
 */
export async function settleContentHash(
	tree: Tree,
	input: { versionId: string; contentHash: string },
): Promise<Result<{ corrected: boolean }>> {
	const { db, userId } = tree;
	const version = await findVersion(db, userId, input.versionId);
	if (version === null || version.hashVerified) return ok({ corrected: false });
	const settle = db
		.update(versions)
		.set({ contentHash: input.contentHash, hashVerified: true })
		.where(and(eq(versions.userId, userId), eq(versions.id, version.id)));
	if (version.contentHash === input.contentHash) {
		await runBatch(db.$client, [settle]);
		return ok({ corrected: false });
	}
	const node = await findNode(db, userId, version.nodeId);
	if (node === null || node.headVersionId !== version.id) {
		await runBatch(db.$client, [settle]);
		return ok({ corrected: true });
	}
	const after: NodeRow = { ...node, contentHash: input.contentHash };
	await tree.journal.apply(
		[
			settle,
			db
				.update(nodes)
				.set({ contentHash: input.contentHash })
				.where(and(eq(nodes.userId, userId), eq(nodes.id, node.id))),
		],
		"updated",
		after,
	);
	return ok({ corrected: true });
}

/** The version's block list and the user's new blocks, from the upload's list (already in the shard) or from `blocks`. */
const NODE_COLUMNS = new Columns(nodes);
const VERSION_COLUMNS = new Columns(versions);
const INSERT_NODE = `INSERT INTO nodes (${NODE_COLUMNS.names()}) VALUES (${NODE_COLUMNS.slots()})`;

/** The statement that inserts a whole node row, for a batch. */
export function insertNodeStatement(db: ShardDb, row: NodeRow): D1PreparedStatement {
	return db.$client.prepare(INSERT_NODE).bind(...NODE_COLUMNS.values(row));
}
const INSERT_VERSION = `INSERT INTO versions (${VERSION_COLUMNS.names()}) VALUES (${VERSION_COLUMNS.slots()})`;
const UPDATE_FILE_HEAD = `UPDATE nodes SET parent_id = ?1, name = ?2, name_key = ?3, size = ?4, head_version_id = ?5, content_hash = ?6,
	modified_at = ?7, trashed_at = ?8, trash_root_id = ?9 WHERE user_id = ?10 AND id = ?11`;
const INSERT_LISTED_VERSION_BLOCKS = `INSERT INTO version_blocks (version_id, offset, size, hash)
	SELECT ?1, json_extract(value, '$[0]'), json_extract(value, '$[1]'), json_extract(value, '$[2]') FROM json_each(?2)`;
const INSERT_LISTED_USER_BLOCKS = `INSERT OR IGNORE INTO user_blocks (user_id, hash, size, created_at)
	SELECT ?1, json_extract(value, '$[2]'), json_extract(value, '$[1]'), ?3 FROM json_each(?2)`;

function blockListStatements(
	tree: Tree,
	versionId: string,
	blocks: ContentCommit["blocks"],
	now: string,
): (BatchQuery | D1PreparedStatement)[] {
	const { db, userId } = tree;
	if (!Array.isArray(blocks)) {
		// Copied inside the shard rather than shipped over RPC.
		return [
			db.run(sql`INSERT INTO version_blocks (version_id, offset, size, hash)
				SELECT ${versionId}, offset, size, hash FROM upload_blocks WHERE upload_id = ${blocks.uploadId}`),
			db.run(sql`INSERT OR IGNORE INTO user_blocks (user_id, hash, size, created_at)
				SELECT ${userId}, hash, MAX(size), ${now} FROM upload_blocks WHERE upload_id = ${blocks.uploadId} GROUP BY hash`),
			db.update(uploads).set({ committedVersionId: versionId }).where(eq(uploads.id, blocks.uploadId)),
		];
	}
	const statements: D1PreparedStatement[] = [];
	for (const slice of slices(blocks)) {
		const rows = JSON.stringify(slice.map((b) => [b.offset, b.size, b.hash]));
		statements.push(
			db.$client.prepare(INSERT_LISTED_VERSION_BLOCKS).bind(versionId, rows),
			db.$client.prepare(INSERT_LISTED_USER_BLOCKS).bind(userId, rows, now),
		);
	}
	return statements;
}

/**
 * Creates a group of folders in one batch. Each row is inserted only under
 * a live parent folder and only if its name is free (INSERT OR IGNORE
 * against the nodes_live_names index), and its journal entry only if its
 * row went in, so a refused creation neither stops the others nor leaves a
 * gap in the journal. Refusals are explained afterwards, one read each.
 */
export async function createFolders(tree: Tree, requests: Pending<FolderRequest, Result<NodeOutcome>>[]): Promise<void> {
	const { db, userId } = tree;
	// Past the node limit, the creations that do not fit are refused.
	const nodes = (await tree.usage.totals()).nodes;
	const fitting = requests.slice(0, Math.max(0, tree.maxNodes - nodes));
	for (const pending of requests.slice(fitting.length)) pending.resolve(nodesExceeded(tree.maxNodes, nodes));
	// A folder may not nest deeper than MAX_FOLDER_DEPTH: one walk up per parent in the group.
	const depths = tree.folderDepths;
	const unknown = [...new Set(fitting.map(({ item }) => item.parentId))].filter((id) => !depths.has(id));
	if (unknown.length > 0) {
		const walked = await db.$client.batch<AncestryRow>(unknown.map((id) => ancestryStatement(db, userId, id)));
		unknown.forEach((id, i) => depths.set(id, readAncestry(walked[i]?.results ?? []).length));
	}
	const granted: typeof fitting = [];
	for (const pending of fitting) {
		const grant = await editorGrant(tree, pending.item.by, pending.item.parentId);
		if (grant.ok) granted.push(pending);
		else pending.resolve(grant);
	}
	const group = granted.filter((pending) => {
		if ((depths.get(pending.item.parentId) ?? 0) <= MAX_FOLDER_DEPTH) return true;
		pending.resolve(tooDeep(MAX_FOLDER_DEPTH));
		return false;
	});
	if (group.length === 0) return;
	const now = new Date().toISOString();
	const rows = group.map(({ item }) => newNodeRow(userId, item.parentId, "folder", item.name, now));
	let seqs: (number | null)[];
	try {
		seqs = await tree.journal.applyCreations(
			rows.map((row) => ({
				statements: [
					db.$client.prepare(INSERT_FOLDER_UNDER_LIVE_PARENT).bind(row.id, row.userId, row.name, row.nameKey, now, row.parentId),
					tree.usage.countInserted(),
				],
				after: row,
			})),
		);
	} catch (err) {
		tree.usage.forget();
		throw err;
	}
	tree.usage.landed(0, seqs.filter((seq) => seq !== null).length);
	for (const [i, row] of rows.entries()) if (seqs[i] !== null) depths.set(row.id, (depths.get(row.parentId ?? "") ?? 0) + 1);
	// Answer every folder that went in before explaining any refusal: a
	// failed read while explaining must not fail creations that were committed.
	const refused: number[] = [];
	for (const [i, pending] of group.entries()) {
		const row = rows[i];
		if (row && seqs[i] !== null) pending.resolve(ok({ node: toNode(row) }));
		else refused.push(i);
	}
	for (const i of refused) {
		// Not inserted: the parent does not qualify, or the name is taken
		// (perhaps by an earlier folder of this very group).
		const pending = group[i];
		const row = rows[i];
		if (!pending || !row) continue;
		try {
			const target = await loadTarget(db, userId, pending.item.parentId, row.nameKey, null);
			if (target.parent?.type !== "folder" || target.parent.trashedAt !== null || target.parent.mountShareId !== null)
				pending.resolve(parentNotFound(target.parent?.mountShareId ? null : target.parent));
			else if (target.child) pending.resolve(nameTaken(pending.item.name));
			else pending.reject(new Error(`folder ${row.id} was not inserted, for no known reason`));
		} catch (err) {
			pending.reject(err);
		}
	}
}

/** Renames and/or moves a node. A folder can never move into itself or its subtree. */
export async function updateNode(tree: Tree, input: UpdateNodeInput): Promise<Result<NodeOutcome>> {
	const { db, userId } = tree;
	const node = await findNode(db, userId, input.nodeId);
	if (!node) return notFound("node");
	const mayChange = await editorGrant(tree, input.by, node.id, { notTheShared: true });
	if (!mayChange.ok) return mayChange;
	if (node.parentId === null) return fail("INVALID_REQUEST", "the root folder cannot be renamed or moved");
	if (node.trashedAt !== null) return fail("INVALID_REQUEST", "the node is in the trash; restore it first");
	let name = node.name;
	let key = node.nameKey;
	if (input.name !== undefined) {
		const checked = checkName(input.name);
		if (!checked.ok) return invalidName(checked.reason);
		name = checked.name;
		key = checked.key;
	}
	const parentId = input.parentId ?? node.parentId;
	if (parentId !== node.parentId) {
		const parent = await findNode(db, userId, parentId);
		if (parent?.type !== "folder" || parent.trashedAt !== null) return parentNotFound(parent);
		if (parent.mountShareId !== null)
			return fail("INVALID_REQUEST", "nothing can move into a share someone else owns; copy it there instead", [
				{ reason: "cross_owner_move" },
			]);
		if (node.mountShareId !== null && (await tree.sharing.isShared(parent.id)))
			return fail("INVALID_REQUEST", "a share from someone else cannot go inside a folder you share", [{ reason: "mount_inside_share" }]);
		const mayMoveThere = await editorGrant(tree, input.by, parent.id);
		if (!mayMoveThere.ok) return mayMoveThere;
		// Moves are serialized per user here, so this check cannot race
		// another move into a cycle.
		const chain = await ancestry(db, userId, parentId);
		if (chain.some((a) => a.id === node.id))
			return fail("INVALID_REQUEST", "a folder cannot move into itself or one of its subfolders", [{ field: "parent_id" }]);
		if (node.type === "folder" && chain.length + 1 + (await subtreeHeight(db, userId, node.id)) > MAX_FOLDER_DEPTH + 1)
			return tooDeep(MAX_FOLDER_DEPTH);
	}
	if (name === node.name && parentId === node.parentId) return ok({ node: toNode(node) });
	const clash = await findLiveChild(db, userId, parentId, key);
	if (clash && clash.id !== node.id) return nameTaken(name);
	const now = new Date().toISOString();
	// Renaming a conflicted copy is how a user says "keep both": it resolves it.
	const conflictOf = name !== node.name ? null : node.conflictOf;
	const row: NodeRow = { ...node, name, nameKey: key, parentId, modifiedAt: now, conflictOf };
	await tree.journal.apply(
		[
			db
				.update(nodes)
				.set({ name, nameKey: key, parentId, modifiedAt: now, conflictOf })
				.where(and(eq(nodes.userId, userId), eq(nodes.id, node.id))),
		],
		"moved",
		row,
		{ before: { parentId: node.parentId, name: node.name } },
	);
	return ok({ node: toNode(row) });
}

/** Moves a node to the trash; a folder takes its live subtree with it. Idempotent. */
export async function trashNode(tree: Tree, input: { nodeId: string; by?: string }): Promise<Result<NodeOutcome>> {
	const { db, userId } = tree;
	const node = await findNode(db, userId, input.nodeId);
	if (!node) return notFound("node");
	const may = await editorGrant(tree, input.by, node.id, { notTheShared: true });
	if (!may.ok) return may;
	if (node.mountShareId !== null) return unmount(tree, node);
	if (node.parentId === null) return fail("INVALID_REQUEST", "the root folder cannot be deleted");
	if (node.trashedAt !== null) return ok({ node: toNode(node) });
	const now = new Date().toISOString();
	const trashSubtree = db.run(sql`
		WITH RECURSIVE subtree(id) AS (
			SELECT ${node.id}
			UNION ALL
			SELECT n.id FROM nodes n JOIN subtree ON n.parent_id = subtree.id
			WHERE n.user_id = ${userId} AND n.trashed_at IS NULL
		)
		UPDATE nodes SET trashed_at = ${now}, trash_root_id = ${node.id},
			-- deleting a conflicted copy resolves it
			conflict_of = CASE WHEN id = ${node.id} THEN NULL ELSE conflict_of END
		WHERE user_id = ${userId} AND id IN (SELECT id FROM subtree)`);
	const row: NodeRow = { ...node, trashedAt: now, trashRootId: node.id, conflictOf: null };
	await tree.journal.apply([trashSubtree], "trashed", row);
	return ok({ node: toNode(row) });
}

/**
 * Deleting a mount takes the share out of the member's tree, not the owner's
 * files: the row goes (no trash: the content is the owner's), the share stays
 * in "Shared with me", from where it can be mounted again.
 */
async function unmount(tree: Tree, mount: NodeRow): Promise<Result<NodeOutcome>> {
	const { db, userId } = tree;
	try {
		await tree.journal.applyEntries(
			[
				db.$client.prepare("DELETE FROM nodes WHERE user_id = ?1 AND id = ?2").bind(userId, mount.id),
				db.$client
					.prepare("UPDATE incoming_shares SET mount_id = NULL WHERE user_id = ?1 AND share_id = ?2")
					.bind(userId, mount.mountShareId),
				tree.usage.change(0, -1),
			],
			[{ kind: "deleted", node: toNode(mount), reason: "unmounted" }],
		);
	} catch (err) {
		tree.usage.forget();
		throw err;
	}
	tree.usage.landed(0, -1);
	return ok({ node: toNode(mount) });
}

/**
 * Restores a trashed node and whatever was trashed together with it. It
 * goes back to its folder if that folder is live, else to the root; a
 * name now taken there gets a " (restored)" suffix rather than failing.
 */
export async function restoreNode(tree: Tree, input: { nodeId: string; by?: string }): Promise<Result<NodeOutcome>> {
	const { db, userId } = tree;
	const node = await findNode(db, userId, input.nodeId);
	if (!node) return notFound("node");
	const may = await editorGrant(tree, input.by, node.id, { trashedToo: true, notTheShared: true });
	if (!may.ok) return may;
	if (node.trashedAt === null || node.trashRootId === null) return ok({ node: toNode(node) });
	// Once its deletion started, an item is gone for the user, even while its chunks are still being deleted.
	const trashRoot = node.trashRootId === node.id ? node : await findNode(db, userId, node.trashRootId);
	if (!trashRoot || trashRoot.purgeStartedAt !== null) return notFound("node");
	let parentId = node.parentId;
	const parent = parentId === null ? null : await findNode(db, userId, parentId);
	if (!parent || parent.trashedAt !== null) {
		const root = await findRoot(db, userId);
		if (!root) return notFound("root folder");
		parentId = root.id;
	}
	if (parentId === null) return notFound("parent folder");
	let name = node.name;
	if (await findLiveChild(db, userId, parentId, node.nameKey)) {
		const [stem, ext] = splitExtension(node.name);
		name = await freeName(tree, parentId, fitName(stem, ` (restored)${ext}`));
	}
	const now = new Date().toISOString();
	const moveBack = db
		.update(nodes)
		.set({ parentId, name, nameKey: nameKey(name), modifiedAt: now })
		.where(and(eq(nodes.userId, userId), eq(nodes.id, node.id)));
	// The subtree is exactly the descendants trashed by the same delete.
	const restoreSubtree = db.run(sql`
		WITH RECURSIVE subtree(id) AS (
			SELECT ${node.id}
			UNION ALL
			SELECT n.id FROM nodes n JOIN subtree ON n.parent_id = subtree.id
			WHERE n.user_id = ${userId} AND n.trash_root_id = ${node.trashRootId}
		)
		UPDATE nodes SET trashed_at = NULL, trash_root_id = NULL
		WHERE user_id = ${userId} AND id IN (SELECT id FROM subtree)`);
	const row: NodeRow = { ...node, parentId, name, nameKey: nameKey(name), modifiedAt: now, trashedAt: null, trashRootId: null };
	await tree.journal.apply([moveBack, restoreSubtree], "restored", row);
	return ok({ node: toNode(row) });
}

/**
 * Makes an earlier version of a file its head again, as a new version whose
 * block list is the old one's: no block is written or read. The new version
 * is kept and counted like any other (docs/decisions/0018). Restoring the
 * head changes nothing.
 */
export async function restoreVersion(
	tree: Tree,
	input: { nodeId: string; versionId: string; actor: Actor; quotaBytes: number },
): Promise<Result<CommitOutcome>> {
	const { db, userId } = tree;
	const [node, old] = await Promise.all([findNode(db, userId, input.nodeId), findVersion(db, userId, input.versionId)]);
	if (!node || node.type !== "file" || node.trashedAt !== null) return notFound("file");
	const may = await editorGrant(tree, input.actor.userId, node.id);
	if (!may.ok) return may;
	if (!old || old.nodeId !== node.id) return notFound("version");
	const head = node.headVersionId === null ? null : await findVersion(db, userId, node.headVersionId);
	if (head && head.id === old.id) return ok({ created: false, node: toNode(node), version: toVersion(head, head.id), conflict: null });
	return commitAsHead(tree, node, old, input, (id) => ({ restored_as: id }));
}

/**
 * Commits `old`'s blocks as a new head version of `node`, based on its
 * current head: no block is read or written, and the collector cannot take
 * them meanwhile (docs/decisions/0017). `old` may be another file's version
 * (a conflicted copy's content kept over its original).
 */
async function commitAsHead(
	tree: Tree,
	node: NodeRow,
	old: VersionRow,
	input: { actor: Actor; quotaBytes: number },
	details: (newVersionId: string) => Record<string, string>,
): Promise<Result<CommitOutcome>> {
	const { db, userId } = tree;
	const fits = await tree.usage.check(old.size, 0, { quotaBytes: input.quotaBytes, maxNodes: tree.maxNodes });
	if (!fits.ok) return fits;
	const now = new Date().toISOString();
	const version: VersionRow = {
		id: newId("ver"),
		userId,
		nodeId: node.id,
		parentVersionId: node.headVersionId ?? "",
		size: old.size,
		contentHash: old.contentHash,
		blockCount: old.blockCount,
		deviceId: input.actor.deviceId,
		createdAt: now,
		hashVerified: old.hashVerified,
		keepForever: false,
		label: null,
		authorId: input.actor.userId ?? null,
		readMonth: null,
	};
	const after: NodeRow = { ...node, size: old.size, headVersionId: version.id, contentHash: old.contentHash, modifiedAt: now };
	try {
		await tree.journal.apply(
			[
				db.$client.prepare(INSERT_VERSION).bind(...VERSION_COLUMNS.values(version)),
				// The old version holds these blocks for the whole batch: the collector cannot take them (docs/decisions/0017).
				db.$client.prepare(COPY_VERSION_BLOCKS).bind(version.id, old.id),
				db
					.update(nodes)
					.set({ size: after.size, headVersionId: after.headVersionId, contentHash: after.contentHash, modifiedAt: now })
					.where(and(eq(nodes.userId, userId), eq(nodes.id, node.id))),
				tree.usage.change(old.size, 0),
				activityStatement(db.$client, {
					userId,
					event: "version.restored",
					actor: { type: "user", id: input.actor.userId ?? userId, device: input.actor.deviceName },
					nodeId: node.id,
					versionId: old.id,
					details: details(version.id),
				}),
			],
			"updated",
			after,
		);
	} catch (err) {
		tree.usage.forget();
		throw err;
	}
	tree.usage.landed(old.size, 0);
	return ok({ created: true, node: toNode(after), version: toVersion(version, after.headVersionId), conflict: null });
}

const COPY_VERSION_BLOCKS = `INSERT INTO version_blocks (version_id, offset, size, hash)
	SELECT ?1, offset, size, hash FROM version_blocks WHERE version_id = ?2`;

/** Which side of a conflict survives (POST /v1/conflicts/{id}/resolve). */
export type KeepChoice = "both" | "original" | "copy";

export interface ResolveConflictInput {
	/** The conflicted copy. */
	nodeId: string;
	/** both (default): clear the copy's mark; original: trash the copy; copy: its content becomes the original's new version, then trash it. */
	keep?: KeepChoice;
	actor: Actor;
	quotaBytes: number;
}

/**
 * Settles a conflicted copy and answers the node that stays. Keeping both
 * only clears the mark (idempotent); keeping one side trashes the copy,
 * after committing its head as the original's new version when the copy is
 * the side kept. Each change is its own journal entry.
 */
export async function resolveConflict(tree: Tree, input: ResolveConflictInput): Promise<Result<NodeOutcome>> {
	const { db, userId } = tree;
	const by = input.actor.userId;
	const node = await findNode(db, userId, input.nodeId);
	if (!node) return notFound("node");
	const may = await editorGrant(tree, by, node.id);
	if (!may.ok) return may;
	const keep = input.keep ?? "both";
	if (keep !== "both") {
		if (node.conflictOf === null || node.trashedAt !== null)
			return fail("INVALID_REQUEST", "this file is not an unresolved conflicted copy", [{ reason: "not_a_conflict" }]);
		const original = await findNode(db, userId, node.conflictOf);
		if (!original || original.trashedAt !== null || original.type !== "file") return notFound("original file");
		let kept = toNode(original);
		const copyHead = node.headVersionId === null ? null : await findVersion(db, userId, node.headVersionId);
		if (keep === "copy" && copyHead && copyHead.contentHash !== original.contentHash) {
			const allowed = await editorGrant(tree, by, original.id);
			if (!allowed.ok) return allowed;
			const committed = await commitAsHead(tree, original, copyHead, input, (id) => ({ restored_as: id, conflicted_copy: node.id }));
			if (!committed.ok) return committed;
			kept = committed.value.node;
		}
		const trashed = await trashNode(tree, { nodeId: node.id, ...(by ? { by } : {}) });
		if (!trashed.ok) return trashed;
		return ok({ node: kept });
	}
	if (node.conflictOf === null) return ok({ node: toNode(node) });
	const now = new Date().toISOString();
	const row: NodeRow = { ...node, conflictOf: null, modifiedAt: now };
	await tree.journal.apply(
		[
			db
				.update(nodes)
				.set({ conflictOf: null, modifiedAt: now })
				.where(and(eq(nodes.userId, userId), eq(nodes.id, node.id))),
		],
		"updated",
		row,
	);
	return ok({ node: toNode(row) });
}

/** `desired`, or `desired` with " 2", " 3", … before the extension, whichever is free in `parentId`; one query per 50 candidates. */
export async function freeName(tree: Tree, parentId: string, desired: string, taken?: ReadonlySet<string>): Promise<string> {
	for (let from = 1; from < 1000; from += NAME_CANDIDATES_PER_QUERY) {
		const candidates = numberedNames(desired, NAME_CANDIDATES_PER_QUERY, from);
		const rows = await tree.db
			.select({ key: nodes.nameKey })
			.from(nodes)
			.where(
				and(
					eq(nodes.userId, tree.userId),
					eq(nodes.parentId, parentId),
					sql`${nodes.trashedAt} IS NULL`,
					inList(
						nodes.nameKey,
						candidates.map((c) => nameKey(c)),
					),
				),
			);
		const keys = new Set(rows.map((t) => t.key));
		const free = candidates.find((c) => !keys.has(nameKey(c)) && taken?.has(nameKey(c)) !== true);
		if (free !== undefined) return free;
	}
	const [stem, ext] = splitExtension(desired);
	return fitName(stem, ` ${newId("nod").slice(-8)}${ext}`);
}

/** A new node's row: no content yet, live, in `parentId`. */
export function newNodeRow(userId: string, parentId: string, type: "file" | "folder", name: string, now: string): NodeRow {
	return {
		id: newId("nod"),
		userId,
		parentId,
		type,
		name,
		nameKey: nameKey(name),
		size: 0,
		headVersionId: null,
		contentHash: null,
		createdAt: now,
		modifiedAt: now,
		trashedAt: null,
		trashRootId: null,
		conflictOf: null,
		mountShareId: null,
		purgeStartedAt: null,
	};
}
