//! `foodfast-gateway`: grpc-web, REST/JSON and Server-Sent Events in front
//! of a FoodFast gRPC server.

use std::net::SocketAddr;
use std::process::ExitCode;

use clap::Parser;
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
    let app = rest::router(Rest {
        routes,
        upstream: Upstream::new(channel.clone()),
        channel,
        max_body_bytes: cli.max_body_bytes,
    });
    let listener = tokio::net::TcpListener::bind(cli.listen_addr).await?;
    tracing::info!(addr = %listener.local_addr()?, upstream = %cli.upstream, "foodfast gateway listening");
    axum::serve(listener, app).with_graceful_shutdown(shutdown()).await?;
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
