//! `foodfast-gateway`: grpc-web, REST/JSON and Server-Sent Events in front
//! of a FoodFast gRPC server.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use foodfast_gateway::config::GatewayConfig;
use foodfast_gateway::rest;
use foodfast_telemetry::LogSettings;
use foodfast_telemetry::admin::ReadinessCheck;
use tokio_util::sync::CancellationToken;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

#[derive(Parser)]
#[command(name = "foodfast-gateway", version, about = "grpc-web, REST/JSON and SSE in front of FoodFast")]
struct Cli {
    /// A TOML configuration file (else `FOODFAST_GATEWAY_CONFIG`, if set).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Where browsers and HTTP clients connect (overrides FOODFAST_GATEWAY_ADDR).
    #[arg(long)]
    listen_addr: Option<SocketAddr>,
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let env: BTreeMap<String, String> = std::env::vars().collect();
    let config = match GatewayConfig::load(cli.config.as_deref(), &env, cli.listen_addr) {
        Ok(config) => config,
        Err(err) => {
            eprintln!("foodfast-gateway: configuration: {err}");
            return ExitCode::from(2);
        }
    };
    let logs = LogSettings { filter: &config.log.filter, json: false };
    // Dropped last, so the final spans are flushed.
    let _telemetry = match foodfast_telemetry::init("foodfast-gateway", &logs, &config.traces) {
        Ok(telemetry) => telemetry,
        Err(err) => {
            eprintln!("foodfast-gateway: {err}");
            return ExitCode::FAILURE;
        }
    };
    match run(&config).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("foodfast-gateway: {err:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(config: &GatewayConfig) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(config.http.listen_addr).await?;
    let admin = serve_admin(config).await?;
    let tls = config.http.tls_cert.is_some();
    tracing::info!(addr = %listener.local_addr()?, upstream = %config.upstream.url, tls, "foodfast gateway listening");
    let served = rest::serve(config, listener, shutdown()).await;
    admin.cancel();
    served?;
    tracing::info!("foodfast gateway stopped");
    Ok(())
}

/// How long `/readyz` waits for the server's health answer.
const READINESS_TIMEOUT: Duration = Duration::from_secs(2);

/// `/metrics`, `/livez`, and `/readyz`: ready while the server reports
/// SERVING, so that a load balancer stops sending requests that could only
/// fail.
async fn serve_admin(config: &GatewayConfig) -> anyhow::Result<CancellationToken> {
    let health = HealthClient::new(rest::upstream_channel(config)?);
    let readiness: ReadinessCheck = Arc::new(move || {
        let mut health = health.clone();
        Box::pin(async move {
            let check = health.check(HealthCheckRequest { service: String::new() });
            match tokio::time::timeout(READINESS_TIMEOUT, check).await {
                Ok(Ok(answer)) => answer.into_inner().status == ServingStatus::Serving as i32,
                _ => false,
            }
        })
    });
    let admin = foodfast_telemetry::admin::start(config.admin.listen_addr, Some(readiness)).await?;
    foodfast_gateway::telemetry::describe_metrics();
    Ok(admin)
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
