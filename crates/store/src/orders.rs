//! Orders on CockroachDB. Every change to an order is one SERIALIZABLE
//! transaction that also appends its `order_events` row, with the order's
//! next `seq` and the restaurant's next `restaurant_seq`: the status history,
//! the outbox, and the cursor restaurant dashboards resume from.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use foodfast_domain::address::Address;
use foodfast_domain::money::Currency;
use foodfast_domain::order::{
    self, Actor, Decision, OrderAction, OrderState, OrderStatus, PaymentEffect, Stop, TransitionError,
};
use foodfast_domain::pricing::{PricedChoice, Quote};
use foodfast_domain::zones::Zones;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use tokio_postgres::Row;
use tokio_postgres::types::Json;
use uuid::Uuid;

use crate::postgres::{Postgres, TxError};
use crate::{StoreError, sql};

/// Where the payment of an order stands. `*Pending` means decided in the
/// order's transaction but not yet confirmed by the provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PaymentStatus {
    Authorized,
    CapturePending,
    Captured,
    VoidPending,
    Voided,
    RefundPending,
    Refunded,
}

impl PaymentStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            PaymentStatus::Authorized => "authorized",
            PaymentStatus::CapturePending => "capture_pending",
            PaymentStatus::Captured => "captured",
            PaymentStatus::VoidPending => "void_pending",
            PaymentStatus::Voided => "voided",
            PaymentStatus::RefundPending => "refund_pending",
            PaymentStatus::Refunded => "refunded",
        }
    }

    fn parse(s: &str) -> Result<Self, StoreError> {
        Ok(match s {
            "authorized" => PaymentStatus::Authorized,
            "capture_pending" => PaymentStatus::CapturePending,
            "captured" => PaymentStatus::Captured,
            "void_pending" => PaymentStatus::VoidPending,
            "voided" => PaymentStatus::Voided,
            "refund_pending" => PaymentStatus::RefundPending,
            "refunded" => PaymentStatus::Refunded,
            other => return Err(StoreError::Corrupt(format!("unknown payment status {other:?}"))),
        })
    }

    /// The provider call still owed, and the status once it succeeded.
    pub fn unsettled(self) -> Option<(PaymentEffect, PaymentStatus)> {
        match self {
            PaymentStatus::CapturePending => Some((PaymentEffect::Capture, PaymentStatus::Captured)),
            PaymentStatus::VoidPending => Some((PaymentEffect::Void, PaymentStatus::Voided)),
            PaymentStatus::RefundPending => Some((PaymentEffect::Refund, PaymentStatus::Refunded)),
            _ => None,
        }
    }

    /// The status once `effect` is decided on a payment in this status. A
    /// refund of a capture the provider has not confirmed yet releases the
    /// hold instead: nothing was taken.
    fn then(self, effect: PaymentEffect) -> Self {
        match (self, effect) {
            (PaymentStatus::CapturePending, PaymentEffect::Refund) => PaymentStatus::VoidPending,
            (_, PaymentEffect::Capture) => PaymentStatus::CapturePending,
            (_, PaymentEffect::Void) => PaymentStatus::VoidPending,
            (_, PaymentEffect::Refund) => PaymentStatus::RefundPending,
        }
    }
}

/// A payment that owes the provider a call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnsettledPayment {
    pub order_id: Uuid,
    /// The provider's id for the payment.
    pub payment_id: String,
    pub status: PaymentStatus,
    /// How many calls for this step have failed in a row.
    pub failures: u32,
}

/// What happened to an order, as `order_events` records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    StatusChanged,
    DriverAssigned,
    /// Nobody accepted the order after every dispatch round; status unchanged.
    DispatchDelayed,
    /// The order's driver reported arriving at a stop; status unchanged.
    DriverArrived(Stop),
    /// The restaurant gave or changed when the food will be ready; status unchanged.
    PrepTimeUpdated,
    /// A kind this version does not know, written by a newer one (during a
    /// rolling upgrade): read and passed on with its status, never written.
    Unknown,
}

