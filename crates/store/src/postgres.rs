//! CockroachDB, or PostgreSQL in development: one wire protocol, one set of
//! statements (see [`crate::sql`]), SERIALIZABLE transactions retried on 40001.

use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use futures::future::BoxFuture;
use tokio_postgres::error::SqlState;
use tokio_postgres::{IsolationLevel, NoTls, Transaction};

use crate::StoreError;
use crate::postgres_tls::PostgresUrl;

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostgresConfig {
    /// A libpq-style URL, e.g. `postgresql://user@host:26257/foodfast?sslmode=verify-full&sslrootcert=ca.crt`
    /// (TLS parameters: see [`crate::postgres_tls`]).
    pub url: String,
    /// Connections in the pool.
    pub max_connections: usize,
    /// How long a caller waits for a free connection before `UNAVAILABLE`.
    #[serde(with = "humantime_serde")]
    pub acquire_timeout: Duration,
    /// Attempts of a transaction that keeps failing with a serialization conflict.
    pub max_tx_attempts: u32,
}

impl Default for PostgresConfig {
    fn default() -> Self {
        Self {
            url: "postgresql://foodfast:foodfast@127.0.0.1:5432/foodfast".into(),
            max_connections: 32,
            acquire_timeout: Duration::from_secs(5),
            max_tx_attempts: 8,
        }
    }
}

/// A pool of connections to CockroachDB/PostgreSQL.
#[derive(Clone)]
pub struct Postgres {
    pool: Pool,
    max_tx_attempts: u32,
}

impl Postgres {
    /// Builds the pool and checks that the database answers.
    pub async fn connect(config: &PostgresConfig) -> Result<Self, StoreError> {
        let unusable = |message: String| StoreError::Unavailable {
            backend: crate::error::Backend::Postgres,
            source: format!("stores.postgres.url: {message}").into(),
        };
        let url = PostgresUrl::parse(&config.url).map_err(unusable)?;
        let manager_config = ManagerConfig { recycling_method: RecyclingMethod::Fast };
        let manager = match url.tls.connector().map_err(unusable)? {
            Some(tls) => Manager::from_config(url.config, tls, manager_config),
            None => Manager::from_config(url.config, NoTls, manager_config),
        };
        let pool = Pool::builder(manager)
            .max_size(config.max_connections)
            .wait_timeout(Some(config.acquire_timeout))
            .create_timeout(Some(config.acquire_timeout))
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .build()
            .map_err(|err| StoreError::Unavailable {
                backend: crate::error::Backend::Postgres,
                source: Box::new(err),
            })?;
        let postgres = Self { pool, max_tx_attempts: config.max_tx_attempts.max(1) };
        postgres.ping().await?;
        Ok(postgres)
    }

    #[tracing::instrument(target = "foodfast::trace", name = "Postgres.client", skip_all, fields(otel.kind = "client", db.system = "postgresql"))]
    pub async fn client(&self) -> Result<deadpool_postgres::Object, StoreError> {
        self.pool.get().await.map_err(StoreError::postgres_pool)
    }

    /// Answers whether the database takes queries right now.
    pub async fn ping(&self) -> Result<(), StoreError> {
        let client = self.client().await?;
        client.simple_query(crate::sql::PING).await.map_err(StoreError::postgres)?;
        Ok(())
    }

    /// Runs `body` in a SERIALIZABLE transaction and commits it. A
    /// serialization failure (SQLSTATE 40001) or a deadlock anywhere in the
    /// body or at commit reruns the whole body with backoff, up to
    /// `max_tx_attempts` times; after that the caller gets
    /// [`StoreError::Conflict`]. `body` must therefore be safe to run again.
    #[tracing::instrument(target = "foodfast::trace", name = "Postgres.serializable", skip_all, fields(otel.kind = "client", db.system = "postgresql"))]
    pub async fn serializable<T, F>(&self, mut body: F) -> Result<T, StoreError>
    where
        F: for<'t> FnMut(&'t Transaction<'t>) -> BoxFuture<'t, Result<T, TxError>>,
    {
        let mut client = self.client().await?;
        let mut attempt = 1;
        loop {
            let outcome = async {
                let tx = client.build_transaction().isolation_level(IsolationLevel::Serializable).start().await?;
                let value = body(&tx).await?;
                tx.commit().await?;
                Ok::<T, TxError>(value)
            }
            .await;
            match outcome {
                Ok(value) => return Ok(value),
                Err(TxError::Postgres(err)) if is_retryable(&err) => {
                    if attempt >= self.max_tx_attempts {
                        return Err(StoreError::Conflict { attempts: attempt });
                    }
                    tracing::debug!(attempt, error = %crate::Chain(&err), "serialization conflict, retrying transaction");
                    tokio::time::sleep(retry_backoff(attempt)).await;
                    attempt += 1;
                }
                Err(TxError::Postgres(err)) => return Err(StoreError::postgres(err)),
                Err(TxError::Store(err)) => return Err(err),
            }
        }
    }
}

impl Postgres {
    /// Runs one statement on its own (an implicit transaction: SERIALIZABLE
    /// on CockroachDB, the session's level on PostgreSQL), retried like a
    /// transaction on a serialization failure. For conditional writes whose
    /// WHERE clause is their whole guard.
    #[tracing::instrument(target = "foodfast::trace", name = "Postgres.statement", skip_all, fields(otel.kind = "client", db.system = "postgresql"))]
    pub async fn statement(
        &self,
        statement: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<Vec<tokio_postgres::Row>, StoreError> {
        let client = self.client().await?;
        let mut attempt = 1;
        loop {
            match client.query(statement, params).await {
                Ok(rows) => return Ok(rows),
                Err(err) if is_retryable(&err) && attempt < self.max_tx_attempts => {
                    tokio::time::sleep(retry_backoff(attempt)).await;
                    attempt += 1;
                }
                Err(err) if is_retryable(&err) => return Err(StoreError::Conflict { attempts: attempt }),
                Err(err) => return Err(StoreError::postgres(err)),
            }
        }
    }
}

/// What a transaction body may fail with: a driver error (inspected for
/// 40001 and retried) or an error of the caller's own.
#[derive(Debug, thiserror::Error)]
pub enum TxError {
    #[error(transparent)]
    Postgres(#[from] tokio_postgres::Error),
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn is_retryable(err: &tokio_postgres::Error) -> bool {
    matches!(err.code(), Some(code) if *code == SqlState::T_R_SERIALIZATION_FAILURE || *code == SqlState::T_R_DEADLOCK_DETECTED)
}

/// Exponential backoff with jitter so that conflicting transactions stop
/// retrying in lockstep.
fn retry_backoff(attempt: u32) -> Duration {
    let base_ms = 2u64 << attempt.min(7);
    let jitter_ms = fastrand::u64(0..base_ms);
    Duration::from_millis(base_ms + jitter_ms)
}
