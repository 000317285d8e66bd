//! ScyllaDB, or Apache Cassandra in development: one session per process,
//! prepared statements, CQL that both engines accept.

use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use ::scylla::client::PoolSize;
use ::scylla::client::session::Session;
use ::scylla::client::session_builder::SessionBuilder;
use ::scylla::errors::{DbError, ExecutionError, RequestAttemptError};

use crate::StoreError;
use crate::tls::{self, Check, SettingNames};

#[derive(Clone, serde::Serialize, serde::Deserialize)]
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
    /// TLS to the nodes.
    pub tls_mode: TlsMode,
    /// PEM root certificate(s) the nodes' certificates chain to; none: the
    /// Mozilla roots (`verify-ca`, `verify-full`), unchecked (`require`).
    pub tls_ca_cert: Option<PathBuf>,
    /// PEM certificate chain and key the client presents, for nodes that
    /// ask for one; both or neither.
    pub tls_client_cert: Option<PathBuf>,
    pub tls_client_key: Option<PathBuf>,
    /// Credentials for `PasswordAuthenticator`; an empty username: none.
    pub username: String,
    pub password: String,
}

/// How the connections to the nodes are secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TlsMode {
    /// Plain CQL.
    Disable,
    /// Encrypted; the chain is checked only against a given `tls_ca_cert`.
    Require,
    /// Encrypted, the chain checked.
    VerifyCa,
    /// Encrypted, the chain and the node's address checked (the driver
    /// connects by IP address: the certificate needs an IP entry).
    VerifyFull,
}

impl Default for ScyllaConfig {
    fn default() -> Self {
        Self {
            contact_points: vec!["127.0.0.1:9042".into()],
            keyspace: "foodfast".into(),
            replication: "{'class': 'SimpleStrategy', 'replication_factor': 1}".into(),
            connect_timeout: Duration::from_secs(5),
            connections: 4,
            tls_mode: TlsMode::Disable,
            tls_ca_cert: None,
            tls_client_cert: None,
            tls_client_key: None,
            username: String::new(),
            password: String::new(),
        }
    }
}

impl std::fmt::Debug for ScyllaConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScyllaConfig")
            .field("contact_points", &self.contact_points)
            .field("keyspace", &self.keyspace)
            .field("replication", &self.replication)
            .field("connect_timeout", &self.connect_timeout)
            .field("connections", &self.connections)
            .field("tls_mode", &self.tls_mode)
            .field("tls_ca_cert", &self.tls_ca_cert)
            .field("tls_client_cert", &self.tls_client_cert)
            .field("tls_client_key", &self.tls_client_key)
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

impl ScyllaConfig {
    /// The TLS configuration, with its files read; `None` for `disable`.
    pub fn tls(&self) -> Result<Option<tokio_rustls::rustls::ClientConfig>, String> {
        let check = match self.tls_mode {
            TlsMode::Disable => return Ok(None),
            TlsMode::Require => Check::ChainIfRootGiven,
            TlsMode::VerifyCa => Check::Chain,
            TlsMode::VerifyFull => Check::ChainAndName,
        };
        let client_cert = match (&self.tls_client_cert, &self.tls_client_key) {
            (Some(cert), Some(key)) => Some((cert.as_path(), key.as_path())),
            (None, None) => None,
            _ => return Err("tls_client_cert and tls_client_key go together: give both or neither".into()),
        };
        let names =
            SettingNames { root_cert: "tls_ca_cert", client_cert: "tls_client_cert", client_key: "tls_client_key" };
        tls::client_config(check, self.tls_ca_cert.as_deref(), client_cert, names).map(Some)
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
        let tls = config.tls().map_err(|message| StoreError::InvalidQuery(format!("stores.scylla: {message}")))?;
        let mut builder = SessionBuilder::new()
            .known_nodes(&config.contact_points)
            .connection_timeout(config.connect_timeout)
            .pool_size(PoolSize::PerShard(NonZeroUsize::new(config.connections).unwrap_or(NonZeroUsize::MIN)))
            .tls_context(tls.map(Arc::new));
        if !config.username.is_empty() {
            builder = builder.user(&config.username, &config.password);
        }
        let session = builder.build().await.map_err(StoreError::scylla_unavailable)?;
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
