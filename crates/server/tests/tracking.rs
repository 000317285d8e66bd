//! TrackOrder on the real stores: status events, driver locations and ETAs
//! across replicas, resuming after a disconnect or a crash, slow readers,
//! Redis outages, and who may watch. Ops assign drivers by hand.

mod common;

use std::time::Duration;

use common::{DriverApp, Kitchen, north_of_kitchen};
use foodfast_api::v1 as pb;
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
