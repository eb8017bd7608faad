-- Auth hardening after the 2026-12 audit (docs/decisions/0015-auth-abuse-limits.md).

-- Throttle counters for logins and signups alike. A login attempt is counted
-- before its password is checked and taken back when it succeeds, so `hits`
-- counts attempts, not only failures.
ALTER TABLE login_failures RENAME TO throttle_counters;
ALTER TABLE throttle_counters RENAME COLUMN failures TO hits;
ALTER TABLE throttle_counters RENAME COLUMN last_failed_at TO last_hit_at;
-- The cron deletes counters whose window has ended.
CREATE INDEX throttle_counters_by_window ON throttle_counters(window_started_at);

-- The token that replaced a rotated one, sealed with a key derived from the
-- rotated token itself, so that only its holder can open it: a retry within
-- the grace period gets the same successor instead of signing the device out.
ALTER TABLE refresh_tokens ADD COLUMN successor TEXT;

-- The cron prunes sessions (audit L11): expired refresh tokens, and signed-out
-- devices with their tokens.
CREATE INDEX refresh_tokens_by_expiry ON refresh_tokens(expires_at);
CREATE INDEX devices_signed_out ON devices(revoked_at) WHERE revoked_at IS NOT NULL;
