//! Notifications to one person on CockroachDB/PostgreSQL: the durable queue
//! senders on every replica claim from (see
//! `migrations/cockroach/0008_notifications.sql`).

use std::time::Duration;

use chrono::{DateTime, Utc};
use foodfast_domain::notification::{Channel, Message, Priority, State};
use tokio_postgres::Row;
use uuid::Uuid;

use crate::postgres::{Postgres, TxError};
use crate::{StoreError, sql};

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
    /// overload); with an idempotency key already used, the first
    /// notification's id instead.
    #[tracing::instrument(target = "foodfast::trace", name = "Notifications.enqueue", skip_all, fields(otel.kind = "client", db.system = "postgresql"))]
    pub async fn enqueue(&self, new: &NewNotification, state: State) -> Result<Uuid, StoreError> {
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
        match (inserted, &new.idempotency_key) {
            (Some(row), _) => Ok(row.get(0)),
            (None, Some(key)) => {
                let row =
                    client.query_one(sql::SELECT_NOTIFICATION_BY_KEY, &[key]).await.map_err(StoreError::postgres)?;
                Ok(row.get(0))
            }
            (None, None) => Err(StoreError::Corrupt("a notification without a key conflicted".into())),
        }
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
