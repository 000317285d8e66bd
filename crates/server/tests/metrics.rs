//! The admin port's `/metrics` of a real `foodfast serve` process, scraped
//! after a short run of everything the issue names: RPCs by code, open
//! streams, pings accepted, rejected and acked, the location writer, the
//! ping -> tracking-stream latency, order transitions, dispatch offers, the
//! menu cache, the login rate limit and notification attempts.

mod common;

use std::time::Duration;

use common::{DriverApp, KITCHEN_LAT, KITCHEN_LNG, Kitchen, north_of_kitchen};
use foodfast_api::v1 as pb;
use pb::account_service_client::AccountServiceClient;
use pb::order_service_client::OrderServiceClient;
use pb::restaurant_service_client::RestaurantServiceClient;
use pb::track_order_response::Payload;
use uuid::Uuid;

/// The sum of the samples of `name` whose labels include all of `labels`
/// (None: no such sample).
fn sample(exposition: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let mut found = None;
    for line in exposition.lines().filter(|line| !line.starts_with('#')) {
        let Some((series, value)) = line.rsplit_once(' ') else { continue };
        let (series_name, series_labels) = series.split_once('{').unwrap_or((series, ""));
        if series_name != name {
            continue;
        }
        if labels.iter().all(|(key, value)| series_labels.contains(&format!("{key}=\"{value}\""))) {
            *found.get_or_insert(0.0) += value.parse::<f64>().unwrap();
        }
    }
    found
}

