//! Test support on the real services `make services` starts. Each test gets
//! its own PostgreSQL database and Cassandra keyspace, so tests run in
//! parallel without seeing each other's rows. Addresses come from the same
//! variables the scripts use (`FOODFAST_PG_PORT`, `FOODFAST_REDIS_PORT`,
//! `FOODFAST_CASSANDRA_PORT`).

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use foodfast_store::StoresConfig;
use foodfast_store::postgres::{Postgres, PostgresConfig};
use foodfast_store::scylla::ScyllaConfig;

mod cassandra;
mod leftovers;
mod pki;
pub use cassandra::PrivateCassandra;
pub use pki::Pki;

fn port(var: &str, default: u16) -> u16 {
    std::env::var(var).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn postgres_server() -> String {
    format!("postgresql://foodfast:foodfast@127.0.0.1:{}", port("FOODFAST_PG_PORT", 5432))
}

/// A file of the development PKI `make services` sets up (`ca.pem`, the CA
/// of every development certificate; `client.pem`, `client.key`; PostgreSQL's
/// `server.pem`, which names only `localhost`).
pub fn postgres_tls_file(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.local/postgres-tls").join(name)
}

/// The TLS port `make services` gives Redis (its certificate, for 127.0.0.1,
/// from the development CA of [`postgres_tls_file`]).
pub fn redis_tls_url() -> String {
    format!("rediss://127.0.0.1:{}/0", port("FOODFAST_REDIS_TLS_PORT", 6380))
}

/// A name no other test run uses (and which tells when it was made).
pub fn unique_name(prefix: &str) -> String {
    leftovers::name(prefix)
}

fn scylla_config() -> ScyllaConfig {
    ScyllaConfig {
        contact_points: vec![format!("127.0.0.1:{}", port("FOODFAST_CASSANDRA_PORT", 9042))],
        ..Default::default()
    }
}

/// Where the object directories of tests are.
fn objects_root() -> PathBuf {
    std::env::temp_dir().join("foodfast-objects")
}

/// Creates an empty database of its own and returns its configuration
/// (the process's first call drops what earlier runs left).
pub async fn fresh_postgres() -> PostgresConfig {
    let admin = PostgresConfig { url: format!("{}/postgres", postgres_server()), ..Default::default() };
    let name = unique_name(leftovers::PREFIX);
    let admin = Postgres::connect(&admin).await.expect("PostgreSQL from `make services` is not reachable");
    leftovers::sweep_once(&admin, &scylla_config(), &objects_root()).await;
    admin
        .client()
        .await
        .expect("admin connection")
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .await
        .expect("create test database");
    PostgresConfig { url: format!("{}/{name}", postgres_server()), ..Default::default() }
}

/// Store configuration with a fresh database, a keyspace name of its own
/// (created by migrating) and an object storage directory of its own.
pub async fn fresh_stores() -> StoresConfig {
    let mut config = StoresConfig { postgres: fresh_postgres().await, ..Default::default() };
    config.scylla = ScyllaConfig { keyspace: unique_name(leftovers::PREFIX), ..scylla_config() };
    config.redis.url = format!("redis://127.0.0.1:{}/0", port("FOODFAST_REDIS_PORT", 6379));
    // A directory of its own stands in for the bucket.
    config.objects.url = objects_root().join(unique_name(leftovers::PREFIX)).display().to_string();
    config.connect_timeout = Duration::from_secs(30);
    config
}

/// A loopback port nobody listens on right now, and none this process was
/// given before: nothing listens on a port between two calls, so the kernel
/// may well hand out the same one twice (a server's gRPC and admin ports
/// once collided that way).
pub fn free_port() -> u16 {
    static GIVEN: std::sync::Mutex<std::collections::BTreeSet<u16>> =
        std::sync::Mutex::new(std::collections::BTreeSet::new());
    loop {
        let port = TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("free port");
        if GIVEN.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).insert(port) {
            return port;
        }
    }
}

/// A Redis server of the test's own, so a test can stop and start it without
/// disturbing the shared one. Killed on drop.
pub struct PrivateRedis {
    pub port: u16,
    dir: PathBuf,
    child: Option<Child>,
}

impl PrivateRedis {
    pub fn start() -> Self {
        let port = free_port();
        let dir = std::env::temp_dir().join(unique_name("foodfast_redis"));
        std::fs::create_dir_all(&dir).expect("redis dir");
        let mut redis = Self { port, dir, child: None };
        redis.restart();
        redis
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    /// Kills the server at once, as a crash would.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Freezes the server (SIGSTOP): connections stay open and nothing
    /// answers, as with a half-open socket; `resume` thaws it.
    pub fn freeze(&self) {
        self.signal("-STOP");
    }

    pub fn resume(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, signal: &str) {
        let pid = self.child.as_ref().expect("the server runs").id().to_string();
        let sent = Command::new("kill").args([signal, &pid]).status().expect("kill");
        assert!(sent.success(), "kill {signal} {pid}");
    }

    /// Starts the server again on the same port and waits until it answers.
    pub fn restart(&mut self) {
        self.kill();
        let child = Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port", &self.port.to_string(), "--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(&self.dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server is not installed: run `make services`");
        self.child = Some(child);
        wait_for_port(self.port, Duration::from_secs(10));
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Blocks until something accepts connections on the loopback `port`.
pub fn wait_for_port(port: u16, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "nothing listens on 127.0.0.1:{port} after {timeout:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}
