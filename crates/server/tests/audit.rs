//! The audit trail of a whole order, on real PostgreSQL: who did what to it,
//! in order; reads leave no rows.

mod common;

use common::Kitchen;
use foodfast_api::v1 as pb;
use foodfast_store::audit::AuditLog;

#[tokio::test]
async fn a_full_order_flow_leaves_one_row_per_change_naming_its_actor() {
    let kitchen = Kitchen::open().await;
    let order_id = kitchen.placed_order().await;
    for status in ["accepted", "preparing", "ready_for_pickup"] {
        kitchen.restaurant_sets(&order_id, status).await;
    }
    let driver = kitchen.driver(2).await;
    kitchen.online(&driver).await;
    kitchen.assign(&order_id, &driver).await.unwrap();
    kitchen.picked_up(&driver, &order_id).await.unwrap();
    kitchen.delivered(&driver, &order_id).await.unwrap();
    kitchen
        .server
        .orders(Some(&kitchen.customer))
        .get_order(pb::GetOrderRequest { order_id: order_id.clone() })
        .await
        .unwrap();
    let refused = kitchen
        .server
        .orders(Some(&kitchen.customer))
        .cancel_order(pb::CancelOrderRequest { order_id: order_id.clone(), reason: "too late".into() })
        .await;
    assert!(refused.is_err(), "a delivered order cannot be cancelled");

    let trail = AuditLog::new(kitchen.server.stores.postgres.clone()).for_resource("order", &order_id).await.unwrap();
    let rows: Vec<(&str, &str, Option<uuid::Uuid>)> =
        trail.iter().map(|row| (row.action.as_str(), row.actor_role.as_str(), row.actor_id)).collect();
    let (customer, staff, admin) =
        (Some(kitchen.customer.user_id), Some(kitchen.staff.user_id), Some(kitchen.admin.user_id));
    assert_eq!(
        rows,
        [
            ("foodfast.v1.OrderService/CreateOrder", "customer", customer),
            ("foodfast.v1.RestaurantService/UpdateOrderStatus", "restaurant_staff", staff),
            ("foodfast.v1.RestaurantService/UpdateOrderStatus", "restaurant_staff", staff),
            ("foodfast.v1.RestaurantService/UpdateOrderStatus", "restaurant_staff", staff),
            ("foodfast.v1.DispatchService/AssignDriver", "admin", admin),
            ("foodfast.v1.DriverService/MarkPickedUp", "driver", Some(driver.user_id)),
            ("foodfast.v1.DriverService/MarkDelivered", "driver", Some(driver.user_id)),
        ],
        "reads and refused changes leave no row"
    );
    assert!(trail.windows(2).all(|pair| pair[0].at <= pair[1].at));
}

/// A refused audited call (Login with a wrong password) answers
/// trailers-only: the status in headers that end the stream, as grpc-go and
/// grpcio expect. (The audit layer once sent an empty body after them, which
/// those clients report as "server closed the stream without sending trailers".)
#[tokio::test]
async fn a_refused_audited_call_answers_with_headers_that_end_the_stream() {
    use http_body::Body as _;
    use prost::Message as _;

    let server = common::TestServer::start().await;
    let login = pb::LoginRequest { email: "nobody@example.com".into(), password: "not the password".into() };
    let message = login.encode_to_vec();
    let mut frame = vec![0];
    frame.extend_from_slice(&(message.len() as u32).to_be_bytes());
    frame.extend_from_slice(&message);
    let request = http::Request::post(format!("http://{}/foodfast.v1.AccountService/Login", server.addr))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(tonic::body::Body::new(http_body_util::Full::new(bytes::Bytes::from(frame))))
        .unwrap();
    let response = tower::ServiceExt::oneshot(server.channel.clone(), request).await.unwrap();
    assert_eq!(response.headers()["grpc-status"], (tonic::Code::Unauthenticated as i32).to_string());
    assert!(response.body().is_end_stream(), "nothing follows the headers");
}
