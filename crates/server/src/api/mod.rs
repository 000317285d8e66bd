//! The `foodfast.v1` services. Each implemented service gets a file of its
//! own (`<service>_api.rs`) with thin handlers: validate, convert to domain
//! types, call the domain or the store, map the error. Services whose issue
//! has not landed yet answer every RPC with `UNIMPLEMENTED`.

use foodfast_api::v1::{
    account_service_server::{AccountService, AccountServiceServer},
    dispatch_service_server::{DispatchService, DispatchServiceServer},
    driver_service_server::{DriverService, DriverServiceServer},
    media_service_server::{MediaService, MediaServiceServer},
    notification_service_server::{NotificationService, NotificationServiceServer},
    order_service_server::{OrderService, OrderServiceServer},
    restaurant_service_server::{RestaurantService, RestaurantServiceServer},
    support_service_server::{SupportService, SupportServiceServer},
    tracking_service_server::{TrackingService, TrackingServiceServer},
};
use tonic::transport::server::Router;

/// Answers every RPC of the services it implements with `UNIMPLEMENTED`
/// (the generated default), so clients see the whole contract today.
#[derive(Debug, Clone, Copy)]
pub struct NotImplementedYet;

impl AccountService for NotImplementedYet {}
impl RestaurantService for NotImplementedYet {}
impl OrderService for NotImplementedYet {}
impl DriverService for NotImplementedYet {}
impl TrackingService for NotImplementedYet {}
impl DispatchService for NotImplementedYet {}
impl NotificationService for NotImplementedYet {}
impl SupportService for NotImplementedYet {}
impl MediaService for NotImplementedYet {}

/// Adds every `foodfast.v1` service, each limited to `max_message_bytes` in
/// both directions.
pub fn add_services(router: Router, max_message_bytes: usize) -> Router {
    macro_rules! limited {
        ($server:ident, $service:expr) => {
            $server::new($service)
                .max_decoding_message_size(max_message_bytes)
                .max_encoding_message_size(max_message_bytes)
        };
    }
    router
        .add_service(limited!(AccountServiceServer, NotImplementedYet))
        .add_service(limited!(RestaurantServiceServer, NotImplementedYet))
        .add_service(limited!(OrderServiceServer, NotImplementedYet))
        .add_service(limited!(DriverServiceServer, NotImplementedYet))
        .add_service(limited!(TrackingServiceServer, NotImplementedYet))
        .add_service(limited!(DispatchServiceServer, NotImplementedYet))
        .add_service(limited!(NotificationServiceServer, NotImplementedYet))
        .add_service(limited!(SupportServiceServer, NotImplementedYet))
        .add_service(limited!(MediaServiceServer, NotImplementedYet))
}
