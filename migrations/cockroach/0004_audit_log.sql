-- Who did what to which resource, when: one row per state-changing call
-- that succeeded. Append-only: FoodFast only ever INSERTs here.
CREATE TABLE IF NOT EXISTS audit_log (
    id UUID PRIMARY KEY,
    at TIMESTAMPTZ NOT NULL DEFAULT now(),
    actor_id UUID,
    actor_role TEXT NOT NULL,
    action TEXT NOT NULL,
    resource_kind TEXT NOT NULL,
    resource_id TEXT NOT NULL,
    request_id TEXT NOT NULL DEFAULT ''
);

CREATE INDEX IF NOT EXISTS audit_log_resource_idx ON audit_log (resource_kind, resource_id, at);
CREATE INDEX IF NOT EXISTS audit_log_actor_idx ON audit_log (actor_id, at);
