/**
 * Public links (docs/api.md, "Public links"; docs/decisions/0023): rows in the
 * directory, because an anonymous request has only its token and one global
 * lookup must find the link, its owner and the owner's shard. Only the
 * token's SHA-256 is stored. What a link reaches is read from the owner's
 * shard, and uploads commit through the owner's hub.
 */
import { z } from "zod";
import { activityStatement, type ActivityRecord } from "../../../src/shared/activity";
import { fromBase64Url, hashPassword, randomBytes, sha256Hex, toBase64Url, verifyPassword } from "../../../src/shared/crypto";
import { toNode } from "../../../src/shared/db/mappers";
import { Columns } from "../../../src/shared/db/static";
import { links, type LinkRow, type NodeRow } from "../../../src/shared/db/schema";
import { shardAt, type ShardDb } from "../../../src/shared/db/shards";
import { ancestryStatement, findNode, findNodeStatement, readAncestry, readNode, type AncestryRow } from "../../../src/shared/db/tree";
import { fail, ok, type Refusal, type Result } from "../../../src/shared/errors";
import { newId } from "../../../src/shared/ids";
import { redactedCause } from "../../../src/shared/log";
import type { Link, LinkAccess, LinkPage } from "../../../src/shared/schemas/links";
import type { Node } from "../../../src/shared/schemas/nodes";
import type { Caller } from "../env";
import { passwordPeppers } from "./accounts";
import { decodeCursor, pageOf } from "./cursors";
import type { DirectoryDb } from "./directory";
import { shardFor } from "./hub";

/** Random bytes in a link token: 128 bits, 22 base64url characters. */
const TOKEN_BYTES = 16;
const TOKEN_SHAPE = /^[A-Za-z0-9_-]{22}$/;

/** Who may manage links on a node, and where its owner's rows are. */
export interface LinkManager {
	/** The node's owner: links on it are theirs, and so is the activity they cause. */
	ownerId: string;
	ownerShard: number;
	node: NodeRow;
}

/**
 * The one decision of who may create, list, change and revoke links on a
 * node: today only its owner (sharing will extend it to editors). Anyone
 * else gets the same 404 as for an id that names nothing.
 */
export async function linkManagerFor(env: Env, caller: Caller, nodeId: string): Promise<Result<LinkManager>> {
	const node = await findNode(shardFor(env, caller), caller.userId, nodeId);
	if (!node) return fail("NOT_FOUND", "node not found");
	// A mount stands for someone else's files: only their owner opens them to the public.
	if (node.mountShareId !== null) return fail("FORBIDDEN", "only the owner can make links to what they share", [{ reason: "owner_only" }]);
	return ok({ ownerId: caller.userId, ownerShard: caller.shard, node });
}

/** Link ids and other users' links answer this alike. */
function linkNotFound(): Refusal {
	return fail("NOT_FOUND", "link not found");
}

/** access other than `view` needs a folder to upload into. */
function checkAccess(access: LinkAccess, node: NodeRow): Result<void> {
	if (access !== "view" && node.type !== "folder")
		return fail("INVALID_REQUEST", `an ${access} link must point at a folder`, [{ field: "access", reason: "file_target" }]);
	return ok(undefined);
}

/** The API shape of a link row; `token` only once, when it was just made. */
export function toLink(row: LinkRow, created?: { token: string; origin: string }): Link {
	const link: Link = {
		id: row.id,
		node_id: row.nodeId,
		access: row.access,
		expires_at: row.expiresAt,
		has_password: row.passwordHash !== null,
		download_count: row.downloadCount,
		max_downloads: row.maxDownloads,
		created_by: row.createdBy,
		created_at: row.createdAt,
	};
	if (created) {
		link.url = `${created.origin}/v1/l/${created.token}`;
		link.token = created.token;
	}
	return link;
}

/** What a link was created or changed with. */
export interface LinkSettings {
	access?: LinkAccess;
	expires_at?: string | null;
	password?: string | null;
	max_downloads?: number | null;
}

/**
 * Creates a link on a live node the caller may manage. The answer is the
 * only place its token and URL ever appear: only the hash is stored.
 */
