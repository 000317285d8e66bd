//! Live driver positions on the real Redis.

use std::time::Duration;

use chrono::Utc;
use foodfast_domain::geo::LatLng;
use foodfast_domain::ping::Ping;
use foodfast_store::Stores;
use foodfast_store::live::{LivePositions, location_channel};
use uuid::Uuid;

fn ping(seq: u64, lat: f64, lng: f64) -> Ping {
    Ping {
        seq,
        position: LatLng::new(lat, lng).unwrap(),
        accuracy_m: None,
        speed_mps: Some(5.0),
        heading_deg: Some(10.0),
        recorded_at: Utc::now(),
    }
}

#[tokio::test]
async fn positions_are_live_searchable_published_and_follow_the_city() {
    let stores = Stores::connect(&foodfast_testkit::fresh_stores().await).await.unwrap();
    let live = LivePositions::new(stores.redis.clone());
    // Unique city names keep parallel tests apart in the shared Redis.
    let city = format!("city-{}", Uuid::new_v4().simple());
    let other_city = format!("city-{}", Uuid::new_v4().simple());
    let (near, far) = (Uuid::new_v4(), Uuid::new_v4());

    let (messages, mut received) = tokio::sync::mpsc::unbounded_channel();
    let mut subscriber = stores.redis.subscriber(messages).await.unwrap();
    subscriber.subscribe(location_channel(near)).await.unwrap();

    live.update(near, &city, &ping(1, 48.8566, 2.3522), Utc::now()).await.unwrap();
    live.update(far, &city, &ping(1, 48.8566 + 0.05, 2.3522), Utc::now()).await.unwrap();

    let payload = tokio::time::timeout(std::time::Duration::from_secs(5), async {
        loop {
            let push = received.recv().await.expect("connection open");
            // Subscription confirmations come first.
            if let (redis::PushKind::Message, [_, redis::Value::BulkString(payload)]) =
                (push.kind, push.data.as_slice())
            {
                return payload.clone();
            }
        }
    })
    .await
    .unwrap();
    let published: foodfast_store::live::LivePosition = serde_json::from_slice(&payload).unwrap();
    assert_eq!((published.driver_id, published.seq), (near, 1));

    let center = LatLng::new(48.8566, 2.3522).unwrap();
    let found = live.nearby(&city, center, 1_000, 10).await.unwrap();
    assert_eq!(found.iter().map(|(id, _)| *id).collect::<Vec<_>>(), vec![near]);
    let both = live.nearby(&city, center, 10_000, 10).await.unwrap();
    assert_eq!(both.iter().map(|(id, _)| *id).collect::<Vec<_>>(), vec![near, far], "nearest first");
    assert!(both[1].1 > 5_000.0 && both[1].1 < 6_000.0);

    assert_eq!(live.position(near).await.unwrap().unwrap().seq, 1);
    assert!(live.position(Uuid::new_v4()).await.unwrap().is_none());

    // Crossing into another city leaves the first city's set.
    live.update(near, &other_city, &ping(2, 48.8566, 2.3522), Utc::now()).await.unwrap();
    assert!(live.nearby(&city, center, 1_000, 10).await.unwrap().is_empty());
    assert_eq!(live.nearby(&other_city, center, 1_000, 10).await.unwrap()[0].0, near);
    assert_eq!(live.position(near).await.unwrap().unwrap().seq, 2);
}

