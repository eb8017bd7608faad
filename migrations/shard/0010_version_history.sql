-- Version history (docs/decisions/0022): a version can be pinned and labelled,
-- both of which exempt it from retention, and records who committed it.
ALTER TABLE versions ADD COLUMN keep_forever INTEGER NOT NULL DEFAULT 0;
ALTER TABLE versions ADD COLUMN label TEXT;
-- The user who committed the version; NULL means the file's owner.
ALTER TABLE versions ADD COLUMN author_id TEXT;
-- Where a cron sweep over this shard stopped, so that bounded runs cover
-- every row over time instead of the first pages again and again.
CREATE TABLE sweep_cursors (
	task TEXT PRIMARY KEY,
	position TEXT NOT NULL,
	updated_at TEXT NOT NULL
) WITHOUT ROWID;
