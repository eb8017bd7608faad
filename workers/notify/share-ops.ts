/**
 * Changes to shares, as hub jobs (docs/decisions/0024). On the owner's hub:
 * share a node, set a member's role, remove a member (or let one leave),
 * end a share; each writes the share rows, an outbox row per member it
 * concerns and an activity row in one batch. On a member's hub: apply what
 * an owner's hub delivers, as entries in the member's own journal, and
 * mount or unmount the share in the member's tree.
 */
import { sql } from "drizzle-orm";
import { notFound } from "../../src/shared/commit/failures";
import { activityStatement, type ActivityActor } from "../../src/shared/activity";
import { runBatch } from "../../src/shared/db/batch";
import { toNode } from "../../src/shared/db/mappers";
import { nodes, type NodeRow } from "../../src/shared/db/schema";
import { Columns } from "../../src/shared/db/static";
import { findLiveChild, findNode, findRoot } from "../../src/shared/db/tree";
import { fail, ok, type Result } from "../../src/shared/errors";
import { newId } from "../../src/shared/ids";
import { fitName, nameKey, splitExtension } from "../../src/shared/names";
import type { Node } from "../../src/shared/schemas/nodes";
import type { GivenEntry } from "./journal";
import { MAX_MEMBERS_PER_SHARE, MAX_SHARES_PER_USER, type Role, type ShareDelivery } from "./sharing";
import { freeName, insertNodeStatement, newNodeRow, type Tree } from "./tree-ops";

export interface MemberInput {
	userId: string;
	email: string;
	role: Role;
}

/** What a share change answers: the share's id (the api reads the rest). */
export interface ShareOutcome {
	shareId: string;
}

const UPSERT_MEMBER = `INSERT INTO share_members (share_id, owner_id, member_id, email, role, added_at, removed_at, delivered_id)
	VALUES (?1, ?2, ?3, ?4, ?5, ?6, NULL, (SELECT COALESCE(MAX(id), 0) FROM share_outbox WHERE share_id = ?1))
	ON CONFLICT (share_id, member_id) DO UPDATE SET role = excluded.role, email = excluded.email, removed_at = NULL,
		added_at = CASE WHEN share_members.removed_at IS NULL THEN share_members.added_at ELSE excluded.added_at END`;

/**
 * Shares a node with people, or adds people to its share: a new member gets
 * `member_added`, an existing one whose role differs `role_changed`. Only the
 * owner shares (the api refuses anyone else).
 */
export async function shareNode(
	tree: Tree,
	input: { nodeId: string; members: MemberInput[]; ownerEmail: string; actor: ActivityActor },
): Promise<Result<ShareOutcome>> {
	const { db, userId, sharing } = tree;
	const node = await findNode(db, userId, input.nodeId);
	if (!node || node.trashedAt !== null) return notFound("node");
	if (node.parentId === null) return refuse("share_root", "your root folder cannot be shared; share a folder in it");
	if (node.mountShareId !== null) return refuse("contains_mount", "this was shared with you; only its owner can share it");
	if (input.members.some((m) => m.userId === userId)) return refuse("self_share", "you own this; share it with other people");
	if (node.type === "folder") {
		const [mount] = await db.all<{ id: string }>(sql`WITH RECURSIVE sub(id) AS (
				SELECT ${node.id} UNION ALL SELECT n.id FROM nodes n JOIN sub ON n.parent_id = sub.id WHERE n.user_id = ${userId})
			SELECT n.id FROM nodes n JOIN sub ON sub.id = n.id WHERE n.user_id = ${userId} AND n.mount_share_id IS NOT NULL LIMIT 1`);
		if (mount)
			return refuse("contains_mount", "this folder holds something shared with you; shares are not passed on, so it cannot be shared");
	}
	const shares = await sharing.shares();
	const existing = shares.get(node.id);
	if (!existing && shares.size >= MAX_SHARES_PER_USER) return refuse("too_many_shares", `at most ${MAX_SHARES_PER_USER} shares per user`);
	const members = new Map(existing?.members ?? []);
	const live = [...members.values()].filter((m) => m.removedAt === null);
	const added = input.members.filter((m) => !live.some((l) => l.memberId === m.userId));
	if (live.length + added.length > MAX_MEMBERS_PER_SHARE)
		return refuse("too_many_members", `a share has at most ${MAX_MEMBERS_PER_SHARE} members`);
	const now = new Date().toISOString();
	const share = existing ?? { id: newId("shr"), nodeId: node.id, createdAt: now, members: new Map() };
	const statements: D1PreparedStatement[] = [];
	if (!existing) {
		statements.push(
			db.$client
				.prepare("INSERT INTO shares (id, owner_id, node_id, created_at) VALUES (?1, ?2, ?3, ?4)")
				.bind(share.id, userId, node.id, now),
			activityStatement(db.$client, { userId, event: "share.created", actor: input.actor, nodeId: node.id, shareId: share.id }),
		);
	}
	const details = (role: Role) => ({ role, owner_email: input.ownerEmail });
	for (const m of input.members) {
		const before = members.get(m.userId);
		const isNew = !before || before.removedAt !== null;
		if (!isNew && before.role === m.role) continue;
		statements.push(db.$client.prepare(UPSERT_MEMBER).bind(share.id, userId, m.userId, m.email, m.role, now));
		statements.push(sharing.memberEvent(share, m.userId, isNew ? "member_added" : "role_changed", node, details(m.role)));
		statements.push(
			activityStatement(db.$client, {
				userId,
				event: isNew ? "share.member_added" : "share.role_changed",
				actor: input.actor,
				nodeId: node.id,
				shareId: share.id,
				details: { member: m.email, role: m.role },
			}),
		);
	}
	if (statements.length === 0) return ok({ shareId: share.id });
	await landed(tree, statements);
	return ok({ shareId: share.id });
}

