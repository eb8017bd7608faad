-- Public links (docs/decisions/0023-public-links.md). They live in the
-- directory because an anonymous request has only its token: one global
-- lookup must find the link, its owner and the owner's shard.

CREATE TABLE links (
	id TEXT PRIMARY KEY,
	-- SHA-256 (hex) of the 128-bit token; the token itself is shown once, at creation, and never stored.
	token_hash TEXT NOT NULL UNIQUE,
	-- Whose node it points at; their shard holds the node, their quota pays for uploads.
	owner_id TEXT NOT NULL REFERENCES users(id),
	-- A node id, not a path: the link follows its target through renames and moves.
	node_id TEXT NOT NULL,
	created_by TEXT NOT NULL REFERENCES users(id),
	access TEXT NOT NULL CHECK (access IN ('view', 'upload', 'view_upload')),
	-- Self-describing PBKDF2 string like users.password_hash; NULL for no password.
	password_hash TEXT,
	-- Bumped by every password change: link sessions carry it, so a change ends them.
	password_version INTEGER NOT NULL DEFAULT 0,
	expires_at TEXT,
	max_downloads INTEGER,
	-- Downloads that started at byte 0 (Range continuations are not counted).
	download_count INTEGER NOT NULL DEFAULT 0,
	created_at TEXT NOT NULL,
	revoked_at TEXT
);
CREATE INDEX links_by_node ON links(owner_id, node_id);
