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
import { shardAt } from "../../src/shared/db/shards";
import { fail, ok, type Result } from "../../src/shared/errors";
import { clearFaults, operationCounts, setFaults, withDrills, type FaultRule } from "../../src/shared/drills";
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
} from "./contract";
import { Journal } from "./journal";
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
		this.#sync = new SyncChannel(ctx, userId);
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
	async ensureRoot(): Promise<Result<NodeOutcome>> {
		return this.#contained(this.#queue.run(async () => ops.ensureRoot(await this.#openTree())));
	}

	/**
	 * Creates a folder. Folder creations waiting in line together are
	 * committed in one D1 batch: each still gets its own checks, answer and
	 * sequence number, in arrival order.
	 */
	async createFolder(input: { parentId: string; name: string; by?: string }): Promise<Result<NodeOutcome>> {
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
	async createFolderBatch(input: { parentId: string; names: string[]; by?: string }): Promise<Result<NodeOutcome>[]> {
		return Promise.all(
			input.names.map((name) => this.createFolder({ parentId: input.parentId, name, ...(input.by !== undefined ? { by: input.by } : {}) })),
		);
	}

	/**
	 * Commits file content whose blocks are already stored: a new file, or a
	 * new version of the file with that name. A stale base never overwrites:
	 * it becomes a conflicted copy, or VERSION_CONFLICT when asked to fail.
	 */
	async commitFile(input: CommitFileInput): Promise<Result<CommitOutcome>> {
		return this.#thinAfter(await this.#write((tree) => ops.commitFile(tree, input)), false);
	}

	/**
	 * Commits a batch of small files whose blocks are already stored, each as
	 * `commitFile` would, in order; one answer per file. Every file takes one
	 * write of the user's budget.
	 */
	async commitFiles(input: CommitFilesInput): Promise<Result<Result<CommitOutcome>[]>> {
		const budget = this.#writes.take(input.files.length);
		if (!budget.ok) return budget;
		return this.#contained(this.#queue.join(this.#files, input));
	}

	/** Commits an upload session or tus upload whose blocks have all arrived; committing twice answers the same result. */
	async commitUpload(input: CommitUploadInput): Promise<Result<CommitOutcome>> {
		return this.#thinAfter(await this.#write((tree) => ops.commitUpload(tree, input)), false);
	}

	/** Records the server-computed hash of a version committed with a declared one; housekeeping, so outside the write budget. */
	async settleContentHash(input: { versionId: string; contentHash: string }): Promise<Result<{ corrected: boolean }>> {
		return this.#contained(this.#queue.run(async () => ops.settleContentHash(await this.#openTree(), input)));
	}

	/** Makes an earlier version of a file its head again, as a new version over the same blocks. */
	async restoreVersion(input: { nodeId: string; versionId: string; actor: Actor; quotaBytes: number }): Promise<Result<CommitOutcome>> {
		return this.#thinAfter(await this.#write((tree) => ops.restoreVersion(tree, input)), true);
	}

	/** Pins, unpins or labels a version of a file; pinned and labelled versions are kept by retention. */
	async updateVersion(input: history.UpdateVersionInput): Promise<Result<Version>> {
		return this.#write((tree) => history.updateVersion(tree, input));
	}

	/** Deletes a version that is not the file's head, freeing its storage. */
	async deleteVersion(input: { nodeId: string; versionId: string; actor: Actor }): Promise<Result<void>> {
		return this.#write((tree) => history.deleteVersion(tree, input));
	}

	/**
	 * Thins a file's history by the retention policy (the hub's [vars] unless
	 * given) at `now` (default: the present). Housekeeping: outside the write budget.
	 */
	async thinVersions(input: { nodeId: string; now?: number; policy?: RetentionPolicy }): Promise<Result<{ expired: number }>> {
		const policy = input.policy ?? retentionPolicy(this.env);
		return this.#contained(
			this.#queue.run(async () =>
				history.thinVersions(await this.#openTree(), { nodeId: input.nodeId, now: input.now ?? Date.now(), policy }),
			),
		);
	}

	/** Renames and/or moves a node. */
	async updateNode(input: UpdateNodeInput): Promise<Result<NodeOutcome>> {
		return this.#write((tree) => ops.updateNode(tree, input));
	}

	/** Moves a node, and a folder's subtree, to the trash. */
	async trashNode(input: ops.TrashInput): Promise<Result<NodeOutcome>> {
		return this.#write((tree) => ops.trashNode(tree, input));
	}

	/** Restores a trashed node with what was trashed together with it. */
	async restoreNode(input: { nodeId: string; by?: string }): Promise<Result<NodeOutcome>> {
		return this.#write((tree) => ops.restoreNode(tree, input));
	}

	/** Settles a conflicted copy: keeps both (clears its mark), the original, or the copy's content as the original's new version. */
	async resolveConflict(input: ops.ResolveConflictInput): Promise<Result<NodeOutcome>> {
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
	async purgeNode(input: { nodeId: string }): Promise<Result<NodeOutcome>> {
		return this.#purgeAfter(await this.#write((tree) => purges.startPurge(tree, input)));
	}

	/** Deletes everything in the trash for good, in the background like {@link purgeNode}; answers how many items. */
	async emptyTrash(): Promise<Result<{ deleted: number }>> {
		return this.#purgeAfter(await this.#write((tree) => purges.startEmptyTrash(tree)));
	}

	/**
	 * Runs every purge under way to its end, one chunk per turn of the queue
	 * so that other changes keep flowing between chunks; returns how many chunks ran.
	 */
	async runPurges(): Promise<Result<{ chunks: number }>> {
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
	async deleteAccount(input: { actor: ActivityActor }): Promise<Result<void>> {
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
	}): Promise<Result<shareOps.ShareOutcome>> {
		return this.#write((tree) => shareOps.shareNode(tree, input));
	}

	/** Removes a member from a share: by the owner, or by the member (leaving). */
	async removeShareMember(input: { shareId: string; memberId: string; actor: ActivityActor }): Promise<Result<shareOps.ShareOutcome>> {
		return this.#write((tree) => shareOps.removeMember(tree, input));
	}

	/** Mounts again a share this user unmounted. */
	async mountShare(input: { shareId: string; parentId: string | null }): Promise<Result<NodeOutcome>> {
		return this.#write((tree) => shareOps.mountShare(tree, input));
	}

	/** Ends a share; every member hears of it. */
	async deleteShare(input: { shareId: string; actor: ActivityActor }): Promise<Result<shareOps.ShareOutcome>> {
		return this.#write((tree) => shareOps.deleteShare(tree, input));
	}

	/**
	 * What an owner's hub delivers about a share this user is in, applied in
	 * this hub's queue as entries of this user's journal. Outside the write
	 * budget: it is someone else's change arriving.
	 */
	async applyShareEvents(delivery: ShareDelivery): Promise<Result<{ appliedId: number }>> {
		return this.#contained(this.#queue.run(async () => shareOps.applyShareEvents(await this.#openTree(), delivery)));
	}

	/** The user's webhook endpoints changed (api, routes/webhooks.ts): look them up again, and catch up a re-enabled one. */
	async webhooksChanged(): Promise<void> {
		await this.#openTree();
		this.#webhooks?.forget();
		this.#webhooks?.changed();
	}

	/** Retries deliveries that failed (a member's hub was unreachable) and runs the purges under way. */
	override async alarm(): Promise<void> {
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
	async #purgeAfter<T>(result: Result<T>): Promise<Result<T>> {
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
	#thinAfter(result: Result<CommitOutcome>, addedWhenCreated: boolean): Result<CommitOutcome> {
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
	async #write<T>(change: (tree: ops.Tree) => Promise<Result<T>>): Promise<Result<T>> {
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
	async #contained<T>(work: Promise<Result<T>>): Promise<Result<T>> {
		try {
			return await work;
		} catch (err) {
			console.error(
				JSON.stringify({ hub: this.#userId, error: redactedCause(err), stack: err instanceof Error ? stackFrames(err) : undefined }),
			);
			if (!isTransient(err)) return fail("INTERNAL", "the change could not be made; it has been logged");
			// A job cut off by its deadline may still land later: what the tree holds in memory is read again.
			if (err instanceof DeadlineExceeded) this.#tree = null;
			return fail("UNAVAILABLE", "the change could not be made now; send it again");
		}
	}

	/** The user's tree in their shard, opened once per instance. */
	#openTree(): Promise<ops.Tree> {
		this.#tree ??= this.#shard().then(
			(shard) => {
				const db = shardAt(this.env, shard);
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
