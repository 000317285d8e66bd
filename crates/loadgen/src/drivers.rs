//! `drivers`: N simulated drivers, each pinging at R Hz on its own
//! `DriverService/Connect` stream (about 100 streams per HTTP/2 connection),
//! against the real server in this process on fresh stores. A ping's latency
//! runs from its scheduled send time to the first ack whose `durable_seq`
//! covers it.

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use anyhow::Context;
use clap::builder::RangedU64ValueParser;
use foodfast_api::v1 as pb;
use foodfast_api::v1::driver_service_client::DriverServiceClient;
use foodfast_domain::access::Role;
use hdrhistogram::Histogram;
use tokio::sync::mpsc;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_stream::StreamExt;
use tokio_stream::wrappers::ReceiverStream;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::transport::Channel;

use crate::in_process::{InProcessServer, human};
use crate::open_loop::Outcome;
use crate::report;

/// Streams that share one HTTP/2 connection.
pub const STREAMS_PER_CONNECTION: usize = 100;
/// Sent pings whose ack is awaited, per driver; older ones count as `unacked`.
const RING: usize = 4096;
/// Pings buffered on the client side of a stream: small, so that a server
/// that stops reading holds the sender back.
const SEND_BUFFER: usize = 8;
/// How long a driver waits, after its last ping, for the ack covering it.
const DRAIN: Duration = Duration::from_secs(10);
/// Unacked pings per stream when the drivers ping as fast as they can.
pub const WINDOW: u64 = 64;
/// From [`Fleet::drive`] being called to the first ping: time to spawn the drivers.
pub const START_DELAY: Duration = Duration::from_millis(100);
/// Where the drivers start: well inside the Paris zone (48.70..49.05,
/// 2.05..2.65), so that a run of some minutes never leaves it.
const START_LAT: (f64, f64) = (48.80, 48.95);
const START_LNG: (f64, f64) = (2.20, 2.50);
const METRES_PER_DEGREE_LAT: f64 = 111_195.0;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Simulated drivers, one Connect stream each.
    #[arg(long, default_value_t = 1000, value_parser = RangedU64ValueParser::<usize>::new().range(1..))]
    drivers: usize,
    /// Pings per second of each driver.
    #[arg(long, default_value_t = 1.0)]
    hz: f64,
    /// How long the measured part runs.
    #[arg(long, default_value = "20s", value_parser = humantime::parse_duration)]
    duration: Duration,
    /// Pings before the measured part, at the same rate, not recorded.
    #[arg(long, default_value = "3s", value_parser = humantime::parse_duration)]
    warmup: Duration,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    anyhow::ensure!(args.hz > 0.0 && args.hz <= 1000.0, "--hz must be above 0 and at most 1000");
    let machine = report::machine();
    let server = InProcessServer::start().await?;
    server.migrate_scylla().await?;
    eprintln!("creating {} drivers", args.drivers);
    let mut fleet = Fleet::connect(&server, args.drivers).await?;
    let schedule = Schedule { hz: args.hz, warmup: args.warmup, duration: args.duration };
    eprintln!(
        "{} drivers at {} Hz: {} warm-up, then {} measured",
        args.drivers,
        args.hz,
        human(args.warmup),
        human(args.duration)
    );
    let pings = fleet.drive(&schedule).await?;
    drop(fleet);
    let peak_rss = report::peak_rss();

    server.stop_and_discard().await?;

    println!("{machine}");
    println!(
        "settings: {} drivers at {} Hz ({:.0} pings/s), warm-up {}, duration {}, {} streams per connection, \
         one process (server, load)",
        args.drivers,
        args.hz,
        args.hz * args.drivers as f64,
        human(args.warmup),
        human(args.duration),
        STREAMS_PER_CONNECTION,
    );
    let rate = (args.hz * args.drivers as f64).round() as u32;
    report::print_table(rate, &[("accepted", &pings.accepted), ("durable ack", &pings.durable)]);
    println!(
        "latency: accepted from a ping's scheduled send until the stream took it; durable ack until the ack covering it"
    );
    println!("accepted pings/s {:.1}", pings.accepted.throughput());
    println!("rows/s reaching the store {:.1} (two per durable ping)", 2.0 * pings.durable.throughput());
    println!("rejected pings: {}", report::errors(&pings.accepted));
    println!("peak RSS (VmHWM, server and load in one process): {peak_rss}");
    Ok(())
}

