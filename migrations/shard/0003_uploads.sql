-- Upload sessions (client-chunked, POST /v1/uploads) and tus uploads share
-- these tables: an upload names its target, its ordered block list, and the
-- blocks the service has received for it.

CREATE TABLE uploads (
	id TEXT PRIMARY KEY,
	user_id TEXT NOT NULL,
	protocol TEXT NOT NULL CHECK (protocol IN ('session', 'tus')),
	parent_id TEXT NOT NULL,
	name TEXT NOT NULL,
	-- Declared total size (tus: Upload-Length).
	size INTEGER NOT NULL,
	-- SHA-256 of the whole content: declared by a session client, computed by tus.
	content_hash TEXT,
	base_version_id TEXT,
	on_conflict TEXT NOT NULL DEFAULT 'copy' CHECK (on_conflict IN ('copy', 'fail')),
	device_id TEXT,
	device_name TEXT NOT NULL DEFAULT '',
	created_at TEXT NOT NULL,
	expires_at TEXT NOT NULL,
	-- tus: bytes durably received, and the state needed to continue from
	-- there: the whole-file SHA-256 state and the chunker's pending tail
	-- (stored encrypted in R2 under tail_key).
	offset INTEGER NOT NULL DEFAULT 0,
	hash_state TEXT,
	tail_key TEXT,
	metadata TEXT,
	-- Set once committed; a repeated commit answers the same result.
	committed_version_id TEXT,
	cancelled_at TEXT
);
CREATE INDEX uploads_by_expiry ON uploads(expires_at);

CREATE TABLE upload_blocks (
	upload_id TEXT NOT NULL,
	idx INTEGER NOT NULL,
	offset INTEGER NOT NULL,
	size INTEGER NOT NULL,
	hash TEXT NOT NULL,
	PRIMARY KEY (upload_id, idx)
) WITHOUT ROWID;
CREATE INDEX upload_blocks_by_hash ON upload_blocks(hash);

-- Blocks received for an upload, before any version references them.
CREATE TABLE upload_received (
	upload_id TEXT NOT NULL,
	hash TEXT NOT NULL,
	PRIMARY KEY (upload_id, hash)
) WITHOUT ROWID;

-- The garbage collector asks "does anyone reference this block?" by hash.
CREATE INDEX user_blocks_by_hash ON user_blocks(hash);
