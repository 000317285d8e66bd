//! Whether each store answers right now, for the gRPC health service.

use std::time::Duration;

use crate::Stores;
use crate::error::Backend;

/// The outcome of one probe of every store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreHealth {
    pub postgres: bool,
    pub redis: bool,
    pub scylla: bool,
    pub objects: bool,
}

impl StoreHealth {
    pub fn is_up(&self, backend: Backend) -> bool {
        match backend {
            Backend::Postgres => self.postgres,
            Backend::Redis => self.redis,
            Backend::Scylla => self.scylla,
            Backend::Objects => self.objects,
        }
    }
}

impl Stores {
    /// Pings every store at once; a store that has not answered within
    /// `timeout` counts as down.
    pub async fn probe(&self, timeout: Duration) -> StoreHealth {
        let answered = |result: Result<Result<(), crate::StoreError>, _>, backend: Backend| match result {
            Ok(Ok(())) => true,
            Ok(Err(err)) => {
                tracing::warn!(store = %backend, error = %crate::error::Chain(&err), "health probe failed");
                false
            }
            Err(_) => {
                tracing::warn!(store = %backend, ?timeout, "health probe timed out");
                false
            }
        };
        let (postgres, redis, scylla, objects) = tokio::join!(
            tokio::time::timeout(timeout, self.postgres.ping()),
            tokio::time::timeout(timeout, self.redis.ping()),
            tokio::time::timeout(timeout, self.scylla.ping()),
            tokio::time::timeout(timeout, self.objects.ping()),
        );
        StoreHealth {
            postgres: answered(postgres, Backend::Postgres),
            redis: answered(redis, Backend::Redis),
            scylla: answered(scylla, Backend::Scylla),
            objects: answered(objects, Backend::Objects),
        }
    }
}
