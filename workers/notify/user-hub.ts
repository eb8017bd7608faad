/**
 * UserHub: one Durable Object per user, addressed by the user's id. It is the
 * only writer of its user's tree: every change (new file, new version,
 * folder, rename, move, trash, restore) runs in its queue, one at a time,
 * and lands in one D1 batch with its journal entry. It also holds the sync
 * channel that tells the user's devices about each change.
 *
 * This class is the shell: RPC, the WebSocket upgrade and its handlers. The
 * work lives beside it: commit-queue.ts (serialization and group commit),
 * tree-ops.ts (the changes), purge-ops.ts (deleting forever), journal.ts (numbering), usage.ts (the user's
 * totals and write budget) and sync-channel.ts (long polls, tickets, sockets).
 */
import { DurableObject } from "cloudflare:workers";
import { eq } from "drizzle-orm";
import { invalidName } from "../../src/shared/commit/failures";
import { users } from "../../src/shared/db/schema";
import { openShard, shardAt, shardBinding, shardCount } from "../../src/shared/db/shards";
import { isNewer } from "../../src/shared/bookmarks";
import { fail, ok, type Result } from "../../src/shared/errors";
import { clearFaults, operationCounts, setFaults, withDrills, type FaultRule } from "../../src/shared/drills";
import { isUserMoved, MOVED_DETAIL } from "../../src/shared/db/moved";
import { redactedCause, stackFrames } from "../../src/shared/log";
import { DeadlineExceeded, isTransient } from "../../src/shared/transient";
import { checkName } from "../../src/shared/names";
import { ClientMessage, type ServerMessage } from "../../src/shared/schemas/sync";
import { drizzle } from "drizzle-orm/d1";
import { CommitQueue, commitDeadline, type Batchable } from "./commit-queue";
import type { ActivityActor } from "../../src/shared/activity";
import type {
	Actor,
	CommitFileInput,
	CommitFilesInput,
	CommitOutcome,
	CommitUploadInput,
	LongPollOutcome,
	NodeOutcome,
	SyncTicket,
	UpdateNodeInput,
	Written,
} from "./contract";
import { trackBookmarks } from "./primary-bookmarks";
import { Journal } from "./journal";
import * as moves from "./move-ops";
import * as purges from "./purge-ops";
import * as shareOps from "./share-ops";
import { Deliverer, Sharing, type ShareDelivery } from "./sharing";
import { Usage, WriteBudget } from "./usage";
import { SyncChannel } from "./sync-channel";
import { WebhookKick } from "./webhook-kick";
import * as ops from "./tree-ops";
import * as history from "./version-ops";
import { retentionPolicy, type RetentionPolicy } from "../../src/shared/retention";
import type { Version } from "../../src/shared/schemas/nodes";

/** The notify worker's own [vars] (workers/notify/wrangler.toml); `wrangler types` types the api's config only. */
interface HubVars {
	MAX_NODES_PER_USER?: string;
	WRITE_BURST?: string;
	WRITES_PER_SECOND?: string;
	VERSION_MAX_AGE_DAYS?: string;
	VERSION_MAX_VERSIONS?: string;
}

export class UserHub extends DurableObject<Env & HubVars> {
	readonly #userId: string;
	readonly #queue = new CommitQueue(commitDeadline);
	readonly #sync: SyncChannel;
	#tree: Promise<ops.Tree> | null = null;
	#deliverer: Deliverer | null = null;
	#webhooks: WebhookKick | null = null;
	/** Alarm back-off after a failed delivery, in ms; reset once one succeeds. */
	#retryMs = 0;
	/** The shard's D1 bookmark after the hub's latest query (docs/decisions/0031-read-your-writes-with-bookmarks.md). */
	#bookmark: string | null = null;
	/** The shard the tree was opened in; the bookmark is of this shard. */
	#shardIndex: number | null = null;
	/** Files with a thinning run queued and not started: one run covers every commit before it. */
	readonly #thinning = new Set<string>();
	readonly #writes: WriteBudget;
	/** Folder creations waiting together share one D1 batch. */
	readonly #folders: Batchable<ops.FolderRequest, Result<NodeOutcome>> = {
		maxGroup: ops.FOLDERS_PER_BATCH,
		run: async (group) => ops.createFolders(await this.#openTree(), group),
	};

