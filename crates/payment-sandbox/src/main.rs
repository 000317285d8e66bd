//! `foodfast-payment-sandbox`: the demo payment provider that `make run` starts.

use std::net::SocketAddr;

use anyhow::Context;
use clap::Parser;
use foodfast_payment_sandbox::{Sandbox, SandboxConfig};
use tokio::signal::unix::{SignalKind, signal};

/// A stand-in for a Stripe-like card payment provider (see the crate documentation
/// for its test payment methods).
#[derive(Parser)]
#[command(version)]
struct Args {
    #[arg(long, default_value = "127.0.0.1:8099")]
    listen: SocketAddr,
    /// The key clients must send as `Authorization: Bearer <key>`.
    #[arg(long, env = "FOODFAST_SANDBOX_API_KEY", default_value = "sk_test_sandbox")]
    api_key: String,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let config = SandboxConfig { api_key: args.api_key, ..SandboxConfig::default() };
    let sandbox =
        Sandbox::start_with(args.listen, config).await.with_context(|| format!("cannot listen on {}", args.listen))?;
    println!("payment sandbox listening on {}", sandbox.base_url());

    let mut terminate = signal(SignalKind::terminate()).context("cannot watch SIGTERM")?;
    tokio::select! {
        _ = terminate.recv() => {}
        result = tokio::signal::ctrl_c() => result.context("cannot watch SIGINT")?,
    }
    Ok(())
}
