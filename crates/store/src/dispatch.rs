//! Dispatch on CockroachDB. A confirmed order has a job (written with the
//! order's transition); dispatchers on any replica lease due jobs, and every
//! offer, answer and expiry is a SERIALIZABLE transaction guarded by
//! conditional writes: at most one open offer per order and per driver
//! (unique partial indexes), an offer only from the job's current lease
//! (its epoch fences a dispatcher whose lease ran out), and the assignment
//! itself through the order's state machine, in the same transaction as the
//! accepted offer, taking one of the driver's capacity slots.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use foodfast_domain::geo::LatLng;
use foodfast_domain::order::{Actor, OrderAction, OrderStatus};
use foodfast_domain::zones::Zones;
use tokio_postgres::Row;
use uuid::Uuid;

use crate::orders::{
    EventKind, Notice, Order, OrderEvent, TransitionFailure, TransitionRequest, Transitioned, append_notice,
    apply_transition, order_from_row,
};
use crate::postgres::{Postgres, TxError};
use crate::{StoreError, sql};

/// A job a dispatcher leased, with what it needs to match it.
#[derive(Debug, Clone)]
pub struct ClaimedJob {
    pub order_id: Uuid,
    /// The delivery's id, which offers name.
    pub delivery_id: Uuid,
    pub city: String,
    pub restaurant: LatLng,
    /// Offers made so far.
    pub rounds: u32,
    /// Fences this lease: writes under an older epoch are refused.
    pub lease_epoch: i64,
    pub started_at: DateTime<Utc>,
    pub flagged: bool,
    /// The database's clock at the claim, to measure waits against.
    pub claimed_at: DateTime<Utc>,
    pub food_ready_at: DateTime<Utc>,
    pub open_offer: Option<OpenOffer>,
    /// Every offer of this order before, whatever the driver answered.
    pub offered: Vec<PastOffer>,
}

/// An earlier offer of a job's order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PastOffer {
    pub driver_id: Uuid,
    /// When it closed at the latest.
    pub deadline: DateTime<Utc>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpenOffer {
    pub offer_id: Uuid,
    pub driver_id: Uuid,
    pub deadline: DateTime<Utc>,
}

/// A driver's record, as scoring needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DriverRecord {
    pub driver_id: Uuid,
    pub capacity: u32,
    pub active_deliveries: u32,
    pub offers_received: i64,
    pub offers_accepted: i64,
    pub last_offer_at: Option<DateTime<Utc>>,
}

/// An offer a dispatcher wants to make.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NewOffer {
    pub driver_id: Uuid,
    /// Higher is better; comparable within one order only.
    pub score: f64,
    pub distance_m: u32,
    pub timeout: Duration,
}

/// What became of an attempt to make an offer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Offered {
    Made {
        offer_id: Uuid,
        deadline: DateTime<Utc>,
    },
    /// The driver has an open offer already (from another order or replica).
    DriverTaken,
    /// The job is no longer this dispatcher's, or no longer needs a driver.
    LeaseLost,
}

/// Where an offer stands. The names are stored in SQL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OfferStatus {
    Pending,
    Accepted,
    Declined,
    Expired,
    Withdrawn,
}

impl OfferStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            OfferStatus::Pending => "pending",
            OfferStatus::Accepted => "accepted",
            OfferStatus::Declined => "declined",
            OfferStatus::Expired => "expired",
            OfferStatus::Withdrawn => "withdrawn",
        }
    }

    fn parse(s: &str) -> Result<Self, StoreError> {
        Ok(match s {
            "pending" => OfferStatus::Pending,
            "accepted" => OfferStatus::Accepted,
            "declined" => OfferStatus::Declined,
            "expired" => OfferStatus::Expired,
            "withdrawn" => OfferStatus::Withdrawn,
            other => return Err(StoreError::Corrupt(format!("unknown offer status {other:?}"))),
        })
    }
}

/// Why a driver's answer to an offer was not taken.
#[derive(Debug, thiserror::Error)]
pub enum AnswerFailure {
    #[error("no offer of delivery {0} was made to this driver")]
    NoOffer(Uuid),
    #[error("the offer of delivery {delivery_id} is no longer open: it was {}", .status.as_str())]
    Closed { delivery_id: Uuid, status: OfferStatus },
    #[error("the offer of delivery {0} expired before it was accepted")]
    Expired(Uuid),
    #[error(transparent)]
    Assign(TransitionFailure),
}

