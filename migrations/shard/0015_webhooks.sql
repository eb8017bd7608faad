-- Outgoing webhooks (docs/decisions/0028-webhooks.md). The change journal
-- (and, for share events, the activity log) is the outbox: an endpoint's
-- cursors say how far its deliveries were created, and a delivery of a
-- journal change is built from the journal row.

-- Where a move came from (JSON {"parent_id", "name"}), for file.moved events.
ALTER TABLE changes ADD COLUMN previous TEXT;

CREATE TABLE webhook_endpoints (
	id TEXT PRIMARY KEY,
	user_id TEXT NOT NULL,
	url TEXT NOT NULL,
	description TEXT NOT NULL DEFAULT '',
	-- JSON array of event types; NULL: every event.
	event_types TEXT,
	-- Signing secrets, encrypted with the block key ring ("keyId:base64url").
	secret TEXT NOT NULL,
	previous_secret TEXT,
	previous_secret_until TEXT,
	status TEXT NOT NULL CHECK (status IN ('enabled', 'disabled')),
	-- gone (the endpoint answered 410), failing (5 days of failures), user.
	disabled_reason TEXT,
	disabled_at TEXT,
	-- Deliveries exist for every journal change up to here,
	enqueued_through_seq INTEGER NOT NULL,
	-- and for every share event of the activity log up to this activity id.
	activity_through TEXT NOT NULL DEFAULT '',
	-- When the current run of failures began (NULL after a success), and the
	-- latest failure: a run with a day's pause in it starts again.
	failing_since TEXT,
	last_failure_at TEXT,
	last_success_at TEXT,
	created_at TEXT NOT NULL,
	updated_at TEXT NOT NULL
);
CREATE INDEX webhook_endpoints_by_user ON webhook_endpoints (user_id, created_at);

CREATE TABLE webhook_deliveries (
	-- The Standard Webhooks message id (webhook-id), the same on every attempt.
	id TEXT PRIMARY KEY,
	user_id TEXT NOT NULL,
	endpoint_id TEXT NOT NULL,
	-- The journal change it carries; NULL for webhook.* events, which carry their payload.
	seq INTEGER,
	type TEXT NOT NULL,
	payload TEXT,
	status TEXT NOT NULL CHECK (status IN ('pending', 'succeeded', 'failed')),
	attempts INTEGER NOT NULL DEFAULT 0,
	-- Failed attempts since the delivery was (re)opened: the step of the retry schedule.
	failures INTEGER NOT NULL DEFAULT 0,
	-- Moved by every re-send (the cron's, a redelivery): a message of an older generation posts nothing.
	generation INTEGER NOT NULL DEFAULT 0,
	-- When the next attempt is due (ms); the cron sends a delivery again whose message was lost.
	next_attempt_at INTEGER NOT NULL,
	-- An attempt in flight holds the delivery until then (ms), so a duplicated message does not post twice.
	claimed_until INTEGER,
	last_status INTEGER,
	last_error TEXT,
	created_at TEXT NOT NULL,
	updated_at TEXT NOT NULL
);
CREATE INDEX webhook_deliveries_by_endpoint ON webhook_deliveries (endpoint_id, created_at, id);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at) WHERE status = 'pending';
CREATE INDEX webhook_deliveries_by_time ON webhook_deliveries (created_at);

CREATE TABLE webhook_attempts (
	delivery_id TEXT NOT NULL,
	n INTEGER NOT NULL,
	at TEXT NOT NULL,
	-- The HTTP status, or NULL when no answer came (timeout, refused, blocked).
	status INTEGER,
	error TEXT,
	duration_ms INTEGER NOT NULL,
	-- The first 1 KB of the answer.
	response TEXT,
	PRIMARY KEY (delivery_id, n)
) WITHOUT ROWID;
