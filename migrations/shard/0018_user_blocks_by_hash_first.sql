-- user_blocks keyed by (hash, user_id) instead of (user_id, hash): every
-- query names the hash (a user's block, or "does anyone hold it?"), so the
-- key serves both and the separate user_blocks_by_hash index, about a
-- quarter of a block's metadata bytes, goes (docs/decisions/0035).
CREATE TABLE user_blocks_new (
	hash TEXT NOT NULL,
	user_id TEXT NOT NULL,
	size INTEGER NOT NULL,
	created_at TEXT NOT NULL,
	PRIMARY KEY (hash, user_id)
) WITHOUT ROWID;
INSERT INTO user_blocks_new (hash, user_id, size, created_at) SELECT hash, user_id, size, created_at FROM user_blocks;
DROP TRIGGER user_blocks_not_doomed;
DROP TABLE user_blocks;
ALTER TABLE user_blocks_new RENAME TO user_blocks;

-- The collector's guard (0006), unchanged: dropping the table dropped it.
CREATE TRIGGER user_blocks_not_doomed BEFORE INSERT ON user_blocks
WHEN NOT EXISTS (SELECT 1 FROM user_blocks u WHERE u.user_id = NEW.user_id AND u.hash = NEW.hash)
	AND EXISTS (
		SELECT 1 FROM doomed_blocks d
		WHERE d.hash = NEW.hash
			AND (d.deleted_seq IS NULL OR d.deleted_seq > COALESCE((SELECT MIN(since_seq) FROM commit_guard), -1))
	)
BEGIN
	SELECT RAISE(ABORT, 'BLOCK_DOOMED');
END;
