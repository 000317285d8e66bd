//! TrackOrder on the real stores: status events, driver locations and ETAs
//! across replicas, resuming after a disconnect or a crash, slow readers,
//! Redis outages, and who may watch. Ops assign drivers by hand.

mod common;

use std::time::Duration;

use common::{DriverApp, Kitchen, north_of_kitchen};
use foodfast_api::v1 as pb;
use foodfast_testkit::PrivateRedis;
use tokio_stream::StreamExt;
use tonic::Code;
use tonic::codec::Streaming;

type Payload = pb::track_order_response::Payload;

/// Reads the next message, failing the test after 15 s of silence.
async fn next(stream: &mut Streaming<pb::TrackOrderResponse>) -> Option<pb::TrackOrderResponse> {
    tokio::time::timeout(Duration::from_secs(15), stream.next())
        .await
        .expect("the tracking stream went silent")
        .map(|message| message.expect("the tracking stream failed"))
}

/// Reads until an order event arrives; returns it and the locations seen on the way.
async fn next_event(stream: &mut Streaming<pb::TrackOrderResponse>) -> (pb::OrderEvent, Vec<pb::DriverLocationUpdate>) {
    let mut locations = Vec::new();
    loop {
        let message = next(stream).await.expect("the stream ended before the next event");
        match message.payload {
            Some(Payload::Event(event)) => {
                assert_eq!(message.seq, event.seq, "an event message carries its own seq");
                return (event, locations);
            }
            Some(Payload::DriverLocation(location)) => locations.push(location),
            _ => {}
        }
    }
}

async fn track(
    client: &mut foodfast_api::v1::tracking_service_client::TrackingServiceClient<common::Authed>,
    order_id: &str,
    resume_after: u64,
) -> Streaming<pb::TrackOrderResponse> {
    client
        .track_order(pb::TrackOrderRequest {
            order_id: order_id.into(),
            resume_after,
            max_location_updates_per_second: 0,
        })
        .await
        .unwrap()
        .into_inner()
}

fn snapshot(message: pb::TrackOrderResponse) -> (u64, pb::TrackingSnapshot) {
    match message.payload {
        Some(Payload::Snapshot(snapshot)) => (message.seq, snapshot),
        other => panic!("a fresh stream starts with a snapshot, got {other:?}"),
    }
}

