-- tus creation-defer-length and concatenation (docs/api.md "tus").
-- `length_deferred` is 1 while a tus upload's length is not known yet
-- (created with Upload-Defer-Length: 1); `size` is 0 until a PATCH declares
-- it with Upload-Length.
ALTER TABLE uploads ADD COLUMN length_deferred INTEGER NOT NULL DEFAULT 0;
-- The Upload-Concat header a tus upload was created with: 'partial' (a part,
-- never committed on its own) or 'final;<url> <url> …' (the partials'
-- blocks, in that order); NULL for an ordinary upload.
ALTER TABLE uploads ADD COLUMN concat TEXT;
