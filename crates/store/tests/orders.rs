//! The store applies every state-machine decision faithfully on PostgreSQL:
//! for every (status, driver assigned?, action, actor), an allowed transition
//! writes the decided status and payment, and exactly one event with the next
//! sequence numbers; a refused one changes nothing at all. Deliveries and the
//! drivers' load follow every assignment, delivery and cancellation.

use foodfast_domain::access::Role;
use std::collections::HashMap;
use std::time::Duration;

use chrono::{NaiveTime, Utc, Weekday};
use foodfast_domain::address::Address;
use foodfast_domain::geo::LatLng;
use foodfast_domain::hours::{OpeningHours, OpeningPeriod};
use foodfast_domain::menu::{Menu, MenuCategory, MenuItem};
use foodfast_domain::money::Currency;
use foodfast_domain::order::{self, Actor, OrderAction, OrderState, OrderStatus};
use foodfast_domain::pricing::{Cart, CartLine, PricingPolicy, quote};
use foodfast_domain::restaurant::RestaurantProfile;
use foodfast_store::Stores;
use foodfast_store::migrate;
use foodfast_store::orders::{
    Claim, EventKind, NewOrder, OrderEvent, Orders, PaymentStatus, TransitionFailure, TransitionRequest,
};
use foodfast_store::restaurants::Restaurants;
use foodfast_store::users::{NewUser, Users};
use rust_decimal::Decimal;
use uuid::Uuid;

struct Fixture {
    stores: Stores,
    orders: Orders,
    new_order: NewOrder,
    /// Holds the order whenever the starting state has a driver.
    driver_id: Uuid,
    /// The driver every assignment names.
    other_driver_id: Uuid,
}

async fn fixture() -> Fixture {
    let config = foodfast_testkit::fresh_stores().await;
    let stores = Stores::connect(&config).await.unwrap();
    migrate::migrate_postgres(&stores.postgres, &migrate::cockroach_migrations()).await.unwrap();
    let users = Users::new(stores.postgres.clone());
    let user = |email: &'static str, role| NewUser {
        email,
        phone: None,
        name: "T",
        role,
        password_hash: "!",
        restaurant_id: None,
    };
    let customer_id = users.create(&user("c@test", Role::Customer)).await.unwrap();
    let driver_id = users.create(&user("d@test", Role::Driver)).await.unwrap();
    users.add_driver(driver_id, "Paris", "bike", 1).await.unwrap();
    let other_driver_id = users.create(&user("d2@test", Role::Driver)).await.unwrap();
    users.add_driver(other_driver_id, "Paris", "bike", 1).await.unwrap();

    let location = LatLng::new(48.85, 2.35).unwrap();
    let address = Address { location, formatted: "1 Rue".into(), instructions: String::new() };
    let profile = RestaurantProfile {
        name: "R".into(),
        phone: String::new(),
        address: address.clone(),
        cuisines: vec!["pizza".into()],
        time_zone: chrono_tz::Europe::Paris,
        opening_hours: OpeningHours(vec![OpeningPeriod {
            day: Weekday::Mon,
            opens: NaiveTime::MIN,
            closes: NaiveTime::MIN,
        }]),
        delivery_radius_m: 5_000,
        prep_time: Duration::from_secs(600),
        currency: Currency::new("EUR").unwrap(),
        paused: false,
    };
    let restaurants = Restaurants::new(stores.postgres.clone(), stores.redis.clone(), Duration::from_secs(60));
    let restaurant = restaurants.create(&profile).await.unwrap();
    let item = MenuItem {
        id: Uuid::new_v4(),
        name: "Pizza".into(),
        description: String::new(),
        price: Decimal::new(1000, 2),
        available: true,
        image_url: None,
        customizations: vec![],
    };
    let menu =
        Menu { categories: vec![MenuCategory { id: Uuid::new_v4(), name: "Mains".into(), items: vec![item.clone()] }] };
    restaurants.upsert_menu(restaurant.id, &menu, None).await.unwrap();
    let cart = Cart { lines: vec![CartLine { item_id: item.id, quantity: 2, choices: vec![] }] };
    let items = HashMap::from([(item.id, item)]);
    let quote = quote(&PricingPolicy::default(), &profile.terms(), &items, &cart, location, Utc::now()).unwrap();
    let new_order = NewOrder {
        id: Uuid::nil(),
        customer_id,
        customer_name: "T".into(),
        restaurant_id: restaurant.id,
        restaurant_name: "R".into(),
        restaurant_address: address.clone(),
        delivery_address: address,
        customer_note: String::new(),
        line_notes: vec![String::new()],
        quote,
        estimated_ready_at: Utc::now(),
        payment_method_id: "pm_card_visa".into(),
        payment_id: "pi_test".into(),
        idempotency_key: String::new(),
    };
    Fixture {
        orders: Orders::new(stores.postgres.clone(), Default::default()),
        stores,
        new_order,
        driver_id,
        other_driver_id,
    }
}