#[tokio::test]
async fn a_customer_on_one_replica_follows_a_driver_on_another_to_the_door() {
    let kitchen = Kitchen::open().await;
    let (driver_side, customer_side) = (kitchen.server.spawn_replica().await, kitchen.server.spawn_replica().await);
    let driver = kitchen.driver(1).await;
    let order_id = kitchen.ready_order().await;

    let mut stream =
        track(&mut kitchen.server.tracking_at(&customer_side, Some(&kitchen.customer)), &order_id, 0).await;
    let (seq, first) = snapshot(next(&mut stream).await.unwrap());
    let order = first.order.unwrap();
    assert_eq!(order.status(), pb::OrderStatus::ReadyForPickup);
    assert_eq!(seq, order.last_event_seq);
    assert_eq!(order.history.len() as u64, seq, "the snapshot carries the whole history");
    assert!(first.eta.is_none() && order.driver.is_none(), "no driver yet");

    let mut app = DriverApp::connect(kitchen.server.drivers_at(&driver_side, Some(&driver))).await;
    app.ping(1, north_of_kitchen(-1_000.0), 60.0).await;
    app.until_durable(1).await;
    let assigned = kitchen.assign(&order_id, &driver).await.unwrap();
    let (event, _) = next_event(&mut stream).await;
    assert_eq!((event.seq, event.kind()), (seq + 1, pb::OrderEventKind::DriverAssigned));
    assert_eq!(event.seq, assigned.seq);
    let summary = event.driver.unwrap();
    assert_eq!(summary.driver_id, driver.user_id.to_string());
    assert_eq!(summary.display_name, "Test P.");

    // The driver rides north to the restaurant (200 m per 10 s); the customer sees it move, with an ETA.
    let mut positions = vec![north_of_kitchen(-1_000.0)];
    for (i, north) in [-800.0, -600.0, -400.0].into_iter().enumerate() {
        positions.push(north_of_kitchen(north));
        app.ping(2 + i as u64, north_of_kitchen(north), 50.0 - 10.0 * i as f64).await;
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    let (mut locations, mut etas) = (Vec::new(), Vec::new());
    while locations.last().map(|l: &pb::DriverLocationUpdate| l.position.unwrap().lat) != Some(positions[3].0) {
        match next(&mut stream).await.unwrap() {
            pb::TrackOrderResponse { payload: Some(Payload::DriverLocation(location)), seq: at } => {
                assert_eq!(at, event.seq, "non-event messages carry the latest event's seq");
                locations.push(location);
            }
            pb::TrackOrderResponse { payload: Some(Payload::Eta(eta)), .. } => etas.push(eta),
            _ => {}
        }
    }
    assert!(!locations.is_empty());
    for location in &locations {
        let lat = location.position.unwrap().lat;
        assert!(positions.iter().any(|p| (p.0 - lat).abs() < 1e-9), "{lat} is one of the pings");
    }
    if etas.is_empty() {
        loop {
            if let Some(Payload::Eta(eta)) = next(&mut stream).await.unwrap().payload {
                etas.push(eta);
                break;
            }
        }
    }
    for eta in &etas {
        assert!(eta.estimated_pickup_at.is_some(), "before pickup the ETA names the pickup");
        assert!((350..=1_050).contains(&eta.remaining_distance_m), "{} m to the restaurant", eta.remaining_distance_m);
    }

    kitchen.picked_up(&driver, &order_id).await.unwrap();
    let (event, _) = next_event(&mut stream).await;
    assert_eq!((event.seq, event.status()), (seq + 2, pb::OrderStatus::PickedUp));
    app.ping(5, north_of_kitchen(500.0), 1.0).await;
    loop {
        if let Some(Payload::Eta(eta)) = next(&mut stream).await.unwrap().payload {
            assert!(eta.estimated_pickup_at.is_none(), "after pickup the ETA is for the door only");
            // From the last position (2.4 km) or the new one (1.5 km) to the door.
            if (1_300..=1_700).contains(&eta.remaining_distance_m) {
                break;
            }
            assert!((2_200..=2_600).contains(&eta.remaining_distance_m), "{} m to the door", eta.remaining_distance_m);
        }
    }

    kitchen.delivered(&driver, &order_id).await.unwrap();
    let (event, _) = next_event(&mut stream).await;
    assert_eq!((event.seq, event.status()), (seq + 3, pb::OrderStatus::Delivered));
    assert!(next(&mut stream).await.is_none(), "the stream ends after DELIVERED");
}

#[tokio::test]
async fn a_resumed_stream_replays_exactly_the_missed_events_then_goes_live() {
    let kitchen = Kitchen::open().await;
    let order_id = kitchen.placed_order().await;
    let mut client = kitchen.server.tracking(Some(&kitchen.customer));
    let mut stream = track(&mut client, &order_id, 0).await;
    let (seq, _) = snapshot(next(&mut stream).await.unwrap());
    assert_eq!(seq, 1);
    kitchen.restaurant_sets(&order_id, "accepted").await;
    let (event, _) = next_event(&mut stream).await;
    assert_eq!(event.seq, 2);
    drop(stream);

    // Missed while disconnected.
    kitchen.restaurant_sets(&order_id, "preparing").await;
    kitchen.restaurant_sets(&order_id, "ready_for_pickup").await;
    let mut stream = track(&mut client, &order_id, 2).await;
    let (event, _) = next_event(&mut stream).await;
    assert_eq!((event.seq, event.status()), (3, pb::OrderStatus::Preparing), "no snapshot, no duplicate of 2");
    let (event, _) = next_event(&mut stream).await;
    assert_eq!((event.seq, event.status()), (4, pb::OrderStatus::ReadyForPickup));
    // Then live, with no gap.
    let support = kitchen.server.support().await;
    kitchen
        .server
        .orders(Some(&support))
        .cancel_order(pb::CancelOrderRequest { order_id: order_id.clone(), reason: "customer called".into() })
        .await
        .unwrap();
    let (event, _) = next_event(&mut stream).await;
    assert_eq!((event.seq, event.status()), (5, pb::OrderStatus::Cancelled));
    assert_eq!(event.reason, "customer called");
    assert!(next(&mut stream).await.is_none(), "the stream ends after CANCELLED");

    // Resuming a finished order replays what is left, then ends; past the end is refused.
    let mut stream = track(&mut client, &order_id, 4).await;
    assert_eq!(next_event(&mut stream).await.0.seq, 5);
    assert!(next(&mut stream).await.is_none());
    let refused = client
        .track_order(pb::TrackOrderRequest { order_id: order_id.clone(), resume_after: 6, ..Default::default() })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::InvalidArgument);
    assert!(refused.message().contains("resume_after"), "{}", refused.message());
}

