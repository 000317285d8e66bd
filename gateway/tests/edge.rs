//! What the gateway does at the edge, before and around the server: token
//! checks, request ids, deadlines, CORS, and the payment-declined status.

mod common;

use foodfast_domain::access::Role;
use std::time::Duration;

use common::{Stack, order_body as order};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

#[tokio::test]
async fn tokens_the_gateway_does_not_accept_stop_there_with_401() {
    // The gateway knows only a newer key: the server would take this token, the edge does not.
    let stack = Stack::start_with(|config| {
        config.auth.keys = vec!["newer:another-signing-key-that-is-long-enough".into()];
    })
    .await;
    let customer = stack.user(Role::Customer, None).await;
    let (status, body) = stack.call(Method::GET, "/api/v1/orders", Some(&customer), None).await;
    assert_eq!((status, body["code"].as_str()), (StatusCode::UNAUTHORIZED, Some("UNAUTHENTICATED")));
    assert!(body["message"].as_str().unwrap().contains("\"test\" is not accepted"), "{body}");
    let response = stack
        .http
        .get(format!("{}/api/v1/orders", stack.base))
        .header("authorization", "Basic x")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(response.headers()["www-authenticate"], "Bearer");

    // grpc-web callers get the status in grpc-web form.
    use foodfast_api::v1 as pb;
    let http1 = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new()).build_http();
    let transport = tower::ServiceBuilder::new().layer(tonic_web::GrpcWebClientLayer::new()).service(http1);
    let mut orders = pb::order_service_client::OrderServiceClient::with_origin(transport, stack.base.parse().unwrap());
    let mut request = tonic::Request::new(pb::ListOrdersRequest::default());
    let token = stack.token(&customer);
    request.metadata_mut().insert("authorization", format!("Bearer {token}").parse().unwrap());
    let refused = orders.list_orders(request).await.unwrap_err();
    assert_eq!(refused.code(), tonic::Code::Unauthenticated, "{refused:?}");
}

#[tokio::test]
async fn an_expired_token_is_told_to_refresh_yet_does_not_block_public_calls() {
    let stack = Stack::start().await;
    let customer = stack.user(Role::Customer, None).await;
    let keys = foodfast_auth::Tokens::new(&[foodfast_auth::TokenKey::parse(common::KEY).unwrap()]);
    let expired = keys.mint(&customer, Duration::ZERO).unwrap();
    tokio::time::sleep(Duration::from_secs(6)).await; // past the 5 s leeway

    // A call that needs a caller: refresh it, over REST and grpc-web.
    let response = stack.http.get(format!("{}/api/v1/orders", stack.base)).bearer_auth(&expired).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["details"][0]["reason"], "ERROR_REASON_TOKEN_EXPIRED", "{body}");
    use foodfast_api::v1 as pb;
    let http1 = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new()).build_http();
    let transport = tower::ServiceBuilder::new().layer(tonic_web::GrpcWebClientLayer::new()).service(http1);
    let mut orders = pb::order_service_client::OrderServiceClient::with_origin(transport, stack.base.parse().unwrap());
    let mut request = tonic::Request::new(pb::ListOrdersRequest::default());
    request.metadata_mut().insert("authorization", format!("Bearer {expired}").parse().unwrap());
    let refused = orders.list_orders(request).await.unwrap_err();
    use tonic_types::StatusExt;
    let reason = refused.get_error_details().error_info().map(|info| info.reason.clone());
    assert_eq!(reason.as_deref(), Some("ERROR_REASON_TOKEN_EXPIRED"), "{refused:?}");

    // A public call with the same token attached goes through: an app can refresh and read.
    let response = stack
        .http
        .post(format!("{}/api/v1/auth/refresh", stack.base))
        .bearer_auth(&expired)
        .json(&json!({"refreshToken": "not-a-refresh-token"}))
        .send()
        .await
        .unwrap();
    let body: Value = response.json().await.unwrap();
    assert!(
        body["message"].as_str().unwrap_or("").contains("refresh token"),
        "the server judged the refresh token: {body}"
    );
    let search =
        stack.http.get(format!("{}/api/v1/restaurants?lat=48.857&lng=2.352", stack.base)).bearer_auth(&expired);
    assert_eq!(search.send().await.unwrap().status(), StatusCode::OK);
}

