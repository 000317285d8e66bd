//! Notifications to one person on CockroachDB/PostgreSQL: the durable queue
//! senders on every replica claim from (see
//! `migrations/cockroach/0008_notifications.sql`).

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use foodfast_domain::names::display_name;
use foodfast_domain::notification::{self, Channel, Message, Priority, State};
use foodfast_domain::order::OrderStatus;
use tokio_postgres::Row;
use uuid::Uuid;

use crate::orders::{EventKind, Order, OrderEvent};
use crate::postgres::{Postgres, TxError};
use crate::{StoreError, sql};

/// Queues the push notice the customer gets for an order's `event`, inside
/// the transition's transaction: the outbox, so a crash after the commit
/// cannot lose it and a retried transition cannot send it twice. Customers
/// hear of the order being confirmed, given a driver, delivered, cancelled
/// or rejected, on their devices (none: nothing is queued). These are never
/// shed: their number follows the orders'. Returns whether one was queued.
pub(crate) async fn queue_order_notice(
    tx: &tokio_postgres::Transaction<'_>,
    order: &Order,
    event: &OrderEvent,
) -> Result<bool, TxError> {
    let (template, priority) = match (event.kind, event.status) {
        (EventKind::DriverAssigned, _) => ("driver_assigned", Priority::High),
        (EventKind::StatusChanged, OrderStatus::Confirmed) => ("order_confirmed", Priority::High),
        (EventKind::StatusChanged, OrderStatus::Delivered) => ("order_delivered", Priority::High),
        (EventKind::StatusChanged, OrderStatus::Cancelled | OrderStatus::Rejected) => {
            ("order_cancelled", Priority::Critical)
        }
        _ => return Ok(false),
    };
    let mut params = HashMap::from([
        ("restaurant_name".to_owned(), order.restaurant_name.clone()),
        ("reason".to_owned(), event.reason.clone()),
    ]);
    if let Some(driver_id) = event.driver_id.filter(|_| event.kind == EventKind::DriverAssigned)
        && let Some(driver) = tx.query_opt(sql::SELECT_DRIVER_PROFILE, &[&driver_id]).await?
    {
        // As customers see drivers everywhere: "Ali N.", not the full name.
        params.insert("driver_name".to_owned(), display_name(driver.get(0)));
    }
    let message = match notification::render(template, &params) {
        Ok(message) => message,
        Err(err) => {
            // Not a reason to refuse the order's step.
            tracing::warn!(order = %order.id, template, error = %err, "could not write the customer's notice");
            return Ok(false);
        }
    };
    let key = format!("order:{}:event:{}:push", order.id, event.seq);
    let queued = tx
        .query_opt(
            sql::INSERT_ORDER_NOTICE,
            &[&Uuid::new_v4(), &order.customer_id, &priority.rank(), &message.title, &message.body, &key],
        )
        .await?;
    Ok(queued.is_some())
}

/// What queueing a notification came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Enqueued {
    /// Queued now, with this id.
    New(Uuid),
    /// Its idempotency key queued the same notification before: that one's id.
    Repeat(Uuid),
    /// Its idempotency key queued another notification before (another
    /// recipient, channel, priority or text).
    KeyInUse,
}

impl Enqueued {
    /// The notification's id, unless the key was someone else's.
    pub fn id(self) -> Option<Uuid> {
        match self {
            Enqueued::New(id) | Enqueued::Repeat(id) => Some(id),
            Enqueued::KeyInUse => None,
        }
    }
}

/// What SendNotification queues.
#[derive(Debug, Clone)]
pub struct NewNotification {
    pub recipient_id: Uuid,
    pub channel: Channel,
    pub priority: Priority,
    pub message: Message,
    pub idempotency_key: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Notification {
    pub id: Uuid,
    pub recipient_id: Uuid,
    pub channel: Channel,
    pub priority: Priority,
    pub state: State,
    pub attempts: Vec<Attempt>,
    /// The next attempt, while one is scheduled.
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Attempt {
    pub attempt: u32,
    pub attempted_at: DateTime<Utc>,
    pub succeeded: bool,
    pub error: String,
}

/// A notification a sender claimed: its attempt number `attempt` is due now.
#[derive(Debug, Clone, PartialEq)]
pub struct Claimed {
    pub id: Uuid,
    pub recipient_id: Uuid,
    pub channel: Channel,
    pub priority: Priority,
    pub message: Message,
    pub attempt: u32,
}

/// How an attempt ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Sent,
    /// Try again after the delay.
    Retry {
        after: Duration,
        error: String,
    },
    /// No attempt is left, or none could succeed.
    Failed {
        error: String,
    },
}

/// Where a person can be reached.
#[derive(Debug, Clone, PartialEq)]
pub struct Contact {
    pub email: String,
    pub phone: Option<String>,
    /// Push tokens of the person's devices, most recently registered first.
    pub push_tokens: Vec<String>,
}

#[derive(Clone)]
pub struct Notifications {
    postgres: Postgres,
}

impl Notifications {
    pub fn new(postgres: Postgres) -> Self {
        Self { postgres }
    }

