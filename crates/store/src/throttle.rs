//! Throttling in Redis, so every server replica counts the same calls:
//! sign-in attempts per email in a fixed window ([`LoginThrottle`]), and
//! calls per key under a rate with a burst ([`RateLimiter`], e.g. orders
//! placed per customer).

use std::time::Duration;

use crate::StoreError;
use crate::redis::Redis;

/// Attempts without a success allowed per key and window.
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

    /// Counts a sign-in attempt of `subject` before its password is checked,
    /// and answers how long it must wait if this attempt is past the limit.
    /// Counted first, in one step, so that many attempts at once cannot all
    /// find the count below the limit. The window starts at the first
    /// attempt; a success forgets them all, so the limit is on attempts
    /// without a success.
    #[tracing::instrument(target = "foodfast::trace", name = "LoginThrottle.attempt", skip_all, fields(otel.kind = "client", db.system = "redis"))]
    pub async fn attempt(&self, subject: &str) -> Result<Option<Duration>, StoreError> {
        let mut connection = self.redis.connection();
        let (attempts, ttl_ms): (u32, i64) = ::redis::pipe()
            .atomic()
            .cmd("INCR")
            .arg(key(subject))
            .cmd("PEXPIRE")
            .arg(key(subject))
            .arg(self.policy.window.as_millis() as u64)
            .arg("NX")
            .ignore()
            .cmd("PTTL")
            .arg(key(subject))
            .query_async(&mut connection)
            .await
            .map_err(StoreError::redis)?;
        if attempts <= self.policy.max_failures {
            return Ok(None);
        }
        crate::metrics::rate_limited("login");
        Ok(Some(Duration::from_millis(ttl_ms.max(1000) as u64)))
    }

    /// A success forgets the attempts.
    #[tracing::instrument(target = "foodfast::trace", name = "LoginThrottle.succeeded", skip_all, fields(otel.kind = "client", db.system = "redis"))]
    pub async fn succeeded(&self, subject: &str) -> Result<(), StoreError> {
        let mut connection = self.redis.connection();
        let _: () =
            ::redis::cmd("DEL").arg(key(subject)).query_async(&mut connection).await.map_err(StoreError::redis)?;
        Ok(())
    }
}

/// At most `max` calls per `window` and key: a burst of `max`, then one
/// each `window / max` (a generic cell rate: the limit slides, it does not
/// reset at fixed times).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RatePolicy {
    pub max: u32,
    #[serde(with = "humantime_serde")]
    pub window: Duration,
}

impl RatePolicy {
    /// The time each call takes from the allowance.
    fn interval(&self) -> Duration {
        (self.window / self.max.max(1)).max(Duration::from_micros(1))
    }
}

/// Takes a call from the key's allowance at Redis's clock (microseconds),
/// or answers how long until one is free. The key holds when the next call
/// would be due were calls evenly spread, and expires when the allowance is
/// whole again.
static TAKE: std::sync::LazyLock<::redis::Script> = std::sync::LazyLock::new(|| {
    ::redis::Script::new(
        r"
        local time = redis.call('TIME')
        local now = tonumber(time[1]) * 1000000 + tonumber(time[2])
        local interval, window = tonumber(ARGV[1]), tonumber(ARGV[2])
        local due = math.max(tonumber(redis.call('GET', KEYS[1]) or now), now) + interval
        if due - now > window then
            return due - window - now
        end
        redis.call('SET', KEYS[1], string.format('%d', due), 'PX', math.ceil((due - now) / 1000))
        return 0
        ",
    )
});

#[derive(Clone)]
pub struct RateLimiter {
    redis: Redis,
    policy: RatePolicy,
    /// The limit's name, in its keys and in the refusals metric.
    name: &'static str,
}

impl RateLimiter {
    pub fn new(redis: Redis, name: &'static str, policy: RatePolicy) -> Self {
        Self { redis, policy, name }
    }

    /// Takes one call for `key`, or says how long to wait before the next.
    #[tracing::instrument(target = "foodfast::trace", name = "RateLimiter.take", skip_all, fields(otel.kind = "client", db.system = "redis", limit = self.name))]
    pub async fn take(&self, key: &str) -> Result<Option<Duration>, StoreError> {
        let interval = self.policy.interval();
        let wait_us: u64 = TAKE
            .key(format!("ff:rate:{}:{key}", self.name))
            .arg(interval.as_micros() as u64)
            .arg((interval * self.policy.max).as_micros() as u64)
            .invoke_async(&mut self.redis.connection())
            .await
            .map_err(StoreError::redis)?;
        if wait_us == 0 {
            return Ok(None);
        }
        crate::metrics::rate_limited(self.name);
        Ok(Some(Duration::from_micros(wait_us)))
    }
}
