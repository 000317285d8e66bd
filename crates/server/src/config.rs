//! Layered configuration: built-in defaults, then an optional TOML file, then
//! `FOODFAST_*` environment variables, then command-line flags. Everything is
//! validated here, at start, and a bad value names the variable to fix.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use figment::value::Value;
use foodfast_config::Layers;
pub use foodfast_config::{ConfigError, Setting};
use foodfast_domain::dispatch::DispatchPolicy;
use foodfast_domain::eta::EtaPolicy;
use foodfast_domain::ping::PingPolicy;
use foodfast_domain::pricing::PricingPolicy;
use foodfast_domain::zones::{Zone, Zones};
use foodfast_payments::PaymentsConfig;
use foodfast_store::StoresConfig;
use foodfast_store::locations::LocationWriterConfig;
use foodfast_store::throttle::{RatePolicy, ThrottlePolicy};

use foodfast_telemetry::TracesConfig;

use crate::auth::TokenKey;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub grpc: GrpcConfig,
    pub stores: StoresConfig,
    pub health: HealthConfig,
    pub log: LogConfig,
    pub auth: AuthConfig,
    pub payments: PaymentsConfig,
    pub pricing: PricingPolicy,
    pub service: ServiceSettings,
    pub ingest: IngestConfig,
    pub tracking: TrackingConfig,
    pub dispatch: DispatchConfig,
    pub notifications: NotificationsConfig,
    pub media: MediaConfig,
    pub admin: AdminConfig,
    pub traces: TracesConfig,
}

/// Metrics and probes, apart from the gRPC port so that they are never
/// exposed with it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminConfig {
    /// Where `/metrics` and `/livez` are served.
    pub listen_addr: SocketAddr,
}

impl Default for AdminConfig {
    fn default() -> Self {
        Self { listen_addr: SocketAddr::from(([127, 0, 0, 1], 9464)) }
    }
}

/// Sending notifications through the provider (see [`crate::notifier`]).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotificationsConfig {
    /// The provider's base URL; empty: notifications are queued but this
    /// replica sends none.
    pub provider_url: String,
    /// Longest one provider call may take.
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    /// Attempts per notification, the first included.
    pub max_attempts: u32,
    /// The wait after the first failed attempt; it doubles after each one, up to `backoff_cap`.
    #[serde(with = "humantime_serde")]
    pub backoff_base: Duration,
    #[serde(with = "humantime_serde")]
    pub backoff_cap: Duration,
    /// How often the sender looks for due notifications when not nudged.
    #[serde(with = "humantime_serde")]
    pub poll_interval: Duration,
    /// Notifications claimed and sent at once.
    pub batch: u32,
    /// Pending notifications past which LOW ones are dropped at once and
    /// others refused with `RESOURCE_EXHAUSTED`.
    pub max_pending: u64,
}

impl Default for NotificationsConfig {
    fn default() -> Self {
        Self {
            provider_url: String::new(),
            timeout: Duration::from_secs(5),
            // 2 s doubling to 5 minutes: about a quarter of an hour of tries.
            max_attempts: 10,
            backoff_base: Duration::from_secs(2),
            backoff_cap: Duration::from_secs(300),
            poll_interval: Duration::from_secs(1),
            batch: 32,
            max_pending: 100_000,
        }
    }
}

/// Receiving and processing uploaded images (see [`crate::media`]).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MediaConfig {
    /// Images this replica processes at once, each on a blocking thread; 0:
    /// it processes none (another replica's workers do).
    pub workers: usize,
    /// How long a worker's claim on a job lasts: a job whose worker died is
    /// taken up again after it.
    #[serde(with = "humantime_serde")]
    pub lease: Duration,
    /// How often workers look for queued jobs when not nudged.
    #[serde(with = "humantime_serde")]
    pub poll_interval: Duration,
    /// Attempts per job (a failing store, not a bad image, is retried).
    pub max_attempts: u32,
    #[serde(with = "humantime_serde")]
    pub retry_after: Duration,
    /// Uploads this replica receives at once (each holds up to 10 MiB);
    /// past it `RESOURCE_EXHAUSTED`.
    pub max_concurrent_uploads: usize,
    /// Longest an upload may take to arrive.
    #[serde(with = "humantime_serde")]
    pub upload_timeout: Duration,
    /// Jobs waiting to be processed past which uploads are refused with
    /// `RESOURCE_EXHAUSTED`.
    pub max_pending: u64,
    /// Quality of processed JPEG images, 1 to 100.
    pub jpeg_quality: u8,
    /// Uploads one account may start per window, counted in Redis across
    /// replicas: one account cannot fill the processing queue.
    pub upload_rate: RatePolicy,
}

impl Default for MediaConfig {
    fn default() -> Self {
        Self {
            workers: 1,
            lease: Duration::from_secs(60),
            poll_interval: Duration::from_secs(1),
            max_attempts: 3,
            retry_after: Duration::from_secs(5),
            max_concurrent_uploads: 16,
            upload_timeout: Duration::from_secs(120),
            max_pending: 1_000,
            jpeg_quality: 85,
            upload_rate: RatePolicy { max: 30, window: Duration::from_secs(3600) },
        }
    }
}

