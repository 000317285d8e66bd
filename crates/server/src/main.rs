//! `foodfast`: the FoodFast server and its operational commands.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use foodfast_server::config::{Config, LogFormat, Overrides};
use foodfast_server::{server, telemetry};
use foodfast_store::{Stores, migrate};

#[derive(Parser)]
#[command(name = "foodfast", version, about = "FoodFast: a real-time food-delivery marketplace over gRPC")]
struct Cli {
    /// TOML configuration file (also `FOODFAST_CONFIG`).
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    /// Log format, `pretty` or `json` (also `FOODFAST_LOG_FORMAT`).
    #[arg(long, global = true)]
    log_format: Option<LogFormat>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the gRPC API.
    Serve {
        /// gRPC listen address (also `FOODFAST_GRPC_ADDR`).
        #[arg(long)]
        grpc_addr: Option<SocketAddr>,
    },
    /// Apply pending CockroachDB and ScyllaDB migrations, each once.
    Migrate,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let overrides = Overrides {
        grpc_addr: match &cli.command {
            Command::Serve { grpc_addr } => *grpc_addr,
            _ => None,
        },
        log_format: cli.log_format,
    };
    let config = match Config::load(cli.config.as_deref(), &std::env::vars().collect(), &overrides) {
        Ok(config) => config,
        Err(err) => {
            eprintln!("foodfast: invalid configuration: {err}");
            return ExitCode::from(2);
        }
    };
    telemetry::init(&config.log);
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("foodfast: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli.command, config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!("{err:#}");
            eprintln!("foodfast: {err:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(command: Command, config: Config) -> anyhow::Result<()> {
    match command {
        Command::Serve { .. } => {
            let mut shutdown = Box::pin(server::shutdown_signal()?);
            let listener = tokio::net::TcpListener::bind(config.grpc.listen_addr)
                .await
                .map_err(|err| anyhow::anyhow!("cannot listen on {}: {err}", config.grpc.listen_addr))?;
            let stores = tokio::select! {
                stores = Stores::connect(&config.stores) => stores?,
                _ = &mut shutdown => {
                    tracing::info!("stopped before the stores were connected");
                    return Ok(());
                }
            };
            server::serve(&config, stores, listener, shutdown).await
        }
        Command::Migrate => {
            let stores = Stores::connect(&config.stores).await?;
            let cockroach = migrate::migrate_postgres(&stores.postgres, &migrate::cockroach_migrations()).await?;
            let scylla =
                migrate::migrate_scylla(&stores.scylla, &config.stores.scylla, &migrate::scylla_migrations()).await?;
            for (store, report) in [("cockroach", cockroach), ("scylla", scylla)] {
                if report.applied.is_empty() {
                    println!("{store}: up to date ({} applied before)", report.already_applied);
                } else {
                    println!("{store}: applied {}", report.applied.join(", "));
                }
            }
            Ok(())
        }
    }
}