#[tokio::test]
async fn every_answer_carries_a_request_id_the_client_may_choose() {
    let stack = Stack::start().await;
    let url = format!("{}/api/v1/restaurants/{}/menu", stack.base, uuid::Uuid::new_v4());
    let made = stack.http.get(&url).send().await.unwrap();
    let made = made.headers()["x-request-id"].to_str().unwrap().to_string();
    assert!(uuid::Uuid::parse_str(&made).is_ok(), "a new id: {made}");
    let kept = stack.http.get(&url).header("x-request-id", "checkout-42").send().await.unwrap();
    assert_eq!(kept.headers()["x-request-id"], "checkout-42");
    let odd = stack.http.get(&url).header("x-request-id", "has spaces").send().await.unwrap();
    assert_ne!(odd.headers()["x-request-id"], "has spaces", "only sane ids are kept");
}

#[tokio::test]
async fn a_declined_payment_is_402_with_its_reason() {
    let stack = Stack::start().await;
    let admin = stack.user(Role::Admin, None).await;
    let customer = stack.user(Role::Customer, None).await;
    let kitchen = stack.kitchen(&admin).await;
    let body = order(&kitchen, "pm_card_declined", "declined-order-1");
    let (status, body) = stack.call(Method::POST, "/api/v1/orders", Some(&customer), Some(body)).await;
    assert_eq!(status, StatusCode::PAYMENT_REQUIRED, "{body}");
    assert_eq!(body["code"], "FAILED_PRECONDITION");
    assert_eq!(body["details"][0]["reason"], "ERROR_REASON_PAYMENT_DECLINED", "{body}");
    assert_eq!(body["details"][0]["domain"], "foodfast.v1");
}

#[tokio::test]
async fn a_call_past_its_deadline_is_504() {
    let stack = Stack::start_with(|config| config.http.request_timeout = Duration::from_secs(1)).await;
    let admin = stack.user(Role::Admin, None).await;
    let customer = stack.user(Role::Customer, None).await;
    let kitchen = stack.kitchen(&admin).await;
    // The sandbox holds this payment for 30 s.
    let body = order(&kitchen, "pm_provider_timeout", "slow-order-1");
    let (status, body) = stack.call(Method::POST, "/api/v1/orders", Some(&customer), Some(body)).await;
    assert_eq!((status, body["code"].as_str()), (StatusCode::GATEWAY_TIMEOUT, Some("DEADLINE_EXCEEDED")), "{body}");
}

#[tokio::test]
async fn browsers_on_configured_origins_may_call_and_read_grpc_web_trailers() {
    let stack = Stack::start_with(|config| config.http.cors_allowed_origins = vec!["https://app.example".into()]).await;
    let preflight = |origin: &'static str| {
        stack
            .http
            .request(Method::OPTIONS, format!("{}/api/v1/orders", stack.base))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "authorization, idempotency-key, content-type")
            .send()
    };
    let allowed = preflight("https://app.example").await.unwrap();
    assert!(allowed.status().is_success(), "{}", allowed.status());
    assert_eq!(allowed.headers()["access-control-allow-origin"], "https://app.example");
    let headers = allowed.headers()["access-control-allow-headers"].to_str().unwrap().to_string();
    assert!(headers.contains("idempotency-key") && headers.contains("authorization"), "{headers}");
    let foreign = preflight("https://elsewhere.example").await.unwrap();
    assert!(foreign.headers().get("access-control-allow-origin").is_none());

    let url = format!("{}/api/v1/restaurants/{}/menu", stack.base, uuid::Uuid::new_v4());
    let read = stack.http.get(url).header("origin", "https://app.example").send().await.unwrap();
    assert_eq!(read.headers()["access-control-allow-origin"], "https://app.example");
    let exposed = read.headers()["access-control-expose-headers"].to_str().unwrap();
    assert!(exposed.contains("grpc-status") && exposed.contains("x-request-id"), "{exposed}");
}