/// Matching drivers to confirmed orders.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DispatchConfig {
    /// Whether this replica runs a dispatcher (any number may; they share
    /// the work through leases).
    pub enabled: bool,
    /// Radii, rounds, offer timeout and scoring weights.
    pub policy: DispatchPolicy,
    /// Cities matched in batches; the others offer each order as soon as it
    /// is confirmed (greedy).
    #[serde(deserialize_with = "foodfast_config::comma_separated")]
    pub batch_cities: Vec<String>,
    /// How often a batch city's pending orders and free drivers are matched.
    #[serde(with = "humantime_serde")]
    pub batch_interval: Duration,
    /// Dispatchers look for due jobs this often even without a wake-up.
    #[serde(with = "humantime_serde")]
    pub poll_interval: Duration,
    /// How long a dispatcher holds a job it works on; if it dies, another
    /// replica takes the job after this.
    #[serde(with = "humantime_serde")]
    pub lease: Duration,
    /// Jobs claimed per query.
    pub claim_limit: u32,
    /// Jobs matched at once per replica.
    pub concurrency: usize,
    /// When nobody can take an order, it is looked at again after this.
    #[serde(with = "humantime_serde")]
    pub retry_interval: Duration,
    /// An order still without a driver this long after confirmation is
    /// flagged, however many offers were made.
    #[serde(with = "humantime_serde")]
    pub flag_after: Duration,
    /// Connect streams re-read their driver's offers and deliveries about
    /// this often (each wait drawn from half to one and a half times it, so
    /// streams opened together do not read together) even without a wake-up.
    #[serde(with = "humantime_serde")]
    pub driver_resync_interval: Duration,
    /// A driver whose last position is older than this (its app went
    /// silent, or the replica holding its stream died) gets no offers until
    /// it pings again. At least twice `ingest.ping_interval`.
    #[serde(with = "humantime_serde")]
    pub max_position_age: Duration,
}

impl Default for DispatchConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            policy: DispatchPolicy::default(),
            batch_cities: Vec::new(),
            batch_interval: Duration::from_secs(3),
            poll_interval: Duration::from_millis(500),
            lease: Duration::from_secs(10),
            claim_limit: 64,
            concurrency: 16,
            retry_interval: Duration::from_secs(2),
            flag_after: Duration::from_secs(180),
            driver_resync_interval: Duration::from_secs(15),
            max_position_age: Duration::from_secs(120),
        }
    }
}

/// TrackOrder streams.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrackingConfig {
    /// Most driver-location messages a stream sends per second (a client
    /// may ask for fewer); in between, positions coalesce, latest wins.
    pub max_location_rate: u32,
    /// A stream re-reads its order's events about this often (jittered like
    /// `dispatch.driver_resync_interval`) even without a wake-up, so a lost
    /// pub/sub message only delays it.
    #[serde(with = "humantime_serde")]
    pub resync_interval: Duration,
    /// While Redis is unreachable, streams poll the database about this often.
    #[serde(with = "humantime_serde")]
    pub degraded_poll_interval: Duration,
    /// Order events a stream reads (and holds) at once.
    pub event_batch: u32,
    pub eta: EtaPolicy,
}

impl Default for TrackingConfig {
    fn default() -> Self {
        Self {
            max_location_rate: 10,
            resync_interval: Duration::from_secs(30),
            degraded_poll_interval: Duration::from_secs(2),
            event_batch: 64,
            eta: EtaPolicy::default(),
        }
    }
}

/// The driver location path.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IngestConfig {
    pub ping_policy: PingPolicy,
    /// Cities; a ping outside every zone is filed as `unzoned`.
    pub zones: Zones,
    pub writer: LocationWriterConfig,
    /// The ping interval the server asks apps for.
    #[serde(with = "humantime_serde")]
    pub ping_interval: Duration,
    /// How long ReportLocation waits for its pings to become durable.
    #[serde(with = "humantime_serde")]
    pub report_timeout: Duration,
    /// Messages a Connect stream buffers for a slow app.
    pub outbound_buffer: usize,
    /// How long a stream the app half-closed waits for its pings to become
    /// durable, to send the final ack.
    #[serde(with = "humantime_serde")]
    pub drain_timeout: Duration,
}

impl Default for IngestConfig {
    fn default() -> Self {
        Self {
            ping_policy: PingPolicy::default(),
            zones: Zones(vec![Zone { name: "paris".into(), south: 48.70, west: 2.05, north: 49.05, east: 2.65 }]),
            writer: LocationWriterConfig::default(),
            ping_interval: Duration::from_secs(5),
            report_timeout: Duration::from_secs(5),
            outbound_buffer: 64,
            drain_timeout: Duration::from_secs(60),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    /// Token keys as `kid:secret`; the first signs, all verify (rotation:
    /// put the new key first and keep the old one until its tokens expire).
    #[serde(deserialize_with = "foodfast_config::comma_separated")]
    pub keys: Vec<String>,
    /// How long an access token is accepted.
    #[serde(with = "humantime_serde")]
    pub access_token_ttl: Duration,
    /// How long a refresh token lasts unless used or revoked first.
    #[serde(with = "humantime_serde")]
    pub refresh_token_ttl: Duration,
    /// Failed sign-ins allowed per email before it must wait.
    pub login_throttle: ThrottlePolicy,
    /// Password hashes computed at once (argon2id takes ~19 MiB and tens of
    /// milliseconds each); more sign-ins wait their turn.
    pub max_concurrent_hashes: usize,
    /// How long a sign-in waits for its turn before `RESOURCE_EXHAUSTED`.
    #[serde(with = "humantime_serde")]
    pub max_hash_wait: Duration,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            keys: Vec::new(),
            access_token_ttl: Duration::from_secs(15 * 60),
            refresh_token_ttl: Duration::from_secs(30 * 24 * 3600),
            login_throttle: ThrottlePolicy::default(),
            max_concurrent_hashes: 4,
            max_hash_wait: Duration::from_secs(2),
        }
    }
}