/// When and how fast the drivers ping.
pub struct Schedule {
    /// Pings per second of each driver; 0: as fast as it can (closed loop),
    /// with at most [`WINDOW`] pings not yet acked.
    pub hz: f64,
    pub warmup: Duration,
    pub duration: Duration,
}

/// What the measured pings of a whole fleet did.
pub struct Pings {
    /// Pings the server took (sent, not rejected), done once the stream took
    /// them; errors are rejections by reason, and streams that failed (one
    /// each, as `stream <how>`).
    pub accepted: Outcome,
    /// Pings acked as durable, with their ack latency; errors are pings
    /// never acked (`unacked`), rejections and failed streams.
    pub durable: Outcome,
}

/// Connected drivers, each with a stream that has been welcomed.
pub struct Fleet {
    drivers: Vec<Driver>,
}

struct Driver {
    sender: mpsc::Sender<pb::ConnectRequest>,
    responses: tonic::Streaming<pb::ConnectResponse>,
}

impl Fleet {
    /// `count` new driver accounts on the real server, connected.
    pub async fn connect(server: &InProcessServer, count: usize) -> anyhow::Result<Self> {
        let mut bearers = Vec::with_capacity(count);
        for _ in 0..count {
            bearers.push(Some(server.account(Role::Driver, Role::Driver).await?));
        }
        Self::open(&server.url, bearers).await
    }

    /// One stream per bearer (`None`: no credentials) to `url`, about
    /// [`STREAMS_PER_CONNECTION`] per HTTP/2 connection.
    pub async fn open(url: &str, bearers: Vec<Option<MetadataValue<Ascii>>>) -> anyhow::Result<Self> {
        let mut drivers = Vec::with_capacity(bearers.len());
        for group in bearers.chunks(STREAMS_PER_CONNECTION) {
            let channel = Channel::from_shared(url.to_string())?.connect().await?;
            for bearer in group {
                drivers.push(Driver::connect(channel.clone(), bearer.clone()).await?);
            }
        }
        Ok(Self { drivers })
    }

    /// Every driver pings on `schedule`, then waits for its last ack. The
    /// streams stay open until the fleet is dropped.
    pub async fn drive(&mut self, schedule: &Schedule) -> anyhow::Result<Pings> {
        let start = Instant::now() + START_DELAY;
        let count = self.drivers.len();
        let tasks: Vec<_> = std::mem::take(&mut self.drivers)
            .into_iter()
            .enumerate()
            .map(|(index, mut driver)| {
                // Spread the drivers' first pings over one period.
                let offset = if schedule.hz > 0.0 {
                    Duration::from_secs_f64(index as f64 / count as f64 / schedule.hz)
                } else {
                    Duration::ZERO
                };
                let plan = Plan::new(start + offset, start + schedule.warmup, schedule);
                tokio::spawn(async move {
                    let tally = driver.run(plan).await;
                    (driver, tally)
                })
            })
            .collect();
        let measured_from = start + schedule.warmup;
        let mut pings = Pings { accepted: outcome(), durable: outcome() };
        for task in tasks {
            let (driver, tally) = task.await?;
            self.drivers.push(driver);
            for outcome in [&mut pings.accepted, &mut pings.durable] {
                for (reason, count) in &tally.rejected {
                    *outcome.errors.entry(reason.clone()).or_default() += count;
                }
            }
            pings.accepted.ok += tally.sent - tally.rejected.values().sum::<u64>();
            pings.accepted.latency.add(&tally.send_latency)?;
            pings.accepted.elapsed =
                pings.accepted.elapsed.max(tally.last_sent.saturating_duration_since(measured_from));
            pings.durable.ok += tally.latency.len();
            pings.durable.latency.add(&tally.latency)?;
            pings.durable.elapsed =
                pings.durable.elapsed.max(tally.last_acked.saturating_duration_since(measured_from));
            if tally.unacked > 0 {
                *pings.durable.errors.entry("unacked".into()).or_default() += tally.unacked;
            }
            if let Some(failed) = tally.failed {
                for outcome in [&mut pings.accepted, &mut pings.durable] {
                    *outcome.errors.entry(failed.clone()).or_default() += 1;
                }
            }
        }
        Ok(pings)
    }
}

