-- An upload session's block list may arrive in parts (POST
-- /v1/uploads/:id/block-list), so a client can start sending blocks before
-- it has hashed the whole file. For sessions, `offset` now counts the bytes
-- the block list covers so far (tus keeps its meaning: bytes received), and
-- `more_blocks` says the list is not complete yet; such a session cannot be
-- committed.
ALTER TABLE uploads ADD COLUMN more_blocks INTEGER NOT NULL DEFAULT 0;
UPDATE uploads SET offset = size WHERE protocol = 'session';
