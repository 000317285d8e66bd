//! Ops assigning drivers by hand (DispatchService.AssignDriver): one driver
//! per order, replacing before pickup, and who may do it.

mod common;

use common::Kitchen;
use foodfast_api::v1 as pb;
use foodfast_store::users::Users;
use tonic::Code;
use tonic_types::StatusExt;

#[tokio::test]
async fn an_order_keeps_one_driver_unless_ops_replace_it_before_pickup() {
    let kitchen = Kitchen::open().await;
    let (first, second) = (kitchen.driver(1).await, kitchen.driver(1).await);
    kitchen.online(&first).await;
    kitchen.online(&second).await;
    let order_id = kitchen.ready_order().await;

    let assigned = kitchen.assign(&order_id, &first).await.unwrap();
    assert_eq!(assigned.status(), pb::OrderStatus::DriverAssigned);
    assert!(!assigned.delivery_id.is_empty());
    let again = kitchen.assign(&order_id, &second).await.unwrap_err();
    assert_eq!(again.code(), Code::FailedPrecondition, "{again:?}");
    assert!(again.message().contains("already has a driver"), "{}", again.message());
    let reason = again.get_error_details().error_info().map(|info| info.reason.clone());
    assert_eq!(reason.as_deref(), Some("ERROR_REASON_ASSIGNMENT_CONFLICT"));

    let replaced = kitchen.assign_as(&kitchen.admin, &order_id, &second, true).await.unwrap();
    assert_eq!(replaced.driver_id, second.user_id.to_string());
    assert_eq!(replaced.delivery_id, assigned.delivery_id, "the same delivery changes hands");
    assert_eq!(replaced.seq, assigned.seq + 1, "the replacement is an event of its own");
    let users = Users::new(kitchen.server.stores.postgres.clone());
    assert_eq!(users.driver(first.user_id).await.unwrap().unwrap().active_deliveries, 0, "freed");
    assert_eq!(users.driver(second.user_id).await.unwrap().unwrap().active_deliveries, 1);

    kitchen.picked_up(&second, &order_id).await.unwrap();
    let late = kitchen.assign_as(&kitchen.admin, &order_id, &first, true).await.unwrap_err();
    assert_eq!(late.code(), Code::FailedPrecondition, "no replacing after pickup: {late:?}");
}

#[tokio::test]
async fn assigning_needs_an_operator_a_known_online_driver_and_a_reason() {
    let kitchen = Kitchen::open().await;
    let driver = kitchen.driver(1).await;
    let order_id = kitchen.ready_order().await;

    let offline = kitchen.assign(&order_id, &driver).await.unwrap_err();
    assert_eq!(offline.code(), Code::FailedPrecondition);
    assert!(offline.message().contains("online"), "{}", offline.message());
    kitchen.online(&driver).await;

    for caller in [&kitchen.customer, &kitchen.staff, &driver] {
        let err = kitchen.assign_as(caller, &order_id, &driver, false).await.unwrap_err();
        assert_eq!(err.code(), Code::PermissionDenied, "{caller:?}");
    }
    let stranger = kitchen.server.customer().await;
    let err = kitchen.assign(&order_id, &stranger).await.unwrap_err();
    assert_eq!(err.code(), Code::NotFound, "a customer is not a driver: {err:?}");

    let mut dispatch = kitchen.server.dispatch(Some(&kitchen.admin));
    for (request, field) in [
        (
            pb::AssignDriverRequest {
                order_id: order_id.clone(),
                driver_id: driver.user_id.to_string(),
                replace: false,
                reason: " ".into(),
            },
            "reason",
        ),
        (
            pb::AssignDriverRequest {
                order_id: "x".into(),
                driver_id: driver.user_id.to_string(),
                replace: false,
                reason: "r".into(),
            },
            "order_id",
        ),
        (
            pb::AssignDriverRequest {
                order_id: order_id.clone(),
                driver_id: String::new(),
                replace: false,
                reason: "r".into(),
            },
            "driver_id",
        ),
    ] {
        let err = dispatch.assign_driver(request).await.unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument);
        assert!(err.message().contains(field), "{field}: {}", err.message());
    }
    let support = kitchen.server.support().await;
    kitchen.assign_as(&support, &order_id, &driver, false).await.unwrap();
}
