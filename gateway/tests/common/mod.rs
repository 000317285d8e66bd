//! The gateway tests' stack: the payment sandbox, a FoodFast server on fresh
//! real stores, and the gateway in front of it, all on loopback ports.

#![allow(dead_code)] // each test binary uses its own part

use foodfast_domain::access::{Principal, Role};
use foodfast_gateway::config::GatewayConfig;
use foodfast_gateway::rest;
use foodfast_payment_sandbox::Sandbox;
use foodfast_server::config::Config;
use foodfast_store::users::{NewUser, Users};
use foodfast_store::{Stores, migrate};
use reqwest::StatusCode;
use serde_json::{Value, json};
use uuid::Uuid;

pub const KEY: &str = "test:a-test-signing-key-that-is-long-enough";
/// The password of every account `Stack::user` makes.
pub const PASSWORD: &str = "a gateway test password";
pub const MAX_BODY: usize = 64 * 1024;

struct SignedIn {
    email: String,
    access_token: String,
}

pub struct Stack {
    pub base: String,
    /// The FoodFast server behind the gateway (native apps talk to it directly).
    pub server_addr: std::net::SocketAddr,
    pub http: reqwest::Client,
    /// Emails and access tokens of the accounts `user` made, by account id.
    sessions: std::sync::Mutex<std::collections::HashMap<Uuid, SignedIn>>,
    pub users: Users,
    pub stores: Stores,
    scylla: foodfast_store::scylla::ScyllaConfig,
    _sandbox: Sandbox,
    _processes: Vec<Child>,
}

/// The payment sandbox, the server's configuration on fresh (migrated)
/// stores, and those stores.
async fn prepare() -> (Sandbox, Config, Stores) {
    let sandbox = Sandbox::start("127.0.0.1:0".parse().unwrap()).await;
    let mut config = Config { stores: foodfast_testkit::fresh_stores().await, ..Config::default() };
    config.auth.keys = vec![KEY.into()];
    config.payments.base_url = sandbox.base_url();
    // A city of this test's own covering Paris: tests sharing the Redis never see each other's drivers.
    let city = format!("t-{}", &Uuid::new_v4().simple().to_string()[..12]);
    config.ingest.zones.0[0].name = city;
    config.dispatch.poll_interval = std::time::Duration::from_millis(100);
    let stores = Stores::connect(&config.stores).await.unwrap();
    migrate::migrate_postgres(&stores.postgres, &migrate::cockroach_migrations()).await.unwrap();
    (sandbox, config, stores)
}

/// A process of the stack, killed with it.
pub struct Child(std::process::Child);

