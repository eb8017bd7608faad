/**
 * Drizzle tables for both kinds of D1 database. `migrations/` is the source of
 * truth; `test/api/schema.test.ts` applies the migrations and exercises every
 * table through these definitions, so drift fails a test.
 */
import { sql } from "drizzle-orm";
import { index, integer, primaryKey, sqliteTable, text, uniqueIndex } from "drizzle-orm/sqlite-core";

// ---- directory database -------------------------------------------------

export const users = sqliteTable("users", {
	id: text("id").primaryKey(),
	email: text("email").notNull().unique(),
	passwordHash: text("password_hash").notNull(),
	shard: integer("shard").notNull(),
	quotaBytes: integer("quota_bytes").notNull(),
	createdAt: text("created_at").notNull(),
});

export const devices = sqliteTable(
	"devices",
	{
		id: text("id").primaryKey(),
		userId: text("user_id")
			.notNull()
			.references(() => users.id),
		name: text("name").notNull(),
		createdAt: text("created_at").notNull(),
		lastSeenAt: text("last_seen_at").notNull(),
		revokedAt: text("revoked_at"),
	},
	(t) => [
		index("devices_by_user").on(t.userId),
		index("devices_signed_out")
			.on(t.revokedAt)
			.where(sql`revoked_at IS NOT NULL`),
	],
);

export const refreshTokens = sqliteTable(
	"refresh_tokens",
	{
		tokenHash: text("token_hash").primaryKey(),
		userId: text("user_id")
			.notNull()
			.references(() => users.id),
		deviceId: text("device_id")
			.notNull()
			.references(() => devices.id),
		createdAt: text("created_at").notNull(),
		expiresAt: text("expires_at").notNull(),
		revokedAt: text("revoked_at"),
		successor: text("successor"),
	},
	(t) => [index("refresh_tokens_by_device").on(t.deviceId), index("refresh_tokens_by_expiry").on(t.expiresAt)],
);

export const throttleCounters = sqliteTable(
	"throttle_counters",
	{
		key: text("key").primaryKey(),
		hits: integer("hits").notNull(),
		windowStartedAt: integer("window_started_at").notNull(),
		lastHitAt: integer("last_hit_at").notNull(),
	},
	(t) => [index("throttle_counters_by_window").on(t.windowStartedAt)],
);

/** Public links (migrations/directory/0003_links.sql): only the token's SHA-256 is stored. */
export const links = sqliteTable(
	"links",
	{
		id: text("id").primaryKey(),
		tokenHash: text("token_hash").notNull().unique(),
		ownerId: text("owner_id")
			.notNull()
			.references(() => users.id),
		nodeId: text("node_id").notNull(),
		createdBy: text("created_by")
			.notNull()
			.references(() => users.id),
		access: text("access", { enum: ["view", "upload", "view_upload"] }).notNull(),
		passwordHash: text("password_hash"),
		passwordVersion: integer("password_version").notNull().default(0),
		expiresAt: text("expires_at"),
		maxDownloads: integer("max_downloads"),
		downloadCount: integer("download_count").notNull().default(0),
		createdAt: text("created_at").notNull(),
		revokedAt: text("revoked_at"),
	},
	(t) => [index("links_by_node").on(t.ownerId, t.nodeId)],
);

/** Progress of the collector's runs, per task and scope (migrations/directory/0004_lifecycle_runs.sql). */
export const lifecycleRuns = sqliteTable(
	"lifecycle_runs",
	{
		task: text("task").notNull(),
		prefix: text("prefix").notNull(),
		cursor: text("cursor"),
		startedAt: text("started_at").notNull(),
		examined: integer("examined").notNull().default(0),
		deleted: integer("deleted").notNull().default(0),
		queued: integer("queued").notNull().default(0),
		tiered: integer("tiered").notNull().default(0),
		finishedAt: text("finished_at"),
		updatedAt: text("updated_at").notNull(),
	},
	(t) => [primaryKey({ columns: [t.task, t.prefix] })],
);

// ---- shard databases ----------------------------------------------------