#[tokio::test]
async fn conflicts_refused_moves_and_an_unready_store_map_to_409_422_and_503() {
    let stack = Stack::start().await; // Cassandra keyspace deliberately not migrated
    let admin = stack.user(Role::Admin, None).await;
    let customer = stack.user(Role::Customer, None).await;
    let driver = stack.user(Role::Driver, None).await;
    let kitchen = stack.kitchen(&admin).await;

    let email = format!("{}@example.test", uuid::Uuid::new_v4().simple());
    let account = json!({"email": email, "password": "correct horse battery", "displayName": "Ana"});
    let (status, _) = stack.call(Method::POST, "/api/v1/auth/register", None, Some(account.clone())).await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = stack.call(Method::POST, "/api/v1/auth/register", None, Some(account)).await;
    assert_eq!((status, body["code"].as_str()), (StatusCode::CONFLICT, Some("ALREADY_EXISTS")), "{body}");

    let (_, placed) = stack
        .call(Method::POST, "/api/v1/orders", Some(&customer), Some(order(&kitchen, "pm_card_visa", "order-422")))
        .await;
    let path = format!("/api/v1/restaurants/orders/{}", placed["order"]["orderId"].as_str().unwrap());
    let (status, body) =
        stack.call(Method::PATCH, &path, Some(&kitchen.staff), Some(json!({"status": "preparing"}))).await;
    assert_eq!((status, body["code"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("FAILED_PRECONDITION")));
    assert_eq!(body["details"][0]["reason"], "ERROR_REASON_ILLEGAL_TRANSITION", "{body}");

    let at = chrono::Utc::now().to_rfc3339();
    let ping = json!({"pings": [{"seq": "1", "lat": 48.857, "lng": 2.352, "recordedAt": at}]});
    let (status, body) = stack.call(Method::POST, "/api/v1/drivers/location", Some(&driver), Some(ping)).await;
    assert_eq!((status, body["code"].as_str()), (StatusCode::SERVICE_UNAVAILABLE, Some("UNAVAILABLE")), "{body}");
}

#[tokio::test]
async fn the_request_id_reaches_the_server_and_its_audit_trail() {
    let stack = Stack::start().await;
    let admin = stack.user(Role::Admin, None).await;
    let customer = stack.user(Role::Customer, None).await;
    let kitchen = stack.kitchen(&admin).await;
    let response = stack
        .request(Method::POST, "/api/v1/orders", Some(&customer))
        .header("x-request-id", "checkout-7f3a")
        .json(&order(&kitchen, "pm_card_visa", "traced-order-1"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    let placed: Value = response.json().await.unwrap();
    let order_id = placed["order"]["orderId"].as_str().unwrap();
    let trail = foodfast_store::audit::AuditLog::new(stack.stores.postgres.clone())
        .for_resource("order", order_id)
        .await
        .unwrap();
    assert_eq!(trail.len(), 1, "{trail:?}");
    assert_eq!(trail[0].request_id, "checkout-7f3a", "the gateway passed the id on as metadata");
}

#[tokio::test]
async fn server_streams_held_open_by_browsers_leave_room_for_other_calls() {
    // Four calls at once per connection, three connections: eight SSE watchers and a search fit.
    let stack = Stack::start_configured(
        |server| server.grpc.max_concurrent_streams = 4,
        |gateway| gateway.upstream.connections = 3,
    )
    .await;
    let mut watchers = Vec::new();
    for n in 0..8 {
        let watch = stack.http.get(format!("{}/api/v1/announcements/watch", stack.base)).send();
        let watch = tokio::time::timeout(Duration::from_secs(5), watch).await;
        let watching = watch.unwrap_or_else(|_| panic!("watcher {n} got no answer: no stream slot left")).unwrap();
        assert_eq!(watching.status(), StatusCode::OK);
        watchers.push(watching);
    }
    let search = stack.call(Method::GET, "/api/v1/restaurants?lat=48.857&lng=2.352", None, None);
    let (status, body) =
        tokio::time::timeout(Duration::from_secs(5), search).await.expect("the search waited for a slot");
    assert_eq!(status, StatusCode::OK, "{body}");
    drop(watchers);
}

#[tokio::test]
async fn a_stream_that_cannot_open_for_want_of_an_upstream_slot_gets_504() {
    // One connection with room for two calls: two SSE watchers take it all.
    let stack = Stack::start_configured(
        |server| server.grpc.max_concurrent_streams = 2,
        |gateway| {
            gateway.upstream.connections = 1;
            gateway.http.request_timeout = Duration::from_secs(1);
        },
    )
    .await;
    let watch = || stack.http.get(format!("{}/api/v1/announcements/watch", stack.base)).send();
    let first = watch().await.unwrap();
    let second = watch().await.unwrap();
    assert_eq!((first.status(), second.status()), (StatusCode::OK, StatusCode::OK));
    assert_eq!(first.headers()["x-accel-buffering"], "no", "proxies pass events on at once");

    let waited = tokio::time::timeout(Duration::from_secs(5), watch()).await.expect("the third watch waited on");
    let refused = waited.unwrap();
    assert_eq!(refused.status(), StatusCode::GATEWAY_TIMEOUT);
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["code"], "DEADLINE_EXCEEDED", "{body}");

    // grpc-web the same way.
    use foodfast_api::v1 as pb;
    let http1 = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new()).build_http();
    let transport = tower::ServiceBuilder::new().layer(tonic_web::GrpcWebClientLayer::new()).service(http1);
    let mut notifications =
        pb::notification_service_client::NotificationServiceClient::with_origin(transport, stack.base.parse().unwrap());
    let watched = notifications.watch_announcements(pb::WatchAnnouncementsRequest::default());
    let refused = tokio::time::timeout(Duration::from_secs(5), watched).await.expect("grpc-web waited on").unwrap_err();
    assert_eq!(refused.code(), tonic::Code::DeadlineExceeded, "{refused:?}");

    // A watcher leaves: its slot serves the next one.
    drop(first);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let next = watch().await.unwrap();
        if next.status() == StatusCode::OK {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "a slot was freed, but watches still get {}", next.status());
    }
    drop(second);
}

