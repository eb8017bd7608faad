/**
 * UserHub: one Durable Object per user. It is the only writer of a user's
 * tree: every change (new file, new version, folder, rename, move, trash,
 * restore) is applied here, one at a time, in a D1 batch that also appends
 * the change to the journal under the next sequence number. Folder creations
 * waiting together share one batch (group commit, docs/decisions/0010).
 *
 * Why explicit serialization: a Durable Object's input gate only holds while
 * it awaits its own storage. While a commit awaits D1, another RPC call can
 * start, so commits wait in `#jobs`. The versions_lineage unique index is
 * the second guard: even if two writers existed, a stale base cannot land.
 */
import { DurableObject } from "cloudflare:workers";
import { and, eq, sql } from "drizzle-orm";
import { fail, type Failure, type Result } from "../../src/shared/errors";
import { newId } from "../../src/shared/ids";
import { checkName, nameKey, splitExtension } from "../../src/shared/names";
import { nodes, uploadBlocks, uploads, versions, type NodeRow, type VersionRow } from "../../src/shared/db/schema";
import { findUpload, isLive, missingBlocks } from "../../src/shared/db/uploads";
import { runBatch, type BatchQuery } from "../../src/shared/db/batch";
import { shardDb, toNode, toVersion, type BlockRef } from "../../src/shared/db/rows";
import {
	ancestry,
	bytesUsed,
	findFileOfVersion,
	findLiveChild,
	findNode,
	findNodeAndLiveChild,
	findRoot,
	findVersion,
	openShard,
	type ShardDb,
} from "../../src/shared/db/tree";
import { encodeJournalCursor } from "../../src/shared/journal";
import type { CommitResult, Node } from "../../src/shared/schemas/nodes";
import { ClientMessage, type ServerMessage } from "../../src/shared/schemas/sync";
import { randomBytes, sha256Hex, toBase64Url } from "../../src/shared/crypto";

/** Whose hub this is and where their rows live; sent with every call. */
export interface HubScope {
	userId: string;
	shard: number;
}

/** The device making a change, for conflicted-copy names and version records. */
export interface Actor {
	deviceId: string | null;
	deviceName: string;
}

export interface CommitFileInput {
	parentId: string;
	name: string;
	size: number;
	contentHash: string;
	/** The blocks in file order, or the upload whose block list they are. */
	blocks: BlockRef[] | { uploadId: string; count: number };
	/** The head the client edited (If-Match or base_version_id); null for "whatever is there". */
	baseVersionId: string | null;
	onConflict: "copy" | "fail";
	quotaBytes: number;
	actor: Actor;
}

export type ChangeKind = "created" | "updated" | "moved" | "trashed" | "restored" | "deleted";

/** A sync ticket as stored in the hub's own storage until it is used or expires. */
interface TicketRecord {
	deviceId: string;
	shard: number;
	expiresAt: number;
}

/** What a hibernating sync socket remembers about itself. */
interface SocketAttachment {
	deviceId: string;
	userId: string;
}

interface Waiter {
	afterSeq: number;
	wake: () => void;
}

/** A queued call: any serialized task, or a folder creation that may share a batch. */
type Job = { kind: "task"; run: () => Promise<void> } | FolderJob;

interface FolderJob {
	kind: "folder";
	scope: HubScope;
	parentId: string;
	/** Already checked and in NFC. */
	name: string;
	resolve: (result: Result<{ node: Node }>) => void;
	reject: (err: unknown) => void;
}

// Statements every commit runs, as static SQL bound directly: building them
// through drizzle's query builder or sql template cost more CPU than running
// them (folder creations went from 292/s to about 400/s).
/** ?1 id, ?2 user, ?3 name, ?4 name key, ?5 now, ?6 parent: a no-op unless the parent is a live folder and the name is free. */
const INSERT_FOLDER_UNDER_LIVE_PARENT = `INSERT OR IGNORE INTO nodes (id, user_id, parent_id, type, name, name_key, size, created_at, modified_at)
	SELECT ?1, ?2, id, 'folder', ?3, ?4, 0, ?5, ?5
	FROM nodes WHERE user_id = ?2 AND id = ?6 AND type = 'folder' AND trashed_at IS NULL`;
/** ?1 user, ?2 seq, ?3 kind, ?4 node id, ?5 node JSON, ?6 now: one change's journal entry. */
const JOURNAL_ENTRY = "INSERT INTO changes (user_id, seq, kind, node_id, node, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)";
/** ?1 user, ?2 the seq floor, ?3 node id, ?4 node JSON, ?5 now: the next seq, only if the row went in. */
const JOURNAL_IF_INSERTED = `INSERT INTO changes (user_id, seq, kind, node_id, node, created_at)
	SELECT ?1, MAX(?2, COALESCE((SELECT MAX(seq) FROM changes WHERE user_id = ?1), 0)) + 1, 'created', ?3, ?4, ?5
	WHERE EXISTS (SELECT 1 FROM nodes WHERE user_id = ?1 AND id = ?3)
	RETURNING seq`;

/** At most this many folder creations share one batch (two statements each). */
const FOLDERS_PER_BATCH = 50;

/** Sync tickets live this long (seconds); they are single-use. */
export const TICKET_TTL_SECONDS = 60;

