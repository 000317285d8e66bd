//! `NotificationService`: notifications to one person (queued durably, sent
//! by [`crate::notifier`]), push devices, and system-wide announcements.

use std::sync::atomic::Ordering;
use std::time::Instant;

use chrono::Utc;
use foodfast_api::v1 as pb;
use foodfast_api::v1::notification_service_server::NotificationService;
use foodfast_domain::access::{Principal, Role};
use foodfast_domain::announcement::{Announcement, NewAnnouncement, Severity};
use foodfast_domain::device::{Platform, validate_push_token};
use foodfast_domain::notification::{self, Channel, Message, Priority, State};
use foodfast_domain::validation::{FieldError, parse_uuid};
use foodfast_store::announcements::Published;
use foodfast_store::fanout::ANNOUNCEMENTS_TOPIC;
use foodfast_store::notifications::{Enqueued, NewNotification};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use super::{App, BoxStream};
use crate::announcements::Board;
use crate::auth::principal;
use crate::convert;
use crate::error::ApiError;

pub struct NotificationApi {
    app: App,
}

impl NotificationApi {
    pub fn new(app: App) -> Self {
        Self { app }
    }
}

fn new_announcement(request: pb::PublishAnnouncementRequest) -> Result<NewAnnouncement, ApiError> {
    let severity = match convert::known_enum("severity", request.severity)? {
        pb::AnnouncementSeverity::Unspecified | pb::AnnouncementSeverity::Info => Severity::Info,
        pb::AnnouncementSeverity::Warning => Severity::Warning,
        pb::AnnouncementSeverity::Critical => Severity::Critical,
    };
    let audience = request
        .audience
        .iter()
        .enumerate()
        .map(|(i, &role)| convert::parse_role(&format!("audience[{i}]"), role))
        .collect::<Result<Vec<Role>, _>>()?;
    let new = NewAnnouncement {
        expires_at: convert::parse_timestamp("expires_at", request.expires_at.as_ref())?,
        title: request.title,
        body: request.body,
        severity,
        audience,
        city: request.city,
    };
    Ok(new.validated(Utc::now())?)
}

#[tonic::async_trait]
impl NotificationService for NotificationApi {
    /// Support and admins (checked by the policy layer). Answers once the
    /// notification is durably queued; the same idempotency key answers the
    /// first notification's id.
    async fn send_notification(
        &self,
        request: Request<pb::SendNotificationRequest>,
    ) -> Result<Response<pb::SendNotificationResponse>, Status> {
        let request = request.into_inner();
        let recipient_id = parse_uuid("recipient_id", &request.recipient_id).map_err(ApiError::from)?;
        let channel = match convert::known_enum("channel", request.channel).map_err(ApiError::from)? {
            pb::NotificationChannel::Unspecified => {
                return Err(ApiError::from(FieldError::new("channel", "is required")).into());
            }
            pb::NotificationChannel::Push => Channel::Push,
            pb::NotificationChannel::Sms => Channel::Sms,
            pb::NotificationChannel::Email => Channel::Email,
        };
        let priority = match convert::known_enum("priority", request.priority).map_err(ApiError::from)? {
            pb::NotificationPriority::Critical => Priority::Critical,
            pb::NotificationPriority::High => Priority::High,
            pb::NotificationPriority::Unspecified | pb::NotificationPriority::Normal => Priority::Normal,
            pb::NotificationPriority::Low => Priority::Low,
        };
        let idempotency_key =
            notification::idempotency_key(&request.idempotency_key).map_err(ApiError::from)?.map(str::to_owned);
        let message = match &request.content {
            None => return Err(ApiError::from(FieldError::new("content", "needs a template or a message")).into()),
            Some(pb::send_notification_request::Content::Template(template)) => {
                notification::render(&template.template_id, &template.params)
            }
            Some(pb::send_notification_request::Content::Message(message)) => {
                Message::literal(&message.title, &message.body)
            }
        }
        .map_err(ApiError::from)?;
        if self.app.notifications.contact(recipient_id).await.map_err(ApiError::from)?.is_none() {
            return Err(ApiError::NotFound(format!("account {recipient_id} not found")).into());
        }
        // Keys of this API live apart from the server's own ("order:…").
        let idempotency_key = idempotency_key.map(|key| format!("send:{key}"));
        let new = NewNotification { recipient_id, channel, priority, message, idempotency_key };
        // A retry is answered whatever the backlog.
        if let Some(before) = self.app.notifications.queued_under_key(&new).await.map_err(ApiError::from)? {
            return sent(before);
        }
        let backlog = self.app.notification_backlog.load(Ordering::Relaxed);
        let max_pending = self.app.notifications_config.max_pending;
        let state = match (backlog >= max_pending, priority) {
            (false, _) => State::Queued,
            (true, Priority::Low) => State::Dropped,
            (true, _) => {
                return Err(ApiError::QueueFull {
                    message: format!("{backlog} notifications are waiting (the limit is {max_pending}); retry later"),
                    retry_after: self.app.notifications_config.poll_interval,
                }
                .into());
            }
        };
        let enqueued = self.app.notifications.enqueue(&new, state).await.map_err(ApiError::from)?;
        self.app.notifier_nudge.notify_one();
        sent(enqueued)
    }