/// How an accepted offer was answered.
#[derive(Debug)]
pub enum Accepted {
    /// The order got the driver now.
    Now(Transitioned),
    /// A resend of an accept that had committed: the order the driver holds.
    Before(Order),
}

impl Accepted {
    pub fn order(&self) -> &Order {
        match self {
            Accepted::Now(transitioned) => &transitioned.order,
            Accepted::Before(order) => order,
        }
    }
}

/// A driver's open offer, as its app is shown it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DriverOffer {
    pub offer_id: Uuid,
    pub delivery_id: Uuid,
    pub order_id: Uuid,
    pub distance_m: u32,
    pub deadline: DateTime<Utc>,
}

/// Where matching stands for an order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobPhase {
    Searching,
    Offered,
    Assigned,
    Closed,
}

impl JobPhase {
    fn parse(s: &str) -> Result<Self, StoreError> {
        Ok(match s {
            "searching" => JobPhase::Searching,
            "offered" => JobPhase::Offered,
            "assigned" => JobPhase::Assigned,
            "closed" => JobPhase::Closed,
            other => return Err(StoreError::Corrupt(format!("unknown dispatch phase {other:?}"))),
        })
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct OfferRecord {
    pub offer_id: Uuid,
    pub driver_id: Uuid,
    pub round: u32,
    pub score: f64,
    pub distance_m: u32,
    pub offered_at: DateTime<Utc>,
    pub deadline: DateTime<Utc>,
    pub status: OfferStatus,
    pub answered_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct MatchingState {
    pub phase: JobPhase,
    pub rounds: u32,
    pub city: String,
    pub started_at: DateTime<Utc>,
    pub flagged_at: Option<DateTime<Utc>>,
    /// Oldest first.
    pub offers: Vec<OfferRecord>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct FlaggedOrder {
    pub order_id: Uuid,
    pub restaurant_id: Uuid,
    pub restaurant_name: String,
    pub city: String,
    pub status: OrderStatus,
    pub rounds: u32,
    pub flagged_at: DateTime<Utc>,
}

#[derive(Clone)]
pub struct Dispatch {
    postgres: Postgres,
    zones: Arc<Zones>,
}

fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

fn count(value: i32) -> u32 {
    u32::try_from(value).unwrap_or(0)
}

impl Dispatch {
    pub fn new(postgres: Postgres, zones: Arc<Zones>) -> Self {
        Self { postgres, zones }
    }

    /// Leases up to `limit` due jobs to `owner` for `lease`, oldest due
    /// first. A job whose dispatcher died is due again once its lease ends.
    #[tracing::instrument(target = "foodfast::trace", name = "Dispatch.claim_due", skip_all, fields(otel.kind = "client", db.system = "postgresql"))]
    pub async fn claim_due(&self, owner: Uuid, lease: Duration, limit: u32) -> Result<Vec<ClaimedJob>, StoreError> {
        // A lone statement, not a SERIALIZABLE transaction: on PostgreSQL the
        // scan of due jobs would conflict with every transition touching a job.
        let mut rows =
            self.postgres.statement(sql::CLAIM_DISPATCH_JOBS, &[&owner, &millis(lease), &i64::from(limit)]).await?;
        // RETURNING has no order of its own.
        rows.sort_by_key(|row| row.get::<_, DateTime<Utc>>(10));
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<Uuid> = rows.iter().map(|row| row.get(0)).collect();
        let client = self.postgres.client().await?;
        let ready = client.query(sql::SELECT_READY_TIMES, &[&ids]).await.map_err(StoreError::postgres)?;
        let offers = client.query(sql::SELECT_JOB_OFFERS, &[&ids]).await.map_err(StoreError::postgres)?;
        rows.iter()
            .map(|row| {
                let order_id: Uuid = row.get(0);
                let restaurant = LatLng::new(row.get(3), row.get(4))
                    .map_err(|err| StoreError::Corrupt(format!("dispatch job {order_id}: {err}")))?;
                let claimed_at: DateTime<Utc> = row.get(9);
                let food_ready_at =
                    ready.iter().find(|r| r.get::<_, Uuid>(0) == order_id).map_or(claimed_at, |r| r.get(1));
                let mine = offers.iter().filter(|o| o.get::<_, Uuid>(0) == order_id);
                let open_offer = mine.clone().find(|o| o.get::<_, &str>(3) == "pending").map(|o| OpenOffer {
                    offer_id: o.get(1),
                    driver_id: o.get(2),
                    deadline: o.get(4),
                });
                Ok(ClaimedJob {
                    order_id,
                    delivery_id: row.get(1),
                    city: row.get(2),
                    restaurant,
                    rounds: count(row.get(5)),
                    lease_epoch: row.get(6),
                    started_at: row.get(7),
                    flagged: row.get::<_, Option<DateTime<Utc>>>(8).is_some(),
                    claimed_at,
                    food_ready_at,
                    open_offer,
                    offered: mine.map(|o| PastOffer { driver_id: o.get(2), deadline: o.get(4) }).collect(),
                })
            })
            .collect()
    }

    /// The records of these drivers (unknown ids are left out).
    #[tracing::instrument(target = "foodfast::trace", name = "Dispatch.candidates", skip_all, fields(otel.kind = "client", db.system = "postgresql"))]
    pub async fn candidates(&self, driver_ids: &[Uuid]) -> Result<Vec<DriverRecord>, StoreError> {
        let client = self.postgres.client().await?;
        let statement = client.prepare_cached(sql::SELECT_DISPATCH_CANDIDATES).await.map_err(StoreError::postgres)?;
        let rows = client.query(&statement, &[&driver_ids]).await.map_err(StoreError::postgres)?;
        Ok(rows
            .iter()
            .map(|row| DriverRecord {
                driver_id: row.get(0),
                capacity: count(row.get(1)),
                active_deliveries: count(row.get(2)),
                offers_received: row.get(3),
                offers_accepted: row.get(4),
                last_offer_at: row.get(5),
            })
            .collect())
    }

    /// Offers `job` to a driver, if the job is still this lease's and
    /// neither the order nor the driver has an open offer. The lease ends
    /// with it: the job is due again at the offer's deadline.
    #[tracing::instrument(target = "foodfast::trace", name = "Dispatch.offer", skip_all, fields(otel.kind = "client", db.system = "postgresql"))]
    pub async fn offer(&self, job: &ClaimedJob, offer: &NewOffer) -> Result<Offered, StoreError> {
        let (order_id, epoch, offer) = (job.order_id, job.lease_epoch, *offer);
        let offered = self
            .postgres
            .serializable(|tx| {
                Box::pin(async move {
                    let Some(locked) = tx.query_opt(sql::LOCK_LEASED_JOB, &[&order_id, &epoch]).await? else {
                        return Ok(Offered::LeaseLost);
                    };
                    let round = locked.get::<_, i32>(0) + 1;
                    let offer_id = Uuid::new_v4();
                    let distance = i32::try_from(offer.distance_m).unwrap_or(i32::MAX);
                    let made = tx
                        .query_opt(
                            sql::INSERT_OFFER,
                            &[
                                &offer_id,
                                &order_id,
                                &offer.driver_id,
                                &round,
                                &offer.score,
                                &distance,
                                &millis(offer.timeout),
                            ],
                        )
                        .await?;
                    let Some(made) = made else { return Ok(Offered::DriverTaken) };
                    let deadline: DateTime<Utc> = made.get(0);
                    tx.execute(sql::MARK_JOB_OFFERED, &[&order_id, &deadline]).await?;
                    tx.execute(sql::COUNT_DRIVER_OFFER, &[&offer.driver_id]).await?;
                    Ok(Offered::Made { offer_id, deadline })
                })
            })
            .await?;
        if matches!(offered, Offered::Made { .. }) {
            crate::metrics::offer_made();
        }
        Ok(offered)
    }

    /// Hands the job back, due again after `after`.
    #[tracing::instrument(target = "foodfast::trace", name = "Dispatch.release", skip_all, fields(otel.kind = "client", db.system = "postgresql"))]
    pub async fn release(&self, job: &ClaimedJob, after: Duration) -> Result<(), StoreError> {
        let client = self.postgres.client().await?;
        client
            .execute(sql::RELEASE_JOB, &[&job.order_id, &job.lease_epoch, &millis(after)])
            .await
            .map_err(StoreError::postgres)?;
        Ok(())
    }

    /// Expires an open offer whose deadline passed, putting its job back to
    /// searching. Returns the driver if it was still open.
    #[tracing::instrument(target = "foodfast::trace", name = "Dispatch.expire", skip_all, fields(otel.kind = "client", db.system = "postgresql"))]
    pub async fn expire(&self, offer_id: Uuid, order_id: Uuid) -> Result<Option<Uuid>, StoreError> {
        let driver = self
            .postgres
            .serializable(|tx| {
                Box::pin(async move {
                    let Some(row) = tx.query_opt(sql::EXPIRE_OFFER, &[&offer_id]).await? else { return Ok(None) };
                    tx.execute(sql::REQUEUE_JOB, &[&order_id]).await?;
                    Ok(Some(row.get(0)))
                })
            })
            .await?;
        crate::metrics::offers_closed(OfferStatus::Expired, usize::from(driver.is_some()));
        Ok(driver)
    }

    /// Flags the job (nobody accepted after every round) and appends a
    /// DISPATCH_DELAYED event to its order, once. Matching goes on.
    #[tracing::instrument(target = "foodfast::trace", name = "Dispatch.flag", skip_all, fields(otel.kind = "client", db.system = "postgresql"))]
    pub async fn flag(&self, job: &ClaimedJob, reason: &str) -> Result<Option<OrderEvent>, StoreError> {
        let (order_id, epoch) = (job.order_id, job.lease_epoch);
        self.postgres
            .serializable(|tx| {
                let reason = reason.to_string();
                Box::pin(async move {
                    if tx.query_opt(sql::FLAG_JOB, &[&order_id, &epoch]).await?.is_none() {
                        return Ok(None);
                    }
                    let by = Notice { actor: Actor::System, actor_id: None, reason };
                    let (_, event) = append_notice(tx, order_id, EventKind::DispatchDelayed, by, None).await?;
                    Ok(Some(event))
                })
            })
            .await
    }

    /// The driver accepts its open offer of `delivery_id`: the order gets the
    /// driver in the same transaction (one of its slots taken), or the
    /// answer is refused with why. A late answer expires the offer.
    #[tracing::instrument(target = "foodfast::trace", name = "Dispatch.accept", skip_all, fields(otel.kind = "client", db.system = "postgresql"))]
    pub async fn accept(
        &self,
        driver_id: Uuid,
        delivery_id: Uuid,
    ) -> Result<Result<Accepted, AnswerFailure>, StoreError> {
        let answered = self
            .postgres
            .serializable(|tx| {
                let zones = self.zones.clone();
                Box::pin(async move {
                    let (offer_id, order_id) = match open_offer(tx, driver_id, delivery_id).await? {
                        Ok(offer) => offer,
                        // A resend after a lost answer: answered the same while the driver holds it.
                        Err(failure @ AnswerFailure::Closed { status: OfferStatus::Accepted, .. }) => {
                            return match tx.query_opt(sql::SELECT_ORDER_HELD_BY, &[&delivery_id, &driver_id]).await? {
                                Some(row) => Ok(Ok(Accepted::Before(order_from_row(&row)?))),
                                None => Ok(Err(failure)),
                            };
                        }
                        Err(failure) => return Ok(Err(failure)),
                    };
                    // Answered before the transition, which withdraws open offers.
                    tx.execute(sql::SET_OFFER_STATUS, &[&offer_id, &OfferStatus::Accepted.as_str()]).await?;
                    let request = TransitionRequest {
                        order_id,
                        action: OrderAction::AssignDriver,
                        actor: Actor::System,
                        actor_id: Some(driver_id),
                        reason: "accepted the dispatch offer",
                        driver_id: Some(driver_id),
                        ready_at: None,
                    };
                    match apply_transition(tx, &zones, &request, &|_| true).await? {
                        Ok(transitioned) => {
                            tx.execute(sql::COUNT_DRIVER_ACCEPTANCE, &[&driver_id]).await?;
                            Ok(Ok(Accepted::Now(transitioned)))
                        }
                        Err(TransitionFailure::Store(err)) => Err(TxError::Store(err)),
                        Err(failure) => {
                            // Cannot be honoured (e.g. the driver took another delivery by hand
                            // meanwhile): the next driver gets a chance.
                            tx.execute(sql::SET_OFFER_STATUS, &[&offer_id, &OfferStatus::Withdrawn.as_str()]).await?;
                            tx.execute(sql::REQUEUE_JOB, &[&order_id]).await?;
                            Ok(Err(AnswerFailure::Assign(failure)))
                        }
                    }
                })
            })
            .await?;
        if let Ok(Accepted::Now(transitioned)) = &answered {
            crate::metrics::offers_closed(OfferStatus::Accepted, 1);
            crate::metrics::order_transition(transitioned.event.previous_status, transitioned.event.status);
        }
        Ok(answered)
    }

    /// The driver declines its open offer of `delivery_id`; the job goes
    /// back to searching. Declining again is answered the same.
    #[tracing::instrument(target = "foodfast::trace", name = "Dispatch.decline", skip_all, fields(otel.kind = "client", db.system = "postgresql"))]
    pub async fn decline(&self, driver_id: Uuid, delivery_id: Uuid) -> Result<Result<(), AnswerFailure>, StoreError> {
        let declined_now = self
            .postgres
            .serializable(|tx| {
                Box::pin(async move {
                    let (offer_id, order_id) = match open_offer(tx, driver_id, delivery_id).await? {
                        Ok(offer) => offer,
                        Err(AnswerFailure::Closed { status: OfferStatus::Declined, .. }) => return Ok(Ok(false)),
                        Err(failure) => return Ok(Err(failure)),
                    };
                    tx.execute(sql::SET_OFFER_STATUS, &[&offer_id, &OfferStatus::Declined.as_str()]).await?;
                    tx.execute(sql::REQUEUE_JOB, &[&order_id]).await?;
                    Ok(Ok(true))
                })
            })
            .await?;
        Ok(declined_now.map(|now| crate::metrics::offers_closed(OfferStatus::Declined, usize::from(now))))
    }

    /// The driver's stream dropped: its open offers expire now and their
    /// orders go to the next candidate. Returns those orders.
    #[tracing::instrument(target = "foodfast::trace", name = "Dispatch.expire_driver_offers", skip_all, fields(otel.kind = "client", db.system = "postgresql"))]
    pub async fn expire_driver_offers(&self, driver_id: Uuid) -> Result<Vec<Uuid>, StoreError> {
        let orders = self
            .postgres
            .serializable(|tx| {
                Box::pin(async move {
                    let rows = tx.query(sql::EXPIRE_DRIVER_OFFERS, &[&driver_id]).await?;
                    let orders: Vec<Uuid> = rows.iter().map(|row| row.get(0)).collect();
                    for order_id in &orders {
                        tx.execute(sql::REQUEUE_JOB, &[order_id]).await?;
                    }
                    Ok(orders)
                })
            })
            .await?;
        crate::metrics::offers_closed(OfferStatus::Expired, orders.len());
        Ok(orders)
    }

    /// The driver's open offers, oldest first.
    #[tracing::instrument(target = "foodfast::trace", name = "Dispatch.open_offers", skip_all, fields(otel.kind = "client", db.system = "postgresql"))]
    pub async fn open_offers(&self, driver_id: Uuid) -> Result<Vec<DriverOffer>, StoreError> {
        let client = self.postgres.client().await?;
        let statement = client.prepare_cached(sql::SELECT_OPEN_DRIVER_OFFERS).await.map_err(StoreError::postgres)?;
        let rows = client.query(&statement, &[&driver_id]).await.map_err(StoreError::postgres)?;
        Ok(rows
            .iter()
            .map(|row| DriverOffer {
                offer_id: row.get(0),
                delivery_id: row.get(1),
                order_id: row.get(2),
                distance_m: count(row.get(3)),
                deadline: row.get(4),
            })
            .collect())
    }

    /// What became of these offers: `(offer, delivery, status)`.
    #[tracing::instrument(target = "foodfast::trace", name = "Dispatch.offer_outcomes", skip_all, fields(otel.kind = "client", db.system = "postgresql"))]
    pub async fn offer_outcomes(&self, offer_ids: &[Uuid]) -> Result<Vec<(Uuid, Uuid, OfferStatus)>, StoreError> {
        let client = self.postgres.client().await?;
        let rows = client.query(sql::SELECT_OFFER_OUTCOMES, &[&offer_ids]).await.map_err(StoreError::postgres)?;
        rows.iter().map(|row| Ok((row.get(0), row.get(1), OfferStatus::parse(row.get(2))?))).collect()
    }

    /// Where matching stands for the order; `None` before it was confirmed.
    #[tracing::instrument(target = "foodfast::trace", name = "Dispatch.matching_state", skip_all, fields(otel.kind = "client", db.system = "postgresql"))]
    pub async fn matching_state(&self, order_id: Uuid) -> Result<Option<MatchingState>, StoreError> {
        let client = self.postgres.client().await?;
        let Some(job) = client.query_opt(sql::SELECT_DISPATCH_JOB, &[&order_id]).await.map_err(StoreError::postgres)?
        else {
            return Ok(None);
        };
        let offers = client.query(sql::SELECT_ORDER_OFFERS, &[&order_id]).await.map_err(StoreError::postgres)?;
        Ok(Some(MatchingState {
            phase: JobPhase::parse(job.get(0))?,
            rounds: count(job.get(1)),
            city: job.get(2),
            started_at: job.get(3),
            flagged_at: job.get(4),
            offers: offers.iter().map(offer_record).collect::<Result<_, _>>()?,
        }))
    }

    /// Flagged orders still looking for a driver, oldest flag first, after
    /// the keyset `(flagged_at, order_id)`; `city` empty means every city.
    #[tracing::instrument(target = "foodfast::trace", name = "Dispatch.flagged", skip_all, fields(otel.kind = "client", db.system = "postgresql"))]
    pub async fn flagged(
        &self,
        city: &str,
        after: Option<(DateTime<Utc>, Uuid)>,
        limit: u32,
    ) -> Result<Vec<FlaggedOrder>, StoreError> {
        let (after_at, after_id) = after.unwrap_or((DateTime::UNIX_EPOCH, Uuid::nil()));
        let client = self.postgres.client().await?;
        let rows = client
            .query(sql::SELECT_FLAGGED_ORDERS, &[&city, &after_at, &after_id, &i64::from(limit)])
            .await
            .map_err(StoreError::postgres)?;
        rows.iter()
            .map(|row| {
                let status: &str = row.get(4);
                Ok(FlaggedOrder {
                    order_id: row.get(0),
                    restaurant_id: row.get(1),
                    restaurant_name: row.get(2),
                    city: row.get(3),
                    status: status.parse().map_err(|err| StoreError::Corrupt(format!("order status: {err}")))?,
                    rounds: count(row.get(5)),
                    flagged_at: row.get(6),
                })
            })
            .collect()
    }
}

/// The driver's offer of `delivery_id` if it is open and in time; a late
/// one is expired here (and its job requeued).
async fn open_offer(
    tx: &tokio_postgres::Transaction<'_>,
    driver_id: Uuid,
    delivery_id: Uuid,
) -> Result<Result<(Uuid, Uuid), AnswerFailure>, TxError> {
    let Some(row) = tx.query_opt(sql::SELECT_DRIVER_OFFER_FOR_DELIVERY, &[&delivery_id, &driver_id]).await? else {
        return Ok(Err(AnswerFailure::NoOffer(delivery_id)));
    };
    let (offer_id, order_id, late): (Uuid, Uuid, bool) = (row.get(0), row.get(1), row.get(3));
    let status = OfferStatus::parse(row.get(2))?;
    if status != OfferStatus::Pending {
        return Ok(Err(AnswerFailure::Closed { delivery_id, status }));
    }
    if late {
        tx.execute(sql::SET_OFFER_STATUS, &[&offer_id, &OfferStatus::Expired.as_str()]).await?;
        tx.execute(sql::REQUEUE_JOB, &[&order_id]).await?;
        return Ok(Err(AnswerFailure::Expired(delivery_id)));
    }
    Ok(Ok((offer_id, order_id)))
}

fn offer_record(row: &Row) -> Result<OfferRecord, StoreError> {
    Ok(OfferRecord {
        offer_id: row.get(0),
        driver_id: row.get(1),
        round: count(row.get(2)),
        score: row.get(3),
        distance_m: count(row.get(4)),
        offered_at: row.get(5),
        deadline: row.get(6),
        status: OfferStatus::parse(row.get(7))?,
        answered_at: row.get(8),
    })
}