/** At most this many `changes` frames per second reach a device; bursts coalesce. */
const FRAMES_PER_SECOND = 4;

/** Above this many waiting long polls, answers carry a backoff hint. */
const LONGPOLL_BACKOFF_THRESHOLD = 200;

// Blocks per INSERT ... SELECT FROM json_each: one bound parameter carries
// them all, which sidesteps D1's 100-parameters-per-statement limit.
const BLOCKS_PER_STATEMENT = 2000;

export class UserHub extends DurableObject<Env> {
	/** Commits waiting their turn; see #drain. */
	#jobs: Job[] = [];
	#draining = false;
	#seq: number | null = null;
	/** Bytes the user's files take (trash included), loaded on first need. */
	#usedBytes: number | null = null;
	#userId: string | null = null;
	#waiters = new Set<Waiter>();
	#lastBroadcastAt = 0;
	#broadcastTimer: ReturnType<typeof setTimeout> | null = null;

	constructor(ctx: DurableObjectState, env: Env) {
		super(ctx, env);
		// Answered by the runtime without waking the object (hibernation).
		ctx.setWebSocketAutoResponse(new WebSocketRequestResponsePair("ping", "pong"));
	}

	/** Creates the user's root folder if it does not exist yet; returns it. */
	async ensureRoot(scope: HubScope): Promise<Result<{ node: Node }>> {
		return this.#serialize(async () => {
			const db = this.#db(scope);
			const existing = await findRoot(db, scope.userId);
			if (existing) return { ok: true, node: toNode(existing) };
			const now = new Date().toISOString();
			const row: NodeRow = {
				id: newId("nod"),
				userId: scope.userId,
				parentId: null,
				type: "folder",
				name: "",
				nameKey: "",
				size: 0,
				headVersionId: null,
				contentHash: null,
				createdAt: now,
				modifiedAt: now,
				trashedAt: null,
				trashRootId: null,
				conflictOf: null,
			};
			await db.insert(nodes).values(row);
			return { ok: true, node: toNode(row) };
		});
	}

	/**
	 * Creates a folder. Folder creations waiting in line together are
	 * committed in one D1 batch (#createFolders): each still gets its own
	 * checks, answer and sequence number, in arrival order.
	 */
	async createFolder(scope: HubScope, input: { parentId: string; name: string }): Promise<Result<{ node: Node }>> {
		const name = checkName(input.name);
		if (!name.ok) return fail("INVALID_REQUEST", name.reason, [{ field: "name", message: name.reason }]);
		return new Promise((resolve, reject) => {
			this.#jobs.push({ kind: "folder", scope, parentId: input.parentId, name: name.name, resolve, reject });
			void this.#drain();
		});
	}

	/**
	 * Commits file content whose blocks are already stored: a new file, or a
	 * new version of the file with that name. A stale base never overwrites:
	 * it becomes a conflicted copy, or VERSION_CONFLICT when asked to fail.
	 */
	async commitFile(scope: HubScope, input: CommitFileInput): Promise<Result<{ created: boolean } & CommitResult>> {
		return this.#serialize(() => this.#commitContent(this.#db(scope), scope, input));
	}

	/**
	 * Commits an upload session or tus upload whose blocks have all arrived.
	 * Idempotent: committing a committed upload answers the same result, so a
	 * client whose answer was lost can simply retry.
	 */
	async commitUpload(
		scope: HubScope,
		input: { uploadId: string; contentHash: string; quotaBytes: number },
	): Promise<Result<{ created: boolean } & CommitResult>> {
		return this.#serialize(async () => {
			const db = this.#db(scope);
			const upload = await findUpload(db, scope.userId, input.uploadId);
			if (!upload) return notFound("upload");
			if (upload.committedVersionId !== null) return this.#committedResult(db, scope, upload.committedVersionId);
			if (!isLive(upload)) return notFound("upload");
			if (upload.moreBlocks)
				return fail("INVALID_REQUEST", "the block list is not complete: finish it with more_blocks: false, then commit");
			const missing = await missingBlocks(db, scope.userId, upload.id);
			if (missing.length > 0) return fail("MISSING_BLOCKS", `${missing.length} block(s) have not been uploaded`, missing);
			// The list must tile the file: indexes 0..n-1, sizes adding up to its size.
			const [list] = await db.all<{ n: number; total: number; last: number }>(
				sql`SELECT COUNT(*) AS n, COALESCE(SUM(size), 0) AS total, COALESCE(MAX(idx), -1) AS last FROM upload_blocks WHERE upload_id = ${upload.id}`,
			);
			const count = list?.n ?? 0;
			if (list?.total !== upload.size || list.last !== count - 1)
				return fail("INVALID_REQUEST", "the upload's block list does not add up to its size; start a new upload");
			return this.#commitContent(db, scope, {
				parentId: upload.parentId,
				name: upload.name,
				size: upload.size,
				contentHash: input.contentHash,
				blocks: { uploadId: upload.id, count },
				baseVersionId: upload.baseVersionId,
				onConflict: upload.onConflict,
				quotaBytes: input.quotaBytes,
				actor: { deviceId: upload.deviceId, deviceName: upload.deviceName },
			});
		});
	}

	async #committedResult(db: ShardDb, scope: HubScope, versionId: string): Promise<Result<{ created: boolean } & CommitResult>> {
		const version = await findVersion(db, scope.userId, versionId);
		const node = version ? await findNode(db, scope.userId, version.nodeId) : null;
		if (!version || !node) return notFound("upload");
		return { ok: true, created: version.parentVersionId === "", node: toNode(node), version: toVersion(version), conflict: null };
	}

	async #commitContent(db: ShardDb, scope: HubScope, input: CommitFileInput): Promise<Result<{ created: boolean } & CommitResult>> {
		const name = checkName(input.name);
		if (!name.ok) return fail("INVALID_REQUEST", name.reason, [{ field: "name", message: name.reason }]);
		// The folder and whatever lives at the name, in one round trip.
		const target = await findNodeAndLiveChild(db, scope.userId, input.parentId, name.key);
		let parent = asLiveFolder(target.node);
		let existing = target.child;
		if (!parent.ok && input.baseVersionId !== null) {
			// An edit whose folder was deleted meanwhile still wins: it lands in
			// the nearest folder above that survives (docs/decisions/0009).
			const refuge = await this.#nearestLiveFolder(db, scope, input.parentId);
			if (refuge) {
				parent = { ok: true, row: refuge };
				existing = await findLiveChild(db, scope.userId, refuge.id, name.key);
			}
		}
		if (!parent.ok) return parent;
		const now = new Date().toISOString();
		// For an edit whose base is not the head of what lives at the name: the
		// file it edited, wherever it is now and even if it is in the trash.
		const edited =
			input.baseVersionId !== null && existing?.headVersionId !== input.baseVersionId
				? await findFileOfVersion(db, scope.userId, input.baseVersionId)
				: null;
		if (edited && edited.trashedAt === null && edited.id !== existing?.id && edited.parentId !== null) {
			// An edit follows its file: if the file the client edited was renamed
			// or moved meanwhile, the edit goes to it where it is now, never to
			// whatever else has the name now (docs/decisions/0009).
			if (edited.headVersionId === input.baseVersionId) return this.#newVersion(db, scope, input, edited, now);
			if (input.onConflict === "fail") return versionConflict(input.baseVersionId, edited);
			return this.#conflictedCopy(db, scope, input, edited.parentId, edited.name, edited, now);
		}
		if (existing && existing.type === "folder") return nameTaken(name.name);

		if (existing) {
			const stale = input.baseVersionId !== null && input.baseVersionId !== existing.headVersionId;
			if (!stale) return this.#newVersion(db, scope, input, existing, now);
			if (input.onConflict === "fail") return versionConflict(input.baseVersionId, existing);
			return this.#conflictedCopy(db, scope, input, parent.row.id, name.name, existing, now);
		}

		// Nothing lives at this name. If the client edited a version whose
		// file was deleted meanwhile, the edit wins: the file comes back.
		if (edited && edited.trashedAt !== null) {
			// If the deleted file had moved on too, keep its newer head (in the
			// trash, restorable) and add the edit beside, as a conflicted copy.
			if (edited.headVersionId !== input.baseVersionId)
				return this.#conflictedCopy(db, scope, input, parent.row.id, name.name, edited, now);
			const revived: NodeRow = {
				...edited,
				parentId: parent.row.id,
				name: name.name,
				nameKey: name.key,
				trashedAt: null,
				trashRootId: null,
			};
			return this.#newVersion(db, scope, input, revived, now, "restored");
		}
		const quota = await this.#checkQuota(db, scope, input.size, input.quotaBytes);
		if (!quota.ok) return quota;
		const row = newNodeRow(scope.userId, parent.row.id, "file", name.name, now);
		return this.#writeVersion(db, scope, input, row, true, now, null);
	}

	/** The upload as the next version of `file` (its size replaces the file's in the quota). */
	async #newVersion(
		db: ShardDb,
		scope: HubScope,
		input: CommitFileInput,
		file: NodeRow,
		now: string,
		kind?: ChangeKind,
	): Promise<Result<{ created: boolean } & CommitResult>> {
		const quota = await this.#checkQuota(db, scope, input.size - file.size, input.quotaBytes);
		if (!quota.ok) return quota;
		return this.#writeVersion(db, scope, input, file, false, now, null, kind);
	}

	/** The upload as a new file in `folderId` that lost against `winner`: named for the device and time, never replacing anything. */
	async #conflictedCopy(
		db: ShardDb,
		scope: HubScope,
		input: CommitFileInput,
		folderId: string,
		name: string,
		winner: NodeRow,
		now: string,
	): Promise<Result<{ created: boolean } & CommitResult>> {
		const quota = await this.#checkQuota(db, scope, input.size, input.quotaBytes);
		if (!quota.ok) return quota;
		const copyName = await this.#freeName(db, scope.userId, folderId, conflictedCopyName(name, input.actor.deviceName, new Date(now)));
		const row: NodeRow = { ...newNodeRow(scope.userId, folderId, "file", copyName, now), conflictOf: winner.id };
		return this.#writeVersion(db, scope, input, row, true, now, { node_id: winner.id, reason: "stale_base" });
	}

	/** Renames and/or moves a node. A folder can never move into itself or its subtree. */
	async updateNode(scope: HubScope, input: { nodeId: string; name?: string; parentId?: string }): Promise<Result<{ node: Node }>> {
		return this.#serialize(async () => {
			const db = this.#db(scope);
			const node = await findNode(db, scope.userId, input.nodeId);
			if (!node) return notFound("node");
			if (node.parentId === null) return fail("INVALID_REQUEST", "the root folder cannot be renamed or moved");
			if (node.trashedAt !== null) return fail("INVALID_REQUEST", "the node is in the trash; restore it first");
			let name = node.name;
			let key = node.nameKey;
			if (input.name !== undefined) {
				const checked = checkName(input.name);
				if (!checked.ok) return fail("INVALID_REQUEST", checked.reason, [{ field: "name", message: checked.reason }]);
				name = checked.name;
				key = checked.key;
			}
			const parentId = input.parentId ?? node.parentId;
			if (parentId !== node.parentId) {
				const parent = await this.#liveFolder(db, scope, parentId);
				if (!parent.ok) return parent;
				// Moves are serialized per user here, so this check cannot race
				// another move into a cycle.
				const chain = await ancestry(db, scope.userId, parentId);
				if (chain.some((a) => a.id === node.id)) {
					return fail("INVALID_REQUEST", "a folder cannot move into itself or one of its subfolders", [{ field: "parent_id" }]);
				}
			}
			if (name === node.name && parentId === node.parentId) return { ok: true, node: toNode(node) };
			const clash = await findLiveChild(db, scope.userId, parentId, key);
			if (clash && clash.id !== node.id) return nameTaken(name);
			const now = new Date().toISOString();
			// Renaming a conflicted copy is how a user says "keep both": it resolves it.
			const conflictOf = name !== node.name ? null : node.conflictOf;
			const row: NodeRow = { ...node, name, nameKey: key, parentId, modifiedAt: now, conflictOf };
			await this.#apply(
				db,
				scope,
				[
					db
						.update(nodes)
						.set({ name, nameKey: key, parentId, modifiedAt: now, conflictOf })
						.where(and(eq(nodes.userId, scope.userId), eq(nodes.id, node.id))),
				],
				"moved",
				row,
			);
			return { ok: true, node: toNode(row) };
		});
	}

	/** Moves a node to the trash; a folder takes its live subtree with it. Idempotent. */
	async trashNode(scope: HubScope, input: { nodeId: string }): Promise<Result<{ node: Node }>> {
		return this.#serialize(async () => {
			const db = this.#db(scope);
			const node = await findNode(db, scope.userId, input.nodeId);
			if (!node) return notFound("node");
			if (node.parentId === null) return fail("INVALID_REQUEST", "the root folder cannot be deleted");
			if (node.trashedAt !== null) return { ok: true, node: toNode(node) };
			const now = new Date().toISOString();
			const trashSubtree = db.run(sql`
				WITH RECURSIVE subtree(id) AS (
					SELECT ${node.id}
					UNION ALL
					SELECT n.id FROM nodes n JOIN subtree ON n.parent_id = subtree.id
					WHERE n.user_id = ${scope.userId} AND n.trashed_at IS NULL
				)
				UPDATE nodes SET trashed_at = ${now}, trash_root_id = ${node.id},
					-- deleting a conflicted copy resolves it
					conflict_of = CASE WHEN id = ${node.id} THEN NULL ELSE conflict_of END
				WHERE user_id = ${scope.userId} AND id IN (SELECT id FROM subtree)`);
			const row: NodeRow = { ...node, trashedAt: now, trashRootId: node.id, conflictOf: null };
			await this.#apply(db, scope, [trashSubtree], "trashed", row);
			return { ok: true, node: toNode(row) };
		});
	}

	/**
	 * Restores a trashed node and whatever was trashed together with it. It
	 * goes back to its folder if that folder is live, else to the root; a
	 * name now taken there gets a " (restored)" suffix rather than failing.
	 */
	async restoreNode(scope: HubScope, input: { nodeId: string }): Promise<Result<{ node: Node }>> {
		return this.#serialize(async () => {
			const db = this.#db(scope);
			const node = await findNode(db, scope.userId, input.nodeId);
			if (!node) return notFound("node");
			if (node.trashedAt === null || node.trashRootId === null) return { ok: true, node: toNode(node) };
			let parentId = node.parentId;
			const parent = parentId === null ? null : await findNode(db, scope.userId, parentId);
			if (!parent || parent.trashedAt !== null) {
				const root = await findRoot(db, scope.userId);
				if (!root) return notFound("root folder");
				parentId = root.id;
			}
			if (parentId === null) return notFound("parent folder");
			let name = node.name;
			if (await findLiveChild(db, scope.userId, parentId, node.nameKey)) {
				const [stem, ext] = splitExtension(node.name);
				name = await this.#freeName(db, scope.userId, parentId, fitName(stem, ` (restored)${ext}`));
			}
			const now = new Date().toISOString();
			const moveBack = db
				.update(nodes)
				.set({ parentId, name, nameKey: nameKey(name), modifiedAt: now })
				.where(and(eq(nodes.userId, scope.userId), eq(nodes.id, node.id)));
			// The subtree is exactly the descendants trashed by the same delete.
			const restoreSubtree = db.run(sql`
				WITH RECURSIVE subtree(id) AS (
					SELECT ${node.id}
					UNION ALL
					SELECT n.id FROM nodes n JOIN subtree ON n.parent_id = subtree.id
					WHERE n.user_id = ${scope.userId} AND n.trash_root_id = ${node.trashRootId}
				)
				UPDATE nodes SET trashed_at = NULL, trash_root_id = NULL
				WHERE user_id = ${scope.userId} AND id IN (SELECT id FROM subtree)`);
			const row: NodeRow = { ...node, parentId, name, nameKey: nameKey(name), modifiedAt: now, trashedAt: null, trashRootId: null };
			await this.#apply(db, scope, [moveBack, restoreSubtree], "restored", row);
			return { ok: true, node: toNode(row) };
		});
	}

	/** Clears a conflicted copy's mark without renaming or deleting it. Idempotent. */
	async resolveConflict(scope: HubScope, input: { nodeId: string }): Promise<Result<{ node: Node }>> {
		return this.#serialize(async () => {
			const db = this.#db(scope);
			const node = await findNode(db, scope.userId, input.nodeId);
			if (!node) return notFound("node");
			if (node.conflictOf === null) return { ok: true, node: toNode(node) };
			const now = new Date().toISOString();
			const row: NodeRow = { ...node, conflictOf: null, modifiedAt: now };
			await this.#apply(
				db,
				scope,
				[
					db
						.update(nodes)
						.set({ conflictOf: null, modifiedAt: now })
						.where(and(eq(nodes.userId, scope.userId), eq(nodes.id, node.id))),
				],
				"updated",
				row,
			);
			return { ok: true, node: toNode(row) };
		});
	}

	/** The sequence number of the user's latest change (0 before any). */
	async latestSeq(scope: HubScope): Promise<number> {
		return this.#currentSeq(this.#db(scope), scope);
	}

	/**
	 * Long poll: resolves as soon as the journal moves past `afterSeq`, or
	 * with `changes: false` after `timeoutMs`. Commits wake waiters directly;
	 * nothing polls.
	 */
	async waitForChange(scope: HubScope, afterSeq: number, timeoutMs: number): Promise<{ changes: boolean; backoff?: number }> {
		const backoff = this.#waiters.size >= LONGPOLL_BACKOFF_THRESHOLD ? 5 + Math.floor(Math.random() * 10) : undefined;
		const answer = (changes: boolean) => (backoff === undefined ? { changes } : { changes, backoff });
		if ((await this.#currentSeq(this.#db(scope), scope)) > afterSeq) return answer(true);
		return new Promise((resolve) => {
			const waiter: Waiter = {
				afterSeq,
				wake: () => {
					clearTimeout(timer);
					this.#waiters.delete(waiter);
					resolve(answer(true));
				},
			};
			const timer = setTimeout(() => {
				this.#waiters.delete(waiter);
				resolve(answer(false));
			}, timeoutMs);
			this.#waiters.add(waiter);
		});
	}

	/** Issues a single-use ticket that lets `deviceId` open the sync WebSocket. */
	async issueTicket(scope: HubScope, deviceId: string): Promise<{ ticket: string; expiresIn: number }> {
		const ticket = `${scope.userId}.${toBase64Url(randomBytes(32))}`;
		const now = Date.now();
		const record: TicketRecord = { deviceId, shard: scope.shard, expiresAt: now + TICKET_TTL_SECONDS * 1000 };
		// Only the ticket's hash is stored; drop expired ones while here.
		const stale = [...(await this.ctx.storage.list<TicketRecord>({ prefix: "ticket:" }))]
			.filter(([, r]) => r.expiresAt <= now)
			.map(([k]) => k);
		if (stale.length > 0) await this.ctx.storage.delete(stale);
		await this.ctx.storage.put(`ticket:${await sha256Hex(ticket)}`, record);
		return { ticket, expiresIn: TICKET_TTL_SECONDS };
	}

	/** Signs a device's open sync sockets out (logout). */
	async disconnectDevice(deviceId: string): Promise<void> {
		for (const ws of this.ctx.getWebSockets(deviceId)) ws.close(4001, "signed out");
	}

	/** Only the WebSocket upgrade of /v1/sync/ws arrives here. */
	override async fetch(request: Request): Promise<Response> {
		if (request.headers.get("Upgrade")?.toLowerCase() !== "websocket")
			return errorJson(426, "INVALID_REQUEST", "expected a WebSocket upgrade");
		const ticket = new URL(request.url).searchParams.get("ticket") ?? "";
		const userId = ticket.split(".")[0] ?? "";
		const key = `ticket:${await sha256Hex(ticket)}`;
		const record = await this.ctx.storage.get<TicketRecord>(key);
		if (!record) return errorJson(401, "UNAUTHENTICATED", "the ticket is unknown, used or expired");
		await this.ctx.storage.delete(key);
		if (record.expiresAt <= Date.now()) return errorJson(401, "UNAUTHENTICATED", "the ticket is unknown, used or expired");
		const scope = { userId, shard: record.shard };
		const seq = await this.#currentSeq(this.#db(scope), scope);
		const pair = new WebSocketPair();
		const [client, server] = [pair[0], pair[1]];
		this.ctx.acceptWebSocket(server, [record.deviceId]);
		server.serializeAttachment({ deviceId: record.deviceId, userId } satisfies SocketAttachment);
		server.send(JSON.stringify({ type: "hello", cursor: encodeJournalCursor({ userId, seq }) } satisfies ServerMessage));
		return new Response(null, { status: 101, webSocket: client });
	}

	override async webSocketMessage(ws: WebSocket, message: string | ArrayBuffer): Promise<void> {
		try {
			let parsed: ReturnType<typeof ClientMessage.safeParse> | null = null;
			if (typeof message === "string") {
				try {
					parsed = ClientMessage.safeParse(JSON.parse(message));
				} catch {
					parsed = null;
				}
			}
			if (!parsed?.success) {
				ws.send(
					JSON.stringify({ type: "error", message: 'unknown message; send {"type":"ping"} or the text "ping"' } satisfies ServerMessage),
				);
				return;
			}
			if (parsed.data.type === "ping") ws.send(JSON.stringify({ type: "pong" } satisfies ServerMessage));
		} catch (err) {
			console.error("webSocketMessage", err);
		}
	}

	override async webSocketClose(ws: WebSocket, code: number, reason: string): Promise<void> {
		try {
			// 1005 and 1006 are reserved: they may be received but never sent.
			ws.close(code === 1005 || code === 1006 ? 1000 : code, reason);
		} catch (err) {
			console.error("webSocketClose", err);
		}
	}

	override async webSocketError(_ws: WebSocket, error: unknown): Promise<void> {
		console.error("webSocketError", error);
	}

	// ---- helpers -----------------------------------------------------------

	#serialize<T>(task: () => Promise<T>): Promise<T> {
		return new Promise((resolve, reject) => {
			// Promise.resolve().then: a task that throws before its first await
			// still rejects its own caller, and never escapes into #drain.
			this.#jobs.push({ kind: "task", run: () => Promise.resolve().then(task).then(resolve, reject) });
			void this.#drain();
		});
	}

	/**
	 * Runs the queued jobs one at a time, in arrival order. Consecutive folder
	 * creations run as one group: a commit holds the queue for its D1 round
	 * trip, so one round trip for many is what lifts a user's commit rate.
	 */
	async #drain(): Promise<void> {
		if (this.#draining) return;
		this.#draining = true;
		try {
			for (let job = this.#jobs.shift(); job !== undefined; job = this.#jobs.shift()) {
				if (job.kind === "task") {
					await job.run();
					continue;
				}
				const group = [job];
				while (group.length < FOLDERS_PER_BATCH && this.#jobs[0]?.kind === "folder") group.push(this.#jobs.shift() as FolderJob);
				try {
					await this.#createFolders(group);
				} catch (err) {
					for (const j of group) j.reject(err);
				}
			}
		} finally {
			this.#draining = false;
		}
	}

	/**
	 * Creates the group's folders in one batch. Each row is inserted only
	 * under a live parent folder and only if its name is free (INSERT OR
	 * IGNORE against the nodes_live_names index), and its journal entry only
	 * if its row went in, numbered in SQL after the entries before it, so a
	 * refused creation neither stops the others nor leaves a gap in the
	 * journal. Refusals are explained afterwards, one read each.
	 */
	async #createFolders(group: FolderJob[]): Promise<void> {
		const scope = group[0]!.scope;
		const db = this.#db(scope);
		const floor = await this.#currentSeq(db, scope);
		const now = new Date().toISOString();
		const rows = group.map((job) => newNodeRow(scope.userId, job.parentId, "folder", job.name, now));
		const d1 = db.$client;
		const statements = rows.flatMap((row) => [
			d1.prepare(INSERT_FOLDER_UNDER_LIVE_PARENT).bind(row.id, row.userId, row.name, row.nameKey, now, row.parentId),
			d1.prepare(JOURNAL_IF_INSERTED).bind(scope.userId, floor, row.id, JSON.stringify(toNode(row)), now),
		]);
		let results: D1Result[];
		try {
			results = await d1.batch(statements);
		} catch (err) {
			this.#seq = null;
			throw err;
		}
		// Answer and announce every folder that went in before explaining any
		// refusal: a failed read while explaining must not leave the counter
		// behind the journal or fail creations that were committed.
		let last = floor;
		const refused: number[] = [];
		for (const [i, job] of group.entries()) {
			const seq = (results[2 * i + 1]?.results[0] as { seq?: number } | undefined)?.seq;
			if (typeof seq !== "number") {
				refused.push(i);
				continue;
			}
			last = Math.max(last, seq);
			job.resolve({ ok: true, node: toNode(rows[i]!) });
		}
		if (last > floor) {
			this.#seq = last;
			this.#userId = scope.userId;
			this.#announce(last);
		}
		for (const i of refused) {
			// Not inserted: the parent does not qualify, or the name is taken
			// (perhaps by an earlier folder of this very group).
			const job = group[i]!;
			try {
				const target = await findNodeAndLiveChild(db, scope.userId, job.parentId, rows[i]!.nameKey);
				const parent = asLiveFolder(target.node);
				if (!parent.ok) job.resolve(parent);
				else if (target.child) job.resolve(nameTaken(job.name));
				else job.reject(new Error(`folder ${rows[i]!.id} was not inserted, for no known reason`));
			} catch (err) {
				job.reject(err);
			}
		}
	}

	#db(scope: HubScope): ShardDb {
		return openShard(shardDb(this.env, scope.shard));
	}

	async #currentSeq(db: ShardDb, scope: HubScope): Promise<number> {
		if (this.#seq === null) {
			// Pruning may have emptied the journal; numbering must still continue
			// above the pruned floor, or every live cursor would look reset.
			const rows = await db.all<{ seq: number }>(sql`SELECT MAX(
				(SELECT COALESCE(MAX(seq), 0) FROM changes WHERE user_id = ${scope.userId}),
				(SELECT COALESCE(MAX(pruned_through), 0) FROM journal_state WHERE user_id = ${scope.userId})) AS seq`);
			this.#seq = rows[0]?.seq ?? 0;
		}
		return this.#seq;
	}

	/**
	 * Runs a change's statements and its journal entry in one D1 batch (one
	 * transaction): the change and its sequence number land together or not
	 * at all. The in-memory counter advances only after the batch commits.
	 */
	async #apply(db: ShardDb, scope: HubScope, statements: BatchQuery[], kind: ChangeKind, after: NodeRow): Promise<number> {
		const seq = (await this.#currentSeq(db, scope)) + 1;
		// createdAt is when the change happened, not the node's mtime (a trash
		// keeps that): retention counts from here.
		const entry = db.$client
			.prepare(JOURNAL_ENTRY)
			.bind(scope.userId, seq, kind, after.id, JSON.stringify(toNode(after)), new Date().toISOString());
		try {
			await runBatch(db.$client, [...statements, entry]);
		} catch (err) {
			// Another writer may have advanced the journal (a hub restarted
			// elsewhere): reload the counter before the next commit.
			this.#seq = null;
			throw err;
		}
		this.#seq = seq;
		this.#userId = scope.userId;
		this.#announce(seq);
		return seq;
	}

	/** Wakes long polls at once; tells sockets at most FRAMES_PER_SECOND times a second. */
	#announce(seq: number): void {
		for (const waiter of this.#waiters) if (waiter.afterSeq < seq) waiter.wake();
		if (this.#broadcastTimer !== null) return;
		const wait = this.#lastBroadcastAt + 1000 / FRAMES_PER_SECOND - Date.now();
		if (wait <= 0) this.#broadcast();
		else {
			this.#broadcastTimer = setTimeout(() => {
				this.#broadcastTimer = null;
				this.#broadcast();
			}, wait);
		}
	}

	#broadcast(): void {
		if (this.#seq === null || this.#userId === null) return;
		this.#lastBroadcastAt = Date.now();
		const frame = JSON.stringify({
			type: "changes",
			cursor: encodeJournalCursor({ userId: this.#userId, seq: this.#seq }),
		} satisfies ServerMessage);
		for (const ws of this.ctx.getWebSockets()) {
			try {
				ws.send(frame);
			} catch (err) {
				console.error("broadcast", err);
			}
		}
	}

	async #writeVersion(
		db: ShardDb,
		scope: HubScope,
		input: CommitFileInput,
		node: NodeRow,
		isNew: boolean,
		now: string,
		conflict: CommitResult["conflict"],
		kind?: ChangeKind,
	): Promise<Result<{ created: boolean } & CommitResult>> {
		const version: VersionRow = {
			id: newId("ver"),
			userId: scope.userId,
			nodeId: node.id,
			parentVersionId: isNew ? "" : (node.headVersionId ?? ""),
			size: input.size,
			contentHash: input.contentHash,
			blockCount: Array.isArray(input.blocks) ? input.blocks.length : input.blocks.count,
			deviceId: input.actor.deviceId,
			createdAt: now,
		};
		const after: NodeRow = { ...node, size: input.size, headVersionId: version.id, contentHash: input.contentHash, modifiedAt: now };
		const statements: BatchQuery[] = [];
		if (isNew) statements.push(db.insert(nodes).values(after));
		else {
			statements.push(
				db
					.update(nodes)
					.set({
						parentId: after.parentId,
						name: after.name,
						nameKey: after.nameKey,
						size: after.size,
						headVersionId: after.headVersionId,
						contentHash: after.contentHash,
						modifiedAt: now,
						trashedAt: after.trashedAt,
						trashRootId: after.trashRootId,
					})
					.where(and(eq(nodes.userId, scope.userId), eq(nodes.id, node.id))),
			);
		}
		statements.push(db.insert(versions).values(version));
		const source = input.blocks;
		if (!Array.isArray(source)) {
			// The block list is already in the shard: copy it, don't ship it over RPC.
			statements.push(
				db.run(sql`INSERT INTO version_blocks (version_id, offset, size, hash)
					SELECT ${version.id}, offset, size, hash FROM upload_blocks WHERE upload_id = ${source.uploadId}`),
				db.run(sql`INSERT OR IGNORE INTO user_blocks (user_id, hash, size, created_at)
					SELECT ${scope.userId}, hash, MAX(size), ${now} FROM upload_blocks WHERE upload_id = ${source.uploadId} GROUP BY hash`),
				db.update(uploads).set({ committedVersionId: version.id }).where(eq(uploads.id, source.uploadId)),
			);
		}
		const list = Array.isArray(source) ? source : [];
		for (let i = 0; i < list.length; i += BLOCKS_PER_STATEMENT) {
			const slice = JSON.stringify(list.slice(i, i + BLOCKS_PER_STATEMENT).map((b) => [b.offset, b.size, b.hash]));
			statements.push(
				db.run(sql`INSERT INTO version_blocks (version_id, offset, size, hash)
					SELECT ${version.id}, json_extract(value, '$[0]'), json_extract(value, '$[1]'), json_extract(value, '$[2]')
					FROM json_each(${slice})`),
				db.run(sql`INSERT OR IGNORE INTO user_blocks (user_id, hash, size, created_at)
					SELECT ${scope.userId}, json_extract(value, '$[2]'), json_extract(value, '$[1]'), ${now}
					FROM json_each(${slice})`),
			);
		}
		try {
			await this.#apply(db, scope, statements, kind ?? (isNew ? "created" : "updated"), after);
		} catch (err) {
			this.#usedBytes = null;
			throw err;
		}
		// A trashed file still counts, so only content changes move the total.
		if (this.#usedBytes !== null) this.#usedBytes += isNew ? input.size : input.size - node.size;
		return { ok: true, created: isNew, node: toNode(after), version: toVersion(version), conflict };
	}

	async #liveFolder(db: ShardDb, scope: HubScope, id: string): Promise<Result<{ row: NodeRow }>> {
		return asLiveFolder(await findNode(db, scope.userId, id));
	}

	/** The deepest folder on the way from the root to `id` (inclusive) that is not in the trash. */
	async #nearestLiveFolder(db: ShardDb, scope: HubScope, id: string): Promise<NodeRow | null> {
		const chain = await ancestry(db, scope.userId, id);
		let refuge: string | null = null;
		for (const link of chain) {
			if (link.trashed) break;
			refuge = link.id;
		}
		return refuge === null ? null : findNode(db, scope.userId, refuge);
	}

	async #checkQuota(db: ShardDb, scope: HubScope, growth: number, quotaBytes: number): Promise<Result<object>> {
		if (growth <= 0) return { ok: true };
		// The hub is the only writer of nodes, so the running total stays exact
		// without a SUM over all the user's files on every commit.
		this.#usedBytes ??= await bytesUsed(db, scope.userId);
		const used = this.#usedBytes;
		if (used + growth > quotaBytes) {
			return fail("QUOTA_EXCEEDED", `this needs ${growth} more bytes; ${Math.max(0, quotaBytes - used)} of ${quotaBytes} are free`);
		}
		return { ok: true };
	}

	/** `desired`, or `desired` with " 2", " 3", … before the extension, whichever is free; always a valid name. */
	async #freeName(db: ShardDb, userId: string, parentId: string, desired: string): Promise<string> {
		const [stem, ext] = splitExtension(desired);
		for (let n = 1; n < 1000; n++) {
			const candidate = fitName(stem, n === 1 ? ext : ` ${n}${ext}`);
			if (!(await findLiveChild(db, userId, parentId, nameKey(candidate)))) return candidate;
		}
		return fitName(stem, ` ${newId("nod").slice(-8)}${ext}`);
	}
}

