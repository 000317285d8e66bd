//! `foodfast-loadgen`: benchmarks that run FoodFast in this process, on the
//! development services, and print its latency next to a baseline measured
//! in the same run on the same machine. One subcommand per workload.

mod dispatch;
mod drivers;
mod echo;
mod gateway;
mod in_process;
mod ingest;
mod open_loop;
mod orders;
mod relay;
mod report;
mod simulate;
mod tracking;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "foodfast-loadgen", version, about)]
struct Cli {
    #[command(subcommand)]
    mode: Mode,
}

#[derive(Subcommand)]
enum Mode {
    /// CreateOrder at a fixed rate against an in-process server, then a bare
    /// single-row INSERT at the same rate on the same database.
    Orders(orders::Args),
    /// N drivers pinging at R Hz over real Connect streams against an
    /// in-process server: accepted pings/s, ack latency, rows/s, rejections,
    /// peak RSS.
    Drivers(drivers::Args),
    /// The ingest benchmark: at one ping rate and concurrency, a bare tonic
    /// echo, bare prepared INSERTs and the real Connect path, with ratios.
    Ingest(ingest::Args),
    /// Order tracking: D drivers pinging while S TrackOrder streams watch
    /// their orders; ping-to-screen latency, delivered updates/s and RSS per
    /// 1,000 streams, next to a bare tonic relay of the same load.
    Tracking(tracking::Args),
    /// The REST gateway: GetOrder as `GET /api/v1/orders/{id}` through the
    /// gateway next to the same call over gRPC directly, closed loop, with
    /// the same callers: throughput, latency and their ratios.
    Gateway(gateway::Args),
    /// Dispatch: CONFIRMED -> offer latency over real Connect streams next to
    /// the accept call alone, then greedy against batch on a generated city.
    Dispatch(dispatch::Args),
    /// The demo city in motion against a running server (`make run`): seeded
    /// drivers, customers and restaurant staff over the real gRPC API.
    Simulate(simulate::Args),
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // Only warnings: the server's per-request logs would cost time in the run.
    let filter = tracing_subscriber::EnvFilter::try_from_env("FOODFAST_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).init();
    match Cli::parse().mode {
        Mode::Orders(args) => orders::run(args).await,
        Mode::Drivers(args) => drivers::run(args).await,
        Mode::Ingest(args) => ingest::run(args).await,
        Mode::Tracking(args) => tracking::run(args).await,
        Mode::Gateway(args) => gateway::run(args).await,
        Mode::Dispatch(args) => dispatch::run(args).await,
        Mode::Simulate(args) => simulate::run(args).await,
    }
}