impl Child {
    /// Starts `command` with the variables of `env` and without the
    /// caller's own `FOODFAST_*` variables.
    fn spawn(command: &mut std::process::Command, env: &[(&str, String)]) -> Self {
        for (name, _) in std::env::vars() {
            if name.starts_with("FOODFAST_") && command.get_envs().all(|(set, _)| set != name.as_str()) {
                command.env_remove(name);
            }
        }
        command.env("FOODFAST_AUTH_KEYS", KEY).env("FOODFAST_LOG", "warn");
        Self(command.envs(env.iter().map(|(name, value)| (name, value))).spawn().expect("starting a stack process"))
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Stack {
    /// Sandbox, server and gateway on loopback ports, on fresh stores.
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    /// The stack with the gateway's configuration adjusted by `configure`
    /// (its upstream is set to the server afterwards).
    pub async fn start_with(configure: impl FnOnce(&mut GatewayConfig)) -> Self {
        Self::start_configured(|_| {}, configure).await
    }

    /// The stack with the server's configuration adjusted by `server` and
    /// the gateway's by `gateway`.
    pub async fn start_configured(server: impl FnOnce(&mut Config), gateway: impl FnOnce(&mut GatewayConfig)) -> Self {
        let (sandbox, mut config, stores) = prepare().await;
        server(&mut config);
        let server = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let server_addr = server.local_addr().unwrap();
        let scylla = config.stores.scylla.clone();
        tokio::spawn({
            let stores = stores.clone();
            async move { foodfast_server::server::serve(&config, stores, server, std::future::pending::<()>()).await }
        });
        let mut gateway_config = GatewayConfig::default();
        gateway_config.http.max_body_bytes = MAX_BODY;
        gateway_config.auth.keys = vec![KEY.into()];
        gateway(&mut gateway_config);
        gateway_config.upstream.url = format!("http://{server_addr}");
        let gateway = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", gateway.local_addr().unwrap());
        tokio::spawn(async move { rest::serve(&gateway_config, gateway, std::future::pending()).await });
        Self::assemble(base, server_addr, stores, scylla, sandbox, Vec::new())
    }

    /// The stack with the server and the gateway as processes of their
    /// own (`foodfast serve`, `foodfast-gateway`), configured through their
    /// environment variables plus `env` (given to both).
    pub async fn start_processes(env: &[(&str, String)]) -> Self {
        let (sandbox, config, stores) = prepare().await;
        let (server_port, gateway_port) = (foodfast_testkit::free_port(), foodfast_testkit::free_port());
        let server_addr: std::net::SocketAddr = ([127, 0, 0, 1], server_port).into();
        let gateway_binary = std::path::Path::new(env!("CARGO_BIN_EXE_foodfast-gateway"));
        let server_binary = gateway_binary.with_file_name("foodfast");
        assert!(server_binary.exists(), "{} is not built: cargo build --workspace first", server_binary.display());
        let stores_config = &config.stores;
        let server = Child::spawn(
            std::process::Command::new(server_binary)
                .arg("serve")
                .env("FOODFAST_GRPC_ADDR", server_addr.to_string())
                .env("FOODFAST_ADMIN_ADDR", format!("127.0.0.1:{}", foodfast_testkit::free_port()))
                .env("FOODFAST_DATABASE_URL", &stores_config.postgres.url)
                .env("FOODFAST_SCYLLA_CONTACT_POINTS", stores_config.scylla.contact_points.join(","))
                .env("FOODFAST_SCYLLA_KEYSPACE", &stores_config.scylla.keyspace)
                .env("FOODFAST_REDIS_URL", &stores_config.redis.url)
                .env("FOODFAST_PAYMENTS_URL", &config.payments.base_url),
            env,
        );
        let gateway = Child::spawn(
            std::process::Command::new(gateway_binary)
                .env("FOODFAST_GATEWAY_ADDR", format!("127.0.0.1:{gateway_port}"))
                .env("FOODFAST_GATEWAY_ADMIN_ADDR", format!("127.0.0.1:{}", foodfast_testkit::free_port()))
                .env("FOODFAST_GATEWAY_UPSTREAM", format!("http://{server_addr}"))
                .env("FOODFAST_GATEWAY_MAX_BODY_BYTES", MAX_BODY.to_string()),
            env,
        );
        for port in [server_port, gateway_port] {
            foodfast_testkit::wait_for_port(port, std::time::Duration::from_secs(60));
        }
        let base = format!("http://127.0.0.1:{gateway_port}");
        let scylla = config.stores.scylla.clone();
        Self::assemble(base, server_addr, stores, scylla, sandbox, vec![server, gateway])
    }

    fn assemble(
        base: String,
        server_addr: std::net::SocketAddr,
        stores: Stores,
        scylla: foodfast_store::scylla::ScyllaConfig,
        sandbox: Sandbox,
        processes: Vec<Child>,
    ) -> Self {
        let users = Users::new(stores.postgres.clone());
        let sessions = Default::default();
        let http = reqwest::Client::new();
        Self { base, server_addr, http, sessions, users, stores, scylla, _sandbox: sandbox, _processes: processes }
    }

    /// Creates the test's keyspace and tables (the location routes need them).
    pub async fn migrate_scylla(&self) {
        migrate::migrate_scylla(&self.stores.scylla, &self.scylla, &migrate::scylla_migrations()).await.unwrap();
    }

    pub async fn user(&self, role: Role, restaurant_id: Option<Uuid>) -> Principal {
        let email = format!("{}@example.test", Uuid::new_v4().simple());
        static PASSWORD_HASH: std::sync::OnceLock<String> = std::sync::OnceLock::new();
        let password_hash = PASSWORD_HASH.get_or_init(|| foodfast_auth::password::hash(PASSWORD));
        let user_id = self
            .users
            .create(&NewUser { email: &email, phone: None, name: "Rest Person", role, password_hash, restaurant_id })
            .await
            .unwrap();
        // Signed in for real, through the gateway.
        let login = json!({"email": email, "password": PASSWORD});
        let (status, signed_in) = self.call(reqwest::Method::POST, "/api/v1/auth/login", None, Some(login)).await;
        assert_eq!(status, StatusCode::OK, "{signed_in}");
        let access_token = signed_in["tokens"]["accessToken"].as_str().unwrap().to_string();
        self.sessions.lock().unwrap().insert(user_id, SignedIn { email, access_token });
        Principal { user_id, role, restaurant_id }
    }

    /// The access token `principal` (made by `user`) signed in with.
    pub fn token(&self, principal: &Principal) -> String {
        self.signed_in(principal, |signed_in| signed_in.access_token.clone())
    }

    /// The email `principal` (made by `user`) signs in with, with `PASSWORD`.
    pub fn email(&self, principal: &Principal) -> String {
        self.signed_in(principal, |signed_in| signed_in.email.clone())
    }

    fn signed_in<T>(&self, principal: &Principal, read: impl FnOnce(&SignedIn) -> T) -> T {
        read(self.sessions.lock().unwrap().get(&principal.user_id).expect("a principal made by Stack::user"))
    }

    pub fn request(&self, method: reqwest::Method, path: &str, caller: Option<&Principal>) -> reqwest::RequestBuilder {
        let request = self.http.request(method, format!("{}{path}", self.base));
        match caller {
            Some(caller) => request.bearer_auth(self.token(caller)),
            None => request,
        }
    }

    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        caller: Option<&Principal>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut request = self.request(method, path, caller);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        (status, response.json().await.unwrap_or(Value::Null))
    }
}

/// A restaurant created over REST by an admin, its staff, and the one item of its menu.
pub struct Kitchen {
    pub restaurant_id: String,
    pub staff: Principal,
    pub item_id: String,
}

impl Stack {
    pub async fn kitchen(&self, admin: &Principal) -> Kitchen {
        use reqwest::Method;
        let (status, created) =
            self.call(Method::POST, "/api/v1/restaurants", Some(admin), Some(json!({"profile": profile()}))).await;
        assert_eq!(status, StatusCode::CREATED, "{created}");
        let restaurant_id = created["restaurant"]["restaurantId"].as_str().unwrap().to_string();
        let staff = self.user(Role::RestaurantStaff, Some(restaurant_id.parse().unwrap())).await;
        let menu = json!({"categories": [{"name": "Mains", "items": [
            {"name": "Soupe", "price": {"currencyCode": "EUR", "amount": "8.00"}, "available": true}
        ]}]});
        let path = format!("/api/v1/restaurants/{restaurant_id}/menu");
        let (status, menu) = self.call(Method::PUT, &path, Some(&staff), Some(menu)).await;
        assert_eq!(status, StatusCode::OK, "{menu}");
        let item_id = menu["categories"][0]["items"][0]["itemId"].as_str().unwrap().to_string();
        Kitchen { restaurant_id, staff, item_id }
    }
}

/// A CreateOrder body: one of the kitchen's item, delivered nearby.
pub fn order_body(kitchen: &Kitchen, payment_method: &str, idempotency_key: &str) -> Value {
    json!({
        "restaurantId": kitchen.restaurant_id,
        "items": [{"itemId": kitchen.item_id, "quantity": 1}],
        "deliveryAddress": {"location": {"lat": 48.86, "lng": 2.3522}, "formatted": "2 Rue du Client"},
        "paymentMethodId": payment_method,
        "idempotencyKey": idempotency_key,
    })
}

impl Stack {
    /// An order `customer` placed at the kitchen over REST, paid by card; its id.
    pub async fn placed_order(&self, customer: &Principal, kitchen: &Kitchen) -> String {
        let body = order_body(kitchen, "pm_card_visa", &Uuid::new_v4().to_string());
        let (status, placed) = self.call(reqwest::Method::POST, "/api/v1/orders", Some(customer), Some(body)).await;
        assert_eq!(status, StatusCode::CREATED, "{placed}");
        placed["order"]["orderId"].as_str().unwrap().to_string()
    }
}

pub fn profile() -> Value {
    json!({
        "name": "Chez REST",
        "address": {"location": {"lat": 48.8566, "lng": 2.3522}, "formatted": "1 Rue du Test"},
        "cuisines": ["french"],
        "phone": "+3312345678",
        "timeZone": "Europe/Paris",
        "openingHours": (1..=7).map(|day| json!({"day": day, "opensAt": "00:00", "closesAt": "00:00"})).collect::<Vec<_>>(),
        "deliveryRadiusM": 8000,
        "averagePrepTime": "900s",
        "currencyCode": "EUR"
    })
}

/// A Node script of the repository (a real grpc-web or browser client) that
/// reports one JSON line per observation on stdout; killed when dropped.
pub struct NodeScript {
    child: tokio::process::Child,
    lines: tokio::io::Lines<tokio::io::BufReader<tokio::process::ChildStdout>>,
}

impl NodeScript {
    /// Runs `script` (a path from the repository root) with `env`.
    pub fn start(script: &str, env: &[(&str, String)]) -> Self {
        use tokio::io::AsyncBufReadExt;
        let mut child = tokio::process::Command::new("node")
            .arg(script)
            .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
            .envs(env.iter().map(|(name, value)| (name, value)))
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("node runs");
        let lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
        Self { child, lines }
    }