#[tokio::test]
async fn a_stream_resumes_on_a_restarted_replica_without_losing_an_event() {
    let kitchen = Kitchen::open().await;
    let mut replica = kitchen.server.spawn_replica().await;
    let order_id = kitchen.placed_order().await;
    let mut stream = track(&mut kitchen.server.tracking_at(&replica, Some(&kitchen.customer)), &order_id, 0).await;
    let (seq, _) = snapshot(next(&mut stream).await.unwrap());

    replica.crash_and_restart().await;
    let end = tokio::time::timeout(Duration::from_secs(15), stream.next()).await.expect("the dead stream hangs");
    assert!(!matches!(end, Some(Ok(_))), "a crashed replica's stream ends with an error: {end:?}");
    kitchen.restaurant_sets(&order_id, "accepted").await;
    kitchen.restaurant_sets(&order_id, "preparing").await;

    let mut stream = track(&mut kitchen.server.tracking_at(&replica, Some(&kitchen.customer)), &order_id, seq).await;
    let (event, _) = next_event(&mut stream).await;
    assert_eq!((event.seq, event.status()), (seq + 1, pb::OrderStatus::Confirmed));
    let (event, _) = next_event(&mut stream).await;
    assert_eq!((event.seq, event.status()), (seq + 2, pb::OrderStatus::Preparing));
}

