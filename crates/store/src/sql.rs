//! Every SQL statement the store sends, in one place, so that a test can run
//! each through CockroachDB's parser (`tools/crdbcheck`).

/// The columns every restaurant read selects, in the order
/// `restaurants::restaurant_from_row` reads them.
macro_rules! restaurant_columns {
    () => {
        "id, name, phone, address, cuisines, time_zone, opening_hours, delivery_radius_m, prep_time_s, currency, \
         paused, rating, rating_count, image_url, menu_version, menu_updated_at, revision, created_at, updated_at"
    };
}

/// The columns every order read selects, in the order `orders::order_from_row`
/// reads them.
macro_rules! order_columns {
    () => {
        "id, customer_id, customer_name, restaurant_id, restaurant_name, restaurant_address, driver_id, status, \
         delivery_address, customer_note, currency, subtotal, delivery_fee, tax, total, payment_method_id, \
         payment_id, payment_status, estimated_ready_at, estimated_delivery_earliest, estimated_delivery_latest, \
         last_event_seq, created_at, updated_at"
    };
}

/// The columns of an order event, in the order `orders::event_from_row` reads them.
macro_rules! event_columns {
    () => {
        "order_id, seq, restaurant_id, restaurant_seq, kind, status, previous_status, actor_id, actor, reason, \
         created_at, driver_id"
    };
}

/// The columns of an account, in the order `users::account_from_row` reads them.
macro_rules! account_columns {
    () => {
        "id, email, phone, name, role, password_hash, restaurant_id, default_address, created_at, avatar_url"
    };
}

/// The columns of a support conversation, in the order
/// `support::conversation_from_row` reads them.
macro_rules! conversation_columns {
    () => {
        "id, customer_id, order_id, subject, status, agent_id, last_seq, created_at, last_activity_at"
    };
}

/// The columns of a chat message, in the order `support::message_from_row` reads them.
macro_rules! chat_message_columns {
    () => {
        "conversation_id, seq, id, sender_id, sender_role, sender_name, body, client_message_id, sent_at"
    };
}

/// Restaurants whose `$column` H3 cell is one of `$1`, listing cuisine `$2`
/// (NULL: any).
macro_rules! restaurants_in_cells {
    ($column:literal) => {
        concat!(
            "SELECT ",
            restaurant_columns!(),
            " FROM restaurants WHERE ",
            $column,
            " = ANY($1) AND ($2::TEXT IS NULL OR $2::TEXT = ANY(cuisines))"
        )
    };
}

/// A page of conversations, most recently active first: `$1` status or
/// NULL, `$2` order or NULL, after (`$3`, `$4`) or from the start when NULL,
/// at most `$5`; `$6` is the customer, in the customer's own list.
macro_rules! conversations_page {
    ($customer:literal) => {
        concat!(
            "SELECT ",
            conversation_columns!(),
            " FROM conversations WHERE ",
            $customer,
            "
            ($1::TEXT IS NULL OR status = $1) AND ($2::UUID IS NULL OR order_id = $2)
            AND ($3::TIMESTAMPTZ IS NULL OR (last_activity_at, id) < ($3, $4::UUID))
            ORDER BY last_activity_at DESC, id DESC LIMIT $5"
        )
    };
}

/// The columns of an upload job, in the order `uploads::job_from_row` reads them.
macro_rules! upload_job_columns {
    () => {
        "id, owner_id, target_kind, target_id, state, progress, result_url, error, created_at, updated_at"
    };
}