impl Fixture {
    async fn place(&self) -> Uuid {
        let key = Uuid::new_v4().to_string();
        let Claim::Owned { order_id } =
            self.orders.claim(self.new_order.customer_id, &key, "h", Duration::from_secs(30)).await.unwrap()
        else {
            panic!("a fresh key is owned")
        };
        let new = NewOrder { id: order_id, idempotency_key: key, ..self.new_order.clone() };
        self.orders.place(&new).await.unwrap();
        order_id
    }

    /// Puts the order in `state` with an authorized (or, once accepted, captured) payment, and
    /// its delivery (held by `driver_id`, whose load is then 1) when it has a driver.
    async fn reset(&self, order_id: Uuid, state: OrderState) {
        let driver = state.has_driver.then_some(self.driver_id);
        let payment = if state.status == OrderStatus::Pending { "authorized" } else { "captured" };
        let client = self.stores.postgres.client().await.unwrap();
        client
            .execute(
                "UPDATE orders SET status = $2, driver_id = $3, payment_status = $4 WHERE id = $1",
                &[&order_id, &state.status.as_str(), &driver, &payment],
            )
            .await
            .unwrap();
        client.execute("DELETE FROM deliveries WHERE order_id = $1", &[&order_id]).await.unwrap();
        client.execute("UPDATE drivers SET active_deliveries = 0", &[]).await.unwrap();
        if let Some(driver) = driver {
            client
                .execute(
                    "INSERT INTO deliveries (order_id, driver_id, status) VALUES ($1, $2, 'assigned')",
                    &[&order_id, &driver],
                )
                .await
                .unwrap();
            client.execute("UPDATE drivers SET active_deliveries = 1 WHERE id = $1", &[&driver]).await.unwrap();
        }
    }

    /// The delivery's driver and status, and each driver's load.
    async fn delivery(&self, order_id: Uuid) -> (Option<(Uuid, String)>, i32, i32) {
        let client = self.stores.postgres.client().await.unwrap();
        let delivery = client
            .query_opt("SELECT driver_id, status FROM deliveries WHERE order_id = $1", &[&order_id])
            .await
            .unwrap()
            .map(|row| (row.get(0), row.get(1)));
        let load = |driver: Uuid| {
            let client = &client;
            async move {
                client
                    .query_one("SELECT active_deliveries FROM drivers WHERE id = $1", &[&driver])
                    .await
                    .unwrap()
                    .get::<_, i32>(0)
            }
        };
        (delivery, load(self.driver_id).await, load(self.other_driver_id).await)
    }

    async fn row(&self, order_id: Uuid) -> (String, Option<Uuid>, String, i64, i64, i64) {
        let client = self.stores.postgres.client().await.unwrap();
        let row = client
            .query_one(
                "SELECT o.status, o.driver_id, o.payment_status, o.last_event_seq,
                        (SELECT count(*) FROM order_events e WHERE e.order_id = o.id),
                        (SELECT event_seq FROM restaurants r WHERE r.id = o.restaurant_id)
                 FROM orders o WHERE o.id = $1",
                &[&order_id],
            )
            .await
            .unwrap();
        (row.get(0), row.get(1), row.get(2), row.get(3), row.get(4), row.get(5))
    }
}

fn restaurant_accepts(order_id: Uuid) -> TransitionRequest<'static> {
    TransitionRequest {
        order_id,
        action: OrderAction::Accept,
        actor: Actor::Restaurant,
        actor_id: None,
        reason: "",
        driver_id: None,
        ready_at: None,
    }
}

