-- What each user stores, kept by their UserHub in the same batch as every
-- change: the quota check and GET /v1/me read one row instead of summing
-- the user's files (docs/decisions/0018).
CREATE TABLE user_usage (
	user_id TEXT PRIMARY KEY,
	-- Bytes of every version the user can still download, trashed files included.
	version_bytes INTEGER NOT NULL DEFAULT 0,
	-- Nodes the user has (files and folders, trashed ones included).
	nodes INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;
INSERT INTO user_usage (user_id, version_bytes, nodes)
	SELECT n.user_id,
		(SELECT COALESCE(SUM(v.size), 0) FROM versions v WHERE v.user_id = n.user_id),
		COUNT(*)
	FROM nodes n GROUP BY n.user_id;

-- A user's uploads still open (neither committed nor cancelled): their count,
-- listed blocks and declared bytes are capped per user.
CREATE INDEX uploads_open_by_user ON uploads(user_id) WHERE committed_version_id IS NULL AND cancelled_at IS NULL;
-- How many blocks the upload's list holds, kept with each insert into upload_blocks.
ALTER TABLE uploads ADD COLUMN listed_blocks INTEGER NOT NULL DEFAULT 0;
UPDATE uploads SET listed_blocks = (SELECT COUNT(*) FROM upload_blocks b WHERE b.upload_id = uploads.id);

-- Blocks that may have lost their last reference in this shard (a purge, a
-- dead upload, a refused request). The collector checks each against every
-- shard before it deletes anything.
CREATE TABLE gc_candidates (
	hash TEXT PRIMARY KEY,
	enqueued_at TEXT NOT NULL
) WITHOUT ROWID;
CREATE INDEX gc_candidates_by_age ON gc_candidates(enqueued_at);
