//! Image upload jobs on CockroachDB/PostgreSQL (see
//! `migrations/cockroach/0010_uploads.sql`), their bytes in object storage.
//! A job is claimed under a lease by one worker at a time; every write a
//! worker makes names the attempt it claimed, so a worker whose claim lapsed
//! (and was taken over) changes nothing.

use std::time::Duration;

use chrono::{DateTime, Utc};
use foodfast_domain::media::{ImageTarget, ImageType, JobState, UploadMetadata};
use tokio_postgres::Row;
use uuid::Uuid;

use crate::objects::Objects;
use crate::postgres::{Postgres, TxError};
use crate::{StoreError, sql};

#[derive(Debug, Clone, PartialEq)]
pub struct UploadJob {
    pub id: Uuid,
    pub owner_id: Uuid,
    pub target: ImageTarget,
    pub target_id: Uuid,
    pub state: JobState,
    pub progress: u8,
    pub result_url: String,
    pub error: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A job a worker claimed: its attempt `attempt` runs now.
#[derive(Debug, Clone, PartialEq)]
pub struct ClaimedUpload {
    pub id: Uuid,
    pub target: ImageTarget,
    pub target_id: Uuid,
    pub content_type: ImageType,
    pub original_key: String,
    pub attempt: i32,
}

/// A job that ended.
#[derive(Debug, Clone, PartialEq)]
pub struct Ended {
    pub job: UploadJob,
    /// The restaurant whose menu or cover now shows the image (its cached
    /// menu is out of date).
    pub restaurant_id: Option<Uuid>,
}

/// What an image is for, as the database knows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TargetOwner {
    Missing,
    /// A menu item or a cover of this restaurant.
    Restaurant(Uuid),
    Account,
}

#[derive(Clone)]
pub struct Uploads {
    postgres: Postgres,
    objects: Objects,
}

impl Uploads {
    pub fn new(postgres: Postgres, objects: Objects) -> Self {
        Self { postgres, objects }
    }

    /// Whose the target is, if it exists.
    #[tracing::instrument(target = "foodfast::trace", name = "Uploads.target_owner", skip_all, fields(otel.kind = "client", db.system = "postgresql"))]
    pub async fn target_owner(&self, target: ImageTarget, id: Uuid) -> Result<TargetOwner, StoreError> {
        let query = match target {
            ImageTarget::MenuItem => sql::SELECT_MENU_ITEM_RESTAURANT,
            ImageTarget::RestaurantCover => sql::SELECT_RESTAURANT_ID,
            ImageTarget::AccountAvatar => sql::SELECT_USER_ID,
        };
        let client = self.postgres.client().await?;
        let row = client.query_opt(query, &[&id]).await.map_err(StoreError::postgres)?;
        Ok(match (row, target) {
            (None, _) => TargetOwner::Missing,
            (Some(_), ImageTarget::AccountAvatar) => TargetOwner::Account,
            (Some(row), _) => TargetOwner::Restaurant(row.get(0)),
        })
    }

    /// Jobs not finished yet: the processing backlog.
    #[tracing::instrument(target = "foodfast::trace", name = "Uploads.pending", skip_all, fields(otel.kind = "client", db.system = "postgresql"))]
    pub async fn pending(&self) -> Result<u64, StoreError> {
        let client = self.postgres.client().await?;
        let row = client.query_one(sql::COUNT_PENDING_UPLOADS, &[]).await.map_err(StoreError::postgres)?;
        Ok(row.get::<_, i64>(0).max(0) as u64)
    }

    /// Stores the original in object storage, then queues its job. Once this
    /// returns the upload is durable: any replica's worker can process it.
    #[tracing::instrument(target = "foodfast::trace", name = "Uploads.accept", skip_all, fields(otel.kind = "client", db.system = "postgresql"))]
    pub async fn accept(
        &self,
        owner_id: Uuid,
        metadata: &UploadMetadata,
        bytes: Vec<u8>,
    ) -> Result<UploadJob, StoreError> {
        let id = Uuid::new_v4();
        let original_key = format!("uploads/{id}/original");
        self.objects.put(&original_key, bytes).await?;
        let queued = async {
            let client = self.postgres.client().await?;
            let row = client
                .query_one(
                    sql::INSERT_UPLOAD_JOB,
                    &[
                        &id,
                        &owner_id,
                        &metadata.target.as_str(),
                        &metadata.target_id,
                        &metadata.content_type.as_str(),
                        &(metadata.size_bytes as i64),
                        &metadata.file_name,
                        &original_key,
                    ],
                )
                .await
                .map_err(StoreError::postgres)?;
            job_from_row(&row)
        };
        let queued = queued.await;
        if queued.is_err() {
            // No job will ever read it: the client is told to upload again.
            self.delete_quietly(&original_key, "an unqueued original").await;
        }
        queued
    }

