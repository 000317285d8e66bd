-- When the payment reconciler next tries an order's pending capture, void or
-- refund. A provider call that fails puts the order back by a while, so that
-- orders the provider keeps refusing cannot hold the sweep's first places
-- and starve the ones behind them; a new order step makes it due again.
ALTER TABLE orders ADD COLUMN IF NOT EXISTS payment_retry_at TIMESTAMPTZ NOT NULL DEFAULT now();

CREATE INDEX IF NOT EXISTS orders_payment_due_idx ON orders (payment_retry_at)
    WHERE payment_status IN ('capture_pending', 'void_pending', 'refund_pending');
