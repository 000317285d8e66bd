-- The marketplace's transactional core. Runs unchanged on CockroachDB and
-- PostgreSQL: UUID keys, no SERIAL, no extensions, no triggers.

CREATE TABLE IF NOT EXISTS users (
    id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    email TEXT NOT NULL,
    phone TEXT,
    name TEXT NOT NULL,
    role TEXT NOT NULL CHECK (role IN ('customer', 'restaurant_staff', 'driver', 'support', 'admin')),
    password_hash TEXT NOT NULL,
    -- Set for restaurant staff: the one restaurant they work for.
    restaurant_id UUID,
    -- {"location": {"lat", "lng"}, "formatted", "instructions"}
    default_address JSONB,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT users_email_key UNIQUE (email)
);

CREATE TABLE IF NOT EXISTS restaurants (
    id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    name TEXT NOT NULL,
    phone TEXT NOT NULL DEFAULT '',
    -- {"location": {"lat", "lng"}, "formatted", "instructions"}
    address JSONB NOT NULL,
    lat DOUBLE PRECISION NOT NULL CHECK (lat BETWEEN -90 AND 90),
    lng DOUBLE PRECISION NOT NULL CHECK (lng BETWEEN -180 AND 180),
    -- H3 cells of the location (h3o cell indexes as INT8): search covers the
    -- query circle with cells of one of these resolutions, then filters by
    -- exact distance.
    h3_res6 INT8 NOT NULL,
    h3_res8 INT8 NOT NULL,
    cuisines TEXT[] NOT NULL,
    rating DOUBLE PRECISION NOT NULL DEFAULT 0,
    rating_count INT4 NOT NULL DEFAULT 0,
    -- IANA time zone the opening hours are written in.
    time_zone TEXT NOT NULL,
    -- [{"day": "Mon", "opens": "HH:MM", "closes": "HH:MM"}]
    opening_hours JSONB NOT NULL,
    delivery_radius_m INT4 NOT NULL CHECK (delivery_radius_m > 0),
    prep_time_s INT4 NOT NULL CHECK (prep_time_s >= 0),
    currency TEXT NOT NULL,
    -- Temporarily not taking orders (e.g. overloaded kitchen).
    paused BOOLEAN NOT NULL DEFAULT false,
    image_url TEXT NOT NULL DEFAULT '',
    -- Per-restaurant event counter: each order event takes the next value in
    -- the same transaction, giving watchers a gap-free cursor in commit order.
    event_seq INT8 NOT NULL DEFAULT 0,
    -- Optimistic concurrency for menu editors (UpsertMenu's expected version).
    menu_version INT8 NOT NULL DEFAULT 0,
    menu_updated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    -- Bumped by every change to the restaurant or its menu: a cached menu is
    -- only ever replaced by one of a higher revision.
    revision INT8 NOT NULL DEFAULT 1,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE INDEX IF NOT EXISTS restaurants_h3_res6_idx ON restaurants (h3_res6);
CREATE INDEX IF NOT EXISTS restaurants_h3_res8_idx ON restaurants (h3_res8);

CREATE TABLE IF NOT EXISTS menu_categories (
    id UUID PRIMARY KEY,
    restaurant_id UUID NOT NULL REFERENCES restaurants (id),
    name TEXT NOT NULL,
    position INT4 NOT NULL
);

CREATE INDEX IF NOT EXISTS menu_categories_restaurant_idx ON menu_categories (restaurant_id, position);

-- Items are never deleted (orders keep pointing at them): an item left out of
-- a new menu is archived.
CREATE TABLE IF NOT EXISTS menu_items (
    id UUID PRIMARY KEY,
    restaurant_id UUID NOT NULL REFERENCES restaurants (id),
    category_id UUID NOT NULL,
    position INT4 NOT NULL,
    name TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    price NUMERIC(12, 2) NOT NULL CHECK (price >= 0),
    available BOOLEAN NOT NULL DEFAULT true,
    image_url TEXT,
    -- [{"id", "name", "min_choices", "max_choices", "options": [{"id", "name", "surcharge", "available"}]}]
    customizations JSONB NOT NULL DEFAULT '[]',
    archived BOOLEAN NOT NULL DEFAULT false,
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE INDEX IF NOT EXISTS menu_items_restaurant_idx ON menu_items (restaurant_id, archived, position);

CREATE TABLE IF NOT EXISTS drivers (
    -- The driver's user id.
    id UUID PRIMARY KEY REFERENCES users (id),
    city TEXT NOT NULL,
    vehicle TEXT NOT NULL DEFAULT 'bike',
    -- How many deliveries the driver may hold at once.
    capacity INT4 NOT NULL DEFAULT 1 CHECK (capacity > 0),
    active_deliveries INT4 NOT NULL DEFAULT 0 CHECK (active_deliveries >= 0),
    offers_received INT8 NOT NULL DEFAULT 0,
    offers_accepted INT8 NOT NULL DEFAULT 0,
    last_offer_at TIMESTAMPTZ,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT drivers_load_within_capacity CHECK (active_deliveries <= capacity)
);

CREATE TABLE IF NOT EXISTS orders (
    id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    customer_id UUID NOT NULL REFERENCES users (id),
    restaurant_id UUID NOT NULL REFERENCES restaurants (id),
    driver_id UUID REFERENCES drivers (id),
    -- Names and the pickup address as they were when the order was placed.
    customer_name TEXT NOT NULL,
    restaurant_name TEXT NOT NULL,
    restaurant_address JSONB NOT NULL,
    customer_note TEXT NOT NULL DEFAULT '',
    status TEXT NOT NULL CHECK (status IN (
        'pending', 'confirmed', 'preparing', 'ready_for_pickup', 'driver_assigned',
        'picked_up', 'delivering', 'delivered', 'cancelled', 'rejected'
    )),
    -- {"location": {"lat", "lng"}, "formatted", "instructions"}
    delivery_address JSONB NOT NULL,
    dropoff_lat DOUBLE PRECISION NOT NULL,
    dropoff_lng DOUBLE PRECISION NOT NULL,
    currency TEXT NOT NULL,
    subtotal NUMERIC(12, 2) NOT NULL,
    delivery_fee NUMERIC(12, 2) NOT NULL,
    tax NUMERIC(12, 2) NOT NULL,
    total NUMERIC(12, 2) NOT NULL,
    payment_method_id TEXT NOT NULL,
    -- The provider's authorization; its idempotency key is the order id.
    payment_id TEXT,
    -- *_pending: decided in the transaction, not yet confirmed by the
    -- provider; the payment reconciler finishes it (idempotently).
    payment_status TEXT NOT NULL CHECK (payment_status IN (
        'authorized', 'capture_pending', 'captured', 'void_pending', 'voided', 'refund_pending', 'refunded'
    )),
    estimated_ready_at TIMESTAMPTZ NOT NULL,
    estimated_delivery_earliest TIMESTAMPTZ NOT NULL,
    estimated_delivery_latest TIMESTAMPTZ NOT NULL,
    -- Sequence number of the order's latest event (order_events.seq).
    last_event_seq INT8 NOT NULL DEFAULT 0,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE INDEX IF NOT EXISTS orders_customer_history_idx ON orders (customer_id, created_at DESC, id DESC);
CREATE INDEX IF NOT EXISTS orders_restaurant_status_idx ON orders (restaurant_id, status, created_at);
CREATE INDEX IF NOT EXISTS orders_driver_idx ON orders (driver_id);
CREATE INDEX IF NOT EXISTS orders_status_idx ON orders (status, created_at);

CREATE TABLE IF NOT EXISTS order_items (
    order_id UUID NOT NULL REFERENCES orders (id),
    line_no INT4 NOT NULL,
    menu_item_id UUID NOT NULL REFERENCES menu_items (id),
    -- Name and prices as they were when the order was placed.
    name TEXT NOT NULL,
    unit_price NUMERIC(12, 2) NOT NULL,
    quantity INT4 NOT NULL CHECK (quantity BETWEEN 1 AND 99),
    -- [{"customization_id", "customization_name", "option_id", "option_name", "surcharge"}]
    choices JSONB NOT NULL DEFAULT '[]',
    note TEXT NOT NULL DEFAULT '',
    line_total NUMERIC(12, 2) NOT NULL,
    PRIMARY KEY (order_id, line_no)
);

-- The status history, the outbox for fan-out and notifications, and the
-- replay source for resumed streams: one row per transition, written in the
-- same transaction as the change.
CREATE TABLE IF NOT EXISTS order_events (
    order_id UUID NOT NULL REFERENCES orders (id),
    seq INT8 NOT NULL,
    restaurant_id UUID NOT NULL,
    restaurant_seq INT8 NOT NULL,
    -- status_changed, driver_assigned, ...
    kind TEXT NOT NULL,
    status TEXT NOT NULL,
    previous_status TEXT,
    actor_id UUID,
    actor TEXT NOT NULL,
    reason TEXT NOT NULL DEFAULT '',
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (order_id, seq)
);

CREATE UNIQUE INDEX IF NOT EXISTS order_events_restaurant_cursor_idx ON order_events (restaurant_id, restaurant_seq);

-- A CreateOrder claims its key before anything else; the order id is fixed
-- at the claim, so a retry after a crash reuses it (and the payment
-- provider's idempotency key with it).
CREATE TABLE IF NOT EXISTS idempotency_keys (
    customer_id UUID NOT NULL REFERENCES users (id),
    idempotency_key TEXT NOT NULL,
    -- SHA-256 of the canonical request: the same key with another request is refused.
    request_hash TEXT NOT NULL,
    order_id UUID NOT NULL,
    completed BOOLEAN NOT NULL DEFAULT false,
    claimed_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (customer_id, idempotency_key)
);

-- One row per order at most: the primary key is what keeps an order from
-- ever having two drivers.
CREATE TABLE IF NOT EXISTS deliveries (
    order_id UUID PRIMARY KEY REFERENCES orders (id),
    driver_id UUID NOT NULL REFERENCES drivers (id),
    status TEXT NOT NULL CHECK (status IN ('assigned', 'arrived', 'picked_up', 'delivered', 'cancelled')),
    assigned_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    picked_up_at TIMESTAMPTZ,
    delivered_at TIMESTAMPTZ
);

CREATE INDEX IF NOT EXISTS deliveries_driver_idx ON deliveries (driver_id, status);

CREATE TABLE IF NOT EXISTS delivery_offers (
    id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    order_id UUID NOT NULL REFERENCES orders (id),
    driver_id UUID NOT NULL REFERENCES drivers (id),
    round INT4 NOT NULL,
    score DOUBLE PRECISION NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('pending', 'accepted', 'declined', 'expired', 'withdrawn')),
    offered_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    deadline TIMESTAMPTZ NOT NULL,
    answered_at TIMESTAMPTZ
);

CREATE INDEX IF NOT EXISTS delivery_offers_order_idx ON delivery_offers (order_id, offered_at);
CREATE INDEX IF NOT EXISTS delivery_offers_driver_idx ON delivery_offers (driver_id, status);
