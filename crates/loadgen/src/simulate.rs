//! `simulate`: the demo city in motion, for `make run`. Against a running
//! `foodfast serve` on this machine, over the public gRPC API only, the seeded
//! accounts play their parts: drivers keep a Connect stream open, ping while
//! they drive and deliver what dispatch offers them; customers order and watch
//! their orders on TrackOrder; each restaurant's staff accept and cook what
//! comes in on WatchOrders. Nothing is measured: a line every 10 s says how
//! far the orders got.
//!
//! The seeded accounts have no password, so their tokens are minted the way
//! `foodfast token` mints them: with the server's keys (`FOODFAST_AUTH_KEYS`),
//! for the accounts found by email in its database (`FOODFAST_DATABASE_URL`).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, SystemTime};

use anyhow::Context;
use clap::builder::RangedU64ValueParser;
use foodfast_api::v1 as pb;
use foodfast_api::v1::connect_request::Payload as Up;
use foodfast_api::v1::connect_response::Payload as Down;
use foodfast_api::v1::driver_service_client::DriverServiceClient;
use foodfast_api::v1::order_service_client::OrderServiceClient;
use foodfast_api::v1::restaurant_service_client::RestaurantServiceClient;
use foodfast_api::v1::tracking_service_client::TrackingServiceClient;
use foodfast_api::v1::watch_orders_response::Payload as Watched;
use foodfast_domain::access::{Principal, Role};
use foodfast_domain::geo::{LatLng, distance_m};
use foodfast_server::auth::Tokens;
use foodfast_server::config::{Config, Overrides};
use foodfast_store::postgres::Postgres;
use foodfast_store::users::Users;
use tokio::sync::{Semaphore, mpsc};
use tokio::time::{Instant, MissedTickBehavior};
use tokio_stream::wrappers::ReceiverStream;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::Interceptor;
use tonic::transport::Channel;
use tonic::{Request, Status};
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};
use tracing::{debug, info, warn};
use uuid::Uuid;

use crate::in_process::human;

