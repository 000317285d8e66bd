//! A real grpc-web client, connect-web's transport under Node
//! (`tests/grpc-web/client.mjs`), calls through the gateway to the server.

mod common;

use std::path::Path;

use common::{Kitchen, NodeScript, Stack};
use foodfast_domain::access::Role;
use reqwest::{Method, StatusCode};
use serde_json::json;

const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/..");

#[tokio::test]
async fn connect_web_calls_unary_and_server_streaming_methods_through_the_gateway() {
    assert!(
        Path::new(ROOT).join("node_modules/@connectrpc/connect-web").is_dir(),
        "node_modules/@connectrpc/connect-web is missing: run `make tools` at the repository root"
    );
    let stack = Stack::start().await;
    let admin = stack.user(Role::Admin, None).await;
    let customer = stack.user(Role::Customer, None).await;
    let kitchen = stack.kitchen(&admin).await;
    let order_id = stack.placed_order(&customer, &kitchen).await;
    let Kitchen { restaurant_id, staff, .. } = kitchen;

    let descriptors = std::env::temp_dir().join(format!("foodfast-descriptors-{}.binpb", uuid::Uuid::new_v4()));
    std::fs::write(&descriptors, foodfast_api::FILE_DESCRIPTOR_SET).unwrap();
    let mut client = NodeScript::start(
        "tests/grpc-web/client.mjs",
        &[
            ("FOODFAST_GATEWAY_URL", stack.base.clone()),
            ("FOODFAST_DESCRIPTORS", descriptors.display().to_string()),
            ("FOODFAST_TOKEN", stack.token(&customer)),
            ("RESTAURANT_ID", restaurant_id.clone()),
            ("ORDER_ID", order_id.clone()),
            ("FOODFAST_GRPC_WEB_FORMAT", "binary".into()),
        ],
    );

    let menu = client.next().await;
    let _ = std::fs::remove_file(&descriptors); // read before the first call
    assert_eq!(menu, json!({"step": "menu", "items": ["Soupe"]}));
    let missing = client.next().await;
    assert_eq!(missing["step"], "not_found");
    assert_eq!(missing["code"], "NotFound", "statuses arrive in grpc-web trailers: {missing}");
    let snapshot = client.next().await;
    assert_eq!(snapshot["step"], "snapshot", "the first message is the snapshot: {snapshot}");

    let path = format!("/api/v1/restaurants/orders/{order_id}");
    let (status, rejected) =
        stack.call(Method::PATCH, &path, Some(&staff), Some(json!({"status": "rejected", "reason": "closing"}))).await;
    assert_eq!(status, StatusCode::OK, "{rejected}");
    let event = loop {
        let line = client.next().await;
        if line["step"] != "other" {
            break line;
        }
    };
    assert_eq!(event, json!({"step": "event", "status": "ORDER_STATUS_REJECTED"}));
    assert_eq!(client.next().await, json!({"step": "end"}), "the stream ends after REJECTED");
    client.finish().await;
}
