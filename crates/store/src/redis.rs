//! Redis: live state and fan-out. One multiplexed connection that reconnects
//! by itself; pub/sub subscribers open their own (RESP3, so that received
//! messages go where the subscriber says, with a bound it chooses).

use std::time::Duration;

use ::redis::aio::{AsyncPushSender, ConnectionManager, ConnectionManagerConfig, MultiplexedConnection};
use ::redis::{AsyncConnectionConfig, ProtocolVersion};

use crate::StoreError;

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedisConfig {
    /// e.g. `redis://127.0.0.1:6379/0`, or `rediss://` for TLS.
    pub url: String,
    /// A command that gets no answer in this time fails with `UNAVAILABLE`.
    #[serde(with = "humantime_serde")]
    pub response_timeout: Duration,
}

impl Default for RedisConfig {
    fn default() -> Self {
        Self { url: "redis://127.0.0.1:6379/0".into(), response_timeout: Duration::from_secs(2) }
    }
}

#[derive(Clone)]
pub struct Redis {
    client: ::redis::Client,
    connection: ConnectionManager,
    response_timeout: Duration,
}

impl Redis {
    pub async fn connect(config: &RedisConfig) -> Result<Self, StoreError> {
        let client = ::redis::Client::open(config.url.as_str()).map_err(StoreError::redis)?;
        let manager_config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(config.response_timeout))
            .set_response_timeout(Some(config.response_timeout))
            .set_number_of_retries(1);
        let connection =
            ConnectionManager::new_with_config(client.clone(), manager_config).await.map_err(StoreError::redis)?;
        Ok(Self { client, connection, response_timeout: config.response_timeout })
    }

    /// The shared connection; cheap to clone.
    pub fn connection(&self) -> ConnectionManager {
        self.connection.clone()
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

    pub async fn ping(&self) -> Result<(), StoreError> {
        let mut connection = self.connection();
        let _: String = ::redis::cmd("PING").query_async(&mut connection).await.map_err(StoreError::redis)?;
        Ok(())
    }
}
