-- Image uploads. UploadImage answers once the original is in object storage
-- and its job row is written; workers on any replica then claim queued jobs
-- (a claim lapses at due_at, so a worker that died is replaced), process
-- them, and set the target's image in the same transaction as the job's end.
CREATE TABLE IF NOT EXISTS upload_jobs (
    id UUID PRIMARY KEY,
    owner_id UUID NOT NULL REFERENCES users (id),
    -- menu_item, restaurant_cover, account_avatar
    target_kind TEXT NOT NULL,
    target_id UUID NOT NULL,
    content_type TEXT NOT NULL,
    size_bytes INT8 NOT NULL,
    file_name TEXT NOT NULL DEFAULT '',
    -- Where the original bytes are, in object storage.
    original_key TEXT NOT NULL,
    -- queued, processing, succeeded, failed
    state TEXT NOT NULL,
    progress INT2 NOT NULL DEFAULT 0,
    attempts INT4 NOT NULL DEFAULT 0,
    result_url TEXT NOT NULL DEFAULT '',
    error TEXT NOT NULL DEFAULT '',
    due_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE INDEX IF NOT EXISTS upload_jobs_due_idx ON upload_jobs (due_at) WHERE state IN ('queued', 'processing');

ALTER TABLE users ADD COLUMN IF NOT EXISTS avatar_url TEXT NOT NULL DEFAULT '';
