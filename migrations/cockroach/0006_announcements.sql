-- System-wide announcements, in publication order. `seq` is the watchers'
-- resume cursor: each publishing transaction takes the next one from the
-- counter row, which it holds locked until it commits, so `seq` follows
-- commit order whichever replica publishes (announcements are rare: one row
-- to contend on is fine).
CREATE TABLE IF NOT EXISTS announcements (
    seq INT8 PRIMARY KEY,
    id UUID NOT NULL UNIQUE,
    title TEXT NOT NULL,
    body TEXT NOT NULL,
    -- info, warning, critical
    severity TEXT NOT NULL,
    -- role names; empty: everyone, anonymous callers included
    audience TEXT[] NOT NULL,
    city TEXT NOT NULL DEFAULT '',
    published_by UUID,
    published_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    expires_at TIMESTAMPTZ NOT NULL
);

CREATE TABLE IF NOT EXISTS announcement_sequence (
    id INT8 PRIMARY KEY,
    seq INT8 NOT NULL
);

INSERT INTO announcement_sequence (id, seq) VALUES (1, 0) ON CONFLICT (id) DO NOTHING;
