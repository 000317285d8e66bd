//! Dispatch under load: two server processes race to match 200 orders to
//! 50 courier bots, and every order still gets exactly one driver. A test
//! binary of its own, so that its load does not slow the timed waits of the
//! other matching tests.

mod common;

use std::time::Duration;

use common::{Authed, Kitchen, location_ping, north_of_kitchen};
use foodfast_api::v1 as pb;
use foodfast_api::v1::connect_response::Payload;
use foodfast_api::v1::driver_service_client::DriverServiceClient;
use foodfast_domain::access::Principal;
use futures::StreamExt;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use uuid::Uuid;

/// A customer's order at `restaurant`, accepted and made ready by its staff.
async fn place_and_ready(
    kitchen: &Kitchen,
    restaurant: &pb::Restaurant,
    menu: &pb::UpsertMenuResponse,
    staff: &Principal,
) -> Uuid {
    let order = kitchen
        .server
        .orders(Some(&kitchen.customer))
        .create_order(common::order_request_at(restaurant, menu, 1, 2_000.0))
        .await
        .unwrap()
        .into_inner()
        .order
        .unwrap();
    for status in ["accepted", "ready_for_pickup"] {
        let request = pb::UpdateOrderStatusRequest {
            order_id: order.order_id.clone(),
            status: status.into(),
            reason: String::new(),
            prep_time: None,
        };
        kitchen.server.restaurants(Some(staff)).update_order_status(request).await.unwrap();
    }
    order.order_id.parse().unwrap()
}