#[tokio::test]
async fn every_decision_of_the_state_machine_is_applied_exactly() {
    let fixture = fixture().await;
    let mut allowed = 0;
    let mut refused = 0;
    for status in OrderStatus::ALL {
        for has_driver in [false, true] {
            let state = OrderState { status, has_driver };
            let order_id = fixture.place().await;
            fixture.reset(order_id, state).await;
            for action in OrderAction::ALL {
                for actor in Actor::ALL {
                    let before = fixture.row(order_id).await;
                    let request = TransitionRequest {
                        order_id,
                        action,
                        actor,
                        actor_id: None,
                        reason: "test",
                        driver_id: Some(fixture.other_driver_id),
                        ready_at: None,
                    };
                    let outcome = fixture.orders.transition(request, |_| true).await;
                    let after = fixture.row(order_id).await;
                    let case = format!("{status:?} driver={has_driver} {action:?} by {actor:?}");
                    match order::decide(state, action, actor) {
                        Ok(decision) => {
                            allowed += 1;
                            let done = outcome.unwrap_or_else(|err| panic!("{case}: {err}"));
                            assert_eq!(done.order.status, decision.status, "{case}");
                            assert_eq!(after.0, decision.status.as_str(), "{case}");
                            assert_eq!(after.1.is_some(), decision.has_driver, "{case}");
                            let payment = match decision.payment {
                                Some(effect) => match effect {
                                    foodfast_domain::order::PaymentEffect::Capture => PaymentStatus::CapturePending,
                                    foodfast_domain::order::PaymentEffect::Void => PaymentStatus::VoidPending,
                                    foodfast_domain::order::PaymentEffect::Refund => PaymentStatus::RefundPending,
                                }
                                .as_str(),
                                None => before.2.as_str(),
                            };
                            assert_eq!(after.2, payment, "{case}");
                            assert_eq!(after.3, before.3 + 1, "{case}: the order's sequence moves by one");
                            assert_eq!(after.4, before.4 + 1, "{case}: one event is appended");
                            assert_eq!(after.5, before.5 + 1, "{case}: the restaurant's cursor moves by one");
                            assert_eq!(done.event.seq, after.3, "{case}");
                            assert_eq!(done.event.restaurant_seq, after.5, "{case}");
                            assert_eq!(done.event.previous_status, Some(status), "{case}");
                            let (delivery, load, other_load) = fixture.delivery(order_id).await;
                            let expected = match action {
                                OrderAction::AssignDriver | OrderAction::ReassignDriver => {
                                    assert_eq!(after.1, Some(fixture.other_driver_id), "{case}");
                                    assert_eq!(done.event.driver_id, Some(fixture.other_driver_id), "{case}");
                                    (Some((fixture.other_driver_id, "assigned")), 0, 1)
                                }
                                OrderAction::PickUp if has_driver => (Some((fixture.driver_id, "picked_up")), 1, 0),
                                OrderAction::Deliver if has_driver => (Some((fixture.driver_id, "delivered")), 0, 0),
                                OrderAction::Cancel if has_driver => (Some((fixture.driver_id, "cancelled")), 0, 0),
                                _ if has_driver => (Some((fixture.driver_id, "assigned")), 1, 0),
                                _ => (None, 0, 0),
                            };
                            let delivery = delivery.as_ref().map(|(driver, status)| (*driver, status.as_str()));
                            assert_eq!((delivery, load, other_load), expected, "{case}: delivery and drivers' load");
                            fixture.reset(order_id, state).await;
                        }
                        Err(expected) => {
                            refused += 1;
                            match outcome {
                                Err(TransitionFailure::Refused(err)) => assert_eq!(err, expected, "{case}"),
                                other => panic!("{case}: expected a refusal, got {other:?}"),
                            }
                            assert_eq!(after, before, "{case}: a refused transition changes nothing");
                        }
                    }
                }
            }
        }
    }
    println!("{allowed} allowed and {refused} refused transitions applied on PostgreSQL");
    assert!(allowed > 50 && refused > 500);
}

#[tokio::test]
async fn a_transition_the_caller_may_not_make_or_on_a_missing_order_changes_nothing() {
    let fixture = fixture().await;
    let order_id = fixture.place().await;
    let before = fixture.row(order_id).await;
    let forbidden = fixture.orders.transition(restaurant_accepts(order_id), |_| false).await;
    assert!(matches!(forbidden, Err(TransitionFailure::Forbidden(id)) if id == order_id), "{forbidden:?}");
    assert_eq!(fixture.row(order_id).await, before);
    let missing = Uuid::new_v4();
    let outcome = fixture.orders.transition(restaurant_accepts(missing), |_| true).await;
    assert!(matches!(outcome, Err(TransitionFailure::NotFound(id)) if id == missing), "{outcome:?}");
}