/** Removes a member (the owner removes anyone; a member removes only themselves: leaving). */
export async function removeMember(
	tree: Tree,
	input: { shareId: string; memberId: string; actor: ActivityActor },
): Promise<Result<ShareOutcome>> {
	const { db, userId, sharing } = tree;
	const share = await sharing.byId(input.shareId);
	const member = share?.members.get(input.memberId);
	if (!share || !member || member.removedAt !== null) return notFound("share member");
	const root = await findNode(db, userId, share.nodeId);
	if (!root) return notFound("share");
	const now = new Date().toISOString();
	const leaving = input.actor.type === "user" && input.actor.id === input.memberId;
	await landed(tree, [
		db.$client
			.prepare("UPDATE share_members SET removed_at = ?3 WHERE share_id = ?1 AND member_id = ?2")
			.bind(share.id, input.memberId, now),
		sharing.memberEvent(share, input.memberId, "member_removed", root, { reason: leaving ? "left" : "removed" }),
		activityStatement(db.$client, {
			userId,
			event: leaving ? "share.left" : "share.member_removed",
			actor: input.actor,
			nodeId: root.id,
			shareId: share.id,
			details: { member: member.email },
		}),
	]);
	return ok({ shareId: share.id });
}

/** Ends a share: every member is removed (each hears `unshared`), and the share goes. */
export async function deleteShare(tree: Tree, input: { shareId: string; actor: ActivityActor }): Promise<Result<ShareOutcome>> {
	const { db, userId, sharing } = tree;
	const share = await sharing.byId(input.shareId);
	if (!share) return notFound("share");
	const root = await findNode(db, userId, share.nodeId);
	const now = new Date().toISOString();
	const statements: D1PreparedStatement[] = [
		db.$client.prepare("UPDATE share_members SET removed_at = ?2 WHERE share_id = ?1 AND removed_at IS NULL").bind(share.id, now),
		db.$client.prepare("DELETE FROM shares WHERE owner_id = ?1 AND id = ?2").bind(userId, share.id),
		activityStatement(db.$client, { userId, event: "share.deleted", actor: input.actor, nodeId: share.nodeId, shareId: share.id }),
	];
	if (root)
		for (const m of share.members.values())
			if (m.removedAt === null) statements.push(sharing.memberEvent(share, m.memberId, "member_removed", root, { reason: "unshared" }));
	await landed(tree, statements);
	return ok({ shareId: share.id });
}

/** Runs a share change's batch; the copy in memory is read again after it, and the outbox delivered. */
async function landed(tree: Tree, statements: D1PreparedStatement[]): Promise<void> {
	try {
		await runBatch(tree.db.$client, statements);
	} finally {
		tree.sharing.forget();
	}
	tree.sharing.landed();
	// Share events are activity rows, not journal entries: the journal's own kick does not see them.
	tree.webhooks?.changed();
}

function refuse(reason: string, message: string): Result<never> {
	return fail("INVALID_REQUEST", message, [{ reason }]);
}

// ---- a member's side --------------------------------------------------

interface IncomingRow {
	share_id: string;
	owner_id: string;
	root_id: string;
	root_type: "file" | "folder";
	role: Role;
	mount_id: string | null;
	applied_id: number;
}

/**
 * Applies what an owner's hub delivered about one share, in order, skipping
 * what was applied before (a redelivery), as entries in this user's journal:
 * the owner's nodes as this user sees them (the share's root is the mount).
 * @returns the last outbox id applied.
 */
