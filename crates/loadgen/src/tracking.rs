//! `tracking`: live order tracking (issue 5). D drivers ping on their
//! Connect streams while S `TrackingService/TrackOrder` streams watch the
//! orders those drivers carry, against the real server in this process on
//! fresh stores. A location's latency runs from the ping's `recorded_at`,
//! stamped by the driver just before sending, to a stream reading the
//! update: one process, one clock. Then the baseline, a bare tonic relay
//! ([`crate::relay`]), with the same drivers, streams, connections and rate.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use clap::builder::RangedU64ValueParser;
use foodfast_api::v1 as pb;
use foodfast_api::v1::dispatch_service_client::DispatchServiceClient;
use foodfast_api::v1::order_service_client::OrderServiceClient;
use foodfast_api::v1::restaurant_service_client::RestaurantServiceClient;
use foodfast_api::v1::tracking_service_client::TrackingServiceClient;
use foodfast_domain::access::Role;
use foodfast_server::config::Config;
use foodfast_store::metrics::{LOCATION_QUEUE_DEPTH, PUBSUB_OVERFLOWS_TOTAL};
use hdrhistogram::Histogram;
use metrics_exporter_prometheus::PrometheusHandle;
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::transport::Channel;
use tonic::{Code, Status, Streaming};

use crate::drivers::{self, Fleet, Pings, Schedule};
use crate::in_process::{InProcessServer, human};
use crate::open_loop::Outcome;
use crate::orders::Market;
use crate::relay::RelayServer;
use crate::report;

type Payload = pb::track_order_response::Payload;
type Bearer = MetadataValue<Ascii>;