export async function createLink(
	env: Env,
	db: DirectoryDb,
	caller: Caller,
	input: LinkSettings & { node_id: string },
	origin: string,
): Promise<Result<Link>> {
	const manager = await linkManagerFor(env, caller, input.node_id);
	if (!manager.ok) return manager;
	// A trashed node cannot get a new link; its 404 reads like a missing one's.
	if (manager.value.node.trashedAt !== null) return fail("NOT_FOUND", "node not found");
	const access = input.access ?? "view";
	const allowed = checkAccess(access, manager.value.node);
	if (!allowed.ok) return allowed;
	const token = toBase64Url(randomBytes(TOKEN_BYTES));
	const row: LinkRow = {
		id: newId("lnk"),
		tokenHash: await hashToken(token),
		ownerId: manager.value.ownerId,
		nodeId: manager.value.node.id,
		createdBy: caller.userId,
		access,
		passwordHash: input.password ? await hashPassword(input.password, { pepper: (await passwordPeppers(env)).current }) : null,
		passwordVersion: 0,
		expiresAt: normalizeTime(input.expires_at),
		maxDownloads: input.max_downloads ?? null,
		downloadCount: 0,
		createdAt: new Date().toISOString(),
		revokedAt: null,
	};
	await db.$client
		.prepare(INSERT_LINK)
		.bind(...LINK_COLUMNS.values(row))
		.run();
	await recordActivity(env, manager.value.ownerShard, linkEvent("link.created", row, caller, { access }));
	return ok(toLink(row, { token, origin }));
}

const LinkCursor = z.object({ i: z.string() });

/** The caller's live links, newest first: on one node (which they must be able to manage), or all they own. */
export async function listLinks(
	env: Env,
	db: DirectoryDb,
	caller: Caller,
	query: { node_id?: string; limit: number; cursor?: string },
): Promise<Result<LinkPage>> {
	const after = query.cursor === undefined ? ok(null) : decodeCursor(query.cursor, LinkCursor);
	if (!after.ok) return after;
	let owner = caller.userId;
	if (query.node_id !== undefined) {
		const manager = await linkManagerFor(env, caller, query.node_id);
		if (!manager.ok) return manager;
		owner = manager.value.ownerId;
	}
	const before = after.value?.i ?? "\uffff";
	const found = await db.$client
		.prepare(LIST_LINKS)
		.bind(owner, query.node_id ?? null, before, query.limit + 1)
		.raw();
	const rows = found.flatMap((values) => LINK_COLUMNS.read(values) ?? []);
	return ok(
		pageOf(
			rows,
			query.limit,
			(row) => toLink(row),
			(last) => ({ i: last.id }),
		),
	);
}

/** A live link the caller may manage, with its node's manager; 404 for anything else. */
export async function managedLink(
	env: Env,
	db: DirectoryDb,
	caller: Caller,
	id: string,
): Promise<Result<{ row: LinkRow; manager: LinkManager }>> {
	const row = await findLinkById(db, id);
	if (!row || row.revokedAt !== null) return linkNotFound();
	const manager = await linkManagerFor(env, caller, row.nodeId);
	if (!manager.ok || manager.value.ownerId !== row.ownerId) return linkNotFound();
	return ok({ row, manager: manager.value });
}

/** Changes a link's settings. A password change (set, replaced or removed) bumps its version, ending every link session. */
export async function updateLink(env: Env, db: DirectoryDb, caller: Caller, id: string, input: LinkSettings): Promise<Result<Link>> {
	const found = await managedLink(env, db, caller, id);
	if (!found.ok) return found;
	const { row, manager } = found.value;
	const next: LinkRow = { ...row };
	if (input.access !== undefined) {
		const allowed = checkAccess(input.access, manager.node);
		if (!allowed.ok) return allowed;
		next.access = input.access;
	}
	if (input.expires_at !== undefined) next.expiresAt = normalizeTime(input.expires_at);
	if (input.max_downloads !== undefined) next.maxDownloads = input.max_downloads;
	if (input.password !== undefined) {
		next.passwordHash =
			input.password === null ? null : await hashPassword(input.password, { pepper: (await passwordPeppers(env)).current });
		next.passwordVersion = row.passwordVersion + 1;
	}
	const updated = await db.$client
		.prepare(UPDATE_LINK)
		.bind(next.access, next.expiresAt, next.maxDownloads, next.passwordHash, next.passwordVersion, row.id)
		.raw();
	if (updated.length === 0) return linkNotFound();
	const changed = Object.entries(input)
		.filter(([, v]) => v !== undefined)
		.map(([k]) => k);
	await recordActivity(env, manager.ownerShard, linkEvent("link.updated", next, caller, { changed }));
	return ok(toLink(next));
}

