//! Quotes, orders placed exactly once, payments, transitions and the
//! restaurant's live stream, against the real PostgreSQL and Redis and the
//! payment sandbox.

mod common;

use std::collections::HashSet;
use std::time::Duration;

use common::{TestServer, address_near, item, line};
use foodfast_api::v1 as pb;
use foodfast_domain::access::Principal;
use foodfast_payment_sandbox::IntentStatus;
use foodfast_store::throttle::RatePolicy;
use tokio_stream::StreamExt;
use tonic::Code;
use tonic_types::StatusExt;

const LAT: f64 = 48.8566;
const LNG: f64 = 2.3522;

struct Shop {
    server: TestServer,
    restaurant: pb::Restaurant,
    menu: pb::UpsertMenuResponse,
}

async fn shop() -> Shop {
    shop_with(|_| {}).await
}

async fn shop_with(adjust: impl FnOnce(&mut foodfast_server::config::Config)) -> Shop {
    let server = TestServer::start_with(adjust).await;
    let (restaurant, menu) = server.restaurant_at("Luigi", "pizza", LAT, LNG).await;
    Shop { server, restaurant, menu }
}

impl Shop {
    /// `customer` places the usual order, paying with `payment_method_id`.
    async fn place(&self, customer: &Principal, key: &str, payment_method_id: &str) -> pb::Order {
        let request = self.order_request(key, payment_method_id);
        self.server.orders(Some(customer)).create_order(request).await.unwrap().into_inner().order.unwrap()
    }

    /// The restaurant accepts the order.
    async fn accept(&self, staff: &Principal, order_id: &str) {
        let request = pb::UpdateOrderStatusRequest {
            order_id: order_id.into(),
            status: "accepted".into(),
            reason: String::new(),
            prep_time: None,
        };
        self.server.restaurants(Some(staff)).update_order_status(request).await.unwrap();
    }

    fn order_request(&self, key: &str, payment_method_id: &str) -> pb::CreateOrderRequest {
        pb::CreateOrderRequest {
            idempotency_key: key.into(),
            restaurant_id: self.restaurant.restaurant_id.clone(),
            items: vec![
                line(&self.menu, "Margherita", 2, &[("Size", "Large"), ("Extra toppings", "Olives")]),
                line(&self.menu, "Bruschetta", 1, &[]),
            ],
            delivery_address: Some(address_near(LAT, LNG, 2_000.0)),
            payment_method_id: payment_method_id.into(),
            customer_note: "No cutlery".into(),
        }
    }

    async fn order_count(&self) -> i64 {
        let client = self.server.stores.postgres.client().await.unwrap();
        client.query_one("SELECT count(*) FROM orders", &[]).await.unwrap().get(0)
    }
}

fn amount(m: &Option<pb::Money>) -> String {
    m.as_ref().unwrap().amount.clone()
}

