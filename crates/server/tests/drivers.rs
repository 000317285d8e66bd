//! The driver's Connect stream on the real Redis and Cassandra: pings are
//! checked, made live, written durably, acknowledged, and read back. And the
//! driver's delivery steps (picked up, delivered), unary and over Connect.

mod common;

use std::time::Duration;

use chrono::Utc;
use common::{Authed, Kitchen, TestServer, hello, ping, track, up};
use foodfast_api::v1 as pb;
use foodfast_api::v1::driver_service_client::DriverServiceClient;
use foodfast_domain::access::Principal;
use foodfast_store::users::Users;
use tokio::sync::mpsc;
use tokio_stream::StreamExt;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Code;

struct Session {
    sender: mpsc::Sender<pb::ConnectRequest>,
    responses: tonic::codec::Streaming<pb::ConnectResponse>,
    welcome: pb::Welcome,
}

async fn connect(server: &TestServer, driver: &Principal) -> Session {
    connect_with(server.drivers(Some(driver))).await
}

/// The driver's state as GetDriverState tells it to the driver.
async fn driver_state(server: &TestServer, driver: &Principal) -> pb::GetDriverStateResponse {
    let mut client = server.drivers(Some(driver));
    client.get_driver_state(pb::GetDriverStateRequest::default()).await.unwrap().into_inner()
}

async fn connect_with(mut client: DriverServiceClient<Authed>) -> Session {
    let (sender, receiver) = mpsc::channel(64);
    sender.send(hello()).await.unwrap();
    let mut responses = client.connect(ReceiverStream::new(receiver)).await.unwrap().into_inner();
    let welcome = match responses.next().await.unwrap().unwrap().payload {
        Some(pb::connect_response::Payload::Welcome(welcome)) => welcome,
        other => panic!("expected welcome, got {other:?}"),
    };
    Session { sender, responses, welcome }
}

impl Session {
    async fn send(&self, ping: pb::LocationPing) {
        self.sender.send(up(pb::connect_request::Payload::Ping(ping))).await.unwrap();
    }

    /// Reads acks until the durable seq reaches `seq`; returns every
    /// rejection seen on the way.
    async fn until_durable(&mut self, seq: u64) -> Vec<pb::RejectedPing> {
        let mut rejected = Vec::new();
        loop {
            let message = tokio::time::timeout(Duration::from_secs(15), self.responses.next())
                .await
                .unwrap_or_else(|_| panic!("no ack reached {seq}"))
                .unwrap()
                .unwrap();
            if let Some(pb::connect_response::Payload::Ack(ack)) = message.payload {
                rejected.extend(ack.rejected);
                if ack.durable_seq >= seq {
                    return rejected;
                }
            }
        }
    }

    /// Reads until the server ends the stream; returns the status it ended with.
    async fn ended_within(&mut self, within: Duration) -> tonic::Status {
        let ended = async {
            loop {
                match self.responses.next().await {
                    Some(Ok(_)) => {}
                    Some(Err(status)) => return status,
                    None => panic!("the stream ended with OK"),
                }
            }
        };
        tokio::time::timeout(within, ended).await.unwrap_or_else(|_| panic!("the stream still runs after {within:?}"))
    }
}

async fn driver_server() -> TestServer {
    let server = TestServer::start().await;
    server.migrate_scylla().await;
    server
}