export const nodes = sqliteTable(
	"nodes",
	{
		id: text("id").primaryKey(),
		userId: text("user_id").notNull(),
		parentId: text("parent_id"),
		type: text("type", { enum: ["file", "folder"] }).notNull(),
		name: text("name").notNull(),
		nameKey: text("name_key").notNull(),
		size: integer("size").notNull().default(0),
		headVersionId: text("head_version_id"),
		contentHash: text("content_hash"),
		createdAt: text("created_at").notNull(),
		modifiedAt: text("modified_at").notNull(),
		trashedAt: text("trashed_at"),
		trashRootId: text("trash_root_id"),
		/** For an unresolved conflicted copy: the file it lost against. */
		conflictOf: text("conflict_of"),
		/** On a member's mount row: the share it stands for (migrations/shard/0011_sharing.sql). */
		mountShareId: text("mount_share_id"),
		/** On a trashed item being deleted forever: when its purge started (migrations/shard/0013_lifecycle.sql). */
		purgeStartedAt: text("purge_started_at"),
	},
	(t) => [
		uniqueIndex("nodes_root")
			.on(t.userId)
			.where(sql`parent_id IS NULL`),
		uniqueIndex("nodes_live_names")
			.on(t.userId, t.parentId, t.nameKey)
			.where(sql`trashed_at IS NULL`),
		index("nodes_by_parent").on(t.parentId),
		index("nodes_mounts")
			.on(t.userId, t.mountShareId)
			.where(sql`mount_share_id IS NOT NULL`),
	],
);

export const versions = sqliteTable(
	"versions",
	{
		id: text("id").primaryKey(),
		userId: text("user_id").notNull(),
		nodeId: text("node_id").notNull(),
		parentVersionId: text("parent_version_id").notNull(),
		size: integer("size").notNull(),
		contentHash: text("content_hash").notNull(),
		blockCount: integer("block_count").notNull(),
		deviceId: text("device_id"),
		createdAt: text("created_at").notNull(),
		/** False while a client-declared content_hash has not been checked against the blocks. */
		hashVerified: integer("hash_verified", { mode: "boolean" }).notNull().default(true),
		/** Pinned: retention never drops it (docs/decisions/0022). */
		keepForever: integer("keep_forever", { mode: "boolean" }).notNull().default(false),
		/** A user's note; a labelled version is kept like a pinned one. */
		label: text("label"),
		/** The user who committed it; null means the file's owner. */
		authorId: text("author_id"),
		/** The month it was last read, as YYYYMM (null: never); written at most once a month (services/tiering.ts). */
		readMonth: integer("read_month"),
	},
	(t) => [
		uniqueIndex("versions_lineage").on(t.nodeId, t.parentVersionId),
		index("versions_unverified")
			.on(t.createdAt)
			.where(sql`hash_verified = 0`),
	],
);

export const versionBlocks = sqliteTable(
	"version_blocks",
	{
		versionId: text("version_id").notNull(),
		offset: integer("offset").notNull(),
		size: integer("size").notNull(),
		hash: text("hash").notNull(),
	},
	(t) => [primaryKey({ columns: [t.versionId, t.offset] }), index("version_blocks_by_hash").on(t.hash)],
);

export const userBlocks = sqliteTable(
	"user_blocks",
	{
		userId: text("user_id").notNull(),
		hash: text("hash").notNull(),
		size: integer("size").notNull(),
		createdAt: text("created_at").notNull(),
	},
	// Hash first: one key serves "this user's block" and "anyone's block" (docs/decisions/0035).
	(t) => [primaryKey({ columns: [t.hash, t.userId] })],
);

export const changes = sqliteTable(
	"changes",
	{
		userId: text("user_id").notNull(),
		seq: integer("seq").notNull(),
		kind: text("kind", { enum: ["created", "updated", "moved", "trashed", "restored", "deleted"] }).notNull(),
		nodeId: text("node_id").notNull(),
		node: text("node").notNull(),
		createdAt: text("created_at").notNull(),
		/** Why a node left a member's view: moved_out, unshared, unmounted. */
		reason: text("reason"),
		/** Where a move came from: JSON {"parent_id", "name"} (webhooks' file.moved). */
		previous: text("previous"),
	},
	(t) => [primaryKey({ columns: [t.userId, t.seq] })],
);

export const journalState = sqliteTable("journal_state", {
	userId: text("user_id").primaryKey(),
	prunedThrough: integer("pruned_through").notNull(),
});