#[tokio::test]
async fn quote_prices_on_the_server_and_ignores_nothing_the_client_cannot_set() {
    let shop = shop().await;
    let request = shop.order_request("unused-key", "pm_card_visa");
    let customer = shop.server.customer().await;
    let quote = shop
        .server
        .orders(Some(&customer))
        .quote(pb::QuoteRequest {
            restaurant_id: request.restaurant_id.clone(),
            items: request.items.clone(),
            delivery_address: request.delivery_address.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    // Margherita 9.50 + Large 3.00 + Olives 1.25 = 13.75 × 2, Bruschetta 5.00.
    assert_eq!(amount(&quote.items[0].unit_price), "13.75");
    assert_eq!(amount(&quote.items[0].line_total), "27.50");
    let price = quote.price.unwrap();
    assert_eq!(amount(&price.subtotal), "32.50");
    let (subtotal, fee, tax, total): (f64, f64, f64, f64) = (
        amount(&price.subtotal).parse().unwrap(),
        amount(&price.delivery_fee).parse().unwrap(),
        amount(&price.tax).parse().unwrap(),
        amount(&price.total).parse().unwrap(),
    );
    assert!(fee > 0.0);
    assert!((subtotal + fee + tax - total).abs() < 0.001);
    assert!(quote.delivery_distance_m.abs_diff(2_000) <= 2);
    let eta = quote.estimated_delivery.unwrap();
    assert!(eta.latest.unwrap().seconds > eta.earliest.unwrap().seconds);
}

#[tokio::test]
async fn create_order_writes_the_order_its_first_event_and_authorizes_payment() {
    let shop = shop().await;
    let customer = shop.server.customer().await;
    let order = shop
        .server
        .orders(Some(&customer))
        .create_order(shop.order_request("first-key", "pm_card_visa"))
        .await
        .unwrap()
        .into_inner()
        .order
        .unwrap();
    assert_eq!(order.status(), pb::OrderStatus::Pending);
    assert_eq!(order.customer_id, customer.user_id.to_string());
    assert_eq!(order.items.len(), 2);
    assert_eq!(order.customer_note, "No cutlery");
    assert_eq!(order.history.len(), 1);
    assert_eq!(order.history[0].seq, 1);
    assert_eq!(order.history[0].status(), pb::OrderStatus::Pending);
    assert_eq!(order.last_event_seq, 1);

    let intents = shop.server.sandbox.intents();
    assert_eq!(intents.len(), 1);
    assert_eq!(intents[0].status, IntentStatus::Authorized);
    assert_eq!(intents[0].metadata.get("order_id"), Some(&order.order_id));

    let fetched = shop
        .server
        .orders(Some(&customer))
        .get_order(pb::GetOrderRequest { order_id: order.order_id.clone() })
        .await
        .unwrap()
        .into_inner()
        .order
        .unwrap();
    assert_eq!(fetched, order);
}

#[tokio::test]
async fn twenty_concurrent_retries_with_one_key_make_one_order() {
    let shop = shop().await;
    let customer = shop.server.customer().await;
    let mut calls = Vec::new();
    for _ in 0..20 {
        let mut client = shop.server.orders(Some(&customer));
        let request = shop.order_request("same-key", "pm_card_visa");
        calls.push(tokio::spawn(async move { client.create_order(request).await }));
    }
    let mut ids = std::collections::HashSet::new();
    for call in calls {
        let order = call.await.unwrap().unwrap().into_inner().order.unwrap();
        ids.insert(order.order_id);
    }
    assert_eq!(ids.len(), 1, "every retry answers with the same order");
    assert_eq!(shop.order_count().await, 1);
    assert_eq!(shop.server.sandbox.intents().len(), 1, "one authorization");

    // The same key with a different request is refused.
    let mut different = shop.order_request("same-key", "pm_card_visa");
    different.items[0].quantity = 3;
    let err = shop.server.orders(Some(&customer)).create_order(different).await.unwrap_err();
    assert_eq!(err.code(), Code::AlreadyExists, "as the contract says");
    assert!(err.message().contains("idempotency key"), "{}", err.message());
    assert_eq!(shop.order_count().await, 1);
}

#[tokio::test]
async fn a_customer_ordering_too_fast_waits_on_every_replica_but_retries_are_free() {
    // Two orders per 10 s: a burst of two, then one every 5 s.
    let server = TestServer::start_with(|config| {
        config.service.order_rate = RatePolicy { max: 2, window: Duration::from_secs(10) };
    })
    .await;
    let (restaurant, menu) = server.restaurant_at("Luigi", "pizza", LAT, LNG).await;
    let shop = Shop { server, restaurant, menu };
    let replica = shop.server.spawn_replica().await;
    let customer = shop.server.customer().await;
    let place = |key: &str| {
        let (mut client, request) = (shop.server.orders(Some(&customer)), shop.order_request(key, "pm_card_visa"));
        async move { client.create_order(request).await }
    };

    // A cart that cannot be ordered takes nothing from the allowance.
    let mut unavailable = shop.order_request("soup-order", "pm_card_visa");
    let soup = item(&shop.menu, "Soup of the day").item_id.clone();
    unavailable.items[1] = pb::CartItem { item_id: soup, quantity: 1, customizations: vec![], note: String::new() };
    let refused = shop.server.orders(Some(&customer)).create_order(unavailable).await.unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition, "{refused:?}");
    let first = place("first-order").await.unwrap().into_inner().order.unwrap();
    place("second-order").await.unwrap();
    let refused = shop
        .server
        .orders_at(&replica, Some(&customer))
        .create_order(shop.order_request("third-order", "pm_card_visa"))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::ResourceExhausted, "the other replica counts the same orders: {refused:?}");
    assert!(refused.message().contains("too many orders") && refused.message().contains("retry in"), "{refused:?}");
    let details = refused.get_error_details();
    assert_eq!(details.error_info().map(|info| info.reason.as_str()), Some("ERROR_REASON_RATE_LIMITED"));
    let retry_after = details.retry_info().and_then(|retry| retry.retry_delay).expect("a RetryInfo");
    assert!(retry_after > Duration::ZERO && retry_after <= Duration::from_secs(5), "{retry_after:?}");

    let again = place("first-order").await.expect("a retry of a placed order is answered at the limit");
    assert_eq!(again.into_inner().order.unwrap().order_id, first.order_id);
    let neighbour = shop.server.customer().await;
    shop.server
        .orders(Some(&neighbour))
        .create_order(shop.order_request("first-order", "pm_card_visa"))
        .await
        .expect("another customer has an allowance of their own");
    assert_eq!(shop.order_count().await, 3);
    assert_eq!(shop.server.sandbox.intents().len(), 3, "the refused order authorized no payment");

    tokio::time::sleep(retry_after).await;
    place("third-order").await.expect("the refusal left the key free, and the allowance came back");
    assert_eq!(shop.order_count().await, 4);
}

#[tokio::test]
async fn declined_timed_out_and_failing_payments_leave_no_order() {
    let shop = shop().await;
    let customer = shop.server.customer().await;
    for (method, code) in [
        ("pm_card_declined", Code::FailedPrecondition),
        ("pm_card_insufficient_funds", Code::FailedPrecondition),
        ("pm_provider_timeout", Code::Unavailable),
        ("pm_provider_error", Code::Unavailable),
    ] {
        let err = shop
            .server
            .orders(Some(&customer))
            .create_order(shop.order_request(&format!("key-{method}"), method))
            .await
            .unwrap_err();
        assert_eq!(err.code(), code, "{method}: {}", err.message());
        if code == Code::Unavailable {
            // The provider's address and its own words stay in the log.
            assert!(!err.message().contains(&shop.server.sandbox.base_url()), "{method}: {}", err.message());
            assert!(!err.message().contains("500") && !err.message().contains("timed out"), "{}", err.message());
        }
    }
    assert_eq!(shop.order_count().await, 0);
    let client = shop.server.stores.postgres.client().await.unwrap();
    let keys: Vec<String> = client
        .query("SELECT idempotency_key FROM idempotency_keys ORDER BY idempotency_key", &[])
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
    assert_eq!(
        keys,
        ["key-pm_provider_error", "key-pm_provider_timeout"],
        "a declined attempt gives its key back; one the provider did not answer keeps its order id"
    );
    let events: i64 = client.query_one("SELECT count(*) FROM order_events", &[]).await.unwrap().get(0);
    assert_eq!(events, 0);

    // After a decline the same key may be used again, e.g. with another card.
    let order = shop
        .server
        .orders(Some(&customer))
        .create_order(shop.order_request("key-pm_card_declined", "pm_card_visa"))
        .await
        .unwrap();
    assert_eq!(order.into_inner().order.unwrap().status(), pb::OrderStatus::Pending);
}