/// The seeded city's centre (`foodfast seed`'s default).
const PARIS: LatLng = LatLng { lat: 48.8566, lng: 2.3522 };
const METRES_PER_DEGREE: f64 = 111_195.0;
/// Drivers start and wander within this of the centre; customers live
/// within this of the restaurant they order from.
const RADIUS_M: f64 = 3_000.0;
/// Where customers look for restaurants, around a point near the centre.
const SEARCH_RADIUS_M: u32 = 5_000;
const WANDERING_MPS: f64 = 2.0;
const MAX_DRIVERS: usize = 50;
/// Share of offers declined, so that re-offers show up too.
const DECLINE_SHARE: f64 = 0.1;
/// A delivery step refused (the food is not ready yet) or unanswered goes
/// again after this.
const STEP_AGAIN: Duration = Duration::from_secs(2);
/// Reconnections wait this, doubling up to 30 s, and this again once a
/// connection worked.
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
const SUMMARY_EVERY: Duration = Duration::from_secs(10);
/// Tokens are minted for each connection or call, so that none outlives this
/// however long the simulator runs.
const TOKEN_TTL: Duration = Duration::from_secs(3600);
/// Messages a driver's stream buffers before the sender waits for the server.
const SEND_BUFFER: usize = 16;
/// A TrackOrder stream that failed this many times is given up.
const TRACK_ATTEMPTS: u32 = 5;
/// How long to wait for the server to answer SERVING: `make run` starts the
/// simulator once the port opens, before the server has reached its stores.
const SERVER_WAIT: Duration = Duration::from_secs(60);

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The running server's gRPC address; loopback addresses only.
    #[arg(long, env = "FOODFAST_GRPC_ADDR", default_value = "127.0.0.1:50051")]
    grpc_addr: SocketAddr,
    /// How long to run; default: until Ctrl-C or SIGTERM.
    #[arg(long, value_parser = humantime::parse_duration)]
    duration: Option<Duration>,
    /// Seeded drivers on the road; default: every seeded driver, at most 50.
    #[arg(long, value_parser = RangedU64ValueParser::<usize>::new().range(1..=MAX_DRIVERS as u64))]
    drivers: Option<usize>,
    /// Orders placed per second, over all seeded customers.
    #[arg(long, default_value_t = 0.5)]
    order_rate: f64,
    /// Driving speed in m/s (idle drivers wander at 2); the server refuses
    /// pings implying more than 70.
    #[arg(long, default_value_t = 8.0)]
    speed: f64,
    /// Time between two pings of one driver.
    #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
    ping_interval: Duration,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.grpc_addr.ip().is_loopback(),
        "--grpc-addr {} is not a loopback address: the simulator drives local servers only",
        args.grpc_addr
    );
    anyhow::ensure!(args.order_rate > 0.0 && args.order_rate <= 100.0, "--order-rate must be above 0 and at most 100");
    anyhow::ensure!(args.speed > 0.0 && args.speed <= 60.0, "--speed must be above 0 and at most 60 (m/s)");
    anyhow::ensure!(args.ping_interval >= Duration::from_millis(500), "--ping-interval must be at least 500ms");
    let accounts = Arc::new(Accounts::load(args.drivers.unwrap_or(MAX_DRIVERS)).await?);
    let channel = wait_until_serving(args.grpc_addr).await?;
    let stats = Arc::new(Stats::default());
    // At most one order placed and not over per driver: a seeded driver
    // carries one order at a time for minutes, far below 0.5 orders/s, so
    // the backlog (and its TrackOrder streams) would otherwise grow for as
    // long as `make run` runs. At the cap, customers wait.
    let open = Arc::new(Semaphore::new(accounts.drivers.len()));
    println!(
        "simulating {} drivers, {} restaurants and {} customers ordering {}/s against {}{}",
        accounts.drivers.len(),
        accounts.staff.len(),
        accounts.customers.len(),
        args.order_rate,
        args.grpc_addr,
        args.duration.map(|d| format!(" for {}", human(d))).unwrap_or_default(),
    );
    for (index, staff) in accounts.staff.iter().enumerate() {
        tokio::spawn(kitchen(channel.clone(), accounts.clone(), format!("staff{}", index + 1), *staff));
    }
    for (index, account) in accounts.drivers.iter().enumerate() {
        let driver = Driver {
            name: format!("driver{}", index + 1),
            account: *account,
            stats: stats.clone(),
            every: args.ping_interval,
            speed_mps: args.speed,
            position: random_point(PARIS, RADIUS_M),
            wandering_to: random_point(PARIS, RADIUS_M),
            job: None,
            seq: 0,
        };
        tokio::spawn(driver.run(channel.clone(), accounts.clone()));
    }
    tokio::spawn(customers(channel, accounts.clone(), open.clone(), args.order_rate, stats.clone()));

    let signal = foodfast_server::server::shutdown_signal()?;
    let deadline = async {
        match args.duration {
            Some(duration) => tokio::time::sleep(duration).await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(signal, deadline);
    let mut summaries = tokio::time::interval_at(Instant::now() + SUMMARY_EVERY, SUMMARY_EVERY);
    let summary = || {
        let open = accounts.drivers.len() - open.available_permits();
        stats.summary(open, accounts.drivers.len())
    };
    loop {
        tokio::select! {
            _ = &mut signal => break,
            _ = &mut deadline => break,
            _ = summaries.tick() => println!("{}", summary()),
        }
    }
    // The tasks end with the runtime, streams cut: the server treats that as
    // any app going away.
    println!("stopped: {}", summary());
    Ok(())
}

/// What the summary line counts, as seen on the customers' tracking
/// streams (orders) and the drivers' streams (offers, busy drivers).
#[derive(Default)]
struct Stats {
    placed: AtomicU64,
    confirmed: AtomicU64,
    assigned: AtomicU64,
    delivered: AtomicU64,
    offers: AtomicU64,
    busy: AtomicUsize,
}

impl Stats {
    fn summary(&self, open: usize, drivers: usize) -> String {
        let get = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        format!(
            "orders: {} placed, {} confirmed, {} assigned, {} delivered ({open} open); {} offers received; \
             {}/{drivers} drivers busy",
            get(&self.placed),
            get(&self.confirmed),
            get(&self.assigned),
            get(&self.delivered),
            get(&self.offers),
            self.busy.load(Ordering::Relaxed),
        )
    }
}

/// The seeded accounts the simulator acts for, and the keys to sign for them.
struct Accounts {
    tokens: Tokens,
    customers: Vec<Principal>,
    drivers: Vec<Principal>,
    /// One per seeded restaurant.
    staff: Vec<Principal>,
}

impl Accounts {
    /// Reads the server's configuration as `foodfast token` does.
    async fn load(max_drivers: usize) -> anyhow::Result<Self> {
        let config = Config::load(None, &std::env::vars().collect(), &Overrides::default())?;
        ensure_local_database(&config.stores.postgres.url)?;
        let keys = config.auth.token_keys().map_err(anyhow::Error::msg)?;
        anyhow::ensure!(
            !keys.is_empty(),
            "FOODFAST_AUTH_KEYS is not set: the server's keys sign the simulator's tokens"
        );
        let users = Users::new(Postgres::connect(&config.stores.postgres).await?);
        let accounts = Self {
            tokens: Tokens::new(&keys),
            customers: seeded(&users, "customer", usize::MAX).await?,
            drivers: seeded(&users, "driver", max_drivers).await?,
            staff: seeded(&users, "staff", usize::MAX).await?,
        };
        anyhow::ensure!(
            !accounts.customers.is_empty() && !accounts.drivers.is_empty() && !accounts.staff.is_empty(),
            "no seeded customers, drivers or restaurant staff in the database: run `foodfast seed` first"
        );
        Ok(accounts)
    }

    /// Signs every call of a client for `account`, with a token of its own.
    fn signer(&self, account: &Principal) -> anyhow::Result<impl Interceptor + Clone + use<>> {
        let token = self.tokens.mint(account, TOKEN_TTL).map_err(anyhow::Error::msg)?;
        let bearer: MetadataValue<Ascii> = format!("Bearer {token}").parse()?;
        Ok(move |mut request: Request<()>| {
            request.metadata_mut().insert("authorization", bearer.clone());
            Ok(request)
        })
    }
}

/// `{kind}1@demo.foodfast`, `{kind}2@...` up to the first missing one (or `limit`).
async fn seeded(users: &Users, kind: &str, limit: usize) -> anyhow::Result<Vec<Principal>> {
    let mut found = Vec::new();
    while found.len() < limit {
        let email = format!("{kind}{}@demo.foodfast", found.len() + 1);
        let Some((user_id, role, restaurant_id)) = users.by_email(&email).await? else { break };
        let role = Role::parse(&role).with_context(|| format!("account {email} has an unknown role {role}"))?;
        found.push(Principal { user_id, role, restaurant_id });
    }
    Ok(found)
}

/// Tokens are minted for whatever accounts the database holds, so it must be
/// this machine's too.
fn ensure_local_database(url: &str) -> anyhow::Result<()> {
    use tokio_postgres::config::Host;
    let config = foodfast_store::postgres_tls::PostgresUrl::parse(url)
        .map_err(|message| anyhow::anyhow!("FOODFAST_DATABASE_URL: {message}"))?
        .config;
    let local = config.get_hosts().iter().all(|host| match host {
        Host::Tcp(name) => name == "localhost" || name.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback()),
        Host::Unix(_) => true,
    }) && config.get_hostaddrs().iter().all(IpAddr::is_loopback);
    anyhow::ensure!(local, "FOODFAST_DATABASE_URL is not on a loopback address: the simulator works locally only");
    Ok(())
}