    /// Support and admins, and the recipient; anyone else is told the same
    /// whether or not it exists.
    async fn get_notification(
        &self,
        request: Request<pb::GetNotificationRequest>,
    ) -> Result<Response<pb::GetNotificationResponse>, Status> {
        let caller = principal(&request)?;
        let id = parse_uuid("notification_id", &request.get_ref().notification_id).map_err(ApiError::from)?;
        let found = self.app.notifications.get(id).await.map_err(ApiError::from)?;
        let notification = match found {
            Some(notification) if caller.is_operator() || notification.recipient_id == caller.user_id => notification,
            None if caller.is_operator() => {
                return Err(ApiError::NotFound(format!("notification {id} not found")).into());
            }
            _ => return Err(ApiError::PermissionDenied("you may read only your own notifications".into()).into()),
        };
        Ok(Response::new(pb::GetNotificationResponse { notification: Some(convert::notification(&notification)) }))
    }

    /// Any signed-in caller, for itself.
    async fn register_device(
        &self,
        request: Request<pb::RegisterDeviceRequest>,
    ) -> Result<Response<pb::RegisterDeviceResponse>, Status> {
        let caller = principal(&request)?;
        let request = request.into_inner();
        let platform = match convert::known_enum("platform", request.platform).map_err(ApiError::from)? {
            pb::DevicePlatform::Unspecified => {
                return Err(ApiError::from(FieldError::new("platform", "is required")).into());
            }
            pb::DevicePlatform::Ios => Platform::Ios,
            pb::DevicePlatform::Android => Platform::Android,
            pb::DevicePlatform::Web => Platform::Web,
        };
        validate_push_token("push_token", &request.push_token).map_err(ApiError::from)?;
        let device_id = self
            .app
            .users
            .register_device(caller.user_id, platform, &request.push_token)
            .await
            .map_err(ApiError::from)?;
        Ok(Response::new(pb::RegisterDeviceResponse { device_id: device_id.to_string() }))
    }

    /// Any signed-in caller, for itself.
    async fn unregister_device(
        &self,
        request: Request<pb::UnregisterDeviceRequest>,
    ) -> Result<Response<pb::UnregisterDeviceResponse>, Status> {
        let caller = principal(&request)?;
        let request = request.into_inner();
        validate_push_token("push_token", &request.push_token).map_err(ApiError::from)?;
        let removed =
            self.app.users.unregister_device(caller.user_id, &request.push_token).await.map_err(ApiError::from)?;
        Ok(Response::new(pb::UnregisterDeviceResponse { removed }))
    }

    /// Admins only (checked by the policy layer too).
    async fn publish_announcement(
        &self,
        request: Request<pb::PublishAnnouncementRequest>,
    ) -> Result<Response<pb::PublishAnnouncementResponse>, Status> {
        let caller = principal(&request)?;
        if caller.role != Role::Admin {
            return Err(ApiError::PermissionDenied("only admins publish announcements".into()).into());
        }
        let request = request.into_inner();
        let key = notification::idempotency_key(&request.idempotency_key).map_err(ApiError::from)?.map(str::to_owned);
        let new = new_announcement(request)?;
        let published =
            self.app.announcements.publish(&new, Some(caller.user_id), key.as_deref()).await.map_err(ApiError::from)?;
        if let Published::New(_) = published {
            self.app.wake(ANNOUNCEMENTS_TOPIC).await;
        }
        let announcement = published.announcement().ok_or_else(|| {
            ApiError::IdempotencyKeyReused("idempotency_key was used for another announcement; choose a new key".into())
        })?;
        Ok(Response::new(pb::PublishAnnouncementResponse { announcement: Some(convert::announcement(&announcement)) }))
    }