#[tokio::test]
async fn racing_assignments_give_an_order_exactly_one_driver_and_respect_capacity() {
    let fixture = fixture().await;
    let order_id = fixture.place().await;
    fixture.reset(order_id, OrderState { status: OrderStatus::ReadyForPickup, has_driver: false }).await;
    let assign = |driver_id: Uuid, order_id: Uuid| {
        let orders = fixture.orders.clone();
        async move {
            let request = TransitionRequest {
                order_id,
                action: OrderAction::AssignDriver,
                actor: Actor::Support,
                actor_id: None,
                reason: "by hand",
                driver_id: Some(driver_id),
                ready_at: None,
            };
            orders.transition(request, |_| true).await
        }
    };
    let (first, second) = tokio::join!(assign(fixture.driver_id, order_id), assign(fixture.other_driver_id, order_id));
    let (winner, loser) = match (first, second) {
        (Ok(won), Err(lost)) | (Err(lost), Ok(won)) => (won, lost),
        other => panic!("exactly one assignment must win: {other:?}"),
    };
    assert!(matches!(loser, TransitionFailure::Refused(order::TransitionError::AlreadyAssigned)), "{loser:?}");
    let driver = winner.order.driver_id.unwrap();
    let (delivery, load, other_load) = fixture.delivery(order_id).await;
    assert_eq!(delivery, Some((driver, "assigned".to_string())));
    assert_eq!(load + other_load, 1, "only the winner's load moved");
    assert!(winner.delivery_id.is_some());

    // The winner (capacity 1) cannot take a second order; an unknown driver is named.
    let second_order = fixture.place().await;
    fixture.reset(second_order, OrderState { status: OrderStatus::ReadyForPickup, has_driver: false }).await;
    let client = fixture.stores.postgres.client().await.unwrap();
    client.execute("UPDATE drivers SET active_deliveries = 1 WHERE id = $1", &[&driver]).await.unwrap();
    let before = fixture.row(second_order).await;
    match assign(driver, second_order).await {
        Err(TransitionFailure::DriverAtCapacity(id)) => assert_eq!(id, driver),
        other => panic!("expected DriverAtCapacity, got {other:?}"),
    }
    let stranger = Uuid::new_v4();
    match assign(stranger, second_order).await {
        Err(TransitionFailure::DriverNotFound(id)) => assert_eq!(id, stranger),
        other => panic!("expected DriverNotFound, got {other:?}"),
    }
    assert_eq!(fixture.row(second_order).await, before, "a refused assignment changes nothing");
}

#[tokio::test]
async fn an_event_of_a_kind_written_by_a_newer_version_reads_back_as_unknown_and_the_order_goes_on() {
    let fixture = fixture().await;
    let order_id = fixture.place().await;
    let placement = fixture.orders.events(order_id).await.unwrap().remove(0);
    // What a newer replica writes during a rolling upgrade: the next event, of a kind this one lacks.
    let client = fixture.stores.postgres.client().await.unwrap();
    client
        .execute(
            "INSERT INTO order_events (order_id, seq, restaurant_id, restaurant_seq, kind, status, previous_status, actor)
             SELECT o.id, o.last_event_seq + 1, o.restaurant_id, r.event_seq + 1, 'driver_waved', o.status, o.status,
                    'driver'
             FROM orders o JOIN restaurants r ON r.id = o.restaurant_id WHERE o.id = $1",
            &[&order_id],
        )
        .await
        .unwrap();
    client.execute("UPDATE orders SET last_event_seq = last_event_seq + 1 WHERE id = $1", &[&order_id]).await.unwrap();
    client
        .execute("UPDATE restaurants SET event_seq = event_seq + 1 WHERE id = $1", &[&fixture.new_order.restaurant_id])
        .await
        .unwrap();

    let unknown = |event: &OrderEvent| {
        assert_eq!(event.kind, EventKind::Unknown);
        assert_eq!(
            (event.seq, event.status, event.previous_status),
            (2, OrderStatus::Pending, Some(OrderStatus::Pending))
        );
        assert_eq!(event.actor, Actor::Driver);
    };
    let history = fixture.orders.events(order_id).await.unwrap();
    assert_eq!(history.len(), 2, "{history:?}");
    assert_eq!(history[0].kind, EventKind::StatusChanged);
    unknown(&history[1]);
    let resumed = fixture.orders.events_after(order_id, 1, 10).await.unwrap();
    assert_eq!(resumed.len(), 1, "{resumed:?}");
    unknown(&resumed[0]);
    let restaurant_feed = fixture
        .orders
        .restaurant_events_after(fixture.new_order.restaurant_id, placement.restaurant_seq, 10)
        .await
        .unwrap();
    assert_eq!(restaurant_feed.len(), 1, "{restaurant_feed:?}");
    unknown(&restaurant_feed[0]);

    // This version's next transition follows it.
    let done = fixture.orders.transition(restaurant_accepts(order_id), |_| true).await.unwrap();
    assert_eq!(
        (done.event.seq, done.event.kind, done.event.status),
        (3, EventKind::StatusChanged, OrderStatus::Confirmed)
    );
}

