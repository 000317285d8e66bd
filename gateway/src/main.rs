//! `foodfast-gateway`: grpc-web, REST/JSON and Server-Sent Events in front
//! of a FoodFast gRPC server.

use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::process::ExitCode;

use clap::Parser;
use foodfast_gateway::limits::{Limits, LimitsConfig};
use foodfast_gateway::rest::{self, Rest};
use foodfast_gateway::routes::RouteTable;
use foodfast_gateway::upstream::Upstream;

#[derive(Parser)]
#[command(name = "foodfast-gateway", version, about = "grpc-web, REST/JSON and SSE in front of FoodFast")]
struct Cli {
    /// Where browsers and HTTP clients connect.
    #[arg(long, env = "FOODFAST_GATEWAY_ADDR", default_value = "127.0.0.1:8080")]
    listen_addr: SocketAddr,
    /// The FoodFast gRPC server (one HTTP/2 connection, multiplexed).
    #[arg(long, env = "FOODFAST_GATEWAY_UPSTREAM", default_value = "http://127.0.0.1:50051")]
    upstream: String,
    /// Largest request body accepted; larger ones get 413.
    #[arg(long, env = "FOODFAST_GATEWAY_MAX_BODY_BYTES", default_value_t = 1024 * 1024)]
    max_body_bytes: usize,
    /// Requests per second from one client IP (bursts of twice as many).
    #[arg(long, env = "FOODFAST_GATEWAY_RATE_PER_IP", default_value = "50")]
    rate_per_ip: NonZeroU32,
    /// Requests per second from one caller (bearer token; bursts of twice as many).
    #[arg(long, env = "FOODFAST_GATEWAY_RATE_PER_CALLER", default_value = "20")]
    rate_per_caller: NonZeroU32,
    /// Orders one caller may place per minute.
    #[arg(long, env = "FOODFAST_GATEWAY_ORDERS_PER_MINUTE", default_value = "10")]
    orders_per_minute: NonZeroU32,
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt().with_env_filter(tracing_subscriber::EnvFilter::from_env("FOODFAST_LOG")).init();
    let cli = Cli::parse();
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("foodfast-gateway: {err:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let routes = RouteTable::from_descriptor_set(foodfast_api::FILE_DESCRIPTOR_SET)?;
    let channel = tonic::transport::Channel::from_shared(cli.upstream.clone())
        .map_err(|err| anyhow::anyhow!("FOODFAST_GATEWAY_UPSTREAM {:?}: {err}", cli.upstream))?
        .connect_lazy();
    let limits = LimitsConfig {
        per_ip_per_second: cli.rate_per_ip,
        per_ip_burst: cli.rate_per_ip.saturating_mul(NonZeroU32::new(2).expect("2 > 0")),
        per_caller_per_second: cli.rate_per_caller,
        per_caller_burst: cli.rate_per_caller.saturating_mul(NonZeroU32::new(2).expect("2 > 0")),
        orders_per_minute: cli.orders_per_minute,
        orders_burst: cli.orders_per_minute.min(NonZeroU32::new(5).expect("5 > 0")),
    };
    let rest = Rest {
        routes,
        upstream: Upstream::new(channel.clone()),
        channel,
        max_body_bytes: cli.max_body_bytes,
        limits: Limits::new(limits),
    };
    let listener = tokio::net::TcpListener::bind(cli.listen_addr).await?;
    tracing::info!(addr = %listener.local_addr()?, upstream = %cli.upstream, "foodfast gateway listening");
    rest::serve(listener, rest, shutdown()).await?;
    tracing::info!("foodfast gateway stopped");
    Ok(())
}

/// SIGTERM or Ctrl-C.
async fn shutdown() {
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("installing a SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate.recv() => {}
    }
}