/** Revokes a link for good: its token answers 404 from now on, and its sessions end. */
export async function revokeLink(env: Env, db: DirectoryDb, caller: Caller, id: string): Promise<Result<void>> {
	const found = await managedLink(env, db, caller, id);
	if (!found.ok) return found;
	const { row, manager } = found.value;
	const revoked = await db.$client.prepare(REVOKE_LINK).bind(new Date().toISOString(), row.id).raw();
	if (revoked.length === 0) return linkNotFound();
	await recordActivity(env, manager.ownerShard, linkEvent("link.revoked", row, caller, null));
	return ok(undefined);
}

// ---- the public side: what a token opens -------------------------------------

/** A live, unexpired link found by its token, with what its owner's rows need. */
export interface OpenLink {
	row: LinkRow;
	ownerShard: number;
	ownerQuotaBytes: number;
	db: ShardDb;
}

/**
 * The link a token opens: 404 for an unknown or revoked token (alike), 410
 * LINK_EXPIRED past its expiry. Nothing about the target is checked yet.
 */
export async function openLink(env: Env, db: DirectoryDb, token: string, now = new Date()): Promise<Result<OpenLink>> {
	if (!TOKEN_SHAPE.test(token) || fromBase64Url(token).length !== TOKEN_BYTES) return linkNotFound();
	const found = await db.$client
		.prepare(FIND_BY_TOKEN)
		.bind(await hashToken(token))
		.raw();
	const [values] = found;
	if (!values) return linkNotFound();
	const row = LINK_COLUMNS.read(values);
	if (!row || row.revokedAt !== null) return linkNotFound();
	if (row.expiresAt !== null && row.expiresAt <= now.toISOString()) return fail("LINK_EXPIRED", "this link has expired");
	const ownerShard = Number(values[LINK_COLUMNS.count]);
	return ok({ row, ownerShard, ownerQuotaBytes: Number(values[LINK_COLUMNS.count + 1]), db: shardAt(env, ownerShard) });
}

/** A link with a password needs a link session from its current password: one refusal for a missing, stale or forged one. */
export function checkSession(link: LinkRow, session: { linkId: string; passwordVersion: number } | null): Result<void> {
	if (link.passwordHash === null) return ok(undefined);
	if (session?.linkId === link.id && session.passwordVersion === link.passwordVersion) return ok(undefined);
	return fail("PASSWORD_REQUIRED", "this link needs its password: POST /v1/l/{token}/unlock, then send Authorization: Link <link_session>");
}

/** Whether `password` is the link's; the caller has already counted the attempt (throttle.ts). */
export async function passwordMatches(env: Env, link: LinkRow, password: string): Promise<boolean> {
	if (link.passwordHash === null) return false;
	return verifyPassword(password, link.passwordHash, (await passwordPeppers(env)).all);
}

/** May this link's holder list and read? `upload` links may not, whatever the id: decided before any lookup. */
export function canView(link: LinkRow): Result<void> {
	if (link.access === "upload")
		return fail("FORBIDDEN", "an upload link can add files, and neither list nor read anything", [{ reason: "link_access" }]);
	return ok(undefined);
}

/** The link's target, live (not trashed, not purged); 404 otherwise. */
export async function linkRoot(open: OpenLink): Promise<Result<NodeRow>> {
	const node = await findNode(open.db, open.row.ownerId, open.row.nodeId);
	if (!node || node.trashedAt !== null) return fail("NOT_FOUND", "node not found");
	return ok(node);
}

/**
 * The node `id` if it is in the link root's live subtree (the root itself
 * included): its ancestry must pass through the root, and nothing from the
 * root down may be in the trash. Anything else is 404, like a random id.
 */
export async function nodeInLink(open: OpenLink, id: string): Promise<Result<NodeRow>> {
	const { db, row } = open;
	// One round trip: both reads in one batch.
	const [found, path] = await db.$client.batch([findNodeStatement(db, row.ownerId, id), ancestryStatement(db, row.ownerId, id)]);
	const [first] = (found?.results ?? []) as Record<string, unknown>[];
	const node = first ? readNode(first) : null;
	const chain = readAncestry((path?.results ?? []) as AncestryRow[]);
	const from = chain.findIndex((entry) => entry.id === row.nodeId);
	if (!node || node.trashedAt !== null || from < 0 || chain.slice(from).some((entry) => entry.trashed))
		return fail("NOT_FOUND", "node not found");
	return ok(node);
}