/// A channel to the server once its health check answers SERVING.
async fn wait_until_serving(addr: SocketAddr) -> anyhow::Result<Channel> {
    let channel = Channel::from_shared(format!("http://{addr}"))?.connect_lazy();
    let mut health = HealthClient::new(channel.clone());
    let give_up = Instant::now() + SERVER_WAIT;
    loop {
        match health.check(HealthCheckRequest { service: String::new() }).await {
            Ok(answer) if answer.get_ref().status == ServingStatus::Serving as i32 => return Ok(channel),
            _ if Instant::now() >= give_up => {
                anyhow::bail!("the server at {addr} did not answer SERVING within {}", human(SERVER_WAIT))
            }
            _ => tokio::time::sleep(Duration::from_secs(1)).await,
        }
    }
}

/// Sleeps `backoff`, and returns the next one: doubled, up to 30 s.
async fn wait(backoff: Duration) -> Duration {
    tokio::time::sleep(backoff).await;
    (backoff * 2).min(Duration::from_secs(30))
}

/// One order every 1/`rate` s, while fewer than `open`'s permits are out;
/// each order lives in a task of its own until it is over.
async fn customers(channel: Channel, accounts: Arc<Accounts>, open: Arc<Semaphore>, rate: f64, stats: Arc<Stats>) {
    let mut ticker = tokio::time::interval(Duration::from_secs_f64(1.0 / rate));
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let Ok(permit) = open.clone().try_acquire_owned() else { continue };
        let (channel, accounts, stats) = (channel.clone(), accounts.clone(), stats.clone());
        tokio::spawn(async move {
            if let Err(err) = order(channel, &accounts, &stats).await {
                warn!("an order failed: {err:#}");
            }
            drop(permit);
        });
    }
}

