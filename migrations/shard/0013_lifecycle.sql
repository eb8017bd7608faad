-- Purges in the background (docs/decisions/0027): a trashed item whose purge
-- has started is marked, hidden from the trash and no longer restorable; the
-- user's hub deletes it chunk by chunk and resumes from the mark after a crash.
ALTER TABLE nodes ADD COLUMN purge_started_at TEXT;
DROP INDEX nodes_trash;
CREATE INDEX nodes_trash ON nodes(user_id, trashed_at DESC, id) WHERE trash_root_id = id AND purge_started_at IS NULL;
CREATE INDEX nodes_purging ON nodes(user_id) WHERE purge_started_at IS NOT NULL;
-- GET /v1/me splits storage used into files, version history and trash: the
-- trash's share is summed over the user's trashed nodes, found by this index.
CREATE INDEX nodes_trashed ON nodes(user_id) WHERE trashed_at IS NOT NULL;
