//! A FoodFast server on the real stores, with the payment sandbox as the
//! provider, and helpers to act as each kind of caller.

#![allow(dead_code)] // Each test binary uses a different part of this.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Json;
use axum::http::StatusCode;
use serde_json::Value;

use foodfast_api::v1 as pb;
use foodfast_api::v1::account_service_client::AccountServiceClient;
use foodfast_api::v1::dispatch_service_client::DispatchServiceClient;
use foodfast_api::v1::driver_service_client::DriverServiceClient;
use foodfast_api::v1::media_service_client::MediaServiceClient;
use foodfast_api::v1::notification_service_client::NotificationServiceClient;
use foodfast_api::v1::order_service_client::OrderServiceClient;
use foodfast_api::v1::restaurant_service_client::RestaurantServiceClient;
use foodfast_api::v1::support_service_client::SupportServiceClient;
use foodfast_api::v1::tracking_service_client::TrackingServiceClient;
use foodfast_domain::access::{Principal, Role};
use foodfast_domain::zones::{Zone, Zones};
use foodfast_payment_sandbox::Sandbox;
use foodfast_server::config::Config;
use foodfast_store::throttle::RatePolicy;
use foodfast_store::users::{NewUser, Users};
use foodfast_store::{Stores, migrate};
use tokio::sync::oneshot;
use tonic::metadata::MetadataValue;
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;
use uuid::Uuid;

pub const TEST_KEY: &str = "test:a-test-signing-key-that-is-long-enough";
/// The password of every account the helpers create.
pub const TEST_PASSWORD: &str = "a test password, long enough";

/// The in-process servers' warnings (or `RUST_LOG`), kept with each test's
/// output: a failing test shows what its server saw.
fn capture_server_logs() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    // Another test of the binary installed it already.
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_test_writer().try_init();
}

/// Adds `authorization: Bearer <token>` to every call.
#[derive(Clone)]
pub struct Bearer(Option<MetadataValue<tonic::metadata::Ascii>>);

impl Bearer {
    /// Sends `access_token` (from a real sign-in).
    pub fn token(access_token: &str) -> Self {
        Bearer(Some(format!("Bearer {access_token}").parse().unwrap()))
    }
}

impl Interceptor for Bearer {
    fn call(&mut self, mut request: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(value) = &self.0 {
            request.metadata_mut().insert("authorization", value.clone());
        }
        Ok(request)
    }
}

pub type Authed = InterceptedService<Channel, Bearer>;

pub struct TestServer {
    pub channel: Channel,
    pub addr: std::net::SocketAddr,
    /// Access tokens of the accounts this server's helpers created, from
    /// real sign-ins (`Login`), by account id.
    sessions: std::sync::Mutex<std::collections::HashMap<Uuid, String>>,
    pub sandbox: Sandbox,
    pub stores: Stores,
    pub config: Config,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

impl TestServer {
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    /// Migrated fresh stores, a sandbox provider, then the server.
    pub async fn start_with(adjust: impl FnOnce(&mut Config)) -> Self {
        capture_server_logs();
        let sandbox = Sandbox::start("127.0.0.1:0".parse().unwrap()).await;
        let mut config = Config { stores: foodfast_testkit::fresh_stores().await, ..Config::default() };
        config.auth.keys = vec![TEST_KEY.into()];
        config.payments.base_url = sandbox.base_url();
        config.payments.timeout = Duration::from_millis(500);
        config.payments.max_attempts = 2;
        config.payments.backoff_base = Duration::from_millis(10);
        config.service.watch_poll_interval = Duration::from_millis(500);
        config.service.payment_sweep_interval = Duration::from_millis(200);
        adjust(&mut config);
        let stores = Stores::connect(&config.stores).await.unwrap();
        migrate::migrate_postgres(&stores.postgres, &migrate::cockroach_migrations()).await.unwrap();
        let mut server = Self {
            channel: dead_channel(),
            addr: ([127, 0, 0, 1], 0).into(),
            sessions: Default::default(),
            sandbox,
            stores,
            config,
            stop: None,
            task: None,
        };
        server.boot().await;
        server
    }