fn outcome() -> Outcome {
    Outcome { ok: 0, errors: BTreeMap::new(), latency: histogram(), elapsed: Duration::ZERO }
}

/// Microseconds, up to a minute.
fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid bounds")
}

/// One driver's pings: when they are due and where it is meanwhile, on a
/// straight line at a steady speed.
struct Plan {
    first: Instant,
    measured_from: Instant,
    /// After this, no more pings go.
    end: Instant,
    /// `None`: closed loop.
    period: Option<Duration>,
    from: (f64, f64),
    /// Degrees per second, north and east.
    velocity: (f64, f64),
    speed_mps: f32,
    heading_deg: f32,
}

impl Plan {
    fn new(first: Instant, measured_from: Instant, schedule: &Schedule) -> Self {
        let speed_mps = 5.0 + fastrand::f64() * 10.0;
        let heading_deg = fastrand::f64() * 360.0;
        let (north, east) = (heading_deg.to_radians().cos(), heading_deg.to_radians().sin());
        let lat = START_LAT.0 + fastrand::f64() * (START_LAT.1 - START_LAT.0);
        let lng = START_LNG.0 + fastrand::f64() * (START_LNG.1 - START_LNG.0);
        let metres_per_degree_lng = METRES_PER_DEGREE_LAT * lat.to_radians().cos();
        Self {
            first,
            measured_from,
            end: measured_from + schedule.duration,
            period: (schedule.hz > 0.0).then(|| Duration::from_secs_f64(1.0 / schedule.hz)),
            from: (lat, lng),
            velocity: (speed_mps * north / METRES_PER_DEGREE_LAT, speed_mps * east / metres_per_degree_lng),
            speed_mps: speed_mps as f32,
            heading_deg: heading_deg as f32,
        }
    }

    /// Ping `seq` (from 1), taken at `recorded_at` on the device's clock,
    /// `moving` seconds after the first.
    fn ping(&self, seq: u64, moving: f64, recorded_at: chrono::DateTime<chrono::Utc>) -> pb::ConnectRequest {
        let ping = pb::LocationPing {
            seq,
            lat: self.from.0 + self.velocity.0 * moving,
            lng: self.from.1 + self.velocity.1 * moving,
            accuracy_m: Some(5.0),
            speed_mps: Some(self.speed_mps),
            heading_deg: Some(self.heading_deg),
            recorded_at: Some(prost_types::Timestamp {
                seconds: recorded_at.timestamp(),
                nanos: recorded_at.timestamp_subsec_nanos() as i32,
            }),
        };
        pb::ConnectRequest { payload: Some(pb::connect_request::Payload::Ping(ping)) }
    }
}

/// What one driver's measured pings did.
struct Tally {
    sent: u64,
    rejected: BTreeMap<String, u64>,
    unacked: u64,
    /// How the stream failed, if it did: the driver stopped there, and the
    /// run goes on with the others.
    failed: Option<String>,
    /// From a ping's scheduled send until the stream took it.
    send_latency: Histogram<u64>,
    /// From a ping's scheduled send until the ack covering it.
    latency: Histogram<u64>,
    last_sent: Instant,
    last_acked: Instant,
}

impl Driver {
    async fn connect(channel: Channel, bearer: Option<MetadataValue<Ascii>>) -> anyhow::Result<Self> {
        let (sender, receiver) = mpsc::channel(SEND_BUFFER);
        let hello = pb::Hello { app_version: "loadgen".into(), availability: pb::DriverAvailability::Online as i32 };
        sender.send(pb::ConnectRequest { payload: Some(pb::connect_request::Payload::Hello(hello)) }).await?;
        let mut request = tonic::Request::new(ReceiverStream::new(receiver));
        if let Some(bearer) = bearer {
            request.metadata_mut().insert("authorization", bearer);
        }
        let mut responses = DriverServiceClient::new(channel).connect(request).await?.into_inner();
        match responses.next().await.context("the stream ended before `welcome`")??.payload {
            Some(pb::connect_response::Payload::Welcome(_)) => Ok(Self { sender, responses }),
            other => anyhow::bail!("expected `welcome`, got {other:?}"),
        }
    }

