-- A delivery gets an id of its own (what driver apps and offers name it by),
-- and an order event records the driver it is about (DRIVER_ASSIGNED).
ALTER TABLE deliveries ADD COLUMN IF NOT EXISTS id UUID NOT NULL DEFAULT gen_random_uuid();
CREATE UNIQUE INDEX IF NOT EXISTS deliveries_id_idx ON deliveries (id);
ALTER TABLE order_events ADD COLUMN IF NOT EXISTS driver_id UUID;