    #[tracing::instrument(target = "foodfast::trace", name = "Uploads.get", skip_all, fields(otel.kind = "client", db.system = "postgresql"))]
    pub async fn get(&self, id: Uuid) -> Result<Option<UploadJob>, StoreError> {
        let client = self.postgres.client().await?;
        let row = client.query_opt(sql::SELECT_UPLOAD_JOB, &[&id]).await.map_err(StoreError::postgres)?;
        row.as_ref().map(job_from_row).transpose()
    }

    /// Claims up to `limit` due jobs (queued, or processing under a lapsed
    /// claim) for `lease`: the longest due, in no particular order.
    #[tracing::instrument(target = "foodfast::trace", name = "Uploads.claim_due", skip_all, fields(otel.kind = "client", db.system = "postgresql"))]
    pub async fn claim_due(&self, limit: u32, lease: Duration) -> Result<Vec<ClaimedUpload>, StoreError> {
        let rows = self
            .postgres
            .serializable(|tx| {
                Box::pin(async move {
                    Ok::<_, TxError>(
                        tx.query(sql::CLAIM_UPLOAD_JOBS, &[&i64::from(limit), &lease.as_secs_f64()]).await?,
                    )
                })
            })
            .await?;
        rows.iter()
            .map(|row| {
                let id: Uuid = row.get(0);
                Ok(ClaimedUpload {
                    id,
                    target: parse(ImageTarget::parse, row.get(1), id, "target kind")?,
                    target_id: row.get(2),
                    content_type: parse(ImageType::parse, row.get(3), id, "content type")?,
                    original_key: row.get(4),
                    attempt: row.get(5),
                })
            })
            .collect()
    }

    /// The original bytes of a claimed job.
    pub async fn original(&self, claimed: &ClaimedUpload) -> Result<Vec<u8>, StoreError> {
        self.objects.get(&claimed.original_key).await
    }

    /// Records progress; `false` if the claim was lost.
    #[tracing::instrument(target = "foodfast::trace", name = "Uploads.progress", skip_all, fields(otel.kind = "client", db.system = "postgresql"))]
    pub async fn progress(&self, claimed: &ClaimedUpload, percent: u8) -> Result<bool, StoreError> {
        let client = self.postgres.client().await?;
        let updated = client
            .execute(sql::UPLOAD_JOB_PROGRESS, &[&claimed.id, &claimed.attempt, &i16::from(percent.min(99))])
            .await
            .map_err(StoreError::postgres)?;
        Ok(updated == 1)
    }

