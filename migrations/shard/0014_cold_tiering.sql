-- Cold tiering (docs/decisions/0027, docs/storage.md "Cold storage").
-- The month a version was last read, as YYYYMM: a download writes it at most
-- once per version per month, so reads cost no write of their own.
ALTER TABLE versions ADD COLUMN read_month INTEGER;
-- Blocks the collector's scan rewrote in R2's InfrequentAccess class, in the
-- shard the hash falls in (like gc candidates). `since` is the rewritten
-- object's upload time: a later write of the object (a re-upload, always
-- Standard) makes the row stale, and the next scan drops it.
CREATE TABLE block_tiers (
	hash TEXT PRIMARY KEY,
	tier TEXT NOT NULL,
	since TEXT NOT NULL,
	size INTEGER NOT NULL
) WITHOUT ROWID;
