-- A shard database: all rows of the users the directory assigns to it.
-- Every table is reachable from user_id (directly, or through its version or
-- upload), so a user's rows can be copied out when the user moves shard.

-- Files and folders. A user's root is the one folder with parent_id NULL.
CREATE TABLE nodes (
	id TEXT PRIMARY KEY,
	user_id TEXT NOT NULL,
	parent_id TEXT,
	type TEXT NOT NULL CHECK (type IN ('file', 'folder')),
	name TEXT NOT NULL,
	-- Case- and normalization-folded name: siblings must differ in it.
	name_key TEXT NOT NULL,
	size INTEGER NOT NULL DEFAULT 0,
	head_version_id TEXT,
	content_hash TEXT,
	created_at TEXT NOT NULL,
	modified_at TEXT NOT NULL,
	-- Set on every node of a trashed subtree; trash_root_id names the node
	-- the user deleted, so that restoring it brings back exactly its subtree.
	trashed_at TEXT,
	trash_root_id TEXT
);
CREATE UNIQUE INDEX nodes_root ON nodes(user_id) WHERE parent_id IS NULL;
-- Unique live names per folder; also the keyset index for listing children.
CREATE UNIQUE INDEX nodes_live_names ON nodes(user_id, parent_id, name_key) WHERE trashed_at IS NULL;
CREATE INDEX nodes_by_parent ON nodes(parent_id);
CREATE INDEX nodes_trash ON nodes(user_id, trashed_at DESC, id) WHERE trash_root_id = id;
CREATE INDEX nodes_by_trash_root ON nodes(trash_root_id) WHERE trash_root_id IS NOT NULL;

-- File versions. parent_version_id is the head the commit was based on (''
-- for a file's first version). The unique index makes the head a
-- compare-and-swap: two commits on the same base can never both land.
CREATE TABLE versions (
	id TEXT PRIMARY KEY,
	user_id TEXT NOT NULL,
	node_id TEXT NOT NULL,
	parent_version_id TEXT NOT NULL,
	size INTEGER NOT NULL,
	content_hash TEXT NOT NULL,
	block_count INTEGER NOT NULL,
	device_id TEXT,
	created_at TEXT NOT NULL
);
CREATE UNIQUE INDEX versions_lineage ON versions(node_id, parent_version_id);

-- The ordered block list of each version, keyed by byte offset so that a
-- Range request reads only the blocks it needs.
CREATE TABLE version_blocks (
	version_id TEXT NOT NULL,
	offset INTEGER NOT NULL,
	size INTEGER NOT NULL,
	hash TEXT NOT NULL,
	PRIMARY KEY (version_id, offset)
) WITHOUT ROWID;
CREATE INDEX version_blocks_by_hash ON version_blocks(hash);

-- Blocks each user references: the per-user dedup index (a block is "present"
-- for a user only if that user already has it) and the garbage collector's
-- mark set.
CREATE TABLE user_blocks (
	user_id TEXT NOT NULL,
	hash TEXT NOT NULL,
	size INTEGER NOT NULL,
	created_at TEXT NOT NULL,
	PRIMARY KEY (user_id, hash)
) WITHOUT ROWID;

-- The change journal. seq is assigned by the user's UserHub in the same batch
-- as the change, so a change and its number land together or not at all.
CREATE TABLE changes (
	user_id TEXT NOT NULL,
	seq INTEGER NOT NULL,
	kind TEXT NOT NULL CHECK (kind IN ('created', 'updated', 'moved', 'trashed', 'restored', 'deleted')),
	node_id TEXT NOT NULL,
	-- The node as it was right after the change (JSON, the API's node shape).
	node TEXT NOT NULL,
	created_at TEXT NOT NULL,
	PRIMARY KEY (user_id, seq)
) WITHOUT ROWID;
