//! REST/JSON and Server-Sent Events through the gateway to a real FoodFast
//! server on the real stores (and the payment sandbox).

mod common;

use foodfast_domain::access::Role;
use std::time::Duration;

use common::{Kitchen, MAX_BODY, Stack};
use foodfast_gateway::config::LimitsConfig;
use futures::StreamExt;
use reqwest::StatusCode;
use serde_json::{Value, json};
use uuid::Uuid;

#[tokio::test]
async fn a_customer_finds_orders_and_follows_an_order_over_rest() {
    use reqwest::Method;
    let stack = Stack::start().await;
    let admin = stack.user(Role::Admin, None).await;
    let customer = stack.user(Role::Customer, None).await;

    let Kitchen { restaurant_id, staff, item_id } = stack.kitchen(&admin).await;

    let (status, found) = stack
        .call(Method::GET, "/api/v1/restaurants?lat=48.857&lng=2.352&radius_m=2000&cuisine=french", None, None)
        .await;
    assert_eq!(status, StatusCode::OK, "{found}");
    assert_eq!(found["restaurants"][0]["restaurantId"], restaurant_id.as_str(), "{found}");
    let (status, menu) =
        stack.call(Method::GET, &format!("/api/v1/restaurants/{restaurant_id}/menu"), None, None).await;
    assert_eq!((status, menu["categories"][0]["items"][0]["name"].as_str()), (StatusCode::OK, Some("Soupe")));

    let cart = json!({
        "restaurantId": restaurant_id,
        "items": [{"itemId": item_id, "quantity": 2}],
        "deliveryAddress": {"location": {"lat": 48.86, "lng": 2.3522}, "formatted": "2 Rue du Client"},
    });
    let (status, quote) = stack.call(Method::POST, "/api/v1/orders/quote", Some(&customer), Some(cart.clone())).await;
    assert_eq!(status, StatusCode::OK, "{quote}");
    assert_eq!(quote["price"]["subtotal"]["amount"], "16.00", "{quote}");

    let mut order = cart.clone();
    order["paymentMethodId"] = json!("pm_card_visa");
    let key = Uuid::new_v4().to_string();
    let place = || {
        stack
            .request(Method::POST, "/api/v1/orders", Some(&customer))
            .header("Idempotency-Key", &key)
            .json(&order)
            .send()
    };
    let first = place().await.unwrap();
    assert_eq!(first.status(), StatusCode::CREATED);
    let first: Value = first.json().await.unwrap();
    let second: Value = place().await.unwrap().json().await.unwrap();
    let order_id = first["order"]["orderId"].as_str().unwrap().to_string();
    assert_eq!(second["order"]["orderId"], order_id.as_str(), "the header is the idempotency key");
    let mut different = order.clone();
    different["customerNote"] = json!("ring twice");
    let reused = stack
        .request(Method::POST, "/api/v1/orders", Some(&customer))
        .header("Idempotency-Key", &key)
        .json(&different)
        .send()
        .await
        .unwrap();
    assert_eq!(reused.status(), StatusCode::CONFLICT, "the key was used for another request");

    let (status, got) = stack.call(Method::GET, &format!("/api/v1/orders/{order_id}"), Some(&customer), None).await;
    assert_eq!((status, got["order"]["status"].as_str()), (StatusCode::OK, Some("ORDER_STATUS_PENDING")));
    let (status, listed) = stack.call(Method::GET, "/api/v1/orders?page_size=5", Some(&customer), None).await;
    assert_eq!((status, listed["orders"][0]["orderId"].as_str()), (StatusCode::OK, Some(order_id.as_str())));

    // Tracking as Server-Sent Events: the snapshot carries the last seq as its id.
    let track = format!("/api/v1/orders/{order_id}/track");
    let response = stack.request(Method::GET, &track, Some(&customer)).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let mut events = SseReader::new(response);
    let (id, snapshot) = events.next_event().await;
    assert_eq!(id.as_deref(), Some("1"));
    assert_eq!(snapshot["snapshot"]["order"]["orderId"], order_id.as_str());
    drop(events);

    let status_path = format!("/api/v1/restaurants/orders/{order_id}");
    let patch = |status: &str| stack.call(Method::PATCH, &status_path, Some(&staff), Some(json!({"status": status})));
    assert_eq!(patch("accepted").await.0, StatusCode::OK);
    assert_eq!(patch("preparing").await.0, StatusCode::OK);
    // Reconnect as an EventSource would: from the last id, nothing lost, nothing twice.
    let response =
        stack.request(Method::GET, &track, Some(&customer)).header("Last-Event-ID", "1").send().await.unwrap();
    let mut events = SseReader::new(response);
    let (id, accepted) = events.next_event().await;
    assert_eq!((id.as_deref(), accepted["event"]["status"].as_str()), (Some("2"), Some("ORDER_STATUS_CONFIRMED")));
    let (id, preparing) = events.next_event().await;
    assert_eq!((id.as_deref(), preparing["event"]["status"].as_str()), (Some("3"), Some("ORDER_STATUS_PREPARING")));
    // A browser's EventSource cannot set headers: the token may come in the query, on streams only.
    let token = stack.token(&customer);
    let with_token = format!("{track}?access_token={token}");
    let response = stack.request(Method::GET, &with_token, None).header("Last-Event-ID", "2").send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let (id, replayed) = SseReader::new(response).next_event().await;
    assert_eq!((id.as_deref(), replayed["event"]["status"].as_str()), (Some("3"), Some("ORDER_STATUS_PREPARING")));
    let unary = format!("/api/v1/orders/{order_id}?access_token={token}");
    let (status, body) = stack.call(Method::GET, &unary, None, None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "not outside streams: {body}");

    let (status, cancelled) = stack
        .call(Method::POST, &format!("/api/v1/orders/{order_id}/cancel"), Some(&customer), Some(json!({"reason": "x"})))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "a customer cannot cancel once preparing: {cancelled}");
    assert_eq!(cancelled["code"], "FAILED_PRECONDITION");
    assert_eq!(cancelled["details"][0]["reason"], "ERROR_REASON_ILLEGAL_TRANSITION", "{cancelled}");
    assert_eq!(cancelled["details"][0]["metadata"]["status"], "ORDER_STATUS_PREPARING", "{cancelled}");

    // A finished order's stream says `end` (an EventSource would otherwise
    // reconnect to it forever), also on a reconnect after the last event.
    let placed = stack.request(Method::POST, "/api/v1/orders", Some(&customer));
    let placed = placed.header("Idempotency-Key", Uuid::new_v4().to_string()).json(&order).send().await.unwrap();
    assert_eq!(placed.status(), StatusCode::CREATED);
    let rejected: Value = placed.json().await.unwrap();
    let rejected_id = rejected["order"]["orderId"].as_str().unwrap();
    let reject = json!({"status": "rejected", "reason": "out of soup"});
    let (status, body) = stack
        .call(Method::PATCH, &format!("/api/v1/restaurants/orders/{rejected_id}"), Some(&staff), Some(reject))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let track = format!("/api/v1/orders/{rejected_id}/track");
    let mut events = SseReader::new(stack.request(Method::GET, &track, Some(&customer)).send().await.unwrap());
    let (id, snapshot) = events.next_event().await;
    assert_eq!(snapshot["snapshot"]["order"]["status"], "ORDER_STATUS_REJECTED", "{snapshot}");
    assert_eq!(events.next_named_event().await, (Some("end".to_string()), None, json!({})));
    let reconnect = stack.request(Method::GET, &track, Some(&customer)).header("Last-Event-ID", id.unwrap());
    let mut events = SseReader::new(reconnect.send().await.unwrap());
    assert_eq!(events.next_named_event().await, (Some("end".to_string()), None, json!({})));
}