/// A random customer orders 1 to 3 dishes from a restaurant near the centre,
/// then follows the order until it is over.
async fn order(channel: Channel, accounts: &Accounts, stats: &Stats) -> anyhow::Result<()> {
    let customer = accounts.customers[fastrand::usize(..accounts.customers.len())];
    let mut restaurants = RestaurantServiceClient::new(channel.clone());
    let around = random_point(PARIS, RADIUS_M);
    let search = pb::SearchNearbyRequest {
        lat: around.lat,
        lng: around.lng,
        radius_m: SEARCH_RADIUS_M,
        open_now: true,
        page_size: 20,
        ..Default::default()
    };
    let found = restaurants.search_nearby(search).await.context("SearchNearby")?.into_inner().restaurants;
    let restaurant = fastrand::choice(found).context("no open restaurant near the centre")?;
    let request = pb::GetMenuRequest { restaurant_id: restaurant.restaurant_id.clone() };
    let menu = restaurants.get_menu(request).await.context("GetMenu")?.into_inner();
    let kitchen = menu.restaurant.and_then(|r| r.profile).and_then(|p| location(&p.address));
    let kitchen = kitchen.context("GetMenu gave no restaurant location")?;
    let dishes = menu.categories.iter().flat_map(|category| &category.items).filter(|dish| dish.available);
    let items: Vec<_> = fastrand::choose_multiple(dishes, fastrand::usize(1..=3)).into_iter().map(cart_line).collect();
    anyhow::ensure!(!items.is_empty(), "{} has nothing available", restaurant.name);
    let home = random_point(kitchen, RADIUS_M);
    let create = pb::CreateOrderRequest {
        idempotency_key: Uuid::new_v4().to_string(),
        restaurant_id: restaurant.restaurant_id,
        items,
        delivery_address: Some(pb::Address {
            location: Some(pb::LatLng { lat: home.lat, lng: home.lng }),
            formatted: "1 Rue du Simulateur, Paris".into(),
            instructions: String::new(),
        }),
        payment_method_id: "pm_card_visa".into(),
        customer_note: String::new(),
    };
    let mut orders = OrderServiceClient::with_interceptor(channel.clone(), accounts.signer(&customer)?);
    let placed = orders.create_order(create).await.context("CreateOrder")?.into_inner().order;
    let order_id = placed.context("CreateOrder answered no order")?.order_id;
    stats.placed.fetch_add(1, Ordering::Relaxed);
    info!("order {} placed at {}", short(&order_id), restaurant.name);
    track(channel, accounts, &customer, &order_id, stats).await
}

/// One of `dish`, with the first options of each customization that needs some.
fn cart_line(dish: &pb::MenuItem) -> pb::CartItem {
    let customizations = dish
        .customizations
        .iter()
        .filter(|customization| customization.min_choices > 0)
        .map(|customization| pb::CustomizationChoice {
            customization_id: customization.customization_id.clone(),
            option_ids: (customization.options.iter().filter(|option| option.available))
                .take(customization.min_choices as usize)
                .map(|option| option.option_id.clone())
                .collect(),
        })
        .collect();
    pb::CartItem { item_id: dish.item_id.clone(), quantity: 1, customizations, note: String::new() }
}

