//! The authorization matrix: every RPC of the contract, called as every
//! role and anonymously, against real stores. The expected table below is
//! the contract's comments written out; an RPC missing from it fails the
//! test, so a new RPC cannot ship without a rule.
//!
//! "Allowed" means the call got past authorization: any answer but
//! `UNAUTHENTICATED` or `PERMISSION_DENIED`. Each call is made with
//! resources the caller may touch (the customer's own order, the staff's
//! restaurant, the assigned driver), so a refusal is about the role. Per-resource refusals are the second test.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::{Kitchen, demo_menu, location_ping, profile};
use foodfast_api::v1 as pb;
use foodfast_api::v1::media_service_client::MediaServiceClient;
use foodfast_api::v1::notification_service_client::NotificationServiceClient;
use foodfast_api::v1::support_service_client::SupportServiceClient;
use foodfast_domain::access::Principal;
use foodfast_domain::media::{ImageTarget, UploadMetadata};
use foodfast_domain::notification::{Channel, Message, Priority, State};
use foodfast_store::notifications::{NewNotification, Notifications};
use foodfast_store::support::Support;
use foodfast_store::uploads::Uploads;
use tonic::{Code, Status};
use uuid::Uuid;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Who {
    Anonymous,
    Customer,
    Staff,
    Driver,
    Support,
    Admin,
}

use Who::*;

const EVERYONE: &[Who] = &[Anonymous, Customer, Staff, Driver, Support, Admin];
const SIGNED_IN: &[Who] = &[Customer, Staff, Driver, Support, Admin];

/// Who may call each RPC, from the contract's comments.
const EXPECTED: &[(&str, &[Who])] = &[
    ("AccountService/Register", EVERYONE),
    ("AccountService/Login", EVERYONE),
    ("AccountService/RefreshToken", EVERYONE),
    ("AccountService/Logout", EVERYONE),
    ("AccountService/GetProfile", SIGNED_IN),
    ("AccountService/UpdateProfile", SIGNED_IN),
    ("AccountService/CreateAccount", &[Admin]),
    ("DispatchService/AssignDriver", &[Support, Admin]),
    ("DispatchService/GetMatchingState", &[Support, Admin]),
    ("DispatchService/ListFlaggedOrders", &[Support, Admin]),
    ("DriverService/Connect", &[Driver]),
    ("DriverService/ReportLocation", &[Driver]),
    ("DriverService/SetAvailability", &[Driver]),
    ("DriverService/GetDriverState", &[Driver, Support, Admin]),
    ("DriverService/AcceptOffer", &[Driver]),
    ("DriverService/DeclineOffer", &[Driver]),
    ("DriverService/MarkArrived", &[Driver]),
    ("DriverService/MarkPickedUp", &[Driver]),
    ("DriverService/MarkDelivered", &[Driver]),
    ("MediaService/UploadImage", SIGNED_IN),
    ("MediaService/GetUploadJob", SIGNED_IN),
    ("NotificationService/SendNotification", &[Support, Admin]),
    ("NotificationService/GetNotification", SIGNED_IN),
    ("NotificationService/RegisterDevice", SIGNED_IN),
    ("NotificationService/UnregisterDevice", SIGNED_IN),
    ("NotificationService/WatchAnnouncements", EVERYONE),
    ("NotificationService/PublishAnnouncement", &[Admin]),
    ("OrderService/Quote", &[Customer]),
    ("OrderService/CreateOrder", &[Customer]),
    ("OrderService/GetOrder", SIGNED_IN),
    ("OrderService/ListOrders", &[Customer, Support, Admin]),
    ("OrderService/CancelOrder", &[Customer, Support, Admin]),
    ("RestaurantService/CreateRestaurant", &[Admin]),
    ("RestaurantService/UpdateRestaurant", &[Staff, Admin]),
    ("RestaurantService/GetRestaurant", EVERYONE),
    ("RestaurantService/SearchNearby", EVERYONE),
    ("RestaurantService/GetMenu", EVERYONE),
    ("RestaurantService/UpsertMenu", &[Staff, Admin]),
    ("RestaurantService/WatchOrders", &[Staff, Support, Admin]),
    ("RestaurantService/UpdateOrderStatus", &[Staff, Admin]),
    ("SupportService/Chat", &[Customer, Support, Admin]),
    ("SupportService/ListConversations", &[Customer, Support, Admin]),
    ("SupportService/GetConversationHistory", &[Customer, Support, Admin]),
    ("TrackingService/TrackOrder", SIGNED_IN),
    ("TrackingService/GetDriverTrack", &[Driver, Support, Admin]),
    ("TrackingService/ExportCityPings", &[Support, Admin]),
];