#[tokio::test]
async fn pings_are_acked_once_durable_and_read_back_from_both_tables() {
    let server = driver_server().await;
    let driver = server.driver().await;
    let mut session = connect(&server, &driver).await;
    assert_eq!(session.welcome.durable_seq, 0);
    assert_eq!(session.welcome.driver_id, driver.user_id.to_string());
    for seq in 1..=20 {
        session.send(ping(seq, seq as f64 * 20.0, 30.0 - seq as f64)).await;
    }
    assert!(session.until_durable(20).await.is_empty());

    let stored: Vec<u64> = track(&server, &driver, &driver).await.iter().map(|p| p.seq).collect();
    assert_eq!(stored, (1..=20).collect::<Vec<_>>(), "every ping once, in time order");

    let support = server.support().await;
    let mut export = server
        .tracking(Some(&support))
        .export_city_pings(pb::ExportCityPingsRequest {
            city: "paris".into(),
            day: Utc::now().format("%Y-%m-%d").to_string(),
        })
        .await
        .unwrap()
        .into_inner();
    let mut exported = Vec::new();
    while let Some(batch) = export.next().await {
        exported.extend(batch.unwrap().pings.into_iter().filter(|p| p.driver_id == driver.user_id.to_string()));
    }
    assert_eq!(exported.len(), 20, "the city-day partitions hold the same pings");

    // The live position is the last ping.
    let live = foodfast_store::live::LivePositions::new(server.stores.redis.clone());
    assert_eq!(live.position(driver.user_id).await.unwrap().unwrap().seq, 20);
}

#[tokio::test]
async fn each_bad_ping_is_reported_with_its_reason_and_the_stream_goes_on() {
    let server = driver_server().await;
    let driver = server.driver().await;
    let mut session = connect(&server, &driver).await;
    session.send(ping(1, 0.0, 60.0)).await;
    session.until_durable(1).await;

    let mut far_future = ping(3, 10.0, -120.0);
    far_future.seq = 3;
    let mut out_of_range = ping(4, 0.0, 55.0);
    out_of_range.lat = 123.0;
    let teleport = ping(5, 50_000.0, 54.0);
    let too_old = ping(6, 0.0, 3_600.0);
    let duplicate = ping(1, 0.0, 53.0);
    let mut no_time = ping(7, 0.0, 52.0);
    no_time.recorded_at = None;
    let earlier = ping(8, 0.0, 61.0);
    for bad in [far_future, out_of_range, teleport, too_old, duplicate, no_time, earlier] {
        session.send(bad).await;
    }
    session.send(ping(9, 30.0, 50.0)).await;
    let rejected = session.until_durable(9).await;
    use pb::PingRejectionReason as R;
    let reasons: Vec<(u64, R)> = rejected.iter().map(|r| (r.seq, r.reason())).collect();
    assert_eq!(
        reasons,
        vec![
            (3, R::TimestampInFuture),
            (4, R::CoordinatesOutOfRange),
            (5, R::ImpossibleSpeed),
            (6, R::TimestampTooOld),
            (1, R::DuplicateSeq),
            (7, R::InvalidField),
            (8, R::OutOfOrder),
        ]
    );
    assert!(rejected.iter().all(|r| !r.detail.is_empty()));
    let stored: Vec<u64> = track(&server, &driver, &driver).await.iter().map(|p| p.seq).collect();
    assert_eq!(stored, vec![1, 9], "only accepted pings are stored");
}

#[tokio::test]
async fn a_seq_sent_twice_on_one_stream_is_a_duplicate_even_before_it_is_durable() {
    let server = driver_server().await;
    let driver = server.driver().await;
    let mut session = connect(&server, &driver).await;
    session.send(ping(1, 0.0, 60.0)).await;
    session.send(ping(1, 0.0, 60.0)).await;
    session.send(ping(2, 10.0, 59.0)).await;
    let rejected = session.until_durable(2).await;
    let reasons: Vec<(u64, pb::PingRejectionReason)> = rejected.iter().map(|r| (r.seq, r.reason())).collect();
    assert_eq!(reasons, vec![(1, pb::PingRejectionReason::DuplicateSeq)]);
}

