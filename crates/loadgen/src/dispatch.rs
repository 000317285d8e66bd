//! The dispatch benchmark (issue 8), in one process on fresh stores:
//! 1. Match latency. Drivers hold Connect streams at random spots of a
//!    generated city; orders are placed beforehand, then confirmed one by one
//!    at a fixed rate. Each is timed from the restaurant's accept call to the
//!    offer arriving on a driver's stream, next to the accept call alone (a
//!    direct gRPC call that commits the confirmation): the baseline. Drivers
//!    never answer; the customer cancels each order once it is offered, so
//!    every driver stays free.
//! 2. Greedy against batch: one generated assignment problem (orders at the
//!    city's restaurants, food ready soon, drivers near them), solved by the
//!    domain's greedy and Hungarian functions with the server's policy;
//!    totals of cost and straight-line pickup distance.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use foodfast_api::v1 as pb;
use foodfast_api::v1::driver_service_client::DriverServiceClient;
use foodfast_api::v1::order_service_client::OrderServiceClient;
use foodfast_api::v1::restaurant_service_client::RestaurantServiceClient;
use foodfast_domain::access::Role;
use foodfast_domain::dispatch::{self, Candidate, DispatchPolicy, Job};
use foodfast_domain::geo::LatLng;
use hdrhistogram::Histogram;
use tokio::sync::{Semaphore, mpsc, oneshot};
use tokio_stream::StreamExt;
use tokio_stream::wrappers::ReceiverStream;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::transport::Channel;
use uuid::Uuid;

use crate::in_process::InProcessServer;
use crate::orders::Market;
use crate::report;

