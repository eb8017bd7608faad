-- The block collector's tombstones and the commit guard (docs/decisions/0017).
-- Blocks are shared by every user of every shard, and no transaction spans
-- shards: the collector marks a block doomed in every shard before it
-- deletes it, and a commit refuses, in its own D1 batch, to reference a block
-- deleted after its bytes were written.

-- This shard's count of recorded block deletions: a logical clock, so that
-- "deleted after these bytes were written" never compares two machines' clocks.
CREATE TABLE gc_clock (
	id INTEGER PRIMARY KEY,
	seq INTEGER NOT NULL
);
INSERT INTO gc_clock (id, seq) VALUES (0, 0);

-- A collector run's tombstone for a block, written into every shard before
-- the R2 object may be deleted. deleted_seq stays NULL until the object is
-- gone (and recorded under the next gc_clock value); a run that finds the
-- block still needed removes its own rows instead.
CREATE TABLE doomed_blocks (
	hash TEXT NOT NULL,
	run_id TEXT NOT NULL,
	doomed_at TEXT NOT NULL,
	deleted_seq INTEGER,
	deleted_at TEXT,
	PRIMARY KEY (hash, run_id)
) WITHOUT ROWID;
-- Runs that died before recording their deletions, and tombstones old enough to drop.
CREATE INDEX doomed_blocks_pending ON doomed_blocks(doomed_at) WHERE deleted_seq IS NULL;
CREATE INDEX doomed_blocks_deleted ON doomed_blocks(deleted_at) WHERE deleted_seq IS NOT NULL;

-- For each upload, the gc_clock value its received blocks were all written
-- after: the clock at creation, moved forward when a commit is refused for
-- blocks deleted meanwhile (their receipts are dropped then, so they are sent again).
CREATE TABLE upload_since (
	upload_id TEXT PRIMARY KEY,
	seq INTEGER NOT NULL
) WITHOUT ROWID;
INSERT INTO upload_since (upload_id, seq) SELECT id, 0 FROM uploads;
CREATE TRIGGER uploads_since AFTER INSERT ON uploads
BEGIN
	INSERT INTO upload_since (upload_id, seq) SELECT NEW.id, seq FROM gc_clock WHERE id = 0;
END;

-- One row per content commit, inserted first in its batch and deleted last
-- (triggers take no parameters): the gc_clock value the commit's blocks were
-- written after. An upload's commit inserts NULL, and so fails, once the
-- upload is no longer open (cancelled, committed or removed meanwhile).
CREATE TABLE commit_guard (
	since_seq INTEGER NOT NULL
);

-- A user's new reference to a block is refused while the block is doomed,
-- or if it was deleted after the commit's bytes were written. A block the
-- user already references is present: the collector deletes only blocks
-- nobody references once its tombstones are in place. With no guard row, any
-- tombstone refuses.
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
