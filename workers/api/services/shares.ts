/**
 * Reading shares, and finding the people they name (docs/decisions/0024).
 * Changes go through the owner's hub; these are the reads around them: a
 * share as its owner or a member sees it, and "Shared with me".
 */
import { notFound } from "../../../src/shared/commit/failures";
import { inList } from "../../../src/shared/db/lists";
import { toNode } from "../../../src/shared/db/mappers";
import { users } from "../../../src/shared/db/schema";
import { findNode } from "../../../src/shared/db/tree";
import { fail, ok, type Result } from "../../../src/shared/errors";
import type { Share, ShareRole } from "../../../src/shared/schemas/shares";
import type { Caller } from "../env";
import { accessTo, asSeen, type Scope } from "./access";
import { openDirectory } from "./directory";
import { shardFor } from "./hub";

/** A share located for the caller: in whose tree it is and the caller's part in it. */
export interface LocatedShare {
	id: string;
	nodeId: string;
	createdAt: string;
	owner: Scope;
	yourRole: "owner" | ShareRole;
}

interface ShareRow {
	id: string;
	node_id: string;
	created_at: string;
}

/** The share with this id, if the caller owns it or is in it; otherwise the 404 a random id gets. */
export async function locateShare(env: Env, caller: Caller, shareId: string): Promise<Result<LocatedShare>> {
	const db = shardFor(env, caller);
	const own = await db.$client
		.prepare("SELECT id, node_id, created_at FROM shares WHERE owner_id = ?1 AND id = ?2")
		.bind(caller.userId, shareId)
		.first<ShareRow>();
	if (own) return ok({ id: own.id, nodeId: own.node_id, createdAt: own.created_at, owner: caller, yourRole: "owner" });
	const incoming = await db.$client
		.prepare("SELECT root_id FROM incoming_shares WHERE user_id = ?1 AND share_id = ?2")
		.bind(caller.userId, shareId)
		.first<{ root_id: string }>();
	if (!incoming) return notFound("share");
	// A share whose root is in the trash can still be left.
	const access = await accessTo(env, caller, incoming.root_id, { trashedToo: true });
	if (!access || access.role === "owner") return notFound("share");
	const row = await shardFor(env, access.scope)
		.$client.prepare(
			`SELECT s.id, s.node_id, s.created_at, m.role FROM shares s JOIN share_members m ON m.share_id = s.id
			WHERE s.owner_id = ?1 AND s.id = ?2 AND m.member_id = ?3 AND m.removed_at IS NULL`,
		)
		.bind(access.scope.userId, shareId, caller.userId)
		.first<ShareRow & { role: ShareRole }>();
	if (!row) return notFound("share");
	return ok({ id: row.id, nodeId: row.node_id, createdAt: row.created_at, owner: access.scope, yourRole: row.role });
}

/** A located share in the API's shape: its node as the caller sees it, and its current members. */
export async function shareView(env: Env, caller: Caller, share: LocatedShare): Promise<Result<Share>> {
	const db = shardFor(env, share.owner);
	const [node, members] = await Promise.all([
		findNode(db, share.owner.userId, share.nodeId),
		db.$client
			.prepare(
				"SELECT member_id, email, role, added_at FROM share_members WHERE share_id = ?1 AND removed_at IS NULL ORDER BY added_at, member_id",
			)
			.bind(share.id)
			.all<{ member_id: string; email: string; role: ShareRole; added_at: string }>(),
	]);
	if (!node) return notFound("share");
	let seen = toNode(node);
	if (share.yourRole !== "owner") {
		const access = await accessTo(env, caller, node.id);
		if (access) seen = asSeen(access, seen);
	}
	return ok({
		id: share.id,
		node: seen,
		owner: { id: share.owner.userId, email: share.owner.email },
		members: members.results.map((m) => ({ user: { id: m.member_id, email: m.email }, role: m.role, added_at: m.added_at })),
		your_role: share.yourRole,
		created_at: share.createdAt,
	});
}

/** The caller's own shares (optionally of one node), newest first. */
export async function ownShares(env: Env, caller: Caller, nodeId: string | undefined, limit: number): Promise<Result<Share[]>> {
	const db = shardFor(env, caller);
	const rows = (
		await db.$client
			.prepare(
				nodeId === undefined
					? "SELECT id, node_id, created_at FROM shares WHERE owner_id = ?1 ORDER BY created_at DESC, id DESC LIMIT ?2"
					: "SELECT id, node_id, created_at FROM shares WHERE owner_id = ?1 AND node_id = ?3 LIMIT ?2",
			)
			.bind(...(nodeId === undefined ? [caller.userId, limit] : [caller.userId, limit, nodeId]))
			.all<ShareRow>()
	).results;
	const views: Share[] = [];
	for (const r of rows) {
		const view = await shareView(env, caller, { id: r.id, nodeId: r.node_id, createdAt: r.created_at, owner: caller, yourRole: "owner" });
		if (view.ok) views.push(view.value);
	}
	return ok(views);
}

/** The users these addresses belong to; an address with no account is refused, naming it. */
export async function peopleByEmail(env: Env, emails: string[]): Promise<Result<Map<string, { id: string; email: string }>>> {
	const wanted = [...new Set(emails.map((e) => e.trim().normalize("NFC").toLowerCase()))];
	const rows = await openDirectory(env.DIRECTORY)
		.select({ id: users.id, email: users.email })
		.from(users)
		.where(inList(users.email, wanted));
	const byEmail = new Map(rows.map((r) => [r.email.toLowerCase(), r]));
	const unknown = wanted.filter((e) => !byEmail.has(e));
	if (unknown.length > 0)
		return fail(
			"INVALID_REQUEST",
			`no Drive account uses ${unknown.join(", ")}; ask them to sign up first`,
			unknown.map((email) => ({ field: "members", email, reason: "unknown_user" })),
		);
	return ok(byEmail);
}
