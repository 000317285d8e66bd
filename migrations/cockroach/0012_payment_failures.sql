-- Why the payment reconciler's last call for an order's pending capture, void
-- or refund failed, and how many calls in a row have. Each failure waits
-- longer before the next try (see payment_retry_at), and support can list
-- the orders the provider keeps refusing. A new order step or a settled call
-- clears both.
ALTER TABLE orders ADD COLUMN IF NOT EXISTS payment_failures INT8 NOT NULL DEFAULT 0;
ALTER TABLE orders ADD COLUMN IF NOT EXISTS payment_error TEXT;