    /// The next observation.
    pub async fn next(&mut self) -> Value {
        let line = tokio::time::timeout(std::time::Duration::from_secs(40), self.lines.next_line())
            .await
            .expect("the script is silent")
            .unwrap()
            .expect("the script's stdout ended early");
        serde_json::from_str(&line).unwrap_or_else(|_| panic!("not a JSON line: {line}"))
    }

    /// Waits for the script to exit, successfully.
    pub async fn finish(mut self) {
        let exit = tokio::time::timeout(std::time::Duration::from_secs(10), self.child.wait())
            .await
            .expect("the script exits")
            .unwrap();
        assert!(exit.success(), "{exit}");
    }
}

/// A noisy RGB image as PNG: it does not compress to nothing, so a large one
/// travels in several chunks.
pub fn photo_png(width: u32, height: u32) -> Vec<u8> {
    let noise = |x: u32, y: u32| (x.wrapping_mul(2_654_435_761) ^ y.wrapping_mul(40_503)).to_be_bytes();
    let image = image::RgbImage::from_fn(width, height, |x, y| {
        let [_, r, g, b] = noise(x, y);
        image::Rgb([r, g, b])
    });
    let mut bytes = Vec::new();
    image.write_to(&mut std::io::Cursor::new(&mut bytes), image::ImageFormat::Png).unwrap();
    bytes
}
