-- The directory database: who the users are, their devices and sessions, and
-- which shard holds each user's files (docs/decisions/0002-user-shard-directory.md).

CREATE TABLE users (
	id TEXT PRIMARY KEY,
	-- NFC, lower-cased: the login identity.
	email TEXT NOT NULL UNIQUE,
	-- Self-describing PBKDF2 string: pbkdf2-sha256$<iterations>$<salt>$<hash>.
	password_hash TEXT NOT NULL,
	-- Index of the SHARD_<n> binding holding the user's rows. Moving a user
	-- rewrites this one column after the rows are copied.
	shard INTEGER NOT NULL,
	quota_bytes INTEGER NOT NULL,
	created_at TEXT NOT NULL
);

-- Each login is a device; a device owns at most one live refresh token.
CREATE TABLE devices (
	id TEXT PRIMARY KEY,
	user_id TEXT NOT NULL REFERENCES users(id),
	name TEXT NOT NULL,
	created_at TEXT NOT NULL,
	last_seen_at TEXT NOT NULL,
	revoked_at TEXT
);
CREATE INDEX devices_by_user ON devices(user_id);

-- Refresh tokens are stored as SHA-256 hashes only. A rotated token keeps its
-- row (revoked_at set) so that a replay can be recognised as theft.
CREATE TABLE refresh_tokens (
	token_hash TEXT PRIMARY KEY,
	user_id TEXT NOT NULL REFERENCES users(id),
	device_id TEXT NOT NULL REFERENCES devices(id),
	created_at TEXT NOT NULL,
	expires_at TEXT NOT NULL,
	revoked_at TEXT
);
CREATE INDEX refresh_tokens_by_device ON refresh_tokens(device_id);

-- Failed logins per email and per client address, for throttling.
CREATE TABLE login_failures (
	key TEXT PRIMARY KEY,
	failures INTEGER NOT NULL,
	window_started_at INTEGER NOT NULL,
	last_failed_at INTEGER NOT NULL
);