/** A node as a link's holder sees it: nothing that points outside the link (the root's parent, a conflict's winner). */
export function linkNode(node: Node, rootId: string): Node {
	return { ...node, parent_id: node.id === rootId ? null : node.parent_id, conflict_of: null };
}

/** {@link linkNode} of a row. */
export function linkNodeOf(row: NodeRow, rootId: string): Node {
	return linkNode(toNode(row), rootId);
}

/**
 * Counts one download, atomically: refused (410 LINK_EXPIRED, reason
 * max_downloads) once the limit is reached, however many arrive at once.
 */
export async function countDownload(db: DirectoryDb, link: LinkRow, now = new Date()): Promise<Result<void>> {
	const counted = await db.$client.prepare(COUNT_DOWNLOAD).bind(link.id, now.toISOString()).raw();
	if (counted.length === 0) return fail("LINK_EXPIRED", "this link has reached its download limit", [{ reason: "max_downloads" }]);
	return ok(undefined);
}

/**
 * Writes one activity row into the link owner's shard. Link rows live in the
 * directory and a D1 batch cannot span two databases, so the row follows the
 * directory write instead of sharing its batch: a failure here leaves a
 * change without its row (logged), never a row without its change.
 */
export async function recordActivity(env: Env, ownerShard: number, record: ActivityRecord): Promise<void> {
	try {
		await activityStatement(shardAt(env, ownerShard).$client, record).run();
	} catch (err) {
		console.error(JSON.stringify({ activity: record.event, link_id: record.linkId, error: redactedCause(err) }));
	}
}

/** An owner-side link event (created, updated, revoked) by a signed-in caller. */
function linkEvent(
	event: "link.created" | "link.updated" | "link.revoked",
	row: LinkRow,
	caller: Caller,
	details: Record<string, unknown> | null,
): ActivityRecord {
	return {
		userId: row.ownerId,
		event,
		actor: { type: "user", id: caller.userId, device: caller.deviceName },
		nodeId: row.nodeId,
		linkId: row.id,
		details,
	};
}

/** An event caused by a link's holder (downloaded, password_failed, locked). */
export function holderEvent(
	event: "link.downloaded" | "link.password_failed" | "link.locked",
	row: LinkRow,
	nodeId?: string,
): ActivityRecord {
	return { userId: row.ownerId, event, actor: { type: "link", id: row.id }, nodeId: nodeId ?? row.nodeId, linkId: row.id };
}

/** The stored form of a token. */
function hashToken(token: string): Promise<string> {
	return sha256Hex(token);
}

function normalizeTime(value: string | null | undefined): string | null {
	return value == null ? null : new Date(value).toISOString();
}

async function findLinkById(db: DirectoryDb, id: string): Promise<LinkRow | null> {
	const [values] = await db.$client.prepare(FIND_BY_ID).bind(id).raw();
	return values ? LINK_COLUMNS.read(values) : null;
}

const LINK_COLUMNS = new Columns(links);
const INSERT_LINK = `INSERT INTO links (${LINK_COLUMNS.names()}) VALUES (${LINK_COLUMNS.slots()})`;
const FIND_BY_ID = `SELECT ${LINK_COLUMNS.list("l")} FROM links l WHERE l.id = ?1`;
const FIND_BY_TOKEN = `SELECT ${LINK_COLUMNS.list("l")}, u.shard, u.quota_bytes FROM links l JOIN users u ON u.id = l.owner_id WHERE l.token_hash = ?1`;
// ?2 null lists every node's links; ?3 is the keyset (ids are time-ordered, newest first).
const LIST_LINKS = `SELECT ${LINK_COLUMNS.list("l")} FROM links l
	WHERE l.owner_id = ?1 AND (?2 IS NULL OR l.node_id = ?2) AND l.revoked_at IS NULL AND l.id < ?3 ORDER BY l.id DESC LIMIT ?4`;
const UPDATE_LINK = `UPDATE links SET access = ?1, expires_at = ?2, max_downloads = ?3, password_hash = ?4, password_version = ?5
	WHERE id = ?6 AND revoked_at IS NULL RETURNING id`;
const REVOKE_LINK = `UPDATE links SET revoked_at = ?1, password_version = password_version + 1 WHERE id = ?2 AND revoked_at IS NULL RETURNING id`;
// One statement decides: no two downloads can both take the last one.
const COUNT_DOWNLOAD = `UPDATE links SET download_count = download_count + 1
	WHERE id = ?1 AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > ?2)
		AND (max_downloads IS NULL OR download_count < max_downloads)
	RETURNING download_count`;
