//! Redis: live state and fan-out. A few multiplexed connections that
//! reconnect by themselves, taken in turn; pub/sub subscribers open their own
//! (RESP3, so that received messages go where the subscriber says, with a
//! bound it chooses).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use ::redis::aio::{AsyncPushSender, ConnectionManager, ConnectionManagerConfig, MultiplexedConnection};
use ::redis::{AsyncConnectionConfig, ClientTlsConfig, ProtocolVersion, TlsCertificates};

use crate::StoreError;

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedisConfig {
    /// e.g. `redis://127.0.0.1:6379/0`, or `rediss://` for TLS.
    pub url: String,
    /// A command that gets no answer in this time fails with `UNAVAILABLE`.
    #[serde(with = "humantime_serde")]
    pub response_timeout: Duration,
    /// Multiplexed connections commands are spread over. One connection's
    /// task forwards at most Tokio's cooperative budget (128 requests) per
    /// turn on a worker, so on a busy process a single one queues every
    /// caller behind all other tasks: 2,000 drivers pinging at 10,000/s
    /// waited 0.4 s per round trip on one.
    pub connections: usize,
    /// PEM root certificate a `rediss://` server's certificate chains to;
    /// none: the Mozilla roots.
    pub tls_ca_cert: Option<PathBuf>,
    /// PEM client certificate chain and key, for servers that ask for one
    /// (`tls-auth-clients`); both or neither.
    pub tls_client_cert: Option<PathBuf>,
    pub tls_client_key: Option<PathBuf>,
}

impl Default for RedisConfig {
    fn default() -> Self {
        Self {
            url: "redis://127.0.0.1:6379/0".into(),
            response_timeout: Duration::from_secs(2),
            connections: 8,
            tls_ca_cert: None,
            tls_client_cert: None,
            tls_client_key: None,
        }
    }
}

impl RedisConfig {
    /// The client, with its certificate files read; no connection yet.
    pub fn client(&self) -> Result<::redis::Client, String> {
        // The redis crate builds its rustls configuration with the process's provider.
        crate::tls::use_ring_by_default();
        let read = |path: &Path, setting: &str| {
            std::fs::read(path).map_err(|err| format!("{setting} {}: {err}", path.display()))
        };
        let client_tls = match (&self.tls_client_cert, &self.tls_client_key) {
            (Some(cert), Some(key)) => Some(ClientTlsConfig {
                client_cert: read(cert, "tls_client_cert")?,
                client_key: read(key, "tls_client_key")?,
            }),
            (None, None) => None,
            _ => return Err("tls_client_cert and tls_client_key go together: give both or neither".into()),
        };
        let root_cert = self.tls_ca_cert.as_deref().map(|path| read(path, "tls_ca_cert")).transpose()?;
        let client = if client_tls.is_none() && root_cert.is_none() {
            ::redis::Client::open(self.url.as_str())
        } else if !self.url.starts_with("rediss://") {
            return Err("TLS certificates need a rediss:// URL".into());
        } else {
            ::redis::Client::build_with_tls(self.url.as_str(), TlsCertificates { client_tls, root_cert })
        };
        client.map_err(|err| format!("not a usable Redis URL: {err}"))
    }
}

/// Most connections `stores.redis.connections` may ask for.
pub const MAX_CONNECTIONS: usize = 256;

#[derive(Clone)]
pub struct Redis {
    client: ::redis::Client,
    connections: Arc<[ConnectionManager]>,
    next: Arc<AtomicUsize>,
    response_timeout: Duration,
}

impl Redis {
    pub async fn connect(config: &RedisConfig) -> Result<Self, StoreError> {
        let client = config.client().map_err(|message| StoreError::InvalidQuery(format!("stores.redis: {message}")))?;
        let manager_config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(config.response_timeout))
            .set_response_timeout(Some(config.response_timeout))
            .set_number_of_retries(1);
        let connections = futures::future::try_join_all(
            (0..config.connections.max(1))
                .map(|_| ConnectionManager::new_with_config(client.clone(), manager_config.clone())),
        )
        .await
        .map_err(StoreError::redis)?;
        Ok(Self {
            client,
            connections: connections.into(),
            next: Arc::new(AtomicUsize::new(0)),
            response_timeout: config.response_timeout,
        })
    }

    /// The next of the shared connections, in turn; cheap to clone.
    pub fn connection(&self) -> ConnectionManager {
        let turn = self.next.fetch_add(1, Ordering::Relaxed);
        self.connections[turn % self.connections.len()].clone()
    }

    /// A connection of its own for pub/sub: messages for its subscriptions
    /// go to `messages`, as does a `Disconnection` when it drops (it does
    /// not reconnect by itself).
    pub async fn subscriber(
        &self,
        messages: impl AsyncPushSender,
    ) -> Result<MultiplexedConnection, ::redis::RedisError> {
        let info = self.client.get_connection_info().clone();
        let settings = info.redis_settings().clone().set_protocol(ProtocolVersion::RESP3);
        let client = ::redis::Client::open(info.set_redis_settings(settings))?;
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(self.response_timeout))
            .set_response_timeout(Some(self.response_timeout))
            .set_push_sender(messages);
        client.get_multiplexed_async_connection_with_config(&config).await
    }

    /// Pings every shared connection; one that finds its connection broken
    /// starts reconnecting (and this fails).
    pub async fn ping(&self) -> Result<(), StoreError> {
        let pings = self.connections.iter().map(|connection| async move {
            let mut connection = connection.clone();
            ::redis::cmd("PING").query_async::<String>(&mut connection).await
        });
        for answer in futures::future::join_all(pings).await {
            answer.map_err(StoreError::redis)?;
        }
        Ok(())
    }
}