#[tokio::test]
async fn a_slow_reader_gets_every_status_event_in_order_and_only_the_newest_locations() {
    // A high rate cap, so only coalescing can keep the reader from seeing every ping.
    let kitchen = Kitchen::open_with(|config| config.tracking.max_location_rate = 1_000).await;
    let driver = kitchen.driver(1).await;
    let mut app = DriverApp::connect(kitchen.server.drivers(Some(&driver))).await;
    let order_id = kitchen.ready_order().await;
    kitchen.assign(&order_id, &driver).await.unwrap();

    // A client that lets the server get at most 1 KiB ahead of what it read.
    let channel = tonic::transport::Channel::from_shared(format!("http://{}", kitchen.server.addr))
        .unwrap()
        .initial_stream_window_size(Some(1024))
        .connect()
        .await
        .unwrap();
    let mut client = foodfast_api::v1::tracking_service_client::TrackingServiceClient::with_interceptor(
        channel,
        kitchen.server.bearer(Some(&kitchen.customer)),
    );
    let mut stream = track(&mut client, &order_id, 0).await;
    let (seq, _) = snapshot(next(&mut stream).await.unwrap());

    // The reader stalls while 300 pings (5 m apart, 0.1 s apart) and the pickup go by.
    const PINGS: u64 = 300;
    for seq in 1..=PINGS {
        app.ping(seq, north_of_kitchen(-2_000.0 + 5.0 * seq as f64), 60.0 - 0.1 * seq as f64).await;
        if seq == PINGS / 2 {
            app.until_durable(seq).await;
            kitchen.picked_up(&driver, &order_id).await.unwrap();
        }
    }
    app.until_durable(PINGS).await;
    let newest = north_of_kitchen(-2_000.0 + 5.0 * PINGS as f64).0;

    let (mut locations, mut events) = (Vec::new(), Vec::new());
    while locations.last().map(|l: &pb::DriverLocationUpdate| l.position.unwrap().lat) != Some(newest) {
        tokio::time::sleep(Duration::from_millis(20)).await;
        match next(&mut stream).await.unwrap().payload {
            Some(Payload::DriverLocation(location)) => locations.push(location),
            Some(Payload::Event(event)) => events.push(event),
            _ => {}
        }
    }
    kitchen.delivered(&driver, &order_id).await.unwrap();
    loop {
        match next(&mut stream).await {
            Some(pb::TrackOrderResponse { payload: Some(Payload::Event(event)), .. }) => events.push(event),
            Some(_) => {}
            None => break,
        }
    }

    let statuses: Vec<_> = events.iter().map(|e| (e.seq, e.status())).collect();
    assert_eq!(
        statuses,
        [(seq + 1, pb::OrderStatus::PickedUp), (seq + 2, pb::OrderStatus::Delivered)],
        "every status event, in order"
    );
    assert!(
        locations.len() < 60,
        "{} of {PINGS} positions reached a reader that was not reading: they must coalesce",
        locations.len()
    );
    let times: Vec<_> = locations
        .iter()
        .map(|l| l.recorded_at.unwrap().seconds * 1_000_000_000 + i64::from(l.recorded_at.unwrap().nanos))
        .collect();
    assert!(times.windows(2).all(|pair| pair[0] < pair[1]), "positions only ever move forward");
}

#[tokio::test]
async fn only_the_orders_parties_and_operators_may_watch_it() {
    let kitchen = Kitchen::open().await;
    let driver = kitchen.driver(1).await;
    let stranger_driver = kitchen.driver(1).await;
    let order_id = kitchen.ready_order().await;
    kitchen.online(&driver).await;
    kitchen.assign(&order_id, &driver).await.unwrap();
    let (other_restaurant, _) = kitchen.server.restaurant_at("Other", "sushi", 48.86, 2.36).await;
    let other_staff = kitchen.server.staff(other_restaurant.restaurant_id.parse().unwrap()).await;
    let other_customer = kitchen.server.customer().await;
    let support = kitchen.server.support().await;

    for allowed in [&kitchen.customer, &kitchen.staff, &driver, &support, &kitchen.admin] {
        let mut stream = track(&mut kitchen.server.tracking(Some(allowed)), &order_id, 0).await;
        snapshot(next(&mut stream).await.unwrap());
    }
    for refused in [&other_customer, &other_staff, &stranger_driver] {
        let err = kitchen
            .server
            .tracking(Some(refused))
            .track_order(pb::TrackOrderRequest { order_id: order_id.clone(), ..Default::default() })
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::PermissionDenied, "{refused:?}: {err:?}");
    }
    let unauthenticated = kitchen
        .server
        .tracking(None)
        .track_order(pb::TrackOrderRequest { order_id: order_id.clone(), ..Default::default() })
        .await
        .unwrap_err();
    assert_eq!(unauthenticated.code(), Code::Unauthenticated);
    for (request, field) in [
        (pb::TrackOrderRequest { order_id: "nope".into(), ..Default::default() }, "order_id"),
        (
            pb::TrackOrderRequest {
                order_id: order_id.clone(),
                max_location_updates_per_second: 11,
                ..Default::default()
            },
            "max_location_updates_per_second",
        ),
    ] {
        let err = kitchen.server.tracking(Some(&kitchen.customer)).track_order(request).await.unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument);
        assert!(err.message().contains(field), "{field}: {}", err.message());
    }
}