macro_rules! statements {
    ($($(#[$doc:meta])* $name:ident = $sql:expr;)*) => {
        $($(#[$doc])* pub const $name: &str = $sql;)*
        /// Every statement above, by name.
        pub const ALL: &[(&str, &str)] = &[$((stringify!($name), $name)),*];
    };
}

statements! {
    PING = "SELECT 1";

    CREATE_MIGRATIONS_TABLE = "CREATE TABLE IF NOT EXISTS schema_migrations (
        name TEXT PRIMARY KEY,
        checksum TEXT NOT NULL,
        applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
    )";
    SELECT_MIGRATIONS = "SELECT name, checksum FROM schema_migrations ORDER BY name";
    INSERT_MIGRATION = "INSERT INTO schema_migrations (name, checksum) VALUES ($1, $2)";
    /// One row while a migrator runs; it expires unless renewed, so a
    /// migrator that died frees it by itself.
    CREATE_MIGRATIONS_LEASE_TABLE = "CREATE TABLE IF NOT EXISTS schema_migrations_lease (
        id INT4 PRIMARY KEY,
        holder UUID NOT NULL,
        expires_at TIMESTAMPTZ NOT NULL
    )";
    /// Takes the lease when it is free or expired, or renews it for its
    /// holder ($1) for $2 seconds; no row means another migrator holds it.
    TAKE_MIGRATIONS_LEASE = "INSERT INTO schema_migrations_lease (id, holder, expires_at)
        VALUES (1, $1, now() + $2::FLOAT8 * INTERVAL '1 second')
        ON CONFLICT (id) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at
            WHERE schema_migrations_lease.expires_at < now() OR schema_migrations_lease.holder = excluded.holder
        RETURNING holder";
    RELEASE_MIGRATIONS_LEASE = "DELETE FROM schema_migrations_lease WHERE id = 1 AND holder = $1";

    INSERT_RESTAURANT = concat!(
        "INSERT INTO restaurants (id, name, phone, address, lat, lng, h3_res6, h3_res8, cuisines, time_zone,
            opening_hours, delivery_radius_m, prep_time_s, currency, paused)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)
        RETURNING ",
        restaurant_columns!()
    );
    UPDATE_RESTAURANT = concat!(
        "UPDATE restaurants SET name = $2, phone = $3, address = $4, lat = $5, lng = $6, h3_res6 = $7,
            h3_res8 = $8, cuisines = $9, time_zone = $10, opening_hours = $11, delivery_radius_m = $12,
            prep_time_s = $13, currency = $14, paused = $15, revision = revision + 1, updated_at = now()
        WHERE id = $1 AND revision = $16
            AND (currency = $14 OR NOT EXISTS (SELECT 1 FROM menu_items WHERE restaurant_id = $1 AND NOT archived))
        RETURNING ",
        restaurant_columns!()
    );
    SELECT_RESTAURANT = concat!("SELECT ", restaurant_columns!(), " FROM restaurants WHERE id = $1");
    SEARCH_RESTAURANTS_RES6 = restaurants_in_cells!("h3_res6");
    SEARCH_RESTAURANTS_RES8 = restaurants_in_cells!("h3_res8");

    LOCK_MENU_VERSION = "SELECT menu_version FROM restaurants WHERE id = $1 FOR UPDATE";
    /// One of the item ids `$2` that another restaurant than `$1` owns.
    SELECT_FOREIGN_MENU_ITEM = "SELECT id FROM menu_items WHERE id = ANY($2) AND restaurant_id <> $1 ORDER BY id LIMIT 1";
    BUMP_MENU_VERSION = "UPDATE restaurants SET menu_version = menu_version + 1, menu_updated_at = now(),
            revision = revision + 1, updated_at = now()
        WHERE id = $1";
    DELETE_MENU_CATEGORIES = "DELETE FROM menu_categories WHERE restaurant_id = $1";
    INSERT_MENU_CATEGORY = "INSERT INTO menu_categories (id, restaurant_id, name, position) VALUES ($1, $2, $3, $4)";
    ARCHIVE_MENU_ITEMS = "UPDATE menu_items SET archived = true, updated_at = now()
        WHERE restaurant_id = $1 AND NOT archived";
    /// An item kept by its id keeps its image: only MediaService sets one.
    UPSERT_MENU_ITEM = "INSERT INTO menu_items (id, restaurant_id, category_id, position, name, description, price,
            available, image_url, customizations, archived)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, false)
        ON CONFLICT (id) DO UPDATE SET category_id = excluded.category_id, position = excluded.position,
            name = excluded.name, description = excluded.description, price = excluded.price,
            available = excluded.available,
            customizations = excluded.customizations, archived = false, updated_at = now()
        WHERE menu_items.restaurant_id = excluded.restaurant_id";
    SELECT_MENU_CATEGORIES = "SELECT id, name FROM menu_categories WHERE restaurant_id = $1 ORDER BY position";
    SELECT_MENU_ITEMS = "SELECT id, category_id, name, description, price, available, image_url, customizations
        FROM menu_items WHERE restaurant_id = $1 AND NOT archived ORDER BY position";
    SELECT_MENU_ITEMS_BY_ID = "SELECT id, category_id, name, description, price, available, image_url, customizations
        FROM menu_items WHERE restaurant_id = $1 AND id = ANY($2) AND NOT archived";

    INSERT_USER = "INSERT INTO users (id, email, phone, name, role, password_hash, restaurant_id)
        VALUES ($1, $2, $3, $4, $5, $6, $7)";
    /// A driver's account and its drivers row, in one statement: both or neither.
    INSERT_DRIVER_ACCOUNT = "WITH account AS (
            INSERT INTO users (id, email, phone, name, role, password_hash, restaurant_id)
            VALUES ($1, $2, $3, $4, $5, $6, $7)
            RETURNING id
        )
        INSERT INTO drivers (id, city, vehicle, capacity) SELECT id, $8, $9, $10 FROM account";
    SELECT_USER_NAME = "SELECT name FROM users WHERE id = $1";
    SELECT_USER_BY_EMAIL = "SELECT id, role, restaurant_id FROM users WHERE email = $1";
    SELECT_ACCOUNT_BY_EMAIL = concat!("SELECT ", account_columns!(), " FROM users WHERE email = $1");
    SELECT_ACCOUNT = concat!("SELECT ", account_columns!(), " FROM users WHERE id = $1");
    UPDATE_PROFILE = concat!(
        "UPDATE users SET name = $2, phone = $3, default_address = $4, updated_at = now() WHERE id = $1 RETURNING ",
        account_columns!()
    );
    INSERT_REFRESH_TOKEN = "INSERT INTO refresh_tokens (id, user_id, token_hash, expires_at) VALUES ($1, $2, $3, $4)";
    SELECT_REFRESH_TOKEN = "SELECT id, user_id, expires_at, revoked_at, replaced_by FROM refresh_tokens
        WHERE token_hash = $1";
    REPLACE_REFRESH_TOKEN = "UPDATE refresh_tokens SET revoked_at = now(), replaced_by = $2 WHERE id = $1";
    REVOKE_REFRESH_TOKEN = "UPDATE refresh_tokens SET revoked_at = now() WHERE id = $1 AND revoked_at IS NULL";
    UPSERT_DEVICE = "INSERT INTO devices (id, token_hash, user_id, platform, push_token) VALUES ($1, $2, $3, $4, $5)
        ON CONFLICT (token_hash) DO UPDATE SET user_id = excluded.user_id, platform = excluded.platform,
            updated_at = now()
        RETURNING id";
    DELETE_DEVICE = "DELETE FROM devices WHERE token_hash = $1 AND user_id = $2 RETURNING id";
    INSERT_NOTIFICATION = "INSERT INTO notifications (id, recipient_id, channel, priority, state, title, body,
            idempotency_key)
        VALUES ($1, $2, $3, $4, $8, $5, $6, $7)
        ON CONFLICT (idempotency_key) DO NOTHING
        RETURNING id";
    /// An order's push notice to customer `$2`, queued only when they have a device.
    INSERT_ORDER_NOTICE = "INSERT INTO notifications (id, recipient_id, channel, priority, state, title, body,
            idempotency_key)
        SELECT $1::UUID, $2::UUID, 'push', $3::INT2, 'queued', $4::TEXT, $5::TEXT, $6::TEXT
        WHERE EXISTS (SELECT 1 FROM devices WHERE user_id = $2::UUID)
        ON CONFLICT (idempotency_key) DO NOTHING
        RETURNING id";
    COUNT_PENDING_NOTIFICATIONS = "SELECT count(*) FROM notifications
        WHERE state IN ('queued', 'sending', 'retry_scheduled')";
    SELECT_NOTIFICATION_BY_KEY = "SELECT id, recipient_id, channel, priority, title, body FROM notifications
        WHERE idempotency_key = $1";
    SELECT_NOTIFICATION = "SELECT id, recipient_id, channel, priority, state, attempts, due_at, created_at, updated_at
        FROM notifications WHERE id = $1";
    SELECT_NOTIFICATION_ATTEMPTS = "SELECT attempt, attempted_at, succeeded, error FROM notification_attempts
        WHERE notification_id = $1 ORDER BY attempt";
    CLAIM_NOTIFICATIONS = "UPDATE notifications
        SET state = 'sending', attempts = attempts + 1, due_at = now() + $2::FLOAT8 * INTERVAL '1 second',
            updated_at = now()
        WHERE id IN (
            SELECT id FROM notifications
            WHERE state IN ('queued', 'sending', 'retry_scheduled') AND due_at <= now()
            ORDER BY priority, due_at
            LIMIT $1)
        RETURNING id, recipient_id, channel, priority, title, body, attempts";
    INSERT_NOTIFICATION_ATTEMPT = "INSERT INTO notification_attempts (notification_id, attempt, succeeded, error)
        VALUES ($1, $2, $3, $4)
        ON CONFLICT (notification_id, attempt) DO NOTHING";
    SETTLE_NOTIFICATION = "UPDATE notifications
        SET state = $3, due_at = now() + $4::FLOAT8 * INTERVAL '1 second', updated_at = now()
        WHERE id = $1 AND attempts = $2 AND state = 'sending'";
    SELECT_CONTACT = "SELECT email, phone FROM users WHERE id = $1";
    SELECT_PUSH_TOKENS = "SELECT push_token FROM devices WHERE user_id = $1 ORDER BY updated_at DESC LIMIT 10";
    INSERT_CONVERSATION = concat!(
        "INSERT INTO conversations (id, customer_id, order_id, subject, status) VALUES ($1, $2, $3, $4, 'open')
        RETURNING ", conversation_columns!()
    );
    SELECT_CONVERSATION = concat!("SELECT ", conversation_columns!(), " FROM conversations WHERE id = $1");
    /// The customer's open conversation about order `$2` (or about none).
    SELECT_OPEN_CONVERSATION = concat!(
        "SELECT ", conversation_columns!(), " FROM conversations
        WHERE customer_id = $1 AND order_id IS NOT DISTINCT FROM $2 AND status = 'open'
        ORDER BY created_at DESC, id DESC LIMIT 1"
    );
    /// `$2`: the new agent or NULL; `$3`: whether it reopens.
    JOIN_CONVERSATION = concat!(
        "UPDATE conversations SET status = 'open', agent_id = COALESCE($2, agent_id),
            last_activity_at = CASE WHEN $3 THEN now() ELSE last_activity_at END
        WHERE id = $1
        RETURNING ", conversation_columns!()
    );
    /// Takes the next seq of an open conversation; no row if it is closed or missing.
    NEXT_CHAT_SEQ = "UPDATE conversations SET last_seq = last_seq + 1, last_activity_at = now()
        WHERE id = $1 AND status = 'open'
        RETURNING last_seq";
    /// `$2` is 1 to take a seq for a closing note, else 0.
    CLOSE_CONVERSATION = concat!(
        "UPDATE conversations SET status = 'closed', last_seq = last_seq + $2,
            last_activity_at = CASE WHEN $2 > 0 THEN now() ELSE last_activity_at END
        WHERE id = $1 AND status = 'open'
        RETURNING ", conversation_columns!()
    );
    INSERT_CHAT_MESSAGE = concat!(
        "INSERT INTO chat_messages (conversation_id, seq, id, sender_id, sender_role, sender_name, body,
            client_message_id)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
        RETURNING ", chat_message_columns!()
    );
    SELECT_CHAT_MESSAGE_BY_CLIENT_ID = concat!(
        "SELECT ", chat_message_columns!(), " FROM chat_messages
        WHERE conversation_id = $1 AND sender_id = $2 AND client_message_id = $3"
    );
    SELECT_CHAT_MESSAGES_AFTER = concat!(
        "SELECT ", chat_message_columns!(), " FROM chat_messages
        WHERE conversation_id = $1 AND seq > $2 ORDER BY seq LIMIT $3"
    );
    SELECT_CHAT_MESSAGES_BEFORE = concat!(
        "SELECT ", chat_message_columns!(), " FROM chat_messages
        WHERE conversation_id = $1 AND seq < $2 ORDER BY seq DESC LIMIT $3"
    );
    SELECT_CUSTOMER_CONVERSATIONS = conversations_page!("customer_id = $6 AND");
    SELECT_CONVERSATIONS = conversations_page!("");
    SELECT_MENU_ITEM_RESTAURANT = "SELECT restaurant_id FROM menu_items WHERE id = $1 AND NOT archived";
    SELECT_RESTAURANT_ID = "SELECT id FROM restaurants WHERE id = $1";
    SELECT_USER_ID = "SELECT id FROM users WHERE id = $1";
    COUNT_PENDING_UPLOADS = "SELECT count(*) FROM upload_jobs WHERE state IN ('queued', 'processing')";
    INSERT_UPLOAD_JOB = concat!(
        "INSERT INTO upload_jobs (id, owner_id, target_kind, target_id, content_type, size_bytes, file_name,
            original_key, state)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'queued')
        RETURNING ", upload_job_columns!()
    );
    SELECT_UPLOAD_JOB = concat!("SELECT ", upload_job_columns!(), " FROM upload_jobs WHERE id = $1");
    CLAIM_UPLOAD_JOBS = "UPDATE upload_jobs
        SET state = 'processing', attempts = attempts + 1, due_at = now() + $2::FLOAT8 * INTERVAL '1 second',
            updated_at = now()
        WHERE id IN (
            SELECT id FROM upload_jobs
            WHERE state IN ('queued', 'processing') AND due_at <= now()
            ORDER BY due_at
            LIMIT $1)
        RETURNING id, target_kind, target_id, content_type, original_key, attempts";
    HOLDS_UPLOAD_CLAIM = "SELECT 1 FROM upload_jobs WHERE id = $1 AND attempts = $2 AND state = 'processing'";
    UPLOAD_JOB_PROGRESS = "UPDATE upload_jobs SET progress = $3, updated_at = now()
        WHERE id = $1 AND attempts = $2 AND state = 'processing'";
    /// `$3`: succeeded or failed.
    END_UPLOAD_JOB = concat!(
        "UPDATE upload_jobs SET state = $3, progress = CASE WHEN $3 = 'succeeded' THEN 100 ELSE progress END,
            result_url = $4, error = $5, updated_at = now()
        WHERE id = $1 AND attempts = $2 AND state = 'processing'
        RETURNING ", upload_job_columns!()
    );
    REQUEUE_UPLOAD_JOB = "UPDATE upload_jobs
        SET state = 'queued', due_at = now() + $3::FLOAT8 * INTERVAL '1 second', updated_at = now()
        WHERE id = $1 AND attempts = $2 AND state = 'processing'";
    /// Whether an upload for the same target as job `$1`, created after it,
    /// has shown its image already.
    NEWER_UPLOAD_SHOWN = "SELECT 1 FROM upload_jobs newer, upload_jobs job
        WHERE job.id = $1 AND newer.target_kind = job.target_kind AND newer.target_id = job.target_id
            AND newer.state = 'succeeded' AND (newer.created_at, newer.id) > (job.created_at, job.id)
        LIMIT 1";
    SET_MENU_ITEM_IMAGE = "UPDATE menu_items SET image_url = $2, updated_at = now() WHERE id = $1 AND NOT archived
        RETURNING restaurant_id";
    SET_RESTAURANT_IMAGE = "UPDATE restaurants SET image_url = $2, revision = revision + 1, updated_at = now()
        WHERE id = $1
        RETURNING id";
    SET_USER_AVATAR = "UPDATE users SET avatar_url = $2, updated_at = now() WHERE id = $1 RETURNING id";
    NEXT_ANNOUNCEMENT_SEQ = "UPDATE announcement_sequence SET seq = seq + 1 WHERE id = 1 RETURNING seq";
    INSERT_ANNOUNCEMENT = "INSERT INTO announcements (seq, id, title, body, severity, audience, city, published_by,
            expires_at, idempotency_key)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
        RETURNING published_at, expires_at";
    SELECT_ANNOUNCEMENT_BY_KEY = "SELECT seq, id, title, body, severity, audience, city, published_at, expires_at
        FROM announcements WHERE idempotency_key = $1";
    SELECT_ANNOUNCEMENTS_IN_FORCE = "SELECT seq, id, title, body, severity, audience, city, published_at, expires_at
        FROM announcements WHERE seq > $1 AND expires_at > now() ORDER BY seq LIMIT $2";
    INSERT_AUDIT = "INSERT INTO audit_log (id, actor_id, actor_role, action, resource_kind, resource_id, request_id)
        VALUES ($1, $2, $3, $4, $5, $6, $7)";
    SELECT_AUDIT_FOR_RESOURCE = "SELECT at, actor_id, actor_role, action, resource_kind, resource_id, request_id
        FROM audit_log WHERE resource_kind = $1 AND resource_id = $2 ORDER BY at, id";
    REVOKE_USER_REFRESH_TOKENS = "UPDATE refresh_tokens SET revoked_at = now()
        WHERE user_id = $1 AND revoked_at IS NULL";
    INSERT_DRIVER = "INSERT INTO drivers (id, city, vehicle, capacity) VALUES ($1, $2, $3, $4)";

    CLAIM_IDEMPOTENCY_KEY = "INSERT INTO idempotency_keys (customer_id, idempotency_key, request_hash, order_id)
        VALUES ($1, $2, $3, $4)
        ON CONFLICT (customer_id, idempotency_key) DO NOTHING";
    SELECT_IDEMPOTENCY_KEY = "SELECT request_hash, order_id, completed, claimed_at < $3
        FROM idempotency_keys WHERE customer_id = $1 AND idempotency_key = $2";
    TAKE_OVER_IDEMPOTENCY_KEY = "UPDATE idempotency_keys SET claimed_at = now()
        WHERE customer_id = $1 AND idempotency_key = $2 AND NOT completed AND claimed_at < $3";
    COMPLETE_IDEMPOTENCY_KEY = "UPDATE idempotency_keys SET completed = true
        WHERE customer_id = $1 AND idempotency_key = $2 AND order_id = $3 AND NOT completed";
    RELEASE_IDEMPOTENCY_KEY = "DELETE FROM idempotency_keys
        WHERE customer_id = $1 AND idempotency_key = $2 AND order_id = $3 AND NOT completed";
    /// Stale at once: the next call with the key takes it over, order id and all.
    ABANDON_IDEMPOTENCY_KEY = "UPDATE idempotency_keys SET claimed_at = TIMESTAMPTZ '1970-01-01 00:00:00+00'
        WHERE customer_id = $1 AND idempotency_key = $2 AND order_id = $3 AND NOT completed";

    NEXT_RESTAURANT_EVENT_SEQ = "UPDATE restaurants SET event_seq = event_seq + 1 WHERE id = $1 RETURNING event_seq";
    INSERT_ORDER = concat!(
        "INSERT INTO orders (id, customer_id, customer_name, restaurant_id, restaurant_name,
            restaurant_address, status, delivery_address, dropoff_lat, dropoff_lng, customer_note, currency,
            subtotal, delivery_fee, tax, total, payment_method_id, payment_id, payment_status, estimated_ready_at,
            estimated_delivery_earliest, estimated_delivery_latest, last_event_seq)
        VALUES ($1, $2, $3, $4, $5, $6, 'pending', $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, 'authorized',
            $18, $19, $20, 1)
        RETURNING ",
        order_columns!()
    );
    INSERT_ORDER_ITEM = "INSERT INTO order_items (order_id, line_no, menu_item_id, name, unit_price, quantity,
            choices, note, line_total)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)";
    INSERT_ORDER_EVENT = "INSERT INTO order_events (order_id, seq, restaurant_id, restaurant_seq, kind, status,
            previous_status, actor_id, actor, reason, driver_id)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)";

    SELECT_ORDER = concat!("SELECT ", order_columns!(), " FROM orders WHERE id = $1");
    LOCK_ORDER = concat!("SELECT ", order_columns!(), " FROM orders WHERE id = $1 FOR UPDATE");
    SELECT_ORDER_ITEMS = "SELECT line_no, menu_item_id, name, unit_price, quantity, choices, note, line_total
        FROM order_items WHERE order_id = $1 ORDER BY line_no";
    SELECT_ORDER_EVENTS = concat!("SELECT ", event_columns!(), " FROM order_events WHERE order_id = $1 ORDER BY seq");
    SELECT_ORDER_EVENTS_AFTER = concat!(
        "SELECT ", event_columns!(), " FROM order_events WHERE order_id = $1 AND seq > $2 ORDER BY seq LIMIT $3"
    );
    SELECT_DRIVER_EVENT = "SELECT seq FROM order_events WHERE order_id = $1 AND kind = $2 AND actor_id = $3 LIMIT 1";
    SELECT_CUSTOMER_ORDERS_FIRST = concat!(
        "SELECT ", order_columns!(), " FROM orders WHERE customer_id = $1
        ORDER BY created_at DESC, id DESC LIMIT $2"
    );
    SELECT_CUSTOMER_ORDERS_AFTER = concat!(
        "SELECT ", order_columns!(), " FROM orders WHERE customer_id = $1 AND (created_at, id) < ($3, $4)
        ORDER BY created_at DESC, id DESC LIMIT $2"
    );
    UPDATE_ORDER_STATUS = concat!(
        "UPDATE orders SET status = $2, driver_id = $3, payment_status = $4, last_event_seq = last_event_seq + 1,
            estimated_ready_at = COALESCE($5, estimated_ready_at), payment_retry_at = now(), payment_failures = 0,
            payment_error = NULL, updated_at = now()
        WHERE id = $1
        RETURNING ", order_columns!()
    );

    /// Takes one more delivery for the driver, if below capacity.
    TAKE_DRIVER_CAPACITY = "UPDATE drivers SET active_deliveries = active_deliveries + 1
        WHERE id = $1 AND active_deliveries < capacity RETURNING active_deliveries >= capacity";
    /// Gives one delivery back; returns whether the driver is still at capacity.
    RELEASE_DRIVER_CAPACITY = "UPDATE drivers SET active_deliveries = active_deliveries - 1
        WHERE id = $1 AND active_deliveries > 0 RETURNING active_deliveries >= capacity";
    SELECT_DRIVER_EXISTS = "SELECT 1 FROM drivers WHERE id = $1";
    SELECT_DRIVER_PROFILE = "SELECT u.name, d.vehicle, d.city, d.capacity, d.active_deliveries
        FROM drivers d JOIN users u ON u.id = d.id WHERE d.id = $1";
    /// A reassignment keeps the delivery's id; `$3` is the id of a new one.
    ASSIGN_DELIVERY = "INSERT INTO deliveries (id, order_id, driver_id, status) VALUES ($3, $1, $2, 'assigned')
        ON CONFLICT (order_id) DO UPDATE SET driver_id = excluded.driver_id, status = 'assigned',
            assigned_at = now(), picked_up_at = NULL, delivered_at = NULL
        RETURNING id";
    MARK_DELIVERY_PICKED_UP = "UPDATE deliveries SET status = 'picked_up', picked_up_at = now()
        WHERE order_id = $1 RETURNING id";
    MARK_DELIVERY_DELIVERED = "UPDATE deliveries SET status = 'delivered', delivered_at = now()
        WHERE order_id = $1 RETURNING id";
    SELECT_ACTIVE_DELIVERIES = "SELECT id, order_id FROM deliveries
        WHERE driver_id = $1 AND status IN ('assigned', 'arrived', 'picked_up') ORDER BY assigned_at";
    MARK_DELIVERY_CANCELLED = "UPDATE deliveries SET status = 'cancelled' WHERE order_id = $1 RETURNING id";

    INSERT_DISPATCH_JOB = "INSERT INTO dispatch_jobs (order_id, delivery_id, city, restaurant_lat, restaurant_lng,
            phase)
        VALUES ($1, $2, $3, $4, $5, 'searching')
        ON CONFLICT (order_id) DO NOTHING";
    SELECT_DISPATCH_DELIVERY_ID = "SELECT delivery_id FROM dispatch_jobs WHERE order_id = $1";
    SET_DISPATCH_PHASE = "UPDATE dispatch_jobs SET phase = $2, lease_owner = NULL, lease_until = NULL,
            updated_at = now()
        WHERE order_id = $1 AND phase <> 'closed'";
    WITHDRAW_OPEN_OFFERS = "UPDATE delivery_offers SET status = 'withdrawn', answered_at = now()
        WHERE order_id = $1 AND status = 'pending'
        RETURNING driver_id";
    /// Leases up to `$3` due jobs to dispatcher `$1` for `$2` milliseconds. One
    /// statement that re-checks its conditions on each row it locks, so two
    /// dispatchers never hold one job at any isolation level.
    CLAIM_DISPATCH_JOBS = "UPDATE dispatch_jobs
        SET lease_owner = $1, lease_until = now() + INTERVAL '1 millisecond' * $2::INT8,
            lease_epoch = lease_epoch + 1
        WHERE order_id IN (
                SELECT order_id FROM dispatch_jobs
                WHERE phase IN ('searching', 'offered') AND due_at <= now()
                    AND (lease_until IS NULL OR lease_until < now())
                ORDER BY due_at
                LIMIT $3)
            AND phase IN ('searching', 'offered') AND due_at <= now()
            AND (lease_until IS NULL OR lease_until < now())
        RETURNING order_id, delivery_id, city, restaurant_lat, restaurant_lng, rounds, lease_epoch, started_at,
            flagged_at, now(), due_at";
    SELECT_READY_TIMES = "SELECT id, estimated_ready_at FROM orders WHERE id = ANY($1)";
    SELECT_JOB_OFFERS = "SELECT order_id, id, driver_id, status, deadline FROM delivery_offers
        WHERE order_id = ANY($1)";
    SELECT_DISPATCH_CANDIDATES = "SELECT id, capacity, active_deliveries, offers_received, offers_accepted,
            last_offer_at
        FROM drivers WHERE id = ANY($1)";
    /// The job, if dispatcher lease `$2` still holds it and it still needs a driver.
    LOCK_LEASED_JOB = "SELECT rounds FROM dispatch_jobs
        WHERE order_id = $1 AND lease_epoch = $2 AND phase IN ('searching', 'offered')
        FOR UPDATE";
    INSERT_OFFER = "INSERT INTO delivery_offers (id, order_id, driver_id, round, score, distance_m, status,
            deadline)
        VALUES ($1, $2, $3, $4, $5, $6, 'pending', now() + INTERVAL '1 millisecond' * $7::INT8)
        ON CONFLICT DO NOTHING
        RETURNING deadline";
    MARK_JOB_OFFERED = "UPDATE dispatch_jobs SET phase = 'offered', rounds = rounds + 1, due_at = $2,
            lease_owner = NULL, lease_until = NULL, updated_at = now()
        WHERE order_id = $1";
    COUNT_DRIVER_OFFER = "UPDATE drivers SET offers_received = offers_received + 1, last_offer_at = now()
        WHERE id = $1";
    /// Hands a leased job back, to look at again in `$3` milliseconds.
    RELEASE_JOB = "UPDATE dispatch_jobs
        SET due_at = now() + INTERVAL '1 millisecond' * $3::INT8, lease_owner = NULL, lease_until = NULL,
            updated_at = now()
        WHERE order_id = $1 AND lease_epoch = $2";
    EXPIRE_OFFER = "UPDATE delivery_offers SET status = 'expired', answered_at = now()
        WHERE id = $1 AND status = 'pending'
        RETURNING driver_id";
    /// Back to searching now: the open offer was declined or expired.
    REQUEUE_JOB = "UPDATE dispatch_jobs SET phase = 'searching', due_at = now(), updated_at = now()
        WHERE order_id = $1 AND phase = 'offered'";
    FLAG_JOB = "UPDATE dispatch_jobs SET flagged_at = now(), updated_at = now()
        WHERE order_id = $1 AND lease_epoch = $2 AND flagged_at IS NULL AND phase IN ('searching', 'offered')
        RETURNING order_id";
    /// Bumps the order's event seq for an event that leaves its status alone.
    NEXT_ORDER_EVENT_SEQ = concat!(
        "UPDATE orders SET last_event_seq = last_event_seq + 1, updated_at = now() WHERE id = $1
        RETURNING ", order_columns!()
    );
    /// The order of delivery `$1`, if driver `$2` holds it.
    SELECT_ORDER_HELD_BY = concat!(
        "SELECT ",
        order_columns!(),
        " FROM orders WHERE driver_id = $2 AND id = (SELECT order_id FROM dispatch_jobs WHERE delivery_id = $1)"
    );
    SELECT_DRIVER_OFFER_FOR_DELIVERY = "SELECT o.id, o.order_id, o.status, o.deadline < now()
        FROM delivery_offers o JOIN dispatch_jobs j ON j.order_id = o.order_id
        WHERE j.delivery_id = $1 AND o.driver_id = $2
        ORDER BY o.offered_at DESC
        LIMIT 1";
    SET_OFFER_STATUS = "UPDATE delivery_offers SET status = $2, answered_at = now() WHERE id = $1";
    COUNT_DRIVER_ACCEPTANCE = "UPDATE drivers SET offers_accepted = offers_accepted + 1 WHERE id = $1";
    EXPIRE_DRIVER_OFFERS = "UPDATE delivery_offers SET status = 'expired', answered_at = now()
        WHERE driver_id = $1 AND status = 'pending'
        RETURNING order_id";
    SELECT_OPEN_DRIVER_OFFERS = "SELECT o.id, j.delivery_id, o.order_id, o.distance_m, o.deadline
        FROM delivery_offers o JOIN dispatch_jobs j ON j.order_id = o.order_id
        WHERE o.driver_id = $1 AND o.status = 'pending'
        ORDER BY o.offered_at";
    SELECT_OFFER_OUTCOMES = "SELECT o.id, j.delivery_id, o.status
        FROM delivery_offers o JOIN dispatch_jobs j ON j.order_id = o.order_id
        WHERE o.id = ANY($1)";
    SELECT_DISPATCH_JOB = "SELECT phase, rounds, city, started_at, flagged_at FROM dispatch_jobs WHERE order_id = $1";
    SELECT_ORDER_OFFERS = "SELECT id, driver_id, round, score, distance_m, offered_at, deadline, status, answered_at
        FROM delivery_offers WHERE order_id = $1
        ORDER BY offered_at, id";
    SELECT_FLAGGED_ORDERS = "SELECT j.order_id, o.restaurant_id, o.restaurant_name, j.city, o.status, j.rounds,
            j.flagged_at
        FROM dispatch_jobs j JOIN orders o ON o.id = j.order_id
        WHERE j.flagged_at IS NOT NULL AND j.phase IN ('searching', 'offered')
            AND ($1 = '' OR j.city = $1) AND (j.flagged_at, j.order_id) > ($2, $3)
        ORDER BY j.flagged_at, j.order_id
        LIMIT $4";

    SELECT_RESTAURANT_EVENT_SEQ = "SELECT event_seq FROM restaurants WHERE id = $1";
    SELECT_OPEN_RESTAURANT_ORDERS = concat!(
        "SELECT ", order_columns!(), " FROM orders
        WHERE restaurant_id = $1 AND status NOT IN ('delivered', 'cancelled', 'rejected')
        ORDER BY created_at, id"
    );
    SELECT_RESTAURANT_EVENTS_AFTER = concat!(
        "SELECT ", event_columns!(), " FROM order_events
        WHERE restaurant_id = $1 AND restaurant_seq > $2
        ORDER BY restaurant_seq LIMIT $3"
    );

    /// Orders still pending `$1` seconds after they were placed, oldest first.
    SELECT_UNANSWERED_ORDERS = "SELECT id FROM orders
        WHERE status = 'pending' AND created_at < now() - $1::FLOAT8 * INTERVAL '1 second'
        ORDER BY created_at LIMIT $2";
    SELECT_UNSETTLED_PAYMENTS = "SELECT id, payment_id, payment_status, payment_failures FROM orders
        WHERE payment_status IN ('capture_pending', 'void_pending', 'refund_pending') AND payment_retry_at <= now()
        ORDER BY payment_retry_at LIMIT $1";
    /// The provider call owed from status `$2` of order `$1` failed with
    /// `$4`: try again in `$3` seconds, unless a step changed it meanwhile.
    DEFER_PAYMENT = "UPDATE orders SET payment_retry_at = now() + $3::FLOAT8 * INTERVAL '1 second',
            payment_failures = payment_failures + 1, payment_error = $4
        WHERE id = $1 AND payment_status = $2";
    SETTLE_PAYMENT = "UPDATE orders SET payment_status = $3, payment_retry_at = now(), payment_failures = 0,
            payment_error = NULL
        WHERE id = $1 AND payment_status = $2";
}