    async fn boot(&mut self) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let config = self.config.clone();
        let stores = self.stores.clone();
        self.task = Some(tokio::spawn(async move {
            foodfast_server::server::serve(&config, stores, listener, async {
                let _ = stopped.await;
            })
            .await
        }));
        self.stop = Some(stop);
        self.addr = addr;
        self.channel = Channel::from_shared(format!("http://{addr}")).unwrap().connect().await.unwrap();
    }

    /// Stops the server (streams end) and starts a new one on the same stores.
    pub async fn restart(&mut self) {
        self.shut_down().await;
        self.boot().await;
    }

    pub async fn shut_down(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            tokio::time::timeout(Duration::from_secs(30), task).await.unwrap().unwrap().unwrap();
        }
    }

    /// Starts another replica: a `foodfast serve` process on the same stores.
    pub async fn spawn_replica(&self) -> Replica {
        Replica::spawn(&self.config).await
    }

    /// A tracking client of `replica` for `caller`.
    pub fn tracking_at(&self, replica: &Replica, caller: Option<&Principal>) -> TrackingServiceClient<Authed> {
        TrackingServiceClient::with_interceptor(replica.channel.clone(), self.bearer(caller))
    }

    /// A driver client of `replica` for `caller`.
    pub fn drivers_at(&self, replica: &Replica, caller: Option<&Principal>) -> DriverServiceClient<Authed> {
        DriverServiceClient::with_interceptor(replica.channel.clone(), self.bearer(caller))
    }

    /// The signed-in token of `principal` (made by this server's helpers).
    pub fn bearer(&self, principal: Option<&Principal>) -> Bearer {
        match principal {
            Some(principal) => {
                let sessions = self.sessions.lock().unwrap();
                let token = sessions.get(&principal.user_id).expect("a principal made by this TestServer's helpers");
                Bearer::token(token)
            }
            None => Bearer(None),
        }
    }

    /// A notification client of `replica` for `caller`.
    pub fn notifications_at(&self, replica: &Replica, caller: Option<&Principal>) -> NotificationServiceClient<Authed> {
        NotificationServiceClient::with_interceptor(replica.channel.clone(), self.bearer(caller))
    }

    pub fn notifications(&self, caller: Option<&Principal>) -> NotificationServiceClient<Authed> {
        NotificationServiceClient::with_interceptor(self.channel.clone(), self.bearer(caller))
    }

    pub fn support_chat(&self, caller: Option<&Principal>) -> SupportServiceClient<Authed> {
        SupportServiceClient::with_interceptor(self.channel.clone(), self.bearer(caller))
    }

    pub fn support_chat_at(&self, replica: &Replica, caller: Option<&Principal>) -> SupportServiceClient<Authed> {
        SupportServiceClient::with_interceptor(replica.channel.clone(), self.bearer(caller))
    }

    pub fn accounts(&self, caller: Option<&Principal>) -> AccountServiceClient<Authed> {
        AccountServiceClient::with_interceptor(self.channel.clone(), self.bearer(caller))
    }

    /// A client that sends `access_token` as its bearer token.
    pub fn accounts_as(&self, access_token: &str) -> AccountServiceClient<Authed> {
        AccountServiceClient::with_interceptor(self.channel.clone(), Bearer::token(access_token))
    }

    pub fn restaurants(&self, caller: Option<&Principal>) -> RestaurantServiceClient<Authed> {
        RestaurantServiceClient::with_interceptor(self.channel.clone(), self.bearer(caller))
    }

    pub fn media(&self, caller: Option<&Principal>) -> MediaServiceClient<Authed> {
        MediaServiceClient::with_interceptor(self.channel.clone(), self.bearer(caller))
    }

    /// An order client of `replica` for `caller`.
    pub fn orders_at(&self, replica: &Replica, caller: Option<&Principal>) -> OrderServiceClient<Authed> {
        OrderServiceClient::with_interceptor(replica.channel.clone(), self.bearer(caller))
    }

    pub fn orders(&self, caller: Option<&Principal>) -> OrderServiceClient<Authed> {
        OrderServiceClient::with_interceptor(self.channel.clone(), self.bearer(caller))
    }

    /// An account of `role`, signed in with its password through `Login`.
    async fn user(&self, role: Role, restaurant_id: Option<Uuid>) -> Uuid {
        static PASSWORD_HASH: std::sync::OnceLock<String> = std::sync::OnceLock::new();
        let password_hash = PASSWORD_HASH.get_or_init(|| foodfast_auth::password::hash(TEST_PASSWORD));
        let email = format!("{}@example.test", Uuid::new_v4().simple());
        let user_id = Users::new(self.stores.postgres.clone())
            .create(&NewUser { email: &email, phone: None, name: "Test Person", role, password_hash, restaurant_id })
            .await
            .unwrap();
        let login = pb::LoginRequest { email, password: TEST_PASSWORD.into() };
        let signed_in = AccountServiceClient::new(self.channel.clone()).login(login).await.unwrap().into_inner();
        self.sessions.lock().unwrap().insert(user_id, signed_in.tokens.unwrap().access_token);
        user_id
    }

    pub async fn customer(&self) -> Principal {
        Principal { user_id: self.user(Role::Customer, None).await, role: Role::Customer, restaurant_id: None }
    }

    pub async fn driver(&self) -> Principal {
        Principal { user_id: self.user(Role::Driver, None).await, role: Role::Driver, restaurant_id: None }
    }

    pub async fn support(&self) -> Principal {
        Principal { user_id: self.user(Role::Support, None).await, role: Role::Support, restaurant_id: None }
    }

    /// Creates the test's keyspace and tables (drivers' tests need them).
    pub async fn migrate_scylla(&self) {
        migrate::migrate_scylla(&self.stores.scylla, &self.config.stores.scylla, &migrate::scylla_migrations())
            .await
            .unwrap();
    }

    pub fn drivers(&self, caller: Option<&Principal>) -> DriverServiceClient<Authed> {
        DriverServiceClient::with_interceptor(self.channel.clone(), self.bearer(caller))
    }

    pub fn dispatch(&self, caller: Option<&Principal>) -> DispatchServiceClient<Authed> {
        DispatchServiceClient::with_interceptor(self.channel.clone(), self.bearer(caller))
    }

    pub fn tracking(&self, caller: Option<&Principal>) -> TrackingServiceClient<Authed> {
        TrackingServiceClient::with_interceptor(self.channel.clone(), self.bearer(caller))
    }

    pub async fn admin(&self) -> Principal {
        Principal { user_id: self.user(Role::Admin, None).await, role: Role::Admin, restaurant_id: None }
    }

    pub async fn staff(&self, restaurant_id: Uuid) -> Principal {
        Principal {
            user_id: self.user(Role::RestaurantStaff, Some(restaurant_id)).await,
            role: Role::RestaurantStaff,
            restaurant_id: Some(restaurant_id),
        }
    }

    /// An open restaurant at `(lat, lng)` with a small menu; returns it and
    /// its menu as the server stored them.
    pub async fn restaurant_at(
        &self,
        name: &str,
        cuisine: &str,
        lat: f64,
        lng: f64,
    ) -> (pb::Restaurant, pb::UpsertMenuResponse) {
        let admin = self.admin().await;
        let restaurant = self
            .restaurants(Some(&admin))
            .create_restaurant(pb::CreateRestaurantRequest { profile: Some(profile(name, cuisine, lat, lng)) })
            .await
            .unwrap()
            .into_inner()
            .restaurant
            .unwrap();
        let menu = self
            .restaurants(Some(&admin))
            .upsert_menu(pb::UpsertMenuRequest {
                restaurant_id: restaurant.restaurant_id.clone(),
                categories: demo_menu(),
                expected_menu_version: String::new(),
            })
            .await
            .unwrap()
            .into_inner();
        (restaurant, menu)
    }
}