#[tokio::test]
async fn mistakes_get_4xx_json_that_names_them_and_never_reach_the_server() {
    use reqwest::Method;
    let stack = Stack::start().await;
    let customer = stack.user(Role::Customer, None).await;
    let order = format!("/api/v1/orders/{}", Uuid::new_v4());

    let (status, body) = stack.call(Method::GET, "/api/v1/nothing-here", None, None).await;
    assert_eq!((status, body["code"].as_str()), (StatusCode::NOT_FOUND, Some("NOT_FOUND")));
    let response = stack.request(Method::DELETE, &format!("{order}/cancel"), None).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(response.headers()["allow"], "POST, OPTIONS");
    let options = stack.request(Method::OPTIONS, &format!("{order}/cancel"), None).send().await.unwrap();
    assert_eq!(options.status(), StatusCode::NO_CONTENT);
    assert_eq!(options.headers()["allow"], "POST, OPTIONS");
    let search = "/api/v1/restaurants?lat=48.857&lng=2.352&radius_m=2000";
    let head = stack.request(Method::HEAD, search, None).send().await.unwrap();
    assert_eq!(head.status(), StatusCode::OK, "HEAD is GET without the body");
    assert_eq!(head.headers()["content-type"], "application/json");
    let response = stack.request(Method::TRACE, search, None).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(response.headers()["allow"], "GET, POST, HEAD, OPTIONS");
    let (status, body) = stack.call(Method::GET, &order, None, None).await;
    assert_eq!((status, body["code"].as_str()), (StatusCode::UNAUTHORIZED, Some("UNAUTHENTICATED")));
    let (status, body) = stack.call(Method::GET, "/api/v1/orders/not-a-uuid", Some(&customer), None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body["message"].as_str().unwrap().contains("order_id"), "{body}");
    let (status, _) = stack.call(Method::GET, &order, Some(&customer), None).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "someone else's order, or none");

    let quote = "/api/v1/orders/quote";
    for (body, mentions) in [("{", "JSON"), (r#"{"restaurantId": 7}"#, "restaurantId"), (r#"{"tip": 1}"#, "tip")] {
        let response = stack.request(Method::POST, quote, Some(&customer)).body(body).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{body}");
        let json: Value = response.json().await.unwrap();
        assert!(json["message"].as_str().unwrap().contains(mentions), "{body}: {json}");
    }
    let huge = "x".repeat(MAX_BODY + 1);
    let response = stack.request(Method::POST, quote, Some(&customer)).body(huge).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let (status, body) = stack.call(Method::GET, "/api/v1/restaurants?radius_m=many", None, None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
}

/// Reads `text/event-stream` events: their id and JSON data.
#[tokio::test]
async fn an_answer_larger_than_the_gateway_takes_is_its_own_error_not_the_clients() {
    use reqwest::Method;
    let stack = Stack::start_with(|config| config.http.max_response_bytes = 2048).await;
    let admin = stack.user(Role::Admin, None).await;
    let Kitchen { restaurant_id, staff, .. } = stack.kitchen(&admin).await;
    let items: Vec<Value> = (0..60)
        .map(|i| json!({"name": format!("Dish {i}"), "price": {"currencyCode": "EUR", "amount": "8.00"}}))
        .collect();
    let menu = json!({"categories": [{"name": "Mains", "items": items}]});
    let path = format!("/api/v1/restaurants/{restaurant_id}/menu");
    let (status, body) = stack.call(Method::PUT, &path, Some(&staff), Some(menu)).await;
    assert_eq!((status, body["code"].as_str()), (StatusCode::INTERNAL_SERVER_ERROR, Some("INTERNAL")), "{body}");
    assert!(body["message"].as_str().unwrap().contains("http.max_response_bytes"), "{body}");
}

struct SseReader {
    chunks: futures::stream::BoxStream<'static, reqwest::Result<bytes::Bytes>>,
    buffer: String,
}

impl SseReader {
    fn new(response: reqwest::Response) -> Self {
        Self { chunks: response.bytes_stream().boxed(), buffer: String::new() }
    }

    /// The next message event: its id and data.
    async fn next_event(&mut self) -> (Option<String>, Value) {
        let (name, id, data) = self.next_named_event().await;
        assert_eq!(name, None, "{data}");
        (id, data)
    }

    /// The next event with data: its `event:` name, id and data.
    async fn next_named_event(&mut self) -> (Option<String>, Option<String>, Value) {
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                let (mut name, mut id, mut data) = (None, None, None);
                for line in block.lines() {
                    if let Some(value) = line.strip_prefix("event:") {
                        name = Some(value.trim().to_string());
                    } else if let Some(value) = line.strip_prefix("id:") {
                        id = Some(value.trim().to_string());
                    } else if let Some(value) = line.strip_prefix("data:") {
                        data = Some(serde_json::from_str(value.trim()).unwrap());
                    }
                }
                if let Some(data) = data {
                    return (name, id, data);
                }
                continue;
            }
            let chunk = tokio::time::timeout(Duration::from_secs(15), self.chunks.next())
                .await
                .expect("the event stream went silent")
                .expect("the event stream ended")
                .unwrap();
            self.buffer.push_str(std::str::from_utf8(&chunk).unwrap());
        }
    }
}