#[tokio::test]
async fn a_driver_stops_watching_when_the_order_is_reassigned() {
    let kitchen = Kitchen::open().await;
    let (first, second) = (kitchen.driver(1).await, kitchen.driver(1).await);
    let order_id = kitchen.ready_order().await;
    for driver in [&first, &second] {
        kitchen.online(driver).await;
    }
    kitchen.assign(&order_id, &first).await.unwrap();
    let mut watched = track(&mut kitchen.server.tracking(Some(&first)), &order_id, 0).await;
    snapshot(next(&mut watched).await.unwrap());

    kitchen.assign_as(&kitchen.admin, &order_id, &second, true).await.unwrap();
    let ended = loop {
        match tokio::time::timeout(Duration::from_secs(15), watched.next()).await.expect("the stream went silent") {
            Some(Ok(message)) => {
                assert!(
                    !matches!(message.payload, Some(Payload::Event(_) | Payload::DriverLocation(_) | Payload::Eta(_))),
                    "the first driver saw the order after it was reassigned: {message:?}"
                );
            }
            Some(Err(status)) => break status,
            None => panic!("the stream ended without an error"),
        }
    };
    assert_eq!(ended.code(), Code::PermissionDenied, "{ended:?}");
    // The new driver follows it.
    let mut watched = track(&mut kitchen.server.tracking(Some(&second)), &order_id, 0).await;
    snapshot(next(&mut watched).await.unwrap());
}

/// A kitchen on a Redis of the test's own, and a customer tracking a placed
/// order: the stream and the seq of its snapshot.
async fn tracking_on(redis: &PrivateRedis) -> (Kitchen, String, Streaming<pb::TrackOrderResponse>, u64) {
    let kitchen = Kitchen::open_with(|config| {
        config.stores.redis.url = redis.url();
        config.tracking.degraded_poll_interval = Duration::from_millis(300);
    })
    .await;
    let order_id = kitchen.placed_order().await;
    let mut stream = track(&mut kitchen.server.tracking(Some(&kitchen.customer)), &order_id, 0).await;
    let (seq, _) = snapshot(next(&mut stream).await.unwrap());
    (kitchen, order_id, stream, seq)
}

fn notice(message: Option<pb::TrackOrderResponse>) -> pb::TrackingNoticeKind {
    match message.unwrap().payload {
        Some(Payload::Notice(notice)) => notice.kind(),
        other => panic!("expected a notice, got {other:?}"),
    }
}

#[tokio::test]
async fn a_redis_outage_degrades_the_stream_which_catches_up_from_the_database() {
    let mut redis = PrivateRedis::start();
    let (kitchen, order_id, mut stream, seq) = tracking_on(&redis).await;

    redis.kill();
    assert_eq!(notice(next(&mut stream).await), pb::TrackingNoticeKind::LiveUpdatesDegraded);
    // No wake-up can be published now; the stream still sees the change, from the database.
    kitchen.restaurant_sets(&order_id, "accepted").await;
    let (event, _) = next_event(&mut stream).await;
    assert_eq!((event.seq, event.status()), (seq + 1, pb::OrderStatus::Confirmed));

    redis.restart();
    assert_eq!(notice(next(&mut stream).await), pb::TrackingNoticeKind::LiveUpdatesRestored);
    kitchen.restaurant_sets(&order_id, "preparing").await;
    let (event, _) = next_event(&mut stream).await;
    assert_eq!((event.seq, event.status()), (seq + 2, pb::OrderStatus::Preparing));
}

#[tokio::test]
async fn a_frozen_redis_is_noticed_and_the_stream_degrades_instead_of_stalling() {
    let redis = PrivateRedis::start();
    let (kitchen, order_id, mut stream, seq) = tracking_on(&redis).await;

    // The pub/sub connection stays open but nothing answers on it.
    redis.freeze();
    assert_eq!(notice(next(&mut stream).await), pb::TrackingNoticeKind::LiveUpdatesDegraded);
    redis.resume();
    assert_eq!(notice(next(&mut stream).await), pb::TrackingNoticeKind::LiveUpdatesRestored);
    kitchen.restaurant_sets(&order_id, "accepted").await;
    let (event, _) = next_event(&mut stream).await;
    assert_eq!((event.seq, event.status()), (seq + 1, pb::OrderStatus::Confirmed));
}