    /// Any caller; each gets the announcements addressed to its role. The
    /// stream ends only with `UNAVAILABLE` when the server shuts down (resume
    /// from the last cursor), or when the client goes away.
    async fn watch_announcements(
        &self,
        request: Request<pb::WatchAnnouncementsRequest>,
    ) -> Result<Response<BoxStream<pb::WatchAnnouncementsResponse>>, Status> {
        let role = request.extensions().get::<Principal>().map(|caller| caller.role);
        let after = convert::parse_cursor(&request.get_ref().after_cursor).map_err(ApiError::from)?.unwrap_or(0);
        let (sender, receiver) = mpsc::channel(self.app.settings.watch_buffer);
        tokio::spawn(watch(self.app.clone(), role, after, sender));
        Ok(Response::new(Box::pin(ReceiverStream::new(receiver))))
    }
}

/// The body of one WatchAnnouncements stream: what the board holds after
/// the cursor for this role, then each change of the board. A slow client
/// makes `send` wait; the board only says what is new since the cursor.
async fn watch(
    app: App,
    role: Option<Role>,
    mut cursor: i64,
    sender: mpsc::Sender<Result<pb::WatchAnnouncementsResponse, Status>>,
) {
    let settings = &app.settings;
    let mut board = app.announcement_board.subscribe();
    let mut last_sent = Instant::now();
    loop {
        let due: Vec<Announcement> = unseen(&board.borrow_and_update(), cursor, role);
        for announcement in due {
            cursor = announcement.seq;
            let message = pb::WatchAnnouncementsResponse {
                cursor: cursor.to_string(),
                payload: Some(pb::watch_announcements_response::Payload::Announcement(convert::announcement(
                    &announcement,
                ))),
            };
            if sender.send(Ok(message)).await.is_err() {
                return;
            }
            last_sent = Instant::now();
        }
        let heartbeat_due = last_sent + settings.watch_heartbeat;
        tokio::select! {
            _ = app.stopping.cancelled() => {
                let _ = sender.send(Err(super::shutting_down())).await;
                return;
            }
            _ = sender.closed() => return,
            changed = board.changed() => {
                if changed.is_err() {
                    // The board's task ended: the server is stopping.
                    let _ = sender.send(Err(Status::unavailable(
                        "announcements are not being kept any more; reconnect with your last cursor",
                    ))).await;
                    return;
                }
            }
            _ = tokio::time::sleep_until(heartbeat_due.into()) => {
                let message = pb::WatchAnnouncementsResponse {
                    cursor: cursor.to_string(),
                    payload: Some(pb::watch_announcements_response::Payload::Heartbeat(convert::heartbeat(
                        settings.watch_heartbeat,
                    ))),
                };
                if sender.send(Ok(message)).await.is_err() {
                    return;
                }
                last_sent = Instant::now();
            }
        }
    }
}

/// The board's announcements after `cursor` addressed to `role`, oldest first.
fn unseen(board: &Board, cursor: i64, role: Option<Role>) -> Vec<Announcement> {
    board.iter().filter(|a| a.seq > cursor && a.addressed_to(role)).cloned().collect()
}

/// SendNotification's answer: the notification's id, or `ALREADY_EXISTS`
/// when its idempotency key was used for another.
fn sent(enqueued: Enqueued) -> Result<Response<pb::SendNotificationResponse>, Status> {
    let id = enqueued.id().ok_or_else(|| {
        ApiError::IdempotencyKeyReused(
            "idempotency_key was used for another notification (recipient, channel, priority or text); choose a new key"
                .into(),
        )
    })?;
    Ok(Response::new(pb::SendNotificationResponse { notification_id: id.to_string() }))
}
