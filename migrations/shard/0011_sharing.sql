-- Sharing with people (docs/decisions/0024). The owner's shard is the one
-- source of truth: shares, their members and the outbox are written only by
-- the owner's UserHub; a member's shard holds only that member's view
-- (incoming_shares and one mount row in nodes), written by the member's hub.

-- A folder or file the owner shares; one share per node.
CREATE TABLE shares (
	id TEXT PRIMARY KEY,
	owner_id TEXT NOT NULL,
	node_id TEXT NOT NULL,
	created_at TEXT NOT NULL
);
CREATE UNIQUE INDEX shares_by_node ON shares(owner_id, node_id);

-- Who a share is with. A removed member's row stays (removed_at set) until the
-- removal has been delivered to them, then goes.
CREATE TABLE share_members (
	share_id TEXT NOT NULL,
	owner_id TEXT NOT NULL,
	member_id TEXT NOT NULL,
	email TEXT NOT NULL,
	role TEXT NOT NULL CHECK (role IN ('viewer', 'editor')),
	added_at TEXT NOT NULL,
	removed_at TEXT,
	-- The last outbox id this member's hub has applied.
	delivered_id INTEGER NOT NULL DEFAULT 0,
	PRIMARY KEY (share_id, member_id)
) WITHOUT ROWID;
CREATE INDEX share_members_by_owner ON share_members(owner_id);

-- Changes members must hear about, in the order the owner's hub made them,
-- written in the same batch as the change. Pruned once every member has them.
CREATE TABLE share_outbox (
	id INTEGER PRIMARY KEY AUTOINCREMENT,
	owner_id TEXT NOT NULL,
	share_id TEXT NOT NULL,
	-- NULL: for every member; else only for this one (added, removed).
	member_id TEXT,
	-- A journal kind, or member_added / role_changed / member_removed / share_deleted.
	event TEXT NOT NULL,
	-- in: became visible to members; out: stopped being visible; both.
	visibility TEXT NOT NULL CHECK (visibility IN ('in', 'out', 'both')),
	node_id TEXT NOT NULL,
	-- The node as the owner's journal recorded it (JSON).
	node TEXT NOT NULL,
	-- For membership events: {"role": …} (JSON).
	details TEXT,
	created_at TEXT NOT NULL
);
CREATE INDEX share_outbox_by_share ON share_outbox(share_id, id);

-- A member's view of a share made with them.
CREATE TABLE incoming_shares (
	user_id TEXT NOT NULL,
	share_id TEXT NOT NULL,
	owner_id TEXT NOT NULL,
	owner_email TEXT NOT NULL,
	root_id TEXT NOT NULL,
	root_type TEXT NOT NULL CHECK (root_type IN ('file', 'folder')),
	root_name TEXT NOT NULL,
	role TEXT NOT NULL CHECK (role IN ('viewer', 'editor')),
	-- The mount row in this user's tree; NULL once unmounted.
	mount_id TEXT,
	-- The last owner outbox id applied here: a redelivery at or below it is skipped.
	applied_id INTEGER NOT NULL DEFAULT 0,
	shared_at TEXT NOT NULL,
	PRIMARY KEY (user_id, share_id)
) WITHOUT ROWID;

-- A mount row: a node of the member's tree standing for a share's root.
ALTER TABLE nodes ADD COLUMN mount_share_id TEXT;
CREATE INDEX nodes_mounts ON nodes(user_id, mount_share_id) WHERE mount_share_id IS NOT NULL;

-- Why a node left a member's view: moved_out, unshared, unmounted.
ALTER TABLE changes ADD COLUMN reason TEXT;

-- Who committed a version, and whose upload it is, when not the owner.
ALTER TABLE uploads ADD COLUMN actor_id TEXT;