/// TrackOrder streams that share one HTTP/2 connection: well under the
/// server's `grpc.max_concurrent_streams` (1024 by default).
const STREAMS_PER_CONNECTION: usize = 200;
/// Setup calls (orders) and stream openings in flight at once.
const SETUP_CONCURRENCY: usize = 32;
const CUSTOMERS: usize = 500;
/// How often setup reports its progress on stderr.
const PROGRESS_EVERY: Duration = Duration::from_secs(10);
/// A setup call, or a stream's first message, that takes longer fails the run.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);
/// AssignDriver calls in flight at once: with 32, concurrent assignments on a
/// fresh database kept failing serialization (`ABORTED` after the server's
/// own 8 attempts, five times over).
const ASSIGN_CONCURRENCY: usize = 4;
/// Attempts of a setup call the server answers `ABORTED` (its own retries of
/// a serialization conflict ran out).
const ATTEMPTS: u32 = 10;
/// Open streams stay idle this long before the second RSS reading, so that
/// what they allocate once running counts.
const IDLE: Duration = Duration::from_secs(2);
/// After the drivers' last ack, how long updates still in flight get.
const SETTLE: Duration = Duration::from_secs(1);
const AIM_P99_MS: f64 = 50.0;
const AIM_PINGS_PER_SECOND: f64 = 10_000.0;
const AIM_STREAMS: usize = 10_000;
/// Below this share of the expected updates the aim is missed whatever the
/// p99: an update coalesced away is not late, it is lost.
const AIM_DELIVERED: f64 = 0.95;
const MIB: f64 = 1024.0 * 1024.0;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Simulated drivers, one Connect stream each; each carries its share of
    /// the orders.
    #[arg(long, default_value_t = 2000, value_parser = RangedU64ValueParser::<usize>::new().range(1..))]
    drivers: usize,
    /// TrackOrder streams, spread round-robin over the orders.
    #[arg(long, default_value_t = 10_000, value_parser = RangedU64ValueParser::<usize>::new().range(1..))]
    streams: usize,
    /// Orders the streams watch, each assigned to a driver (round-robin);
    /// default: one per stream.
    #[arg(long, value_parser = RangedU64ValueParser::<usize>::new().range(1..))]
    orders: Option<usize>,
    /// Time between two pings of one driver.
    #[arg(long, default_value = "200ms", value_parser = humantime::parse_duration)]
    ping_interval: Duration,
    /// How long the measured part runs.
    #[arg(long, default_value = "20s", value_parser = humantime::parse_duration)]
    duration: Duration,
    /// Pings before the measured part, at the same rate, not recorded.
    #[arg(long, default_value = "3s", value_parser = humantime::parse_duration)]
    warmup: Duration,
    /// Restaurants the orders are spread over: each order's events bump its
    /// restaurant's sequence row, a hot spot when there are few.
    #[arg(long, default_value_t = 50, value_parser = RangedU64ValueParser::<usize>::new().range(1..))]
    restaurants: usize,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    anyhow::ensure!(args.ping_interval >= Duration::from_millis(1), "--ping-interval must be at least 1ms");
    let orders = args.orders.unwrap_or(args.streams);
    let capacity = orders.div_ceil(args.drivers);
    let schedule =
        Schedule { hz: 1.0 / args.ping_interval.as_secs_f64(), warmup: args.warmup, duration: args.duration };
    let machine = report::machine();
    // The in-process server runs with the defaults.
    let defaults = Config::default();
    let location_limit = defaults.tracking.max_location_rate;

    // Both systems' streams are opened before either is measured, the
    // relay's first in a process that has not allocated much yet: memory a
    // measured run frees cannot be reused by the other's streams, so each RSS
    // growth is its own.
    eprintln!("(a) bare tonic relay: {} subscriber streams, {} publishers", args.streams, args.drivers);
    let relay_server = RelayServer::start(defaults.grpc.max_concurrent_streams).await?;
    let keys: Vec<String> = (0..args.drivers).map(|driver| format!("driver-{driver}")).collect();
    let publishers = keys.iter().map(|key| key.parse().map(Some)).collect::<Result<_, _>>()?;
    let publishers = Fleet::open(&relay_server.url, publishers).await?;
    // Stream i watches order i % orders, which driver (i % orders) % drivers carries.
    let subscribers = (0..args.streams).map(|i| (keys[i % orders % args.drivers].clone(), None)).collect();
    let relay = Opened::open(&relay_server.url, publishers, subscribers).await?;

    // The server's own metrics, to tell where a backlog sits.
    let metrics = foodfast_telemetry::metrics::install()?;
    let server = InProcessServer::start().await?;
    server.migrate_scylla().await?;
    eprintln!("seeding {} restaurants with their staff, {CUSTOMERS} customers", args.restaurants);
    let market = Arc::new(Market::seed(&server, args.restaurants, CUSTOMERS).await?);
    let mut staff = HashMap::new();
    for id in market.restaurant_ids() {
        let (_, bearer) = server.user(Role::RestaurantStaff, Role::RestaurantStaff, Some(id.parse()?)).await?;
        staff.insert(id.to_string(), bearer);
    }
    let admin = server.account(Role::Admin, Role::Admin).await?;
    let support = server.account(Role::Support, Role::Support).await?;
    eprintln!("creating {} drivers (capacity {capacity}) and connecting them (hello ONLINE)", args.drivers);
    let (mut driver_ids, mut bearers) = (Vec::with_capacity(args.drivers), Vec::with_capacity(args.drivers));
    for _ in 0..args.drivers {
        let (id, bearer) = server.driver(i32::try_from(capacity)?).await?;
        driver_ids.push(id.to_string());
        bearers.push(Some(bearer));
    }
    let fleet = Fleet::open(&server.url, bearers).await?;
    eprintln!("placing {orders} orders, {SETUP_CONCURRENCY} at a time: create, accept, ready for pickup, assign");
    let placing = Instant::now();
    let placed = place_orders(&server.channel, market, admin, &driver_ids, orders).await?;
    let placing = placing.elapsed();
    // The k-th stream of an order is its customer's, then its restaurant's
    // staff's, then support's: several parties watch one order.
    let watchers = (0..args.streams)
        .map(|i| {
            let order = &placed[i % orders];
            let bearer = match i / orders {
                0 => order.customer.clone(),
                1 => staff[&order.restaurant_id].clone(),
                _ => support.clone(),
            };
            (order.id.clone(), Some(bearer))
        })
        .collect();
    eprintln!("(b) FoodFast: {} TrackOrder streams, {} drivers", args.streams, args.drivers);
    let opened = Opened::open(&server.url, fleet, watchers).await?;
    let (foodfast, deepest_queue) = while_sampling_queue_depth(&metrics, opened.measure(&schedule)).await;
    let foodfast = foodfast?;
    let pubsub_overflows = metric_value(&metrics.render(), PUBSUB_OVERFLOWS_TOTAL).unwrap_or(0.0);
    let peak_rss = report::peak_rss();

    server.stop_and_discard().await?;

    eprintln!("(a) bare tonic relay");
    let relay = relay.measure(&schedule).await?;
    drop(relay_server);

    let per_stream = schedule.hz.min(f64::from(location_limit));
    let target = (args.streams as f64 * per_stream).round() as u32;
    let pings_per_second = schedule.hz * args.drivers as f64;
    println!("{machine}");
    println!(
        "settings: {} drivers pinging every {} ({pings_per_second:.0} pings/s, {} Connect streams per connection); \
         {} TrackOrder streams ({STREAMS_PER_CONNECTION} per connection, max_location_updates_per_second 0: the \
         server's limit, {location_limit}/s) over {orders} orders, {}; {capacity} orders per driver; {} restaurants; \
         warm-up {}, duration {}; one process (server, relay, load); peak RSS {peak_rss}",
        args.drivers,
        human(args.ping_interval),
        drivers::STREAMS_PER_CONNECTION,
        args.streams,
        watched_by(args.streams, orders),
        args.restaurants,
        human(args.warmup),
        human(args.duration),
    );
    println!(
        "setup: {orders} orders created, accepted, made ready and assigned in {} ({:.0} orders/s); \
         streams opened in {} (b), {} (a)",
        human(round_ms(placing)),
        orders as f64 / placing.as_secs_f64(),
        human(round_ms(foodfast.opened_in)),
        human(round_ms(relay.opened_in)),
    );
    report::print_table(target, &[("(a) relay", &relay.updates), ("(b) FoodFast", &foodfast.updates)]);
    println!(
        "latency: from a ping's recorded_at (the driver's clock, read just before sending) until a stream read the"
    );
    println!("update, same process and clock; ok/s: location updates delivered per second over all streams;");
    println!(
        "target/s: every ping reaching every stream that watches its driver; errors: streams that failed or ended"
    );
    report::print_ratios(("(b) FoodFast", &foodfast.updates), ("(a) relay", &relay.updates));
    println!(
        "driver pings/s: (b) {:.1} sent (rejected or failed: {}), {:.1} acked durable (ack p99 {:.2} ms), (a) {:.1}",
        foodfast.pings.accepted.throughput(),
        report::errors(&foodfast.pings.accepted),
        foodfast.pings.durable.throughput(),
        foodfast.pings.durable.latency.value_at_quantile(0.99) as f64 / 1000.0,
        relay.pings.accepted.throughput(),
    );
    println!(
        "server while measured (b): location writer queue at most {deepest_queue:.0} of {} points (full: driver \
         streams stop reading); pub/sub inbox overflows {pubsub_overflows:.0}",
        defaults.ingest.writer.queue_capacity,
    );
    println!(
        "other messages on the (b) streams while measured (ETAs, events, heartbeats): {}",
        foodfast.other_messages
    );
    let per_thousand = |run: &Run| {
        run.rss_growth.map_or_else(
            || "unknown".to_string(),
            |bytes| {
                let total = bytes as f64 / MIB;
                format!("{:.1} MiB ({total:.1} MiB for {})", total * 1000.0 / args.streams as f64, args.streams)
            },
        )
    };
    println!(
        "RSS per 1,000 open streams: (b) FoodFast {}, (a) relay {}",
        per_thousand(&foodfast),
        per_thousand(&relay)
    );
    println!(
        "  (growth of this process's VmRSS from before opening the streams to 2 s after; it holds the client side"
    );
    println!("  of the streams too, so (b) is an upper bound for the server alone; (a)'s streams were opened");
    println!("  first and both were open before either carried traffic, so neither reused the other's memory)");
    aim(&foodfast, f64::from(target), args.streams);
    Ok(())
}