    /// Records `new` as `state`: queued, or dropped at once (shed under
    /// overload), unless its idempotency key was used before.
    #[tracing::instrument(target = "foodfast::trace", name = "Notifications.enqueue", skip_all, fields(otel.kind = "client", db.system = "postgresql"))]
    pub async fn enqueue(&self, new: &NewNotification, state: State) -> Result<Enqueued, StoreError> {
        let client = self.postgres.client().await?;
        let inserted = client
            .query_opt(
                sql::INSERT_NOTIFICATION,
                &[
                    &Uuid::new_v4(),
                    &new.recipient_id,
                    &new.channel.as_str(),
                    &new.priority.rank(),
                    &new.message.title,
                    &new.message.body,
                    &new.idempotency_key,
                    &state.as_str(),
                ],
            )
            .await
            .map_err(StoreError::postgres)?;
        if let Some(row) = inserted {
            return Ok(Enqueued::New(row.get(0)));
        }
        self.queued_under_key(new)
            .await?
            .ok_or_else(|| StoreError::Corrupt("a notification conflicted on a key nobody holds".into()))
    }

    /// What `new`'s idempotency key queued before, if it was used: the same
    /// notification or another.
    #[tracing::instrument(target = "foodfast::trace", name = "Notifications.queued_under_key", skip_all, fields(otel.kind = "client", db.system = "postgresql"))]
    pub async fn queued_under_key(&self, new: &NewNotification) -> Result<Option<Enqueued>, StoreError> {
        let Some(key) = &new.idempotency_key else { return Ok(None) };
        let client = self.postgres.client().await?;
        let Some(row) =
            client.query_opt(sql::SELECT_NOTIFICATION_BY_KEY, &[key]).await.map_err(StoreError::postgres)?
        else {
            return Ok(None);
        };
        let same = row.get::<_, Uuid>(1) == new.recipient_id
            && row.get::<_, &str>(2) == new.channel.as_str()
            && row.get::<_, i16>(3) == new.priority.rank()
            && row.get::<_, &str>(4) == new.message.title
            && row.get::<_, &str>(5) == new.message.body;
        Ok(Some(if same { Enqueued::Repeat(row.get(0)) } else { Enqueued::KeyInUse }))
    }

    /// Notifications not yet sent, failed or dropped: the queue's depth.
    #[tracing::instrument(target = "foodfast::trace", name = "Notifications.pending", skip_all, fields(otel.kind = "client", db.system = "postgresql"))]
    pub async fn pending(&self) -> Result<u64, StoreError> {
        let client = self.postgres.client().await?;
        let row = client.query_one(sql::COUNT_PENDING_NOTIFICATIONS, &[]).await.map_err(StoreError::postgres)?;
        Ok(row.get::<_, i64>(0).max(0) as u64)
    }

    #[tracing::instrument(target = "foodfast::trace", name = "Notifications.get", skip_all, fields(otel.kind = "client", db.system = "postgresql"))]
    pub async fn get(&self, id: Uuid) -> Result<Option<Notification>, StoreError> {
        let client = self.postgres.client().await?;
        let Some(row) = client.query_opt(sql::SELECT_NOTIFICATION, &[&id]).await.map_err(StoreError::postgres)? else {
            return Ok(None);
        };
        let attempts = client
            .query(sql::SELECT_NOTIFICATION_ATTEMPTS, &[&id])
            .await
            .map_err(StoreError::postgres)?
            .iter()
            .map(|row| Attempt {
                attempt: row.get::<_, i32>(0) as u32,
                attempted_at: row.get(1),
                succeeded: row.get(2),
                error: row.get(3),
            })
            .collect();
        let state = parse(State::parse, row.get(4), "state")?;
        Ok(Some(Notification {
            id: row.get(0),
            recipient_id: row.get(1),
            channel: parse(Channel::parse, row.get(2), "channel")?,
            priority: priority(&row, 3)?,
            state,
            attempts,
            next_attempt_at: (state == State::RetryScheduled).then(|| row.get(6)),
            created_at: row.get(7),
            updated_at: row.get(8),
        }))
    }

