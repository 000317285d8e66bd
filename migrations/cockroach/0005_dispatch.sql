-- Matching an order to a driver. The job row is written in the transaction
-- that confirms the order (the dispatcher's outbox entry) and kept in step
-- with the order's transitions; dispatchers on every replica claim due jobs
-- under a lease, and `lease_epoch` fences one whose lease ran out.
CREATE TABLE IF NOT EXISTS dispatch_jobs (
    order_id UUID PRIMARY KEY REFERENCES orders (id),
    -- The delivery's id, fixed before any driver holds it: offers name it.
    delivery_id UUID NOT NULL UNIQUE,
    city TEXT NOT NULL,
    restaurant_lat DOUBLE PRECISION NOT NULL,
    restaurant_lng DOUBLE PRECISION NOT NULL,
    phase TEXT NOT NULL CHECK (phase IN ('searching', 'offered', 'assigned', 'closed')),
    -- Offers made so far: the dispatch round.
    rounds INT4 NOT NULL DEFAULT 0,
    -- When a dispatcher should look at the job next (an open offer's deadline, a retry).
    due_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    lease_owner UUID,
    lease_until TIMESTAMPTZ,
    lease_epoch INT8 NOT NULL DEFAULT 0,
    started_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    -- Set once nobody accepted after every round; matching goes on.
    flagged_at TIMESTAMPTZ,
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE INDEX IF NOT EXISTS dispatch_jobs_due_idx ON dispatch_jobs (phase, due_at);
CREATE INDEX IF NOT EXISTS dispatch_jobs_flagged_idx ON dispatch_jobs (flagged_at, order_id)
    WHERE flagged_at IS NOT NULL;

ALTER TABLE delivery_offers ADD COLUMN IF NOT EXISTS distance_m INT4 NOT NULL DEFAULT 0;

-- At most one open offer per order and per driver, whichever replica makes it.
CREATE UNIQUE INDEX IF NOT EXISTS delivery_offers_open_per_order_idx ON delivery_offers (order_id)
    WHERE status = 'pending';
CREATE UNIQUE INDEX IF NOT EXISTS delivery_offers_open_per_driver_idx ON delivery_offers (driver_id)
    WHERE status = 'pending';
