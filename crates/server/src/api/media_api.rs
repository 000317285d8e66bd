//! `MediaService`: an image arrives as a client stream, is stored whole with
//! its job before the answer, and is processed in the background by
//! [`crate::media`]; clients poll the job.

use std::time::Duration;

use foodfast_api::v1 as pb;
use foodfast_api::v1::media_service_server::MediaService;
use foodfast_domain::access::{Principal, Role};
use foodfast_domain::media::{self, ImageTarget, ImageType, JobState, Received, UploadMetadata};
use foodfast_domain::validation::{FieldError, parse_uuid};
use foodfast_store::uploads::TargetOwner;
use sha2::{Digest, Sha256};
use tonic::{Request, Response, Status, Streaming};
use uuid::Uuid;

use super::App;
use crate::auth::principal;
use crate::convert;
use crate::error::ApiError;

/// How soon to poll a job again, by state.
const POLL_QUEUED: Duration = Duration::from_secs(1);
const POLL_PROCESSING: Duration = Duration::from_millis(500);
/// How soon an upload's first message (its metadata) must arrive.
const METADATA_WITHIN: Duration = Duration::from_secs(10);

pub struct MediaApi {
    app: App,
}

impl MediaApi {
    pub fn new(app: App) -> Self {
        Self { app }
    }

    /// The first message, checked, with the caller allowed to upload for its target.
    async fn metadata(
        &self,
        caller: &Principal,
        first: Option<pb::UploadImageRequest>,
    ) -> Result<UploadMetadata, ApiError> {
        let Some(pb::upload_image_request::Payload::Metadata(given)) = first.and_then(|first| first.payload) else {
            return Err(FieldError::new("metadata", "must be the first message of the stream").into());
        };
        let target = match convert::known_enum("metadata.target_kind", given.target_kind)? {
            pb::ImageTargetKind::Unspecified => {
                return Err(FieldError::new("metadata.target_kind", "is required").into());
            }
            pb::ImageTargetKind::MenuItem => ImageTarget::MenuItem,
            pb::ImageTargetKind::RestaurantCover => ImageTarget::RestaurantCover,
            pb::ImageTargetKind::AccountAvatar => ImageTarget::AccountAvatar,
        };
        let target_id = parse_uuid("metadata.target_id", &given.target_id)?;
        let metadata = UploadMetadata::new(
            target,
            target_id,
            &given.content_type,
            given.total_size_bytes,
            &given.file_name,
            &given.sha256,
        )?;
        let refused = || {
            ApiError::PermissionDenied(
                "you may upload images for your own restaurant's menu and cover, and your own avatar".into(),
            )
        };
        // Whose an avatar is needs no lookup: refuse before saying whether the account exists.
        if target == ImageTarget::AccountAvatar && !media::may_upload(caller, target, target_id, None) {
            return Err(refused());
        }
        let restaurant_id = match self.app.uploads.target_owner(target, target_id).await? {
            TargetOwner::Missing => {
                let what = match target {
                    ImageTarget::MenuItem => "menu item",
                    ImageTarget::RestaurantCover => "restaurant",
                    ImageTarget::AccountAvatar => "account",
                };
                return Err(ApiError::NotFound(format!("{what} {target_id} not found")));
            }
            TargetOwner::Restaurant(restaurant_id) => Some(restaurant_id),
            TargetOwner::Account => None,
        };
        if !media::may_upload(caller, target, target_id, restaurant_id) {
            return Err(refused());
        }
        Ok(metadata)
    }
}

/// The bytes of one upload, every one of them, as announced.
async fn receive(stream: &mut Streaming<pb::UploadImageRequest>, metadata: &UploadMetadata) -> Result<Vec<u8>, Status> {
    let mut received = Received::new(metadata.size_bytes);
    while let Some(message) = stream.message().await? {
        match message.payload {
            Some(pb::upload_image_request::Payload::Chunk(chunk)) => received.push(&chunk).map_err(ApiError::from)?,
            Some(pb::upload_image_request::Payload::Metadata(_)) => {
                return Err(ApiError::from(FieldError::new("metadata", "must be sent once, first")).into());
            }
            None => return Err(ApiError::from(FieldError::new("chunk", "is required after the metadata")).into()),
        }
    }
    let bytes = received.finish().map_err(ApiError::from)?;
    if let Some(expected) = &metadata.sha256 {
        let actual = hex::encode(Sha256::digest(&bytes));
        if &actual != expected {
            let message = format!("does not match the bytes received (their SHA-256 is {actual})");
            return Err(ApiError::from(FieldError::new("metadata.sha256", message)).into());
        }
    }
    let announced = metadata.content_type;
    let sniffed = image::guess_format(&bytes).ok().and_then(|format| ImageType::parse(format.to_mime_type()));
    if sniffed != Some(announced) {
        let message = format!("says {}, but the bytes are not a {}", announced.as_str(), announced.label());
        return Err(ApiError::from(FieldError::new("metadata.content_type", message)).into());
    }
    Ok(bytes)
}

