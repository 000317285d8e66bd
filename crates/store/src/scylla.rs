//! ScyllaDB, or Apache Cassandra in development: one session per process,
//! prepared statements, CQL that both engines accept.

use std::num::NonZeroUsize;
use std::sync::Arc;
use std::time::Duration;

use ::scylla::client::PoolSize;
use ::scylla::client::session::Session;
use ::scylla::client::session_builder::SessionBuilder;
use ::scylla::errors::{DbError, ExecutionError, RequestAttemptError};

use crate::StoreError;

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScyllaConfig {
    /// `host:port` of one or more nodes; the driver discovers the rest. A
    /// comma-separated string is accepted too (as environment variables give).
    #[serde(deserialize_with = "foodfast_config::comma_separated")]
    pub contact_points: Vec<String>,
    /// The keyspace FoodFast owns. Letters, digits and `_`, at most 48.
    pub keyspace: String,
    /// The replication map `foodfast migrate` creates the keyspace with, e.g.
    /// `{'class': 'NetworkTopologyStrategy', 'dc1': 3}` in production.
    pub replication: String,
    #[serde(with = "humantime_serde")]
    pub connect_timeout: Duration,
    /// Connections to each node (to each shard on ScyllaDB). Requests are
    /// spread over them; each connection's task writes and reads all of its
    /// requests, so on a busy process one would be a single queue for the
    /// location writer and every read.
    pub connections: usize,
}

impl Default for ScyllaConfig {
    fn default() -> Self {
        Self {
            contact_points: vec!["127.0.0.1:9042".into()],
            keyspace: "foodfast".into(),
            replication: "{'class': 'SimpleStrategy', 'replication_factor': 1}".into(),
            connect_timeout: Duration::from_secs(5),
            connections: 4,
        }
    }
}

/// Most connections `stores.scylla.connections` may ask for.
pub const MAX_CONNECTIONS: usize = 64;

/// The keyspace name is spliced into CQL, so it is held to CQL's unquoted
/// identifier rules.
pub fn validate_keyspace_name(name: &str) -> Result<(), String> {
    let valid = !name.is_empty()
        && name.len() <= 48
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && name.chars().next().is_some_and(|c| c.is_ascii_alphabetic());
    if valid {
        Ok(())
    } else {
        Err(format!("keyspace {name:?} must start with a letter and hold only letters, digits and '_' (at most 48)"))
    }
}

#[derive(Clone)]
pub struct Scylla {
    session: Arc<Session>,
    keyspace: String,
}

impl Scylla {
    /// Opens the session. The keyspace is not selected: statements name it,
    /// so the same session serves `foodfast migrate` before it exists.
    pub async fn connect(config: &ScyllaConfig) -> Result<Self, StoreError> {
        let session = SessionBuilder::new()
            .known_nodes(&config.contact_points)
            .connection_timeout(config.connect_timeout)
            .pool_size(PoolSize::PerShard(NonZeroUsize::new(config.connections).unwrap_or(NonZeroUsize::MIN)))
            .build()
            .await
            .map_err(StoreError::scylla_unavailable)?;
        Ok(Self { session: Arc::new(session), keyspace: config.keyspace.clone() })
    }

    pub fn session(&self) -> &Session {
        &self.session
    }

    pub fn keyspace(&self) -> &str {
        &self.keyspace
    }

    pub async fn ping(&self) -> Result<(), StoreError> {
        self.session.query_unpaged(crate::sql::cql::PING, ()).await.map_err(StoreError::scylla)?;
        Ok(())
    }
}

impl StoreError {
    pub(crate) fn scylla(err: ExecutionError) -> Self {
        let unavailable = match &err {
            ExecutionError::EmptyPlan | ExecutionError::ConnectionPoolError(_) | ExecutionError::RequestTimeout(_) => {
                true
            }
            ExecutionError::LastAttemptError(RequestAttemptError::DbError(db, _)) => matches!(
                db,
                DbError::Unavailable { .. }
                    | DbError::Overloaded
                    | DbError::IsBootstrapping
                    | DbError::ReadTimeout { .. }
                    | DbError::WriteTimeout { .. }
            ),
            ExecutionError::LastAttemptError(_) => true,
            _ => false,
        };
        if unavailable { StoreError::scylla_unavailable(err) } else { StoreError::scylla_query(err) }
    }
}