impl EventKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::StatusChanged => "status_changed",
            EventKind::DriverAssigned => "driver_assigned",
            EventKind::DispatchDelayed => "dispatch_delayed",
            EventKind::DriverArrived(Stop::Restaurant) => "driver_arrived_at_restaurant",
            EventKind::DriverArrived(Stop::Customer) => "driver_arrived_at_customer",
            EventKind::PrepTimeUpdated => "prep_time_updated",
            EventKind::Unknown => "unknown",
        }
    }

    fn parse(s: &str) -> Self {
        match s {
            "status_changed" => EventKind::StatusChanged,
            "driver_assigned" => EventKind::DriverAssigned,
            "dispatch_delayed" => EventKind::DispatchDelayed,
            "driver_arrived_at_restaurant" => EventKind::DriverArrived(Stop::Restaurant),
            "driver_arrived_at_customer" => EventKind::DriverArrived(Stop::Customer),
            "prep_time_updated" => EventKind::PrepTimeUpdated,
            _ => EventKind::Unknown,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct OrderLine {
    pub item_id: Uuid,
    pub name: String,
    pub unit_price: Decimal,
    pub quantity: u32,
    pub choices: Vec<PricedChoice>,
    pub note: String,
    pub line_total: Decimal,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Order {
    pub id: Uuid,
    pub customer_id: Uuid,
    pub customer_name: String,
    pub restaurant_id: Uuid,
    pub restaurant_name: String,
    pub restaurant_address: Address,
    pub driver_id: Option<Uuid>,
    pub status: OrderStatus,
    pub delivery_address: Address,
    pub customer_note: String,
    pub currency: Currency,
    pub subtotal: Decimal,
    pub delivery_fee: Decimal,
    pub tax: Decimal,
    pub total: Decimal,
    pub payment_method_id: String,
    pub payment_id: Option<String>,
    pub payment_status: PaymentStatus,
    pub estimated_ready_at: DateTime<Utc>,
    pub estimated_delivery_earliest: DateTime<Utc>,
    pub estimated_delivery_latest: DateTime<Utc>,
    pub last_event_seq: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Empty when read without its lines (lists, dashboards).
    pub lines: Vec<OrderLine>,
}

impl Order {
    pub fn state(&self) -> OrderState {
        OrderState { status: self.status, has_driver: self.driver_id.is_some() }
    }
}

/// A recorded arrival: the order as it is after it, and the event when this
/// call wrote it (`None`: an earlier call did).
#[derive(Debug, Clone, PartialEq)]
pub struct Arrival {
    pub order: Order,
    pub new_event: Option<OrderEvent>,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ArrivalRefused {
    /// No such order, or not this driver's.
    #[error("order {0} not found")]
    NotFound(Uuid),
    #[error("order {order_id} is {}: a driver arrives at the {} {}", .status.described(), stop_name(*.stop), stop_when(*.stop))]
    NotNow { order_id: Uuid, status: OrderStatus, stop: Stop },
}

fn stop_name(stop: Stop) -> &'static str {
    match stop {
        Stop::Restaurant => "restaurant",
        Stop::Customer => "customer",
    }
}

fn stop_when(stop: Stop) -> &'static str {
    match stop {
        Stop::Restaurant => "before picking the food up",
        Stop::Customer => "once the food is picked up",
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct OrderEvent {
    pub order_id: Uuid,
    pub seq: i64,
    pub restaurant_id: Uuid,
    pub restaurant_seq: i64,
    pub kind: EventKind,
    pub status: OrderStatus,
    pub previous_status: Option<OrderStatus>,
    pub actor_id: Option<Uuid>,
    pub actor: Actor,
    pub reason: String,
    pub created_at: DateTime<Utc>,
    /// The driver a `DriverAssigned` event assigned.
    pub driver_id: Option<Uuid>,
}

/// Everything `place` writes, already priced and paid for (authorized).
#[derive(Debug, Clone)]
pub struct NewOrder {
    pub id: Uuid,
    pub customer_id: Uuid,
    pub customer_name: String,
    pub restaurant_id: Uuid,
    pub restaurant_name: String,
    pub restaurant_address: Address,
    pub delivery_address: Address,
    pub customer_note: String,
    /// Line notes, by line index of `quote.lines`.
    pub line_notes: Vec<String>,
    pub quote: Quote,
    pub estimated_ready_at: DateTime<Utc>,
    pub payment_method_id: String,
    pub payment_id: String,
    pub idempotency_key: String,
}

/// The outcome of claiming an idempotency key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// This call owns the key and places order `order_id`.
    Owned { order_id: Uuid },
    /// An earlier call with the same request placed this order.
    Completed { order_id: Uuid },
    /// An earlier call with the same request is still placing it.
    InProgress,
    /// The key was used for a different request.
    Mismatch,
}

/// Why a transition did not happen.
#[derive(Debug, thiserror::Error)]
pub enum TransitionFailure {
    #[error("order {0} not found")]
    NotFound(Uuid),
    #[error("not allowed to change order {0}")]
    Forbidden(Uuid),
    #[error(transparent)]
    Refused(#[from] TransitionError),
    #[error("driver {0} not found")]
    DriverNotFound(Uuid),
    #[error("driver {0} already holds as many deliveries as allowed")]
    DriverAtCapacity(Uuid),
    #[error("order already has driver {0}")]
    SameDriver(Uuid),
    #[error("assigning a driver needs the driver's id")]
    DriverMissing,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A committed transition.
#[derive(Debug, Clone)]
pub struct Transitioned {
    pub order: Order,
    pub event: OrderEvent,
    /// The order's delivery, when the transition created or changed it.
    pub delivery_id: Option<Uuid>,
    /// Drivers whose load changed, for their live availability.
    pub driver_loads: Vec<DriverLoad>,
    /// Drivers to tell: the order's driver before and after, and any whose
    /// offer for it was withdrawn.
    pub drivers_affected: Vec<Uuid>,
    /// Whether a push notice to the customer was queued with it.
    pub customer_notified: bool,
}

/// A driver's load after a transition took or gave back one of its slots.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DriverLoad {
    pub driver_id: Uuid,
    /// Holding as many deliveries as allowed: no more offers for now.
    pub at_capacity: bool,
}

/// Who asks for a transition, and on whose behalf.
#[derive(Debug, Clone, Copy)]
pub struct TransitionRequest<'a> {
    pub order_id: Uuid,
    pub action: OrderAction,
    pub actor: Actor,
    pub actor_id: Option<Uuid>,
    pub reason: &'a str,
    /// The driver to assign, for `AssignDriver` and `ReassignDriver`.
    pub driver_id: Option<Uuid>,
    /// The restaurant's new estimate of when the food is ready: recorded
    /// with a `PrepTimeUpdated` event after the transition's own.
    pub ready_at: Option<DateTime<Utc>>,
}

#[derive(Clone)]
pub struct Orders {
    postgres: Postgres,
    /// Places a confirmed order's dispatch job in its city.
    zones: Arc<Zones>,
}

impl Orders {
    pub fn new(postgres: Postgres, zones: Arc<Zones>) -> Self {
        Self { postgres, zones }
    }

    /// Claims `key` for one CreateOrder. A claim older than `stale_after`
    /// that never completed (its owner crashed) is taken over, keeping its
    /// order id so the payment authorization is reused too.
    #[tracing::instrument(target = "foodfast::trace", name = "Orders.claim", skip_all, fields(otel.kind = "client", db.system = "postgresql"))]
    pub async fn claim(
        &self,
        customer_id: Uuid,
        key: &str,
        request_hash: &str,
        stale_after: Duration,
    ) -> Result<Claim, StoreError> {
        let client = self.postgres.client().await?;
        let order_id = Uuid::new_v4();
        let claimed = client
            .execute(sql::CLAIM_IDEMPOTENCY_KEY, &[&customer_id, &key, &request_hash, &order_id])
            .await
            .map_err(StoreError::postgres)?;
        if claimed == 1 {
            return Ok(Claim::Owned { order_id });
        }
        let stale_before = Utc::now() - stale_after;
        let Some(row) = client
            .query_opt(sql::SELECT_IDEMPOTENCY_KEY, &[&customer_id, &key, &stale_before])
            .await
            .map_err(StoreError::postgres)?
        else {
            // Released between our insert and select: the caller tries again.
            return Ok(Claim::InProgress);
        };
        let (hash, order_id, completed, stale): (String, Uuid, bool, bool) =
            (row.get(0), row.get(1), row.get(2), row.get(3));
        if hash != request_hash {
            return Ok(Claim::Mismatch);
        }
        if completed {
            return Ok(Claim::Completed { order_id });
        }
        if stale {
            let taken = client
                .execute(sql::TAKE_OVER_IDEMPOTENCY_KEY, &[&customer_id, &key, &stale_before])
                .await
                .map_err(StoreError::postgres)?;
            if taken == 1 {
                return Ok(Claim::Owned { order_id });
            }
        }
        Ok(Claim::InProgress)
    }

    /// Gives a claimed key back after the order could not be placed (e.g.
    /// the payment was declined), so nothing of the attempt remains.
    #[tracing::instrument(target = "foodfast::trace", name = "Orders.release", skip_all, fields(otel.kind = "client", db.system = "postgresql"))]
    pub async fn release(&self, customer_id: Uuid, key: &str, order_id: Uuid) -> Result<(), StoreError> {
        self.postgres.statement(sql::RELEASE_IDEMPOTENCY_KEY, &[&customer_id, &key, &order_id]).await?;
        Ok(())
    }

    /// Gives up a claim but keeps its order id: the next call with the key
    /// takes it over at once and places that same order, so whatever the
    /// payment provider already holds under the order's id is found, not
    /// held twice.
    #[tracing::instrument(target = "foodfast::trace", name = "Orders.abandon", skip_all, fields(otel.kind = "client", db.system = "postgresql"))]
    pub async fn abandon(&self, customer_id: Uuid, key: &str, order_id: Uuid) -> Result<(), StoreError> {
        self.postgres.statement(sql::ABANDON_IDEMPOTENCY_KEY, &[&customer_id, &key, &order_id]).await?;
        Ok(())
    }

    /// Appends the event that `driver` arrived at `stop` of its order, once
    /// per driver and stop: a resend changes nothing. Arriving at the customer
    /// while the order is still PICKED_UP first moves it to DELIVERING.
    #[tracing::instrument(target = "foodfast::trace", name = "Orders.record_arrival", skip_all, fields(otel.kind = "client", db.system = "postgresql"))]
    pub async fn record_arrival(
        &self,
        order_id: Uuid,
        driver_id: Uuid,
        stop: Stop,
    ) -> Result<Result<Arrival, ArrivalRefused>, StoreError> {
        let outcome = self
            .postgres
            .serializable(|tx| {
                let zones = self.zones.clone();
                Box::pin(async move {
                    let Some(row) = tx.query_opt(sql::SELECT_ORDER, &[&order_id]).await? else {
                        return Ok(Err(ArrivalRefused::NotFound(order_id)));
                    };
                    let order = order_from_row(&row)?;
                    if order.driver_id != Some(driver_id) {
                        return Ok(Err(ArrivalRefused::NotFound(order_id)));
                    }
                    let kind = EventKind::DriverArrived(stop);
                    if tx.query_opt(sql::SELECT_DRIVER_EVENT, &[&order_id, &kind.as_str(), &driver_id]).await?.is_some()
                    {
                        return Ok(Ok((Arrival { order, new_event: None }, false)));
                    }
                    if !order::may_arrive(order.status, stop) {
                        return Ok(Err(ArrivalRefused::NotNow { order_id, status: order.status, stop }));
                    }
                    let starts_delivering = stop == Stop::Customer && order.status == OrderStatus::PickedUp;
                    if starts_delivering {
                        let request = TransitionRequest {
                            order_id,
                            action: OrderAction::StartDelivering,
                            actor: Actor::Driver,
                            actor_id: Some(driver_id),
                            reason: "",
                            driver_id: None,
                            ready_at: None,
                        };
                        let its_driver = move |order: &Order| order.driver_id == Some(driver_id);
                        if let Err(failure) = apply_transition(tx, &zones, &request, &its_driver).await? {
                            // Read in this transaction a moment ago: only a broken invariant gets here.
                            return Err(TxError::Store(StoreError::Corrupt(format!(
                                "order {order_id} could not start delivering: {failure}"
                            ))));
                        }
                    }
                    let by = Notice { actor: Actor::Driver, actor_id: Some(driver_id), reason: String::new() };
                    let (order, event) = append_notice(tx, order_id, kind, by, Some(driver_id)).await?;
                    Ok(Ok((Arrival { order, new_event: Some(event) }, starts_delivering)))
                })
            })
            .await?;
        Ok(outcome.map(|(arrival, started_delivering)| {
            if started_delivering {
                crate::metrics::order_transition(Some(OrderStatus::PickedUp), OrderStatus::Delivering);
            }
            arrival
        }))
    }

    /// Writes the order, its lines, its first event and the completed
    /// idempotency key in one transaction.
    #[tracing::instrument(target = "foodfast::trace", name = "Orders.place", skip_all, fields(otel.kind = "client", db.system = "postgresql"))]
    pub async fn place(&self, new: &NewOrder) -> Result<(Order, OrderEvent), StoreError> {
        let (row_order, restaurant_seq) = self
            .postgres
            .serializable(|tx| {
                // Each attempt owns its copy: the future may not borrow the caller.
                let new = new.clone();
                Box::pin(async move {
                    let quote = &new.quote;
                    let dropoff = new.delivery_address.location;
                    let row = tx
                        .query_one(
                            sql::INSERT_ORDER,
                            &[
                                &new.id,
                                &new.customer_id,
                                &new.customer_name,
                                &new.restaurant_id,
                                &new.restaurant_name,
                                &Json(&new.restaurant_address),
                                &Json(&new.delivery_address),
                                &dropoff.lat,
                                &dropoff.lng,
                                &new.customer_note,
                                &quote.currency.as_str(),
                                &quote.subtotal,
                                &quote.delivery_fee,
                                &quote.tax,
                                &quote.total,
                                &new.payment_method_id,
                                &new.payment_id,
                                &new.estimated_ready_at,
                                &quote.eta_earliest,
                                &quote.eta_latest,
                            ],
                        )
                        .await?;
                    for (index, line) in quote.lines.iter().enumerate() {
                        let line_no = index as i32;
                        let quantity = line.quantity as i32;
                        let note = new.line_notes.get(index).map(String::as_str).unwrap_or("");
                        tx.execute(
                            sql::INSERT_ORDER_ITEM,
                            &[
                                &new.id,
                                &line_no,
                                &line.item_id,
                                &line.name,
                                &line.unit_price,
                                &quantity,
                                &Json(&line.choices),
                                &note,
                                &line.line_total,
                            ],
                        )
                        .await?;
                    }
                    let status = OrderStatus::Pending.as_str();
                    let kind = EventKind::StatusChanged.as_str();
                    let actor = Actor::Customer.as_str();
                    let restaurant_seq = next_restaurant_event_seq(tx, new.restaurant_id).await?;
                    tx.execute(
                        sql::INSERT_ORDER_EVENT,
                        &[
                            &new.id,
                            &1i64,
                            &new.restaurant_id,
                            &restaurant_seq,
                            &kind,
                            &status,
                            &None::<&str>,
                            &Some(new.customer_id),
                            &actor,
                            &"",
                            &None::<Uuid>,
                        ],
                    )
                    .await?;
                    let completed = tx
                        .execute(sql::COMPLETE_IDEMPOTENCY_KEY, &[&new.customer_id, &new.idempotency_key, &new.id])
                        .await?;
                    if completed != 1 {
                        return Err(TxError::Store(StoreError::Conflict { attempts: 1 }));
                    }
                    Ok((order_from_row(&row)?, restaurant_seq))
                })
            })
            .await?;
        let mut order = row_order;
        order.lines = new
            .quote
            .lines
            .iter()
            .enumerate()
            .map(|(index, line)| OrderLine {
                item_id: line.item_id,
                name: line.name.clone(),
                unit_price: line.unit_price,
                quantity: line.quantity,
                choices: line.choices.clone(),
                note: new.line_notes.get(index).cloned().unwrap_or_default(),
                line_total: line.line_total,
            })
            .collect();
        let event = OrderEvent {
            order_id: order.id,
            seq: 1,
            restaurant_id: order.restaurant_id,
            restaurant_seq,
            kind: EventKind::StatusChanged,
            status: OrderStatus::Pending,
            previous_status: None,
            actor_id: Some(order.customer_id),
            actor: Actor::Customer,
            reason: String::new(),
            created_at: order.created_at,
            driver_id: None,
        };
        crate::metrics::order_transition(None, event.status);
        Ok((order, event))
    }

    /// The deliveries `driver_id` holds (assigned, not yet delivered or
    /// cancelled), oldest first: each delivery id with its order's id. Ids
    /// only: a driver's stream re-reads this every resync and needs the
    /// orders of new deliveries alone.
    #[tracing::instrument(target = "foodfast::trace", name = "Orders.active_deliveries", skip_all, fields(otel.kind = "client", db.system = "postgresql"))]
    pub async fn active_deliveries(&self, driver_id: Uuid) -> Result<Vec<(Uuid, Uuid)>, StoreError> {
        let client = self.postgres.client().await?;
        let statement = client.prepare_cached(sql::SELECT_ACTIVE_DELIVERIES).await.map_err(StoreError::postgres)?;
        let held = client.query(&statement, &[&driver_id]).await.map_err(StoreError::postgres)?;
        Ok(held.iter().map(|row| (row.get(0), row.get(1))).collect())
    }

    /// The order with its lines.
    #[tracing::instrument(target = "foodfast::trace", name = "Orders.get", skip_all, fields(otel.kind = "client", db.system = "postgresql"))]
    pub async fn get(&self, id: Uuid) -> Result<Option<Order>, StoreError> {
        let client = self.postgres.client().await?;
        let Some(row) = client
            .query_opt(&client.prepare_cached(sql::SELECT_ORDER).await.map_err(StoreError::postgres)?, &[&id])
            .await
            .map_err(StoreError::postgres)?
        else {
            return Ok(None);
        };
        let mut order = order_from_row(&row)?;
        let lines = client
            .query(&client.prepare_cached(sql::SELECT_ORDER_ITEMS).await.map_err(StoreError::postgres)?, &[&id])
            .await
            .map_err(StoreError::postgres)?;
        order.lines = lines.iter().map(line_from_row).collect::<Result<_, _>>()?;
        Ok(Some(order))
    }

    /// The order's events after `seq`, oldest first, at most `limit`.
    #[tracing::instrument(target = "foodfast::trace", name = "Orders.events_after", skip_all, fields(otel.kind = "client", db.system = "postgresql"))]
    pub async fn events_after(&self, order_id: Uuid, seq: i64, limit: u32) -> Result<Vec<OrderEvent>, StoreError> {
        let client = self.postgres.client().await?;
        let rows = client
            .query(
                &client.prepare_cached(sql::SELECT_ORDER_EVENTS_AFTER).await.map_err(StoreError::postgres)?,
                &[&order_id, &seq, &i64::from(limit)],
            )
            .await
            .map_err(StoreError::postgres)?;
        rows.iter().map(event_from_row).collect()
    }

    /// The order's events, oldest first: its status history.
    #[tracing::instrument(target = "foodfast::trace", name = "Orders.events", skip_all, fields(otel.kind = "client", db.system = "postgresql"))]
    pub async fn events(&self, order_id: Uuid) -> Result<Vec<OrderEvent>, StoreError> {
        let client = self.postgres.client().await?;
        let rows = client
            .query(&client.prepare_cached(sql::SELECT_ORDER_EVENTS).await.map_err(StoreError::postgres)?, &[&order_id])
            .await
            .map_err(StoreError::postgres)?;
        rows.iter().map(event_from_row).collect()
    }

    /// A customer's orders, newest first, after the keyset `(created_at, id)`.
    #[tracing::instrument(target = "foodfast::trace", name = "Orders.list_for_customer", skip_all, fields(otel.kind = "client", db.system = "postgresql"))]
    pub async fn list_for_customer(
        &self,
        customer_id: Uuid,
        after: Option<(DateTime<Utc>, Uuid)>,
        limit: u32,
    ) -> Result<Vec<Order>, StoreError> {
        let client = self.postgres.client().await?;
        let limit = i64::from(limit);
        let rows = match after {
            None => {
                client
                    .query(
                        &client
                            .prepare_cached(sql::SELECT_CUSTOMER_ORDERS_FIRST)
                            .await
                            .map_err(StoreError::postgres)?,
                        &[&customer_id, &limit],
                    )
                    .await
            }
            Some((created_at, id)) => {
                client
                    .query(
                        &client
                            .prepare_cached(sql::SELECT_CUSTOMER_ORDERS_AFTER)
                            .await
                            .map_err(StoreError::postgres)?,
                        &[&customer_id, &limit, &created_at, &id],
                    )
                    .await
            }
        }
        .map_err(StoreError::postgres)?;
        rows.iter().map(order_from_row).collect()
    }

    /// Applies one action through the state machine. `may_act` sees the
    /// order (locked) and says whether the caller may touch it at all.
    #[tracing::instrument(target = "foodfast::trace", name = "Orders.transition", skip_all, fields(otel.kind = "client", db.system = "postgresql"))]
    pub async fn transition(
        &self,
        request: TransitionRequest<'_>,
        may_act: impl Fn(&Order) -> bool + Send + Sync + 'static,
    ) -> Result<Transitioned, TransitionFailure> {
        let may_act = std::sync::Arc::new(may_act);
        let outcome = self
            .postgres
            .serializable(|tx| {
                let may_act = may_act.clone();
                let zones = self.zones.clone();
                let reason = request.reason.to_string();
                let TransitionRequest { order_id, action, actor, actor_id, driver_id, ready_at, .. } = request;
                Box::pin(async move {
                    let request =
                        TransitionRequest { order_id, action, actor, actor_id, reason: &reason, driver_id, ready_at };
                    apply_transition(tx, &zones, &request, &*may_act).await
                })
            })
            .await?;
        let mut transitioned = outcome?;
        crate::metrics::order_transition(transitioned.event.previous_status, transitioned.event.status);
        transitioned.order.lines = self.lines(request.order_id).await?;
        Ok(transitioned)
    }

    /// The order's lines, in order.
    pub(crate) async fn lines(&self, order_id: Uuid) -> Result<Vec<OrderLine>, StoreError> {
        let client = self.postgres.client().await?;
        let lines = client
            .query(&client.prepare_cached(sql::SELECT_ORDER_ITEMS).await.map_err(StoreError::postgres)?, &[&order_id])
            .await
            .map_err(StoreError::postgres)?;
        lines.iter().map(line_from_row).collect()
    }

    /// The number of the restaurant's latest order change (0 before the
    /// first), or `None` if there is no such restaurant.
    #[tracing::instrument(target = "foodfast::trace", name = "Orders.restaurant_cursor", skip_all, fields(otel.kind = "client", db.system = "postgresql"))]
    pub async fn restaurant_cursor(&self, restaurant_id: Uuid) -> Result<Option<i64>, StoreError> {
        let client = self.postgres.client().await?;
        let row = client
            .query_opt(
                &client.prepare_cached(sql::SELECT_RESTAURANT_EVENT_SEQ).await.map_err(StoreError::postgres)?,
                &[&restaurant_id],
            )
            .await
            .map_err(StoreError::postgres)?;
        Ok(row.map(|row| row.get(0)))
    }

    /// The restaurant's cursor and its open orders, read together.
    #[tracing::instrument(target = "foodfast::trace", name = "Orders.open_orders", skip_all, fields(otel.kind = "client", db.system = "postgresql"))]
    pub async fn open_orders(&self, restaurant_id: Uuid) -> Result<(i64, Vec<Order>), StoreError> {
        self.postgres
            .serializable(|tx| {
                Box::pin(async move {
                    let Some(row) = tx.query_opt(sql::SELECT_RESTAURANT_EVENT_SEQ, &[&restaurant_id]).await? else {
                        return Ok((0, Vec::new()));
                    };
                    let cursor: i64 = row.get(0);
                    let rows = tx.query(sql::SELECT_OPEN_RESTAURANT_ORDERS, &[&restaurant_id]).await?;
                    let orders = rows.iter().map(order_from_row).collect::<Result<_, _>>()?;
                    Ok((cursor, orders))
                })
            })
            .await
    }

    /// The restaurant's events after `cursor`, in commit order, at most `limit`.
    #[tracing::instrument(target = "foodfast::trace", name = "Orders.restaurant_events_after", skip_all, fields(otel.kind = "client", db.system = "postgresql"))]
    pub async fn restaurant_events_after(
        &self,
        restaurant_id: Uuid,
        cursor: i64,
        limit: u32,
    ) -> Result<Vec<OrderEvent>, StoreError> {
        let client = self.postgres.client().await?;
        let rows = client
            .query(sql::SELECT_RESTAURANT_EVENTS_AFTER, &[&restaurant_id, &cursor, &i64::from(limit)])
            .await
            .map_err(StoreError::postgres)?;
        rows.iter().map(event_from_row).collect()
    }

    /// Orders their restaurant has left pending for longer than `for_longer_than`,
    /// oldest first, at most `limit`.
    #[tracing::instrument(target = "foodfast::trace", name = "Orders.unanswered", skip_all, fields(otel.kind = "client", db.system = "postgresql"))]
    pub async fn unanswered(&self, for_longer_than: Duration, limit: u32) -> Result<Vec<Uuid>, StoreError> {
        let client = self.postgres.client().await?;
        let rows = client
            .query(
                &client.prepare_cached(sql::SELECT_UNANSWERED_ORDERS).await.map_err(StoreError::postgres)?,
                &[&for_longer_than.as_secs_f64(), &i64::from(limit)],
            )
            .await
            .map_err(StoreError::postgres)?;
        Ok(rows.iter().map(|row| row.get(0)).collect())
    }

    /// Orders whose payment owes a provider call that is due, the longest
    /// due first.
    #[tracing::instrument(target = "foodfast::trace", name = "Orders.unsettled_payments", skip_all, fields(otel.kind = "client", db.system = "postgresql"))]
    pub async fn unsettled_payments(&self, limit: u32) -> Result<Vec<UnsettledPayment>, StoreError> {
        let client = self.postgres.client().await?;
        let rows = client
            .query(
                &client.prepare_cached(sql::SELECT_UNSETTLED_PAYMENTS).await.map_err(StoreError::postgres)?,
                &[&i64::from(limit)],
            )
            .await
            .map_err(StoreError::postgres)?;
        rows.iter()
            .map(|row| {
                let payment_id: Option<String> = row.get(1);
                let failures: i64 = row.get(3);
                Ok(UnsettledPayment {
                    order_id: row.get(0),
                    payment_id: payment_id.unwrap_or_default(),
                    status: PaymentStatus::parse(row.get(2))?,
                    failures: u32::try_from(failures).unwrap_or(u32::MAX),
                })
            })
            .collect()
    }

    /// The provider call owed from `status` failed with `error`: the sweep
    /// comes back to it after `wait`, and to others meanwhile. Nothing
    /// changes if a step of the order moved the payment on meanwhile.
    #[tracing::instrument(target = "foodfast::trace", name = "Orders.defer_payment", skip_all, fields(otel.kind = "client", db.system = "postgresql"))]
    pub async fn defer_payment(
        &self,
        order_id: Uuid,
        status: PaymentStatus,
        wait: Duration,
        error: &str,
    ) -> Result<(), StoreError> {
        self.postgres
            .statement(sql::DEFER_PAYMENT, &[&order_id, &status.as_str(), &wait.as_secs_f64(), &error])
            .await?;
        Ok(())
    }

    /// Moves the payment from `from` to `to` (the provider confirmed the call
    /// owed from `from`), unless a transition changed it meanwhile. Returns
    /// whether it moved.
    #[tracing::instrument(target = "foodfast::trace", name = "Orders.settle_payment", skip_all, fields(otel.kind = "client", db.system = "postgresql"))]
    pub async fn settle_payment(
        &self,
        order_id: Uuid,
        from: PaymentStatus,
        to: PaymentStatus,
    ) -> Result<bool, StoreError> {
        let client = self.postgres.client().await?;
        let moved = client
            .execute(sql::SETTLE_PAYMENT, &[&order_id, &from.as_str(), &to.as_str()])
            .await
            .map_err(StoreError::postgres)?;
        Ok(moved == 1)
    }
}

/// One transition inside the caller's transaction: the state machine's
/// decision, the delivery and drivers' load, the dispatch job, and the
/// event. The order is returned without its lines.
pub(crate) async fn apply_transition(
    tx: &tokio_postgres::Transaction<'_>,
    zones: &Zones,
    request: &TransitionRequest<'_>,
    may_act: &(dyn Fn(&Order) -> bool + Send + Sync),
) -> Result<Result<Transitioned, TransitionFailure>, TxError> {
    let Some(row) = tx.query_opt(sql::LOCK_ORDER, &[&request.order_id]).await? else {
        return Ok(Err(TransitionFailure::NotFound(request.order_id)));
    };
    let before = order_from_row(&row)?;
    if !may_act(&before) {
        return Ok(Err(TransitionFailure::Forbidden(request.order_id)));
    }
    let Decision { status, has_driver, payment } = match order::decide(before.state(), request.action, request.actor) {
        Ok(decision) => decision,
        Err(refused) => return Ok(Err(TransitionFailure::Refused(refused))),
    };
    let moved = match move_delivery(tx, &before, request.action, request.driver_id).await? {
        Ok(moved) => moved,
        Err(failure) => return Ok(Err(failure)),
    };
    let driver_id = if has_driver { moved.driver_id } else { None };
    let payment_status = payment.map_or(before.payment_status, |effect| before.payment_status.then(effect));
    let row = tx
        .query_one(
            sql::UPDATE_ORDER_STATUS,
            &[&request.order_id, &status.as_str(), &driver_id, &payment_status.as_str(), &request.ready_at],
        )
        .await?;
    let after = order_from_row(&row)?;
    let withdrawn_offers = keep_dispatch_in_step(tx, zones, &before, &after).await?;
    let restaurant_seq = next_restaurant_event_seq(tx, before.restaurant_id).await?;
    let assigns = matches!(request.action, OrderAction::AssignDriver | OrderAction::ReassignDriver);
    let event = OrderEvent {
        order_id: request.order_id,
        seq: after.last_event_seq,
        restaurant_id: before.restaurant_id,
        restaurant_seq,
        kind: if assigns { EventKind::DriverAssigned } else { EventKind::StatusChanged },
        status,
        previous_status: Some(before.status),
        actor_id: request.actor_id,
        actor: request.actor,
        reason: request.reason.to_string(),
        created_at: after.updated_at,
        driver_id: if assigns { driver_id } else { None },
    };
    insert_event(tx, &event).await?;
    let customer_notified = crate::notifications::queue_order_notice(tx, &after, &event).await?;
    let after = match request.ready_at {
        Some(_) => {
            let by = Notice { actor: request.actor, actor_id: request.actor_id, reason: String::new() };
            append_notice(tx, request.order_id, EventKind::PrepTimeUpdated, by, None).await?.0
        }
        None => after,
    };
    let mut drivers_affected: Vec<Uuid> =
        before.driver_id.into_iter().chain(after.driver_id).chain(withdrawn_offers).collect();
    drivers_affected.sort();
    drivers_affected.dedup();
    Ok(Ok(Transitioned {
        order: after,
        event,
        delivery_id: moved.delivery_id,
        driver_loads: moved.loads,
        drivers_affected,
        customer_notified,
    }))
}

/// Who appends a notice event, and why.
pub(crate) struct Notice {
    pub actor: Actor,
    pub actor_id: Option<Uuid>,
    pub reason: String,
}

/// Appends an event that leaves the order's status as it is (a driver's
/// arrival, a dispatch delay): the order's and the restaurant's next numbers,
/// then the event. Returns the order as it is now, and the event.
pub(crate) async fn append_notice(
    tx: &tokio_postgres::Transaction<'_>,
    order_id: Uuid,
    kind: EventKind,
    by: Notice,
    driver_id: Option<Uuid>,
) -> Result<(Order, OrderEvent), TxError> {
    let order = order_from_row(&tx.query_one(sql::NEXT_ORDER_EVENT_SEQ, &[&order_id]).await?)?;
    let restaurant_seq = next_restaurant_event_seq(tx, order.restaurant_id).await?;
    let event = OrderEvent {
        order_id,
        seq: order.last_event_seq,
        restaurant_id: order.restaurant_id,
        restaurant_seq,
        kind,
        status: order.status,
        previous_status: Some(order.status),
        actor_id: by.actor_id,
        actor: by.actor,
        reason: by.reason,
        created_at: order.updated_at,
        driver_id,
    };
    insert_event(tx, &event).await?;
    Ok((order, event))
}

/// Takes the restaurant's next event number (the WatchOrders cursor). Every
/// event of every order of a restaurant bumps the same row, so callers take
/// it as late as they can: the row stays locked from here until commit.
async fn next_restaurant_event_seq(tx: &tokio_postgres::Transaction<'_>, restaurant_id: Uuid) -> Result<i64, TxError> {
    Ok(tx.query_one(sql::NEXT_RESTAURANT_EVENT_SEQ, &[&restaurant_id]).await?.get(0))
}

/// Appends `event` to the order's log.
pub(crate) async fn insert_event(tx: &tokio_postgres::Transaction<'_>, event: &OrderEvent) -> Result<(), TxError> {
    tx.execute(
        sql::INSERT_ORDER_EVENT,
        &[
            &event.order_id,
            &event.seq,
            &event.restaurant_id,
            &event.restaurant_seq,
            &event.kind.as_str(),
            &event.status.as_str(),
            &event.previous_status.map(OrderStatus::as_str),
            &event.actor_id,
            &event.actor.as_str(),
            &event.reason,
            &event.driver_id,
        ],
    )
    .await?;
    Ok(())
}

/// Opens the order's dispatch job when it is confirmed, and ends matching
/// once it has a driver or is over, withdrawing any open offer. Returns the
/// drivers whose offers were withdrawn.
async fn keep_dispatch_in_step(
    tx: &tokio_postgres::Transaction<'_>,
    zones: &Zones,
    before: &Order,
    after: &Order,
) -> Result<Vec<Uuid>, TxError> {
    if before.status == OrderStatus::Pending && after.status == OrderStatus::Confirmed {
        let pickup = before.restaurant_address.location;
        tx.execute(
            sql::INSERT_DISPATCH_JOB,
            &[&before.id, &Uuid::new_v4(), &zones.city_of(pickup), &pickup.lat, &pickup.lng],
        )
        .await?;
        return Ok(Vec::new());
    }
    let phase = if after.status.is_terminal() {
        "closed"
    } else if after.driver_id.is_some() && after.driver_id != before.driver_id {
        "assigned"
    } else {
        return Ok(Vec::new());
    };
    tx.execute(sql::SET_DISPATCH_PHASE, &[&before.id, &phase]).await?;
    let withdrawn = tx.query(sql::WITHDRAW_OPEN_OFFERS, &[&before.id]).await?;
    Ok(withdrawn.iter().map(|row| row.get(0)).collect())
}

/// What `move_delivery` did.
struct Moved {
    /// The order's driver afterwards.
    driver_id: Option<Uuid>,
    /// The delivery touched, if any.
    delivery_id: Option<Uuid>,
    loads: Vec<DriverLoad>,
}

/// Keeps `deliveries` and the drivers' load in step with an allowed
/// transition: assigning takes capacity from the new driver (and gives the
/// old one's back), delivering or cancelling gives it back. A delivery keeps
/// the id its dispatch job gave it (offers name it), or gets a new one.
async fn move_delivery(
    tx: &tokio_postgres::Transaction<'_>,
    before: &Order,
    action: OrderAction,
    new_driver: Option<Uuid>,
) -> Result<Result<Moved, TransitionFailure>, TxError> {
    let order_id = before.id;
    let delivery = |row: Option<Row>| row.map(|row| row.get::<_, Uuid>(0));
    let load = |driver_id: Uuid, row: Row| DriverLoad { driver_id, at_capacity: row.get(0) };
    let unchanged = |delivery_id| Moved { driver_id: before.driver_id, delivery_id, loads: Vec::new() };
    match action {
        OrderAction::AssignDriver | OrderAction::ReassignDriver => {
            let Some(driver_id) = new_driver else { return Ok(Err(TransitionFailure::DriverMissing)) };
            if before.driver_id == Some(driver_id) {
                return Ok(Err(TransitionFailure::SameDriver(driver_id)));
            }
            let Some(taken) = tx.query_opt(sql::TAKE_DRIVER_CAPACITY, &[&driver_id]).await? else {
                let exists = tx.query_opt(sql::SELECT_DRIVER_EXISTS, &[&driver_id]).await?.is_some();
                return Ok(Err(if exists {
                    TransitionFailure::DriverAtCapacity(driver_id)
                } else {
                    TransitionFailure::DriverNotFound(driver_id)
                }));
            };
            let mut loads = vec![load(driver_id, taken)];
            if let Some(previous) = before.driver_id
                && let Some(released) = tx.query_opt(sql::RELEASE_DRIVER_CAPACITY, &[&previous]).await?
            {
                loads.push(load(previous, released));
            }
            let planned: Option<Uuid> = delivery(tx.query_opt(sql::SELECT_DISPATCH_DELIVERY_ID, &[&order_id]).await?);
            let delivery_id = tx
                .query_one(sql::ASSIGN_DELIVERY, &[&order_id, &driver_id, &planned.unwrap_or_else(Uuid::new_v4)])
                .await?
                .get(0);
            Ok(Ok(Moved { driver_id: Some(driver_id), delivery_id: Some(delivery_id), loads }))
        }
        OrderAction::PickUp => {
            Ok(Ok(unchanged(delivery(tx.query_opt(sql::MARK_DELIVERY_PICKED_UP, &[&order_id]).await?))))
        }
        OrderAction::Deliver | OrderAction::Cancel if before.driver_id.is_some() => {
            let statement = if action == OrderAction::Deliver {
                sql::MARK_DELIVERY_DELIVERED
            } else {
                sql::MARK_DELIVERY_CANCELLED
            };
            let mut moved = unchanged(delivery(tx.query_opt(statement, &[&order_id]).await?));
            if let Some(driver_id) = before.driver_id
                && let Some(released) = tx.query_opt(sql::RELEASE_DRIVER_CAPACITY, &[&driver_id]).await?
            {
                moved.loads.push(load(driver_id, released));
            }
            Ok(Ok(moved))
        }
        _ => Ok(Ok(unchanged(None))),
    }
}

/// Reads the columns of `sql::order_columns!` in their order.
pub(crate) fn order_from_row(row: &Row) -> Result<Order, StoreError> {
    let id: Uuid = row.get(0);
    let corrupt = |what: &str, err: String| StoreError::Corrupt(format!("order {id}: {what}: {err}"));
    let Json(restaurant_address): Json<Address> = row.get(5);
    let Json(delivery_address): Json<Address> = row.get(8);
    let status: &str = row.get(7);
    let currency: &str = row.get(10);
    Ok(Order {
        id,
        customer_id: row.get(1),
        customer_name: row.get(2),
        restaurant_id: row.get(3),
        restaurant_name: row.get(4),
        restaurant_address,
        driver_id: row.get(6),
        status: status.parse().map_err(|err: order::UnknownName| corrupt("status", err.to_string()))?,
        delivery_address,
        customer_note: row.get(9),
        currency: Currency::new(currency).map_err(|err| corrupt("currency", err.to_string()))?,
        subtotal: row.get(11),
        delivery_fee: row.get(12),
        tax: row.get(13),
        total: row.get(14),
        payment_method_id: row.get(15),
        payment_id: row.get(16),
        payment_status: PaymentStatus::parse(row.get(17))?,
        estimated_ready_at: row.get(18),
        estimated_delivery_earliest: row.get(19),
        estimated_delivery_latest: row.get(20),
        last_event_seq: row.get(21),
        created_at: row.get(22),
        updated_at: row.get(23),
        lines: Vec::new(),
    })
}

/// Reads `line_no, menu_item_id, name, unit_price, quantity, choices, note, line_total`.
fn line_from_row(row: &Row) -> Result<OrderLine, StoreError> {
    let Json(choices): Json<Vec<PricedChoice>> = row.get(5);
    Ok(OrderLine {
        item_id: row.get(1),
        name: row.get(2),
        unit_price: row.get(3),
        quantity: row.get::<_, i32>(4) as u32,
        choices,
        note: row.get(6),
        line_total: row.get(7),
    })
}

/// Reads the columns of `sql::event_columns!` in their order.
fn event_from_row(row: &Row) -> Result<OrderEvent, StoreError> {
    let order_id: Uuid = row.get(0);
    let corrupt = |what: &str, err: String| StoreError::Corrupt(format!("event of order {order_id}: {what}: {err}"));
    let status = |s: &str| s.parse::<OrderStatus>().map_err(|err| corrupt("status", err.to_string()));
    let previous: Option<&str> = row.get(6);
    let actor: &str = row.get(8);
    Ok(OrderEvent {
        order_id,
        seq: row.get(1),
        restaurant_id: row.get(2),
        restaurant_seq: row.get(3),
        kind: EventKind::parse(row.get(4)),
        status: status(row.get(5))?,
        previous_status: previous.map(status).transpose()?,
        actor_id: row.get(7),
        actor: actor.parse().map_err(|err: order::UnknownName| corrupt("actor", err.to_string()))?,
        reason: row.get(9),
        created_at: row.get(10),
        driver_id: row.get(11),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_event_kind_reads_back_and_a_newer_versions_kind_is_unknown_not_corrupt() {
        let kinds = [
            EventKind::StatusChanged,
            EventKind::DriverAssigned,
            EventKind::DispatchDelayed,
            EventKind::DriverArrived(Stop::Restaurant),
            EventKind::DriverArrived(Stop::Customer),
            EventKind::PrepTimeUpdated,
        ];
        for kind in kinds {
            assert_eq!(EventKind::parse(kind.as_str()), kind);
        }
        assert_eq!(EventKind::parse("driver_waved"), EventKind::Unknown);
    }

    #[test]
    fn a_refund_before_the_capture_was_confirmed_voids_the_hold() {
        assert_eq!(PaymentStatus::CapturePending.then(PaymentEffect::Refund), PaymentStatus::VoidPending);
        assert_eq!(PaymentStatus::Captured.then(PaymentEffect::Refund), PaymentStatus::RefundPending);
        assert_eq!(PaymentStatus::Authorized.then(PaymentEffect::Void), PaymentStatus::VoidPending);
        assert_eq!(PaymentStatus::Authorized.then(PaymentEffect::Capture), PaymentStatus::CapturePending);
    }
}