#[tokio::test]
async fn followers_get_the_latest_position_and_the_subscription_ends_with_the_last_follower() {
    let stores = Stores::connect(&foodfast_testkit::fresh_stores().await).await.unwrap();
    let live = LivePositions::new(stores.redis.clone());
    let stop = tokio_util::sync::CancellationToken::new();
    let fanout = foodfast_store::fanout::Fanout::start(stores.redis.clone(), stop.clone());
    let mut connected = fanout.connected();
    tokio::time::timeout(Duration::from_secs(5), connected.wait_for(|up| *up)).await.unwrap().unwrap();
    let city = format!("city-{}", Uuid::new_v4().simple());
    let (driver, other) = (Uuid::new_v4(), Uuid::new_v4());

    let mut first = fanout.follow_driver(driver);
    let mut second = fanout.follow_driver(driver);
    assert_eq!(fanout.followed_drivers(), 1, "one subscription per driver, however many followers");
    // The subscription takes effect asynchronously: publish until it is seen.
    let mut seq = 0;
    let seen = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            seq += 1;
            live.update(driver, &city, &ping(seq, 48.8566, 2.3522), Utc::now()).await.unwrap();
            live.update(other, &city, &ping(seq, 48.8566, 2.3522), Utc::now()).await.unwrap();
            tokio::select! {
                _ = first.changed() => return first.take().unwrap(),
                _ = tokio::time::sleep(Duration::from_millis(20)) => {}
            }
        }
    })
    .await
    .expect("no position reached the follower");
    assert_eq!(seen.driver_id, driver);

    // A burst while nobody reads coalesces to the newest.
    for next in seq + 1..=seq + 50 {
        live.update(driver, &city, &ping(next, 48.8566, 2.3522), Utc::now()).await.unwrap();
    }
    tokio::time::timeout(Duration::from_secs(5), async {
        while second.take().map(|p| p.seq) != Some(seq + 50) {
            second.changed().await;
        }
    })
    .await
    .expect("the newest position never arrived");
    assert!(!second.has_new());
    let mut late = fanout.follow_driver(driver);
    assert!(late.has_new(), "a follower joining later gets the held position at once");
    assert_eq!(late.take().map(|p| p.seq), Some(seq + 50));
    drop(late);

    // An older position offered later does not replace a newer one.
    let mut stale = seen;
    stale.seq = 1;
    second.offer(stale);
    assert!(!second.has_new());

    drop(first);
    assert_eq!(fanout.followed_drivers(), 1);
    drop(second);
    assert_eq!(fanout.followed_drivers(), 0);
    stop.cancel();
}

#[tokio::test]
async fn dispatch_sees_only_online_connected_drivers_whose_position_is_recent() {
    let stores = Stores::connect(&foodfast_testkit::fresh_stores().await).await.unwrap();
    let live = LivePositions::new(stores.redis.clone());
    let city = format!("city-{}", Uuid::new_v4().simple());
    let center = LatLng::new(48.8566, 2.3522).unwrap();
    let driver = Uuid::new_v4();
    let ids = |found: Vec<foodfast_store::live::LivePosition>| found.iter().map(|p| p.driver_id).collect::<Vec<_>>();
    let ten_minutes_ago = Utc::now() - chrono::Duration::minutes(10);
    let before_that = ten_minutes_ago - chrono::Duration::minutes(1);

    live.update(driver, &city, &ping(1, 48.8566, 2.3522), ten_minutes_ago).await.unwrap();
    live.set_availability(driver, "online").await.unwrap();
    assert!(live.available_near(&city, center, 1_000, 10, before_that).await.unwrap().is_empty(), "no stream open");
    live.start_session(driver, Uuid::new_v4()).await.unwrap();
    assert_eq!(ids(live.available_near(&city, center, 1_000, 10, before_that).await.unwrap()), vec![driver]);

    // Silent for longer than allowed (a dead app, or a replica that died
    // holding its stream): dropped from the set, until it pings again.
    let two_minutes_ago = Utc::now() - chrono::Duration::minutes(2);
    assert!(live.available_near(&city, center, 1_000, 10, two_minutes_ago).await.unwrap().is_empty());
    assert!(live.available_near(&city, center, 1_000, 10, before_that).await.unwrap().is_empty(), "removed");
    live.update(driver, &city, &ping(2, 48.8566, 2.3522), Utc::now()).await.unwrap();
    assert_eq!(ids(live.available_near(&city, center, 1_000, 10, two_minutes_ago).await.unwrap()), vec![driver]);
}

