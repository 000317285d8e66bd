//! The `foodfast` server started in the benchmark's own process on fresh
//! stores (a database and a keyspace of its own), and their removal after the
//! run.

use std::time::Duration;

use anyhow::Context;
use foodfast_domain::access::{Principal, Role};
use foodfast_payment_sandbox::Sandbox;
use foodfast_server::auth::{TokenKey, Tokens};
use foodfast_server::config::Config;
use foodfast_store::postgres::{Postgres, PostgresConfig};
use foodfast_store::throttle::RatePolicy;
use foodfast_store::users::{NewUser, Users};
use foodfast_store::{Stores, migrate};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::transport::Channel;
use uuid::Uuid;

/// Longer than any run, so that no token expires during one.
const TOKEN_TTL: Duration = Duration::from_secs(24 * 3600);

pub fn human(duration: Duration) -> humantime::FormattedDuration {
    humantime::format_duration(duration)
}

/// The `foodfast` server on a fresh, migrated database, as `foodfast serve`
/// runs it but on a loopback port of its own, with the sandbox as provider.
pub struct InProcessServer {
    pub config: Config,
    pub stores: Stores,
    tokens: Tokens,
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    pub channel: Channel,
    stop: oneshot::Sender<()>,
    task: JoinHandle<anyhow::Result<()>>,
    /// Answers the server's payment calls until the server has stopped.
    _sandbox: Sandbox,
}

impl InProcessServer {
    /// Without a dispatcher: the other benchmarks measure other paths.
    pub async fn start() -> anyhow::Result<Self> {
        Self::start_with(|config| config.dispatch.enabled = false).await
    }

    /// With the default configuration adjusted by `adjust`.
    pub async fn start_with(adjust: impl FnOnce(&mut Config)) -> anyhow::Result<Self> {
        let sandbox = Sandbox::start("127.0.0.1:0".parse()?).await;
        let signing_key = format!("loadgen:{}", Uuid::new_v4().simple());
        let mut config = Config { stores: foodfast_testkit::fresh_stores().await, ..Config::default() };
        // A few simulated customers place every order: no customer limit applies.
        config.service.order_rate = RatePolicy { max: 1_000_000, window: Duration::from_secs(1) };
        adjust(&mut config);
        config.auth.keys = vec![signing_key.clone()];
        config.payments.base_url = sandbox.base_url();
        let stores = Stores::connect(&config.stores).await?;
        migrate::migrate_postgres(&stores.postgres, &migrate::cockroach_migrations()).await?;
        let tokens = Tokens::new(&[TokenKey::parse(&signing_key).map_err(anyhow::Error::msg)?]);

        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}", listener.local_addr()?);
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn({
            let config = config.clone();
            let stores = stores.clone();
            async move {
                foodfast_server::server::serve(&config, stores, listener, async {
                    let _ = stopped.await;
                })
                .await
            }
        });
        let channel = Channel::from_shared(url.clone())?.connect().await?;
        Ok(Self { config, stores, tokens, url, channel, stop, task, _sandbox: sandbox })
    }

    /// Creates the run's keyspace and its tables (the driver paths need them).
    pub async fn migrate_scylla(&self) -> anyhow::Result<()> {
        migrate::migrate_scylla(&self.stores.scylla, &self.config.stores.scylla, &migrate::scylla_migrations()).await?;
        Ok(())
    }

    /// A new account with `role`, and the bearer header that speaks for it.
    pub async fn account(&self, role: Role, user_role: Role) -> anyhow::Result<MetadataValue<Ascii>> {
        Ok(self.user(role, user_role, None).await?.1)
    }

    /// A new account with `role` (staff: of `restaurant_id`), its id and the
    /// bearer header that speaks for it.
    pub async fn user(
        &self,
        role: Role,
        user_role: Role,
        restaurant_id: Option<Uuid>,
    ) -> anyhow::Result<(Uuid, MetadataValue<Ascii>)> {
        let email = format!("{}@loadgen.test", Uuid::new_v4().simple());
        let user = NewUser {
            email: &email,
            phone: None,
            name: "Load Generator",
            role: user_role,
            password_hash: "!",
            restaurant_id,
        };
        let user_id = Users::new(self.stores.postgres.clone()).create(&user).await?;
        let principal = Principal { user_id, role, restaurant_id };
        let token = self.tokens.mint(&principal, TOKEN_TTL).map_err(anyhow::Error::msg)?;
        Ok((user_id, format!("Bearer {token}").parse()?))
    }

    /// A new driver account with a driver row in Paris holding at most
    /// `capacity` deliveries: dispatch assigns only drivers that have one.
    pub async fn driver(&self, capacity: i32) -> anyhow::Result<(Uuid, MetadataValue<Ascii>)> {
        let (user_id, bearer) = self.user(Role::Driver, Role::Driver, None).await?;
        Users::new(self.stores.postgres.clone()).add_driver(user_id, "paris", "bike", capacity).await?;
        Ok((user_id, bearer))
    }

    /// Stops the server and gives back the stores it used.
    pub async fn stop(self) -> anyhow::Result<Stores> {
        let _ = self.stop.send(());
        self.task.await??;
        Ok(self.stores)
    }

    /// Stops the server and drops the run's database and keyspace.
    pub async fn stop_and_discard(self) -> anyhow::Result<()> {
        let database_url = self.config.stores.postgres.url.clone();
        discard(self.stop().await?, &database_url).await
    }
}

/// Drops the run's keyspace and database once nothing else uses them.
pub async fn discard(stores: Stores, database_url: &str) -> anyhow::Result<()> {
    drop_keyspace(&stores).await?;
    drop(stores);
    drop_database(database_url).await
}

/// Drops the run's database once nothing uses it: each run writes thousands
/// of rows that are of no further use.
async fn drop_database(url: &str) -> anyhow::Result<()> {
    let (server, name) = url.rsplit_once('/').context("the database URL names no database")?;
    let admin = Postgres::connect(&PostgresConfig { url: format!("{server}/postgres"), ..Default::default() }).await?;
    admin.client().await?.batch_execute(&format!("DROP DATABASE {name} WITH (FORCE)")).await?;
    Ok(())
}

/// Drops the run's keyspace and its location rows.
async fn drop_keyspace(stores: &Stores) -> anyhow::Result<()> {
    let keyspace = stores.scylla.keyspace();
    stores.scylla.session().query_unpaged(format!("DROP KEYSPACE IF EXISTS {keyspace}"), ()).await?;
    Ok(())
}
