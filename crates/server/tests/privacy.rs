//! Personal data stays where it belongs: a driver sees a customer's address
//! only while delivering, and a whole order flow leaves no email, phone or
//! address in the server's logs (a real `foodfast serve` process, our own
//! crates logging at debug).

mod common;

use common::{Bearer, Kitchen, Replica, line};
use foodfast_api::v1 as pb;
use foodfast_api::v1::account_service_client::AccountServiceClient;
use foodfast_api::v1::dispatch_service_client::DispatchServiceClient;
use foodfast_api::v1::driver_service_client::DriverServiceClient;
use foodfast_api::v1::order_service_client::OrderServiceClient;
use foodfast_api::v1::restaurant_service_client::RestaurantServiceClient;
use uuid::Uuid;

const LOG_FILTER: &str =
    "info,scylla=warn,foodfast=debug,foodfast_server=debug,foodfast_store=debug,foodfast_domain=debug";

#[tokio::test]
async fn a_full_flow_logs_no_personal_data_and_drivers_see_addresses_only_while_delivering() {
    let kitchen = Kitchen::open().await;
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("foodfast.log");
    let replica = Replica::spawn_logging(&kitchen.server.config, LOG_FILTER, Some(&log)).await;
    let channel = replica.channel.clone();
    let as_principal = |principal| kitchen.server.bearer(Some(principal));

    let email = format!("privacy.{}@example.test", Uuid::new_v4().simple());
    let phone = "+33698765432";
    let street = "12 Rue Privée";
    let instructions = "digicode 4321";
    let mut accounts = AccountServiceClient::new(channel.clone());
    let wrong = pb::LoginRequest { email: email.clone(), password: "not registered yet".into() };
    assert!(accounts.login(wrong).await.is_err());
    let registered = accounts
        .register(pb::RegisterRequest {
            email: email.clone(),
            phone: phone.into(),
            password: "a private password".into(),
            display_name: "Priya P.".into(),
        })
        .await
        .unwrap()
        .into_inner();
    let customer_token = registered.tokens.unwrap().access_token;
    let address = pb::Address {
        location: Some(pb::LatLng { lat: common::KITCHEN_LAT + 0.01, lng: common::KITCHEN_LNG }),
        formatted: street.into(),
        instructions: instructions.into(),
    };
    AccountServiceClient::with_interceptor(channel.clone(), Bearer::token(&customer_token))
        .update_profile(pb::UpdateProfileRequest { default_address: Some(address.clone()), ..Default::default() })
        .await
        .unwrap();
    let mut orders = OrderServiceClient::with_interceptor(channel.clone(), Bearer::token(&customer_token));
    let order_id = orders
        .create_order(pb::CreateOrderRequest {
            idempotency_key: Uuid::new_v4().to_string(),
            restaurant_id: kitchen.restaurant.restaurant_id.clone(),
            items: vec![line(&kitchen.menu, "Bruschetta", 1, &[])],
            delivery_address: Some(address),
            payment_method_id: "pm_card_visa".into(),
            customer_note: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .order
        .unwrap()
        .order_id;

    let mut restaurant = RestaurantServiceClient::with_interceptor(channel.clone(), as_principal(&kitchen.staff));
    for status in ["accepted", "ready_for_pickup"] {
        let request =
            pb::UpdateOrderStatusRequest { order_id: order_id.clone(), status: status.into(), ..Default::default() };
        restaurant.update_order_status(request).await.unwrap();
    }
    let driver = kitchen.driver(2).await;
    kitchen.online(&driver).await;
    DispatchServiceClient::with_interceptor(channel.clone(), as_principal(&kitchen.admin))
        .assign_driver(pb::AssignDriverRequest {
            order_id: order_id.clone(),
            driver_id: driver.user_id.to_string(),
            replace: false,
            reason: "privacy".into(),
        })
        .await
        .unwrap();
    let mut driver_orders = OrderServiceClient::with_interceptor(channel.clone(), as_principal(&driver));
    let seen = |response: tonic::Response<pb::GetOrderResponse>| response.into_inner().order.unwrap().delivery_address;
    let delivering = seen(driver_orders.get_order(pb::GetOrderRequest { order_id: order_id.clone() }).await.unwrap());
    assert_eq!(delivering.unwrap().formatted, street, "the assigned driver sees where to go");
    let mut driver_app = DriverServiceClient::with_interceptor(channel.clone(), as_principal(&driver));
    driver_app.mark_picked_up(pb::MarkPickedUpRequest { order_id: order_id.clone() }).await.unwrap();
    driver_app.mark_delivered(pb::MarkDeliveredRequest { order_id: order_id.clone() }).await.unwrap();
    let delivered = seen(driver_orders.get_order(pb::GetOrderRequest { order_id: order_id.clone() }).await.unwrap());
    assert_eq!(delivered, None, "after the delivery the address is not the driver's any more");
    let customer_view = seen(orders.get_order(pb::GetOrderRequest { order_id: order_id.clone() }).await.unwrap());
    assert_eq!(customer_view.unwrap().formatted, street, "the customer always sees it");

    drop(replica); // flushes and ends the process
    let logged = std::fs::read_to_string(&log).unwrap();
    assert!(logged.contains("listening"), "the log was captured: {logged}");
    for secret in [email.as_str(), phone, street, instructions, "Priya"] {
        assert!(!logged.contains(secret), "{secret:?} is in the server's log:\n{logged}");
    }
}