export const uploads = sqliteTable(
	"uploads",
	{
		id: text("id").primaryKey(),
		userId: text("user_id").notNull(),
		protocol: text("protocol", { enum: ["session", "tus"] }).notNull(),
		parentId: text("parent_id").notNull(),
		name: text("name").notNull(),
		size: integer("size").notNull(),
		contentHash: text("content_hash"),
		baseVersionId: text("base_version_id"),
		onConflict: text("on_conflict", { enum: ["copy", "fail"] })
			.notNull()
			.default("copy"),
		deviceId: text("device_id"),
		deviceName: text("device_name").notNull().default(""),
		createdAt: text("created_at").notNull(),
		expiresAt: text("expires_at").notNull(),
		/** tus: bytes durably received; sessions: bytes the block list covers so far. */
		offset: integer("offset").notNull().default(0),
		/** Sessions: the block list continues (POST /v1/uploads/:id/block-list); not committable yet. */
		moreBlocks: integer("more_blocks", { mode: "boolean" }).notNull().default(false),
		/** tus: the whole-file SHA-256 state at `offset` (sha256-resumable.ts), so any isolate can continue it. */
		hashState: text("hash_state"),
		tailKey: text("tail_key"),
		metadata: text("metadata"),
		committedVersionId: text("committed_version_id"),
		cancelledAt: text("cancelled_at"),
		/** How many blocks the upload's list holds. */
		listedBlocks: integer("listed_blocks").notNull().default(0),
		/** tus: the length is not known yet (Upload-Defer-Length: 1); `size` is 0 until it is. */
		lengthDeferred: integer("length_deferred", { mode: "boolean" }).notNull().default(false),
		/** tus: the Upload-Concat header it was created with ("partial" or "final;…"), or null. */
		concat: text("concat"),
		/** The member who opened it, when it goes into someone else's share (its owner is user_id). */
		actorId: text("actor_id"),
		/** For a member's upload into a share: the owner whose folder `parentId` is (the row is the member's). */
		ownerId: text("owner_id"),
		/** With `ownerId`: the owner's shard's gc clock read before any block was written (docs/decisions/0017). */
		ownerSince: integer("owner_since"),
		/** A new file only (create_only, If-None-Match: *): a live file at the name is not given a version (commit/plan.ts). */
		createOnly: integer("create_only", { mode: "boolean" }).notNull().default(false),
	},
	(t) => [
		index("uploads_by_expiry").on(t.expiresAt),
		index("uploads_open_by_user")
			.on(t.userId)
			.where(sql`committed_version_id IS NULL AND cancelled_at IS NULL`),
	],
);

export const uploadBlocks = sqliteTable(
	"upload_blocks",
	{
		uploadId: text("upload_id").notNull(),
		idx: integer("idx").notNull(),
		offset: integer("offset").notNull(),
		size: integer("size").notNull(),
		hash: text("hash").notNull(),
	},
	(t) => [primaryKey({ columns: [t.uploadId, t.idx] }), index("upload_blocks_by_hash").on(t.hash)],
);

export const userUsage = sqliteTable("user_usage", {
	userId: text("user_id").primaryKey(),
	/** Bytes of every version the user can still download, trashed files included. */
	versionBytes: integer("version_bytes").notNull().default(0),
	/** Nodes the user has, trashed ones included. */
	nodes: integer("nodes").notNull().default(0),
});

export const gcCandidates = sqliteTable(
	"gc_candidates",
	{
		hash: text("hash").primaryKey(),
		enqueuedAt: text("enqueued_at").notNull(),
	},
	(t) => [index("gc_candidates_by_age").on(t.enqueuedAt)],
);

/** This shard's count of recorded block deletions (one row, id 0): the collector's logical clock. */
export const gcClock = sqliteTable("gc_clock", {
	id: integer("id").primaryKey(),
	seq: integer("seq").notNull(),
});

/** A collector run's tombstone for a block, in every shard; deletedSeq is set once the R2 object is gone. */
/** Blocks rewritten in R2's InfrequentAccess class; a row is stale once the object was written after `since` (services/tiering.ts). */
export const blockTiers = sqliteTable("block_tiers", {
	hash: text("hash").primaryKey(),
	tier: text("tier").notNull(),
	since: text("since").notNull(),
	size: integer("size").notNull(),
});

