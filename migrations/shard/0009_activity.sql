-- The activity log: what people did with shares, links and versions, for
-- people to read (the journal is for machines and expires sooner). A row is
-- written in the same batch as the change it records, so an event exists if
-- and only if its change does. Pruned after 180 days.
CREATE TABLE activity (
	user_id TEXT NOT NULL,
	-- Time-ordered (newId "act"): the keyset for reading newest first.
	id TEXT NOT NULL,
	at TEXT NOT NULL,
	-- share.created, share.member_added, link.created, version.restored, ...
	event TEXT NOT NULL,
	actor_type TEXT NOT NULL CHECK (actor_type IN ('user', 'link', 'system')),
	actor_id TEXT,
	actor_device TEXT,
	node_id TEXT,
	share_id TEXT,
	link_id TEXT,
	version_id TEXT,
	-- Event-specific JSON (a role, a label, a count); never a secret.
	details TEXT,
	PRIMARY KEY (user_id, id)
) WITHOUT ROWID;
CREATE INDEX activity_by_node ON activity(user_id, node_id, id) WHERE node_id IS NOT NULL;
CREATE INDEX activity_by_time ON activity(at);