const PASSWORD: &str = "a password for the matrix";

/// A restaurant with its staff, a customer, a driver, support and an admin.
struct World {
    kitchen: Kitchen,
    driver: Principal,
    support: Principal,
    /// An order of the customer at the restaurant, assigned to the driver.
    order_id: String,
    /// An account with `PASSWORD`, to sign in with.
    email: String,
}

impl World {
    async fn new() -> Self {
        let kitchen = Kitchen::open().await;
        let driver = kitchen.driver(50).await;
        kitchen.online(&driver).await;
        let support = kitchen.server.support().await;
        let order_id = kitchen.ready_order().await;
        kitchen.assign(&order_id, &driver).await.unwrap();
        let email = format!("{}@example.test", Uuid::new_v4().simple());
        kitchen
            .server
            .accounts(None)
            .register(pb::RegisterRequest {
                email: email.clone(),
                password: PASSWORD.into(),
                display_name: "Matrix".into(),
                phone: String::new(),
            })
            .await
            .unwrap();
        Self { kitchen, driver, support, order_id, email }
    }

    fn principal(&self, who: Who) -> Option<&Principal> {
        match who {
            Anonymous => None,
            Customer => Some(&self.kitchen.customer),
            Staff => Some(&self.kitchen.staff),
            Driver => Some(&self.driver),
            Support => Some(&self.support),
            Admin => Some(&self.kitchen.admin),
        }
    }

    fn restaurant_id(&self) -> String {
        self.kitchen.restaurant.restaurant_id.clone()
    }

    /// A new order of the customer, ready and assigned to the driver.
    async fn assigned_order(&self) -> String {
        let order_id = self.kitchen.ready_order().await;
        self.kitchen.assign(&order_id, &self.driver).await.unwrap();
        order_id
    }

    async fn refresh_token(&self) -> String {
        let login = pb::LoginRequest { email: self.email.clone(), password: PASSWORD.into() };
        let signed_in = self.kitchen.server.accounts(None).login(login).await.unwrap().into_inner();
        signed_in.tokens.unwrap().refresh_token
    }