	/** Batches of files waiting together share one read of their targets (tree-ops.ts commitFiles). */
	readonly #files: Batchable<CommitFilesInput, Result<Result<CommitOutcome>[]>> = {
		maxGroup: FILE_BATCHES_PER_RUN,
		run: async (group) => {
			const tree = await this.#openTree();
			// A restore of a trashed file may move it (Tree.folderDepths).
			tree.folderDepths.clear();
			await ops.commitFiles(
				tree,
				group.map((pending) => ({
					...pending,
					resolve: (result) => {
						if (result.ok) for (const file of result.value) this.#thinAfter(file, false);
						pending.resolve(result);
					},
				})),
			);
		},
	};

	constructor(ctx: DurableObjectState, env: Env & HubVars) {
		// withDrills hands back env itself unless DRILLS is "on" (src/shared/drills.ts).
		super(ctx, withDrills(env));
		// The hub is addressed by its user's id (getByName), so it knows whose it is.
		const userId = ctx.id.name;
		if (!userId) throw new Error("a UserHub must be addressed by its user's id");
		this.#userId = userId;
		this.#sync = new SyncChannel(ctx, userId, () => this.#taggedBookmark());
		this.#writes = new WriteBudget(numberVar(env.WRITE_BURST, 10_000), numberVar(env.WRITES_PER_SECOND, 100));
		// Answered by the runtime without waking the object (hibernation).
		ctx.setWebSocketAutoResponse(new WebSocketRequestResponsePair("ping", "pong"));
	}

	/**
	 * Failure drills (src/shared/drills.ts): replaces the faults of the
	 * notify worker's isolate, and answers its operation counts. Refused
	 * unless DRILLS is "on", which no deployed config sets.
	 */
	async drill(faults: FaultRule[] | null | undefined, resetCounts = false): Promise<Record<string, number>> {
		if ((this.env as { DRILLS?: string }).DRILLS !== "on") throw new Error("drills are off in this deployment");
		if (faults === null) clearFaults();
		else if (faults !== undefined) setFaults(faults);
		return operationCounts(resetCounts);
	}

	/** Creates the user's root folder if it does not exist yet (signup); returns it. */
	async ensureRoot(): Promise<Written<NodeOutcome>> {
		return this.#contained(this.#queue.run(async () => ops.ensureRoot(await this.#openTree())));
	}

	/**
	 * Creates a folder. Folder creations waiting in line together are
	 * committed in one D1 batch: each still gets its own checks, answer and
	 * sequence number, in arrival order.
	 */
	async createFolder(input: { parentId: string; name: string; by?: string }): Promise<Written<NodeOutcome>> {
		const name = checkName(input.name);
		if (!name.ok) return invalidName(name.reason);
		const budget = this.#writes.take();
		if (!budget.ok) return budget;
		const request: ops.FolderRequest = { parentId: input.parentId, name: name.name };
		if (input.by !== undefined) request.by = input.by;
		return this.#contained(this.#queue.join(this.#folders, request));
	}

	/**
	 * Creates several folders under one parent for one request: each joins the
	 * queue like a single creation (so they share D1 batches and each gets its
	 * own checks and sequence number) and each is answered on its own, in order.
	 */
	async createFolderBatch(input: { parentId: string; names: string[]; by?: string }): Promise<Written<NodeOutcome>[]> {
		return Promise.all(
			input.names.map((name) => this.createFolder({ parentId: input.parentId, name, ...(input.by !== undefined ? { by: input.by } : {}) })),
		);
	}

	/**
	 * Commits file content whose blocks are already stored: a new file, or a
	 * new version of the file with that name. A stale base never overwrites:
	 * it becomes a conflicted copy, or VERSION_CONFLICT when asked to fail.
	 */
	async commitFile(input: CommitFileInput): Promise<Written<CommitOutcome>> {
		return this.#thinAfter(await this.#write((tree) => ops.commitFile(tree, input)), false);
	}

	/**
	 * Commits a batch of small files whose blocks are already stored, each as
	 * `commitFile` would, in order; one answer per file. Every file takes one
	 * write of the user's budget.
	 */
	async commitFiles(input: CommitFilesInput): Promise<Written<Result<CommitOutcome>[]>> {
		const budget = this.#writes.take(input.files.length);
		if (!budget.ok) return budget;
		return this.#contained(this.#queue.join(this.#files, input));
	}

	/** Commits an upload session or tus upload whose blocks have all arrived; committing twice answers the same result. */
	async commitUpload(input: CommitUploadInput): Promise<Written<CommitOutcome>> {
		return this.#thinAfter(await this.#write((tree) => ops.commitUpload(tree, input)), false);
	}

	/** Records the server-computed hash of a version committed with a declared one; housekeeping, so outside the write budget. */
	async settleContentHash(input: { versionId: string; contentHash: string }): Promise<Written<{ corrected: boolean }>> {
		return this.#contained(this.#queue.run(async () => ops.settleContentHash(await this.#openTree(), input)));
	}

	/** Makes an earlier version of a file its head again, as a new version over the same blocks. */
	async restoreVersion(input: { nodeId: string; versionId: string; actor: Actor; quotaBytes: number }): Promise<Written<CommitOutcome>> {
		return this.#thinAfter(await this.#write((tree) => ops.restoreVersion(tree, input)), true);
	}

	/** Pins, unpins or labels a version of a file; pinned and labelled versions are kept by retention. */
	async updateVersion(input: history.UpdateVersionInput): Promise<Written<Version>> {
		return this.#write((tree) => history.updateVersion(tree, input));
	}

	/** Deletes a version that is not the file's head, freeing its storage. */
	async deleteVersion(input: { nodeId: string; versionId: string; actor: Actor }): Promise<Written<void>> {
		return this.#write((tree) => history.deleteVersion(tree, input));
	}

	/**
	 * Thins a file's history by the retention policy (the hub's [vars] unless
	 * given) at `now` (default: the present). Housekeeping: outside the write budget.
	 */
	async thinVersions(input: { nodeId: string; now?: number; policy?: RetentionPolicy }): Promise<Written<{ expired: number }>> {
		const policy = input.policy ?? retentionPolicy(this.env);
		return this.#contained(
			this.#queue.run(async () =>
				history.thinVersions(await this.#openTree(), { nodeId: input.nodeId, now: input.now ?? Date.now(), policy }),
			),
		);
	}

	/** Renames and/or moves a node. */
	async updateNode(input: UpdateNodeInput): Promise<Written<NodeOutcome>> {
		return this.#write((tree) => ops.updateNode(tree, input));
	}

	/** Moves a node, and a folder's subtree, to the trash. */
	async trashNode(input: ops.TrashInput): Promise<Written<NodeOutcome>> {
		return this.#write((tree) => ops.trashNode(tree, input));
	}

	/** Restores a trashed node with what was trashed together with it. */
	async restoreNode(input: { nodeId: string; by?: string }): Promise<Written<NodeOutcome>> {
		return this.#write((tree) => ops.restoreNode(tree, input));
	}

	/** Settles a conflicted copy: keeps both (clears its mark), the original, or the copy's content as the original's new version. */
	async resolveConflict(input: ops.ResolveConflictInput): Promise<Written<NodeOutcome>> {
		const result = await this.#write((tree) => ops.resolveConflict(tree, input));
		// Keeping the copy adds a version to the original.
		if (result.ok && input.keep === "copy") this.#thin(result.value.node.id);
		return result;
	}

	/**
	 * Deletes an item in the trash for good, with what was trashed with it:
	 * marked at once (hidden from the trash, no longer restorable), then
	 * deleted in the background by the alarm; ends with a `deleted` journal entry.
	 */
	async purgeNode(input: { nodeId: string }): Promise<Written<NodeOutcome>> {
		return this.#purgeAfter(await this.#write((tree) => purges.startPurge(tree, input)));
	}

	/** Deletes everything in the trash for good, in the background like {@link purgeNode}; answers how many items. */
	async emptyTrash(): Promise<Written<{ deleted: number }>> {
		return this.#purgeAfter(await this.#write((tree) => purges.startEmptyTrash(tree)));
	}

	/**
	 * Runs every purge under way to its end, one chunk per turn of the queue
	 * so that other changes keep flowing between chunks; returns how many chunks ran.
	 */
	async runPurges(): Promise<Written<{ chunks: number }>> {
		let chunks = 0;
		let delivering = false;
		for (;;) {
			const step = await this.#contained(
				this.#queue.run(async () => ok(await purges.purgeChunk(await this.#openTree(), () => this.#forgetInDirectory()))),
			);
			if (!step.ok) return step;
			if (step.value === "done") return ok({ chunks });
			if (step.value === "deliver") {
				// Outside the queue, like every delivery, once per run; an unreachable member leaves it to the alarm.
				if (delivering || !(await (this.#deliverer?.run().catch(() => false) ?? false))) return ok({ chunks });
				delivering = true;
				continue;
			}
			chunks++;
		}
	}

	/**
	 * Deletes the user's account: the shares it owns end, every node is
	 * marked for purge at once and deleted in the background like a purge;
	 * once the tree is gone and the members heard the shares end, the
	 * directory forgets the user and the shard's last rows go. The api has
	 * already taken the account out of other people's shares.
	 */
	async deleteAccount(input: { actor: ActivityActor }): Promise<Written<void>> {
		return this.#purgeAfter(
			await this.#contained(this.#queue.run(async () => purges.startAccountPurge(await this.#openTree(), input.actor))),
		);
	}

	/** Shares a node with people, or adds people to its share; only the owner shares (the api checks). */
	async shareNode(input: {
		nodeId: string;
		members: shareOps.MemberInput[];
		ownerEmail: string;
		actor: ActivityActor;
	}): Promise<Written<shareOps.ShareOutcome>> {
		return this.#write((tree) => shareOps.shareNode(tree, input));
	}

	/** Removes a member from a share: by the owner, or by the member (leaving). */
	async removeShareMember(input: { shareId: string; memberId: string; actor: ActivityActor }): Promise<Written<shareOps.ShareOutcome>> {
		return this.#write((tree) => shareOps.removeMember(tree, input));
	}

	/** Mounts again a share this user unmounted. */
	async mountShare(input: { shareId: string; parentId: string | null }): Promise<Written<NodeOutcome>> {
		return this.#write((tree) => shareOps.mountShare(tree, input));
	}

	/** Ends a share; every member hears of it. */
	async deleteShare(input: { shareId: string; actor: ActivityActor }): Promise<Written<shareOps.ShareOutcome>> {
		return this.#write((tree) => shareOps.deleteShare(tree, input));
	}

	/**
	 * What an owner's hub delivers about a share this user is in, applied in
	 * this hub's queue as entries of this user's journal. Outside the write
	 * budget: it is someone else's change arriving.
	 */
	async applyShareEvents(delivery: ShareDelivery): Promise<Written<{ appliedId: number }>> {
		return this.#contained(this.#queue.run(async () => shareOps.applyShareEvents(await this.#openTree(), delivery)));
	}

	/** The user's webhook endpoints changed (api, routes/webhooks.ts): look them up again, and catch up a re-enabled one. */
	async webhooksChanged(): Promise<void> {
		await this.#openTree();
		this.#webhooks?.forget();
		this.#webhooks?.changed();
	}

	/**
	 * Moves the user's rows to shard `to` (docs/decisions/0034), as one job of
	 * the queue: fences the old shard, copies, checks the copy, switches the
	 * directory, then wakes the devices. A move cut short resumes on the
	 * next call, change or alarm; the old shard's rows go after MOVE_GRACE_MS.
	 */
	async moveToShard(input: { to: number }): Promise<Result<MoveStatus>> {
		const { to } = input;
		if (!Number.isInteger(to) || to < 0 || to >= shardCount(this.env))
			return fail("INVALID_REQUEST", `there is no shard ${String(to)}; shards are 0 to ${shardCount(this.env) - 1}`);
		return this.#contained(
			this.#queue.run(async () => {
				const pending = await this.ctx.storage.get<MoveState>(MOVE_KEY);
				if (pending === undefined) {
					const from = await this.#shard();
					if (from === to) return fail("INVALID_REQUEST", `the user is on shard ${to} already`);
					await this.ctx.storage.put(MOVE_KEY, { from, to, startedAt: new Date().toISOString() } satisfies MoveState);
				} else if (pending.to !== to) {
					return fail("INVALID_REQUEST", `a move to shard ${pending.to} is under way; finish it first`);
				}
				try {
					await this.#finishMove();
				} catch (err) {
					console.error(JSON.stringify({ hub: this.#userId, move: "stopped", error: redactedCause(err) }));
					return fail("UNAVAILABLE", "the move stopped midway; it goes on by itself shortly, or when asked again");
				}
				return ok(await this.#moveStatus());
			}),
		);
	}

	/**
	 * Gives up a move that has not switched the directory yet: lifts the old
	 * shard's fence and forgets the move. What a cut-short copy left in the
	 * target stays until a later move into that shard clears it.
	 */
	async abandonMove(): Promise<Result<MoveStatus>> {
		return this.#contained(
			this.#queue.run(async () => {
				const move = await this.ctx.storage.get<MoveState>(MOVE_KEY);
				if (move === undefined) return fail("INVALID_REQUEST", "no move is under way");
				const row = await this.env.DIRECTORY.prepare("SELECT shard FROM users WHERE id = ?1").bind(this.#userId).first<{ shard: number }>();
				if (row?.shard !== move.from)
					return fail("INVALID_REQUEST", "the directory names the new shard already: the move can only be finished");
				await moves.unfence(shardAt(this.env, move.from), this.#userId);
				await this.ctx.storage.delete(MOVE_KEY);
				this.#forgetTree();
				return ok(await this.#moveStatus());
			}),
		);
	}

	/** Where the user is, the move under way if any, and the old shards waiting for their cleanup. */
	async moveStatus(): Promise<MoveStatus> {
		return this.#moveStatus();
	}

	/**
	 * Deletes the user's rows from old shards whose grace ended by `now`
	 * (default: the present), as the alarm does; answers the cleanups left.
	 */
	async cleanUpMoves(input: { now?: number } = {}): Promise<Result<MoveStatus>> {
		return this.#contained(
			this.#queue.run(async () => {
				await this.#cleanUpMoves(input.now ?? Date.now());
				return ok(await this.#moveStatus());
			}),
		);
	}

	/** Retries deliveries that failed (a member's hub was unreachable), runs the purges under way, and the moves' chores. */
	override async alarm(): Promise<void> {
		await this.#moveChores();
		const tree = await this.#openTree();
		await this.#deliver();
		if (!(await purges.purgePending(tree))) return;
		// Should this instance go away mid-purge, the alarm wakes it to go on from the marks.
		await this.ctx.storage.setAlarm(Date.now() + PURGE_SAFETY_NET_MS);
		await this.runPurges();
	}

	/**
	 * Long poll: resolves as soon as the journal moves past `afterSeq`, or
	 * with `changes: false` after `timeoutMs`. Commits wake waiters directly;
	 * nothing polls.
	 */
	async waitForChange(afterSeq: number, timeoutMs: number): Promise<LongPollOutcome> {
		const tree = await this.#openTree();
		return this.#sync.waitForChange(afterSeq, await tree.journal.currentSeq(), timeoutMs);
	}

	/** Issues a single-use ticket that lets `deviceId` open the sync WebSocket. */
	async issueTicket(deviceId: string): Promise<SyncTicket> {
		return this.#sync.issueTicket(deviceId);
	}

	/** Signs a device's open sync sockets out (logout, refresh-token reuse). */
	async disconnectDevice(deviceId: string): Promise<void> {
		this.#sync.disconnect(deviceId);
	}

	/** Only the WebSocket upgrade of /v1/sync/ws arrives here. */
	override async fetch(request: Request): Promise<Response> {
		return this.#sync.accept(request, async () => (await this.#openTree()).journal.currentSeq());
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

	/** A move cut short, then the cleanups due, each in the queue; re-arms the alarm for what is left. */
	async #moveChores(): Promise<void> {
		try {
			await this.#queue.run(async () => {
				if ((await this.ctx.storage.get<MoveState>(MOVE_KEY)) !== undefined) await this.#finishMove();
				await this.#cleanUpMoves(Date.now());
			});
		} catch (err) {
			console.error(JSON.stringify({ hub: this.#userId, move: "chores", error: redactedCause(err) }));
			await this.#armAlarm(Date.now() + MOVE_RETRY_MS);
		}
	}

	/**
	 * Runs the move recorded in storage to its end. Inside a queue job: the
	 * fence, the copy and the switch each run again after a crash.
	 */
	async #finishMove(reopen = true): Promise<void> {
		const move = await this.ctx.storage.get<MoveState>(MOVE_KEY);
		if (move === undefined) return;
		const source = shardAt(this.env, move.from);
		const target = shardAt(this.env, move.to);
		try {
			const listed = await this.env.DIRECTORY.prepare("SELECT shard FROM users WHERE id = ?1")
				.bind(this.#userId)
				.first<{ shard: number }>();
			// Switched already (a crash right after): the api may have written to the new shard since, so no second copy.
			let copied: Record<string, number> | "switched before" = "switched before";
			if (listed?.shard !== move.to) {
				await moves.fence(source, this.#userId, move.to, move.startedAt);
				copied = await moves.copyUser(source, target, this.#userId);
				const differ = await moves.differences(source, target, this.#userId);
				if (differ.length > 0) throw new Error(`the copy differs from the source in ${differ.join(", ")}`);
				await this.env.DIRECTORY.prepare("UPDATE users SET shard = ?1 WHERE id = ?2").bind(move.to, this.#userId).run();
			}
			const cleanups = ((await this.ctx.storage.get<MoveCleanup[]>(CLEANUPS_KEY)) ?? []).filter(
				(c) => c.shard !== move.to && c.shard !== move.from,
			);
			const due = Date.now() + MOVE_GRACE_MS;
			cleanups.push({ shard: move.from, due });
			// The shard and the cleanup in one put; should the instance die before the move's record goes, the directory says it is done.
			await this.ctx.storage.put({ shard: move.to, [CLEANUPS_KEY]: cleanups });
			await this.ctx.storage.delete(MOVE_KEY);
			console.log(JSON.stringify({ hub: this.#userId, move: "done", from: move.from, to: move.to, copied }));
			await this.#armAlarm(due);
		} catch (err) {
			await this.#armAlarm(Date.now() + MOVE_RETRY_MS);
			throw err;
		} finally {
			// Whatever happened, the next change opens the tree again: in the new shard, or fenced in the old one.
			if (reopen) this.#forgetTree();
		}
		if (!reopen) return;
		// The devices read their changes from the new shard now: tell them to look.
		const tree = await this.#openTree();
		this.#sync.announce(await tree.journal.currentSeq());
		tree.webhooks?.changed();
		this.ctx.waitUntil(this.#deliver());
	}

	/** Deletes the user's rows from the old shards whose grace ended by `now`, a bounded amount per call. */
	async #cleanUpMoves(now: number): Promise<void> {
		const cleanups = (await this.ctx.storage.get<MoveCleanup[]>(CLEANUPS_KEY)) ?? [];
		const left: MoveCleanup[] = [];
		for (const cleanup of cleanups) {
			if (cleanup.due > now || !(await moves.cleanUp(shardAt(this.env, cleanup.shard), this.#userId))) left.push(cleanup);
			else console.log(JSON.stringify({ hub: this.#userId, move: "cleaned", shard: cleanup.shard }));
		}
		if (left.length === cleanups.length && left.every((c, i) => c === cleanups[i])) {
			if (left.length > 0) await this.#armAlarm(Math.min(...left.map((c) => (c.due > now ? c.due : now + MOVE_RETRY_MS))));
			return;
		}
		await this.ctx.storage.put(CLEANUPS_KEY, left);
		if (left.length > 0) await this.#armAlarm(Math.min(...left.map((c) => (c.due > now ? c.due : now))));
	}

	/** Drops the opened tree (and what hangs on its shard): the next change opens it again. */
	#forgetTree(): void {
		this.#tree = null;
		this.#deliverer = null;
		this.#webhooks = null;
	}

	async #moveStatus(): Promise<MoveStatus> {
		const [move, cleanups] = await Promise.all([
			this.ctx.storage.get<MoveState>(MOVE_KEY),
			this.ctx.storage.get<MoveCleanup[]>(CLEANUPS_KEY),
		]);
		return { shard: await this.#shard(), moving: move ?? null, cleanups: cleanups ?? [] };
	}

	/** Sets the alarm to `at` unless it is due sooner. */
	async #armAlarm(at: number): Promise<void> {
		const due = await this.ctx.storage.getAlarm();
		if (due === null || due > at) await this.ctx.storage.setAlarm(at);
	}

	/**
	 * Delivers the outbox to members' hubs, outside the queue; on a failure the
	 * rest stays in the outbox and an alarm tries again, backing off.
	 */
	async #deliver(): Promise<void> {
		const deliverer = this.#deliverer;
		if (!deliverer) return;
		// A safety net first: should this instance go away mid-delivery, the
		// alarm wakes it to finish from the outbox.
		if ((await this.ctx.storage.getAlarm()) === null) await this.ctx.storage.setAlarm(Date.now() + DELIVERY_SAFETY_NET_MS);
		const delivered = await deliverer.run().catch((err: unknown) => {
			console.error(JSON.stringify({ hub: this.#userId, delivery: "failed", error: redactedCause(err) }));
			return false;
		});
		if (delivered) {
			// The safety alarm stays: when it fires it finds nothing to do, and
			// leaving it saves a storage write on every delivery.
			this.#retryMs = 0;
			return;
		}
		this.#retryMs = Math.min(Math.max(this.#retryMs * 2, 500), 60_000);
		await this.ctx.storage.setAlarm(Date.now() + this.#retryMs);
	}

	/** The account's rows in the directory, users last (the others refer to it). */
	async #forgetInDirectory(): Promise<void> {
		const id = this.#userId;
		const db = this.env.DIRECTORY;
		await db.batch([
			db.prepare("DELETE FROM links WHERE owner_id = ?1 OR created_by = ?1").bind(id),
			db.prepare("DELETE FROM refresh_tokens WHERE user_id = ?").bind(id),
			db.prepare("DELETE FROM devices WHERE user_id = ?").bind(id),
			db.prepare("DELETE FROM users WHERE id = ?").bind(id),
		]);
	}

	/** After a purge was marked, wakes the hub at once (by its alarm, which survives a crash) to run it. */
	async #purgeAfter<T>(result: Written<T>): Promise<Written<T>> {
		if (result.ok) await this.#wakeNow();
		return result;
	}

	/** Sets the alarm to now unless it is due already. */
	async #wakeNow(): Promise<void> {
		const now = Date.now();
		const due = await this.ctx.storage.getAlarm();
		if (due === null || due > now) await this.ctx.storage.setAlarm(now);
	}

	/**
	 * After a commit that added a version to an existing file (`created` says
	 * which for restores), queues a thinning run of that file behind it: the
	 * commit's answer does not wait for it, the next change does.
	 */
	#thinAfter<R extends Result<CommitOutcome>>(result: R, addedWhenCreated: boolean): R {
		if (result.ok && result.value.created === addedWhenCreated) this.#thin(result.value.node.id);
		return result;
	}

	/** Thins a file's history by the retention policy, once its new version landed; one pending run per file. */
	#thin(nodeId: string): void {
		if (this.#thinning.has(nodeId)) return;
		this.#thinning.add(nodeId);
		const run = this.#contained(
			this.#queue.run(async () => {
				this.#thinning.delete(nodeId);
				return history.thinVersions(await this.#openTree(), { nodeId, now: Date.now(), policy: retentionPolicy(this.env) });
			}),
		);
		this.ctx.waitUntil(run);
	}

	/** Runs a change in the queue, once the user's write budget allows it. */
	async #write<T>(change: (tree: ops.Tree) => Promise<Result<T>>): Promise<Written<T>> {
		const budget = this.#writes.take();
		if (!budget.ok) return budget;
		return this.#contained(
			this.#queue.run(async () => {
				const tree = await this.#openTree();
				// Any change but a folder creation may move folders (Tree.folderDepths).
				tree.folderDepths.clear();
				return change(tree);
			}),
		);
	}

	/**
	 * An unexpected failure (D1 down, a bug) as an INTERNAL Result: an
	 * exception would reach the api without its class or stack, so it is
	 * logged here, where both are known.
	 */
	async #contained<T>(work: Promise<Result<T>>): Promise<Written<T>> {
		let result: Written<T>;
		try {
			result = await work;
		} catch (err) {
			// The old shard refuses the user's writes while a move is under way (docs/decisions/0034).
			if (isUserMoved(err))
				return fail("UNAVAILABLE", "the account is moving to another database; send the request again in a moment", [MOVED_DETAIL]);
			console.error(
				JSON.stringify({ hub: this.#userId, error: redactedCause(err), stack: err instanceof Error ? stackFrames(err) : undefined }),
			);
			if (!isTransient(err)) result = fail("INTERNAL", "the change could not be made; it has been logged");
			else {
				// A job cut off by its deadline may still land later: what the tree holds in memory is read again.
				if (err instanceof DeadlineExceeded) this.#tree = null;
				result = fail("UNAVAILABLE", "the change could not be made now; send it again");
			}
		}
		// The api reads its next answers at least this far (docs/decisions/0031-read-your-writes-with-bookmarks.md).
		const bookmark = this.#taggedBookmark();
		if (bookmark !== undefined) result.bookmark = bookmark;
		return result;
	}

	/** The hub's latest bookmark as `<shard>.<bookmark>`, or undefined before its first query. */
	#taggedBookmark(): string | undefined {
		return this.#bookmark === null || this.#shardIndex === null ? undefined : `${this.#shardIndex}.${this.#bookmark}`;
	}

	#noteBookmark(shard: number, bookmark: string): void {
		if (shard === this.#shardIndex && isNewer(bookmark, this.#bookmark ?? undefined)) this.#bookmark = bookmark;
	}

	/** The user's tree in their shard, opened once per instance. */
	#openTree(): Promise<ops.Tree> {
		this.#tree ??= this.#resumeMove().then(
			(shard) => {
				// A bookmark of one database means nothing in another (the user moved).
				if (shard !== this.#shardIndex) this.#bookmark = null;
				this.#shardIndex = shard;
				const db = openShard(trackBookmarks(shardBinding(this.env, shard), (bookmark) => this.#noteBookmark(shard, bookmark)));
				const sharing = new Sharing(db, this.#userId, () => this.ctx.waitUntil(this.#deliver()));
				const webhooks = new WebhookKick(db, { user: this.#userId, shard }, this.env.WEBHOOK_FANOUT, (work) => this.ctx.waitUntil(work));
				this.#webhooks = webhooks;
				this.#deliverer = new Deliverer(db, this.#userId, async (memberId, delivery) => {
					const applied = await this.env.USER_HUB.getByName(memberId).applyShareEvents(delivery);
					if (!applied.ok) throw new Error(`member hub refused the delivery: ${applied.error.code}`);
					return applied.value.appliedId;
				});
				const tree: ops.Tree = {
					db,
					userId: this.#userId,
					sharing,
					journal: new Journal(
						db,
						this.#userId,
						(seq) => {
							this.#sync.announce(seq);
							webhooks.changed();
						},
						sharing,
					),
					usage: new Usage(db, this.#userId),
					maxNodes: numberVar(this.env.MAX_NODES_PER_USER, 1_000_000),
					folderDepths: new Map(),
					webhooks,
				};
				// A purge cut short (crash, deploy) resumes as soon as the hub is back.
				this.ctx.waitUntil(
					purges
						.purgePending(tree)
						.then((pending) => (pending ? this.#wakeNow() : undefined))
						.catch((err: unknown) => console.error(JSON.stringify({ hub: this.#userId, purge: "resume", error: redactedCause(err) }))),
				);
				return tree;
			},
			(err: unknown) => {
				this.#tree = null;
				throw err;
			},
		);
		return this.#tree;
	}

	/**
	 * The user's shard, once a move recorded in storage (cut short by a crash)
	 * has finished: changes wait for it rather than meet the old shard's fence.
	 */
	async #resumeMove(): Promise<number> {
		if ((await this.ctx.storage.get<MoveState>(MOVE_KEY)) !== undefined) {
			// Opening the tree waits for this: it opens the shard the move leaves behind.
			await this.#finishMove(false).catch((err: unknown) =>
				console.error(JSON.stringify({ hub: this.#userId, move: "resume", error: redactedCause(err) })),
			);
		}
		return this.#shard();
	}

	/**
	 * Which shard holds the user: from the hub's own storage, or once from
	 * the directory, which assigned it at signup (docs/decisions/0002).
	 */
	async #shard(): Promise<number> {
		const stored = await this.ctx.storage.get<number>("shard");
		if (stored !== undefined) return stored;
		const rows = await drizzle(this.env.DIRECTORY).select({ shard: users.shard }).from(users).where(eq(users.id, this.#userId)).limit(1);
		const shard = rows[0]?.shard;
		if (shard === undefined) throw new Error(`user ${this.#userId} is not in the directory`);
		await this.ctx.storage.put("shard", shard);
		return shard;
	}
}

/** A move in storage: from which shard to which, since when (docs/decisions/0034). */
export interface MoveState {
	from: number;
	to: number;
	startedAt: string;
}

/** An old shard whose copy of the user's rows is deleted once `due` (ms) has passed. */
export interface MoveCleanup {
	shard: number;
	due: number;
}

/** What the ops route shows of a user's moves. */
export interface MoveStatus {
	shard: number;
	moving: MoveState | null;
	cleanups: MoveCleanup[];
}

const MOVE_KEY = "move";
const CLEANUPS_KEY = "moveCleanups";

/**
 * How long the old shard keeps its frozen copy: longer than an access token
 * lives (its `shd` claim) plus the api's caller cache, so no reader still
 * sent there finds rows missing.
 */
const MOVE_GRACE_MS = 60 * 60_000;

/** A move or cleanup that failed is tried again after this long (or at the next change). */
const MOVE_RETRY_MS = 10_000;

/** At most this many batches of files share one run of the queue (each at most 256 files, one D1 batch each). */
const FILE_BATCHES_PER_RUN = 4;

/** When a purge started and was not seen to finish, the alarm goes on with it after this long. */
const PURGE_SAFETY_NET_MS = 30_000;

/** When a delivery started and was not seen to finish, the alarm finishes it after this long. */
const DELIVERY_SAFETY_NET_MS = 30_000;

/** A numeric [vars] setting, or its default when unset or not a positive number. */
function numberVar(value: string | undefined, fallback: number): number {
	const n = Number(value);
	return Number.isFinite(n) && n > 0 ? n : fallback;
}
