/**
 * Who may do what with a node (docs/decisions/0024). A node id is either the
 * caller's own node, a mount (the caller's node standing for a share), or a
 * node of another user that a share covers. The owner's shard is the only
 * truth: a member's own rows (mounts, incoming shares) only say where to
 * look, and every access is checked again against the owner's share rows. A
 * write is checked once more by the owner's hub, in its queue.
 */
import { eq } from "drizzle-orm";
import type { ActivityActor } from "../../../src/shared/activity";
import type { NodeRow } from "../../../src/shared/db/schema";
import { users } from "../../../src/shared/db/schema";
import { findNode } from "../../../src/shared/db/tree";
import { MAX_FOLDER_DEPTH } from "../../../src/shared/limits";
import type { Node, NodeWithPath } from "../../../src/shared/schemas/nodes";
import { fail, type Result } from "../../../src/shared/errors";
import type { Caller } from "../env";
import { openDirectory } from "./directory";
import { shardFor } from "./hub";
import { nodeWithPath } from "./tree";

export type Role = "owner" | "editor" | "viewer";

/** The owner of a tree as the api acts in it: a Caller whose tree, shard and quota are the owner's. */
export type Scope = Caller;

/** What the caller may do with one node, and in whose tree it is. */
export interface Access {
	/** Who is asking. */
	caller: Caller;
	/** The caller, acting in the owner's tree: the owner's id, shard and quota, the caller's device. */
	scope: Scope;
	role: Role;
	/** The node in the owner's tree (a mount's id is replaced by the shared node's). */
	nodeId: string;
	/** For a member: who they are, for the owner's hub to check again. */
	by: string | undefined;
	/** For a member: how the share appears in their tree (its root is their mount). */
	view: MemberView | null;
	/** The id the caller named was their own mount row (rename, move and remove act on it, not on the share). */
	viaMount: NodeRow | null;
}

/** How a member sees a share: the owner's shared node stands as their mount. */
export interface MemberView {
	shareId: string;
	rootId: string;
	mount: NodeRow | null;
}

const GRANT = `WITH RECURSIVE chain(id, parent_id, trashed, depth) AS (
		SELECT id, parent_id, trashed_at IS NOT NULL, 0 FROM nodes WHERE user_id = ?1 AND id = ?2
		UNION ALL
		SELECT n.id, n.parent_id, n.trashed_at IS NOT NULL, chain.depth + 1 FROM nodes n JOIN chain ON n.id = chain.parent_id
		WHERE n.user_id = ?1 AND chain.depth <= ${MAX_FOLDER_DEPTH}
	)
	SELECT s.id AS share_id, s.node_id AS root_id, m.role AS role,
		(SELECT MAX(c.trashed) FROM chain c WHERE c.depth <= chain.depth) AS trashed
	FROM chain JOIN shares s ON s.owner_id = ?1 AND s.node_id = chain.id
	JOIN share_members m ON m.share_id = s.id AND m.member_id = ?3 AND m.removed_at IS NULL`;

const INCOMING = `SELECT share_id, owner_id, root_id, mount_id FROM incoming_shares WHERE user_id = ?1`;

/** A share the caller is a member of, as their own shard records it: whose it is, its root, and their mount of it. */
export interface Incoming {
	share_id: string;
	owner_id: string;
	root_id: string;
	mount_id: string | null;
}

/**
 * The caller's access to a node, or null when they may not see it (then the
 * answer is the same 404 as for an id that does not exist). A trashed node
 * is seen only with `trashedToo` (restoring it).
 */
export async function accessTo(env: Env, caller: Caller, nodeId: string, options: { trashedToo?: boolean } = {}): Promise<Access | null> {
	const db = shardFor(env, caller);
	const own = await findNode(db, caller.userId, nodeId);
	if (own && own.mountShareId === null) return ownAccess(caller, nodeId);
	const incoming = await incomingShares(env, caller);
	if (own) {
		const share = incoming.find((i) => i.share_id === own.mountShareId);
		if (!share) return null;
		const found = await grantIn(env, caller, [share], share.root_id, options.trashedToo ?? false);
		return found ? { ...found, viaMount: own } : null;
	}
	for (const owner of new Set(incoming.map((i) => i.owner_id))) {
		const shares = incoming.filter((i) => i.owner_id === owner);
		const found = await grantIn(env, caller, shares, nodeId, options.trashedToo ?? false);
		if (found) return found;
	}
	return null;
}

