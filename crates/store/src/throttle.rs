//! Sign-in throttling: failed logins are counted per key (a hash of the
//! email, so Redis holds no personal data) in a fixed window; at the limit
//! the key waits for the window to end. Counts live in Redis so every server
//! replica sees the same ones.

use std::time::Duration;

use crate::StoreError;
use crate::redis::Redis;

/// Failures allowed per key and window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ThrottlePolicy {
    pub max_failures: u32,
    #[serde(with = "humantime_serde")]
    pub window: Duration,
}

impl Default for ThrottlePolicy {
    fn default() -> Self {
        Self { max_failures: 5, window: Duration::from_secs(15 * 60) }
    }
}

#[derive(Clone)]
pub struct LoginThrottle {
    redis: Redis,
    policy: ThrottlePolicy,
}

fn key(subject: &str) -> String {
    format!("ff:login:{subject}")
}

impl LoginThrottle {
    pub fn new(redis: Redis, policy: ThrottlePolicy) -> Self {
        Self { redis, policy }
    }

    /// How long `subject` must wait before trying again, if it is at the limit.
    #[tracing::instrument(target = "foodfast::trace", name = "LoginThrottle.wait", skip_all, fields(otel.kind = "client", db.system = "redis"))]
    pub async fn wait(&self, subject: &str) -> Result<Option<Duration>, StoreError> {
        let mut connection = self.redis.connection();
        let (failures, ttl_ms): (Option<u32>, i64) = ::redis::pipe()
            .cmd("GET")
            .arg(key(subject))
            .cmd("PTTL")
            .arg(key(subject))
            .query_async(&mut connection)
            .await
            .map_err(StoreError::redis)?;
        Ok(match failures {
            Some(failures) if failures >= self.policy.max_failures => {
                crate::metrics::rate_limited("login");
                Some(Duration::from_millis(ttl_ms.max(1000) as u64))
            }
            _ => None,
        })
    }

    /// Counts a failure; the window starts at the first one.
    #[tracing::instrument(target = "foodfast::trace", name = "LoginThrottle.failed", skip_all, fields(otel.kind = "client", db.system = "redis"))]
    pub async fn failed(&self, subject: &str) -> Result<(), StoreError> {
        let mut connection = self.redis.connection();
        let _: () = ::redis::pipe()
            .cmd("INCR")
            .arg(key(subject))
            .ignore()
            .cmd("PEXPIRE")
            .arg(key(subject))
            .arg(self.policy.window.as_millis() as u64)
            .arg("NX")
            .ignore()
            .query_async(&mut connection)
            .await
            .map_err(StoreError::redis)?;
        Ok(())
    }

    /// A success forgets the failures.
    #[tracing::instrument(target = "foodfast::trace", name = "LoginThrottle.succeeded", skip_all, fields(otel.kind = "client", db.system = "redis"))]
    pub async fn succeeded(&self, subject: &str) -> Result<(), StoreError> {
        let mut connection = self.redis.connection();
        let _: () =
            ::redis::cmd("DEL").arg(key(subject)).query_async(&mut connection).await.map_err(StoreError::redis)?;
        Ok(())
    }
}