#[tokio::test]
async fn a_seq_far_past_the_last_is_refused_and_does_not_lock_the_driver_out() {
    let server = driver_server().await;
    let driver = server.driver().await;
    let mut session = connect(&server, &driver).await;
    session.send(ping(1, 0.0, 60.0)).await;
    session.send(ping(1 << 40, 5.0, 59.0)).await;
    session.send(ping(2, 10.0, 58.0)).await;
    let rejected = session.until_durable(2).await;
    let reasons: Vec<(u64, pb::PingRejectionReason)> = rejected.iter().map(|r| (r.seq, r.reason())).collect();
    assert_eq!(reasons, vec![(1 << 40, pb::PingRejectionReason::InvalidField)]);
    let stored: Vec<u64> = track(&server, &driver, &driver).await.iter().map(|p| p.seq).collect();
    assert_eq!(stored, vec![1, 2]);
}

#[tokio::test]
async fn the_durable_watermark_outlives_the_stream_for_the_next_session_on_any_replica() {
    let server = driver_server().await;
    let driver = server.driver().await;
    let mut app = connect(&server, &driver).await;
    for seq in 1..=10 {
        app.send(ping(seq, seq as f64 * 10.0, 40.0 - seq as f64)).await;
    }
    app.until_durable(10).await;
    drop(app);
    // Written to Redis at most once a second while the stream lives, and when it ends:
    // GetDriverState reads it from there, as another replica's next session would.
    let recorded = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            let state = driver_state(&server, &driver).await;
            if state.durable_seq == 10 {
                return state.durable_seq;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    assert_eq!(recorded, Ok(10), "the ended stream's watermark reached Redis");
}

#[tokio::test]
async fn a_reconnect_resends_from_the_ack_and_nothing_is_duplicated_or_missing() {
    let server = driver_server().await;
    let driver = server.driver().await;
    let mut first = connect(&server, &driver).await;
    for seq in 1..=10 {
        first.send(ping(seq, seq as f64 * 10.0, 40.0 - seq as f64)).await;
    }
    first.until_durable(10).await;
    drop(first);

    let mut second = connect(&server, &driver).await;
    assert_eq!(second.welcome.durable_seq, 10, "the new session knows what is durable");
    // The app resends from its own buffer, overlapping what was acked.
    for seq in 8..=15 {
        second.send(ping(seq, seq as f64 * 10.0, 40.0 - seq as f64)).await;
    }
    let rejected = second.until_durable(15).await;
    assert!(rejected.iter().all(|r| r.reason() == pb::PingRejectionReason::DuplicateSeq && r.seq <= 10));
    let stored: Vec<u64> = track(&server, &driver, &driver).await.iter().map(|p| p.seq).collect();
    assert_eq!(stored, (1..=15).collect::<Vec<_>>());
}

#[tokio::test]
async fn a_newer_stream_on_another_replica_replaces_the_older_one_which_ends_aborted() {
    let server = driver_server().await;
    let replica = server.spawn_replica().await;
    let driver = server.driver().await;
    let mut older = connect(&server, &driver).await;
    older.send(ping(1, 0.0, 10.0)).await;
    older.until_durable(1).await;

    let mut newer = connect_with(server.drivers_at(&replica, Some(&driver))).await;
    // Well before the older stream's resync (7.5 s at the earliest): the newer one's wake-up ends it.
    let status = older.ended_within(Duration::from_secs(5)).await;
    assert_eq!(status.code(), Code::Aborted, "{status:?}");
    assert!(status.message().contains("replaced"), "{status:?}");

    newer.send(ping(2, 10.0, 5.0)).await;
    assert!(newer.until_durable(2).await.is_empty(), "the newer stream carries on");
    let state = driver_state(&server, &driver).await;
    assert!(state.connected, "the older stream's end left the newer session alone");
}

#[tokio::test]
async fn a_replaced_stream_whose_wake_up_was_lost_ends_at_its_next_resync() {
    let server =
        TestServer::start_with(|config| config.dispatch.driver_resync_interval = Duration::from_millis(200)).await;
    server.migrate_scylla().await;
    let driver = server.driver().await;
    let mut older = connect(&server, &driver).await;
    // A newer stream recorded without its wake-up, as when the pub/sub message is lost.
    let live = foodfast_store::live::LivePositions::new(server.stores.redis.clone());
    live.start_session(driver.user_id, uuid::Uuid::new_v4()).await.unwrap();
    let status = older.ended_within(Duration::from_secs(5)).await;
    assert_eq!(status.code(), Code::Aborted, "{status:?}");
    assert!(live.connected(driver.user_id).await.unwrap(), "the newer session stays");
}

#[tokio::test]
async fn connect_needs_a_driver_and_hello_first() {
    let server = driver_server().await;
    let customer = server.customer().await;
    let (sender, receiver) = mpsc::channel(4);
    sender.send(hello()).await.unwrap();
    let err = server.drivers(Some(&customer)).connect(ReceiverStream::new(receiver)).await.unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    let (sender, receiver) = mpsc::channel(4);
    sender.send(hello()).await.unwrap();
    let err = server.drivers(None).connect(ReceiverStream::new(receiver)).await.unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);

    let driver = server.driver().await;
    let (sender, receiver) = mpsc::channel(4);
    sender.send(up(pb::connect_request::Payload::Ping(ping(1, 0.0, 1.0)))).await.unwrap();
    let mut responses =
        server.drivers(Some(&driver)).connect(ReceiverStream::new(receiver)).await.unwrap().into_inner();
    let status = responses.next().await.unwrap().unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(status.message().contains("hello"));

    // Another driver's track is not theirs to read.
    let other = server.driver().await;
    let err = server
        .tracking(Some(&other))
        .get_driver_track(pb::GetDriverTrackRequest { driver_id: driver.user_id.to_string(), ..Default::default() })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
}