/// A `foodfast serve` process, as operators run it; killed when dropped.
pub struct Replica {
    pub channel: Channel,
    pub port: u16,
    /// Where its `/metrics` and `/livez` are served.
    pub admin_port: u16,
    child: std::process::Child,
    config: Config,
    _config_file: tempfile::NamedTempFile,
}

impl Replica {
    async fn spawn(config: &Config) -> Self {
        Self::spawn_logging(config, "warn", None).await
    }

    /// A replica logging at `filter` (JSON), into `log` when given.
    pub async fn spawn_logging(config: &Config, filter: &str, log: Option<&std::path::Path>) -> Self {
        let port = foodfast_testkit::free_port();
        let admin_port = foodfast_testkit::free_port();
        let mut config = config.clone();
        config.admin.listen_addr = ([127, 0, 0, 1], admin_port).into();
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_foodfast"));
        for (name, _) in std::env::vars() {
            if name.starts_with("FOODFAST_") {
                command.env_remove(name);
            }
        }
        // The test's whole configuration, as a file: replicas behave like the in-process server.
        let file = tempfile::Builder::new().suffix(".toml").tempfile().unwrap();
        std::fs::write(file.path(), toml::to_string(&config).unwrap()).unwrap();
        let child = command
            .args(["serve", "--grpc-addr", &format!("127.0.0.1:{port}")])
            .env("FOODFAST_CONFIG", file.path())
            .env("FOODFAST_LOG_FORMAT", "json")
            .env("FOODFAST_LOG", filter)
            .stdout(match log {
                Some(path) => std::fs::File::create(path).unwrap().into(),
                None => std::process::Stdio::null(),
            })
            .stderr(match log {
                Some(path) => std::fs::OpenOptions::new().append(true).open(path).unwrap().into(),
                None => std::process::Stdio::inherit(),
            })
            .spawn()
            .unwrap();
        let channel = Channel::from_shared(format!("http://127.0.0.1:{port}")).unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        let channel = loop {
            if let Ok(channel) = channel.connect().await {
                break channel;
            }
            assert!(std::time::Instant::now() < deadline, "replica on port {port} never answered");
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        Self { channel, port, admin_port, child, config, _config_file: file }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Kills the process at once (SIGKILL: no graceful end for its streams)
    /// and starts a new one on the same stores.
    pub async fn crash_and_restart(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
        *self = Self::spawn(&self.config).await;
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

fn dead_channel() -> Channel {
    Channel::from_static("http://127.0.0.1:9").connect_lazy()
}

pub fn money(amount: &str) -> pb::Money {
    pb::Money { currency_code: "EUR".into(), amount: amount.into() }
}

/// Open around the clock, every day.
pub fn profile(name: &str, cuisine: &str, lat: f64, lng: f64) -> pb::RestaurantProfile {
    pb::RestaurantProfile {
        name: name.into(),
        address: Some(pb::Address {
            location: Some(pb::LatLng { lat, lng }),
            formatted: format!("{name}, 1 Test Street"),
            instructions: String::new(),
        }),
        cuisines: vec![cuisine.into()],
        phone: "+3312345678".into(),
        time_zone: "Europe/Paris".into(),
        opening_hours: (1..=7)
            .map(|day| pb::OpeningPeriod { day, opens_at: "00:00".into(), closes_at: "00:00".into() })
            .collect(),
        delivery_radius_m: 8_000,
        average_prep_time: Some(prost_types::Duration { seconds: 900, nanos: 0 }),
        currency_code: "EUR".into(),
        paused: false,
    }
}

/// Two categories; the pizza has a required size and optional toppings, the
/// soup is sold out.
pub fn demo_menu() -> Vec<pb::MenuCategory> {
    vec![
        pb::MenuCategory {
            category_id: String::new(),
            name: "Pizza".into(),
            items: vec![pb::MenuItem {
                item_id: String::new(),
                name: "Margherita".into(),
                description: "Tomato, mozzarella, basil".into(),
                price: Some(money("9.50")),
                available: true,
                image_url: String::new(),
                customizations: vec![
                    pb::Customization {
                        customization_id: String::new(),
                        name: "Size".into(),
                        min_choices: 1,
                        max_choices: 1,
                        options: vec![
                            pb::CustomizationOption {
                                option_id: String::new(),
                                name: "Regular".into(),
                                surcharge: Some(money("0")),
                                available: true,
                            },
                            pb::CustomizationOption {
                                option_id: String::new(),
                                name: "Large".into(),
                                surcharge: Some(money("3.00")),
                                available: true,
                            },
                        ],
                    },
                    pb::Customization {
                        customization_id: String::new(),
                        name: "Extra toppings".into(),
                        min_choices: 0,
                        max_choices: 2,
                        options: vec![
                            pb::CustomizationOption {
                                option_id: String::new(),
                                name: "Olives".into(),
                                surcharge: Some(money("1.25")),
                                available: true,
                            },
                            pb::CustomizationOption {
                                option_id: String::new(),
                                name: "Truffle".into(),
                                surcharge: Some(money("6.00")),
                                available: false,
                            },
                        ],
                    },
                ],
            }],
        },
        pb::MenuCategory {
            category_id: String::new(),
            name: "Starters".into(),
            items: vec![
                pb::MenuItem {
                    item_id: String::new(),
                    name: "Bruschetta".into(),
                    description: String::new(),
                    price: Some(money("5.00")),
                    available: true,
                    image_url: String::new(),
                    customizations: vec![],
                },
                pb::MenuItem {
                    item_id: String::new(),
                    name: "Soup of the day".into(),
                    description: String::new(),
                    price: Some(money("6.00")),
                    available: false,
                    image_url: String::new(),
                    customizations: vec![],
                },
            ],
        },
    ]
}

/// The item named `name` in a stored menu.
pub fn item<'m>(menu: &'m pb::UpsertMenuResponse, name: &str) -> &'m pb::MenuItem {
    menu.categories.iter().flat_map(|c| &c.items).find(|i| i.name == name).unwrap()
}

/// A cart line of `quantity` × the named item with the named options.
pub fn line(menu: &pb::UpsertMenuResponse, name: &str, quantity: u32, options: &[(&str, &str)]) -> pb::CartItem {
    let item = item(menu, name);
    let customizations = options
        .iter()
        .map(|(customization, option)| {
            let c = item.customizations.iter().find(|c| c.name == *customization).unwrap();
            let o = c.options.iter().find(|o| o.name == *option).unwrap();
            pb::CustomizationChoice {
                customization_id: c.customization_id.clone(),
                option_ids: vec![o.option_id.clone()],
            }
        })
        .collect();
    pb::CartItem { item_id: item.item_id.clone(), quantity, customizations, note: String::new() }
}

/// A delivery address `north_m` meters north of (lat, lng).
pub fn address_near(lat: f64, lng: f64, north_m: f64) -> pb::Address {
    pb::Address {
        location: Some(pb::LatLng { lat: lat + north_m / 111_195.0, lng }),
        formatted: "2 Customer Road".into(),
        instructions: "Ring twice".into(),
    }
}

pub const KITCHEN_LAT: f64 = 48.8566;
pub const KITCHEN_LNG: f64 = 2.3522;

/// A restaurant in Paris with its staff, a customer and an admin, to walk
/// orders through their life.
pub struct Kitchen {
    pub server: TestServer,
    pub restaurant: pb::Restaurant,
    pub menu: pb::UpsertMenuResponse,
    pub customer: Principal,
    pub staff: Principal,
    pub admin: Principal,
}

impl Kitchen {
    /// On a started server whose Scylla keyspace is migrated.
    pub async fn open() -> Self {
        Self::open_with(|_| {}).await
    }

    pub async fn open_with(adjust: impl FnOnce(&mut Config)) -> Self {
        let server = TestServer::start_with(|config| {
            // One customer places every order of a kitchen's tests.
            config.service.order_rate = RatePolicy { max: 10_000, window: Duration::from_secs(1) };
            adjust(config);
        })
        .await;
        server.migrate_scylla().await;
        let (restaurant, menu) = server.restaurant_at("Luigi", "pizza", KITCHEN_LAT, KITCHEN_LNG).await;
        let customer = server.customer().await;
        let staff = server.staff(restaurant.restaurant_id.parse().unwrap()).await;
        let admin = server.admin().await;
        Self { server, restaurant, menu, customer, staff, admin }
    }

    /// A driver account with a driver row holding at most `capacity` deliveries.
    pub async fn driver(&self, capacity: i32) -> Principal {
        let driver = self.server.driver().await;
        Users::new(self.server.stores.postgres.clone())
            .add_driver(driver.user_id, "paris", "bike", capacity)
            .await
            .unwrap();
        driver
    }

    /// An order of two Bruschetta, delivered 2 km north of the restaurant,
    /// with a fresh idempotency key.
    pub fn order_request(&self) -> pb::CreateOrderRequest {
        order_request_at(&self.restaurant, &self.menu, 2, 2_000.0)
    }

    /// A placed order (pending) of `order_request`; returns its id.
    pub async fn placed_order(&self) -> String {
        self.server
            .orders(Some(&self.customer))
            .create_order(self.order_request())
            .await
            .unwrap()
            .into_inner()
            .order
            .unwrap()
            .order_id
    }

    /// The restaurant moves the order on: "accepted", "preparing", "ready_for_pickup", "rejected".
    pub async fn restaurant_sets(&self, order_id: &str, status: &str) {
        self.server
            .restaurants(Some(&self.staff))
            .update_order_status(pb::UpdateOrderStatusRequest {
                order_id: order_id.into(),
                status: status.into(),
                reason: if status == "rejected" { "closing early".into() } else { String::new() },
                prep_time: None,
            })
            .await
            .unwrap();
    }

    /// A placed order, accepted and ready for pickup; returns its id.
    pub async fn ready_order(&self) -> String {
        let order_id = self.placed_order().await;
        for status in ["accepted", "ready_for_pickup"] {
            self.restaurant_sets(&order_id, status).await;
        }
        order_id
    }

    /// Ops assign `driver` (who must be online) to the order.
    pub async fn assign(&self, order_id: &str, driver: &Principal) -> Result<pb::AssignDriverResponse, tonic::Status> {
        self.assign_as(&self.admin, order_id, driver, false).await
    }

    pub async fn assign_as(
        &self,
        caller: &Principal,
        order_id: &str,
        driver: &Principal,
        replace: bool,
    ) -> Result<pb::AssignDriverResponse, tonic::Status> {
        let request = pb::AssignDriverRequest {
            order_id: order_id.into(),
            driver_id: driver.user_id.to_string(),
            replace,
            reason: "test dispatch".into(),
        };
        self.server.dispatch(Some(caller)).assign_driver(request).await.map(|r| r.into_inner())
    }

    /// Marks the driver online, as its app's Connect Hello or SetAvailability would.
    pub async fn online(&self, driver: &Principal) {
        foodfast_store::live::LivePositions::new(self.server.stores.redis.clone())
            .set_availability(driver.user_id, "online")
            .await
            .unwrap();
    }

    pub async fn picked_up(
        &self,
        caller: &Principal,
        order_id: &str,
    ) -> Result<pb::MarkPickedUpResponse, tonic::Status> {
        let request = pb::MarkPickedUpRequest { order_id: order_id.into() };
        self.server.drivers(Some(caller)).mark_picked_up(request).await.map(|r| r.into_inner())
    }

    pub async fn delivered(
        &self,
        caller: &Principal,
        order_id: &str,
    ) -> Result<pb::MarkDeliveredResponse, tonic::Status> {
        let request = pb::MarkDeliveredRequest { order_id: order_id.into() };
        self.server.drivers(Some(caller)).mark_delivered(request).await.map(|r| r.into_inner())
    }

    pub async fn status(&self, order_id: &str) -> pb::OrderStatus {
        let request = pb::GetOrderRequest { order_id: order_id.into() };
        self.server.orders(Some(&self.customer)).get_order(request).await.unwrap().into_inner().order.unwrap().status()
    }
}

/// `quantity` Bruschettas from `restaurant`, delivered `distance_m` from the kitchen.
pub fn order_request_at(
    restaurant: &pb::Restaurant,
    menu: &pb::UpsertMenuResponse,
    quantity: u32,
    distance_m: f64,
) -> pb::CreateOrderRequest {
    pb::CreateOrderRequest {
        idempotency_key: Uuid::new_v4().to_string(),
        restaurant_id: restaurant.restaurant_id.clone(),
        items: vec![line(menu, "Bruschetta", quantity, &[])],
        delivery_address: Some(address_near(KITCHEN_LAT, KITCHEN_LNG, distance_m)),
        payment_method_id: "pm_card_visa".into(),
        customer_note: String::new(),
    }
}

/// A driver's app on its Connect stream: says hello (online), sends pings,
/// and reads everything the server sends in the background.
pub struct DriverApp {
    sender: tokio::sync::mpsc::Sender<pb::ConnectRequest>,
    durable: tokio::sync::watch::Receiver<u64>,
}

impl DriverApp {
    pub async fn connect(mut client: DriverServiceClient<Authed>) -> Self {
        use tokio_stream::StreamExt;
        let (sender, receiver) = tokio::sync::mpsc::channel(256);
        let hello = pb::Hello { app_version: "test".into(), availability: pb::DriverAvailability::Online as i32 };
        sender.send(pb::ConnectRequest { payload: Some(pb::connect_request::Payload::Hello(hello)) }).await.unwrap();
        let mut responses =
            client.connect(tokio_stream::wrappers::ReceiverStream::new(receiver)).await.unwrap().into_inner();
        match responses.next().await.unwrap().unwrap().payload {
            Some(pb::connect_response::Payload::Welcome(_)) => {}
            other => panic!("expected a welcome, got {other:?}"),
        }
        let (durable_sender, durable) = tokio::sync::watch::channel(0);
        tokio::spawn(async move {
            while let Some(Ok(message)) = responses.next().await {
                if let Some(pb::connect_response::Payload::Ack(ack)) = message.payload {
                    durable_sender.send_replace(ack.durable_seq);
                }
            }
        });
        Self { sender, durable }
    }

    /// Sends ping `seq` at `position`, recorded `seconds_ago`.
    pub async fn ping(&self, seq: u64, position: (f64, f64), seconds_ago: f64) {
        let ping = location_ping(seq, position, seconds_ago);
        self.sender.send(pb::ConnectRequest { payload: Some(pb::connect_request::Payload::Ping(ping)) }).await.unwrap();
    }

    /// Waits until every ping up to `seq` is durable.
    pub async fn until_durable(&mut self, seq: u64) {
        tokio::time::timeout(Duration::from_secs(20), self.durable.wait_for(|durable| *durable >= seq))
            .await
            .unwrap_or_else(|_| panic!("ping {seq} never became durable"))
            .unwrap();
    }
}

/// A ping at `position` (heading north at 6 m/s), recorded `seconds_ago`.
pub fn location_ping(seq: u64, position: (f64, f64), seconds_ago: f64) -> pb::LocationPing {
    let at = chrono::Utc::now() - chrono::TimeDelta::milliseconds((seconds_ago * 1000.0) as i64);
    pb::LocationPing {
        seq,
        lat: position.0,
        lng: position.1,
        accuracy_m: Some(4.0),
        speed_mps: Some(6.0),
        heading_deg: Some(0.0),
        recorded_at: Some(prost_types::Timestamp {
            seconds: at.timestamp(),
            nanos: at.timestamp_subsec_nanos() as i32,
        }),
    }
}

/// `north_m` metres north of the kitchen.
pub fn north_of_kitchen(north_m: f64) -> (f64, f64) {
    (KITCHEN_LAT + north_m / 111_195.0, KITCHEN_LNG)
}

/// Ping `seq`, `north_m` metres north of the kitchen, recorded `seconds_ago`.
pub fn ping(seq: u64, north_m: f64, seconds_ago: f64) -> pb::LocationPing {
    location_ping(seq, north_of_kitchen(north_m), seconds_ago)
}

pub fn up(payload: pb::connect_request::Payload) -> pb::ConnectRequest {
    pb::ConnectRequest { payload: Some(payload) }
}

pub fn hello() -> pb::ConnectRequest {
    up(pb::connect_request::Payload::Hello(pb::Hello {
        app_version: "test".into(),
        availability: pb::DriverAvailability::Online as i32,
    }))
}

/// The driver's whole track of the last and next hour, read page by page as `caller`.
pub async fn track(server: &TestServer, caller: &Principal, driver: &Principal) -> Vec<pb::LocationPing> {
    let now = chrono::Utc::now();
    let mut points = Vec::new();
    let mut token = String::new();
    loop {
        let page = server
            .tracking(Some(caller))
            .get_driver_track(pb::GetDriverTrackRequest {
                driver_id: driver.user_id.to_string(),
                start_time: Some(prost_types::Timestamp {
                    seconds: (now - chrono::TimeDelta::hours(1)).timestamp(),
                    nanos: 0,
                }),
                end_time: Some(prost_types::Timestamp {
                    seconds: (now + chrono::TimeDelta::hours(1)).timestamp(),
                    nanos: 0,
                }),
                page_size: 7,
                page_token: token,
            })
            .await
            .unwrap()
            .into_inner();
        points.extend(page.points);
        if page.next_page_token.is_empty() {
            return points;
        }
        token = page.next_page_token;
    }
}

/// Quick rounds for tests; each test its own city.
pub fn quick_dispatch(config: &mut Config) {
    let city = format!("t-{}", &Uuid::new_v4().simple().to_string()[..12]);
    config.ingest.zones = Zones(vec![Zone { name: city, south: 48.70, west: 2.05, north: 49.05, east: 2.65 }]);
    config.dispatch.poll_interval = Duration::from_millis(100);
    config.dispatch.retry_interval = Duration::from_millis(200);
    config.dispatch.lease = Duration::from_secs(5);
    config.dispatch.policy.offer_timeout = Duration::from_secs(30);
}

/// The kitchen with food ready a minute after each order: every driver
/// arrives late, so the nearest costs least (the scoring's wait term; the
/// other terms are equal for these drivers, all heading north).
pub async fn quick_kitchen(adjust: impl FnOnce(&mut Config)) -> Kitchen {
    let kitchen = Kitchen::open_with(|config| {
        quick_dispatch(config);
        adjust(config);
    })
    .await;
    food_ready_in_a_minute(&kitchen, &kitchen.restaurant).await;
    kitchen
}

pub async fn food_ready_in_a_minute(kitchen: &Kitchen, restaurant: &pb::Restaurant) {
    let profile = pb::RestaurantProfile {
        average_prep_time: Some(prost_types::Duration { seconds: 60, nanos: 0 }),
        ..Default::default()
    };
    let request = pb::UpdateRestaurantRequest {
        restaurant_id: restaurant.restaurant_id.clone(),
        profile: Some(profile),
        update_mask: Some(prost_types::FieldMask { paths: vec!["average_prep_time".into()] }),
    };
    kitchen.server.restaurants(Some(&kitchen.admin)).update_restaurant(request).await.unwrap();
}

/// A push/SMS/email provider stand-in speaking the API of
/// `foodfast_server::notifier`: it keeps every message it accepts; a body
/// saying "flaky" gets 503 the first time its id is seen, "down" always 503,
/// "refuse" 400.
pub struct Provider {
    pub url: String,
    pub accepted: Arc<Mutex<Vec<Value>>>,
}

impl Provider {
    pub async fn start() -> Self {
        let accepted: Arc<Mutex<Vec<Value>>> = Arc::default();
        let seen: Arc<Mutex<HashSet<String>>> = Arc::default();
        let app = {
            let accepted = accepted.clone();
            axum::Router::new().route(
                "/v1/messages",
                axum::routing::post(move |Json(message): Json<Value>| {
                    let (accepted, seen) = (accepted.clone(), seen.clone());
                    async move {
                        let body = message["body"].as_str().unwrap_or_default().to_string();
                        let first = seen.lock().unwrap().insert(message["id"].to_string());
                        let answer = |status, text: &'static str| (status, [("retry-after", "0")], text);
                        if body.contains("refuse") {
                            answer(StatusCode::BAD_REQUEST, "invalid recipient +33612345678")
                        } else if body.contains("wrong key") && first {
                            answer(StatusCode::UNAUTHORIZED, "invalid API key")
                        } else if body.contains("throttle") && first {
                            (StatusCode::TOO_MANY_REQUESTS, [("retry-after", "1")], "slow down")
                        } else if body.contains("down") || (body.contains("flaky") && first) {
                            answer(StatusCode::SERVICE_UNAVAILABLE, "try later")
                        } else {
                            accepted.lock().unwrap().push(message);
                            answer(StatusCode::OK, "accepted")
                        }
                    }
                }),
            )
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { url, accepted }
    }

    pub fn accepted_for(&self, id: &str) -> Vec<Value> {
        self.accepted.lock().unwrap().iter().filter(|m| m["id"] == id).cloned().collect()
    }
}