impl AuthConfig {
    pub fn token_keys(&self) -> Result<Vec<TokenKey>, String> {
        self.keys.iter().map(|key| TokenKey::parse(key)).collect()
    }
}

/// Tunables of the order and restaurant services.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceSettings {
    /// How long the restaurant menu stays in the Redis cache.
    #[serde(with = "humantime_serde")]
    pub menu_cache_ttl: Duration,
    /// A CreateOrder that claimed its idempotency key and has not finished
    /// after this long is presumed dead; a retry takes its place.
    #[serde(with = "humantime_serde")]
    pub idempotency_stale_after: Duration,
    /// How long a retry waits for an in-flight CreateOrder with its key.
    #[serde(with = "humantime_serde")]
    pub idempotency_wait: Duration,
    /// Orders one customer may place (new idempotency keys; retries are
    /// free) per window, counted in Redis across replicas.
    pub order_rate: RatePolicy,
    /// Messages a WatchOrders stream buffers for a slow client before it
    /// stops reading (backpressure).
    pub watch_buffer: usize,
    /// A stream with nothing to say sends a heartbeat this often.
    #[serde(with = "humantime_serde")]
    pub watch_heartbeat: Duration,
    /// Streams re-read the database about this often (jittered) even without
    /// a wake-up, so a lost pub/sub message only delays them.
    #[serde(with = "humantime_serde")]
    pub watch_poll_interval: Duration,
    /// How often unsettled payment calls are retried.
    #[serde(with = "humantime_serde")]
    pub payment_sweep_interval: Duration,
    /// An order its restaurant has neither accepted nor rejected this long
    /// after it was placed is rejected for it, and its hold released.
    #[serde(with = "humantime_serde")]
    pub pending_order_timeout: Duration,
}

