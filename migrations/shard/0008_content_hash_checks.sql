-- A version's content_hash as a client declared it (an upload session's
-- content_hash) is checked against the stored blocks after the commit; until
-- then the version is not verified, and downloads send no Repr-Digest for it
-- (audit M7; docs/decisions/0020).
ALTER TABLE versions ADD COLUMN hash_verified INTEGER NOT NULL DEFAULT 1;
CREATE INDEX versions_unverified ON versions(created_at) WHERE hash_verified = 0;