export const doomedBlocks = sqliteTable(
	"doomed_blocks",
	{
		hash: text("hash").notNull(),
		runId: text("run_id").notNull(),
		doomedAt: text("doomed_at").notNull(),
		deletedSeq: integer("deleted_seq"),
		deletedAt: text("deleted_at"),
	},
	(t) => [
		primaryKey({ columns: [t.hash, t.runId] }),
		index("doomed_blocks_pending")
			.on(t.doomedAt)
			.where(sql`deleted_seq IS NULL`),
		index("doomed_blocks_deleted")
			.on(t.deletedAt)
			.where(sql`deleted_seq IS NOT NULL`),
	],
);

/** The gc_clock value an upload's received blocks were all written after (kept by a trigger and the hub). */
export const uploadSince = sqliteTable("upload_since", {
	uploadId: text("upload_id").primaryKey(),
	seq: integer("seq").notNull(),
});

/** The guard row of a content commit in flight, read by the user_blocks trigger; empty between batches. */
export const commitGuard = sqliteTable("commit_guard", {
	sinceSeq: integer("since_seq").notNull(),
});

export const uploadReceived = sqliteTable(
	"upload_received",
	{
		uploadId: text("upload_id").notNull(),
		hash: text("hash").notNull(),
	},
	(t) => [primaryKey({ columns: [t.uploadId, t.hash] })],
);

export type UploadRow = typeof uploads.$inferSelect;
export type NodeRow = typeof nodes.$inferSelect;
export type VersionRow = typeof versions.$inferSelect;
export type UserRow = typeof users.$inferSelect;
export type DeviceRow = typeof devices.$inferSelect;
export type LinkRow = typeof links.$inferSelect;

export const activity = sqliteTable(
	"activity",
	{
		userId: text("user_id").notNull(),
		id: text("id").notNull(),
		at: text("at").notNull(),
		event: text("event").notNull(),
		actorType: text("actor_type", { enum: ["user", "link", "system"] }).notNull(),
		actorId: text("actor_id"),
		actorDevice: text("actor_device"),
		nodeId: text("node_id"),
		shareId: text("share_id"),
		linkId: text("link_id"),
		versionId: text("version_id"),
		details: text("details"),
	},
	(t) => [
		primaryKey({ columns: [t.userId, t.id] }),
		index("activity_by_node")
			.on(t.userId, t.nodeId, t.id)
			.where(sql`node_id IS NOT NULL`),
		index("activity_by_time").on(t.at),
	],
);

export const shares = sqliteTable(
	"shares",
	{
		id: text("id").primaryKey(),
		ownerId: text("owner_id").notNull(),
		nodeId: text("node_id").notNull(),
		createdAt: text("created_at").notNull(),
	},
	(t) => [uniqueIndex("shares_by_node").on(t.ownerId, t.nodeId)],
);

export const shareMembers = sqliteTable(
	"share_members",
	{
		shareId: text("share_id").notNull(),
		ownerId: text("owner_id").notNull(),
		memberId: text("member_id").notNull(),
		email: text("email").notNull(),
		role: text("role", { enum: ["viewer", "editor"] }).notNull(),
		addedAt: text("added_at").notNull(),
		removedAt: text("removed_at"),
		deliveredId: integer("delivered_id").notNull().default(0),
	},
	(t) => [primaryKey({ columns: [t.shareId, t.memberId] }), index("share_members_by_owner").on(t.ownerId)],
);

export const shareOutbox = sqliteTable(
	"share_outbox",
	{
		id: integer("id").primaryKey({ autoIncrement: true }),
		ownerId: text("owner_id").notNull(),
		shareId: text("share_id").notNull(),
		memberId: text("member_id"),
		event: text("event").notNull(),
		visibility: text("visibility", { enum: ["in", "out", "both"] }).notNull(),
		nodeId: text("node_id").notNull(),
		node: text("node").notNull(),
		details: text("details"),
		createdAt: text("created_at").notNull(),
	},
	(t) => [index("share_outbox_by_share").on(t.shareId, t.id)],
);