/** `row` if it is a folder outside the trash, else why it cannot take children. */
function asLiveFolder(row: NodeRow | null): Result<{ row: NodeRow }> {
	if (!row || row.type !== "folder") return notFound("parent folder");
	if (row.trashedAt !== null) return fail("NOT_FOUND", "the parent folder is in the trash");
	return { ok: true, row };
}

function newNodeRow(userId: string, parentId: string, type: "file" | "folder", name: string, now: string): NodeRow {
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
	};
}

function errorJson(status: number, code: string, message: string): Response {
	return Response.json({ error: { code, message, request_id: "hub" } }, { status });
}

function notFound(what: string): Failure {
	return fail("NOT_FOUND", `${what} not found`);
}

function versionConflict(baseVersionId: string | null, file: NodeRow): Failure {
	return fail("VERSION_CONFLICT", `the file changed since version ${baseVersionId}`, [
		{ node_id: file.id, head_version_id: file.headVersionId },
	]);
}

function nameTaken(name: string): Failure {
	return fail("NAME_TAKEN", `an item named "${name}" already exists in this folder`, [{ field: "name" }]);
}

/**
 * `<stem> (conflicted copy <device> YYYY-MM-DD HHMMSS)<ext>`, per API.md. The
 * device name is made name-safe and capped, and the stem shortened by whole
 * code points, so the result is always a valid name (README "Names").
 */
export function conflictedCopyName(name: string, deviceName: string, at: Date): string {
	const [stem, ext] = splitExtension(name);
	const safeDevice = Array.from(deviceName.replace(/[\u0000-\u001f\u007f<>:"/\\|?*]/gu, "-").trim())
		.slice(0, 40)
		.join("")
		.trim();
	const device = safeDevice || "unknown device";
	const iso = at.toISOString();
	const stamp = `${iso.slice(0, 10)} ${iso.slice(11, 13)}${iso.slice(14, 16)}${iso.slice(17, 19)}`;
	return fitName(stem, ` (conflicted copy ${device} ${stamp})${ext}`);
}

/** `stem + suffix`, with the stem cut (by code points) until the whole is a valid name. */
export function fitName(stem: string, suffix: string): string {
	const points = Array.from(stem);
	for (let keep = points.length; keep >= 1; keep--) {
		const candidate = points.slice(0, keep).join("").trimEnd() + suffix;
		if (checkName(candidate).ok) return candidate;
	}
	return `file${suffix}`;
}
