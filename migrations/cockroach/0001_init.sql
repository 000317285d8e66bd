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
    address TEXT NOT NULL,
    city TEXT NOT NULL,
    lat DOUBLE PRECISION NOT NULL CHECK (lat BETWEEN -90 AND 90),
    lng DOUBLE PRECISION NOT NULL CHECK (lng BETWEEN -180 AND 180),
    -- H3 cells of the location at two resolutions (h3o cell indexes as
    -- INT8): search covers the query circle with cells, then filters by
    -- exact distance.
    h3_res6 BIGINT NOT NULL,
    h3_res8 BIGINT NOT NULL,
    cuisine TEXT NOT NULL,
    rating NUMERIC(2, 1),
    -- IANA time zone the opening hours are written in.
    time_zone TEXT NOT NULL,
    -- [{"day": 0-6, "open": "HH:MM", "close": "HH:MM"}]
    opening_hours JSONB NOT NULL,
    delivery_radius_m INT4 NOT NULL CHECK (delivery_radius_m > 0),
    prep_time_minutes INT4 NOT NULL CHECK (prep_time_minutes >= 0),
    currency TEXT NOT NULL,
    is_active BOOLEAN NOT NULL DEFAULT true,
    -- Per-restaurant event counter: each order event takes the next value in
    -- the same transaction, giving watchers a gap-free cursor in commit order.
    event_seq INT8 NOT NULL DEFAULT 0,
    menu_version INT8 NOT NULL DEFAULT 0,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE INDEX IF NOT EXISTS restaurants_h3_res6_idx ON restaurants (h3_res6);
CREATE INDEX IF NOT EXISTS restaurants_h3_res8_idx ON restaurants (h3_res8);
CREATE INDEX IF NOT EXISTS restaurants_city_cuisine_idx ON restaurants (city, cuisine);

CREATE TABLE IF NOT EXISTS menu_items (
    id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    restaurant_id UUID NOT NULL REFERENCES restaurants (id),
    category TEXT NOT NULL,
    position INT4 NOT NULL DEFAULT 0,
    name TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    price NUMERIC(12, 2) NOT NULL CHECK (price >= 0),
    available BOOLEAN NOT NULL DEFAULT true,
    -- [{"name", "required", "max_choices", "options": [{"name", "surcharge"}]}]
    customizations JSONB NOT NULL DEFAULT '[]',
    image_url TEXT,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE INDEX IF NOT EXISTS menu_items_restaurant_idx ON menu_items (restaurant_id, category, position);

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
    payment_status TEXT NOT NULL CHECK (payment_status IN ('authorized', 'captured', 'voided')),
    estimated_delivery_min TIMESTAMPTZ NOT NULL,
    estimated_delivery_max TIMESTAMPTZ NOT NULL,
    -- Sequence number of the order's latest event (order_events.seq).
    last_event_seq INT8 NOT NULL DEFAULT 0,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE INDEX IF NOT EXISTS orders_customer_history_idx ON orders (customer_id, created_at DESC, id DESC);
CREATE INDEX IF NOT EXISTS orders_restaurant_status_idx ON orders (restaurant_id, status);
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
    -- [{"name", "option", "surcharge"}]
    customizations JSONB NOT NULL DEFAULT '[]',
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
    status TEXT NOT NULL,
    actor_id UUID,
    actor_role TEXT NOT NULL,
    reason TEXT,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (order_id, seq)
);

CREATE UNIQUE INDEX IF NOT EXISTS order_events_restaurant_cursor_idx ON order_events (restaurant_id, restaurant_seq);

CREATE TABLE IF NOT EXISTS idempotency_keys (
    customer_id UUID NOT NULL REFERENCES users (id),
    idempotency_key TEXT NOT NULL,
    -- SHA-256 of the canonical request: the same key with another request is refused.
    request_hash TEXT NOT NULL,
    order_id UUID NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
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