async fn scrape(admin_port: u16) -> String {
    let url = format!("http://127.0.0.1:{admin_port}/metrics");
    let response = reqwest::get(&url).await.unwrap();
    assert_eq!(response.status(), 200);
    response.text().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_after_a_short_run_count_what_happened() {
    // The in-process server offers nothing: dispatch runs on the replica, so that its metrics see it.
    let kitchen = Kitchen::open_with(|config| config.dispatch.enabled = false).await;
    let mut replica_config = kitchen.server.config.clone();
    replica_config.dispatch.enabled = true;
    replica_config.dispatch.poll_interval = Duration::from_millis(100);
    // Only the replica sends notifications.
    let provider = common::Provider::start().await;
    replica_config.notifications.provider_url = provider.url.clone();
    replica_config.notifications.poll_interval = Duration::from_millis(100);
    let replica = common::Replica::spawn_logging(&replica_config, "warn", None).await;
    let server = &kitchen.server;
    let restaurant_id = kitchen.restaurant.restaurant_id.clone();

    let livez = reqwest::get(format!("http://127.0.0.1:{}/livez", replica.admin_port)).await.unwrap();
    assert_eq!(livez.status(), 200);

    // The menu cache: a miss (the cached copy dropped), then a hit.
    let mut redis = server.stores.redis.connection();
    let _: () = redis::cmd("DEL").arg(format!("ff:menu:{restaurant_id}")).query_async(&mut redis).await.unwrap();
    let mut restaurants = RestaurantServiceClient::new(replica.channel.clone());
    for _ in 0..2 {
        restaurants.get_menu(pb::GetMenuRequest { restaurant_id: restaurant_id.clone() }).await.unwrap();
    }

    // The login limit: five wrong passwords, then refused outright.
    let mut accounts = AccountServiceClient::new(replica.channel.clone());
    let wrong =
        pb::LoginRequest { email: format!("{}@example.test", Uuid::new_v4().simple()), password: "nope".into() };
    for _ in 0..5 {
        let refused = accounts.login(wrong.clone()).await.unwrap_err();
        assert_eq!(refused.code(), tonic::Code::Unauthenticated);
    }
    let throttled = accounts.login(wrong).await.unwrap_err();
    assert_eq!(throttled.code(), tonic::Code::ResourceExhausted);

    // A driver at the restaurant: one good ping, one out of range.
    let driver = kitchen.driver(2).await;
    let mut app = DriverApp::connect(server.drivers_at(&replica, Some(&driver))).await;
    app.ping(1, (KITCHEN_LAT, KITCHEN_LNG), 0.5).await;
    app.ping(2, (200.0, KITCHEN_LNG), 0.4).await;
    app.until_durable(2).await;

    // An order placed and accepted on the replica is offered to the driver, who accepts.
    let mut orders =
        OrderServiceClient::with_interceptor(replica.channel.clone(), server.bearer(Some(&kitchen.customer)));
    let order_id = orders.create_order(kitchen.order_request()).await.unwrap().into_inner().order.unwrap().order_id;
    let mut staff =
        RestaurantServiceClient::with_interceptor(replica.channel.clone(), server.bearer(Some(&kitchen.staff)));
    let mut restaurant_sets = async |status: &str| {
        let request = pb::UpdateOrderStatusRequest {
            order_id: order_id.clone(),
            status: status.into(),
            reason: String::new(),
            prep_time: None,
        };
        staff.update_order_status(request).await.unwrap();
    };
    restaurant_sets("accepted").await;
    let mut drivers = server.drivers_at(&replica, Some(&driver));
    let offer = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            let state = drivers.get_driver_state(pb::GetDriverStateRequest::default()).await.unwrap().into_inner();
            if let Some(offer) = state.open_offers.into_iter().next() {
                break offer;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await
    .expect("the order was never offered to the driver");
    drivers.accept_offer(pb::AcceptOfferRequest { delivery_id: offer.delivery_id }).await.unwrap();

    // The customer tracks the order while the driver moves: every location
    // update that reaches the stream is one latency sample.
    let mut tracking = server
        .tracking_at(&replica, Some(&kitchen.customer))
        .track_order(pb::TrackOrderRequest {
            order_id: order_id.clone(),
            resume_after: 0,
            max_location_updates_per_second: 0,
        })
        .await
        .unwrap()
        .into_inner();
    assert!(matches!(tracking.message().await.unwrap().unwrap().payload, Some(Payload::Snapshot(_))));
    let pings = 3..=12u64;
    for seq in pings.clone() {
        app.ping(seq, north_of_kitchen(seq as f64), 0.0).await;
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    app.until_durable(*pings.end()).await;
    let mut locations = 0;
    // Until the stream has been quiet for a while: every update made has arrived.
    while let Ok(message) = tokio::time::timeout(Duration::from_millis(1500), tracking.message()).await {
        if let Some(Payload::DriverLocation(_)) = message.unwrap().unwrap().payload {
            locations += 1;
        }
    }
    assert!(locations > 0, "no location update reached the tracking stream");

    // Ready, picked up, and arrived at the customer: the arrival moves the order to DELIVERING.
    restaurant_sets("ready_for_pickup").await;
    drivers.mark_picked_up(pb::MarkPickedUpRequest { order_id: order_id.clone() }).await.unwrap();
    let arrived = pb::MarkArrivedRequest { order_id: order_id.clone(), stop: pb::DeliveryStop::Customer as i32 };
    drivers.mark_arrived(arrived).await.unwrap();

    // A notification sent by the replica's sender.
    let mut notifications = pb::notification_service_client::NotificationServiceClient::with_interceptor(
        replica.channel.clone(),
        server.bearer(Some(&kitchen.admin)),
    );
    let email = pb::SendNotificationRequest {
        recipient_id: kitchen.customer.user_id.to_string(),
        channel: pb::NotificationChannel::Email as i32,
        content: Some(pb::send_notification_request::Content::Message(pb::NotificationMessage {
            title: "Hello".into(),
            body: "Your order is on its way".into(),
        })),
        ..Default::default()
    };
    notifications.send_notification(email).await.unwrap();
    tokio::time::timeout(Duration::from_secs(10), async {
        while provider.accepted.lock().unwrap().is_empty() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("the notification was never sent");
    tokio::time::sleep(Duration::from_millis(300)).await;

    let text = scrape(replica.admin_port).await;
    let value = |name: &str, labels: &[(&str, &str)]| {
        sample(&text, name, labels).unwrap_or_else(|| panic!("no {name} {labels:?} in:\n{text}"))
    };
    let open = |method: &str| value("foodfast_grpc_server_open_streams", &[("grpc_method", method)]);
    assert_eq!(open("TrackOrder"), 1.0, "the tracking stream is open");
    assert_eq!(open("Connect"), 1.0, "the driver's stream is open");
    let handled = |method: &str, code: &str| {
        value("foodfast_grpc_server_handled_total", &[("grpc_method", method), ("grpc_code", code)])
    };
    assert_eq!(handled("CreateOrder", "OK"), 1.0);
    assert_eq!(handled("GetMenu", "OK"), 2.0);
    assert_eq!(handled("Login", "Unauthenticated"), 5.0);
    assert_eq!(handled("Login", "ResourceExhausted"), 1.0);
    assert_eq!(value("foodfast_grpc_server_handling_seconds_count", &[("grpc_method", "CreateOrder")]), 1.0);

    let accepted = 1.0 + pings.clone().count() as f64;
    assert_eq!(value("foodfast_pings_accepted_total", &[]), accepted);
    assert_eq!(value("foodfast_pings_rejected_total", &[("reason", "COORDINATES_OUT_OF_RANGE")]), 1.0);
    assert_eq!(value("foodfast_pings_acked_total", &[]), accepted, "every accepted ping was acked as durable");
    assert_eq!(value("foodfast_location_write_seconds_count", &[]), accepted, "one write per accepted ping");
    assert_eq!(value("foodfast_location_writer_queue_depth", &[]), 0.0, "nothing waits once all is durable");

    assert_eq!(
        value("foodfast_ping_to_tracking_seconds_count", &[]),
        locations as f64,
        "one latency sample per location update delivered to a tracking stream"
    );
    let slowest_bucket = value("foodfast_ping_to_tracking_seconds_bucket", &[("le", "1")]);
    assert_eq!(slowest_bucket, locations as f64, "every update reached the screen within a second");

    let transition = |from: &str, to: &str| value("foodfast_order_transitions_total", &[("from", from), ("to", to)]);
    assert_eq!(transition("new", "pending"), 1.0);
    assert_eq!(transition("pending", "confirmed"), 1.0);
    assert_eq!(transition("confirmed", "confirmed"), 1.0, "the driver assigned by the accepted offer");
    assert_eq!(transition("confirmed", "driver_assigned"), 1.0, "ready for pickup, with its driver");
    assert_eq!(transition("driver_assigned", "picked_up"), 1.0);
    assert_eq!(transition("picked_up", "delivering"), 1.0, "made by the arrival at the customer");
    assert_eq!(value("foodfast_dispatch_offers_total", &[]), 1.0);
    assert_eq!(value("foodfast_dispatch_offer_outcomes_total", &[("outcome", "accepted")]), 1.0);

    assert_eq!(value("foodfast_cache_requests_total", &[("cache", "menu"), ("result", "miss")]), 1.0);
    assert!(value("foodfast_cache_requests_total", &[("cache", "menu"), ("result", "hit")]) >= 1.0);
    assert_eq!(value("foodfast_rate_limited_total", &[("limit", "login")]), 1.0);
    let attempts =
        |outcome| value("foodfast_notification_attempts_total", &[("channel", "email"), ("outcome", outcome)]);
    assert_eq!(attempts("sent"), 1.0);
    assert_eq!(value("foodfast_notifications_pending", &[]), 0.0, "nothing waits once it is sent");

    // Closed streams leave the gauge.
    drop(tracking);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        sample(
            &scrape(replica.admin_port).await,
            "foodfast_grpc_server_open_streams",
            &[("grpc_method", "TrackOrder")]
        ),
        Some(0.0)
    );
}