#[tonic::async_trait]
impl MediaService for MediaApi {
    /// Answers once the image and its job are stored: the job is durable
    /// and any replica processes it.
    async fn upload_image(
        &self,
        request: Request<Streaming<pb::UploadImageRequest>>,
    ) -> Result<Response<pb::UploadImageResponse>, Status> {
        let caller = principal(&request)?;
        let settings = &self.app.media_config;
        let mut stream = request.into_inner();
        let first = tokio::time::timeout(METADATA_WITHIN, stream.message()).await.map_err(|_| {
            Status::deadline_exceeded(format!(
                "the upload's metadata did not arrive within {}; send it first",
                humantime::format_duration(METADATA_WITHIN)
            ))
        })??;
        let metadata = self.metadata(&caller, first).await?;
        match self.app.upload_rate.take(&caller.user_id.to_string()).await {
            Ok(None) => {}
            Ok(Some(retry_after)) => {
                return Err(
                    ApiError::RateLimited { what: "too many images uploaded in a short time", retry_after }.into()
                );
            }
            // Uploads go on without Redis; only the limit is lost for a while.
            Err(err) => tracing::warn!(error = %foodfast_store::Chain(&err), "upload rate limit unavailable"),
        }
        let pending = self.app.uploads.pending().await.map_err(ApiError::from)?;
        if pending >= settings.max_pending {
            return Err(ApiError::QueueFull {
                message: format!(
                    "{pending} images are waiting to be processed (the limit is {}); retry later",
                    settings.max_pending
                ),
                retry_after: settings.poll_interval * 5,
            }
            .into());
        }
        // Each upload receiving its bytes holds them in memory: the permits
        // bound them. Taken only now, so a stream that sends nothing holds none.
        let Ok(_permit) = self.app.upload_permits.clone().try_acquire_owned() else {
            return Err(ApiError::QueueFull {
                message: format!(
                    "{} uploads are in progress on this server, its limit; retry shortly",
                    settings.max_concurrent_uploads
                ),
                retry_after: Duration::from_secs(1),
            }
            .into());
        };
        let timeout = settings.upload_timeout;
        let bytes = tokio::time::timeout(timeout, receive(&mut stream, &metadata)).await.map_err(|_| {
            Status::deadline_exceeded(format!(
                "the upload did not arrive within {}; send it again",
                humantime::format_duration(timeout)
            ))
        })??;
        let job = self.app.uploads.accept(caller.user_id, &metadata, bytes).await.map_err(ApiError::from)?;
        self.app.media_nudge.notify_one();
        Ok(Response::new(pb::UploadImageResponse { job_id: job.id.to_string() }))
    }

    /// The uploader and admins; anyone else is told the same whether or not it exists.
    async fn get_upload_job(
        &self,
        request: Request<pb::GetUploadJobRequest>,
    ) -> Result<Response<pb::GetUploadJobResponse>, Status> {
        let caller = principal(&request)?;
        let id: Uuid = parse_uuid("job_id", &request.get_ref().job_id).map_err(ApiError::from)?;
        let job = match self.app.uploads.get(id).await.map_err(ApiError::from)? {
            Some(job) if job.owner_id == caller.user_id || caller.role == Role::Admin => job,
            None if caller.role == Role::Admin => {
                return Err(ApiError::NotFound(format!("upload job {id} not found")).into());
            }
            _ => return Err(ApiError::PermissionDenied("you may read only your own upload jobs".into()).into()),
        };
        let poll_after = match job.state {
            JobState::Queued => Some(POLL_QUEUED),
            JobState::Processing => Some(POLL_PROCESSING),
            JobState::Succeeded | JobState::Failed => None,
        };
        Ok(Response::new(pb::GetUploadJobResponse { job: Some(convert::upload_job(&job, poll_after)) }))
    }
}
