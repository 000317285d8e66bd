//! Every connection FoodFast makes. The server and the gateway reach
//! CockroachDB (PostgreSQL in development), ScyllaDB (Cassandra in development)
//! and Redis only through this crate.

pub mod announcements;
pub mod audit;
pub mod dispatch;
pub mod error;
pub mod failure_log;
pub mod fanout;
pub mod health;
pub mod live;
pub mod locations;
pub mod metrics;
pub mod migrate;
pub mod notifications;
pub mod objects;
pub mod orders;
pub mod postgres;
pub mod postgres_tls;
pub mod redis;
pub mod restaurants;
pub mod scylla;
pub mod sql;
pub mod support;
pub mod throttle;
pub mod tls;
pub mod uploads;
pub mod users;

use postgres_tls::PostgresUrl;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

pub use error::{Backend, Chain, StoreError};

/// Locks `mutex`; a panic elsewhere while holding it leaves plain data, still usable.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The three stores, connected.
#[derive(Clone)]
pub struct Stores {
    pub postgres: postgres::Postgres,
    pub redis: redis::Redis,
    pub scylla: scylla::Scylla,
    pub objects: objects::Objects,
}

/// Where the stores are and how to reach them.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoresConfig {
    pub postgres: postgres::PostgresConfig,
    pub scylla: scylla::ScyllaConfig,
    pub redis: redis::RedisConfig,
    pub objects: objects::ObjectsConfig,
    /// How long start-up keeps retrying a store that does not answer yet.
    #[serde(with = "humantime_serde")]
    pub connect_timeout: Duration,
}

impl Default for StoresConfig {
    fn default() -> Self {
        Self {
            postgres: Default::default(),
            scylla: Default::default(),
            redis: Default::default(),
            objects: Default::default(),
            connect_timeout: Duration::from_secs(60),
        }
    }
}

/// A configuration value that cannot work, by its key (e.g. `postgres.url`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {message}")]
pub struct InvalidSetting {
    pub key: &'static str,
    pub message: String,
}

impl StoresConfig {
    /// Checks what would otherwise fail only at the first connection.
    pub fn validate(&self) -> Result<(), InvalidSetting> {
        let invalid = |key, message| Err(InvalidSetting { key, message });
        // Reads the certificate files too: a missing one stops the start with its name.
        if let Err(message) = PostgresUrl::parse(&self.postgres.url).and_then(|url| url.tls.connector()) {
            return invalid("stores.postgres.url", message);
        }
        if self.postgres.max_connections == 0 {
            return invalid("stores.postgres.max_connections", "must be at least 1".into());
        }
        if self.postgres.max_tx_attempts == 0 {
            return invalid("stores.postgres.max_tx_attempts", "must be at least 1".into());
        }
        if self.scylla.contact_points.is_empty() {
            return invalid("stores.scylla.contact_points", "needs at least one host:port".into());
        }
        if let Err(message) = scylla::validate_keyspace_name(&self.scylla.keyspace) {
            return invalid("stores.scylla.keyspace", message);
        }
        if !(1..=scylla::MAX_CONNECTIONS).contains(&self.scylla.connections) {
            return invalid("stores.scylla.connections", format!("must be 1 to {}", scylla::MAX_CONNECTIONS));
        }
        if let Err(message) = self.scylla.tls() {
            return invalid("stores.scylla.tls_mode", message);
        }
        if let Err(message) = self.redis.client() {
            return invalid("stores.redis.url", message);
        }
        if !(1..=redis::MAX_CONNECTIONS).contains(&self.redis.connections) {
            return invalid("stores.redis.connections", format!("must be 1 to {}", redis::MAX_CONNECTIONS));
        }
        if let Err(message) = self.objects.validate() {
            return invalid("stores.objects.url", message);
        }
        Ok(())
    }
}

impl Stores {
    /// Connects to the three databases, retrying each until `connect_timeout`,
    /// and opens object storage.
    pub async fn connect(config: &StoresConfig) -> Result<Self, StoreError> {
        let deadline = tokio::time::Instant::now() + config.connect_timeout;
        let postgres = retry_until(deadline, "postgres", || postgres::Postgres::connect(&config.postgres)).await?;
        let redis = retry_until(deadline, "redis", || redis::Redis::connect(&config.redis)).await?;
        let scylla = retry_until(deadline, "scylla", || scylla::Scylla::connect(&config.scylla)).await?;
        let objects = objects::Objects::open(&config.objects)?;
        Ok(Self { postgres, redis, scylla, objects })
    }
}

async fn retry_until<T, F, Fut>(deadline: tokio::time::Instant, store: &str, mut connect: F) -> Result<T, StoreError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, StoreError>>,
{
    let mut backoff = Duration::from_millis(200);
    loop {
        match connect().await {
            Ok(connected) => return Ok(connected),
            Err(err) if tokio::time::Instant::now() + backoff < deadline => {
                tracing::warn!(store, error = %crate::error::Chain(&err), retry_in = ?backoff, "store not reachable yet");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
            Err(err) => return Err(err),
        }
    }
}