    /// Makes `rpc` as `who`, with resources `who` may touch; the status code.
    async fn call(&self, rpc: &str, who: Who) -> Code {
        let caller = self.principal(who);
        let server = &self.kitchen.server;
        let bearer = server.bearer(caller);
        let channel = server.channel.clone();
        let restaurant_id = self.restaurant_id();
        let order_id = self.order_id.clone();
        let unique_email = || format!("{}@example.test", Uuid::new_v4().simple());
        let cart = || vec![common::line(&self.kitchen.menu, "Bruschetta", 1, &[])];
        let address = || common::address_near(common::KITCHEN_LAT, common::KITCHEN_LNG, 1_000.0);
        match rpc {
            "AccountService/Register" => code(
                server
                    .accounts(caller)
                    .register(pb::RegisterRequest {
                        email: unique_email(),
                        password: PASSWORD.into(),
                        display_name: "New".into(),
                        phone: String::new(),
                    })
                    .await,
            ),
            "AccountService/Login" => code(
                server
                    .accounts(caller)
                    .login(pb::LoginRequest { email: self.email.clone(), password: PASSWORD.into() })
                    .await,
            ),
            "AccountService/RefreshToken" => {
                let refresh_token = self.refresh_token().await;
                code(server.accounts(caller).refresh_token(pb::RefreshTokenRequest { refresh_token }).await)
            }
            "AccountService/Logout" => {
                let refresh_token = self.refresh_token().await;
                code(server.accounts(caller).logout(pb::LogoutRequest { refresh_token, all_sessions: false }).await)
            }
            "AccountService/GetProfile" => code(server.accounts(caller).get_profile(pb::GetProfileRequest {}).await),
            "AccountService/UpdateProfile" => {
                code(server.accounts(caller).update_profile(pb::UpdateProfileRequest::default()).await)
            }
            "AccountService/CreateAccount" => code(
                server
                    .accounts(caller)
                    .create_account(pb::CreateAccountRequest {
                        email: unique_email(),
                        password: PASSWORD.into(),
                        display_name: "Made".into(),
                        role: pb::Role::Support.into(),
                        ..Default::default()
                    })
                    .await,
            ),
            "DispatchService/AssignDriver" => {
                let order_id = self.kitchen.ready_order().await;
                let request = pb::AssignDriverRequest {
                    order_id,
                    driver_id: self.driver.user_id.to_string(),
                    replace: false,
                    reason: "matrix".into(),
                };
                code(server.dispatch(caller).assign_driver(request).await)
            }
            "DispatchService/GetMatchingState" => {
                code(server.dispatch(caller).get_matching_state(pb::GetMatchingStateRequest { order_id }).await)
            }
            "DispatchService/ListFlaggedOrders" => code(
                server
                    .dispatch(caller)
                    .list_flagged_orders(pb::ListFlaggedOrdersRequest { city: "paris".into(), ..Default::default() })
                    .await,
            ),
            "DriverService/Connect" => {
                let hello =
                    pb::Hello { app_version: "matrix".into(), availability: pb::DriverAvailability::Online as i32 };
                let hello = pb::ConnectRequest { payload: Some(pb::connect_request::Payload::Hello(hello)) };
                // The stream stays open (the app half-closes later): one answer is enough.
                let (sender, receiver) = tokio::sync::mpsc::channel(1);
                sender.send(hello).await.unwrap();
                let stream = tokio_stream::wrappers::ReceiverStream::new(receiver);
                match server.drivers(caller).connect(stream).await {
                    Ok(response) => code(response.into_inner().message().await),
                    Err(status) => status.code(),
                }
            }
            "DriverService/ReportLocation" => {
                let ping = location_ping(1, (common::KITCHEN_LAT, common::KITCHEN_LNG), 1.0);
                code(server.drivers(caller).report_location(pb::ReportLocationRequest { pings: vec![ping] }).await)
            }
            "DriverService/SetAvailability" => code(
                server
                    .drivers(caller)
                    .set_availability(pb::SetAvailabilityRequest {
                        availability: pb::DriverAvailability::Online as i32,
                    })
                    .await,
            ),
            "DriverService/GetDriverState" => code(
                server
                    .drivers(caller)
                    .get_driver_state(pb::GetDriverStateRequest { driver_id: self.driver.user_id.to_string() })
                    .await,
            ),
            "DriverService/AcceptOffer" => code(
                server
                    .drivers(caller)
                    .accept_offer(pb::AcceptOfferRequest { delivery_id: Uuid::new_v4().to_string() })
                    .await,
            ),
            "DriverService/DeclineOffer" => code(
                server
                    .drivers(caller)
                    .decline_offer(pb::DeclineOfferRequest {
                        delivery_id: Uuid::new_v4().to_string(),
                        reason: "matrix".into(),
                    })
                    .await,
            ),
            "DriverService/MarkArrived" => {
                let order_id = self.assigned_order().await;
                code(
                    server
                        .drivers(caller)
                        .mark_arrived(pb::MarkArrivedRequest { order_id, stop: pb::DeliveryStop::Restaurant as i32 })
                        .await,
                )
            }
            "DriverService/MarkPickedUp" => {
                let order_id = self.assigned_order().await;
                code(server.drivers(caller).mark_picked_up(pb::MarkPickedUpRequest { order_id }).await)
            }
            "DriverService/MarkDelivered" => {
                let order_id = self.assigned_order().await;
                code(server.drivers(caller).mark_delivered(pb::MarkDeliveredRequest { order_id }).await)
            }
            "MediaService/UploadImage" => {
                let mut media = MediaServiceClient::with_interceptor(channel, bearer);
                code(media.upload_image(tokio_stream::iter(Vec::<pb::UploadImageRequest>::new())).await)
            }
            "MediaService/GetUploadJob" => {
                // The caller's own upload (anonymous callers: the customer's).
                let owner_id = caller.unwrap_or(&self.kitchen.customer).user_id;
                let avatar =
                    UploadMetadata::new(ImageTarget::AccountAvatar, owner_id, "image/png", 4, "a.png", "").unwrap();
                let uploads = Uploads::new(server.stores.postgres.clone(), server.stores.objects.clone());
                let job = uploads.accept(owner_id, &avatar, b"\x89PNG".to_vec()).await.unwrap();
                let mut media = MediaServiceClient::with_interceptor(channel, bearer);
                code(media.get_upload_job(pb::GetUploadJobRequest { job_id: job.id.to_string() }).await)
            }
            "NotificationService/SendNotification" => {
                let mut notifications = NotificationServiceClient::with_interceptor(channel, bearer);
                let request = pb::SendNotificationRequest {
                    recipient_id: self.kitchen.customer.user_id.to_string(),
                    idempotency_key: Uuid::new_v4().to_string(),
                    ..Default::default()
                };
                code(notifications.send_notification(request).await)
            }
            "NotificationService/GetNotification" => {
                // A notification to the caller itself (anonymous callers: to the customer).
                let recipient_id = caller.unwrap_or(&self.kitchen.customer).user_id;
                let own = NewNotification {
                    recipient_id,
                    channel: Channel::Email,
                    priority: Priority::Normal,
                    message: Message { title: String::new(), body: "yours".into() },
                    idempotency_key: None,
                };
                let store = Notifications::new(server.stores.postgres.clone());
                let id = store.enqueue(&own, State::Queued).await.unwrap().id().unwrap();
                let mut notifications = NotificationServiceClient::with_interceptor(channel, bearer);
                let request = pb::GetNotificationRequest { notification_id: id.to_string() };
                code(notifications.get_notification(request).await)
            }
            "NotificationService/RegisterDevice" => {
                let mut notifications = NotificationServiceClient::with_interceptor(channel, bearer);
                code(notifications.register_device(pb::RegisterDeviceRequest::default()).await)
            }
            "NotificationService/UnregisterDevice" => {
                let mut notifications = NotificationServiceClient::with_interceptor(channel, bearer);
                code(notifications.unregister_device(pb::UnregisterDeviceRequest::default()).await)
            }
            "NotificationService/WatchAnnouncements" => {
                let mut notifications = NotificationServiceClient::with_interceptor(channel, bearer);
                first(notifications.watch_announcements(pb::WatchAnnouncementsRequest::default()).await).await
            }
            "NotificationService/PublishAnnouncement" => {
                let mut notifications = NotificationServiceClient::with_interceptor(channel, bearer);
                let request = pb::PublishAnnouncementRequest { title: "Matrix".into(), ..Default::default() };
                code(notifications.publish_announcement(request).await)
            }
            "OrderService/Quote" => code(
                server
                    .orders(caller)
                    .quote(pb::QuoteRequest { restaurant_id, items: cart(), delivery_address: Some(address()) })
                    .await,
            ),
            "OrderService/CreateOrder" => code(
                server
                    .orders(caller)
                    .create_order(pb::CreateOrderRequest {
                        idempotency_key: Uuid::new_v4().to_string(),
                        restaurant_id,
                        items: cart(),
                        delivery_address: Some(address()),
                        payment_method_id: "pm_card_visa".into(),
                        customer_note: String::new(),
                    })
                    .await,
            ),
            "OrderService/GetOrder" => code(server.orders(caller).get_order(pb::GetOrderRequest { order_id }).await),
            "OrderService/ListOrders" => {
                let customer_id = match who {
                    Support | Admin => self.kitchen.customer.user_id.to_string(),
                    _ => String::new(),
                };
                code(
                    server
                        .orders(caller)
                        .list_orders(pb::ListOrdersRequest { customer_id, ..Default::default() })
                        .await,
                )
            }
            "OrderService/CancelOrder" => {
                let order_id = self.kitchen.placed_order().await;
                let request = pb::CancelOrderRequest { order_id, reason: "matrix".into() };
                code(server.orders(caller).cancel_order(request).await)
            }
            "RestaurantService/CreateRestaurant" => code(
                server
                    .restaurants(caller)
                    .create_restaurant(pb::CreateRestaurantRequest {
                        profile: Some(profile("Matrix", "pizza", 48.85, 2.35)),
                    })
                    .await,
            ),
            "RestaurantService/UpdateRestaurant" => code(
                server
                    .restaurants(caller)
                    .update_restaurant(pb::UpdateRestaurantRequest {
                        restaurant_id,
                        profile: self.kitchen.restaurant.profile.clone(),
                        update_mask: None,
                    })
                    .await,
            ),
            "RestaurantService/GetRestaurant" => {
                code(server.restaurants(caller).get_restaurant(pb::GetRestaurantRequest { restaurant_id }).await)
            }
            "RestaurantService/SearchNearby" => code(
                server
                    .restaurants(caller)
                    .search_nearby(pb::SearchNearbyRequest {
                        lat: common::KITCHEN_LAT,
                        lng: common::KITCHEN_LNG,
                        radius_m: 2_000,
                        ..Default::default()
                    })
                    .await,
            ),
            "RestaurantService/GetMenu" => {
                code(server.restaurants(caller).get_menu(pb::GetMenuRequest { restaurant_id }).await)
            }
            "RestaurantService/UpsertMenu" => code(
                server
                    .restaurants(caller)
                    .upsert_menu(pb::UpsertMenuRequest {
                        restaurant_id,
                        // The same items (ids kept): later orders still find them.
                        categories: self.kitchen.menu.categories.clone(),
                        expected_menu_version: String::new(),
                    })
                    .await,
            ),
            "RestaurantService/WatchOrders" => {
                first(
                    server
                        .restaurants(caller)
                        .watch_orders(pb::WatchOrdersRequest { restaurant_id, after_cursor: String::new() })
                        .await,
                )
                .await
            }
            "RestaurantService/UpdateOrderStatus" => {
                let order_id = self.kitchen.placed_order().await;
                let request =
                    pb::UpdateOrderStatusRequest { order_id, status: "accepted".into(), ..Default::default() };
                code(server.restaurants(caller).update_order_status(request).await)
            }
            "SupportService/Chat" => {
                let mut support = SupportServiceClient::with_interceptor(channel, bearer);
                match support.chat(tokio_stream::iter(Vec::<pb::ChatRequest>::new())).await {
                    Ok(response) => code(response.into_inner().message().await),
                    Err(status) => status.code(),
                }
            }
            "SupportService/ListConversations" => {
                let mut support = SupportServiceClient::with_interceptor(channel, bearer);
                code(support.list_conversations(pb::ListConversationsRequest::default()).await)
            }
            "SupportService/GetConversationHistory" => {
                // The customer's own conversation, which operators may read too.
                let store = Support::new(server.stores.postgres.clone(), server.stores.redis.clone());
                let conversation = store.start(self.kitchen.customer.user_id, None, "Late order").await.unwrap();
                let mut support = SupportServiceClient::with_interceptor(channel, bearer);
                let request = pb::GetConversationHistoryRequest {
                    conversation_id: conversation.id.to_string(),
                    ..Default::default()
                };
                code(support.get_conversation_history(request).await)
            }
            "TrackingService/TrackOrder" => {
                first(
                    server.tracking(caller).track_order(pb::TrackOrderRequest { order_id, ..Default::default() }).await,
                )
                .await
            }
            "TrackingService/GetDriverTrack" => {
                let now = std::time::SystemTime::now();
                let request = pb::GetDriverTrackRequest {
                    driver_id: self.driver.user_id.to_string(),
                    start_time: Some((now - Duration::from_secs(3600)).into()),
                    end_time: Some(now.into()),
                    ..Default::default()
                };
                code(server.tracking(caller).get_driver_track(request).await)
            }
            "TrackingService/ExportCityPings" => {
                let day = chrono::Utc::now().date_naive().to_string();
                let request = pb::ExportCityPingsRequest { city: "paris".into(), day };
                first(server.tracking(caller).export_city_pings(request).await).await
            }
            other => panic!("the matrix has no call for {other}"),
        }
    }
}