/// The customer's tracking screen: logs and counts each event until the
/// stream ends with the order (delivered, cancelled or rejected). A failed
/// stream resumes after the last event seen, [`TRACK_ATTEMPTS`] times.
async fn track(
    channel: Channel,
    accounts: &Accounts,
    customer: &Principal,
    order_id: &str,
    stats: &Stats,
) -> anyhow::Result<()> {
    let (mut seq, mut attempt) = (0, 0);
    loop {
        attempt += 1;
        let mut client = TrackingServiceClient::with_interceptor(channel.clone(), accounts.signer(customer)?);
        let request =
            pb::TrackOrderRequest { order_id: order_id.into(), resume_after: seq, max_location_updates_per_second: 1 };
        let followed: Result<(), Status> = async {
            let mut stream = client.track_order(request).await?.into_inner();
            while let Some(message) = stream.message().await? {
                seq = seq.max(message.seq);
                if let Some(pb::track_order_response::Payload::Event(event)) = message.payload {
                    note(order_id, &event, stats);
                }
            }
            Ok(())
        }
        .await;
        match followed {
            Err(status) if attempt < TRACK_ATTEMPTS => {
                debug!("tracking order {} failed ({status}); resuming", short(order_id))
            }
            followed => return Ok(followed?),
        }
        tokio::time::sleep(FIRST_BACKOFF).await;
    }
}

fn note(order_id: &str, event: &pb::OrderEvent, stats: &Stats) {
    let kind = pb::OrderEventKind::try_from(event.kind).unwrap_or_default();
    let status = pb::OrderStatus::try_from(event.status).unwrap_or_default();
    let counter = match (kind, status) {
        (pb::OrderEventKind::StatusChanged, pb::OrderStatus::Confirmed) => Some(&stats.confirmed),
        (pb::OrderEventKind::StatusChanged, pb::OrderStatus::Delivered) => Some(&stats.delivered),
        (pb::OrderEventKind::DriverAssigned, _) => Some(&stats.assigned),
        _ => None,
    };
    if let Some(counter) = counter {
        counter.fetch_add(1, Ordering::Relaxed);
    }
    let what = match kind {
        pb::OrderEventKind::StatusChanged => status.as_str_name().trim_start_matches("ORDER_STATUS_"),
        other => other.as_str_name().trim_start_matches("ORDER_EVENT_KIND_"),
    };
    let driver = event.driver.as_ref().map(|d| format!(" driver {}", short(&d.driver_id))).unwrap_or_default();
    info!("order {} {what}{driver}", short(order_id));
}

/// A restaurant's staff at their dashboard, for ever: WatchOrders (resumed
/// after the last cursor when it drops) moves each order on as a kitchen
/// would, by the order's own status, so that orders an earlier run left open
/// finish too: accept after 2-5 s, start preparing, ready 10-30 s later.
async fn kitchen(channel: Channel, accounts: Arc<Accounts>, name: String, staff: Principal) {
    let mut cursor = String::new();
    let mut backoff = FIRST_BACKOFF;
    loop {
        let watched: anyhow::Result<()> = async {
            let restaurant_id = staff.restaurant_id.context("a staff account without a restaurant")?.to_string();
            let mut client = RestaurantServiceClient::with_interceptor(channel.clone(), accounts.signer(&staff)?);
            let request = pb::WatchOrdersRequest { restaurant_id, after_cursor: cursor.clone() };
            let mut stream = client.watch_orders(request).await?.into_inner();
            backoff = FIRST_BACKOFF;
            while let Some(message) = stream.message().await? {
                if !message.cursor.is_empty() {
                    cursor = message.cursor;
                }
                let order = match message.payload {
                    Some(Watched::Snapshot(order)) => order,
                    Some(Watched::Change(pb::RestaurantOrderChange { event: Some(event), order: Some(order) }))
                        if event.kind == pb::OrderEventKind::StatusChanged as i32 =>
                    {
                        order
                    }
                    _ => continue,
                };
                let (status, after_ms) = match pb::OrderStatus::try_from(order.status) {
                    Ok(pb::OrderStatus::Pending) => ("accepted", fastrand::u64(2_000..=5_000)),
                    Ok(pb::OrderStatus::Confirmed) => ("preparing", fastrand::u64(500..=2_000)),
                    Ok(pb::OrderStatus::Preparing) => ("ready_for_pickup", fastrand::u64(10_000..=30_000)),
                    _ => continue,
                };
                let step = update(channel.clone(), accounts.clone(), staff, order.order_id, status, after_ms);
                tokio::spawn(step);
            }
            Ok(())
        }
        .await;
        if let Err(err) = watched {
            warn!("{name}: WatchOrders failed: {err:#}");
        }
        backoff = wait(backoff).await;
    }
}