/// Metres per degree of latitude.
const METRES_PER_DEGREE: f64 = 111_195.0;
/// An offer not seen within this counts as a `no offer` error.
const OFFER_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(clap::Args)]
pub struct Args {
    /// Drivers online, each on its own Connect stream.
    #[arg(long, default_value_t = 200)]
    drivers: usize,
    /// Restaurants in the generated city (a grid about 1 km apart).
    #[arg(long, default_value_t = 20)]
    restaurants: usize,
    /// Orders confirmed and timed.
    #[arg(long, default_value_t = 300)]
    orders: usize,
    /// Confirmations per second.
    #[arg(long, default_value_t = 10)]
    rate: u32,
    /// Orders of the greedy-against-batch problem.
    #[arg(long, default_value_t = 100)]
    batch_orders: usize,
    /// Drivers of the greedy-against-batch problem.
    #[arg(long, default_value_t = 150)]
    batch_drivers: usize,
    /// Seed of the generated city.
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

type Bearer = MetadataValue<Ascii>;
/// Who waits for the first offer of which order.
type Waiting = Arc<Mutex<HashMap<String, oneshot::Sender<Instant>>>>;

pub async fn run(args: Args) -> anyhow::Result<()> {
    println!("{}", report::machine());
    fastrand::seed(args.seed);
    let server = InProcessServer::start_with(|config| config.dispatch.enabled = true).await?;
    server.migrate_scylla().await?;
    let policy = server.config.dispatch.policy;
    let market = Market::seed(&server, args.restaurants, 20).await?;
    let admin = server.account(Role::Admin, Role::Admin).await?;
    let waiting: Waiting = Arc::default();
    let restaurants: Vec<(f64, f64)> = market.restaurant_locations().collect();
    for _ in 0..args.drivers {
        let (_, bearer) = server.driver(1).await?;
        let spot = random_spot(restaurants[fastrand::usize(..restaurants.len())], 3_000.0);
        connect_driver(server.channel.clone(), bearer, spot, waiting.clone()).await?;
    }
    println!(
        "{} drivers online, {} restaurants; {} orders confirmed at {}/s",
        args.drivers, args.restaurants, args.orders, args.rate
    );
    let mut placed = Vec::with_capacity(args.orders);
    for _ in 0..args.orders {
        let (metadata, _, create) = market.order_request().into_parts();
        let customer = metadata.get("authorization").context("an order request without a bearer")?.clone();
        let mut client = OrderServiceClient::new(server.channel.clone());
        let order = client.create_order(authed(create, &customer)).await?.into_inner().order.context("no order")?;
        placed.push((order.order_id, customer));
    }

    let accept_calls = Arc::new(Mutex::new(histogram()));
    let matches = Arc::new(Mutex::new(histogram()));
    let missed = Arc::new(Mutex::new(0u64));
    let in_flight = Arc::new(Semaphore::new(64));
    let interval = Duration::from_secs_f64(1.0 / f64::from(args.rate.max(1)));
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(placed.len());
    for (index, (order_id, customer)) in placed.into_iter().enumerate() {
        tokio::time::sleep_until((started + interval * index as u32).into()).await;
        let permit = in_flight.clone().acquire_owned().await?;
        let (channel, admin, waiting) = (server.channel.clone(), admin.clone(), waiting.clone());
        let (accept_calls, matches, missed) = (accept_calls.clone(), matches.clone(), missed.clone());
        tasks.push(tokio::spawn(async move {
            let _permit = permit;
            let (offered, receive) = oneshot::channel();
            lock(&waiting).insert(order_id.clone(), offered);
            let start = Instant::now();
            let mut restaurants = RestaurantServiceClient::new(channel.clone());
            let accept = pb::UpdateOrderStatusRequest {
                order_id: order_id.clone(),
                status: "accepted".into(),
                reason: String::new(),
                prep_time: None,
            };
            restaurants.update_order_status(authed(accept, &admin)).await?;
            record(&accept_calls, start.elapsed());
            match tokio::time::timeout(OFFER_TIMEOUT, receive).await {
                Ok(Ok(at)) => record(&matches, at.saturating_duration_since(start)),
                _ => *lock(&missed) += 1,
            }
            lock(&waiting).remove(&order_id);
            // Cancelled, the order's offer is withdrawn and its driver free again.
            let cancel = pb::CancelOrderRequest { order_id, reason: "benchmark".into() };
            OrderServiceClient::new(channel).cancel_order(authed(cancel, &customer)).await?;
            anyhow::Ok(())
        }));
    }
    for task in tasks {
        task.await??;
    }
    let elapsed = started.elapsed();
    let (accept_calls, matches, missed) = (lock(&accept_calls).clone(), lock(&matches).clone(), *lock(&missed));
    let ms = |h: &Histogram<u64>, q: f64| h.value_at_quantile(q) as f64 / 1000.0;
    println!(
        "\nmatch latency over {:.1} s ({} confirmations, {missed} without an offer in 10 s):",
        elapsed.as_secs_f64(),
        matches.len() + missed
    );
    println!("{:<28} {:>8} {:>8} {:>8} {:>8}", "", "p50 ms", "p90 ms", "p99 ms", "max ms");
    for (name, h) in [("accept call (baseline)", &accept_calls), ("CONFIRMED -> offer sent", &matches)] {
        println!(
            "{name:<28} {:>8.2} {:>8.2} {:>8.2} {:>8.2}",
            ms(h, 0.5),
            ms(h, 0.9),
            ms(h, 0.99),
            h.max() as f64 / 1000.0
        );
    }
    println!(
        "offer / accept call: p50 x{:.1}, p99 x{:.1}",
        ms(&matches, 0.5) / ms(&accept_calls, 0.5),
        ms(&matches, 0.99) / ms(&accept_calls, 0.99)
    );
    server.stop_and_discard().await?;

    compare_greedy_and_batch(&policy, &market, args.batch_orders, args.batch_drivers);
    Ok(())
}

/// Solves one generated problem both ways and prints both totals.
fn compare_greedy_and_batch(policy: &DispatchPolicy, market: &Market, orders: usize, drivers: usize) {
    let restaurants: Vec<(f64, f64)> = market.restaurant_locations().collect();
    let jobs: Vec<Job> = (0..orders)
        .map(|_| {
            let (lat, lng) = restaurants[fastrand::usize(..restaurants.len())];
            Job {
                order_id: Uuid::new_v4(),
                restaurant: LatLng::new(lat, lng).expect("a restaurant in range"),
                food_ready_in: Duration::from_secs(fastrand::u64(0..=600)),
                radius_m: policy.radius_m(0),
            }
        })
        .collect();
    let candidates: Vec<Candidate> = (0..drivers)
        .map(|_| Candidate {
            driver_id: Uuid::new_v4(),
            position: random_spot(restaurants[fastrand::usize(..restaurants.len())], 3_000.0),
            heading_deg: Some(fastrand::f32() * 360.0),
            speed_mps: Some(fastrand::f32() * 10.0),
            acceptance_rate: 0.5 + fastrand::f32() * 0.5,
            active_deliveries: 0,
            capacity: 1,
            since_last_offer: Some(Duration::from_secs(fastrand::u64(0..=900))),
        })
        .collect();
    let started = Instant::now();
    let greedy = dispatch::assign_greedy(policy, &jobs, &candidates);
    let greedy_took = started.elapsed();
    let started = Instant::now();
    let batch = dispatch::assign_batch(policy, &jobs, &candidates, |_, _| true);
    let batch_took = started.elapsed();
    let pickup_km =
        |assignments: &[dispatch::Assignment]| assignments.iter().map(|a| a.score.distance_m).sum::<f64>() / 1000.0;
    println!("\ngreedy against batch: {orders} orders, {drivers} drivers, one generated city, the server's policy");
    println!("{:<8} {:>9} {:>14} {:>16} {:>10}", "", "assigned", "total cost s", "pickup total km", "solve ms");
    for (name, assignments, took) in [("greedy", &greedy, greedy_took), ("batch", &batch, batch_took)] {
        println!(
            "{name:<8} {:>9} {:>14.0} {:>16.1} {:>10.2}",
            assignments.len(),
            dispatch::total_cost(assignments) as f64 / 1000.0,
            pickup_km(assignments),
            took.as_secs_f64() * 1000.0
        );
    }
    println!(
        "batch / greedy: total cost x{:.2}, pickup distance x{:.2}",
        dispatch::total_cost(&batch) as f64 / dispatch::total_cost(&greedy).max(1) as f64,
        pickup_km(&batch) / pickup_km(&greedy).max(f64::MIN_POSITIVE)
    );
}

/// A driver's app: hello, one ping at `spot`, then it only listens, telling
/// `waiting` when the first offer of an order arrives.
async fn connect_driver(channel: Channel, bearer: Bearer, spot: LatLng, waiting: Waiting) -> anyhow::Result<()> {
    let (sender, receiver) = mpsc::channel(4);
    let hello = pb::Hello { app_version: "loadgen".into(), availability: pb::DriverAvailability::Online as i32 };
    let now = chrono::Utc::now();
    let ping = pb::LocationPing {
        seq: 1,
        lat: spot.lat,
        lng: spot.lng,
        recorded_at: Some(prost_types::Timestamp { seconds: now.timestamp(), nanos: 0 }),
        ..Default::default()
    };
    for payload in [pb::connect_request::Payload::Hello(hello), pb::connect_request::Payload::Ping(ping)] {
        sender.send(pb::ConnectRequest { payload: Some(payload) }).await?;
    }
    let mut client = DriverServiceClient::new(channel);
    let mut responses = client.connect(authed(ReceiverStream::new(receiver), &bearer)).await?.into_inner();
    tokio::spawn(async move {
        // Held so that the stream stays open.
        let _sender = sender;
        while let Some(Ok(message)) = responses.next().await {
            if let Some(pb::connect_response::Payload::Offer(offer)) = message.payload
                && let Some(waiter) = lock(&waiting).remove(&offer.order_id)
            {
                let _ = waiter.send(Instant::now());
            }
        }
    });
    Ok(())
}

/// A random point up to `radius_m` north or south and east or west of `(lat, lng)`.
fn random_spot((lat, lng): (f64, f64), radius_m: f64) -> LatLng {
    let (north, east) = ((fastrand::f64() * 2.0 - 1.0) * radius_m, (fastrand::f64() * 2.0 - 1.0) * radius_m);
    let lng_scale = METRES_PER_DEGREE * lat.to_radians().cos();
    LatLng::new(lat + north / METRES_PER_DEGREE, lng + east / lng_scale).expect("a point near Paris")
}

fn authed<T>(message: T, bearer: &Bearer) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.metadata_mut().insert("authorization", bearer.clone());
    request
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid histogram bounds")
}

fn record(histogram: &Mutex<Histogram<u64>>, latency: Duration) {
    lock(histogram).saturating_record(latency.as_micros() as u64);
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}
