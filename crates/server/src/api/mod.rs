//! The `foodfast.v1` services. Each has a file of its own
//! (`<service>_api.rs`) with thin handlers: validate, convert to domain
//! types, call the domain or the store, map the error.

mod account_api;
mod dispatch_api;
mod driver_api;
mod media_api;
mod notification_api;
mod order_api;
mod page_token;
mod restaurant_api;
mod support_api;
mod tracking_api;

use std::pin::Pin;
use std::sync::Arc;

use foodfast_api::v1::{
    account_service_server::AccountServiceServer, dispatch_service_server::DispatchServiceServer,
    driver_service_server::DriverServiceServer, media_service_server::MediaServiceServer,
    notification_service_server::NotificationServiceServer, order_service_server::OrderServiceServer,
    restaurant_service_server::RestaurantServiceServer, support_service_server::SupportServiceServer,
    tracking_service_server::TrackingServiceServer,
};
use foodfast_domain::order::OrderStatus;
use foodfast_domain::pricing::PricingPolicy;
use foodfast_payments::PaymentGateway;
use foodfast_store::announcements::Announcements;
use foodfast_store::audit::AuditLog;
use foodfast_store::dispatch::Dispatch;
use foodfast_store::fanout::{DISPATCH_TOPIC, Fanout, driver_topic, order_topic, restaurant_topic};
use foodfast_store::live::LivePositions;
use foodfast_store::locations::{LocationReader, LocationWriter};
use foodfast_store::notifications::Notifications;
use foodfast_store::orders::{Order, Orders, Transitioned};
use foodfast_store::restaurants::{Restaurant, Restaurants};
use foodfast_store::scylla::Scylla;
use foodfast_store::support::Support;
use foodfast_store::throttle::RateLimiter;
use foodfast_store::uploads::Uploads;
use foodfast_store::users::Users;
use tokio::sync::OnceCell;
use tokio_util::sync::CancellationToken;
use tonic::transport::server::Router;

use crate::announcements::AnnouncementBoard;
use crate::auth::Tokens;
use crate::config::{DispatchConfig, IngestConfig, MediaConfig, NotificationsConfig, ServiceSettings, TrackingConfig};
use crate::settlement::PaymentSettler;

pub use account_api::{AccountApi, Accounts};
pub use dispatch_api::DispatchApi;
pub use driver_api::DriverApi;
pub use media_api::MediaApi;
pub use notification_api::NotificationApi;
pub use order_api::OrderApi;
pub use restaurant_api::RestaurantApi;
pub use support_api::SupportApi;
pub use tracking_api::TrackingApi;

/// How a resumable server stream ends when the server shuts down.
pub(crate) fn shutting_down() -> tonic::Status {
    tonic::Status::unavailable("the server is shutting down; reconnect with your last cursor")
}

/// A server stream's body.
pub type BoxStream<T> = Pin<Box<dyn futures::Stream<Item = Result<T, tonic::Status>> + Send + 'static>>;

/// A change to an order that was not refused.
pub(crate) enum Stepped {
    /// Recorded by this request.
    Applied(Order),
    /// Recorded before (a resend after a lost answer); nothing changed.
    AlreadyApplied(Order),
}

impl Stepped {
    pub(crate) fn order(&self) -> &Order {
        match self {
            Stepped::Applied(order) | Stepped::AlreadyApplied(order) => order,
        }
    }

    pub(crate) fn into_order(self) -> Order {
        match self {
            Stepped::Applied(order) | Stepped::AlreadyApplied(order) => order,
        }
    }
}

/// What the handlers share: the stores, the payment provider, the policies.
#[derive(Clone)]
pub struct App {
    pub restaurants: Restaurants,
    pub orders: Orders,
    pub users: Users,
    pub accounts: Accounts,
    pub audit: AuditLog,
    pub announcements: Announcements,
    pub notifications: Notifications,
    pub support: Support,
    pub uploads: Uploads,
    /// Wakes this replica's image workers when an upload is accepted.
    pub media_nudge: Arc<tokio::sync::Notify>,
    /// One per upload being received (see `media.max_concurrent_uploads`).
    pub upload_permits: Arc<tokio::sync::Semaphore>,
    pub media_config: Arc<MediaConfig>,
    /// Wakes this replica's notification sender when a notification is queued.
    pub notifier_nudge: Arc<tokio::sync::Notify>,
    /// Pending notifications, as last counted (see [`crate::notifier::count_pending`]).
    pub notification_backlog: Arc<std::sync::atomic::AtomicU64>,
    pub notifications_config: Arc<NotificationsConfig>,
    /// The announcements in force, shared by every WatchAnnouncements stream.
    pub announcement_board: AnnouncementBoard,
    pub fanout: Fanout,
    pub payments: Arc<dyn PaymentGateway>,
    pub settler: PaymentSettler,
    pub pricing: Arc<PricingPolicy>,
    pub settings: Arc<ServiceSettings>,
    /// Orders placed per customer (`service.order_rate`).
    pub order_rate: RateLimiter,
    /// Uploads started per account (`media.upload_rate`).
    pub upload_rate: RateLimiter,
    pub live: LivePositions,
    pub ingest: Arc<IngestConfig>,
    pub tracking: Arc<TrackingConfig>,
    pub dispatch: Dispatch,
    pub dispatch_config: Arc<DispatchConfig>,
    pub scylla: Scylla,
    /// Started on first use, so the server comes up (NOT_SERVING) before
    /// the keyspace is migrated or while Scylla is down.
    pub location_writer: Arc<OnceCell<LocationWriter>>,
    pub location_reader: Arc<OnceCell<LocationReader>>,
    /// Cancelled when the server starts shutting down: streams end cleanly.
    pub stopping: CancellationToken,
}