#[tokio::test]
async fn too_many_requests_get_429_with_retry_after_and_order_placement_is_tighter() {
    use std::num::NonZeroU32;

    use reqwest::Method;
    let n = |value| NonZeroU32::new(value).unwrap();
    let stack = Stack::start_with(|config| {
        config.limits = LimitsConfig {
            per_ip_per_second: n(1),
            per_caller_per_second: n(1),
            burst_seconds: n(6),
            orders_per_minute: n(1),
            orders_burst: n(2),
            ..LimitsConfig::default()
        }
    })
    .await;
    let customer = stack.user(Role::Customer, None).await;
    let stack = &stack;
    let customer = &customer;
    let statuses = |count| async move {
        let mut statuses = Vec::new();
        for _ in 0..count {
            let response =
                stack.request(Method::POST, "/api/v1/orders", Some(customer)).body("{}").send().await.unwrap();
            statuses.push((response.status(), response.headers().get("retry-after").cloned()));
        }
        statuses
    };
    let placed = statuses(3).await;
    assert_eq!(placed[0].0, StatusCode::BAD_REQUEST, "the first two reach the server (and fail validation)");
    assert_eq!(placed[1].0, StatusCode::BAD_REQUEST);
    assert_eq!(placed[2].0, StatusCode::TOO_MANY_REQUESTS, "one order a minute after a burst of two");
    let retry_after: u64 = placed[2].1.as_ref().unwrap().to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry_after), "{retry_after}");

    // Over grpc-web the same limit holds, answered the grpc-web way.
    use foodfast_api::v1 as pb;
    let http1 = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new()).build_http();
    let transport = tower::ServiceBuilder::new().layer(tonic_web::GrpcWebClientLayer::new()).service(http1);
    let mut orders = pb::order_service_client::OrderServiceClient::with_origin(transport, stack.base.parse().unwrap());
    let mut request = tonic::Request::new(pb::CreateOrderRequest::default());
    request.metadata_mut().insert("authorization", format!("Bearer {}", stack.token(customer)).parse().unwrap());
    let refused = orders.create_order(request).await.unwrap_err();
    assert_eq!(refused.code(), tonic::Code::ResourceExhausted, "{refused:?}");
    let wait = tonic_types::StatusExt::get_error_details(&refused).retry_info().and_then(|info| info.retry_delay);
    assert!(wait.is_some_and(|wait| wait.as_secs() >= 1), "{refused:?}");

    // The IP's bucket (6) is nearly spent too: plain reads are refused after it.
    let mut last = StatusCode::OK;
    for _ in 0..6 {
        last = stack
            .request(Method::GET, "/api/v1/restaurants?lat=1&lng=1&radius_m=100", None)
            .send()
            .await
            .unwrap()
            .status();
    }
    assert_eq!(last, StatusCode::TOO_MANY_REQUESTS);
}

