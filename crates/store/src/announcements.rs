//! System-wide announcements on CockroachDB/PostgreSQL, numbered in commit
//! order (see `migrations/cockroach/0006_announcements.sql`).

use foodfast_domain::access::Role;
use foodfast_domain::announcement::{Announcement, NewAnnouncement, Severity};
use tokio_postgres::Row;
use uuid::Uuid;

use crate::postgres::{Postgres, TxError};
use crate::{StoreError, sql};

#[derive(Clone)]
pub struct Announcements {
    postgres: Postgres,
}

impl Announcements {
    pub fn new(postgres: Postgres) -> Self {
        Self { postgres }
    }

    /// Publishes `new` with the next sequence number, unless its
    /// `idempotency_key` published before.
    #[tracing::instrument(target = "foodfast::trace", name = "Announcements.publish", skip_all, fields(otel.kind = "client", db.system = "postgresql"))]
    pub async fn publish(
        &self,
        new: &NewAnnouncement,
        published_by: Option<Uuid>,
        idempotency_key: Option<&str>,
    ) -> Result<Published, StoreError> {
        let id = Uuid::new_v4();
        let audience: Vec<&'static str> = new.audience.iter().map(|role| role.as_str()).collect();
        self.postgres
            .serializable(move |tx| {
                let (new, audience, key) = (new.clone(), audience.clone(), idempotency_key.map(str::to_owned));
                Box::pin(async move {
                    // Before the counter: a concurrent publisher with the same key
                    // conflicts on it, and the retry finds the key.
                    if let Some(key) = &key
                        && let Some(row) = tx.query_opt(sql::SELECT_ANNOUNCEMENT_BY_KEY, &[key]).await?
                    {
                        return Ok(match announcement_from_row(&row)? {
                            Some(before) if same_announcement(&before, &new) => Published::Repeat(before),
                            _ => Published::KeyInUse,
                        });
                    }
                    let seq: i64 = tx.query_one(sql::NEXT_ANNOUNCEMENT_SEQ, &[]).await?.get(0);
                    let row = tx
                        .query_one(
                            sql::INSERT_ANNOUNCEMENT,
                            &[
                                &seq,
                                &id,
                                &new.title,
                                &new.body,
                                &new.severity.as_str(),
                                &audience.iter().map(|role| role.to_string()).collect::<Vec<_>>(),
                                &new.city,
                                &published_by,
                                &new.expires_at,
                                &key,
                            ],
                        )
                        .await?;
                    Ok::<_, TxError>(Published::New(Announcement {
                        id,
                        seq,
                        title: new.title,
                        body: new.body,
                        severity: new.severity,
                        audience: new.audience,
                        city: new.city,
                        published_at: row.get(0),
                        // As stored (microseconds), as every later read gives it.
                        expires_at: row.get(1),
                    }))
                })
            })
            .await
    }

    /// Announcements still in force published after `seq`, oldest first:
    /// `limit` rows read, less those addressed only to roles this version
    /// does not know.
    #[tracing::instrument(target = "foodfast::trace", name = "Announcements.in_force_after", skip_all, fields(otel.kind = "client", db.system = "postgresql"))]
    pub async fn in_force_after(&self, seq: i64, limit: u32) -> Result<InForce, StoreError> {
        let client = self.postgres.client().await?;
        let rows = client
            .query(
                &client.prepare_cached(sql::SELECT_ANNOUNCEMENTS_IN_FORCE).await.map_err(StoreError::postgres)?,
                &[&seq, &i64::from(limit)],
            )
            .await
            .map_err(StoreError::postgres)?;
        Ok(InForce {
            announcements: rows
                .iter()
                .filter_map(|row| announcement_from_row(row).transpose())
                .collect::<Result<_, _>>()?,
            read_to: rows.last().map(|row| row.get(0)),
            more: rows.len() >= limit as usize,
        })
    }
}

/// What publishing came to.
#[derive(Debug, Clone, PartialEq)]
pub enum Published {
    New(Announcement),
    /// Its idempotency key published the same announcement before: that one.
    Repeat(Announcement),
    /// Its idempotency key published a different announcement before.
    KeyInUse,
}

impl Published {
    /// The announcement, unless the key was another's.
    pub fn announcement(self) -> Option<Announcement> {
        match self {
            Published::New(announcement) | Published::Repeat(announcement) => Some(announcement),
            Published::KeyInUse => None,
        }
    }
}

/// Whether `before` is what `new` would publish (times as stored, to the microsecond).
fn same_announcement(before: &Announcement, new: &NewAnnouncement) -> bool {
    (&before.title, &before.body, before.severity, &before.audience, &before.city)
        == (&new.title, &new.body, new.severity, &new.audience, &new.city)
        && before.expires_at.timestamp_micros() == new.expires_at.timestamp_micros()
}

/// One read of the announcements in force.
#[derive(Debug, Clone, PartialEq)]
pub struct InForce {
    pub announcements: Vec<Announcement>,
    /// The last seq read, kept or not: where the next read starts, so that a
    /// batch of rows this version skips cannot hold the reader in place.
    pub read_to: Option<i64>,
    /// Whether `limit` rows were read: there may be more.
    pub more: bool,
}

/// `None` for one addressed only to roles this version does not know (a
/// newer one's): nobody here is in its audience.
fn announcement_from_row(row: &Row) -> Result<Option<Announcement>, StoreError> {
    let severity: &str = row.get(4);
    let named: Vec<String> = row.get(5);
    let audience: Vec<Role> = named.iter().filter_map(|role| Role::parse(role)).collect();
    if audience.is_empty() && !named.is_empty() {
        return Ok(None);
    }
    Ok(Some(Announcement {
        seq: row.get(0),
        id: row.get(1),
        title: row.get(2),
        body: row.get(3),
        severity: Severity::parse(severity)
            .ok_or_else(|| StoreError::Corrupt(format!("unknown announcement severity {severity:?}")))?,
        audience,
        city: row.get(6),
        published_at: row.get(7),
        expires_at: row.get(8),
    }))
}