#[tokio::test]
async fn report_location_answers_once_the_batch_is_durable() {
    let server = driver_server().await;
    let driver = server.driver().await;
    let pings = (1..=5).map(|seq| ping(seq, seq as f64 * 10.0, 20.0 - seq as f64)).collect();
    let ack = server
        .drivers(Some(&driver))
        .report_location(pb::ReportLocationRequest { pings })
        .await
        .unwrap()
        .into_inner()
        .ack
        .unwrap();
    assert_eq!(ack.durable_seq, 5);
    assert!(ack.rejected.is_empty());
    assert_eq!(track(&server, &driver, &driver).await.len(), 5);

    let err =
        server.drivers(Some(&driver)).report_location(pb::ReportLocationRequest { pings: vec![] }).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
}

fn transition(transition_id: &str, order_id: &str, step: pb::DeliveryStep) -> pb::ConnectRequest {
    up(pb::connect_request::Payload::Transition(pb::DeliveryTransition {
        transition_id: transition_id.into(),
        order_id: order_id.into(),
        step: step as i32,
        occurred_at: None,
    }))
}

impl Session {
    /// Sends a delivery step and reads until its result comes down.
    async fn step(&mut self, transition_id: &str, order_id: &str, step: pb::DeliveryStep) -> pb::TransitionResult {
        self.sender.send(transition(transition_id, order_id, step)).await.unwrap();
        loop {
            let message = tokio::time::timeout(Duration::from_secs(15), self.responses.next())
                .await
                .unwrap_or_else(|_| panic!("no result for transition {transition_id}"))
                .unwrap()
                .unwrap();
            if let Some(pb::connect_response::Payload::TransitionResult(result)) = message.payload {
                assert_eq!(result.transition_id, transition_id);
                assert_eq!(result.order_id, order_id);
                assert_eq!(result.step(), step);
                return result;
            }
        }
    }
}