export async function applyShareEvents(tree: Tree, delivery: ShareDelivery): Promise<Result<{ appliedId: number }>> {
	const { db, userId } = tree;
	// The member's view of the share and its mount, in one read.
	const found = await db.$client.prepare(INCOMING_WITH_MOUNT).bind(userId, delivery.shareId).first<Record<string, unknown>>();
	let state: IncomingRow | null = found ? (found as unknown as IncomingRow) : null;
	const applied = state?.applied_id ?? 0;
	const events = delivery.events.filter((e) => e.id > applied).sort((a, b) => a.id - b.id);
	const last = events.at(-1)?.id;
	if (last === undefined) return ok({ appliedId: applied });
	// An account being deleted has left every share already (its incoming rows are gone): nothing is left to show it.
	if (!state) {
		const root = await findRoot(db, userId);
		if (!root || root.purgeStartedAt !== null) return ok({ appliedId: last });
	}
	let mount: NodeRow | null = found ? NODE.readNamed(found, "n_") : null;
	const statements: D1PreparedStatement[] = [];
	const entries: GivenEntry[] = [];
	let nodesDelta = 0;
	const now = new Date().toISOString();
	for (const e of events) {
		const node = JSON.parse(e.node) as Node;
		const details = e.details ? (JSON.parse(e.details) as { role?: Role; owner_email?: string }) : {};
		if (e.event === "member_added" && e.memberId === userId) {
			const role = details.role ?? "viewer";
			if (state && mount) {
				statements.push(db.$client.prepare(SET_ROLE).bind(userId, delivery.shareId, role));
				state = { ...state, role };
				entries.push({ kind: "updated", node: mountView(mount, node), reason: null });
				continue;
			}
			const root = await findRoot(db, userId);
			if (!root) continue;
			const ownerName = (details.owner_email ?? "").split("@")[0] ?? "";
			const name = await freeName(tree, root.id, await mountName(tree, root.id, node.name, ownerName));
			mount = { ...newNodeRow(userId, root.id, node.type, name, now), mountShareId: delivery.shareId };
			statements.push(
				db.$client
					.prepare(UPSERT_INCOMING)
					.bind(userId, delivery.shareId, delivery.ownerId, details.owner_email ?? "", node.id, node.type, node.name, role, mount.id, now),
				insertNodeStatement(db, mount),
				activityStatement(db.$client, {
					userId,
					event: "share.member_added",
					actor: { type: "user", id: delivery.ownerId, device: null },
					nodeId: mount.id,
					shareId: delivery.shareId,
					details: { role, owner: details.owner_email ?? "" },
				}),
			);
			nodesDelta++;
			state = {
				share_id: delivery.shareId,
				owner_id: delivery.ownerId,
				root_id: node.id,
				root_type: node.type,
				role,
				mount_id: mount.id,
				applied_id: 0,
			};
			entries.push({ kind: "created", node: mountView(mount, node), reason: null });
			continue;
		}
		if (e.event === "role_changed" && e.memberId === userId && state) {
			const role = details.role ?? state.role;
			statements.push(db.$client.prepare(SET_ROLE).bind(userId, delivery.shareId, role));
			state = { ...state, role };
			if (mount) entries.push({ kind: "updated", node: mountView(mount, node), reason: null });
			continue;
		}
		if (e.event === "member_removed" && e.memberId === userId) {
			if (mount) {
				statements.push(db.$client.prepare("DELETE FROM nodes WHERE user_id = ?1 AND id = ?2").bind(userId, mount.id));
				nodesDelta--;
				entries.push({ kind: "deleted", node: mountView(mount, node), reason: "unshared" });
			}
			statements.push(
				db.$client.prepare("DELETE FROM incoming_shares WHERE user_id = ?1 AND share_id = ?2").bind(userId, delivery.shareId),
			);
			state = null;
			mount = null;
			continue;
		}
		if (!state || !mount || e.memberId !== null) continue;
		if (node.id === state.root_id) {
			// The shared node itself: the mount stands for it.
			if (node.type === "file") {
				mount = {
					...mount,
					size: node.size ?? 0,
					headVersionId: node.version_id,
					contentHash: node.content_hash,
					modifiedAt: node.modified_at,
				};
				statements.push(
					db.$client
						.prepare("UPDATE nodes SET size = ?3, head_version_id = ?4, content_hash = ?5, modified_at = ?6 WHERE user_id = ?1 AND id = ?2")
						.bind(userId, mount.id, mount.size, mount.headVersionId, mount.contentHash, mount.modifiedAt),
				);
			}
			if (e.event === "trashed" || e.event === "deleted")
				entries.push({ kind: "deleted", node: mountView(mount, node), reason: "unshared" });
			else if (e.event === "restored") entries.push({ kind: "created", node: mountView(mount, node), reason: null });
			else entries.push({ kind: "updated", node: mountView(mount, node), reason: null });
			continue;
		}
		const seen: Node = { ...node, parent_id: node.parent_id === state.root_id ? mount.id : node.parent_id };
		if (e.visibility === "in") entries.push({ kind: "created", node: seen, reason: "moved_in" });
		else if (e.visibility === "out") entries.push({ kind: "deleted", node: seen, reason: "moved_out" });
		else entries.push({ kind: e.event as GivenEntry["kind"], node: seen, reason: null });
	}
	if (state)
		statements.push(
			db.$client
				.prepare("UPDATE incoming_shares SET applied_id = ?3 WHERE user_id = ?1 AND share_id = ?2")
				.bind(userId, delivery.shareId, last),
		);
	if (nodesDelta !== 0) statements.push(tree.usage.change(0, nodesDelta));
	try {
		await tree.journal.applyEntries(statements, entries);
	} catch (err) {
		tree.usage.forget();
		throw err;
	}
	if (nodesDelta !== 0) tree.usage.landed(0, nodesDelta);
	return ok({ appliedId: last });
}