impl Default for ServiceSettings {
    fn default() -> Self {
        Self {
            menu_cache_ttl: Duration::from_secs(300),
            idempotency_stale_after: Duration::from_secs(30),
            idempotency_wait: Duration::from_secs(10),
            order_rate: RatePolicy { max: 20, window: Duration::from_secs(3600) },
            watch_buffer: 64,
            watch_heartbeat: Duration::from_secs(15),
            watch_poll_interval: Duration::from_secs(2),
            payment_sweep_interval: Duration::from_secs(10),
            pending_order_timeout: Duration::from_secs(10 * 60),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GrpcConfig {
    pub listen_addr: SocketAddr,
    /// HTTP/2 streams one connection may have open at once.
    pub max_concurrent_streams: u32,
    /// Client connections this replica keeps open at once; at the limit it
    /// stops accepting until one closes.
    pub max_connections: usize,
    /// Unary calls this replica handles at once; past it a call is refused
    /// with RESOURCE_EXHAUSTED (ERROR_REASON_OVERLOADED), not queued.
    pub max_calls_in_flight: usize,
    /// Streams open on this replica at once, over all connections (each
    /// holds a task and its buffers); past it a new one is refused like a
    /// call past `max_calls_in_flight`.
    pub max_open_streams: usize,
    /// Bytes a client may send on one connection before the server reads
    /// them (HTTP/2 flow control; each stream keeps the default 64 KiB).
    /// h2 also closes a connection whose unread small DATA frames (pings)
    /// exceed half of this, so it must leave room for many streams that
    /// wait on backpressure at once.
    pub connection_window_bytes: u32,
    /// Largest message accepted or sent, in bytes.
    pub max_message_bytes: usize,
    /// How long open streams and calls get to finish after SIGTERM/SIGINT.
    #[serde(with = "humantime_serde")]
    pub shutdown_grace: Duration,
    /// PEM certificate chain to serve TLS with (with `tls_key`; neither:
    /// plaintext). Read at start.
    pub tls_cert: Option<std::path::PathBuf>,
    /// PEM private key of `tls_cert`.
    pub tls_key: Option<std::path::PathBuf>,
}

impl Default for GrpcConfig {
    fn default() -> Self {
        Self {
            listen_addr: ([127, 0, 0, 1], 50051).into(),
            max_concurrent_streams: 1024,
            max_connections: 10_000,
            max_calls_in_flight: 2048,
            max_open_streams: 65_536,
            connection_window_bytes: 4 << 20,
            max_message_bytes: 4 * 1024 * 1024,
            shutdown_grace: Duration::from_secs(20),
            tls_cert: None,
            tls_key: None,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthConfig {
    /// How often every store is pinged for the health service.
    #[serde(with = "humantime_serde")]
    pub probe_interval: Duration,
    /// A ping not answered within this failed.
    #[serde(with = "humantime_serde")]
    pub probe_timeout: Duration,
    /// Consecutive failed pings before a store that was up counts as down:
    /// one slow answer on a busy replica (or a store-wide hiccup) must not
    /// take every replica out of service at once. Up again on the first
    /// answer.
    pub failures_before_down: u32,
}

impl Default for HealthConfig {
    fn default() -> Self {
        Self { probe_interval: Duration::from_secs(2), probe_timeout: Duration::from_secs(1), failures_before_down: 3 }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    pub format: LogFormat,
    /// A `tracing` filter, e.g. `info` or `foodfast=debug,info`.
    pub filter: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self { format: LogFormat::Pretty, filter: "info,scylla=warn".into() }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Pretty,
    Json,
}

/// Every environment variable FoodFast reads. README's configuration table
/// lists the same ones (a test checks).
pub const SETTINGS: &[Setting] = &[
    Setting { env: "FOODFAST_GRPC_ADDR", key: "grpc.listen_addr", help: "gRPC listen address" },
    Setting {
        env: "FOODFAST_GRPC_MAX_CONCURRENT_STREAMS",
        key: "grpc.max_concurrent_streams",
        help: "HTTP/2 streams per connection",
    },
    Setting {
        env: "FOODFAST_GRPC_MAX_CONNECTIONS",
        key: "grpc.max_connections",
        help: "client connections open at once; more wait to be accepted",
    },
    Setting {
        env: "FOODFAST_GRPC_MAX_CALLS_IN_FLIGHT",
        key: "grpc.max_calls_in_flight",
        help: "unary calls handled at once; more are refused (RESOURCE_EXHAUSTED)",
    },
    Setting {
        env: "FOODFAST_GRPC_MAX_OPEN_STREAMS",
        key: "grpc.max_open_streams",
        help: "streams open at once over all connections; more are refused (RESOURCE_EXHAUSTED)",
    },
    Setting {
        env: "FOODFAST_GRPC_CONNECTION_WINDOW_BYTES",
        key: "grpc.connection_window_bytes",
        help: "HTTP/2 connection flow-control window",
    },
    Setting { env: "FOODFAST_GRPC_MAX_MESSAGE_BYTES", key: "grpc.max_message_bytes", help: "largest message, bytes" },
    Setting {
        env: "FOODFAST_SHUTDOWN_GRACE",
        key: "grpc.shutdown_grace",
        help: "time streams get to finish on SIGTERM",
    },
    Setting { env: "FOODFAST_GRPC_TLS_CERT", key: "grpc.tls_cert", help: "PEM certificate chain to serve TLS with" },
    Setting { env: "FOODFAST_GRPC_TLS_KEY", key: "grpc.tls_key", help: "PEM private key of the TLS certificate" },
    Setting { env: "FOODFAST_DATABASE_URL", key: "stores.postgres.url", help: "CockroachDB or PostgreSQL URL" },
    Setting {
        env: "FOODFAST_DATABASE_MAX_CONNECTIONS",
        key: "stores.postgres.max_connections",
        help: "connection pool size",
    },
    Setting {
        env: "FOODFAST_DATABASE_MAX_TX_ATTEMPTS",
        key: "stores.postgres.max_tx_attempts",
        help: "attempts of a transaction that keeps hitting 40001",
    },
    Setting {
        env: "FOODFAST_SCYLLA_CONTACT_POINTS",
        key: "stores.scylla.contact_points",
        help: "ScyllaDB/Cassandra nodes, comma-separated host:port",
    },
    Setting { env: "FOODFAST_SCYLLA_KEYSPACE", key: "stores.scylla.keyspace", help: "keyspace FoodFast owns" },
    Setting {
        env: "FOODFAST_SCYLLA_REPLICATION",
        key: "stores.scylla.replication",
        help: "replication map used when migrate creates the keyspace",
    },
    Setting {
        env: "FOODFAST_SCYLLA_CONNECTIONS",
        key: "stores.scylla.connections",
        help: "connections to each node (each shard on ScyllaDB)",
    },
    Setting {
        env: "FOODFAST_SCYLLA_TLS_MODE",
        key: "stores.scylla.tls_mode",
        help: "TLS to the nodes: disable, require, verify-ca or verify-full",
    },
    Setting {
        env: "FOODFAST_SCYLLA_TLS_CA",
        key: "stores.scylla.tls_ca_cert",
        help: "PEM root certificate the nodes' certificates chain to",
    },
    Setting {
        env: "FOODFAST_SCYLLA_TLS_CERT",
        key: "stores.scylla.tls_client_cert",
        help: "PEM client certificate chain, for nodes that ask for one",
    },
    Setting {
        env: "FOODFAST_SCYLLA_TLS_KEY",
        key: "stores.scylla.tls_client_key",
        help: "PEM key of that certificate",
    },
    Setting {
        env: "FOODFAST_SCYLLA_USERNAME",
        key: "stores.scylla.username",
        help: "PasswordAuthenticator user; empty: no authentication",
    },
    Setting { env: "FOODFAST_SCYLLA_PASSWORD", key: "stores.scylla.password", help: "that user's password" },
    Setting { env: "FOODFAST_REDIS_URL", key: "stores.redis.url", help: "Redis URL" },
    Setting {
        env: "FOODFAST_REDIS_CONNECTIONS",
        key: "stores.redis.connections",
        help: "multiplexed Redis connections, taken in turn",
    },
    Setting {
        env: "FOODFAST_REDIS_TLS_CA",
        key: "stores.redis.tls_ca_cert",
        help: "PEM root certificate a rediss:// server's certificate chains to",
    },
    Setting {
        env: "FOODFAST_REDIS_TLS_CERT",
        key: "stores.redis.tls_client_cert",
        help: "PEM client certificate chain, for servers that ask for one",
    },
    Setting { env: "FOODFAST_REDIS_TLS_KEY", key: "stores.redis.tls_client_key", help: "PEM key of that certificate" },
    Setting {
        env: "FOODFAST_STORES_CONNECT_TIMEOUT",
        key: "stores.connect_timeout",
        help: "how long start-up waits for the stores",
    },
    Setting {
        env: "FOODFAST_HEALTH_PROBE_INTERVAL",
        key: "health.probe_interval",
        help: "how often stores are pinged for health",
    },
    Setting {
        env: "FOODFAST_HEALTH_FAILURES_BEFORE_DOWN",
        key: "health.failures_before_down",
        help: "consecutive failed pings before a store counts as down",
    },
    Setting {
        env: "FOODFAST_AUTH_KEYS",
        key: "auth.keys",
        help: "token keys `kid:secret`, comma-separated; the first signs",
    },
    Setting {
        env: "FOODFAST_ACCESS_TOKEN_TTL",
        key: "auth.access_token_ttl",
        help: "how long an access token is accepted",
    },
    Setting {
        env: "FOODFAST_REFRESH_TOKEN_TTL",
        key: "auth.refresh_token_ttl",
        help: "how long a refresh token lasts",
    },
    Setting { env: "FOODFAST_PAYMENTS_URL", key: "payments.base_url", help: "payment provider base URL" },
    Setting { env: "FOODFAST_PAYMENTS_API_KEY", key: "payments.api_key", help: "payment provider API key" },
    Setting {
        env: "FOODFAST_NOTIFICATIONS_URL",
        key: "notifications.provider_url",
        help: "push/SMS/email provider base URL; empty: nothing is sent",
    },
    Setting {
        env: "FOODFAST_OBJECTS_URL",
        key: "stores.objects.url",
        help: "image storage: `s3://bucket[/prefix]` (`AWS_*` credentials) or a directory",
    },
    Setting {
        env: "FOODFAST_OBJECTS_PUBLIC_URL",
        key: "stores.objects.public_base_url",
        help: "where clients fetch images (a CDN); empty: the bucket itself",
    },
    Setting {
        env: "FOODFAST_MEDIA_WORKERS",
        key: "media.workers",
        help: "images this replica processes at once; 0: none",
    },
    Setting { env: "FOODFAST_TAX_RATE", key: "pricing.tax_rate", help: "tax rate on the subtotal, e.g. 0.08" },
    Setting {
        env: "FOODFAST_DELIVERY_FEE_BASE",
        key: "pricing.delivery_fee_base",
        help: "delivery fee before distance",
    },
    Setting {
        env: "FOODFAST_DELIVERY_FEE_PER_KM",
        key: "pricing.delivery_fee_per_km",
        help: "delivery fee per kilometer",
    },
    Setting { env: "FOODFAST_MENU_CACHE_TTL", key: "service.menu_cache_ttl", help: "menu cache lifetime" },
    Setting {
        env: "FOODFAST_ORDER_RATE_MAX",
        key: "service.order_rate.max",
        help: "orders one customer may place per window (a burst, then evenly spread)",
    },
    Setting {
        env: "FOODFAST_ORDER_RATE_WINDOW",
        key: "service.order_rate.window",
        help: "the window of `FOODFAST_ORDER_RATE_MAX`",
    },
    Setting {
        env: "FOODFAST_TRACKING_MAX_LOCATION_RATE",
        key: "tracking.max_location_rate",
        help: "most driver locations per second on one TrackOrder stream",
    },
    Setting {
        env: "FOODFAST_DISPATCH_OFFER_TIMEOUT",
        key: "dispatch.policy.offer_timeout",
        help: "how long a driver has to answer an offer",
    },
    Setting {
        env: "FOODFAST_ZONES",
        key: "ingest.zones",
        help: "cities as boxes, e.g. [{name=\"paris\", south=48.70, west=2.05, north=49.05, east=2.65}]",
    },
    Setting {
        env: "FOODFAST_DISPATCH_BATCH_CITIES",
        key: "dispatch.batch_cities",
        help: "cities matched in batches, comma-separated (others: greedy)",
    },
    Setting { env: "FOODFAST_ADMIN_ADDR", key: "admin.listen_addr", help: "admin listen address: /metrics and /livez" },
    Setting {
        env: "FOODFAST_OTLP_ENDPOINT",
        key: "traces.otlp_endpoint",
        help: "OTLP/gRPC collector for traces, e.g. http://otel-collector:4317",
    },
    Setting {
        env: "FOODFAST_TRACE_SAMPLE_RATIO",
        key: "traces.sample_ratio",
        help: "share of new traces kept, 0 to 1",
    },
    Setting { env: "FOODFAST_LOG_FORMAT", key: "log.format", help: "`pretty` or `json`" },
    Setting { env: "FOODFAST_LOG", key: "log.filter", help: "tracing filter, e.g. `info`" },
];

/// The variable naming the optional configuration file.
pub const CONFIG_FILE_ENV: &str = "FOODFAST_CONFIG";

/// Values given as command-line flags, the last layer.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub grpc_addr: Option<SocketAddr>,
    pub log_format: Option<LogFormat>,
}

const LAYERS: Layers = Layers { settings: SETTINGS, file_env: CONFIG_FILE_ENV };

impl Config {
    /// Loads defaults < `file` (or `FOODFAST_CONFIG`) < the `FOODFAST_*`
    /// variables in `env` < flags. `env` is the process environment in
    /// `main`, a plain map in tests.
    pub fn load(
        file: Option<&Path>,
        env: &BTreeMap<String, String>,
        overrides: &Overrides,
    ) -> Result<Self, ConfigError> {
        let mut flags = Vec::new();
        if let Some(addr) = overrides.grpc_addr {
            flags.push(("grpc.listen_addr", addr.to_string().into()));
        }
        if let Some(format) = overrides.log_format {
            flags.push(("log.format", Value::serialize(format).expect("a log format serializes")));
        }
        let config: Config = LAYERS.load(file, env, &flags)?;
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key: &str, message: String| LAYERS.invalid(key, message);
        self.stores.validate().map_err(|err| invalid(err.key, err.message))?;
        if self.grpc.connection_window_bytes < 65_535 {
            return Err(invalid("grpc.connection_window_bytes", "must be at least 65535 (HTTP/2's default)".into()));
        }
        if self.grpc.max_concurrent_streams == 0 {
            return Err(invalid("grpc.max_concurrent_streams", "must be at least 1".into()));
        }
        if self.grpc.max_connections == 0 {
            return Err(invalid("grpc.max_connections", "must be at least 1".into()));
        }
        if self.grpc.max_calls_in_flight == 0 {
            return Err(invalid("grpc.max_calls_in_flight", "must be at least 1".into()));
        }
        if self.grpc.max_open_streams == 0 {
            return Err(invalid("grpc.max_open_streams", "must be at least 1".into()));
        }
        match (&self.grpc.tls_cert, &self.grpc.tls_key) {
            (Some(_), None) => return Err(invalid("grpc.tls_key", "required with FOODFAST_GRPC_TLS_CERT".into())),
            (None, Some(_)) => return Err(invalid("grpc.tls_cert", "required with FOODFAST_GRPC_TLS_KEY".into())),
            _ => {}
        }
        for (key, path) in [("grpc.tls_cert", &self.grpc.tls_cert), ("grpc.tls_key", &self.grpc.tls_key)] {
            if path.as_ref().is_some_and(|path| path.as_os_str().is_empty()) {
                return Err(invalid(key, "must name a PEM file".into()));
            }
        }
        if self.health.probe_timeout.is_zero() || self.health.probe_interval.is_zero() {
            return Err(invalid("health.probe_interval", "health probe interval and timeout must be positive".into()));
        }
        if self.health.failures_before_down == 0 {
            return Err(invalid("health.failures_before_down", "must be at least 1".into()));
        }
        self.auth.token_keys().map_err(|message| invalid("auth.keys", message))?;
        if self.auth.access_token_ttl.is_zero() || self.auth.refresh_token_ttl <= self.auth.access_token_ttl {
            return Err(invalid(
                "auth.refresh_token_ttl",
                "token lifetimes must be positive, refresh longer than access".into(),
            ));
        }
        if self.service.order_rate.max == 0 {
            return Err(invalid("service.order_rate.max", "must allow at least one order per window".into()));
        }
        if self.service.pending_order_timeout < Duration::from_secs(1) {
            return Err(invalid("service.pending_order_timeout", "must be at least 1s".into()));
        }
        if self.service.order_rate.window.is_zero() {
            return Err(invalid("service.order_rate.window", "must be positive".into()));
        }
        if self.auth.login_throttle.max_failures == 0 || self.auth.login_throttle.window.is_zero() {
            return Err(invalid("auth.login_throttle", "must allow at least one failure per positive window".into()));
        }
        if self.auth.max_concurrent_hashes == 0 {
            return Err(invalid("auth.max_concurrent_hashes", "must be at least 1".into()));
        }
        if self.auth.max_hash_wait.is_zero() {
            return Err(invalid("auth.max_hash_wait", "must be positive".into()));
        }
        self.pricing.validate().map_err(|err| invalid("pricing", err.to_string()))?;
        foodfast_payments::HttpPaymentGateway::new(self.payments.clone())
            .map_err(|err| invalid("payments.base_url", err.to_string()))?;
        let notifications = &self.notifications;
        let url = &notifications.provider_url;
        if !(url.is_empty() || url.starts_with("http://") || url.starts_with("https://")) {
            return Err(invalid("notifications.provider_url", "must be an http:// or https:// URL".into()));
        }
        if notifications.max_attempts == 0
            || !(1..=1_000).contains(&notifications.batch)
            || notifications.max_pending == 0
        {
            return Err(invalid(
                "notifications",
                "max_attempts and max_pending must be at least 1, and batch 1 to 1000".into(),
            ));
        }
        // Zero would make the sender spin on the database or give up on every call.
        if notifications.poll_interval.is_zero()
            || notifications.timeout.is_zero()
            || notifications.backoff_base.is_zero()
            || notifications.backoff_cap < notifications.backoff_base
        {
            return Err(invalid(
                "notifications",
                "poll_interval, timeout and backoff_base must be more than 0, and backoff_cap at least backoff_base"
                    .into(),
            ));
        }
        let media = &self.media;
        if media.upload_rate.max == 0 || media.upload_rate.window.is_zero() {
            return Err(invalid("media.upload_rate", "must allow at least one upload per positive window".into()));
        }
        if media.max_attempts == 0 || media.max_concurrent_uploads == 0 || media.max_pending == 0 {
            return Err(invalid(
                "media",
                "max_attempts, max_concurrent_uploads and max_pending must be at least 1".into(),
            ));
        }
        if media.poll_interval.is_zero() || media.upload_timeout.is_zero() || media.lease <= media.poll_interval {
            return Err(invalid(
                "media.lease",
                "intervals must be positive, the lease longer than the poll interval".into(),
            ));
        }
        if !(1..=100).contains(&media.jpeg_quality) {
            return Err(invalid("media.jpeg_quality", "must be 1 to 100".into()));
        }
        self.ingest.zones.validate().map_err(|message| invalid("ingest.zones", message))?;
        self.ingest.ping_policy.validate().map_err(|err| invalid("ingest.ping_policy", err.to_string()))?;
        self.ingest.writer.validate().map_err(|err| invalid("ingest.writer", err.to_string()))?;
        if self.ingest.outbound_buffer == 0 {
            return Err(invalid("ingest.outbound_buffer", "must be at least 1".into()));
        }
        if self.tracking.max_location_rate == 0 {
            return Err(invalid("tracking.max_location_rate", "must be at least 1".into()));
        }
        if self.tracking.event_batch == 0 {
            return Err(invalid("tracking.event_batch", "must be at least 1".into()));
        }
        if self.tracking.resync_interval.is_zero() || self.tracking.degraded_poll_interval.is_zero() {
            return Err(invalid("tracking.resync_interval", "poll intervals must be positive".into()));
        }
        self.tracking.eta.validate().map_err(|err| invalid("tracking.eta", err.to_string()))?;
        let dispatch = &self.dispatch;
        dispatch.policy.validate().map_err(|err| invalid("dispatch.policy", err.to_string()))?;
        if let Some(city) =
            dispatch.batch_cities.iter().find(|city| !self.ingest.zones.0.iter().any(|z| &z.name == *city))
        {
            return Err(invalid("dispatch.batch_cities", format!("{city:?} is not a configured zone")));
        }
        if [dispatch.batch_interval, dispatch.poll_interval, dispatch.retry_interval, dispatch.driver_resync_interval]
            .iter()
            .any(Duration::is_zero)
        {
            return Err(invalid("dispatch", "intervals must be positive".into()));
        }
        if dispatch.lease <= dispatch.poll_interval {
            return Err(invalid("dispatch.lease", "must be longer than dispatch.poll_interval".into()));
        }
        if dispatch.max_position_age < self.ingest.ping_interval * 2 {
            return Err(invalid(
                "dispatch.max_position_age",
                format!(
                    "must be at least twice ingest.ping_interval ({}), or drivers between two pings get no offers",
                    humantime::format_duration(self.ingest.ping_interval)
                ),
            ));
        }
        if dispatch.claim_limit == 0 || dispatch.concurrency == 0 {
            return Err(invalid("dispatch.claim_limit", "claim_limit and concurrency must be at least 1".into()));
        }
        if self.service.watch_buffer == 0 {
            return Err(invalid("service.watch_buffer", "must be at least 1".into()));
        }
        if self.service.watch_heartbeat.is_zero() {
            return Err(invalid("service.watch_heartbeat", "must be positive".into()));
        }
        self.traces.validate().map_err(|(field, message)| invalid(&format!("traces.{field}"), message))?;
        if self.admin.listen_addr == self.grpc.listen_addr {
            return Err(invalid("admin.listen_addr", "must differ from the gRPC listen address".into()));
        }
        tracing_subscriber::EnvFilter::try_new(&self.log.filter)
            .map_err(|err| invalid("log.filter", format!("not a tracing filter: {err}")))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    fn load(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        Config::load(None, &env(pairs), &Overrides::default())
    }

    #[test]
    fn the_defaults_parse_and_validate() {
        let config = load(&[]).unwrap();
        assert_eq!(config.grpc.listen_addr, "127.0.0.1:50051".parse().unwrap());
        assert_eq!(config.stores.scylla.keyspace, "foodfast");
        assert_eq!(config.log.format, LogFormat::Pretty);
    }

    #[test]
    fn every_setting_names_a_real_key() {
        assert_eq!(LAYERS.settings_without_key::<Config>(), Vec::<&str>::new(), "variables that set nothing");
    }

    #[test]
    fn layers_apply_file_then_environment_then_flags() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("foodfast.toml");
        std::fs::write(
            &file,
            "[grpc]\nlisten_addr = \"127.0.0.1:7001\"\n[stores.redis]\nurl = \"redis://file:6379\"\n\
             [stores.scylla]\nkeyspace = \"from_file\"\n",
        )
        .unwrap();
        let vars = env(&[
            ("FOODFAST_REDIS_URL", "redis://env:6379"),
            ("FOODFAST_GRPC_ADDR", "127.0.0.1:7002"),
            ("FOODFAST_SCYLLA_CONTACT_POINTS", "10.0.0.1:9042, 10.0.0.2:9042"),
            ("FOODFAST_DATABASE_MAX_CONNECTIONS", "7"),
            ("FOODFAST_SHUTDOWN_GRACE", "45s"),
        ]);
        let flags = Overrides { grpc_addr: Some("127.0.0.1:7003".parse().unwrap()), log_format: Some(LogFormat::Json) };
        let config = Config::load(Some(&file), &vars, &flags).unwrap();
        assert_eq!(config.stores.scylla.keyspace, "from_file");
        assert_eq!(config.stores.redis.url, "redis://env:6379");
        assert_eq!(config.grpc.listen_addr, "127.0.0.1:7003".parse().unwrap());
        assert_eq!(config.log.format, LogFormat::Json);
        assert_eq!(config.stores.scylla.contact_points, ["10.0.0.1:9042", "10.0.0.2:9042"]);
        assert_eq!(config.stores.postgres.max_connections, 7);
        assert_eq!(config.grpc.shutdown_grace, Duration::from_secs(45));

        let from_variable =
            Config::load(None, &env(&[(CONFIG_FILE_ENV, file.to_str().unwrap())]), &Overrides::default());
        assert_eq!(from_variable.unwrap().grpc.listen_addr, "127.0.0.1:7001".parse().unwrap());
    }

    #[test]
    fn a_bad_value_names_its_variable() {
        let cases = [
            ("FOODFAST_GRPC_ADDR", "not-an-address"),
            ("FOODFAST_DATABASE_MAX_CONNECTIONS", "lots"),
            ("FOODFAST_DATABASE_MAX_CONNECTIONS", "0"),
            ("FOODFAST_GRPC_CONNECTION_WINDOW_BYTES", "65534"),
            ("FOODFAST_SCYLLA_KEYSPACE", "bad-name"),
            ("FOODFAST_REDIS_URL", "http://example"),
            ("FOODFAST_NOTIFICATIONS_URL", "provider.internal:8080"),
            ("FOODFAST_DATABASE_URL", "postgresql://host:notaport/db"),
            ("FOODFAST_DATABASE_URL", "postgresql://host/db?sslmode=allow"),
            ("FOODFAST_DATABASE_URL", "postgresql://host/db?sslmode=verify-full&sslrootcert=/nonexistent/ca.crt"),
            ("FOODFAST_LOG_FORMAT", "xml"),
            ("FOODFAST_SHUTDOWN_GRACE", "soon"),
            ("FOODFAST_ADMIN_ADDR", "127.0.0.1:50051"),
            ("FOODFAST_OTLP_ENDPOINT", "otel-collector:4317"),
            ("FOODFAST_REDIS_CONNECTIONS", "0"),
            ("FOODFAST_REDIS_CONNECTIONS", "257"),
            ("FOODFAST_SCYLLA_CONNECTIONS", "0"),
            ("FOODFAST_SCYLLA_CONNECTIONS", "65"),
            ("FOODFAST_HEALTH_FAILURES_BEFORE_DOWN", "0"),
            ("FOODFAST_TRACE_SAMPLE_RATIO", "1.5"),
            ("FOODFAST_ORDER_RATE_MAX", "0"),
            ("FOODFAST_ORDER_RATE_WINDOW", "0s"),
            ("FOODFAST_ZONES", "paris"),
            ("FOODFAST_ZONES", "[{name=\"Paris\", south=48.70, west=2.05, north=49.05, east=2.65}]"),
            ("FOODFAST_ZONES", "[{name=\"paris\", south=49.05, west=2.05, north=48.70, east=2.65}]"),
        ];
        for (var, value) in cases {
            let err = load(&[(var, value)]).expect_err(var).to_string();
            assert!(err.contains(var), "{var}={value}: {err}");
        }
    }

    #[test]
    fn zones_come_from_one_variable() {
        let zones = "[{name=\"paris\", south=48.70, west=2.05, north=49.05, east=2.65}, \
                     {name=\"london\", south=51.28, west=-0.51, north=51.70, east=0.33}]";
        let config = load(&[("FOODFAST_ZONES", zones), ("FOODFAST_DISPATCH_BATCH_CITIES", "london")]).unwrap();
        let names: Vec<&str> = config.ingest.zones.0.iter().map(|zone| zone.name.as_str()).collect();
        assert_eq!(names, ["paris", "london"]);
        assert_eq!(config.ingest.zones.city_of(foodfast_domain::geo::LatLng::new(51.5, -0.12).unwrap()), "london");
        assert_eq!(config.dispatch.batch_cities, ["london"]);
    }

    #[test]
    fn a_missing_or_bad_file_is_named() {
        let err = Config::load(Some(Path::new("/nonexistent/foodfast.toml")), &env(&[]), &Overrides::default());
        assert!(err.unwrap_err().to_string().contains("/nonexistent/foodfast.toml"));

        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("bad.toml");
        std::fs::write(&file, "[grpc]\nlisten_adr = \"127.0.0.1:1\"\n").unwrap();
        let err = Config::load(Some(&file), &env(&[]), &Overrides::default()).unwrap_err().to_string();
        assert!(err.contains("bad.toml") && err.contains("listen_adr"), "{err}");

        std::fs::write(&file, "[ingest.writer]\nbuckets = 0\n").unwrap();
        let err = Config::load(Some(&file), &env(&[]), &Overrides::default()).unwrap_err().to_string();
        assert!(err.contains("ingest.writer: buckets: must be 1 to 1024"), "{err}");
    }

    #[test]
    fn offers_need_a_position_age_limit_longer_than_two_pings() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("foodfast.toml");
        std::fs::write(&file, "[dispatch]\nmax_position_age = \"9s\"\n").unwrap();
        let err = Config::load(Some(&file), &env(&[]), &Overrides::default()).unwrap_err().to_string();
        assert!(err.contains("dispatch.max_position_age") && err.contains("5s"), "{err}");
        std::fs::write(&file, "[dispatch]\nmax_position_age = \"10s\"\n").unwrap();
        let config = Config::load(Some(&file), &env(&[]), &Overrides::default()).unwrap();
        assert_eq!(config.dispatch.max_position_age, Duration::from_secs(10));
    }

    #[test]
    fn a_notification_sender_that_would_spin_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("foodfast.toml");
        for setting in ["poll_interval = \"0s\"", "timeout = \"0s\"", "backoff_cap = \"1s\""] {
            std::fs::write(&file, format!("[notifications]\n{setting}\n")).unwrap();
            let err = Config::load(Some(&file), &env(&[]), &Overrides::default()).unwrap_err().to_string();
            assert!(err.contains("notifications") && err.contains("poll_interval, timeout"), "{setting}: {err}");
        }
    }

    #[test]
    fn readme_documents_every_variable() {
        let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md")).unwrap();
        for setting in SETTINGS {
            assert!(readme.contains(setting.env), "README.md does not document {}", setting.env);
        }
        assert!(readme.contains(CONFIG_FILE_ENV));
    }
}