/// CQL the store sends. Statements that name the keyspace are built by
/// functions, since CQL cannot bind identifiers.
pub mod cql {
    pub const PING: &str = "SELECT release_version FROM system.local";

    pub fn create_keyspace(keyspace: &str, replication: &str) -> String {
        format!("CREATE KEYSPACE IF NOT EXISTS {keyspace} WITH replication = {replication}")
    }

    pub fn create_migrations_table(keyspace: &str) -> String {
        format!(
            "CREATE TABLE IF NOT EXISTS {keyspace}.schema_migrations \
             (name text PRIMARY KEY, checksum text, applied_at timestamp)"
        )
    }

    pub fn select_migrations(keyspace: &str) -> String {
        format!("SELECT name, checksum FROM {keyspace}.schema_migrations")
    }

    pub fn insert_migration(keyspace: &str) -> String {
        format!(
            "INSERT INTO {keyspace}.schema_migrations (name, checksum, applied_at) VALUES (?, ?, toTimestamp(now()))"
        )
    }

    pub fn insert_location_by_city(keyspace: &str) -> String {
        format!(
            "INSERT INTO {keyspace}.driver_locations_by_city (city, day, bucket, driver_id, recorded_at, seq, lat, lng, \
             accuracy_m, speed_mps, heading_deg, received_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        )
    }

    pub fn insert_driver_track(keyspace: &str) -> String {
        format!(
            "INSERT INTO {keyspace}.driver_track (driver_id, day, recorded_at, seq, city, lat, lng, accuracy_m, \
             speed_mps, heading_deg) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        )
    }

    pub fn select_driver_track(keyspace: &str) -> String {
        format!(
            "SELECT recorded_at, seq, city, lat, lng, accuracy_m, speed_mps, heading_deg FROM {keyspace}.driver_track \
             WHERE driver_id = ? AND day = ? AND recorded_at >= ? AND recorded_at < ?"
        )
    }

    pub fn select_locations_by_city(keyspace: &str) -> String {
        format!(
            "SELECT driver_id, recorded_at, seq, lat, lng, accuracy_m, speed_mps, heading_deg, received_at \
             FROM {keyspace}.driver_locations_by_city WHERE city = ? AND day = ? AND bucket = ?"
        )
    }
}