    /// Stores the processed image and, in one transaction, shows it on its
    /// target and ends the job; a target gone meanwhile, or a later upload
    /// for it shown already, fails the job instead. `None` if the claim was
    /// lost.
    #[tracing::instrument(target = "foodfast::trace", name = "Uploads.succeed", skip_all, fields(otel.kind = "client", db.system = "postgresql"))]
    pub async fn succeed(
        &self,
        claimed: &ClaimedUpload,
        image: Vec<u8>,
        extension: &str,
    ) -> Result<Option<Ended>, StoreError> {
        let key = format!("images/{}/{}/{}.{extension}", claimed.target.as_str(), claimed.target_id, claimed.id);
        self.objects.put(&key, image).await?;
        let url = self.objects.public_url(&key);
        let (id, attempt, target, target_id) = (claimed.id, claimed.attempt, claimed.target, claimed.target_id);
        let ended = self
            .postgres
            .serializable(move |tx| {
                let url = url.clone();
                Box::pin(async move {
                    if tx.query_opt(sql::HOLDS_UPLOAD_CLAIM, &[&id, &attempt]).await?.is_none() {
                        return Ok(None);
                    }
                    if tx.query_opt(sql::NEWER_UPLOAD_SHOWN, &[&id]).await?.is_some() {
                        let error = "a picture uploaded after this one is shown already";
                        let state = JobState::Failed.as_str();
                        let row = tx.query_one(sql::END_UPLOAD_JOB, &[&id, &attempt, &state, &"", &error]).await?;
                        return Ok(Some(Ended { job: job_from_row(&row)?, restaurant_id: None }));
                    }
                    // Some(the restaurant whose menu or cover changed, if any) while the target exists.
                    let shown: Option<Option<Uuid>> = match target {
                        ImageTarget::MenuItem => {
                            let row = tx.query_opt(sql::SET_MENU_ITEM_IMAGE, &[&target_id, &url]).await?;
                            let restaurant_id: Option<Uuid> = row.map(|row| row.get(0));
                            if let Some(restaurant_id) = restaurant_id {
                                tx.execute(sql::BUMP_MENU_VERSION, &[&restaurant_id]).await?;
                            }
                            restaurant_id.map(Some)
                        }
                        ImageTarget::RestaurantCover => tx
                            .query_opt(sql::SET_RESTAURANT_IMAGE, &[&target_id, &url])
                            .await?
                            .map(|row| Some(row.get(0))),
                        ImageTarget::AccountAvatar => {
                            tx.query_opt(sql::SET_USER_AVATAR, &[&target_id, &url]).await?.map(|_| None)
                        }
                    };
                    let (state, result_url, error) = match shown {
                        Some(_) => (JobState::Succeeded, url.as_str(), ""),
                        None => (JobState::Failed, "", "the image's target no longer exists"),
                    };
                    let row = tx
                        .query_one(sql::END_UPLOAD_JOB, &[&id, &attempt, &state.as_str(), &result_url, &error])
                        .await?;
                    Ok::<_, TxError>(Some(Ended { job: job_from_row(&row)?, restaurant_id: shown.flatten() }))
                })
            })
            .await?;
        // Nothing will show an image whose target is gone. (A lost claim keeps
        // it: the job's next holder writes the same key.)
        if let Some(ended) = &ended {
            if ended.job.state == JobState::Failed {
                self.delete_quietly(&key, "an unused processed image").await;
            }
            self.delete_quietly(&claimed.original_key, "an original").await;
        }
        Ok(ended)
    }

    /// Deletes a file nothing will read again; a failure only leaves it behind.
    async fn delete_quietly(&self, key: &str, what: &str) {
        if let Err(err) = self.objects.delete(key).await {
            tracing::warn!(%key, error = %crate::Chain(&err), "could not delete {what}");
        }
    }

    /// Ends the job as failed, for `error`; `false` if the claim was lost.
    #[tracing::instrument(target = "foodfast::trace", name = "Uploads.fail", skip_all, fields(otel.kind = "client", db.system = "postgresql"))]
    pub async fn fail(&self, claimed: &ClaimedUpload, error: &str) -> Result<bool, StoreError> {
        let client = self.postgres.client().await?;
        let ended = client
            .query_opt(sql::END_UPLOAD_JOB, &[&claimed.id, &claimed.attempt, &JobState::Failed.as_str(), &"", &error])
            .await
            .map_err(StoreError::postgres)?;
        if ended.is_some() {
            self.delete_quietly(&claimed.original_key, "an original").await;
        }
        Ok(ended.is_some())
    }

    /// Puts the job back in the queue, due again after `after`.
    #[tracing::instrument(target = "foodfast::trace", name = "Uploads.retry_later", skip_all, fields(otel.kind = "client", db.system = "postgresql"))]
    pub async fn retry_later(&self, claimed: &ClaimedUpload, after: Duration) -> Result<bool, StoreError> {
        let client = self.postgres.client().await?;
        let requeued = client
            .execute(sql::REQUEUE_UPLOAD_JOB, &[&claimed.id, &claimed.attempt, &after.as_secs_f64()])
            .await
            .map_err(StoreError::postgres)?;
        Ok(requeued == 1)
    }
}

fn parse<T>(parse: fn(&str) -> Option<T>, value: &str, id: Uuid, what: &str) -> Result<T, StoreError> {
    parse(value).ok_or_else(|| StoreError::Corrupt(format!("upload job {id}: {what} {value:?}")))
}

fn job_from_row(row: &Row) -> Result<UploadJob, StoreError> {
    let id: Uuid = row.get(0);
    Ok(UploadJob {
        id,
        owner_id: row.get(1),
        target: parse(ImageTarget::parse, row.get(2), id, "target kind")?,
        target_id: row.get(3),
        state: parse(JobState::parse, row.get(4), id, "state")?,
        progress: row.get::<_, i16>(5).clamp(0, 100) as u8,
        result_url: row.get(6),
        error: row.get(7),
        created_at: row.get(8),
        updated_at: row.get(9),
    })
}
