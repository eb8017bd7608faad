-- Sync: the journal's retention floor and the conflicted-copy list.

-- The highest seq pruned from each user's journal. A cursor below it has
-- missed changes and must be reset (410 CURSOR_RESET).
CREATE TABLE journal_state (
	user_id TEXT PRIMARY KEY,
	pruned_through INTEGER NOT NULL
);
CREATE INDEX changes_by_time ON changes(created_at);

-- A conflicted copy names the file it lost against, until the user resolves
-- it (renames it, deletes it, or marks it resolved).
ALTER TABLE nodes ADD COLUMN conflict_of TEXT;
CREATE INDEX nodes_open_conflicts ON nodes(user_id, created_at) WHERE conflict_of IS NOT NULL;