    /// Sends the planned pings on time (open loop: a late one goes as soon as
    /// it can, and its lateness counts), or back to back within [`WINDOW`]
    /// (closed loop), reading acks meanwhile; then waits up to [`DRAIN`] for
    /// the ack covering the last. A stream that fails ends the driver there,
    /// noted in its tally, so that one lost stream does not end the run.
    async fn run(&mut self, plan: Plan) -> Tally {
        let mut ticker = plan.period.map(|period| {
            let mut ticker = tokio::time::interval_at(plan.first, period);
            ticker.set_missed_tick_behavior(MissedTickBehavior::Burst);
            ticker
        });
        let mut tally = Tally {
            sent: 0,
            rejected: BTreeMap::new(),
            unacked: 0,
            failed: None,
            send_latency: histogram(),
            latency: histogram(),
            last_sent: plan.first,
            last_acked: plan.first,
        };
        // Sent, measured, unacked pings: seq and scheduled time, oldest first.
        let mut ring: VecDeque<(u64, Instant)> = VecDeque::new();
        let started = chrono::Utc::now();
        let mut last_recorded = started - chrono::TimeDelta::milliseconds(1);
        let mut seq = 0;
        let mut durable = 0;
        let mut sending = true;
        let drain = tokio::time::sleep_until(plan.end + DRAIN);
        tokio::pin!(drain);
        loop {
            let window_open = ticker.is_some() || seq - durable < WINDOW;
            tokio::select! {
                scheduled = next_send(ticker.as_mut()), if sending && window_open => {
                    if scheduled >= plan.end {
                        sending = false;
                        if durable >= seq {
                            break;
                        }
                        continue;
                    }
                    seq += 1;
                    // One row per driver and millisecond: strictly increasing.
                    let recorded_at = chrono::Utc::now().max(last_recorded + chrono::TimeDelta::milliseconds(1));
                    last_recorded = recorded_at;
                    let moving = (recorded_at - started).as_seconds_f64();
                    if self.sender.send(plan.ping(seq, moving, recorded_at)).await.is_err() {
                        tally.failed = Some("stream closed".into());
                        break;
                    }
                    if scheduled >= plan.measured_from {
                        tally.sent += 1;
                        tally.last_sent = Instant::now();
                        tally.send_latency.saturating_record((tally.last_sent - scheduled).as_micros() as u64);
                        if ring.len() == RING {
                            ring.pop_front();
                            tally.unacked += 1;
                        }
                        ring.push_back((seq, scheduled));
                    }
                }
                response = self.responses.next() => {
                    let response = match response {
                        Some(Ok(response)) => response,
                        Some(Err(status)) => {
                            tally.failed = Some(format!("stream {:?}", status.code()));
                            break;
                        }
                        None => {
                            tally.failed = Some("stream ended".into());
                            break;
                        }
                    };
                    let Some(pb::connect_response::Payload::Ack(ack)) = response.payload else {
                        continue;
                    };
                    let now = Instant::now();
                    for rejected in ack.rejected {
                        if let Some(at) = ring.iter().position(|&(seq, _)| seq == rejected.seq) {
                            ring.remove(at);
                            *tally.rejected.entry(reason(rejected.reason)).or_default() += 1;
                        }
                    }
                    durable = durable.max(ack.durable_seq);
                    while ring.front().is_some_and(|&(seq, _)| seq <= durable) {
                        let (_, scheduled) = ring.pop_front().expect("checked");
                        tally.latency.saturating_record((now - scheduled).as_micros() as u64);
                        tally.last_acked = now;
                    }
                    if !sending && durable >= seq {
                        break;
                    }
                }
                _ = &mut drain => break,
            }
        }
        tally.unacked += ring.len() as u64;
        tally
    }
}

/// When the next ping is due: the next tick, or now in a closed loop.
async fn next_send(ticker: Option<&mut tokio::time::Interval>) -> Instant {
    match ticker {
        Some(ticker) => ticker.tick().await,
        None => Instant::now(),
    }
}

fn reason(code: i32) -> String {
    pb::PingRejectionReason::try_from(code).map_or_else(|_| format!("reason {code}"), |r| r.as_str_name().into())
}
