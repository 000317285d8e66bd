-- Notifications to one person: the durable queue. A row is written before
-- SendNotification answers; senders on any replica claim due rows, most
-- urgent first, and record every attempt.
CREATE TABLE IF NOT EXISTS notifications (
    id UUID PRIMARY KEY,
    recipient_id UUID NOT NULL REFERENCES users (id),
    -- push, sms, email
    channel TEXT NOT NULL,
    -- 1 critical, 2 high, 3 normal, 4 low
    priority INT2 NOT NULL,
    -- queued, sending, retry_scheduled, sent, failed, dropped
    state TEXT NOT NULL,
    title TEXT NOT NULL,
    body TEXT NOT NULL,
    idempotency_key TEXT UNIQUE,
    attempts INT4 NOT NULL DEFAULT 0,
    -- When it is next due: its next attempt, or while sending, when the
    -- sender's claim lapses (a sender that died is replaced).
    due_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE INDEX IF NOT EXISTS notifications_due_idx ON notifications (priority, due_at) WHERE state IN ('queued', 'sending', 'retry_scheduled');
CREATE INDEX IF NOT EXISTS notifications_recipient_idx ON notifications (recipient_id, created_at);

CREATE TABLE IF NOT EXISTS notification_attempts (
    notification_id UUID NOT NULL REFERENCES notifications (id),
    attempt INT4 NOT NULL,
    attempted_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    succeeded BOOL NOT NULL,
    error TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (notification_id, attempt)
);