#[tokio::test]
async fn the_assigned_driver_picks_up_and_delivers_and_a_resend_is_answered_ok() {
    let kitchen = Kitchen::open().await;
    let driver = kitchen.driver(1).await;
    let other = kitchen.driver(1).await;
    let _online = connect(&kitchen.server, &driver).await;

    let order_id = kitchen.ready_order().await;
    let assigned = kitchen.assign(&order_id, &driver).await.unwrap();
    assert_eq!(assigned.status(), pb::OrderStatus::DriverAssigned);

    // Only drivers, and only the order's driver; strangers cannot tell whether it exists.
    let err = kitchen.picked_up(&kitchen.customer, &order_id).await.unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    let err = kitchen.picked_up(&other, &order_id).await.unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    let missing = uuid::Uuid::new_v4().to_string();
    let err_missing = kitchen.picked_up(&driver, &missing).await.unwrap_err();
    assert_eq!(err_missing.code(), Code::PermissionDenied);
    assert_eq!(err.message().replace(&order_id, "ID"), err_missing.message().replace(&missing, "ID"));
    let err = kitchen.picked_up(&driver, "not-a-uuid").await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);

    // Not before pickup.
    let err = kitchen.delivered(&driver, &order_id).await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");

    let picked = kitchen.picked_up(&driver, &order_id).await.unwrap();
    assert_eq!((picked.order_id.as_str(), picked.status()), (order_id.as_str(), pb::OrderStatus::PickedUp));
    assert_eq!(picked.seq, assigned.seq + 1);
    let again = kitchen.picked_up(&driver, &order_id).await.unwrap();
    assert_eq!((again.status(), again.seq), (pb::OrderStatus::PickedUp, picked.seq), "a resend changes nothing");

    let err = kitchen.delivered(&other, &order_id).await.unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    let delivered = kitchen.delivered(&driver, &order_id).await.unwrap();
    assert_eq!((delivered.status(), delivered.seq), (pb::OrderStatus::Delivered, picked.seq + 1));
    let again = kitchen.delivered(&driver, &order_id).await.unwrap();
    assert_eq!((again.status(), again.seq), (pb::OrderStatus::Delivered, delivered.seq));
    let late = kitchen.picked_up(&driver, &order_id).await.unwrap();
    assert_eq!((late.status(), late.seq), (pb::OrderStatus::Delivered, delivered.seq), "picked up, and more");
    assert_eq!(kitchen.status(&order_id).await, pb::OrderStatus::Delivered);
}

#[tokio::test]
async fn delivering_gives_the_drivers_capacity_back() {
    let kitchen = Kitchen::open().await;
    let driver = kitchen.driver(1).await;
    let _online = connect(&kitchen.server, &driver).await;

    let first = kitchen.ready_order().await;
    let second = kitchen.ready_order().await;
    kitchen.assign(&first, &driver).await.unwrap();
    let err = kitchen.assign(&second, &driver).await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "at capacity: {err:?}");

    kitchen.picked_up(&driver, &first).await.unwrap();
    kitchen.delivered(&driver, &first).await.unwrap();
    // A resend does not give the capacity back twice.
    kitchen.delivered(&driver, &first).await.unwrap();
    let assigned = kitchen.assign(&second, &driver).await.unwrap();
    assert_eq!(assigned.status(), pb::OrderStatus::DriverAssigned);
    let profile = Users::new(kitchen.server.stores.postgres.clone()).driver(driver.user_id).await.unwrap().unwrap();
    assert_eq!((profile.capacity, profile.active_deliveries), (1, 1));
}

