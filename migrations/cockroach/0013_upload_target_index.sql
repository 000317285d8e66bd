-- A finished upload shows on its target only if no later upload for the same
-- target has shown there already (an older job retried after a newer one
-- must not put the old picture back): this finds those quickly.
CREATE INDEX IF NOT EXISTS upload_jobs_target_idx ON upload_jobs (target_kind, target_id, created_at);
