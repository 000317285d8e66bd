-- Devices that receive push notifications: one row per push token (keyed by
-- its SHA-256, as tokens run to 4 KiB, past what an index entry holds).
-- Registering a token again updates it, and moves it to the caller when the
-- device changed hands.
CREATE TABLE IF NOT EXISTS devices (
    id UUID PRIMARY KEY,
    token_hash TEXT NOT NULL UNIQUE,
    user_id UUID NOT NULL REFERENCES users (id),
    -- ios, android, web
    platform TEXT NOT NULL,
    push_token TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE INDEX IF NOT EXISTS devices_user_idx ON devices (user_id);