export const incomingShares = sqliteTable(
	"incoming_shares",
	{
		userId: text("user_id").notNull(),
		shareId: text("share_id").notNull(),
		ownerId: text("owner_id").notNull(),
		ownerEmail: text("owner_email").notNull(),
		rootId: text("root_id").notNull(),
		rootType: text("root_type", { enum: ["file", "folder"] }).notNull(),
		rootName: text("root_name").notNull(),
		role: text("role", { enum: ["viewer", "editor"] }).notNull(),
		mountId: text("mount_id"),
		appliedId: integer("applied_id").notNull().default(0),
		sharedAt: text("shared_at").notNull(),
	},
	(t) => [primaryKey({ columns: [t.userId, t.shareId] })],
);

/** Where a bounded cron sweep over a shard stopped (migrations/shard/0010_version_history.sql). */
export const sweepCursors = sqliteTable("sweep_cursors", {
	task: text("task").primaryKey(),
	position: text("position").notNull(),
	updatedAt: text("updated_at").notNull(),
});

// ---- outgoing webhooks (migrations/shard/0015_webhooks.sql) --------------

export const webhookEndpoints = sqliteTable(
	"webhook_endpoints",
	{
		id: text("id").primaryKey(),
		userId: text("user_id").notNull(),
		url: text("url").notNull(),
		description: text("description").notNull().default(""),
		/** JSON array of event types; null: every event. */
		eventTypes: text("event_types"),
		/** Encrypted signing secret ("keyId:base64url"). */
		secret: text("secret").notNull(),
		previousSecret: text("previous_secret"),
		previousSecretUntil: text("previous_secret_until"),
		status: text("status", { enum: ["enabled", "disabled"] }).notNull(),
		disabledReason: text("disabled_reason"),
		disabledAt: text("disabled_at"),
		enqueuedThroughSeq: integer("enqueued_through_seq").notNull(),
		/** The activity id up to which share events have deliveries. */
		activityThrough: text("activity_through").notNull().default(""),
		failingSince: text("failing_since"),
		lastFailureAt: text("last_failure_at"),
		lastSuccessAt: text("last_success_at"),
		createdAt: text("created_at").notNull(),
		updatedAt: text("updated_at").notNull(),
	},
	(t) => [index("webhook_endpoints_by_user").on(t.userId, t.createdAt)],
);
export type WebhookEndpointRow = typeof webhookEndpoints.$inferSelect;

export const webhookDeliveries = sqliteTable(
	"webhook_deliveries",
	{
		id: text("id").primaryKey(),
		userId: text("user_id").notNull(),
		endpointId: text("endpoint_id").notNull(),
		seq: integer("seq"),
		type: text("type").notNull(),
		payload: text("payload"),
		status: text("status", { enum: ["pending", "succeeded", "failed"] }).notNull(),
		attempts: integer("attempts").notNull().default(0),
		failures: integer("failures").notNull().default(0),
		generation: integer("generation").notNull().default(0),
		nextAttemptAt: integer("next_attempt_at").notNull(),
		claimedUntil: integer("claimed_until"),
		lastStatus: integer("last_status"),
		lastError: text("last_error"),
		createdAt: text("created_at").notNull(),
		updatedAt: text("updated_at").notNull(),
	},
	(t) => [
		index("webhook_deliveries_by_endpoint").on(t.endpointId, t.createdAt, t.id),
		index("webhook_deliveries_due")
			.on(t.nextAttemptAt)
			.where(sql`status = 'pending'`),
		index("webhook_deliveries_by_time").on(t.createdAt),
	],
);
export type WebhookDeliveryRow = typeof webhookDeliveries.$inferSelect;

export const webhookAttempts = sqliteTable(
	"webhook_attempts",
	{
		deliveryId: text("delivery_id").notNull(),
		n: integer("n").notNull(),
		at: text("at").notNull(),
		status: integer("status"),
		error: text("error"),
		durationMs: integer("duration_ms").notNull(),
		response: text("response"),
	},
	(t) => [primaryKey({ columns: [t.deliveryId, t.n] })],
);
export type WebhookAttemptRow = typeof webhookAttempts.$inferSelect;

/** Users whose rows moved out of this shard: their writes here are refused (docs/decisions/0034). */
export const movedUsers = sqliteTable("moved_users", {
	userId: text("user_id").primaryKey(),
	toShard: integer("to_shard").notNull(),
	movedAt: text("moved_at").notNull(),
	cleaning: integer("cleaning").notNull().default(0),
});