/** The shares the caller is a member of, from their own shard (the owners' shards say whether each still holds). */
export async function incomingShares(env: Env, caller: Caller): Promise<Incoming[]> {
	return (await shardFor(env, caller).$client.prepare(INCOMING).bind(caller.userId).all<Incoming>()).results;
}

/** The caller as the activity log names them. */
export function actorOf(caller: Caller): ActivityActor {
	return { type: "user", id: caller.userId, device: caller.deviceName };
}

/** The caller's access to their own node. */
export function ownAccess(caller: Caller, nodeId: string): Access {
	return { caller, scope: caller, role: "owner", nodeId, by: undefined, view: null, viaMount: null };
}

/**
 * Runs `work` in the caller's own tree first (no extra read on the common
 * path); when that finds no such node, in the tree of whoever shared it with
 * the caller, if anyone did, with the caller's role checked against `need`.
 * A stranger gets the first answer: the same 404 as for a random id.
 */
export async function ownThenShared<T>(
	env: Env,
	caller: Caller,
	nodeId: string,
	need: "read" | "write" | "owner",
	work: (access: Access) => Promise<Result<T>>,
	options: { trashedToo?: boolean } = {},
): Promise<Result<T>> {
	const first = await work(ownAccess(caller, nodeId));
	if (first.ok || first.error.code !== "NOT_FOUND") return first;
	const access = await accessTo(env, caller, nodeId, options);
	if (!access || access.role === "owner") return first;
	if (need === "write" && access.role === "viewer")
		return fail("FORBIDDEN", "you can view this share but not change it", [{ reason: "read_only" }]);
	if (need === "owner") return fail("FORBIDDEN", "only the owner can do this", [{ reason: "owner_only" }]);
	return work(access);
}

async function grantIn(env: Env, caller: Caller, list: Incoming[], nodeId: string, trashedToo: boolean): Promise<Access | null> {
	const ownerId = list[0]?.owner_id;
	if (!ownerId) return null;
	const owner = await ownerScope(env, caller, ownerId);
	if (!owner) return null;
	const db = shardFor(env, owner);
	const rows = (
		await db.$client.prepare(GRANT).bind(ownerId, nodeId, caller.userId).all<{
			share_id: string;
			root_id: string;
			role: "viewer" | "editor";
			trashed: number;
		}>()
	).results.filter((r) => trashedToo || r.trashed === 0);
	if (rows.length === 0) return null;
	const best = rows.find((r) => r.role === "editor") ?? rows[0];
	if (!best) return null;
	// The member sees the share through their mount of the topmost share they are in.
	const mounted =
		list.find((i) => rows.some((r) => r.share_id === i.share_id && i.mount_id !== null)) ?? list.find((i) => i.share_id === best.share_id);
	const mountRow = mounted?.mount_id ? await findNode(shardFor(env, caller), caller.userId, mounted.mount_id) : null;
	return {
		caller,
		scope: owner,
		role: best.role,
		nodeId,
		by: caller.userId,
		view: mounted
			? { shareId: mounted.share_id, rootId: mounted.root_id, mount: mountRow }
			: { shareId: best.share_id, rootId: best.root_id, mount: null },
		viaMount: null,
	};
}

/** Owners' shards and quotas, remembered briefly per isolate: a stale shard only misses, and the owner's hub re-checks. */
const owners = new Map<string, { at: number; row: { email: string; shard: number; quotaBytes: number } | null }>();
const OWNER_CACHE_MS = 60_000;

/** Drops what this isolate remembers of the owner `ownerId`: they moved shard (docs/decisions/0034). */
export function forgetOwner(ownerId: string): void {
	owners.delete(ownerId);
}

/** The caller acting in `ownerId`'s tree (their shard and quota), or null when there is no such user. */
export async function ownerScope(env: Env, caller: Caller, ownerId: string): Promise<Scope | null> {
	const cached = owners.get(ownerId);
	let row = cached && Date.now() - cached.at < OWNER_CACHE_MS ? cached.row : undefined;
	if (row === undefined) {
		const [found] = await openDirectory(env.DIRECTORY)
			.select({ email: users.email, shard: users.shard, quotaBytes: users.quotaBytes })
			.from(users)
			.where(eq(users.id, ownerId))
			.limit(1);
		row = found ?? null;
		if (owners.size > 10_000) owners.clear();
		owners.set(ownerId, { at: Date.now(), row });
	}
	if (!row) return null;
	return { ...caller, userId: ownerId, email: row.email, shard: row.shard, quotaBytes: row.quotaBytes };
}