#[tokio::test]
async fn a_retry_after_the_provider_did_not_answer_asks_again_for_the_same_order() {
    let shop = shop().await;
    let customer = shop.server.customer().await;
    let request = shop.order_request("key-unanswered", "pm_provider_error");
    for _ in 0..2 {
        let err = shop.server.orders(Some(&customer)).create_order(request.clone()).await.unwrap_err();
        assert_eq!(err.code(), Code::Unavailable, "{err:?}");
    }
    // The provider may have held money for the first attempt without a word:
    // the retry asks under the same key (the same order id), so such a hold is
    // found, not placed a second time.
    let authorizations: HashSet<String> = shop
        .server
        .sandbox
        .calls()
        .into_iter()
        .filter_map(|call| call.idempotency_key)
        .filter(|key| key.starts_with("authorize:"))
        .collect();
    assert_eq!(authorizations.len(), 1, "{authorizations:?}");
}

#[tokio::test]
async fn every_bad_cart_is_refused_with_the_field_or_item_named() {
    let shop = shop().await;
    let customer = shop.server.customer().await;
    let good = shop.order_request("key-of-a-good-order", "pm_card_visa");
    let soup = item(&shop.menu, "Soup of the day").item_id.clone();

    let mut cases: Vec<(pb::CreateOrderRequest, Code, &str)> = Vec::new();
    let mut r = good.clone();
    r.items.clear();
    cases.push((r, Code::InvalidArgument, "empty"));
    let mut r = good.clone();
    r.items[0].quantity = 0;
    cases.push((r, Code::InvalidArgument, "quantity"));
    let mut r = good.clone();
    r.items[0].quantity = 100;
    cases.push((r, Code::InvalidArgument, "quantity"));
    let unknown = uuid::Uuid::new_v4().to_string();
    let mut r = good.clone();
    r.items[1].item_id = unknown.clone();
    cases.push((r, Code::InvalidArgument, &unknown));
    let mut r = good.clone();
    r.items[1].item_id = "nope".into();
    cases.push((r, Code::InvalidArgument, "items[1].item_id"));
    let mut r = good.clone();
    r.items[1].note = "n".repeat(201);
    cases.push((r, Code::InvalidArgument, "items[1].note"));
    // PostgreSQL cannot store NUL: refused up front, not an INTERNAL after the payment hold.
    let mut r = good.clone();
    r.customer_note = "no\0cutlery".into();
    cases.push((r, Code::InvalidArgument, "customer_note"));
    let mut r = good.clone();
    r.items[1] = pb::CartItem { item_id: soup, quantity: 1, customizations: vec![], note: String::new() };
    cases.push((r, Code::FailedPrecondition, "Soup of the day"));
    let mut r = good.clone();
    r.items[0] = line(&shop.menu, "Margherita", 1, &[]);
    cases.push((r, Code::InvalidArgument, "Size"));
    let mut r = good.clone();
    r.items[0] = line(&shop.menu, "Margherita", 1, &[("Size", "Large"), ("Size", "Regular")]);
    cases.push((r, Code::InvalidArgument, "Size"));
    let mut r = good.clone();
    r.items[0] = line(&shop.menu, "Margherita", 1, &[("Size", "Large"), ("Extra toppings", "Truffle")]);
    cases.push((r, Code::FailedPrecondition, "Truffle"));
    let mut r = good.clone();
    r.delivery_address = Some(address_near(LAT, LNG, 9_000.0));
    cases.push((r, Code::FailedPrecondition, "delivery"));
    let mut r = good.clone();
    r.delivery_address = Some(address_near(95.0, LNG, 0.0));
    cases.push((r, Code::InvalidArgument, "delivery_address.location"));
    for key in [String::new(), "7-chars".into(), "k".repeat(129)] {
        let mut r = good.clone();
        r.idempotency_key = key;
        cases.push((r, Code::InvalidArgument, "must be 8 to 128 characters"));
    }
    let mut r = good.clone();
    r.payment_method_id.clear();
    cases.push((r, Code::InvalidArgument, "payment_method_id"));
    let mut r = good.clone();
    r.restaurant_id = uuid::Uuid::new_v4().to_string();
    cases.push((r, Code::NotFound, "restaurant"));

    for (i, (request, code, needle)) in cases.into_iter().enumerate() {
        let err = shop.server.orders(Some(&customer)).create_order(request).await.unwrap_err();
        assert_eq!(err.code(), code, "case {i}: {}", err.message());
        assert!(err.message().contains(needle), "case {i}: {:?} lacks {needle:?}", err.message());
    }

    // A malformed cart line is named as a field, the way the gateway and apps point at it.
    let mut r = good.clone();
    r.items[1].quantity = 100;
    let err = shop.server.orders(Some(&customer)).create_order(r).await.unwrap_err();
    let violations = err.get_error_details().bad_request().map(|bad| bad.field_violations.clone()).unwrap_or_default();
    assert_eq!(violations.first().map(|v| v.field.as_str()), Some("items[1].quantity"), "{err:?}");

    // An unavailable option is named in the ErrorInfo, with its item.
    let truffle = line(&shop.menu, "Margherita", 1, &[("Size", "Large"), ("Extra toppings", "Truffle")]);
    let mut r = good.clone();
    r.items[0] = truffle.clone();
    let err = shop.server.orders(Some(&customer)).create_order(r).await.unwrap_err();
    let info = err.get_error_details().error_info().cloned().expect("an ErrorInfo");
    assert_eq!(info.reason, "ERROR_REASON_ITEM_UNAVAILABLE");
    assert_eq!(info.metadata.get("item_id"), Some(&truffle.item_id));
    assert_eq!(info.metadata.get("option_id"), Some(&truffle.customizations[1].option_ids[0]));
    assert_eq!(shop.order_count().await, 0);
    assert!(shop.server.sandbox.intents().is_empty(), "nothing was charged");
}