#[tokio::test]
async fn a_driver_reports_a_batch_of_pings_and_hears_which_were_rejected() {
    use reqwest::Method;
    let stack = Stack::start().await;
    stack.migrate_scylla().await;
    let driver = stack.user(Role::Driver, None).await;
    let at = |seconds_ago: i64| (chrono::Utc::now() - chrono::Duration::seconds(seconds_ago)).to_rfc3339();
    let pings = json!({"pings": [
        {"seq": "1", "lat": 48.857, "lng": 2.352, "speedMps": 4.5, "recordedAt": at(2)},
        {"seq": "2", "lat": 91.0, "lng": 2.352, "recordedAt": at(1)},
    ]});
    let (status, answer) = stack.call(Method::POST, "/api/v1/drivers/location", Some(&driver), Some(pings)).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["ack"]["durableSeq"], "2", "answered once every ping is stored or rejected: {answer}");
    let rejected = &answer["ack"]["rejected"];
    assert_eq!((rejected[0]["seq"].as_str(), rejected.as_array().unwrap().len()), (Some("2"), 1), "{answer}");
    assert_eq!(rejected[0]["reason"], "PING_REJECTION_REASON_COORDINATES_OUT_OF_RANGE", "{answer}");
    assert!(rejected[0]["detail"].as_str().unwrap().contains("lat 91"), "the detail names the value: {answer}");

    let customer = stack.user(Role::Customer, None).await;
    let one = json!({"pings": [{"seq": "3", "lat": 48.857, "lng": 2.352, "recordedAt": at(0)}]});
    let (status, _) = stack.call(Method::POST, "/api/v1/drivers/location", Some(&customer), Some(one)).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "drivers only");
}