#[tokio::test]
async fn delivery_steps_over_connect_are_applied_once_and_a_refusal_does_not_end_the_stream() {
    use pb::DeliveryStep as Step;
    use pb::TransitionOutcome as Outcome;
    let kitchen = Kitchen::open().await;
    let driver = kitchen.driver(1).await;
    let other = kitchen.driver(1).await;
    let mut session = connect(&kitchen.server, &driver).await;
    let mut stranger = connect(&kitchen.server, &other).await;
    let order_id = kitchen.ready_order().await;
    kitchen.assign(&order_id, &driver).await.unwrap();

    // Too early: refused with the order's status, and pings still flow.
    let result = session.step("t1", &order_id, Step::Delivered).await;
    assert_eq!((result.outcome(), result.order_status()), (Outcome::Refused, pb::OrderStatus::DriverAssigned));
    assert!(!result.error.is_empty());
    session.send(ping(1, 0.0, 5.0)).await;
    assert!(session.until_durable(1).await.is_empty());

    let result = session.step("t2", &order_id, Step::ArrivedAtRestaurant).await;
    assert_eq!((result.outcome(), result.order_status()), (Outcome::Applied, pb::OrderStatus::DriverAssigned));
    let result = session.step("t2", &order_id, Step::ArrivedAtRestaurant).await;
    assert_eq!(result.outcome(), Outcome::AlreadyApplied);
    let result = session.step("t3", &order_id, Step::ArrivedAtCustomer).await;
    assert_eq!((result.outcome(), result.order_status()), (Outcome::Refused, pb::OrderStatus::DriverAssigned));
    assert!(result.error.contains("once the food is picked up"), "{}", result.error);
    let result = session.step("t4", &order_id, Step::Unspecified).await;
    assert_eq!(result.outcome(), Outcome::Refused);
    assert!(result.error.contains("step"), "{}", result.error);
    let result = session.step("t5", "not-a-uuid", Step::PickedUp).await;
    assert_eq!(result.outcome(), Outcome::Refused);
    assert!(result.error.contains("order_id"), "{}", result.error);

    // Another driver learns nothing about the order, not even its status.
    let result = stranger.step("s1", &order_id, Step::PickedUp).await;
    assert_eq!((result.outcome(), result.order_status()), (Outcome::Refused, pb::OrderStatus::Unspecified));
    assert!(result.error.contains("not yours"), "{}", result.error);

    let result = session.step("t6", &order_id, Step::PickedUp).await;
    assert_eq!((result.outcome(), result.order_status()), (Outcome::Applied, pb::OrderStatus::PickedUp));
    assert!(result.error.is_empty());
    let result = session.step("t6", &order_id, Step::PickedUp).await;
    assert_eq!((result.outcome(), result.order_status()), (Outcome::AlreadyApplied, pb::OrderStatus::PickedUp));

    let result = stranger.step("s2", &order_id, Step::ArrivedAtCustomer).await;
    assert_eq!((result.outcome(), result.order_status()), (Outcome::Refused, pb::OrderStatus::Unspecified));
    let result = session.step("t8", &order_id, Step::ArrivedAtCustomer).await;
    assert_eq!((result.outcome(), result.order_status()), (Outcome::Applied, pb::OrderStatus::Delivering));
    let result = stranger.step("s3", &order_id, Step::Delivered).await;
    assert_eq!(result.outcome(), Outcome::Refused);
    let result = session.step("t7", &order_id, Step::Delivered).await;
    assert_eq!((result.outcome(), result.order_status()), (Outcome::Applied, pb::OrderStatus::Delivered));
    let result = session.step("t7", &order_id, Step::Delivered).await;
    assert_eq!((result.outcome(), result.order_status()), (Outcome::AlreadyApplied, pb::OrderStatus::Delivered));

    session.send(ping(2, 20.0, 2.0)).await;
    assert!(session.until_durable(2).await.is_empty(), "the stream still works");
    assert_eq!(kitchen.status(&order_id).await, pb::OrderStatus::Delivered);

    // The unary RPCs see the same order: a resend there is answered too.
    let again = kitchen.delivered(&driver, &order_id).await.unwrap();
    assert_eq!(again.status(), pb::OrderStatus::Delivered);
}

