//! A real grpc-web client, connect-web's transport under Node
//! (`tests/grpc-web/client.mjs`), calls through the gateway to the server.

mod common;

use foodfast_domain::access::Role;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use common::{Kitchen, Stack};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{ChildStdout, Command};
use tokio::time::timeout;

const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/..");

async fn next_line(lines: &mut Lines<BufReader<ChildStdout>>) -> Value {
    let line = timeout(Duration::from_secs(30), lines.next_line()).await.expect("the client is silent").unwrap();
    let line = line.expect("the client's stdout ended early");
    serde_json::from_str(&line).unwrap_or_else(|_| panic!("not a JSON line: {line}"))
}

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
    let mut client = Command::new("node")
        .arg("tests/grpc-web/client.mjs")
        .current_dir(ROOT)
        .env("FOODFAST_GATEWAY_URL", &stack.base)
        .env("FOODFAST_DESCRIPTORS", &descriptors)
        .env("FOODFAST_TOKEN", stack.token(&customer))
        .env("RESTAURANT_ID", &restaurant_id)
        .env("ORDER_ID", &order_id)
        .env("FOODFAST_GRPC_WEB_FORMAT", "binary")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("node runs");
    let mut lines = BufReader::new(client.stdout.take().unwrap()).lines();

    let menu = next_line(&mut lines).await;
    let _ = std::fs::remove_file(&descriptors); // read before the first call
    assert_eq!(menu, json!({"step": "menu", "items": ["Soupe"]}));
    let missing = next_line(&mut lines).await;
    assert_eq!(missing["step"], "not_found");
    assert_eq!(missing["code"], "NotFound", "statuses arrive in grpc-web trailers: {missing}");
    let snapshot = next_line(&mut lines).await;
    assert_eq!(snapshot["step"], "snapshot", "the first message is the snapshot: {snapshot}");

    let path = format!("/api/v1/restaurants/orders/{order_id}");
    let (status, rejected) =
        stack.call(Method::PATCH, &path, Some(&staff), Some(json!({"status": "rejected", "reason": "closing"}))).await;
    assert_eq!(status, StatusCode::OK, "{rejected}");
    let event = loop {
        let line = next_line(&mut lines).await;
        if line["step"] != "other" {
            break line;
        }
    };
    assert_eq!(event, json!({"step": "event", "status": "ORDER_STATUS_REJECTED"}));
    assert_eq!(next_line(&mut lines).await, json!({"step": "end"}), "the stream ends after REJECTED");
    let exit = timeout(Duration::from_secs(10), client.wait()).await.expect("the client exits").unwrap();
    assert!(exit.success(), "{exit}");
}
