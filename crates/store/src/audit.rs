//! The audit log: who did what to which resource, when. Append-only.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::postgres::Postgres;
use crate::{StoreError, sql};

/// One audited action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEntry {
    pub at: DateTime<Utc>,
    /// The caller's account; `None` for anonymous calls (e.g. registration).
    pub actor_id: Option<Uuid>,
    /// `customer`, `restaurant_staff`, …, or `anonymous`.
    pub actor_role: String,
    /// The RPC, e.g. `foodfast.v1.OrderService/CancelOrder`.
    pub action: String,
    /// What was acted on, e.g. `order`, and its id.
    pub resource_kind: String,
    pub resource_id: String,
    pub request_id: String,
}

#[derive(Clone)]
pub struct AuditLog {
    postgres: Postgres,
}

impl AuditLog {
    pub fn new(postgres: Postgres) -> Self {
        Self { postgres }
    }

    #[tracing::instrument(target = "foodfast::trace", name = "AuditLog.record", skip_all, fields(otel.kind = "client", db.system = "postgresql"))]
    pub async fn record(&self, entry: &AuditEntry) -> Result<(), StoreError> {
        let client = self.postgres.client().await?;
        let statement = client.prepare_cached(sql::INSERT_AUDIT).await.map_err(StoreError::postgres)?;
        client
            .execute(
                &statement,
                &[
                    &Uuid::new_v4(),
                    &entry.actor_id,
                    &entry.actor_role,
                    &entry.action,
                    &entry.resource_kind,
                    &entry.resource_id,
                    &entry.request_id,
                ],
            )
            .await
            .map_err(StoreError::postgres)?;
        Ok(())
    }

    /// Everything done to one resource, oldest first.
    #[tracing::instrument(target = "foodfast::trace", name = "AuditLog.for_resource", skip_all, fields(otel.kind = "client", db.system = "postgresql"))]
    pub async fn for_resource(&self, kind: &str, id: &str) -> Result<Vec<AuditEntry>, StoreError> {
        let client = self.postgres.client().await?;
        let rows = client.query(sql::SELECT_AUDIT_FOR_RESOURCE, &[&kind, &id]).await.map_err(StoreError::postgres)?;
        Ok(rows
            .iter()
            .map(|row| AuditEntry {
                at: row.get(0),
                actor_id: row.get(1),
                actor_role: row.get(2),
                action: row.get(3),
                resource_kind: row.get(4),
                resource_id: row.get(5),
                request_id: row.get(6),
            })
            .collect())
    }
}