/// A burst the listener cannot keep up with overflows its bounded inbox; what
/// was dropped is caught up on, so no stream stalls on a lost message. The
/// burst arrives while this (single-threaded) runtime is blocked, so the
/// pub/sub connection reads a socket buffer's worth of it (far more than the
/// small inbox) before the listener runs again.
#[tokio::test]
async fn a_burst_past_the_inbox_wakes_every_topic_and_followers_end_with_the_newest_position() {
    const TOPICS: usize = 3_000;
    const INBOX: usize = 64;
    let config = foodfast_testkit::fresh_stores().await;
    let stores = Stores::connect(&config).await.unwrap();
    let live = LivePositions::new(stores.redis.clone());
    let stop = tokio_util::sync::CancellationToken::new();
    let fanout = foodfast_store::fanout::Fanout::start_with_inbox(stores.redis.clone(), INBOX, stop.clone());
    tokio::time::timeout(Duration::from_secs(5), fanout.connected().wait_for(|up| *up)).await.unwrap().unwrap();
    let city = format!("city-{}", Uuid::new_v4().simple());
    let driver = Uuid::new_v4();
    let run = Uuid::new_v4().simple().to_string();
    let topic = |n: usize| format!("burst-{run}-{n}");
    let mut woken: Vec<_> = (0..TOPICS).map(|n| fanout.subscribe(&topic(n))).collect();

    let mut follow = fanout.follow_driver(driver);
    let mut seq = 0;
    tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            seq += 1;
            live.update(driver, &city, &ping(seq, 48.8566, 2.3522), Utc::now()).await.unwrap();
            tokio::select! {
                _ = follow.changed() => return,
                _ = tokio::time::sleep(Duration::from_millis(20)) => {}
            }
        }
    })
    .await
    .expect("the subscription never took effect");
    let newest = seq + 1;

    std::thread::scope(|scope| {
        scope.spawn(|| {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            runtime.block_on(async {
                let redis = foodfast_store::redis::Redis::connect(&config.redis).await.unwrap();
                let mut burst = redis::pipe();
                for n in 0..TOPICS {
                    burst.publish(format!("ff:wake:{}", topic(n)), "").ignore();
                }
                let _: () = burst.query_async(&mut redis.connection()).await.unwrap();
                LivePositions::new(redis).update(driver, &city, &ping(newest, 48.86, 2.35), Utc::now()).await.unwrap();
            });
        });
    });

    let mut missed = 0;
    for (n, receiver) in woken.iter_mut().enumerate() {
        let wake = tokio::time::timeout(Duration::from_secs(10), receiver.recv()).await;
        match wake.unwrap_or_else(|_| panic!("topic {n} was never woken")).unwrap() {
            foodfast_store::fanout::Wake::Changed => {}
            foodfast_store::fanout::Wake::MayHaveMissed => missed += 1,
        }
    }
    println!("{missed} of {TOPICS} topics were told they may have missed a wake-up");
    assert!(missed > 0, "the burst was meant to overflow the inbox");
    tokio::time::timeout(Duration::from_secs(10), async {
        while follow.take().map(|p| p.seq) != Some(newest) {
            follow.changed().await;
        }
    })
    .await
    .expect("the newest position never reached the follower");
    stop.cancel();
}

#[tokio::test]
async fn the_durable_watermark_only_rises() {
    let stores = Stores::connect(&foodfast_testkit::fresh_stores().await).await.unwrap();
    let live = LivePositions::new(stores.redis.clone());
    let driver = Uuid::new_v4();
    assert_eq!(live.durable(driver).await.unwrap(), None);

    live.record_durable(driver, 9).await.unwrap();
    live.record_durable(driver, 120).await.unwrap();
    // A replaced stream records what it saw last, late: it does not lower the hint.
    live.record_durable(driver, 95).await.unwrap();
    assert_eq!(live.durable(driver).await.unwrap(), Some(120));

    // Past 2^53, where Lua's numbers are no longer exact.
    let high = (1u64 << 60) + 1;
    live.record_durable(driver, high).await.unwrap();
    live.record_durable(driver, high - 1).await.unwrap();
    assert_eq!(live.durable(driver).await.unwrap(), Some(high));
    live.record_durable(driver, u64::MAX).await.unwrap();
    assert_eq!(live.durable(driver).await.unwrap(), Some(u64::MAX));
}