/// Moves order `order_id` on to `status` after `after_ms`, as `staff`.
async fn update(
    channel: Channel,
    accounts: Arc<Accounts>,
    staff: Principal,
    order_id: String,
    status: &'static str,
    after_ms: u64,
) {
    tokio::time::sleep(Duration::from_millis(after_ms)).await;
    let updated = async {
        let mut client = RestaurantServiceClient::with_interceptor(channel, accounts.signer(&staff)?);
        let request =
            pb::UpdateOrderStatusRequest { order_id: order_id.clone(), status: status.into(), ..Default::default() };
        client.update_order_status(request).await?;
        anyhow::Ok(())
    };
    if let Err(err) = updated.await {
        warn!("order {}: UpdateOrderStatus {status} failed: {err:#}", short(&order_id));
    }
}

/// A seeded driver's app. Position, ping seq and the delivery it holds
/// outlive its connections.
struct Driver {
    name: String,
    account: Principal,
    stats: Arc<Stats>,
    every: Duration,
    speed_mps: f64,
    position: LatLng,
    /// Where it drifts to while it has nothing to deliver.
    wandering_to: LatLng,
    job: Option<Job>,
    seq: u64,
}

/// The delivery a driver holds (seeded drivers carry one at a time).
struct Job {
    order_id: String,
    pickup: LatLng,
    dropoff: LatLng,
    picked_up: bool,
    /// When the step at the current stop may be sent (again): a refused one
    /// (the food is not ready) or an unanswered one goes again after
    /// [`STEP_AGAIN`].
    step_at: Instant,
}

impl Driver {
    /// Connects, and reconnects with backoff, for ever. It starts where the
    /// server last saw the driver, if it did: a jump to its random spot would
    /// be refused as an impossible speed.
    async fn run(mut self, channel: Channel, accounts: Arc<Accounts>) {
        let state = async {
            let mut client = DriverServiceClient::with_interceptor(channel.clone(), accounts.signer(&self.account)?);
            anyhow::Ok(client.get_driver_state(pb::GetDriverStateRequest::default()).await?.into_inner().last_position)
        };
        match state.await {
            Ok(Some(last)) => self.position = LatLng { lat: last.lat, lng: last.lng },
            Ok(None) => {}
            Err(err) => warn!("{}: GetDriverState failed; starting anywhere: {err:#}", self.name),
        }
        let mut backoff = FIRST_BACKOFF;
        loop {
            if let Err(err) = self.connected(&channel, &accounts, &mut backoff).await {
                warn!("{}: Connect failed: {err:#}", self.name);
            }
            backoff = wait(backoff).await;
        }
    }

