//! Limits at the edge: token buckets per client IP, per caller (their bearer
//! token), and tighter for order placement; and how many requests one client
//! IP has open at once, streams included, so that one client cannot hold
//! every upstream slot. A refused request gets 429 `RESOURCE_EXHAUSTED` with
//! `Retry-After` and never reaches the server. The buckets of idle keys are
//! dropped periodically and a client's count when it reaches zero, so memory
//! follows the number of recent clients.

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::net::{IpAddr, Ipv6Addr};
use std::num::NonZeroU32;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
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
    in_flight: Arc<Mutex<HashMap<IpAddr, u32>>>,
    max_in_flight: u32,
}

/// One request a client has open; it counts until dropped.
pub struct InFlight {
    block: IpAddr,
    counts: Arc<Mutex<HashMap<IpAddr, u32>>>,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let mut counts = self.counts.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(count) = counts.get_mut(&self.block) {
            *count -= 1;
            if *count == 0 {
                counts.remove(&self.block);
            }
        }
    }
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
            in_flight: Arc::default(),
            max_in_flight: config.max_in_flight_per_ip.get(),
        }
    }

    /// Counts one more open request of `ip`, or refuses it when the client
    /// already has `max_in_flight_per_ip` open (the limit, for the message).
    pub fn enter(&self, ip: IpAddr) -> Result<InFlight, u32> {
        let block = client_block(ip);
        let mut counts = self.in_flight.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let count = counts.entry(block).or_insert(0);
        if *count >= self.max_in_flight {
            metrics::counter!(RATE_LIMITED_TOTAL, "limit" => "in_flight_per_ip").increment(1);
            return Err(self.max_in_flight);
        }
        *count += 1;
        Ok(InFlight { block, counts: self.in_flight.clone() })
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
            // Keyed by the token (hashed: no secret kept), as the server reads it: spaces
            // around it make no new bucket. Forged tokens still share the IP's bucket.
            let mut hasher = DefaultHasher::new();
            foodfast_auth::bearer(token).unwrap_or(token).hash(&mut hasher);
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

pin_project_lite::pin_project! {
    /// A response body that keeps its request counted while it is sent, and
    /// ends when the gateway shuts down: a stream would otherwise hold the
    /// shutdown until the process is killed (its client reconnects to
    /// another replica).
    pub struct Held<B> {
        #[pin]
        inner: B,
        #[pin]
        stopping: tokio_util::sync::WaitForCancellationFutureOwned,
        in_flight: Option<InFlight>,
    }
}

impl<B> Held<B> {
    pub fn new(inner: B, in_flight: InFlight, stopping: tokio_util::sync::CancellationToken) -> Self {
        Self { inner, stopping: stopping.cancelled_owned(), in_flight: Some(in_flight) }
    }
}

impl<B: http_body::Body> http_body::Body for Held<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        let this = self.project();
        // What is ready is still sent; only a wait is cut short.
        let polled = match this.inner.poll_frame(cx) {
            Poll::Pending if this.stopping.poll(cx).is_ready() => Poll::Ready(None),
            polled => polled,
        };
        if matches!(polled, Poll::Ready(None | Some(Err(_)))) {
            this.in_flight.take();
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
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
            max_in_flight_per_ip: n(2),
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
    fn spaces_around_a_token_make_no_new_caller() {
        let limits = tight();
        let ip = |last: u8| IpAddr::from([10, 0, 0, last]);
        assert!(limits.check(ip(1), Some("Bearer tok"), false).is_ok());
        assert!(limits.check(ip(2), Some("Bearer  tok "), false).is_ok());
        assert!(limits.check(ip(3), Some("Bearer tok  "), false).is_err(), "the caller's burst of 2 is spent");
    }

    #[test]
    fn a_client_has_at_most_its_share_open_and_a_closed_request_gives_its_place_back() {
        let limits = tight();
        let ip = |text: &str| text.parse::<IpAddr>().unwrap();
        let first = limits.enter(ip("192.0.2.1")).unwrap();
        let _second = limits.enter(ip("192.0.2.1")).unwrap();
        assert_eq!(limits.enter(ip("192.0.2.1")).err(), Some(2), "a third at once is refused");
        assert!(limits.enter(ip("192.0.2.2")).is_ok(), "another client has its own share");
        let _v6 = limits.enter(ip("2001:db8::1")).unwrap();
        let _v6_too = limits.enter(ip("2001:db8::2")).unwrap();
        assert!(limits.enter(ip("2001:db8::3")).is_err(), "an IPv6 /64 shares one count");
        drop(first);
        assert!(limits.enter(ip("192.0.2.1")).is_ok());
        drop(_second);
        assert_eq!(limits.in_flight.lock().unwrap().len(), 1, "clients at zero are forgotten: only the /64 is left");
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