const NODE = new Columns(nodes);
const INCOMING_WITH_MOUNT = `SELECT i.share_id, i.owner_id, i.root_id, i.root_type, i.role, i.mount_id, i.applied_id, ${NODE.list("n", "n_")}
	FROM incoming_shares i LEFT JOIN nodes n ON n.user_id = i.user_id AND n.id = i.mount_id
	WHERE i.user_id = ?1 AND i.share_id = ?2`;
const SET_ROLE = "UPDATE incoming_shares SET role = ?3 WHERE user_id = ?1 AND share_id = ?2";
const UPSERT_INCOMING = `INSERT INTO incoming_shares (user_id, share_id, owner_id, owner_email, root_id, root_type, root_name, role, mount_id, applied_id, shared_at)
	VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, 0, ?10)
	ON CONFLICT (user_id, share_id) DO UPDATE SET role = excluded.role, mount_id = excluded.mount_id, root_name = excluded.root_name`;

/** The share's name in the member's root: its own, or "<name> (from <owner>)" when that is taken. */
async function mountName(tree: Tree, rootId: string, name: string, ownerName: string): Promise<string> {
	if (ownerName === "" || !(await findLiveChild(tree.db, tree.userId, rootId, nameKey(name)))) return name;
	const [stem, ext] = splitExtension(name);
	return fitName(stem, ` (from ${ownerName})${ext}`);
}

/** A mount as its member sees it: the member's row (id, place, name), with a shared file's content fields. */
export function mountView(mount: NodeRow, target: Node): Node {
	const own = toNode(mount);
	if (target.type !== "file") return { ...own, modified_at: target.modified_at };
	return { ...own, size: target.size, version_id: target.version_id, content_hash: target.content_hash, modified_at: target.modified_at };
}

/** Mounts again a share the member unmounted, in one of their folders (default their root). */
export async function mountShare(tree: Tree, input: { shareId: string; parentId: string | null }): Promise<Result<{ node: Node }>> {
	const { db, userId } = tree;
	const [row] = await db.all<
		IncomingRow & { root_name: string }
	>(sql`SELECT share_id, owner_id, root_id, root_type, role, mount_id, applied_id, root_name
		FROM incoming_shares WHERE user_id = ${userId} AND share_id = ${input.shareId}`);
	if (!row) return notFound("share");
	if (row.mount_id !== null) {
		const mounted = await findNode(db, userId, row.mount_id);
		if (mounted) return ok({ node: toNode(mounted) });
	}
	const parent = input.parentId === null ? await findRoot(db, userId) : await findNode(db, userId, input.parentId);
	if (!parent || parent.type !== "folder" || parent.trashedAt !== null || parent.mountShareId !== null) return notFound("folder");
	if (await tree.sharing.isShared(parent.id))
		return fail("INVALID_REQUEST", "a share from someone else cannot go inside a folder you share", [{ reason: "mount_inside_share" }]);
	const now = new Date().toISOString();
	const name = await freeName(tree, parent.id, row.root_name);
	const mount: NodeRow = { ...newNodeRow(userId, parent.id, row.root_type, name, now), mountShareId: input.shareId };
	try {
		await tree.journal.applyEntries(
			[
				insertNodeStatement(db, mount),
				db.$client
					.prepare("UPDATE incoming_shares SET mount_id = ?3 WHERE user_id = ?1 AND share_id = ?2")
					.bind(userId, input.shareId, mount.id),
				tree.usage.change(0, 1),
			],
			[{ kind: "created", node: toNode(mount), reason: null }],
		);
	} catch (err) {
		tree.usage.forget();
		throw err;
	}
	tree.usage.landed(0, 1);
	return ok({ node: toNode(mount) });
}