/// The Welcome of a fresh Connect stream of `driver`.
async fn welcome(kitchen: &Kitchen, driver: &Principal) -> pb::Welcome {
    let (sender, receiver) = mpsc::channel(1);
    let hello = pb::Hello { app_version: "test".into(), availability: pb::DriverAvailability::Online as i32 };
    sender.send(pb::ConnectRequest { payload: Some(pb::connect_request::Payload::Hello(hello)) }).await.unwrap();
    let mut stream =
        kitchen.server.drivers(Some(driver)).connect(ReceiverStream::new(receiver)).await.unwrap().into_inner();
    match stream.next().await.unwrap().unwrap().payload {
        Some(pb::connect_response::Payload::Welcome(welcome)) => welcome,
        other => panic!("expected a welcome, got {other:?}"),
    }
}

#[tokio::test]
async fn a_reconnecting_driver_is_welcomed_with_the_deliveries_it_holds() {
    let kitchen = Kitchen::open().await;
    let driver = kitchen.driver(2).await;
    kitchen.online(&driver).await;
    assert!(welcome(&kitchen, &driver).await.active_deliveries.is_empty());

    let order_id = kitchen.ready_order().await;
    let assigned = kitchen.assign(&order_id, &driver).await.unwrap();
    let held = welcome(&kitchen, &driver).await.active_deliveries;
    assert_eq!(held.len(), 1, "{held:?}");
    let delivery = &held[0];
    assert_eq!(
        (delivery.order_id.as_str(), delivery.delivery_id.as_str()),
        (order_id.as_str(), assigned.delivery_id.as_str())
    );
    assert_eq!(delivery.item_count, 2, "two Bruschette to collect");
    assert_eq!(delivery.restaurant_name, kitchen.restaurant.profile.as_ref().unwrap().name);
    assert!(delivery.customer_address.is_some(), "the driver holding it sees where to go");

    kitchen.picked_up(&driver, &order_id).await.unwrap();
    assert_eq!(welcome(&kitchen, &driver).await.active_deliveries[0].order_status(), pb::OrderStatus::PickedUp);
    kitchen.delivered(&driver, &order_id).await.unwrap();
    assert!(welcome(&kitchen, &driver).await.active_deliveries.is_empty(), "a delivered order is not held");
}

/// A Connect stream of `driver` whose Hello asks for `availability`.
async fn connect_saying(kitchen: &Kitchen, driver: &Principal, availability: pb::DriverAvailability) -> Session {
    let (sender, receiver) = mpsc::channel(64);
    let hello = pb::Hello { app_version: "test".into(), availability: availability as i32 };
    sender.send(up(pb::connect_request::Payload::Hello(hello))).await.unwrap();
    let mut responses =
        kitchen.server.drivers(Some(driver)).connect(ReceiverStream::new(receiver)).await.unwrap().into_inner();
    let welcome = match responses.next().await.unwrap().unwrap().payload {
        Some(pb::connect_response::Payload::Welcome(welcome)) => welcome,
        other => panic!("expected welcome, got {other:?}"),
    };
    Session { sender, responses, welcome }
}

impl Session {
    /// The next availability the server tells the app (other messages skipped).
    async fn next_availability(&mut self) -> pb::AvailabilityChange {
        loop {
            let message = tokio::time::timeout(Duration::from_secs(10), self.responses.next())
                .await
                .expect("no availability came")
                .unwrap()
                .unwrap();
            if let Some(pb::connect_response::Payload::Availability(change)) = message.payload {
                return change;
            }
        }
    }
}

