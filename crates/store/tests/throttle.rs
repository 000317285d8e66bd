//! Rate limits on the real Redis: shared by every limiter on the same key,
//! sliding back one call at a time.

use std::time::Duration;

use foodfast_store::Stores;
use foodfast_store::throttle::{RateLimiter, RatePolicy};
use uuid::Uuid;

#[tokio::test]
async fn a_burst_then_one_call_per_interval_shared_by_every_replica() {
    let stores = Stores::connect(&foodfast_testkit::fresh_stores().await).await.unwrap();
    let policy = RatePolicy { max: 3, window: Duration::from_secs(6) };
    // Two limiters stand for two replicas; the key is unique because Redis is shared by every test run.
    let (one, other) = (
        RateLimiter::new(stores.redis.clone(), "test", policy),
        RateLimiter::new(stores.redis.clone(), "test", policy),
    );
    let key = Uuid::new_v4().to_string();

    assert_eq!(one.take(&key).await.unwrap(), None);
    assert_eq!(other.take(&key).await.unwrap(), None);
    assert_eq!(one.take(&key).await.unwrap(), None);
    let wait = other.take(&key).await.unwrap().expect("the burst of three is used up on both");
    assert!(wait > Duration::ZERO && wait <= Duration::from_secs(2), "one interval at most: {wait:?}");
    assert!(one.take(&key).await.unwrap().is_some(), "a refused call takes nothing, and gives nothing back");
    assert_eq!(one.take(&Uuid::new_v4().to_string()).await.unwrap(), None, "another key has its own allowance");

    tokio::time::sleep(wait).await;
    assert_eq!(other.take(&key).await.unwrap(), None, "one call came back after the wait");
    let next = one.take(&key).await.unwrap().expect("and only one");
    assert!(next > Duration::from_millis(1500), "the next one is an interval away: {next:?}");
}
