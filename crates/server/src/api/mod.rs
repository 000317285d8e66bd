//! The `foodfast.v1` services. Each implemented service has a file of its
//! own (`<service>_api.rs`) with thin handlers: validate, convert to domain
//! types, call the domain or the store, map the error. Services whose issue
//! has not landed yet answer every RPC with `UNIMPLEMENTED`.

mod order_api;
mod page_token;
mod restaurant_api;

use std::pin::Pin;
use std::sync::Arc;

use foodfast_api::v1::{
    account_service_server::{AccountService, AccountServiceServer},
    dispatch_service_server::{DispatchService, DispatchServiceServer},
    driver_service_server::{DriverService, DriverServiceServer},
    media_service_server::{MediaService, MediaServiceServer},
    notification_service_server::{NotificationService, NotificationServiceServer},
    order_service_server::OrderServiceServer,
    restaurant_service_server::RestaurantServiceServer,
    support_service_server::{SupportService, SupportServiceServer},
    tracking_service_server::{TrackingService, TrackingServiceServer},
};
use foodfast_domain::pricing::PricingPolicy;
use foodfast_payments::PaymentGateway;
use foodfast_store::fanout::Fanout;
use foodfast_store::orders::Orders;
use foodfast_store::restaurants::Restaurants;
use foodfast_store::users::Users;
use tokio_util::sync::CancellationToken;
use tonic::transport::server::Router;

use crate::auth::Tokens;
use crate::config::ServiceSettings;
use crate::settlement::PaymentSettler;

pub use order_api::OrderApi;
pub use restaurant_api::RestaurantApi;

/// A server stream's body.
pub type BoxStream<T> = Pin<Box<dyn futures::Stream<Item = Result<T, tonic::Status>> + Send + 'static>>;

/// What the handlers share: the stores, the payment provider, the policies.
#[derive(Clone)]
pub struct App {
    pub restaurants: Restaurants,
    pub orders: Orders,
    pub users: Users,
    pub fanout: Fanout,
    pub payments: Arc<dyn PaymentGateway>,
    pub settler: PaymentSettler,
    pub pricing: Arc<PricingPolicy>,
    pub settings: Arc<ServiceSettings>,
    /// Cancelled when the server starts shutting down: streams end cleanly.
    pub stopping: CancellationToken,
}

/// Answers every RPC of the services it implements with `UNIMPLEMENTED`
/// (the generated default), so clients see the whole contract today.
#[derive(Debug, Clone, Copy)]
pub struct NotImplementedYet;

impl AccountService for NotImplementedYet {}
impl DriverService for NotImplementedYet {}
impl TrackingService for NotImplementedYet {}
impl DispatchService for NotImplementedYet {}
impl NotificationService for NotImplementedYet {}
impl SupportService for NotImplementedYet {}
impl MediaService for NotImplementedYet {}

/// Adds every `foodfast.v1` service behind the bearer-token interceptor,
/// each limited to `max_message_bytes` in both directions.
pub fn add_services(router: Router, app: App, tokens: &Tokens, max_message_bytes: usize) -> Router {
    macro_rules! service {
        ($server:ident, $service:expr) => {
            tonic::service::interceptor::InterceptedService::new(
                $server::new($service)
                    .max_decoding_message_size(max_message_bytes)
                    .max_encoding_message_size(max_message_bytes),
                tokens.interceptor(),
            )
        };
    }
    router
        .add_service(service!(AccountServiceServer, NotImplementedYet))
        .add_service(service!(RestaurantServiceServer, RestaurantApi::new(app.clone())))
        .add_service(service!(OrderServiceServer, OrderApi::new(app)))
        .add_service(service!(DriverServiceServer, NotImplementedYet))
        .add_service(service!(TrackingServiceServer, NotImplementedYet))
        .add_service(service!(DispatchServiceServer, NotImplementedYet))
        .add_service(service!(NotificationServiceServer, NotImplementedYet))
        .add_service(service!(SupportServiceServer, NotImplementedYet))
        .add_service(service!(MediaServiceServer, NotImplementedYet))
}