#[tokio::test]
async fn staff_watch_their_orders_as_events_and_resume_after_the_last_cursor() {
    use reqwest::Method;
    let stack = Stack::start().await;
    let admin = stack.user(Role::Admin, None).await;
    let customer = stack.user(Role::Customer, None).await;
    let Kitchen { restaurant_id, staff, item_id } = stack.kitchen(&admin).await;
    let watch = format!("/api/v1/restaurants/{restaurant_id}/orders/watch");
    let response = stack.request(Method::GET, &watch, Some(&staff)).send().await.unwrap();
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let mut events = SseReader::new(response);
    let (_, caught_up) = events.next_event().await;
    assert_eq!(caught_up["caughtUp"]["openOrders"], 0, "{caught_up}");

    let order = json!({
        "restaurantId": restaurant_id,
        "items": [{"itemId": item_id, "quantity": 2}],
        "deliveryAddress": {"location": {"lat": 48.86, "lng": 2.3522}, "formatted": "2 Rue du Client"},
        "paymentMethodId": "pm_card_visa",
        "idempotencyKey": Uuid::new_v4().to_string(),
    });
    let (_, placed) = stack.call(Method::POST, "/api/v1/orders", Some(&customer), Some(order)).await;
    let order_id = placed["order"]["orderId"].as_str().unwrap().to_string();
    let (cursor, new_order) = events.next_event().await;
    assert_eq!(new_order["change"]["order"]["orderId"], order_id.as_str(), "{new_order}");
    let cursor = cursor.expect("a change carries its cursor as the event id");
    drop(events);

    let status_path = format!("/api/v1/restaurants/orders/{order_id}");
    for status in ["accepted", "preparing"] {
        let (code, _) = stack.call(Method::PATCH, &status_path, Some(&staff), Some(json!({"status": status}))).await;
        assert_eq!(code, StatusCode::OK);
    }
    let response =
        stack.request(Method::GET, &watch, Some(&staff)).header("Last-Event-ID", cursor).send().await.unwrap();
    let mut events = SseReader::new(response);
    let mut statuses = Vec::new();
    while statuses.len() < 2 {
        let (id, message) = events.next_event().await;
        if let Some(status) = message["change"]["event"]["status"].as_str() {
            assert!(id.is_some(), "{message}");
            statuses.push(status.to_string());
        }
    }
    assert_eq!(statuses, ["ORDER_STATUS_CONFIRMED", "ORDER_STATUS_PREPARING"], "the missed changes, once, in order");

    let (status, _) =
        stack.request(Method::GET, &watch, Some(&customer)).send().await.map(|r| (r.status(), ())).unwrap();
    assert_eq!(status, StatusCode::FORBIDDEN, "another restaurant's feed is not a customer's");
}