/// A courier bot on its Connect stream: accepts every offer (again when the
/// answer could not be recorded), and picks up and delivers each assigned
/// order at once (resending a refused step: the food is not ready yet, or
/// the store was busy). Returns when `stop` is
/// cancelled.
async fn courier(
    mut client: DriverServiceClient<Authed>,
    position: (f64, f64),
    stop: tokio_util::sync::CancellationToken,
) {
    let (sender, receiver) = mpsc::channel(64);
    let hello = pb::Hello { app_version: "bot".into(), availability: pb::DriverAvailability::Online as i32 };
    sender.send(common::up(pb::connect_request::Payload::Hello(hello))).await.unwrap();
    sender.send(common::up(pb::connect_request::Payload::Ping(location_ping(1, position, 0.0)))).await.unwrap();
    let mut responses = client.connect(ReceiverStream::new(receiver)).await.unwrap().into_inner();
    let step = |order_id: &str, step: pb::DeliveryStep| {
        common::up(pb::connect_request::Payload::Transition(pb::DeliveryTransition {
            transition_id: Uuid::new_v4().to_string(),
            order_id: order_id.into(),
            step: step as i32,
            occurred_at: None,
        }))
    };
    let accept = |offer_id: String| {
        let answer = pb::OfferAnswer { offer_id, decision: pb::OfferDecision::Accept as i32, reason: String::new() };
        common::up(pb::connect_request::Payload::OfferAnswer(answer))
    };
    let (mut refusals, mut answers_failed) = (0, 0);
    loop {
        let message = tokio::select! {
            _ = stop.cancelled() => return,
            message = responses.next() => message,
        };
        let Some(Ok(pb::ConnectResponse { payload: Some(payload) })) = message else { return };
        let reply = match payload {
            Payload::Offer(pb::Offer { offer_id, .. }) => accept(offer_id),
            // The store was too busy to record it: the offer is still open, answer again.
            Payload::OfferAnswerFailed(failed) => {
                answers_failed += 1;
                assert!(answers_failed < 1_000, "offer answers keep failing: {failed:?}");
                let retry_after = failed.retry_after.map_or(Duration::from_secs(1), |d| {
                    Duration::from_secs(d.seconds as u64) + Duration::from_nanos(d.nanos as u64)
                });
                tokio::time::sleep(retry_after).await;
                accept(failed.offer_id)
            }
            Payload::Assignment(change) if change.kind() == pb::AssignmentChangeKind::Assigned => {
                step(&change.delivery.unwrap().order_id, pb::DeliveryStep::PickedUp)
            }
            Payload::TransitionResult(result) => match (result.step(), result.outcome()) {
                (pb::DeliveryStep::PickedUp, pb::TransitionOutcome::Applied) => {
                    step(&result.order_id, pb::DeliveryStep::Delivered)
                }
                // Not ready yet (refused), or the store was busy (failed): an app resends
                // (safe, by transition id).
                (step_taken, pb::TransitionOutcome::Refused | pb::TransitionOutcome::Failed) => {
                    refusals += 1;
                    assert!(refusals < 1_000, "courier steps keep being refused: {result:?}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    step(&result.order_id, step_taken)
                }
                _ => continue,
            },
            _ => continue,
        };
        if sender.send(reply).await.is_err() {
            return;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_server_processes_dispatching_200_orders_to_50_drivers_give_each_order_exactly_one_driver() {
    const ORDERS: usize = 200;
    const DRIVERS: usize = 50;
    // The test's own server places orders but does not dispatch: the two replicas race.
    let kitchen = common::quick_kitchen(|config| {
        config.dispatch.enabled = false;
        // PostgreSQL's SERIALIZABLE conflicts by index page, and this test's tables fit in a
        // few pages: transactions on different orders conflict and retry more than they would
        // on CockroachDB (row conflicts) or on a full database.
        config.stores.postgres.max_tx_attempts = 30;
    })
    .await;
    let mut replica_config = kitchen.server.config.clone();
    replica_config.dispatch.enabled = true;
    let replicas = [
        common::Replica::spawn_logging(&replica_config, "warn", None).await,
        common::Replica::spawn_logging(&replica_config, "warn", None).await,
    ];
    let stop = tokio_util::sync::CancellationToken::new();
    let mut couriers = Vec::new();
    for index in 0..DRIVERS {
        let principal = kitchen.driver(1).await;
        // Half the drivers on each replica, spread 100 m to 3 km from the restaurant.
        let client = kitchen.server.drivers_at(&replicas[index % 2], Some(&principal));
        let position = north_of_kitchen(100.0 + 60.0 * index as f64);
        couriers.push(tokio::spawn(courier(client, position, stop.clone())));
    }

    // Ten restaurants within a kilometre, twenty orders each.
    let mut kitchens = Vec::new();
    for index in 0..10 {
        let (lat, lng) = north_of_kitchen(100.0 * index as f64);
        let (restaurant, menu) = kitchen.server.restaurant_at(&format!("Kitchen {index}"), "pizza", lat, lng).await;
        let staff = kitchen.server.staff(restaurant.restaurant_id.parse().unwrap()).await;
        kitchens.push((restaurant, menu, staff));
    }

    let started = std::time::Instant::now();
    let orders: Vec<Uuid> = futures::stream::iter(0..ORDERS)
        .map(|index| {
            let (restaurant, menu, staff) = &kitchens[index % kitchens.len()];
            place_and_ready(&kitchen, restaurant, menu, staff)
        })
        .buffer_unordered(4)
        .collect()
        .await;
    let placed = started.elapsed();

    let db = kitchen.server.stores.postgres.client().await.unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(180);
    loop {
        let delivered: i64 = db
            .query_one("SELECT count(*) FROM orders WHERE id = ANY($1) AND status = 'delivered'", &[&orders])
            .await
            .unwrap()
            .get(0);
        if delivered as usize == ORDERS {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{delivered} of {ORDERS} orders delivered after 180 s: orders were left unmatched while drivers were free"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let all_delivered = started.elapsed();
    stop.cancel();
    for courier in couriers {
        courier.await.unwrap();
    }

    let per_order = |sql: &'static str| {
        let orders = orders.clone();
        let db = &db;
        async move {
            let rows = db.query(sql, &[&orders]).await.unwrap();
            rows.iter().map(|row| (row.get::<_, Uuid>(0), row.get::<_, i64>(1))).collect::<Vec<_>>()
        }
    };
    let accepted = per_order(
        "SELECT order_id, count(*) FROM delivery_offers WHERE order_id = ANY($1) AND status = 'accepted' GROUP BY order_id",
    )
    .await;
    assert_eq!(accepted.len(), ORDERS, "every order has an accepted offer");
    assert!(accepted.iter().all(|(_, n)| *n == 1), "an order with two accepted offers: {accepted:?}");
    let assigned = per_order(
        "SELECT order_id, count(*) FROM order_events WHERE order_id = ANY($1) AND kind = 'driver_assigned' GROUP BY order_id",
    )
    .await;
    assert_eq!(assigned.len(), ORDERS);
    assert!(assigned.iter().all(|(_, n)| *n == 1), "an order assigned twice: {assigned:?}");

    // Capacity 1: each driver's deliveries follow one another, never overlap.
    let rows = db
        .query(
            "SELECT a.driver_id, a.created_at, d.created_at FROM order_events a
             JOIN order_events d ON d.order_id = a.order_id AND d.status = 'delivered' AND d.kind = 'status_changed'
             WHERE a.order_id = ANY($1) AND a.kind = 'driver_assigned'
             ORDER BY a.driver_id, a.created_at",
            &[&orders],
        )
        .await
        .unwrap();
    let drivers_used: std::collections::HashSet<Uuid> = rows.iter().map(|row| row.get(0)).collect();
    for pair in rows.windows(2) {
        let (driver, _, delivered_at): (Uuid, chrono::DateTime<chrono::Utc>, chrono::DateTime<chrono::Utc>) =
            (pair[0].get(0), pair[0].get(1), pair[0].get(2));
        let (next_driver, next_assigned_at): (Uuid, chrono::DateTime<chrono::Utc>) = (pair[1].get(0), pair[1].get(1));
        if next_driver == driver {
            assert!(delivered_at <= next_assigned_at, "driver {driver} held two deliveries at once");
        }
    }
    let offers: i64 =
        db.query_one("SELECT count(*) FROM delivery_offers WHERE order_id = ANY($1)", &[&orders]).await.unwrap().get(0);
    println!(
        "{ORDERS} orders, {DRIVERS} drivers, 2 dispatching replicas: placed in {placed:?}, all delivered after \
         {all_delivered:?}; {offers} offers, {} drivers used, 0 double assignments",
        drivers_used.len()
    );
}