impl App {
    /// The restaurant, or `NOT_FOUND` naming it.
    pub(crate) async fn restaurant(&self, id: uuid::Uuid) -> Result<Restaurant, crate::error::ApiError> {
        self.restaurants
            .get(id)
            .await?
            .ok_or_else(|| crate::error::ApiError::NotFound(format!("restaurant {id} not found")))
    }

    /// Everything that follows a committed transition: the payment call it
    /// owes, the drivers' live availability, and wake-ups for the order's
    /// watchers, the drivers concerned, the dispatchers (once confirmed, or
    /// when a driver has room again) and the notification senders (the
    /// customer's notice was queued in the transaction).
    /// A lost wake-up only delays its readers until their next poll.
    pub(crate) async fn committed(&self, done: &Transitioned) {
        if done.order.payment_status.unsettled().is_some() {
            self.settler.nudge();
        }
        for load in &done.driver_loads {
            if let Err(err) = self.live.set_at_capacity(load.driver_id, load.at_capacity).await {
                tracing::warn!(driver = %load.driver_id, error = %foodfast_store::Chain(&err), "could not record the driver's load");
            }
        }
        self.announce(done.order.restaurant_id, done.order.id).await;
        for driver_id in &done.drivers_affected {
            self.wake(&driver_topic(*driver_id)).await;
        }
        let confirmed =
            done.event.status == OrderStatus::Confirmed && done.event.previous_status == Some(OrderStatus::Pending);
        let driver_freed = done.driver_loads.iter().any(|load| !load.at_capacity);
        if confirmed || driver_freed {
            self.wake(DISPATCH_TOPIC).await;
        }
        if done.customer_notified {
            self.notifier_nudge.notify_one();
        }
    }

    /// Wakes every watcher of the restaurant and the order, on every replica.
    pub(crate) async fn announce(&self, restaurant_id: uuid::Uuid, order_id: uuid::Uuid) {
        self.wake(&restaurant_topic(restaurant_id)).await;
        self.wake(&order_topic(order_id)).await;
    }

    /// Wakes the subscribers of `topic` on every replica.
    pub(crate) async fn wake(&self, topic: &str) {
        if let Err(err) = self.fanout.publish(topic).await {
            tracing::warn!(%topic, error = %foodfast_store::Chain(&err), "could not publish a wake-up");
        }
    }

    pub async fn location_reader(&self) -> Result<LocationReader, tonic::Status> {
        self.location_reader.get_or_try_init(|| LocationReader::prepare(&self.scylla)).await.cloned().map_err(|err| {
            tracing::warn!(error = %foodfast_store::Chain(&err), "location reader not ready");
            tonic::Status::unavailable("the location store is not ready; retry with backoff")
        })
    }

    pub async fn location_writer(&self) -> Result<LocationWriter, tonic::Status> {
        self.location_writer
            .get_or_try_init(|| {
                LocationWriter::start(self.scylla.clone(), self.ingest.writer.clone(), self.stopping.clone())
            })
            .await
            .cloned()
            .map_err(|err| {
                tracing::warn!(error = %foodfast_store::Chain(&err), "location writer not ready");
                tonic::Status::unavailable("the location store is not ready; retry with backoff")
            })
    }
}

/// Adds every `foodfast.v1` service behind the bearer-token interceptor,
/// each limited to `max_message_bytes` in both directions, its callers
/// checked by role and its state changes written to the audit log
/// ([`crate::policy`]).
pub fn add_services<L>(router: Router<L>, app: App, tokens: &Tokens, max_message_bytes: usize) -> Router<L> {
    let audit = app.audit.clone();
    macro_rules! service {
        ($server:ident, $service:expr) => {
            tonic::service::interceptor::InterceptedService::new(
                crate::policy::Guarded::new(
                    $server::new($service)
                        .max_decoding_message_size(max_message_bytes)
                        .max_encoding_message_size(max_message_bytes),
                    audit.clone(),
                    max_message_bytes,
                ),
                crate::auth::interceptor(tokens.clone()),
            )
        };
    }
    router
        .add_service(service!(AccountServiceServer, AccountApi::new(app.clone())))
        .add_service(service!(RestaurantServiceServer, RestaurantApi::new(app.clone())))
        .add_service(service!(OrderServiceServer, OrderApi::new(app.clone())))
        .add_service(service!(DriverServiceServer, DriverApi::new(app.clone())))
        .add_service(service!(TrackingServiceServer, TrackingApi::new(app.clone())))
        .add_service(service!(DispatchServiceServer, DispatchApi::new(app.clone())))
        .add_service(service!(NotificationServiceServer, NotificationApi::new(app.clone())))
        .add_service(service!(SupportServiceServer, SupportApi::new(app.clone())))
        .add_service(service!(MediaServiceServer, MediaApi::new(app)))
}
