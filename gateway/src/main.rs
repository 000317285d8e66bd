//! `foodfast-gateway`: grpc-web, REST/JSON and Server-Sent Events in front
//! of a FoodFast gRPC server.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use foodfast_gateway::config::GatewayConfig;
use foodfast_gateway::rest;

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
    tracing_subscriber::fmt().with_env_filter(tracing_subscriber::EnvFilter::new(&config.log.filter)).init();
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
    let tls = config.http.tls_cert.is_some();
    tracing::info!(addr = %listener.local_addr()?, upstream = %config.upstream.url, tls, "foodfast gateway listening");
    rest::serve(config, listener, shutdown()).await?;
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
