-- An upload that may only create a new file (create_only in POST /v1/uploads,
-- create_only in tus metadata): at commit, a live file at its name gets no
-- version from it; it becomes a conflicted copy or fails (src/shared/commit/plan.ts).
ALTER TABLE uploads ADD COLUMN create_only INTEGER NOT NULL DEFAULT 0;
