//! The browser pages (`web/`, built by `make web`) served by the gateway and
//! used as people use them, under jsdom (`web/test/pages.mjs`): the
//! dashboard replaces a menu photo and moves an order on, the tracking page
//! shows each step live.

mod common;

use std::path::Path;

use common::{NodeScript, PASSWORD, Stack};
use foodfast_domain::access::Role;
use reqwest::{Method, StatusCode, header};
use serde_json::json;

const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/..");

fn built_pages() -> std::path::PathBuf {
    let dist = Path::new(ROOT).join("web/dist");
    assert!(dist.join("assets/track.js").is_file(), "web/dist is not built: run `make web` at the repository root");
    dist
}

#[tokio::test]
async fn the_gateway_serves_the_pages_and_the_contract_they_are_built_from() {
    let dist = built_pages();
    let stack = Stack::start_with(|config| config.http.web_dir = dist).await;

    for (path, content_type) in [
        ("/", "text/html; charset=utf-8"),
        ("/track.html", "text/html; charset=utf-8"),
        ("/dashboard.html", "text/html; charset=utf-8"),
        ("/assets/track.js", "text/javascript; charset=utf-8"),
        ("/style.css", "text/css; charset=utf-8"),
    ] {
        let response = stack.request(Method::GET, path, None).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        assert_eq!(response.headers()[header::CONTENT_TYPE], content_type, "{path}");
        let policy = response.headers().get(header::CONTENT_SECURITY_POLICY);
        assert_eq!(policy.is_some(), content_type.starts_with("text/html"), "{path}: {policy:?}");
    }
    let descriptors = stack.request(Method::GET, "/api/v1/descriptors", None).send().await.unwrap();
    assert_eq!(descriptors.status(), StatusCode::OK);
    assert_eq!(descriptors.bytes().await.unwrap().as_ref(), foodfast_api::FILE_DESCRIPTOR_SET);
    for missing in ["/missing.html", "/assets/../../Cargo.toml", "/build.mjs"] {
        let (status, body) = stack.call(Method::GET, missing, None, None).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{missing}: {body}");
    }
}

#[tokio::test]
async fn staff_move_an_order_on_from_the_dashboard_and_the_customer_sees_each_step_live() {
    let dist = built_pages();
    assert!(
        Path::new(ROOT).join("node_modules/jsdom").is_dir(),
        "node_modules/jsdom is missing: run `make tools` at the repository root"
    );
    let stack = Stack::start_with(|config| config.http.web_dir = dist).await;
    let admin = stack.user(Role::Admin, None).await;
    let customer = stack.user(Role::Customer, None).await;
    let kitchen = stack.kitchen(&admin).await;
    let order_id = stack.placed_order(&customer, &kitchen).await;
    let staff = kitchen.staff;
    let photo = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(photo.path(), common::photo_png(640, 480)).unwrap();

    let mut pages = NodeScript::start(
        "web/test/pages.mjs",
        &[
            ("FOODFAST_GATEWAY_URL", stack.base.clone()),
            ("STAFF_EMAIL", stack.email(&staff)),
            ("CUSTOMER_EMAIL", stack.email(&customer)),
            ("PASSWORD", PASSWORD.into()),
            ("ORDER_ID", order_id.clone()),
            ("PHOTO", photo.path().display().to_string()),
        ],
    );

    let refused = pages.next().await;
    assert_eq!(refused["step"], "wrong_password", "{refused}");
    assert!(refused["error"].as_str().unwrap().contains("email or password"), "the server's message: {refused}");
    let dashboard = pages.next().await;
    assert_eq!(dashboard, json!({"step": "dashboard", "status": "Pending", "live": "Live · 1 open"}));
    let photo = pages.next().await;
    assert_eq!(
        (&photo["step"], &photo["item"], &photo["state"]),
        (&json!("photo"), &json!(kitchen.item_id), &json!("Photo updated")),
        "{photo}"
    );
    let (status, menu) =
        stack.call(Method::GET, &format!("/api/v1/restaurants/{}/menu", kitchen.restaurant_id), None, None).await;
    assert_eq!(status, StatusCode::OK, "{menu}");
    let shown = &menu["categories"][0]["items"][0]["imageUrl"];
    assert!(shown.as_str().is_some_and(|url| url.ends_with(".jpg")), "the processed photo is on the menu: {menu}");
    assert_eq!(&photo["src"], shown, "the dashboard shows the menu's new photo");
    let tracking = pages.next().await;
    assert_eq!(tracking, json!({"step": "tracking", "status": "Pending", "restaurant": "Chez REST"}));
    for (step, shown) in
        [("accepted", "Confirmed"), ("preparing", "Preparing"), ("ready_for_pickup", "Ready for pickup")]
    {
        assert_eq!(pages.next().await, json!({"step": step, "tracking": shown, "dashboard": shown}));
    }
    let timeline = pages.next().await;
    assert_eq!(
        timeline,
        json!({"step": "timeline", "timeline": ["Pending", "Confirmed", "Preparing", "Ready for pickup"]}),
        "every status once, in order"
    );
    assert_eq!(pages.next().await, json!({"step": "end"}));
    pages.finish().await;

    let (status, stored) = stack.call(Method::GET, &format!("/api/v1/orders/{order_id}"), Some(&customer), None).await;
    assert_eq!(status, StatusCode::OK, "{stored}");
    assert_eq!(stored["order"]["status"], "ORDER_STATUS_READY_FOR_PICKUP", "the dashboard's clicks moved the order");
}