#[tokio::test]
async fn a_customer_registers_signs_in_and_reads_its_profile_over_rest() {
    use reqwest::Method;
    let stack = Stack::start().await;
    let email = format!("{}@example.test", Uuid::new_v4().simple());
    let registration = json!({"email": email, "password": "correct horse battery", "displayName": "Ana B."});
    let (status, registered) = stack.call(Method::POST, "/api/v1/auth/register", None, Some(registration)).await;
    assert_eq!(status, StatusCode::OK, "{registered}");
    assert_eq!(registered["profile"]["role"], "ROLE_CUSTOMER");

    let (status, wrong) = stack
        .call(Method::POST, "/api/v1/auth/login", None, Some(json!({"email": email, "password": "nope nope nope"})))
        .await;
    assert_eq!((status, wrong["code"].as_str()), (StatusCode::UNAUTHORIZED, Some("UNAUTHENTICATED")));
    assert_eq!(wrong["details"][0]["reason"], "ERROR_REASON_INVALID_CREDENTIALS");
    let login = json!({"email": email, "password": "correct horse battery"});
    let (status, signed_in) = stack.call(Method::POST, "/api/v1/auth/login", None, Some(login)).await;
    assert_eq!(status, StatusCode::OK, "{signed_in}");
    let access_token = signed_in["tokens"]["accessToken"].as_str().unwrap();
    let me = stack.http.get(format!("{}/api/v1/me", stack.base)).bearer_auth(access_token).send().await.unwrap();
    assert_eq!(me.status(), StatusCode::OK);
    let me: Value = me.json().await.unwrap();
    assert_eq!(me["profile"]["email"], email.as_str());
}