#[tokio::test]
async fn a_grpc_web_content_type_with_parameters_is_served() {
    use prost::Message;
    let stack = Stack::start().await;
    let request = foodfast_api::v1::GetRestaurantRequest { restaurant_id: uuid::Uuid::new_v4().to_string() };
    let message = request.encode_to_vec();
    let mut frame = vec![0u8];
    frame.extend_from_slice(&(message.len() as u32).to_be_bytes());
    frame.extend_from_slice(&message);
    let response = stack
        .http
        .post(format!("{}/foodfast.v1.RestaurantService/GetRestaurant", stack.base))
        .header("content-type", "application/grpc-web+proto; charset=utf-8")
        .header("x-grpc-web", "1")
        .body(frame)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let in_headers = response.headers().get("grpc-status").map(|v| v.to_str().unwrap().to_owned());
    let body = response.bytes().await.unwrap();
    let in_trailers = String::from_utf8_lossy(&body).contains("grpc-status:5");
    assert!(in_headers.as_deref() == Some("5") || in_trailers, "NOT_FOUND from the server: {in_headers:?}");
}

#[tokio::test]
async fn one_client_has_a_bounded_share_of_open_requests() {
    let stack = Stack::start_configured(
        |_| {},
        |gateway| {
            gateway.limits.max_in_flight_per_ip = std::num::NonZeroU32::new(2).unwrap();
        },
    )
    .await;
    let watch = || stack.http.get(format!("{}/api/v1/announcements/watch", stack.base)).send();
    let first = watch().await.unwrap();
    let _second = watch().await.unwrap();
    let (status, body) = stack.call(Method::GET, "/api/v1/restaurants?lat=48.857&lng=2.352", None, None).await;
    assert_eq!((status, body["code"].as_str()), (StatusCode::TOO_MANY_REQUESTS, Some("RESOURCE_EXHAUSTED")), "{body}");
    assert!(body["message"].as_str().unwrap().contains("max_in_flight_per_ip"), "{body}");

    // A stream that ends gives its place back.
    drop(first);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (status, _) = stack.call(Method::GET, "/api/v1/restaurants?lat=48.857&lng=2.352", None, None).await;
        if status == StatusCode::OK {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "still refused after a stream closed: {status}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
