-- Progress of the storage lifecycle's background work (docs/decisions/0027-storage-lifecycle.md):
-- one row per task and scope (a shard for the sweep, a blocks/<hh>/ prefix for a listing).
-- The cron writes a row when it schedules a run; each unit adds what it did and moves the cursor.

CREATE TABLE lifecycle_runs (
	-- 'sweep', or 'scan' (orphans and storage tiers).
	task TEXT NOT NULL,
	-- 'shard/<i>' for a sweep, 'blocks/<hh>/' for a listing.
	prefix TEXT NOT NULL,
	-- Where a scan goes on: the last key it decided; NULL at the start and once done.
	cursor TEXT,
	-- When the cron scheduled this run; a unit of another run starts the counts again.
	started_at TEXT NOT NULL,
	-- Candidates or objects looked at, blocks deleted, candidates queued, blocks tiered.
	examined INTEGER NOT NULL DEFAULT 0,
	deleted INTEGER NOT NULL DEFAULT 0,
	queued INTEGER NOT NULL DEFAULT 0,
	tiered INTEGER NOT NULL DEFAULT 0,
	-- Set by the unit that found nothing more to do.
	finished_at TEXT,
	updated_at TEXT NOT NULL,
	PRIMARY KEY (task, prefix)
);