#[tokio::test]
async fn a_closed_or_paused_restaurant_takes_no_orders() {
    let shop = shop().await;
    let admin = shop.server.admin().await;
    let mut paused = common::profile("Luigi", "pizza", LAT, LNG);
    paused.paused = true;
    shop.server
        .restaurants(Some(&admin))
        .update_restaurant(pb::UpdateRestaurantRequest {
            restaurant_id: shop.restaurant.restaurant_id.clone(),
            profile: Some(paused),
            update_mask: Some(prost_types::FieldMask { paths: vec!["paused".into()] }),
        })
        .await
        .unwrap();
    let customer = shop.server.customer().await;
    let request = shop.order_request("paused-order", "pm_card_visa");
    let quote = pb::QuoteRequest {
        restaurant_id: request.restaurant_id.clone(),
        items: request.items.clone(),
        delivery_address: request.delivery_address.clone(),
    };
    let quoted = shop.server.orders(Some(&customer)).quote(quote).await.unwrap_err();
    let placed = shop.server.orders(Some(&customer)).create_order(request).await.unwrap_err();
    for err in [quoted, placed] {
        assert_eq!(err.code(), Code::FailedPrecondition);
        assert!(err.message().contains("not taking orders"), "{}", err.message());
        let reason = err.get_error_details().error_info().map(|info| info.reason.clone());
        assert_eq!(reason.as_deref(), Some("ERROR_REASON_RESTAURANT_CLOSED"));
    }
    assert_eq!(shop.order_count().await, 0);
}