#[tokio::test]
async fn a_driver_declines_and_accepts_offers_over_rest() {
    use foodfast_api::v1 as pb;
    use futures::StreamExt;
    use reqwest::Method;
    let stack = Stack::start().await;
    stack.migrate_scylla().await;
    let admin = stack.user(Role::Admin, None).await;
    let customer = stack.user(Role::Customer, None).await;
    let Kitchen { restaurant_id, staff, item_id } = stack.kitchen(&admin).await;
    let driver = stack.user(Role::Driver, None).await;
    stack.users.add_driver(driver.user_id, "paris", "bike", 1).await.unwrap();

    // Offers reach drivers whose app holds its Connect stream open (a native app, straight to the server).
    let channel = tonic::transport::Channel::from_shared(format!("http://{}", stack.server_addr)).unwrap();
    let mut client = pb::driver_service_client::DriverServiceClient::new(channel.connect().await.unwrap());
    let now = chrono::Utc::now();
    let opening = [
        pb::connect_request::Payload::Hello(pb::Hello {
            app_version: "rest test".into(),
            availability: pb::DriverAvailability::Online as i32,
        }),
        pb::connect_request::Payload::Ping(pb::LocationPing {
            seq: 1,
            lat: 48.858,
            lng: 2.3522,
            recorded_at: Some(prost_types::Timestamp { seconds: now.timestamp(), nanos: 0 }),
            ..Default::default()
        }),
    ]
    .map(|payload| pb::ConnectRequest { payload: Some(payload) });
    let mut request = tonic::Request::new(futures::stream::iter(opening).chain(futures::stream::pending()));
    request.metadata_mut().insert("authorization", format!("Bearer {}", stack.token(&driver)).parse().unwrap());
    let mut stream = client.connect(request).await.unwrap().into_inner();
    let mut next_offer = async || loop {
        let message = tokio::time::timeout(std::time::Duration::from_secs(20), stream.next()).await;
        if let pb::connect_response::Payload::Offer(offer) = message.unwrap().unwrap().unwrap().payload.unwrap() {
            return offer;
        }
    };

    let confirmed_order = async || {
        let order = json!({
            "restaurantId": restaurant_id,
            "items": [{"itemId": item_id, "quantity": 1}],
            "deliveryAddress": {"location": {"lat": 48.86, "lng": 2.3522}, "formatted": "2 Rue du Client"},
            "paymentMethodId": "pm_card_visa",
        });
        let placed = stack
            .request(Method::POST, "/api/v1/orders", Some(&customer))
            .header("Idempotency-Key", Uuid::new_v4().to_string())
            .json(&order)
            .send()
            .await
            .unwrap();
        let placed: Value = placed.json().await.unwrap();
        let order_id = placed["order"]["orderId"].as_str().unwrap().to_string();
        let path = format!("/api/v1/restaurants/orders/{order_id}");
        let (status, _) = stack.call(Method::PATCH, &path, Some(&staff), Some(json!({"status": "accepted"}))).await;
        assert_eq!(status, StatusCode::OK);
        order_id
    };

    let first = confirmed_order().await;
    let offer = next_offer().await;
    assert_eq!(offer.order_id, first);
    let decline = format!("/api/v1/drivers/deliveries/{}/decline", offer.delivery_id);
    let (status, declined) =
        stack.call(Method::POST, &decline, Some(&driver), Some(json!({"reason": "flat tyre"}))).await;
    assert_eq!((status, declined["deliveryId"].as_str()), (StatusCode::OK, Some(offer.delivery_id.as_str())));
    let accept_declined = format!("/api/v1/drivers/deliveries/{}/accept", offer.delivery_id);
    let (status, refused) = stack.call(Method::POST, &accept_declined, Some(&driver), Some(json!({}))).await;
    assert!(status.is_client_error(), "a declined offer cannot be accepted: {status} {refused}");
    assert_eq!(refused["code"], "FAILED_PRECONDITION", "{refused}");
    assert!(refused.to_string().contains("ERROR_REASON_OFFER_CLOSED"), "the reason is in the details: {refused}");

    let second = confirmed_order().await;
    let offer = next_offer().await;
    assert_eq!(offer.order_id, second);
    let accept = format!("/api/v1/drivers/deliveries/{}/accept", offer.delivery_id);
    let (status, accepted) = stack.call(Method::POST, &accept, Some(&driver), Some(json!({}))).await;
    assert_eq!(status, StatusCode::OK, "{accepted}");
    assert_eq!(accepted["orderId"], second.as_str(), "{accepted}");
    assert_eq!(accepted["customerAddress"]["formatted"], "2 Rue du Client", "the full drop-off once accepted");
    let (status, order) = stack.call(Method::GET, &format!("/api/v1/orders/{second}"), Some(&customer), None).await;
    assert_eq!(
        (status, order["order"]["driver"]["driverId"].as_str()),
        (StatusCode::OK, Some(driver.user_id.to_string().as_str()))
    );
}