#[tokio::test]
async fn a_payment_whose_call_failed_waits_its_turn_and_a_new_step_makes_it_due_again() {
    let fixture = fixture().await;
    for _ in 0..2 {
        let order_id = fixture.place().await;
        fixture.orders.transition(restaurant_accepts(order_id), |_| true).await.unwrap();
    }
    let due = |limit| {
        let orders = &fixture.orders;
        async move { orders.unsettled_payments(limit).await.unwrap() }
    };
    let due_ids = |limit| async move { due(limit).await.into_iter().map(|p| p.order_id).collect::<Vec<_>>() };
    let both = due(10).await;
    assert_eq!(both.len(), 2, "both captures are pending: {both:?}");
    assert!(both.iter().all(|p| p.status == PaymentStatus::CapturePending && p.failures == 0), "{both:?}");
    let (first, second) = (both[0].order_id, both[1].order_id);
    let failure = |order_id| {
        let client = fixture.stores.postgres.client();
        async move {
            let row = client
                .await
                .unwrap()
                .query_one("SELECT payment_failures, payment_error FROM orders WHERE id = $1", &[&order_id])
                .await
                .unwrap();
            (row.get::<_, i64>(0), row.get::<_, Option<String>>(1))
        }
    };
    let make_due = |order_id| {
        let client = fixture.stores.postgres.client();
        async move {
            let sql = "UPDATE orders SET payment_retry_at = now() WHERE id = $1";
            client.await.unwrap().execute(sql, &[&order_id]).await.unwrap();
        }
    };

    // The provider refuses the first in line: it steps aside, and a sweep of one takes the other.
    let wait = Duration::from_secs(60);
    fixture.orders.defer_payment(first, PaymentStatus::CapturePending, wait, "refused: one").await.unwrap();
    assert_eq!(due_ids(1).await, [second]);
    assert_eq!(due_ids(10).await, [second], "not due before its time");
    assert_eq!(failure(first).await, (1, Some("refused: one".to_owned())));

    // Failures in a row are counted, and the latest error kept.
    make_due(first).await;
    fixture.orders.defer_payment(first, PaymentStatus::CapturePending, wait, "refused: two").await.unwrap();
    assert_eq!(failure(first).await, (2, Some("refused: two".to_owned())));
    make_due(first).await;
    assert_eq!(due(10).await.iter().find(|p| p.order_id == first).map(|p| p.failures), Some(2));

    // A failure of a call the order has moved past changes nothing.
    fixture.orders.defer_payment(first, PaymentStatus::VoidPending, wait, "stale").await.unwrap();
    assert_eq!(failure(first).await, (2, Some("refused: two".to_owned())));
    assert_eq!(due_ids(10).await.len(), 2, "still due");

    // A new step of the order (here a cancellation: void) makes it due at once, with a clean slate.
    fixture.orders.defer_payment(first, PaymentStatus::CapturePending, wait, "refused: three").await.unwrap();
    let cancel = TransitionRequest {
        action: OrderAction::Cancel,
        actor: Actor::Support,
        reason: "test",
        ..restaurant_accepts(first)
    };
    fixture.orders.transition(cancel, |_| true).await.unwrap();
    let void = due(10).await.into_iter().find(|p| p.order_id == first).expect("the void is due");
    assert_eq!((void.status, void.failures), (PaymentStatus::VoidPending, 0));
    assert_eq!(failure(first).await, (0, None));

    // So does a settled call.
    fixture.orders.defer_payment(second, PaymentStatus::CapturePending, wait, "refused").await.unwrap();
    make_due(second).await;
    assert!(
        fixture.orders.settle_payment(second, PaymentStatus::CapturePending, PaymentStatus::Captured).await.unwrap()
    );
    assert_eq!(failure(second).await, (0, None));
}
