-- PublishAnnouncement's idempotency key: an admin tool retrying after a lost
-- answer gets the first publication back instead of announcing twice.
ALTER TABLE announcements ADD COLUMN IF NOT EXISTS idempotency_key TEXT;
CREATE UNIQUE INDEX IF NOT EXISTS announcements_idempotency_key_idx ON announcements (idempotency_key);