    /// Claims up to `limit` due notifications, most urgent first, for
    /// `lease`: a sender that does not settle one by then loses it to another.
    #[tracing::instrument(target = "foodfast::trace", name = "Notifications.claim_due", skip_all, fields(otel.kind = "client", db.system = "postgresql"))]
    pub async fn claim_due(&self, limit: u32, lease: Duration) -> Result<Vec<Claimed>, StoreError> {
        let rows = self
            .postgres
            .serializable(|tx| {
                Box::pin(async move {
                    Ok::<_, TxError>(
                        tx.query(sql::CLAIM_NOTIFICATIONS, &[&i64::from(limit), &lease.as_secs_f64()]).await?,
                    )
                })
            })
            .await?;
        let mut claimed = rows
            .iter()
            .map(|row| {
                Ok(Claimed {
                    id: row.get(0),
                    recipient_id: row.get(1),
                    channel: parse(Channel::parse, row.get(2), "channel")?,
                    priority: priority(row, 3)?,
                    message: Message { title: row.get(4), body: row.get(5) },
                    attempt: row.get::<_, i32>(6) as u32,
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        claimed.sort_by_key(|c| c.priority);
        Ok(claimed)
    }

    /// Records how the claimed attempt ended; `false` if the claim had lapsed
    /// and another sender took the notification over.
    #[tracing::instrument(target = "foodfast::trace", name = "Notifications.settle", skip_all, fields(otel.kind = "client", db.system = "postgresql"))]
    pub async fn settle(&self, claimed: &Claimed, outcome: &Outcome) -> Result<bool, StoreError> {
        let (state, after, succeeded, error) = match outcome {
            Outcome::Sent => (State::Sent, Duration::ZERO, true, ""),
            Outcome::Retry { after, error } => (State::RetryScheduled, *after, false, error.as_str()),
            Outcome::Failed { error } => (State::Failed, Duration::ZERO, false, error.as_str()),
        };
        let (id, attempt, error) = (claimed.id, claimed.attempt as i32, error.to_owned());
        self.postgres
            .serializable(move |tx| {
                let error = error.clone();
                Box::pin(async move {
                    let settled = tx
                        .execute(sql::SETTLE_NOTIFICATION, &[&id, &attempt, &state.as_str(), &after.as_secs_f64()])
                        .await?;
                    if settled == 1 {
                        tx.execute(sql::INSERT_NOTIFICATION_ATTEMPT, &[&id, &attempt, &succeeded, &error]).await?;
                    }
                    Ok::<_, TxError>(settled == 1)
                })
            })
            .await
    }

    /// Where `user_id` can be reached; `None` for no such account.
    #[tracing::instrument(target = "foodfast::trace", name = "Notifications.contact", skip_all, fields(otel.kind = "client", db.system = "postgresql"))]
    pub async fn contact(&self, user_id: Uuid) -> Result<Option<Contact>, StoreError> {
        let client = self.postgres.client().await?;
        let Some(row) = client.query_opt(sql::SELECT_CONTACT, &[&user_id]).await.map_err(StoreError::postgres)? else {
            return Ok(None);
        };
        drop(client);
        let push_tokens = self.push_tokens(user_id).await?;
        Ok(Some(Contact { email: row.get(0), phone: row.get(1), push_tokens }))
    }

    /// Push tokens of the person's devices, most recently registered first.
    #[tracing::instrument(target = "foodfast::trace", name = "Notifications.push_tokens", skip_all, fields(otel.kind = "client", db.system = "postgresql"))]
    pub async fn push_tokens(&self, user_id: Uuid) -> Result<Vec<String>, StoreError> {
        let client = self.postgres.client().await?;
        let rows = client.query(sql::SELECT_PUSH_TOKENS, &[&user_id]).await.map_err(StoreError::postgres)?;
        Ok(rows.iter().map(|row| row.get(0)).collect())
    }
}

fn parse<T>(parse: fn(&str) -> Option<T>, value: &str, what: &str) -> Result<T, StoreError> {
    parse(value).ok_or_else(|| StoreError::Corrupt(format!("unknown notification {what} {value:?}")))
}

fn priority(row: &Row, index: usize) -> Result<Priority, StoreError> {
    let rank: i16 = row.get(index);
    Priority::from_rank(rank).ok_or_else(|| StoreError::Corrupt(format!("unknown notification priority {rank}")))
}