#[tokio::test]
async fn the_app_hears_its_availability_kept_on_reconnect_answered_and_moved_by_the_server() {
    use pb::DriverAvailability as Availability;
    let kitchen = Kitchen::open().await;
    let driver = kitchen.driver(1).await;
    let off = connect_saying(&kitchen, &driver, Availability::Offline).await;
    assert_eq!(off.welcome.availability(), Availability::Offline);
    drop(off);

    // A Hello that does not say keeps what the server has.
    let mut session = connect_saying(&kitchen, &driver, Availability::Unspecified).await;
    assert_eq!(session.welcome.availability(), Availability::Offline);
    assert_eq!(driver_state(&kitchen.server, &driver).await.availability(), Availability::Offline);

    // The driver's change is answered with what the server has now.
    let online = pb::AvailabilityChange { availability: Availability::Online as i32, reason: String::new() };
    session.sender.send(up(pb::connect_request::Payload::Availability(online.clone()))).await.unwrap();
    assert_eq!(session.next_availability().await, online);

    // Its one place taken: BUSY, said by the server, and ONLINE again once delivered.
    let order_id = kitchen.ready_order().await;
    kitchen.assign(&order_id, &driver).await.unwrap();
    let busy = session.next_availability().await;
    assert_eq!(busy.availability(), Availability::Busy);
    assert!(busy.reason.contains("deliveries"), "{busy:?}");
    kitchen.picked_up(&driver, &order_id).await.unwrap();
    kitchen.delivered(&driver, &order_id).await.unwrap();
    assert_eq!(session.next_availability().await.availability(), Availability::Online);

    // Asking ONLINE at capacity is answered BUSY, with why.
    let second = kitchen.ready_order().await;
    kitchen.assign(&second, &driver).await.unwrap();
    assert_eq!(session.next_availability().await.availability(), Availability::Busy);
    session.sender.send(up(pb::connect_request::Payload::Availability(online))).await.unwrap();
    let answered = session.next_availability().await;
    assert_eq!(answered.availability(), Availability::Busy);
    assert!(answered.reason.contains("deliveries"), "{answered:?}");
    // A reconnect is welcomed BUSY too.
    drop(session);
    let again = connect_saying(&kitchen, &driver, Availability::Unspecified).await;
    assert_eq!(again.welcome.availability(), Availability::Busy);
}

#[tokio::test]
async fn a_track_is_read_a_day_at_most_and_a_bad_token_is_named() {
    use tonic_types::StatusExt;
    let server = driver_server().await;
    let driver = server.driver().await;
    let now = Utc::now();
    let read = |hours: i64, page_token: &str| {
        let mut client = server.tracking(Some(&driver));
        let request = pb::GetDriverTrackRequest {
            driver_id: driver.user_id.to_string(),
            start_time: Some(prost_types::Timestamp::from(std::time::SystemTime::from(
                now - chrono::TimeDelta::hours(hours),
            ))),
            end_time: Some(prost_types::Timestamp::from(std::time::SystemTime::from(now))),
            page_size: 0,
            page_token: page_token.into(),
        };
        async move { client.get_driver_track(request).await }
    };
    read(24, "").await.expect("a whole day is one read");
    for (hours, token, field) in [(25, "", "end_time"), (0, "", "end_time"), (2, "not-a-token", "page_token")] {
        let err = read(hours, token).await.unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
        let violations =
            err.get_error_details().bad_request().map(|bad| bad.field_violations.clone()).unwrap_or_default();
        assert_eq!(violations.first().map(|v| v.field.as_str()), Some(field), "{err:?}");
    }
}

#[tokio::test]
async fn a_live_at_capacity_flag_left_wrong_is_repaired_from_the_database_by_the_streams_resync() {
    use foodfast_store::live::LivePositions;
    let kitchen =
        Kitchen::open_with(|config| config.dispatch.driver_resync_interval = Duration::from_millis(200)).await;
    let driver = kitchen.driver(1).await;
    let _session = connect_saying(&kitchen, &driver, pb::DriverAvailability::Online).await;
    let live = LivePositions::new(kitchen.server.stores.redis.clone());
    // A write lost to a Redis failure: the flag says full, the driver holds nothing.
    live.set_at_capacity(driver.user_id, true).await.unwrap();
    assert_eq!(live.availability(driver.user_id).await.unwrap().as_deref(), Some("busy"));
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while live.availability(driver.user_id).await.unwrap().as_deref() != Some("online") {
        assert!(std::time::Instant::now() < deadline, "the driver stays busy, and gets no offers");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