/// Runs `task` while reading the location writer's queue depth every 250 ms;
/// returns its output and the deepest queue seen.
async fn while_sampling_queue_depth<T>(metrics: &PrometheusHandle, task: impl Future<Output = T>) -> (T, f64) {
    let mut deepest: f64 = 0.0;
    let mut every = tokio::time::interval(Duration::from_millis(250));
    tokio::pin!(task);
    loop {
        tokio::select! {
            output = &mut task => return (output, deepest),
            _ = every.tick() => {
                deepest = deepest.max(metric_value(&metrics.render(), LOCATION_QUEUE_DEPTH).unwrap_or(0.0));
            }
        }
    }
}

/// The value of an unlabelled metric in a Prometheus text exposition.
fn metric_value(exposition: &str, name: &str) -> Option<f64> {
    exposition.lines().find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

/// "1 per order (its customer)", or the parties when there are more.
fn watched_by(streams: usize, orders: usize) -> String {
    let most = streams.div_ceil(orders);
    let parties = ["its customer", "its restaurant's staff", "support"];
    let who = parties[..most.min(parties.len())].join(", then ");
    if streams.is_multiple_of(orders) {
        format!("{most} per order ({who})")
    } else {
        format!("{} to {most} per order ({who})", streams / orders)
    }
}

fn round_ms(duration: Duration) -> Duration {
    Duration::from_millis(duration.as_millis() as u64)
}

/// One line on issue 5's aim.
fn aim(foodfast: &Run, target: f64, streams: usize) {
    let p99_ms = foodfast.updates.latency.value_at_quantile(0.99) as f64 / 1000.0;
    let pings = foodfast.pings.accepted.throughput();
    let delivered = foodfast.updates.throughput() / target;
    let verdict = if !foodfast.updates.errors.is_empty() {
        "MISSED (streams failed)"
    } else if p99_ms >= AIM_P99_MS {
        "MISSED"
    } else if delivered < AIM_DELIVERED {
        "MISSED (updates lost)"
    } else if pings < 0.99 * AIM_PINGS_PER_SECOND || streams < AIM_STREAMS {
        "under 50 ms, but below the target load"
    } else {
        "met"
    };
    println!(
        "AIM p99 < {AIM_P99_MS} ms at {AIM_PINGS_PER_SECOND} pings/s with {AIM_STREAMS} streams (and >= {:.0}% of \
         updates delivered): p99 {p99_ms:.2} ms at {pings:.0} pings/s with {streams} streams, {:.1}% delivered, \
         {verdict}",
        AIM_DELIVERED * 100.0,
        delivered * 100.0,
    );
}

/// What one system did under the load.
struct Run {
    /// Location updates of the measured pings: delivered, their latency in
    /// microseconds, and the streams that failed (by gRPC code) or ended.
    updates: Outcome,
    pings: Pings,
    /// Messages other than locations read while measuring.
    other_messages: u64,
    opened_in: Duration,
    /// Growth of the process's RSS from opening the streams.
    rss_growth: Option<u64>,
}

/// One system's drivers and open (idle) streams, each read by a task of its
/// own; closed when dropped.
struct Opened {
    fleet: Fleet,
    received: Arc<Received>,
    readers: Vec<JoinHandle<()>>,
    opened_in: Duration,
    rss_growth: Option<u64>,
}

impl Drop for Opened {
    fn drop(&mut self) {
        for reader in &self.readers {
            reader.abort();
        }
    }
}

impl Opened {
    /// Opens the streams of `watchers` (order id, bearer) on `url` and lets
    /// them idle, noting how much the process's RSS grew.
    async fn open(url: &str, fleet: Fleet, watchers: Vec<(String, Option<Bearer>)>) -> anyhow::Result<Self> {
        let received = Arc::new(Received::new());
        let before = report::rss_bytes();
        let opening = Instant::now();
        let readers = open_streams(url, watchers, &received).await?;
        let opened_in = opening.elapsed();
        tokio::time::sleep(IDLE).await;
        let rss_growth = before.zip(report::rss_bytes()).map(|(before, after)| after.saturating_sub(before));
        eprintln!("  {} streams open in {}", readers.len(), human(round_ms(opened_in)));
        Ok(Self { fleet, received, readers, opened_in, rss_growth })
    }

    /// Drives the fleet on `schedule` while the streams read, then closes
    /// them.
    async fn measure(mut self, schedule: &Schedule) -> anyhow::Result<Run> {
        eprintln!("  pinging: {} warm-up, then {} measured", human(schedule.warmup), human(schedule.duration));
        let measured_from = chrono::Utc::now() + drivers::START_DELAY + schedule.warmup;
        self.received.measure(measured_from, measured_from + schedule.duration);
        let pings = self.fleet.drive(schedule).await?;
        tokio::time::sleep(SETTLE).await;
        Ok(Run {
            updates: self.received.outcome(schedule.duration),
            pings,
            other_messages: self.received.other.load(Ordering::Relaxed),
            opened_in: self.opened_in,
            rss_growth: self.rss_growth,
        })
    }
}

/// What the streams of one run read, shared by their readers.
struct Received {
    /// Updates recorded in `[from, to)` (Unix nanoseconds) are measured: the
    /// pings sent in the measured part.
    from: AtomicI64,
    to: AtomicI64,
    latency: Mutex<Histogram<u64>>,
    delivered: AtomicU64,
    other: AtomicU64,
    failed: Mutex<BTreeMap<String, u64>>,
}

impl Received {
    fn new() -> Self {
        Self {
            from: AtomicI64::new(i64::MAX),
            to: AtomicI64::new(i64::MIN),
            // Microseconds, up to a minute.
            latency: Mutex::new(Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid bounds")),
            delivered: AtomicU64::new(0),
            other: AtomicU64::new(0),
            failed: Mutex::default(),
        }
    }

    fn measure(&self, from: chrono::DateTime<chrono::Utc>, to: chrono::DateTime<chrono::Utc>) {
        self.from.store(from.timestamp_nanos_opt().unwrap_or(i64::MAX), Ordering::Relaxed);
        self.to.store(to.timestamp_nanos_opt().unwrap_or(i64::MIN), Ordering::Relaxed);
    }

    fn measuring(&self, at: i64) -> bool {
        (self.from.load(Ordering::Relaxed)..self.to.load(Ordering::Relaxed)).contains(&at)
    }

    fn location(&self, update: &pb::DriverLocationUpdate) {
        let now = now_nanos();
        let Some(recorded_at) = update.recorded_at else { return self.other(now) };
        let recorded_at = recorded_at.seconds * 1_000_000_000 + i64::from(recorded_at.nanos);
        if !self.measuring(recorded_at) {
            return;
        }
        let micros = (now - recorded_at).max(0) as u64 / 1000;
        lock(&self.latency).saturating_record(micros);
        self.delivered.fetch_add(1, Ordering::Relaxed);
    }

    fn other(&self, now: i64) {
        if self.measuring(now) {
            self.other.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn failed(&self, kind: String) {
        *lock(&self.failed).entry(kind).or_default() += 1;
    }

    fn outcome(&self, duration: Duration) -> Outcome {
        Outcome {
            ok: self.delivered.load(Ordering::Relaxed),
            errors: lock(&self.failed).clone(),
            latency: lock(&self.latency).clone(),
            elapsed: duration,
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn now_nanos() -> i64 {
    chrono::Utc::now().timestamp_nanos_opt().unwrap_or(i64::MAX)
}

/// Reads one stream until it fails or ends (or the task is aborted).
async fn read(mut stream: Streaming<pb::TrackOrderResponse>, received: Arc<Received>) {
    loop {
        match stream.message().await {
            Ok(Some(pb::TrackOrderResponse { payload: Some(Payload::DriverLocation(update)), .. })) => {
                received.location(&update);
            }
            Ok(Some(_)) => received.other(now_nanos()),
            Ok(None) => return received.failed("ended".into()),
            Err(status) => return received.failed(format!("{:?}", status.code())),
        }
    }
}

/// One TrackOrder stream per watcher, [`STREAMS_PER_CONNECTION`] per
/// HTTP/2 connection, each open once its first message (the snapshot) came,
/// then read by a task of its own.
async fn open_streams(
    url: &str,
    watchers: Vec<(String, Option<Bearer>)>,
    received: &Arc<Received>,
) -> anyhow::Result<Vec<JoinHandle<()>>> {
    let mut channels = Vec::new();
    for _ in 0..watchers.len().div_ceil(STREAMS_PER_CONNECTION) {
        channels.push(Channel::from_shared(url.to_string())?.connect().await?);
    }
    bounded(watchers.len(), "streams opened", |i| {
        let (order_id, bearer) = watchers[i].clone();
        let mut client = TrackingServiceClient::new(channels[i / STREAMS_PER_CONNECTION].clone());
        let received = received.clone();
        async move {
            let mut request = tonic::Request::new(pb::TrackOrderRequest {
                order_id,
                resume_after: 0,
                max_location_updates_per_second: 0,
            });
            if let Some(bearer) = bearer {
                request.metadata_mut().insert("authorization", bearer);
            }
            let mut stream = tokio::time::timeout(CALL_TIMEOUT, client.track_order(request)).await??.into_inner();
            match tokio::time::timeout(CALL_TIMEOUT, stream.message()).await??.and_then(|first| first.payload) {
                Some(Payload::Snapshot(_)) => Ok(tokio::spawn(read(stream, received))),
                other => anyhow::bail!("expected a snapshot first, got {other:?}"),
            }
        }
    })
    .await
}

/// An order being watched.
struct Placed {
    id: String,
    customer: Bearer,
    restaurant_id: String,
}

/// `count` orders through the API, each assigned to a driver in turn.
async fn place_orders(
    channel: &Channel,
    market: Arc<Market>,
    admin: Bearer,
    drivers: &[String],
    count: usize,
) -> anyhow::Result<Vec<Placed>> {
    let assigning = Arc::new(Semaphore::new(ASSIGN_CONCURRENCY));
    bounded(count, "orders placed", |i| {
        let driver_id = drivers[i % drivers.len()].clone();
        place_order(channel.clone(), market.clone(), admin.clone(), assigning.clone(), driver_id)
    })
    .await
}

/// Created by a customer, then accepted, ready for pickup and assigned to
/// `driver_id` by an admin, as dispatch would, holding one of `assigning`.
async fn place_order(
    channel: Channel,
    market: Arc<Market>,
    admin: Bearer,
    assigning: Arc<Semaphore>,
    driver_id: String,
) -> anyhow::Result<Placed> {
    let (metadata, _, create) = market.order_request().into_parts();
    let customer = metadata.get("authorization").context("an order request without a bearer")?.clone();
    let restaurant_id = create.restaurant_id.clone();
    let order = with_retries(|| {
        let mut client = OrderServiceClient::new(channel.clone());
        let request = authed(create.clone(), &customer);
        async move { client.create_order(request).await }
    })
    .await
    .context("CreateOrder")?
    .order
    .context("CreateOrder answered no order")?;
    for status in ["accepted", "ready_for_pickup"] {
        with_retries(|| {
            let mut client = RestaurantServiceClient::new(channel.clone());
            let request = authed(
                pb::UpdateOrderStatusRequest {
                    order_id: order.order_id.clone(),
                    status: status.into(),
                    reason: String::new(),
                    prep_time: None,
                },
                &admin,
            );
            async move { client.update_order_status(request).await }
        })
        .await
        .with_context(|| format!("UpdateOrderStatus {status}"))?;
    }
    let _slot = assigning.acquire().await?;
    with_retries(|| {
        let mut client = DispatchServiceClient::new(channel.clone());
        let request = authed(
            pb::AssignDriverRequest {
                order_id: order.order_id.clone(),
                driver_id: driver_id.clone(),
                replace: false,
                reason: "loadgen tracking benchmark".into(),
            },
            &admin,
        );
        async move { client.assign_driver(request).await }
    })
    .await
    .context("AssignDriver")?;
    Ok(Placed { id: order.order_id, customer, restaurant_id })
}

fn authed<T>(message: T, bearer: &Bearer) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.metadata_mut().insert("authorization", bearer.clone());
    request.set_timeout(CALL_TIMEOUT);
    request
}

/// Calls again, after a random pause (so that conflicting callers part),
/// while the server answers `ABORTED`: a serialization conflict its own
/// retries did not get past, nothing done.
async fn with_retries<T, F, Fut>(mut call: F) -> Result<T, Status>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<tonic::Response<T>, Status>>,
{
    let mut attempt = 1;
    loop {
        match call().await {
            Err(status) if status.code() == Code::Aborted && attempt < ATTEMPTS => {
                tokio::time::sleep(Duration::from_millis(fastrand::u64(10..=50) * u64::from(attempt))).await;
                attempt += 1;
            }
            answer => return answer.map(tonic::Response::into_inner),
        }
    }
}

/// Runs `task(i)` for every `i` in `0..count`, at most [`SETUP_CONCURRENCY`]
/// at once, and returns their results in order; stops starting new ones once
/// one failed, and reports progress on stderr.
async fn bounded<T, F, Fut>(count: usize, what: &str, mut task: F) -> anyhow::Result<Vec<T>>
where
    F: FnMut(usize) -> Fut,
    Fut: Future<Output = anyhow::Result<T>> + Send + 'static,
    T: Send + 'static,
{
    let slots = Arc::new(Semaphore::new(SETUP_CONCURRENCY));
    let started = Instant::now();
    let mut reported = started;
    let mut tasks = Vec::with_capacity(count);
    for i in 0..count {
        // Closed when a task failed.
        let Ok(slot) = slots.clone().acquire_owned().await else { break };
        let work = task(i);
        let slots = slots.clone();
        tasks.push(tokio::spawn(async move {
            let result = work.await;
            if result.is_err() {
                slots.close();
            }
            drop(slot);
            result
        }));
        if reported.elapsed() >= PROGRESS_EVERY {
            reported = Instant::now();
            let done = i.saturating_sub(SETUP_CONCURRENCY);
            eprintln!(
                "  about {done} of {count} {what} in {} ({:.0}/s)",
                human(Duration::from_secs(started.elapsed().as_secs())),
                done as f64 / started.elapsed().as_secs_f64()
            );
        }
    }
    let mut results = Vec::with_capacity(count);
    for (i, task) in tasks.into_iter().enumerate() {
        results.push(task.await?.with_context(|| format!("{what}: #{i} failed"))?);
    }
    anyhow::ensure!(results.len() == count, "{what}: stopped after a failure");
    Ok(results)
}