/**
 * A node of the owner's tree as the member sees it: the shared node is their
 * mount, and the shared node's children hang under the mount. The owner's
 * own nodes pass unchanged.
 */
export function asSeen(access: Pick<Access, "view">, node: Node): Node {
	const view = access.view;
	if (!view) return node;
	if (node.id === view.rootId) {
		if (!view.mount) return { ...node, parent_id: null };
		return { ...node, id: view.mount.id, parent_id: view.mount.parentId, name: view.mount.name, mount: { share_id: view.shareId } };
	}
	if (node.parent_id === view.rootId) return { ...node, parent_id: view.mount?.id ?? node.parent_id };
	return node;
}

/**
 * Where a node may move, as a parent id in the node's owner's tree: within
 * one owner's tree only. A move between trees (into or out of a share) is
 * refused with the reason, since the client can copy instead.
 */
export async function destinationIn(env: Env, caller: Caller, access: Access, parentId: string): Promise<Result<string>> {
	if (access.role === "owner") {
		// Into one of the caller's folders (a mount there is refused by the hub, with the reason).
		const db = shardFor(env, caller);
		if (await findNode(db, caller.userId, parentId)) return { ok: true, value: parentId };
		// Not the caller's node either: let the caller's shares be looked at (ownThenShared).
		if (!(await findNode(db, caller.userId, access.nodeId))) return fail("NOT_FOUND", "node not found");
		return (await accessTo(env, caller, parentId)) ? crossOwner() : fail("NOT_FOUND", "folder not found");
	}
	const parent = await accessTo(env, caller, parentId);
	if (!parent) return fail("NOT_FOUND", "folder not found");
	if (parent.role === "owner" || parent.scope.userId !== access.scope.userId) return crossOwner();
	if (parent.role === "viewer") return fail("FORBIDDEN", "you can view this share but not change it", [{ reason: "read_only" }]);
	return { ok: true, value: parent.nodeId };
}

function crossOwner(): Result<never> {
	return fail(
		"INVALID_REQUEST",
		"a move cannot cross from one person's files to another's; copy it with POST /v1/nodes/{id}/copy, then delete the original",
		[{ reason: "cross_owner_move" }],
	);
}

/** A node with its path, as the caller sees it (a member's path runs through their mount). */
export async function seenWithPath(env: Env, access: Access): Promise<Result<NodeWithPath>> {
	const found = await nodeWithPath(shardFor(env, access.scope), access.scope.userId, access.nodeId);
	if (!found.ok || !access.view) return found;
	const node = found.value;
	const view = access.view;
	const chain = [...node.ancestors, { id: node.id, name: node.name }];
	const below = chain.slice(chain.findIndex((a) => a.id === view.rootId) + 1);
	let prefix: { path: string; ancestors: { id: string; name: string }[] } = { path: "", ancestors: [] };
	if (view.mount) {
		const own = await nodeWithPath(shardFor(env, access.caller), access.caller.userId, view.mount.id);
		if (own.ok) prefix = { path: own.value.path, ancestors: [...own.value.ancestors, { id: view.mount.id, name: view.mount.name }] };
	}
	const { path: _path, ancestors: _ancestors, ...plain } = node;
	const seen = asSeen(access, plain);
	if (below.length === 0) return { ok: true, value: { ...seen, path: prefix.path || "/", ancestors: prefix.ancestors.slice(0, -1) } };
	return {
		ok: true,
		value: {
			...seen,
			path: `${prefix.path === "/" ? "" : prefix.path}/${below.map((b) => b.name).join("/")}`,
			ancestors: [...prefix.ancestors, ...below.slice(0, -1)],
		},
	};
}

/**
 * A member writing into a share fills the owner's quota: the refusal says so
 * without the owner's figures (what they store is not the member's to know).
 */
export function memberQuota<T>(access: Pick<Access, "role">, result: Result<T>): Result<T> {
	if (result.ok || access.role === "owner" || result.error.code !== "QUOTA_EXCEEDED") return result;
	return fail("QUOTA_EXCEEDED", "the owner's storage is full");
}