fn code<T>(result: Result<T, Status>) -> Code {
    match result {
        Ok(_) => Code::Ok,
        Err(status) => status.code(),
    }
}

/// A server stream's first message (or its end, or its error).
async fn first<T>(opened: Result<tonic::Response<tonic::Streaming<T>>, Status>) -> Code {
    match opened {
        Ok(response) => {
            let mut stream = response.into_inner();
            match tokio::time::timeout(Duration::from_secs(10), stream.message()).await {
                Ok(message) => code(message),
                Err(_) => Code::Ok, // open and quiet: authorized
            }
        }
        Err(status) => status.code(),
    }
}

#[tokio::test]
async fn every_rpc_as_every_role() {
    let pool = prost_reflect::DescriptorPool::decode(foodfast_api::FILE_DESCRIPTOR_SET).unwrap();
    let contract: BTreeSet<String> = pool
        .services()
        .filter(|service| service.package_name() == "foodfast.v1")
        .flat_map(|service| service.methods().map(|m| format!("{}/{}", service.name(), m.name())).collect::<Vec<_>>())
        .collect();
    let covered: BTreeSet<String> = EXPECTED.iter().map(|(rpc, _)| rpc.to_string()).collect();
    assert_eq!(covered, contract, "the matrix covers exactly the RPCs of the descriptor set");

    let world = World::new().await;
    let mut wrong = Vec::new();
    for (rpc, allowed) in EXPECTED {
        for &who in EVERYONE {
            let code = world.call(rpc, who).await;
            let refused = matches!(code, Code::Unauthenticated | Code::PermissionDenied);
            let expected_refusal = if who == Anonymous { Code::Unauthenticated } else { Code::PermissionDenied };
            let right = if allowed.contains(&who) { !refused } else { code == expected_refusal };
            if !right {
                wrong.push(format!("{rpc} as {who:?}: {code:?}"));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "{} of {} calls broke the matrix:\n{}",
        wrong.len(),
        EXPECTED.len() * 6,
        wrong.join("\n")
    );
}

#[tokio::test]
async fn resources_of_others_are_refused_without_saying_whether_they_exist() {
    let world = World::new().await;
    let server = &world.kitchen.server;
    let stranger = server.customer().await;
    let other_driver = world.kitchen.driver(2).await;
    let (other_restaurant, _) = server.restaurant_at("Other", "sushi", common::KITCHEN_LAT, common::KITCHEN_LNG).await;
    let other_staff = server.staff(other_restaurant.restaurant_id.parse().unwrap()).await;
    let order_id = world.order_id.clone();
    let missing = Uuid::new_v4().to_string();

    for id in [&order_id, &missing] {
        let read = server.orders(Some(&stranger)).get_order(pb::GetOrderRequest { order_id: id.clone() }).await;
        assert_eq!(read.unwrap_err().code(), Code::PermissionDenied, "another customer's order, or none: {id}");
    }
    let tracked = server
        .tracking(Some(&stranger))
        .track_order(pb::TrackOrderRequest { order_id: order_id.clone(), ..Default::default() })
        .await;
    assert_eq!(first(tracked).await, Code::PermissionDenied);
    let moved = server
        .restaurants(Some(&other_staff))
        .update_order_status(pb::UpdateOrderStatusRequest {
            order_id: world.kitchen.placed_order().await,
            status: "accepted".into(),
            ..Default::default()
        })
        .await;
    assert_eq!(moved.unwrap_err().code(), Code::PermissionDenied, "another restaurant's order");
    let menu = server
        .restaurants(Some(&other_staff))
        .upsert_menu(pb::UpsertMenuRequest {
            restaurant_id: world.restaurant_id(),
            categories: demo_menu(),
            expected_menu_version: String::new(),
        })
        .await;
    assert_eq!(menu.unwrap_err().code(), Code::PermissionDenied, "another restaurant's menu");
    let picked = server
        .drivers(Some(&other_driver))
        .mark_picked_up(pb::MarkPickedUpRequest { order_id: world.assigned_order().await })
        .await;
    assert_eq!(picked.unwrap_err().code(), Code::PermissionDenied, "another driver's delivery");
}