#[tokio::test]
async fn transitions_follow_the_state_machine_and_move_the_money() {
    let shop = shop().await;
    let customer = shop.server.customer().await;
    let staff = shop.server.staff(shop.restaurant.restaurant_id.parse().unwrap()).await;
    let place = |key: &'static str| shop.place(&customer, key, "pm_card_visa");
    let update = |order_id: &str, status: &str, reason: &str| {
        let mut client = shop.server.restaurants(Some(&staff));
        let request = pb::UpdateOrderStatusRequest {
            order_id: order_id.into(),
            status: status.into(),
            reason: reason.into(),
            prep_time: None,
        };
        async move { client.update_order_status(request).await }
    };

    // Accept → preparing → ready; the capture is settled by the worker.
    let order = place("order-a1").await;
    let accepted = update(&order.order_id, "accepted", "").await.unwrap().into_inner();
    assert_eq!(accepted.status(), pb::OrderStatus::Confirmed);
    assert_eq!(accepted.seq, 2);
    // A repeat (a retry after a lost answer) is answered, and writes nothing.
    let repeated = update(&order.order_id, "accepted", "").await.unwrap().into_inner();
    assert_eq!((repeated.status(), repeated.seq), (pb::OrderStatus::Confirmed, 2));
    assert_eq!(update(&order.order_id, "preparing", "on it").await.unwrap().into_inner().seq, 3);
    // A reason belongs to a rejection: on any other move it is not recorded.
    let mut reader = shop.server.orders(Some(&customer));
    let read = reader.get_order(pb::GetOrderRequest { order_id: order.order_id.clone() }).await.unwrap();
    let history = read.into_inner().order.unwrap().history;
    assert_eq!((history[2].status(), history[2].reason.as_str()), (pb::OrderStatus::Preparing, ""));
    // Going back is refused, naming the order's status.
    let err = update(&order.order_id, "accepted", "").await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    let info = err.get_error_details().error_info().cloned().expect("an ErrorInfo");
    assert_eq!(info.reason, "ERROR_REASON_ILLEGAL_TRANSITION");
    assert_eq!(info.metadata.get("status").map(String::as_str), Some("ORDER_STATUS_PREPARING"));
    assert_eq!(
        update(&order.order_id, "ready_for_pickup", "").await.unwrap().into_inner().status(),
        pb::OrderStatus::ReadyForPickup
    );
    // A cancellation says why (the restaurant reads it).
    let err = shop
        .server
        .orders(Some(&customer))
        .cancel_order(pb::CancelOrderRequest { order_id: order.order_id.clone(), reason: "  ".into() })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    assert!(err.message().contains("reason"), "{err:?}");
    // The customer may no longer cancel once preparation started.
    let err = shop
        .server
        .orders(Some(&customer))
        .cancel_order(pb::CancelOrderRequest { order_id: order.order_id.clone(), reason: "changed my mind".into() })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");
    let info = err.get_error_details().error_info().cloned().expect("an ErrorInfo");
    assert_eq!(info.reason, "ERROR_REASON_ILLEGAL_TRANSITION");
    assert_eq!(info.metadata.get("status").map(String::as_str), Some("ORDER_STATUS_READY_FOR_PICKUP"));
    wait_for_intent(&shop, &order.order_id, IntentStatus::Captured).await;

    // Reject needs a reason and voids the hold.
    let order = place("order-b1").await;
    let err = update(&order.order_id, "rejected", "").await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    let err = update(&order.order_id, "delivered", "").await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().contains("status"));
    assert_eq!(
        update(&order.order_id, "rejected", "out of dough").await.unwrap().into_inner().status(),
        pb::OrderStatus::Rejected
    );
    wait_for_intent(&shop, &order.order_id, IntentStatus::Canceled).await;
    let err = update(&order.order_id, "accepted", "").await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "a rejected order stays rejected");

    // The customer cancels a pending order: voided, history complete.
    let order = place("order-c1").await;
    let cancelled = shop
        .server
        .orders(Some(&customer))
        .cancel_order(pb::CancelOrderRequest { order_id: order.order_id.clone(), reason: "changed my mind".into() })
        .await
        .unwrap()
        .into_inner()
        .order
        .unwrap();
    assert_eq!(cancelled.status(), pb::OrderStatus::Cancelled);
    let statuses: Vec<_> = cancelled.history.iter().map(|e| (e.seq, e.status())).collect();
    assert_eq!(statuses, vec![(1, pb::OrderStatus::Pending), (2, pb::OrderStatus::Cancelled)]);
    assert_eq!(cancelled.history[1].reason, "changed my mind");
    wait_for_intent(&shop, &order.order_id, IntentStatus::Canceled).await;
    let again = shop
        .server
        .orders(Some(&customer))
        .cancel_order(pb::CancelOrderRequest { order_id: order.order_id.clone(), reason: "changed my mind".into() })
        .await
        .expect("cancelling a cancelled order returns it unchanged")
        .into_inner()
        .order
        .unwrap();
    assert_eq!(again.history, cancelled.history);

    // Strangers see nothing and change nothing, and cannot tell whether it exists.
    let stranger = shop.server.customer().await;
    for order_id in [order.order_id.clone(), uuid::Uuid::new_v4().to_string()] {
        let err = shop
            .server
            .orders(Some(&stranger))
            .get_order(pb::GetOrderRequest { order_id: order_id.clone() })
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::PermissionDenied);
        let err = shop
            .server
            .orders(Some(&stranger))
            .cancel_order(pb::CancelOrderRequest { order_id, reason: "not mine".into() })
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::PermissionDenied);
    }
    let other_staff = shop.server.staff(uuid::Uuid::new_v4()).await;
    let mut client = shop.server.restaurants(Some(&other_staff));
    let err = client
        .update_order_status(pb::UpdateOrderStatusRequest {
            order_id: order.order_id.clone(),
            status: "accepted".into(),
            reason: String::new(),
            prep_time: None,
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
}

#[tokio::test]
async fn staff_give_a_preparation_estimate_when_accepting_and_it_is_an_event() {
    let shop = shop().await;
    let customer = shop.server.customer().await;
    let staff = shop.server.staff(shop.restaurant.restaurant_id.parse().unwrap()).await;
    let mut orders = shop.server.orders(Some(&customer));
    let order = orders.create_order(shop.order_request("estimated-order", "pm_card_visa")).await.unwrap();
    let order_id = order.into_inner().order.unwrap().order_id;
    let update = |status: &str, prep_time: Option<Duration>| {
        let mut client = shop.server.restaurants(Some(&staff));
        let request = pb::UpdateOrderStatusRequest {
            order_id: order_id.clone(),
            status: status.into(),
            reason: String::new(),
            prep_time: prep_time.map(|d| prost_types::Duration { seconds: d.as_secs() as i64, nanos: 0 }),
        };
        async move { client.update_order_status(request).await }
    };
    let seconds = |t: Option<prost_types::Timestamp>| t.expect("a timestamp").seconds;

    for out_of_range in [Duration::from_secs(30), Duration::from_secs(3 * 3600 + 1)] {
        let err = update("accepted", Some(out_of_range)).await.unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{out_of_range:?}");
        assert!(err.message().contains("prep_time"), "{}", err.message());
    }
    let asked = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    let accepted = update("accepted", Some(Duration::from_secs(25 * 60))).await.unwrap().into_inner();
    assert_eq!((accepted.status(), accepted.seq), (pb::OrderStatus::Confirmed, 3), "the move, then the estimate");

    let shown = orders.get_order(pb::GetOrderRequest { order_id: order_id.clone() }).await.unwrap();
    let shown = shown.into_inner().order.unwrap();
    let ready_at = seconds(shown.estimated_ready_at);
    assert!((asked + 25 * 60..=asked + 25 * 60 + 5).contains(&ready_at), "ready at {ready_at}, asked at {asked}");
    let kinds: Vec<_> = shown.history.iter().map(|e| (e.seq, e.kind(), e.status())).collect();
    assert_eq!(
        kinds,
        [
            (1, pb::OrderEventKind::StatusChanged, pb::OrderStatus::Pending),
            (2, pb::OrderEventKind::StatusChanged, pb::OrderStatus::Confirmed),
            (3, pb::OrderEventKind::PrepTimeUpdated, pb::OrderStatus::Confirmed),
        ]
    );

    // Without an estimate (or with another move) the order keeps the one it has.
    assert_eq!(update("preparing", None).await.unwrap().into_inner().seq, 4);
    assert_eq!(update("ready_for_pickup", Some(Duration::from_secs(1))).await.unwrap().into_inner().seq, 5);
    let shown = orders.get_order(pb::GetOrderRequest { order_id }).await.unwrap().into_inner().order.unwrap();
    assert_eq!(seconds(shown.estimated_ready_at), ready_at);
}

#[tokio::test]
async fn an_order_the_restaurant_leaves_unanswered_is_rejected_and_its_hold_released() {
    let shop = shop_with(|config| config.service.pending_order_timeout = Duration::from_secs(2)).await;
    let customer = shop.server.customer().await;
    let staff = shop.server.staff(shop.restaurant.restaurant_id.parse().unwrap()).await;
    let place = |key: &'static str| shop.place(&customer, key, "pm_card_visa");
    let unanswered = place("unanswered").await;
    let answered = place("answered").await;
    shop.accept(&staff, &answered.order_id).await;

    wait_for_intent(&shop, &unanswered.order_id, IntentStatus::Canceled).await;
    let read = |order_id: String| {
        let mut client = shop.server.orders(Some(&customer));
        async move { client.get_order(pb::GetOrderRequest { order_id }).await.unwrap().into_inner().order.unwrap() }
    };
    let rejected = read(unanswered.order_id.clone()).await;
    assert_eq!(rejected.status(), pb::OrderStatus::Rejected);
    let last = rejected.history.last().unwrap();
    assert_eq!((last.actor(), last.reason.as_str()), (pb::Actor::System, "the restaurant did not answer in time"));
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(read(answered.order_id.clone()).await.status(), pb::OrderStatus::Confirmed, "an answered order stays");
}

/// The order's payment status and last payment error, as the database holds them.
async fn payment_row(shop: &Shop, order_id: &str) -> (String, Option<String>) {
    let client = shop.server.stores.postgres.client().await.unwrap();
    let sql = "SELECT payment_status, payment_error FROM orders WHERE id = $1";
    let row = client.query_one(sql, &[&order_id.parse::<uuid::Uuid>().unwrap()]).await.unwrap();
    (row.get(0), row.get(1))
}

#[tokio::test]
async fn a_cancel_after_a_capture_whose_answer_was_lost_refunds_the_money() {
    let shop = shop().await;
    let customer = shop.server.customer().await;
    let staff = shop.server.staff(shop.restaurant.restaurant_id.parse().unwrap()).await;
    let order = shop.place(&customer, "lost-capture", "pm_capture_answer_lost").await;
    shop.accept(&staff, &order.order_id).await;
    // The provider took the funds, but its answers never arrived: for us the capture is still owed.
    wait_for_intent(&shop, &order.order_id, IntentStatus::Captured).await;
    assert_eq!(payment_row(&shop, &order.order_id).await.0, "capture_pending");

    let cancel = pb::CancelOrderRequest { order_id: order.order_id.clone(), reason: "taking too long".into() };
    shop.server.orders(Some(&customer)).cancel_order(cancel).await.unwrap();
    // The void is refused (nothing is held any more); the provider's state says why, so the money goes back.
    wait_for_intent(&shop, &order.order_id, IntentStatus::Refunded).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while payment_row(&shop, &order.order_id).await != ("refunded".to_owned(), None) {
        assert!(tokio::time::Instant::now() < deadline, "{:?}", payment_row(&shop, &order.order_id).await);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_refusal_the_providers_state_does_not_explain_is_kept_on_the_order() {
    let shop = shop().await;
    let customer = shop.server.customer().await;
    let staff = shop.server.staff(shop.restaurant.restaurant_id.parse().unwrap()).await;
    let order = shop.place(&customer, "released-hold", "pm_card_visa").await;
    // The hold is released behind our back (at the provider's dashboard, or it expired).
    let payment_id =
        shop.server.sandbox.intents().into_iter().find(|i| i.metadata["order_id"] == order.order_id).unwrap().id;
    let released = reqwest::Client::new()
        .post(format!("{}/v1/payment_intents/{payment_id}/cancel", shop.server.sandbox.base_url()))
        .bearer_auth(&shop.server.config.payments.api_key)
        .send()
        .await
        .unwrap();
    assert!(released.status().is_success(), "{released:?}");

    shop.accept(&staff, &order.order_id).await;
    // Nothing was collected: the capture stays owed, and why is on the order for support to see.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let error = loop {
        if let (status, Some(error)) = payment_row(&shop, &order.order_id).await {
            assert_eq!(status, "capture_pending");
            break error;
        }
        assert!(tokio::time::Instant::now() < deadline, "the refused capture was not recorded");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(error.contains("refused the capture") && error.contains("Voided"), "{error}");
}

async fn wait_for_intent(shop: &Shop, order_id: &str, status: IntentStatus) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let intent = shop
            .server
            .sandbox
            .intents()
            .into_iter()
            .find(|i| i.metadata.get("order_id").map(String::as_str) == Some(order_id));
        if intent.as_ref().is_some_and(|i| i.status == status) {
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "payment of {order_id} is {intent:?}, expected {status:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn list_orders_pages_a_customers_history_newest_first() {
    let shop = shop().await;
    let customer = shop.server.customer().await;
    let mut placed = Vec::new();
    for i in 0..5 {
        let order = shop
            .server
            .orders(Some(&customer))
            .create_order(shop.order_request(&format!("history-{i}"), "pm_card_visa"))
            .await
            .unwrap()
            .into_inner()
            .order
            .unwrap();
        placed.push(order.order_id);
    }
    placed.reverse();
    let mut seen = Vec::new();
    let mut token = String::new();
    loop {
        let page = shop
            .server
            .orders(Some(&customer))
            .list_orders(pb::ListOrdersRequest { customer_id: String::new(), page_size: 2, page_token: token })
            .await
            .unwrap()
            .into_inner();
        seen.extend(page.orders.into_iter().map(|o| o.order_id));
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    assert_eq!(seen, placed);

    let stranger = shop.server.customer().await;
    let err = shop
        .server
        .orders(Some(&stranger))
        .list_orders(pb::ListOrdersRequest {
            customer_id: customer.user_id.to_string(),
            page_size: 0,
            page_token: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
}

type Watch = tonic::codec::Streaming<pb::WatchOrdersResponse>;

async fn next_message(stream: &mut Watch) -> pb::WatchOrdersResponse {
    loop {
        let message = tokio::time::timeout(Duration::from_secs(10), stream.next())
            .await
            .expect("no message within 10 s")
            .expect("stream ended")
            .expect("stream failed");
        if !matches!(message.payload, Some(pb::watch_orders_response::Payload::Heartbeat(_))) {
            return message;
        }
    }
}

fn change(message: &pb::WatchOrdersResponse) -> (String, u64, pb::OrderStatus) {
    match &message.payload {
        Some(pb::watch_orders_response::Payload::Change(change)) => {
            let event = change.event.as_ref().unwrap();
            (event.order_id.clone(), event.seq, event.status())
        }
        other => panic!("expected a change, got {other:?}"),
    }
}

#[tokio::test]
async fn a_watcher_that_reconnects_gets_every_missed_event_once_in_order() {
    let mut shop = shop().await;
    let customer = shop.server.customer().await;
    let restaurant_id = shop.restaurant.restaurant_id.clone();
    let staff = shop.server.staff(restaurant_id.parse().unwrap()).await;
    let existing = shop
        .server
        .orders(Some(&customer))
        .create_order(shop.order_request("order-before", "pm_card_visa"))
        .await
        .unwrap()
        .into_inner()
        .order
        .unwrap();

    // Two staff watch at once: both get the snapshot, then caught_up.
    let mut first = shop
        .server
        .restaurants(Some(&staff))
        .watch_orders(pb::WatchOrdersRequest { restaurant_id: restaurant_id.clone(), after_cursor: String::new() })
        .await
        .unwrap()
        .into_inner();
    let mut second = shop
        .server
        .restaurants(Some(&staff))
        .watch_orders(pb::WatchOrdersRequest { restaurant_id: restaurant_id.clone(), after_cursor: String::new() })
        .await
        .unwrap()
        .into_inner();
    for stream in [&mut first, &mut second] {
        match next_message(stream).await.payload {
            Some(pb::watch_orders_response::Payload::Snapshot(order)) => assert_eq!(order.order_id, existing.order_id),
            other => panic!("expected the snapshot, got {other:?}"),
        }
        match next_message(stream).await.payload {
            Some(pb::watch_orders_response::Payload::CaughtUp(caught_up)) => assert_eq!(caught_up.open_orders, 1),
            other => panic!("expected caught_up, got {other:?}"),
        }
    }

    // A new order arrives live on both.
    let live = shop
        .server
        .orders(Some(&customer))
        .create_order(shop.order_request("live-order", "pm_card_visa"))
        .await
        .unwrap()
        .into_inner()
        .order
        .unwrap();
    let mut cursor = String::new();
    for stream in [&mut first, &mut second] {
        let message = next_message(stream).await;
        assert_eq!(change(&message), (live.order_id.clone(), 1, pb::OrderStatus::Pending));
        cursor = message.cursor.clone();
    }
    drop(first);
    drop(second);

    // While nobody watches: three new orders and two transitions, then the
    // server restarts.
    let mut missed = Vec::new();
    for key in ["missed-1", "missed-2", "missed-3"] {
        let order = shop
            .server
            .orders(Some(&customer))
            .create_order(shop.order_request(key, "pm_card_visa"))
            .await
            .unwrap()
            .into_inner()
            .order
            .unwrap();
        missed.push((order.order_id, 1, pb::OrderStatus::Pending));
    }
    let mut staff_client = shop.server.restaurants(Some(&staff));
    for (order_id, status, expected) in [
        (&live.order_id, "accepted", pb::OrderStatus::Confirmed),
        (&existing.order_id, "rejected", pb::OrderStatus::Rejected),
    ] {
        let seq = staff_client
            .update_order_status(pb::UpdateOrderStatusRequest {
                order_id: order_id.clone(),
                status: status.into(),
                reason: "busy".into(),
                prep_time: None,
            })
            .await
            .unwrap()
            .into_inner()
            .seq;
        missed.push((order_id.clone(), seq, expected));
    }
    shop.server.restart().await;

    let mut resumed = shop
        .server
        .restaurants(Some(&staff))
        .watch_orders(pb::WatchOrdersRequest { restaurant_id: restaurant_id.clone(), after_cursor: cursor })
        .await
        .unwrap()
        .into_inner();
    let mut replayed = Vec::new();
    for _ in 0..missed.len() {
        replayed.push(change(&next_message(&mut resumed).await));
    }
    assert_eq!(replayed, missed, "every missed event, once, in commit order");
    match next_message(&mut resumed).await.payload {
        Some(pb::watch_orders_response::Payload::CaughtUp(caught_up)) => {
            assert_eq!(caught_up.open_orders, 0, "a resumed stream sent no snapshot")
        }
        other => panic!("expected caught_up after the replay, got {other:?}"),
    }
    // And nothing more until something happens.
    let quiet = tokio::time::timeout(Duration::from_millis(1500), resumed.next()).await;
    assert!(
        quiet.is_err()
            || matches!(
                quiet,
                Ok(Some(Ok(pb::WatchOrdersResponse {
                    payload: Some(pb::watch_orders_response::Payload::Heartbeat(_)),
                    ..
                })))
            ),
        "no duplicate after the replay: {quiet:?}"
    );
    shop.server.shut_down().await;
}

#[tokio::test]
async fn watching_needs_the_restaurants_staff_and_a_valid_cursor() {
    let shop = shop().await;
    let restaurant_id = shop.restaurant.restaurant_id.clone();
    let customer = shop.server.customer().await;
    let err = shop
        .server
        .restaurants(Some(&customer))
        .watch_orders(pb::WatchOrdersRequest { restaurant_id: restaurant_id.clone(), after_cursor: String::new() })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    let staff = shop.server.staff(restaurant_id.parse().unwrap()).await;
    // Malformed, or past every change of this restaurant (e.g. another restaurant's).
    for cursor in ["garbage", "1"] {
        let err = shop
            .server
            .restaurants(Some(&staff))
            .watch_orders(pb::WatchOrdersRequest { restaurant_id: restaurant_id.clone(), after_cursor: cursor.into() })
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{cursor}");
        assert!(err.message().contains("after_cursor"), "{cursor}: {}", err.message());
    }
    let current = shop
        .server
        .restaurants(Some(&staff))
        .watch_orders(pb::WatchOrdersRequest { restaurant_id, after_cursor: "0".into() })
        .await;
    assert!(current.is_ok(), "the cursor of a restaurant without changes yet: {current:?}");
}

#[tokio::test]
async fn an_idle_watch_gets_heartbeats_and_ends_cleanly_on_shutdown() {
    let mut server = TestServer::start_with(|config| config.service.watch_heartbeat = Duration::from_millis(300)).await;
    let (restaurant, _) = server.restaurant_at("Quiet", "pizza", LAT, LNG).await;
    let staff = server.staff(restaurant.restaurant_id.parse().unwrap()).await;
    let mut stream = server
        .restaurants(Some(&staff))
        .watch_orders(pb::WatchOrdersRequest {
            restaurant_id: restaurant.restaurant_id.clone(),
            after_cursor: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    let caught_up = stream.next().await.unwrap().unwrap();
    assert!(matches!(caught_up.payload, Some(pb::watch_orders_response::Payload::CaughtUp(_))));
    for _ in 0..2 {
        let beat = tokio::time::timeout(Duration::from_secs(3), stream.next()).await.unwrap().unwrap().unwrap();
        assert!(matches!(beat.payload, Some(pb::watch_orders_response::Payload::Heartbeat(_))), "{beat:?}");
        assert_eq!(beat.cursor, caught_up.cursor, "a heartbeat carries the current position");
    }

    let ending = tokio::spawn(async move {
        loop {
            match stream.next().await {
                Some(Ok(_)) => continue,
                Some(Err(status)) => return Some(status),
                None => return None,
            }
        }
    });
    server.shut_down().await;
    let status = tokio::time::timeout(Duration::from_secs(5), ending).await.unwrap().unwrap();
    let status = status.expect("the stream ends with a status saying why");
    assert_eq!(status.code(), Code::Unavailable);
    assert!(status.message().contains("last cursor"), "{}", status.message());
}

#[tokio::test]
async fn a_takeover_of_a_stale_key_and_the_slow_first_attempt_both_answer_the_one_order_and_keep_its_hold() {
    use foodfast_payment_sandbox::{Sandbox, SandboxConfig};
    // The provider answers `pm_provider_timeout` after 1.5 s; a key unanswered for 0.3 s is stale.
    let slow = SandboxConfig { timeout_delay: Duration::from_millis(1500), ..SandboxConfig::default() };
    let provider = Sandbox::start_with("127.0.0.1:0".parse().unwrap(), slow).await.unwrap();
    let server = TestServer::start_with(|config| {
        config.payments.base_url = provider.base_url();
        config.payments.timeout = Duration::from_secs(5);
        config.service.idempotency_stale_after = Duration::from_millis(300);
    })
    .await;
    let (restaurant, menu) = server.restaurant_at("Luigi", "pizza", LAT, LNG).await;
    let shop = Shop { server, restaurant, menu };
    let customer = shop.server.customer().await;
    let request = shop.order_request("slow-provider-key", "pm_provider_timeout");

    let mut first_client = shop.server.orders(Some(&customer));
    let first = tokio::spawn({
        let request = request.clone();
        async move { first_client.create_order(request).await }
    });
    tokio::time::sleep(Duration::from_millis(600)).await;
    // A retry after the key went stale takes it over and places the same order.
    let second = shop.server.orders(Some(&customer)).create_order(request).await;
    let first = first.await.unwrap();

    let first = first.expect("the first attempt answers the order").into_inner().order.unwrap();
    let second = second.expect("the takeover answers the order").into_inner().order.unwrap();
    assert_eq!(first.order_id, second.order_id);
    assert_eq!(shop.order_count().await, 1);
    // The attempt that lost the race to write did not void the hold of the order that was written.
    let intents = provider.intents();
    assert_eq!(intents.len(), 1, "{intents:?}");
    assert_eq!(intents[0].status, IntentStatus::Authorized, "{intents:?}");
}