    /// One Connect stream, until it fails.
    async fn connected(
        &mut self,
        channel: &Channel,
        accounts: &Accounts,
        backoff: &mut Duration,
    ) -> anyhow::Result<()> {
        let (sender, receiver) = mpsc::channel(SEND_BUFFER);
        let online = pb::DriverAvailability::Online as i32;
        sender
            .send(up(Up::Hello(pb::Hello { app_version: "foodfast-loadgen simulate".into(), availability: online })))
            .await?;
        let mut client = DriverServiceClient::with_interceptor(channel.clone(), accounts.signer(&self.account)?);
        let mut responses = client.connect(ReceiverStream::new(receiver)).await?.into_inner();
        let Some(Down::Welcome(welcome)) = responses.message().await?.and_then(|message| message.payload) else {
            anyhow::bail!("the stream did not start with `welcome`");
        };
        *backoff = FIRST_BACKOFF;
        self.seq = self.seq.max(welcome.durable_seq);
        // The server's word on what the driver holds: it may have changed
        // while the driver was away.
        match welcome.active_deliveries.into_iter().next() {
            Some(delivery) => self.take(delivery),
            None => self.set_job(None),
        }
        for offer in welcome.open_offers {
            self.answer(&sender, offer).await?;
        }
        let mut ticker = tokio::time::interval(self.every);
        ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = ticker.tick() => self.tick(&sender).await?,
                message = responses.message() => match message?.and_then(|message| message.payload) {
                    Some(payload) => self.handle(&sender, payload).await?,
                    None => anyhow::bail!("the server ended the stream"),
                },
            }
        }
    }

    /// Moves on toward the job's next stop (or wanders), pings, and once at
    /// the stop sends its step.
    async fn tick(&mut self, sender: &mpsc::Sender<pb::ConnectRequest>) -> anyhow::Result<()> {
        let (target, speed) = match &self.job {
            Some(job) => (if job.picked_up { job.dropoff } else { job.pickup }, self.speed_mps),
            None => (self.wandering_to, WANDERING_MPS),
        };
        let (from, seconds) = (self.position, self.every.as_secs_f64());
        let arrived;
        (self.position, arrived) = advance(from, target, speed * seconds);
        self.seq += 1;
        let ping = pb::LocationPing {
            seq: self.seq,
            lat: self.position.lat,
            lng: self.position.lng,
            accuracy_m: Some(5.0),
            speed_mps: Some((distance_m(from, self.position) / seconds) as f32),
            heading_deg: Some(heading_deg(from, target)),
            recorded_at: Some(SystemTime::now().into()),
        };
        sender.send(up(Up::Ping(ping))).await?;
        match &mut self.job {
            None if arrived => self.wandering_to = random_point(PARIS, RADIUS_M),
            Some(job) if arrived && Instant::now() >= job.step_at => {
                job.step_at = Instant::now() + STEP_AGAIN;
                let step = if job.picked_up { pb::DeliveryStep::Delivered } else { pb::DeliveryStep::PickedUp };
                let transition = pb::DeliveryTransition {
                    transition_id: Uuid::new_v4().to_string(),
                    order_id: job.order_id.clone(),
                    step: step as i32,
                    occurred_at: Some(SystemTime::now().into()),
                };
                sender.send(up(Up::Transition(transition))).await?;
            }
            _ => {}
        }
        Ok(())
    }

    async fn handle(&mut self, sender: &mpsc::Sender<pb::ConnectRequest>, payload: Down) -> anyhow::Result<()> {
        match payload {
            Down::Offer(offer) => self.answer(sender, offer).await?,
            // Not recorded (the database was busy): the offer is still open. Answer again later,
            // accepting (the first decision is not remembered).
            Down::OfferAnswerFailed(failed) => {
                let retry_after = failed.retry_after.map_or(Duration::from_secs(1), |d| {
                    Duration::from_secs(d.seconds.max(0) as u64) + Duration::from_nanos(d.nanos.max(0) as u64)
                });
                let answer = pb::OfferAnswer {
                    offer_id: failed.offer_id,
                    decision: pb::OfferDecision::Accept as i32,
                    reason: String::new(),
                };
                let sender = sender.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(retry_after).await;
                    let _ = sender.send(up(Up::OfferAnswer(answer))).await;
                });
            }
            Down::Assignment(pb::AssignmentChange { kind, delivery: Some(delivery), .. }) => {
                match pb::AssignmentChangeKind::try_from(kind) {
                    Ok(pb::AssignmentChangeKind::Assigned) => self.take(delivery),
                    Ok(kind @ (pb::AssignmentChangeKind::Cancelled | pb::AssignmentChangeKind::Unassigned))
                        if self.job.as_ref().is_some_and(|job| job.order_id == delivery.order_id) =>
                    {
                        info!("{}: order {} {}", self.name, short(&delivery.order_id), kind.as_str_name());
                        self.set_job(None);
                    }
                    _ => {}
                }
            }
            Down::TransitionResult(result) => {
                let Some(job) = self.job.as_mut().filter(|job| job.order_id == result.order_id) else { return Ok(()) };
                let step = pb::DeliveryStep::try_from(result.step).unwrap_or_default();
                match pb::TransitionOutcome::try_from(result.outcome) {
                    Ok(pb::TransitionOutcome::Applied | pb::TransitionOutcome::AlreadyApplied) => match step {
                        pb::DeliveryStep::PickedUp => (job.picked_up, job.step_at) = (true, Instant::now()),
                        pb::DeliveryStep::Delivered => self.set_job(None),
                        _ => {}
                    },
                    _ => debug!("{}: {} refused: {}", self.name, step.as_str_name(), result.error),
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// Accepts, or now and then declines, so that dispatch offers again.
    async fn answer(&self, sender: &mpsc::Sender<pb::ConnectRequest>, offer: pb::Offer) -> anyhow::Result<()> {
        self.stats.offers.fetch_add(1, Ordering::Relaxed);
        let decline = fastrand::f64() < DECLINE_SHARE;
        let decision = if decline { pb::OfferDecision::Decline } else { pb::OfferDecision::Accept };
        let answer = pb::OfferAnswer { offer_id: offer.offer_id, decision: decision as i32, reason: String::new() };
        sender.send(up(Up::OfferAnswer(answer))).await?;
        Ok(())
    }

    /// Takes on `delivery`, unless it is the one already held.
    fn take(&mut self, delivery: pb::Delivery) {
        if self.job.as_ref().is_some_and(|job| job.order_id == delivery.order_id) {
            return;
        }
        let (Some(pickup), Some(dropoff)) =
            (location(&delivery.restaurant_address), location(&delivery.customer_address))
        else {
            warn!("{}: delivery {} without its addresses", self.name, delivery.delivery_id);
            return;
        };
        let status = pb::OrderStatus::try_from(delivery.order_status).unwrap_or_default();
        let picked_up = matches!(status, pb::OrderStatus::PickedUp | pb::OrderStatus::Delivering);
        let job = Job { order_id: delivery.order_id, pickup, dropoff, picked_up, step_at: Instant::now() };
        self.set_job(Some(job));
    }

    /// Changes the held delivery, keeping the count of busy drivers.
    fn set_job(&mut self, job: Option<Job>) {
        match (self.job.is_some(), job.is_some()) {
            (false, true) => self.stats.busy.fetch_add(1, Ordering::Relaxed),
            (true, false) => self.stats.busy.fetch_sub(1, Ordering::Relaxed),
            _ => 0,
        };
        self.job = job;
    }
}

fn up(payload: Up) -> pb::ConnectRequest {
    pb::ConnectRequest { payload: Some(payload) }
}

/// Up to `metres` along the straight line from `from` to `to` (interpolated
/// in degrees: close enough over a few kilometres), and whether it got there.
fn advance(from: LatLng, to: LatLng, metres: f64) -> (LatLng, bool) {
    let left = distance_m(from, to);
    if left <= metres {
        return (to, true);
    }
    let share = metres / left;
    (LatLng { lat: from.lat + (to.lat - from.lat) * share, lng: from.lng + (to.lng - from.lng) * share }, false)
}

/// Degrees clockwise from north, 0 to 360.
fn heading_deg(from: LatLng, to: LatLng) -> f32 {
    let (north, east) = (to.lat - from.lat, (to.lng - from.lng) * from.lat.to_radians().cos());
    // `% 360.0`: a hair below 360 in f64 can round to 360 in f32.
    (east.atan2(north).to_degrees().rem_euclid(360.0) as f32) % 360.0
}

/// A point uniformly at random within `radius_m` of `centre`.
fn random_point(centre: LatLng, radius_m: f64) -> LatLng {
    let (distance, angle) = (radius_m * fastrand::f64().sqrt(), fastrand::f64() * std::f64::consts::TAU);
    let east_per_degree = METRES_PER_DEGREE * centre.lat.to_radians().cos();
    LatLng {
        lat: centre.lat + distance * angle.cos() / METRES_PER_DEGREE,
        lng: centre.lng + distance * angle.sin() / east_per_degree,
    }
}

fn location(address: &Option<pb::Address>) -> Option<LatLng> {
    address.as_ref()?.location.as_ref().map(|point| LatLng { lat: point.lat, lng: point.lng })
}

/// The first 8 characters of an id, enough to tell orders apart in a log.
fn short(id: &str) -> String {
    format!("{}…", id.get(..8).unwrap_or(id))
}