#[tokio::test]
async fn anyone_follows_announcements_as_events_that_an_admin_publishes_over_rest() {
    use reqwest::Method;
    let stack = Stack::start().await;
    let admin = stack.user(Role::Admin, None).await;
    let watch = "/api/v1/announcements/watch";
    let response = stack.request(Method::GET, watch, None).send().await.unwrap();
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let mut events = SseReader::new(response);

    let expires_at = (chrono::Utc::now() + chrono::TimeDelta::hours(1)).to_rfc3339();
    let mut cursors = Vec::new();
    for title in ["Rain in Paris", "Back to normal"] {
        let announcement = json!({"title": title, "body": "Deliveries may be late.", "expiresAt": expires_at});
        let (status, published) =
            stack.call(Method::POST, "/api/v1/announcements", Some(&admin), Some(announcement)).await;
        assert_eq!(status, StatusCode::OK, "{published}");
        assert_eq!(published["announcement"]["severity"], "ANNOUNCEMENT_SEVERITY_INFO", "unspecified is info");
        let (id, event) = events.next_event().await;
        assert_eq!(event["announcement"]["title"], title, "{event}");
        cursors.push(id.expect("an announcement carries its cursor as the event id"));
    }
    drop(events);

    let response =
        stack.request(Method::GET, watch, None).header("Last-Event-ID", cursors[0].as_str()).send().await.unwrap();
    let (id, event) = SseReader::new(response).next_event().await;
    assert_eq!((id.as_deref(), &event["announcement"]["title"]), (Some(cursors[1].as_str()), &json!("Back to normal")));

    let (status, body) = stack
        .call(
            Method::POST,
            "/api/v1/announcements",
            None,
            Some(json!({"title": "t", "body": "b", "expiresAt": expires_at})),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
}

#[tokio::test]
async fn staff_upload_a_menu_photo_as_the_body_of_a_post_and_see_it_on_the_menu() {
    use reqwest::Method;
    let stack = Stack::start().await;
    let admin = stack.user(Role::Admin, None).await;
    let customer = stack.user(Role::Customer, None).await;
    let Kitchen { restaurant_id, staff, item_id } = stack.kitchen(&admin).await;
    let photo = common::photo_png(900, 700);
    assert!(photo.len() > 4 * MAX_BODY, "far more than the JSON body limit: the upload is streamed");
    let path = format!("/api/v1/uploads?targetKind=IMAGE_TARGET_KIND_MENU_ITEM&targetId={item_id}&fileName=soupe.png");
    let post = |caller, body: Vec<u8>| {
        stack.request(Method::POST, &path, Some(caller)).header("content-type", "image/png").body(body).send()
    };

    let response = post(&staff, photo.clone()).await.unwrap();
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let location = response.headers()["location"].to_str().unwrap().to_string();
    let accepted: Value = response.json().await.unwrap();
    let job_id = accepted["jobId"].as_str().unwrap();
    assert_eq!(location, format!("/api/v1/uploads/{job_id}"), "Location is the job to poll");

    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let job = loop {
        let (status, polled) = stack.call(Method::GET, &location, Some(&staff), None).await;
        assert_eq!(status, StatusCode::OK, "{polled}");
        match polled["job"]["state"].as_str().unwrap() {
            "UPLOAD_JOB_STATE_SUCCEEDED" => break polled["job"].clone(),
            "UPLOAD_JOB_STATE_QUEUED" | "UPLOAD_JOB_STATE_PROCESSING" => {}
            other => panic!("the job ended {other}: {polled}"),
        }
        assert!(tokio::time::Instant::now() < deadline, "the job is still running after 30 s: {polled}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let result_url = job["resultUrl"].as_str().unwrap();
    assert!(!result_url.is_empty(), "{job}");
    let (status, menu) =
        stack.call(Method::GET, &format!("/api/v1/restaurants/{restaurant_id}/menu"), None, None).await;
    assert_eq!(status, StatusCode::OK, "{menu}");
    assert_eq!(menu["categories"][0]["items"][0]["imageUrl"], result_url, "the menu shows the processed photo");

    // Only the restaurant's staff change its pictures.
    let response = post(&customer, photo.clone()).await.unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    let refused: Value = response.json().await.unwrap();
    assert_eq!(refused["code"], "PERMISSION_DENIED", "{refused}");

    // A digest that does not match the bytes: nothing is queued.
    let response = stack
        .request(Method::POST, &format!("{path}&sha256={}", "0".repeat(64)), Some(&staff))
        .header("content-type", "image/png")
        .body(photo.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let refused: Value = response.json().await.unwrap();
    assert!(refused["message"].as_str().unwrap().contains("SHA-256"), "{refused}");

    // Without Content-Length (a chunked body) the size is unknown up front.
    let pieces = photo.chunks(64 * 1024).map(|piece| Ok::<_, std::io::Error>(piece.to_vec())).collect::<Vec<_>>();
    let response = stack
        .request(Method::POST, &path, Some(&staff))
        .header("content-type", "image/png")
        .body(reqwest::Body::wrap_stream(futures::stream::iter(pieces)))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::LENGTH_REQUIRED);
    let refused: Value = response.json().await.unwrap();
    assert!(refused["message"].as_str().unwrap().contains("Content-Length"), "{refused}");

    let (status, wrong_verb) = stack.call(Method::GET, "/api/v1/uploads", Some(&staff), None).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED, "{wrong_verb}");
}
