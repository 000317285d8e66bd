//! `foodfast`: the FoodFast server and its operational commands.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use foodfast_domain::access::{Principal, Role};
use foodfast_server::auth::Tokens;
use foodfast_server::config::{Config, LogFormat, Overrides};
use foodfast_server::seed::{self, SeedPlan};
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
    /// Fill a demo city: restaurants with menus, staff, customers, drivers.
    Seed {
        #[arg(long, default_value = "Paris")]
        city: String,
        #[arg(long, default_value_t = 48.8566)]
        lat: f64,
        #[arg(long, default_value_t = 2.3522)]
        lng: f64,
        #[arg(long, default_value_t = 40)]
        restaurants: usize,
        #[arg(long, default_value_t = 50)]
        customers: usize,
        #[arg(long, default_value_t = 30)]
        drivers: usize,
    },
    /// Mint a bearer token for an account (development and operations).
    Token {
        /// The account's email, e.g. customer1@demo.foodfast.
        #[arg(long)]
        email: String,
        /// How long the token is valid.
        #[arg(long, default_value = "12h", value_parser = humantime::parse_duration)]
        ttl: std::time::Duration,
    },
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
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("foodfast: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    // Inside the runtime: the trace exporter's channel lives there. Dropped
    // last, so the final spans are flushed.
    let _telemetry = match runtime.block_on(async { telemetry::init(&config) }) {
        Ok(telemetry) => telemetry,
        Err(err) => {
            eprintln!("foodfast: {err}");
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
            // Readiness is the gRPC health service; the admin port has liveness only. It is
            // bound first: whoever reaches the gRPC port finds /livez and /metrics there too.
            let admin = foodfast_telemetry::admin::start(config.admin.listen_addr, None).await?;
            let listener = tokio::net::TcpListener::bind(config.grpc.listen_addr)
                .await
                .map_err(|err| anyhow::anyhow!("cannot listen on {}: {err}", config.grpc.listen_addr))?;
            telemetry::describe_metrics();
            let stores = tokio::select! {
                stores = Stores::connect(&config.stores) => stores?,
                _ = &mut shutdown => {
                    tracing::info!("stopped before the stores were connected");
                    return Ok(());
                }
            };
            let served = server::serve(&config, stores, listener, shutdown).await;
            admin.cancel();
            served
        }
        Command::Seed { city, lat, lng, restaurants, customers, drivers } => {
            let stores = Stores::connect(&config.stores).await?;
            let plan = SeedPlan {
                city,
                center: foodfast_domain::geo::LatLng::new(lat, lng)?,
                restaurants,
                customers,
                drivers,
                spread_m: 8_000.0,
            };
            let seeded = seed::seed(&stores, &plan, config.service.menu_cache_ttl).await?;
            if seeded.created {
                println!(
                    "seeded {}: {} restaurants, {} customers, {} drivers; sign in as customer1@demo.foodfast (password {}) or try `foodfast token --email customer1@demo.foodfast`",
                    plan.city,
                    seeded.restaurants.len(),
                    seeded.customers.len(),
                    seeded.drivers.len(),
                    seed::DEMO_PASSWORD
                );
            } else {
                println!("the demo city is already seeded");
            }
            Ok(())
        }
        Command::Token { email, ttl } => {
            let stores = Stores::connect(&config.stores).await?;
            let users = foodfast_store::users::Users::new(stores.postgres.clone());
            let (user_id, role, restaurant_id) =
                users.by_email(&email).await?.ok_or_else(|| anyhow::anyhow!("no account has the email {email}"))?;
            let role =
                Role::parse(&role).ok_or_else(|| anyhow::anyhow!("account {email} has an unknown role {role}"))?;
            let tokens = Tokens::new(&config.auth.token_keys().map_err(anyhow::Error::msg)?);
            let token = tokens.mint(&Principal { user_id, role, restaurant_id }, ttl).map_err(anyhow::Error::msg)?;
            println!("{token}");
            Ok(())
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