async fn arrived(
    kitchen: &Kitchen,
    caller: &foodfast_domain::access::Principal,
    order_id: &str,
    stop: pb::DeliveryStop,
) -> Result<pb::MarkArrivedResponse, tonic::Status> {
    let request = pb::MarkArrivedRequest { order_id: order_id.into(), stop: stop as i32 };
    kitchen.server.drivers(Some(caller)).mark_arrived(request).await.map(|response| response.into_inner())
}

#[tokio::test]
async fn the_drivers_arrivals_reach_the_customer_once_each_and_only_when_they_make_sense() {
    let kitchen = Kitchen::open().await;
    let driver = kitchen.driver(1).await;
    let other = kitchen.driver(1).await;
    let _online = DriverApp::connect(kitchen.server.drivers(Some(&driver))).await;
    let order_id = kitchen.ready_order().await;
    let assigned = kitchen.assign(&order_id, &driver).await.unwrap();
    let mut stream = track(&mut kitchen.server.tracking(Some(&kitchen.customer)), &order_id, assigned.seq).await;

    let err = arrived(&kitchen, &driver, &order_id, pb::DeliveryStop::Unspecified).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    let err = arrived(&kitchen, &other, &order_id, pb::DeliveryStop::Restaurant).await.unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied, "only the order's driver: {err:?}");
    let err = arrived(&kitchen, &driver, &order_id, pb::DeliveryStop::Customer).await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "not at the customer before pickup: {err:?}");
    assert!(err.message().contains("once the food is picked up"), "{}", err.message());

    let at_restaurant = arrived(&kitchen, &driver, &order_id, pb::DeliveryStop::Restaurant).await.unwrap();
    assert_eq!((at_restaurant.status(), at_restaurant.seq), (pb::OrderStatus::DriverAssigned, assigned.seq + 1));
    let again = arrived(&kitchen, &driver, &order_id, pb::DeliveryStop::Restaurant).await.unwrap();
    assert_eq!(again.seq, at_restaurant.seq, "a resend adds nothing");
    let (event, _) = next_event(&mut stream).await;
    assert_eq!(
        (event.seq, event.kind(), event.status(), event.actor()),
        (
            at_restaurant.seq,
            pb::OrderEventKind::DriverArrivedAtRestaurant,
            pb::OrderStatus::DriverAssigned,
            pb::Actor::Driver
        )
    );

    let picked = kitchen.picked_up(&driver, &order_id).await.unwrap();
    let at_customer = arrived(&kitchen, &driver, &order_id, pb::DeliveryStop::Customer).await.unwrap();
    assert_eq!((at_customer.status(), at_customer.seq), (pb::OrderStatus::Delivering, picked.seq + 2));
    let again = arrived(&kitchen, &driver, &order_id, pb::DeliveryStop::Customer).await.unwrap();
    assert_eq!((again.status(), again.seq), (pb::OrderStatus::Delivering, at_customer.seq));
    let (event, _) = next_event(&mut stream).await;
    assert_eq!((event.seq, event.status()), (picked.seq, pb::OrderStatus::PickedUp));
    let (event, _) = next_event(&mut stream).await;
    assert_eq!(
        (event.seq, event.kind(), event.previous_status(), event.status()),
        (picked.seq + 1, pb::OrderEventKind::StatusChanged, pb::OrderStatus::PickedUp, pb::OrderStatus::Delivering),
        "arriving at the customer starts the delivering step first"
    );
    let (event, _) = next_event(&mut stream).await;
    assert_eq!((event.seq, event.kind()), (at_customer.seq, pb::OrderEventKind::DriverArrivedAtCustomer));

    kitchen.delivered(&driver, &order_id).await.unwrap();
    let err = arrived(&kitchen, &other, &order_id, pb::DeliveryStop::Customer).await.unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
}
