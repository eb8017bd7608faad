-- Moving a user to another shard (docs/decisions/0034). Once a user's
-- rows are being copied out of this shard, their row here fences it: every
-- insert or update of that user's rows fails with USER_MOVED (the api answers
-- a retryable 503 and reads the directory again), so no write can land in a
-- copy that is no longer the user's. A delete is skipped instead of refused,
-- so that a sweep over every user of the shard still runs; `cleaning` lets
-- the move's cleanup delete the frozen rows once no stale reader is left.
CREATE TABLE moved_users (
	user_id TEXT PRIMARY KEY,
	to_shard INTEGER NOT NULL,
	moved_at TEXT NOT NULL,
	cleaning INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;

-- nodes
CREATE TRIGGER nodes_fence_insert BEFORE INSERT ON nodes
WHEN EXISTS (SELECT 1 FROM moved_users m WHERE m.user_id = NEW.user_id)
BEGIN
	SELECT RAISE(ABORT, 'USER_MOVED');
END;
CREATE TRIGGER nodes_fence_update BEFORE UPDATE ON nodes
WHEN EXISTS (SELECT 1 FROM moved_users m WHERE m.user_id = NEW.user_id)
BEGIN
	SELECT RAISE(ABORT, 'USER_MOVED');
END;
CREATE TRIGGER nodes_fence_delete BEFORE DELETE ON nodes
WHEN EXISTS (SELECT 1 FROM moved_users m WHERE m.user_id = OLD.user_id AND m.cleaning = 0)
BEGIN
	SELECT RAISE(IGNORE);
END;
-- versions
CREATE TRIGGER versions_fence_insert BEFORE INSERT ON versions
WHEN EXISTS (SELECT 1 FROM moved_users m WHERE m.user_id = NEW.user_id)
BEGIN
	SELECT RAISE(ABORT, 'USER_MOVED');
END;
CREATE TRIGGER versions_fence_update BEFORE UPDATE ON versions
WHEN EXISTS (SELECT 1 FROM moved_users m WHERE m.user_id = NEW.user_id)
BEGIN
	SELECT RAISE(ABORT, 'USER_MOVED');
END;
CREATE TRIGGER versions_fence_delete BEFORE DELETE ON versions
WHEN EXISTS (SELECT 1 FROM moved_users m WHERE m.user_id = OLD.user_id AND m.cleaning = 0)
BEGIN
	SELECT RAISE(IGNORE);
END;
-- user_blocks
CREATE TRIGGER user_blocks_fence_insert BEFORE INSERT ON user_blocks
WHEN EXISTS (SELECT 1 FROM moved_users m WHERE m.user_id = NEW.user_id)
BEGIN
	SELECT RAISE(ABORT, 'USER_MOVED');
END;
CREATE TRIGGER user_blocks_fence_update BEFORE UPDATE ON user_blocks
WHEN EXISTS (SELECT 1 FROM moved_users m WHERE m.user_id = NEW.user_id)
BEGIN
	SELECT RAISE(ABORT, 'USER_MOVED');
END;
CREATE TRIGGER user_blocks_fence_delete BEFORE DELETE ON user_blocks
WHEN EXISTS (SELECT 1 FROM moved_users m WHERE m.user_id = OLD.user_id AND m.cleaning = 0)
BEGIN
	SELECT RAISE(IGNORE);
END;
-- changes
CREATE TRIGGER changes_fence_insert BEFORE INSERT ON changes
WHEN EXISTS (SELECT 1 FROM moved_users m WHERE m.user_id = NEW.user_id)
BEGIN
	SELECT RAISE(ABORT, 'USER_MOVED');
END;
CREATE TRIGGER changes_fence_update BEFORE UPDATE ON changes
WHEN EXISTS (SELECT 1 FROM moved_users m WHERE m.user_id = NEW.user_id)
BEGIN
	SELECT RAISE(ABORT, 'USER_MOVED');
END;
CREATE TRIGGER changes_fence_delete BEFORE DELETE ON changes
WHEN EXISTS (SELECT 1 FROM moved_users m WHERE m.user_id = OLD.user_id AND m.cleaning = 0)
BEGIN
	SELECT RAISE(IGNORE);
END;
-- journal_state
CREATE TRIGGER journal_state_fence_insert BEFORE INSERT ON journal_state
WHEN EXISTS (SELECT 1 FROM moved_users m WHERE m.user_id = NEW.user_id)
BEGIN
	SELECT RAISE(ABORT, 'USER_MOVED');
END;
CREATE TRIGGER journal_state_fence_update BEFORE UPDATE ON journal_state
WHEN EXISTS (SELECT 1 FROM moved_users m WHERE m.user_id = NEW.user_id)
BEGIN
	SELECT RAISE(ABORT, 'USER_MOVED');
END;
CREATE TRIGGER journal_state_fence_delete BEFORE DELETE ON journal_state
WHEN EXISTS (SELECT 1 FROM moved_users m WHERE m.user_id = OLD.user_id AND m.cleaning = 0)
BEGIN
	SELECT RAISE(IGNORE);
END;
-- uploads
CREATE TRIGGER uploads_fence_insert BEFORE INSERT ON uploads
WHEN EXISTS (SELECT 1 FROM moved_users m WHERE m.user_id = NEW.user_id)
BEGIN
	SELECT RAISE(ABORT, 'USER_MOVED');
END;
CREATE TRIGGER uploads_fence_update BEFORE UPDATE ON uploads
WHEN EXISTS (SELECT 1 FROM moved_users m WHERE m.user_id = NEW.user_id)
BEGIN
	SELECT RAISE(ABORT, 'USER_MOVED');
END;
CREATE TRIGGER uploads_fence_delete BEFORE DELETE ON uploads
WHEN EXISTS (SELECT 1 FROM moved_users m WHERE m.user_id = OLD.user_id AND m.cleaning = 0)
BEGIN
	SELECT RAISE(IGNORE);
END;
-- user_usage
CREATE TRIGGER user_usage_fence_insert BEFORE INSERT ON user_usage
WHEN EXISTS (SELECT 1 FROM moved_users m WHERE m.user_id = NEW.user_id)
BEGIN
	SELECT RAISE(ABORT, 'USER_MOVED');
END;
CREATE TRIGGER user_usage_fence_update BEFORE UPDATE ON user_usage
WHEN EXISTS (SELECT 1 FROM moved_users m WHERE m.user_id = NEW.user_id)
BEGIN
	SELECT RAISE(ABORT, 'USER_MOVED');
END;
CREATE TRIGGER user_usage_fence_delete BEFORE DELETE ON user_usage
WHEN EXISTS (SELECT 1 FROM moved_users m WHERE m.user_id = OLD.user_id AND m.cleaning = 0)
BEGIN
	SELECT RAISE(IGNORE);
END;
-- activity
CREATE TRIGGER activity_fence_insert BEFORE INSERT ON activity
WHEN EXISTS (SELECT 1 FROM moved_users m WHERE m.user_id = NEW.user_id)
BEGIN
	SELECT RAISE(ABORT, 'USER_MOVED');
END;
CREATE TRIGGER activity_fence_update BEFORE UPDATE ON activity
WHEN EXISTS (SELECT 1 FROM moved_users m WHERE m.user_id = NEW.user_id)
BEGIN
	SELECT RAISE(ABORT, 'USER_MOVED');
END;
CREATE TRIGGER activity_fence_delete BEFORE DELETE ON activity
WHEN EXISTS (SELECT 1 FROM moved_users m WHERE m.user_id = OLD.user_id AND m.cleaning = 0)
BEGIN
	SELECT RAISE(IGNORE);
END;
-- incoming_shares
CREATE TRIGGER incoming_shares_fence_insert BEFORE INSERT ON incoming_shares
WHEN EXISTS (SELECT 1 FROM moved_users m WHERE m.user_id = NEW.user_id)
BEGIN
	SELECT RAISE(ABORT, 'USER_MOVED');
END;
CREATE TRIGGER incoming_shares_fence_update BEFORE UPDATE ON incoming_shares
WHEN EXISTS (SELECT 1 FROM moved_users m WHERE m.user_id = NEW.user_id)
BEGIN
	SELECT RAISE(ABORT, 'USER_MOVED');
END;
CREATE TRIGGER incoming_shares_fence_delete BEFORE DELETE ON incoming_shares
WHEN EXISTS (SELECT 1 FROM moved_users m WHERE m.user_id = OLD.user_id AND m.cleaning = 0)
BEGIN
	SELECT RAISE(IGNORE);
END;
-- webhook_endpoints
CREATE TRIGGER webhook_endpoints_fence_insert BEFORE INSERT ON webhook_endpoints
WHEN EXISTS (SELECT 1 FROM moved_users m WHERE m.user_id = NEW.user_id)
BEGIN
	SELECT RAISE(ABORT, 'USER_MOVED');
END;
CREATE TRIGGER webhook_endpoints_fence_update BEFORE UPDATE ON webhook_endpoints
WHEN EXISTS (SELECT 1 FROM moved_users m WHERE m.user_id = NEW.user_id)
BEGIN
	SELECT RAISE(ABORT, 'USER_MOVED');
END;
CREATE TRIGGER webhook_endpoints_fence_delete BEFORE DELETE ON webhook_endpoints
WHEN EXISTS (SELECT 1 FROM moved_users m WHERE m.user_id = OLD.user_id AND m.cleaning = 0)
BEGIN
	SELECT RAISE(IGNORE);
END;
-- webhook_deliveries
CREATE TRIGGER webhook_deliveries_fence_insert BEFORE INSERT ON webhook_deliveries
WHEN EXISTS (SELECT 1 FROM moved_users m WHERE m.user_id = NEW.user_id)
BEGIN
	SELECT RAISE(ABORT, 'USER_MOVED');
END;
CREATE TRIGGER webhook_deliveries_fence_update BEFORE UPDATE ON webhook_deliveries
WHEN EXISTS (SELECT 1 FROM moved_users m WHERE m.user_id = NEW.user_id)
BEGIN
	SELECT RAISE(ABORT, 'USER_MOVED');
END;
CREATE TRIGGER webhook_deliveries_fence_delete BEFORE DELETE ON webhook_deliveries
WHEN EXISTS (SELECT 1 FROM moved_users m WHERE m.user_id = OLD.user_id AND m.cleaning = 0)
BEGIN
	SELECT RAISE(IGNORE);
END;
-- shares
CREATE TRIGGER shares_fence_insert BEFORE INSERT ON shares
WHEN EXISTS (SELECT 1 FROM moved_users m WHERE m.user_id = NEW.owner_id)
BEGIN
	SELECT RAISE(ABORT, 'USER_MOVED');
END;
CREATE TRIGGER shares_fence_update BEFORE UPDATE ON shares
WHEN EXISTS (SELECT 1 FROM moved_users m WHERE m.user_id = NEW.owner_id)
BEGIN
	SELECT RAISE(ABORT, 'USER_MOVED');
END;
CREATE TRIGGER shares_fence_delete BEFORE DELETE ON shares
WHEN EXISTS (SELECT 1 FROM moved_users m WHERE m.user_id = OLD.owner_id AND m.cleaning = 0)
BEGIN
	SELECT RAISE(IGNORE);
END;
-- share_members
CREATE TRIGGER share_members_fence_insert BEFORE INSERT ON share_members
WHEN EXISTS (SELECT 1 FROM moved_users m WHERE m.user_id = NEW.owner_id)
BEGIN
	SELECT RAISE(ABORT, 'USER_MOVED');
END;
CREATE TRIGGER share_members_fence_update BEFORE UPDATE ON share_members
WHEN EXISTS (SELECT 1 FROM moved_users m WHERE m.user_id = NEW.owner_id)
BEGIN
	SELECT RAISE(ABORT, 'USER_MOVED');
END;
CREATE TRIGGER share_members_fence_delete BEFORE DELETE ON share_members
WHEN EXISTS (SELECT 1 FROM moved_users m WHERE m.user_id = OLD.owner_id AND m.cleaning = 0)
BEGIN
	SELECT RAISE(IGNORE);
END;
-- share_outbox
CREATE TRIGGER share_outbox_fence_insert BEFORE INSERT ON share_outbox
WHEN EXISTS (SELECT 1 FROM moved_users m WHERE m.user_id = NEW.owner_id)
BEGIN
	SELECT RAISE(ABORT, 'USER_MOVED');
END;
CREATE TRIGGER share_outbox_fence_update BEFORE UPDATE ON share_outbox
WHEN EXISTS (SELECT 1 FROM moved_users m WHERE m.user_id = NEW.owner_id)
BEGIN
	SELECT RAISE(ABORT, 'USER_MOVED');
END;
CREATE TRIGGER share_outbox_fence_delete BEFORE DELETE ON share_outbox
WHEN EXISTS (SELECT 1 FROM moved_users m WHERE m.user_id = OLD.owner_id AND m.cleaning = 0)
BEGIN
	SELECT RAISE(IGNORE);
END;
-- version_blocks, through its version
CREATE TRIGGER version_blocks_fence_insert BEFORE INSERT ON version_blocks
WHEN EXISTS (SELECT 1 FROM versions p JOIN moved_users m ON m.user_id = p.user_id WHERE p.id = NEW.version_id)
BEGIN
	SELECT RAISE(ABORT, 'USER_MOVED');
END;
CREATE TRIGGER version_blocks_fence_update BEFORE UPDATE ON version_blocks
WHEN EXISTS (SELECT 1 FROM versions p JOIN moved_users m ON m.user_id = p.user_id WHERE p.id = NEW.version_id)
BEGIN
	SELECT RAISE(ABORT, 'USER_MOVED');
END;
CREATE TRIGGER version_blocks_fence_delete BEFORE DELETE ON version_blocks
WHEN EXISTS (SELECT 1 FROM versions p JOIN moved_users m ON m.user_id = p.user_id WHERE p.id = OLD.version_id AND m.cleaning = 0)
BEGIN
	SELECT RAISE(IGNORE);
END;
-- upload_blocks, through its upload
CREATE TRIGGER upload_blocks_fence_insert BEFORE INSERT ON upload_blocks
WHEN EXISTS (SELECT 1 FROM uploads p JOIN moved_users m ON m.user_id = p.user_id WHERE p.id = NEW.upload_id)
BEGIN
	SELECT RAISE(ABORT, 'USER_MOVED');
END;
CREATE TRIGGER upload_blocks_fence_update BEFORE UPDATE ON upload_blocks
WHEN EXISTS (SELECT 1 FROM uploads p JOIN moved_users m ON m.user_id = p.user_id WHERE p.id = NEW.upload_id)
BEGIN
	SELECT RAISE(ABORT, 'USER_MOVED');
END;
CREATE TRIGGER upload_blocks_fence_delete BEFORE DELETE ON upload_blocks
WHEN EXISTS (SELECT 1 FROM uploads p JOIN moved_users m ON m.user_id = p.user_id WHERE p.id = OLD.upload_id AND m.cleaning = 0)
BEGIN
	SELECT RAISE(IGNORE);
END;
-- upload_received, through its upload
CREATE TRIGGER upload_received_fence_insert BEFORE INSERT ON upload_received
WHEN EXISTS (SELECT 1 FROM uploads p JOIN moved_users m ON m.user_id = p.user_id WHERE p.id = NEW.upload_id)
BEGIN
	SELECT RAISE(ABORT, 'USER_MOVED');
END;
CREATE TRIGGER upload_received_fence_update BEFORE UPDATE ON upload_received
WHEN EXISTS (SELECT 1 FROM uploads p JOIN moved_users m ON m.user_id = p.user_id WHERE p.id = NEW.upload_id)
BEGIN
	SELECT RAISE(ABORT, 'USER_MOVED');
END;
CREATE TRIGGER upload_received_fence_delete BEFORE DELETE ON upload_received
WHEN EXISTS (SELECT 1 FROM uploads p JOIN moved_users m ON m.user_id = p.user_id WHERE p.id = OLD.upload_id AND m.cleaning = 0)
BEGIN
	SELECT RAISE(IGNORE);
END;
-- upload_since, through its upload
CREATE TRIGGER upload_since_fence_insert BEFORE INSERT ON upload_since
WHEN EXISTS (SELECT 1 FROM uploads p JOIN moved_users m ON m.user_id = p.user_id WHERE p.id = NEW.upload_id)
BEGIN
	SELECT RAISE(ABORT, 'USER_MOVED');
END;
CREATE TRIGGER upload_since_fence_update BEFORE UPDATE ON upload_since
WHEN EXISTS (SELECT 1 FROM uploads p JOIN moved_users m ON m.user_id = p.user_id WHERE p.id = NEW.upload_id)
BEGIN
	SELECT RAISE(ABORT, 'USER_MOVED');
END;
CREATE TRIGGER upload_since_fence_delete BEFORE DELETE ON upload_since
WHEN EXISTS (SELECT 1 FROM uploads p JOIN moved_users m ON m.user_id = p.user_id WHERE p.id = OLD.upload_id AND m.cleaning = 0)
BEGIN
	SELECT RAISE(IGNORE);
END;
-- webhook_attempts, through its delivery
CREATE TRIGGER webhook_attempts_fence_insert BEFORE INSERT ON webhook_attempts
WHEN EXISTS (SELECT 1 FROM webhook_deliveries p JOIN moved_users m ON m.user_id = p.user_id WHERE p.id = NEW.delivery_id)
BEGIN
	SELECT RAISE(ABORT, 'USER_MOVED');
END;
CREATE TRIGGER webhook_attempts_fence_update BEFORE UPDATE ON webhook_attempts
WHEN EXISTS (SELECT 1 FROM webhook_deliveries p JOIN moved_users m ON m.user_id = p.user_id WHERE p.id = NEW.delivery_id)
BEGIN
	SELECT RAISE(ABORT, 'USER_MOVED');
END;
CREATE TRIGGER webhook_attempts_fence_delete BEFORE DELETE ON webhook_attempts
WHEN EXISTS (SELECT 1 FROM webhook_deliveries p JOIN moved_users m ON m.user_id = p.user_id WHERE p.id = OLD.delivery_id AND m.cleaning = 0)
BEGIN
	SELECT RAISE(IGNORE);
END;
