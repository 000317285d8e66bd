//! Token-bucket rate limits at the edge: per client IP, per caller (their
//! bearer token), and tighter for order placement. A refused request gets
//! 429 `RESOURCE_EXHAUSTED` with `Retry-After` and never reaches the server.
//! The buckets of idle keys are dropped periodically, so memory follows the
//! number of recent clients.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::net::{IpAddr, Ipv6Addr};
use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::config::LimitsConfig;
use crate::telemetry::RATE_LIMITED_TOTAL;

pub struct Limits {
    per_ip: DefaultKeyedRateLimiter<IpAddr>,
    per_caller: DefaultKeyedRateLimiter<u64>,
    orders: DefaultKeyedRateLimiter<u64>,
    clock: DefaultClock,
}

impl Limits {
    pub fn new(config: &LimitsConfig) -> Self {
        let per_second =
            |rate: NonZeroU32| Quota::per_second(rate).allow_burst(rate.saturating_mul(config.burst_seconds));
        Self {
            per_ip: RateLimiter::keyed(per_second(config.per_ip_per_second)),
            per_caller: RateLimiter::keyed(per_second(config.per_caller_per_second)),
            orders: RateLimiter::keyed(Quota::per_minute(config.orders_per_minute).allow_burst(config.orders_burst)),
            clock: DefaultClock::default(),
        }
    }

    /// Takes a token from every bucket the request falls in, or says how
    /// long to wait.
    pub fn check(&self, ip: IpAddr, authorization: Option<&str>, places_order: bool) -> Result<(), Duration> {
        let refused = |limit: &'static str| {
            move |outcome: governor::NotUntil<_>| {
                metrics::counter!(RATE_LIMITED_TOTAL, "limit" => limit).increment(1);
                outcome.wait_time_from(self.clock.now())
            }
        };
        self.per_ip.check_key(&client_block(ip)).map_err(refused("per_ip"))?;
        if let Some(token) = authorization {
            // Keyed by the token (hashed: no secret kept): forged tokens still share the IP's bucket.
            let mut hasher = DefaultHasher::new();
            token.hash(&mut hasher);
            let caller = hasher.finish();
            self.per_caller.check_key(&caller).map_err(refused("per_caller"))?;
            if places_order {
                self.orders.check_key(&caller).map_err(refused("orders_per_minute"))?;
            }
        }
        Ok(())
    }

    /// Forgets buckets that are full again (their clients went quiet).
    pub fn forget_idle(&self) {
        self.per_ip.retain_recent();
        self.per_caller.retain_recent();
        self.orders.retain_recent();
    }
}

/// The block the per-IP bucket is keyed by: an IPv4 address alone (also
/// when mapped into IPv6), an IPv6 address by its /64, the block one
/// subscriber gets; else a single host could spread itself over 2^64 buckets.
fn client_block(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => IpAddr::V6(Ipv6Addr::from(u128::from(v6) & !(u128::from(u64::MAX)))),
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tight() -> Limits {
        let n = |value| NonZeroU32::new(value).unwrap();
        Limits::new(&LimitsConfig {
            per_ip_per_second: n(2),
            per_caller_per_second: n(1),
            burst_seconds: n(2),
            orders_per_minute: n(1),
            orders_burst: n(1),
        })
    }

    #[test]
    fn each_bucket_refuses_past_its_burst_and_says_when_to_retry() {
        let limits = tight();
        let ip: IpAddr = [10, 0, 0, 1].into();
        assert!(limits.check(ip, Some("a"), true).is_ok());
        let wait = limits.check(ip, Some("a"), true).unwrap_err();
        assert!(wait > Duration::from_secs(50) && wait <= Duration::from_secs(60), "one order a minute: {wait:?}");
        assert!(limits.check(ip, Some("a"), false).is_err(), "the caller's burst of 2 is spent");
        assert!(limits.check(ip, Some("b"), false).is_ok(), "another caller has its own bucket");
        assert!(limits.check(ip, None, false).is_err(), "the IP's burst of 4 is spent");
        assert!(limits.check([10, 0, 0, 2].into(), Some("b"), false).is_ok(), "another IP has its own bucket");
    }

    #[test]
    fn an_ipv6_subscriber_has_one_bucket_for_its_whole_64() {
        let limits = tight();
        let ip = |text: &str| text.parse::<IpAddr>().unwrap();
        for host in ["2001:db8:1:2::1", "2001:db8:1:2::2", "2001:db8:1:2:ffff::3", "2001:db8:1:2:aaaa:bbbb:cccc:dddd"] {
            assert!(limits.check(ip(host), None, false).is_ok(), "{host}: within the /64's burst of 4");
        }
        assert!(limits.check(ip("2001:db8:1:2::9"), None, false).is_err(), "a fifth host of the same /64");
        assert!(limits.check(ip("2001:db8:1:3::1"), None, false).is_ok(), "the next /64 is another subscriber");

        for _ in 0..4 {
            assert!(limits.check(ip("192.0.2.7"), None, false).is_ok());
        }
        assert!(limits.check(ip("::ffff:192.0.2.7"), None, false).is_err(), "IPv4-mapped is the same IPv4 client");
    }
}
