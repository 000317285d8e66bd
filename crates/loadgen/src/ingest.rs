//! `ingest`: the driver-location benchmark. At one fixed ping rate, spread
//! over the same number of Connect streams (the same client), it measures
//! (a) a bare tonic bidi echo of the same messages, (c) FoodFast's Connect
//! path on real stores (the live path: pings the server takes; the durable
//! path: pings acked as written), and then (b) the two prepared INSERTs the
//! location writer runs per point, bare, with as many points in flight as
//! there are streams. Then the ratios issue 4 aims at.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use clap::builder::RangedU64ValueParser;
use foodfast_domain::access::Role;
use foodfast_store::locations::bucket_of;
use foodfast_store::scylla::Scylla;
use foodfast_store::sql::cql;
use scylla::value::MaybeUnset;
use uuid::Uuid;

use crate::drivers::{Fleet, Schedule};
use crate::echo::EchoServer;
use crate::in_process::{InProcessServer, discard, human};
use crate::open_loop::{self, Load, Outcome};
use crate::report;

/// The location writer's default partitions per city and day.
const BUCKETS: u16 = 16;
const DURABLE_AIM: f64 = 0.70;
const LIVE_AIM: f64 = 0.50;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Pings per second over all streams; also the bare inserts' points per
    /// second. 0: each as fast as it can (closed loop: a stream keeps up to
    /// 64 pings unacked, the inserts `concurrency` points in flight).
    #[arg(long, default_value_t = 2000, value_parser = RangedU64ValueParser::<u32>::new().range(0..))]
    rate: u32,
    /// How long each measured part runs.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    duration: Duration,
    /// Load before each measured part, at the same rate, not recorded.
    #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
    warmup: Duration,
    /// Connect streams (one simulated driver each), and points in flight of
    /// the bare inserts.
    #[arg(long, default_value_t = 100, value_parser = RangedU64ValueParser::<usize>::new().range(1..))]
    concurrency: usize,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let machine = report::machine();
    let streams = args.concurrency;
    let schedule = Schedule { hz: f64::from(args.rate) / streams as f64, warmup: args.warmup, duration: args.duration };
    anyhow::ensure!(schedule.hz <= 1000.0, "at most 1000 pings/s per stream: raise --concurrency");
    let server = InProcessServer::start().await?;
    server.migrate_scylla().await?;
    let mut bearers = Vec::with_capacity(streams);
    for _ in 0..streams {
        bearers.push(Some(server.account(Role::Driver, Role::Driver).await?));
    }
    let pace = if args.rate == 0 { "as fast as possible".to_string() } else { format!("{}/s", args.rate) };
    let plan =
        format!("{pace} over {streams} streams, {} warm-up, {} measured", human(args.warmup), human(args.duration));

    eprintln!("(a) bare tonic bidi echo: {plan}");
    let echo_server = EchoServer::start().await?;
    let echo = Fleet::open(&echo_server.url, vec![None; streams]).await?.drive(&schedule).await?;
    drop(echo_server);

    eprintln!("(c) FoodFast Connect with storage on: {plan}");
    let connect = Fleet::open(&server.url, bearers).await?.drive(&schedule).await?;
    let peak_rss = report::peak_rss();

    let database_url = server.config.stores.postgres.url.clone();
    let stores = server.stop().await?;
    eprintln!("(b) bare prepared INSERTs, two per point: {pace}, at most {streams} points in flight");
    let load = Load { rate: args.rate, duration: args.duration, warmup: args.warmup, concurrency: streams };
    let insert = bare_inserts(&stores.scylla, &load).await?;
    discard(stores, &database_url).await?;

    println!("{machine}");
    let per_stream = if args.rate == 0 {
        format!("closed loop, at most {} unacked pings each", crate::drivers::WINDOW)
    } else {
        format!("{:.1} pings/s each", schedule.hz)
    };
    println!(
        "settings: rate {pace}, warm-up {}, duration {}, concurrency {streams} ({} streams per connection, \
         {per_stream}), one process (servers, load); peak RSS {peak_rss}",
        human(args.warmup),
        human(args.duration),
        crate::drivers::STREAMS_PER_CONNECTION,
    );
    report::print_table(
        args.rate,
        &[
            ("(a) echo", &echo.durable),
            ("(b) INSERTs", &insert),
            ("(c) live", &connect.accepted),
            ("(c) durable", &connect.durable),
        ],
    );
    println!("latency: (a) and (c) durable from a ping's scheduled send to the ack covering it; (c) live from");
    println!("its scheduled send until the stream took it; (b) from a point's scheduled start to both INSERTs done");
    report::print_ratios(("(c) durable", &connect.durable), ("(b) INSERTs", &insert));
    report::print_ratios(("(c) live", &connect.accepted), ("(a) echo", &echo.durable));
    aim("durable ingest vs bare INSERTs", &connect.durable, &insert, DURABLE_AIM);
    aim("live path vs bare echo", &connect.accepted, &echo.durable, LIVE_AIM);
    Ok(())
}

/// One line on whether `ours` reached `share` of `baseline`'s throughput.
fn aim(what: &str, ours: &Outcome, baseline: &Outcome, share: f64) {
    let ratio = ours.throughput() / baseline.throughput();
    let verdict = if !ours.errors.is_empty() {
        "MISSED (pings rejected or unacked)"
    } else if ratio >= share {
        "met"
    } else {
        "MISSED"
    };
    println!("AIM {what} >= {:.0}% of throughput: {:.0}%, {verdict}", share * 100.0, ratio * 100.0);
}

/// The baseline of the durable path: per point, the same two prepared
/// INSERTs as the location writer, joined, on the same session and keyspace.
async fn bare_inserts(scylla: &Scylla, load: &Load) -> anyhow::Result<Outcome> {
    let session = scylla.session();
    let by_city = Arc::new(session.prepare(cql::insert_location_by_city(scylla.keyspace())).await?);
    let track = Arc::new(session.prepare(cql::insert_driver_track(scylla.keyspace())).await?);
    let drivers: Arc<Vec<Uuid>> = Arc::new((0..load.concurrency).map(|_| Uuid::new_v4()).collect());
    let next = AtomicU64::new(0);
    let scylla = scylla.clone();
    let call = move || {
        let (scylla, by_city, track, drivers) = (scylla.clone(), by_city.clone(), track.clone(), drivers.clone());
        let seq = next.fetch_add(1, Ordering::Relaxed) + 1;
        async move {
            let driver_id = drivers[seq as usize % drivers.len()];
            let now = chrono::Utc::now();
            let day = now.date_naive();
            let (lat, lng) = (48.85 + fastrand::f64() * 0.01, 2.35 + fastrand::f64() * 0.01);
            let (accuracy, speed, heading) =
                (MaybeUnset::Set(5.0_f32), MaybeUnset::Set(8.0_f32), MaybeUnset::Set(90.0_f32));
            let city = "paris";
            let seq = seq as i64;
            let bucket = bucket_of(driver_id, BUCKETS);
            let by_city_values = (city, day, bucket, driver_id, now, seq, lat, lng, accuracy, speed, heading, now);
            let track_values = (driver_id, day, now, seq, city, lat, lng, accuracy, speed, heading);
            let session = scylla.session();
            let (a, b) = tokio::join!(
                session.execute_unpaged(&by_city, by_city_values),
                session.execute_unpaged(&track, track_values)
            );
            a.and(b).map(drop).map_err(|err| err.to_string().split(':').next().unwrap_or_default().to_string())
        }
    };
    Ok(if load.rate == 0 { open_loop::run_closed(load, call).await } else { open_loop::run(load, call).await })
}
