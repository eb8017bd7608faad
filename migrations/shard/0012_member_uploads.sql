-- A share member's upload into the owner's tree (docs/decisions/0025): the
-- row stays the member's (user_id: their ids, limits, received blocks and
-- dedup); owner_id names the owner whose folder parent_id is, and
-- owner_since is the owner's shard's gc_clock read before any block of it
-- was written (the commit's guard in the owner's shard, docs/decisions/0017).
ALTER TABLE uploads ADD COLUMN owner_id TEXT;
ALTER TABLE uploads ADD COLUMN owner_since INTEGER;
