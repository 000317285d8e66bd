//! The `foodfast` binary as an operator runs it: configuration errors,
//! `migrate` twice, and shutdown on SIGTERM.

use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use foodfast_store::StoresConfig;

fn foodfast() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_foodfast"));
    // The test's environment must not leak settings into the child.
    for (name, _) in std::env::vars() {
        if name.starts_with("FOODFAST_") {
            command.env_remove(name);
        }
    }
    command.env("FOODFAST_LOG_FORMAT", "json");
    command
}

fn with_stores(command: &mut Command, stores: &StoresConfig) {
    command
        .env("FOODFAST_DATABASE_URL", &stores.postgres.url)
        .env("FOODFAST_SCYLLA_CONTACT_POINTS", stores.scylla.contact_points.join(","))
        .env("FOODFAST_SCYLLA_KEYSPACE", &stores.scylla.keyspace)
        .env("FOODFAST_REDIS_URL", &stores.redis.url);
}

fn text(output: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr))
}

#[test]
fn a_bad_setting_stops_the_server_at_start_naming_the_variable() {
    for (var, value) in [("FOODFAST_GRPC_ADDR", "localhost"), ("FOODFAST_SCYLLA_KEYSPACE", "no-dashes")] {
        let output = foodfast().arg("serve").env(var, value).output().unwrap();
        assert_eq!(output.status.code(), Some(2), "{}", text(&output));
        assert!(text(&output).contains(var), "{var}: {}", text(&output));
    }
}

#[tokio::test]
async fn migrate_twice_applies_everything_once() {
    let stores = foodfast_testkit::fresh_stores().await;
    let mut first = foodfast();
    with_stores(&mut first, &stores);
    let first = first.arg("migrate").output().unwrap();
    assert!(first.status.success(), "{}", text(&first));
    let stdout = String::from_utf8_lossy(&first.stdout);
    assert!(stdout.contains("cockroach: applied 0001_init.sql"), "{stdout}");
    assert!(stdout.contains("scylla: applied 0001_locations.cql"), "{stdout}");

    let mut second = foodfast();
    with_stores(&mut second, &stores);
    let second = second.arg("migrate").output().unwrap();
    assert!(second.status.success(), "{}", text(&second));
    let stdout = String::from_utf8_lossy(&second.stdout);
    assert!(stdout.contains("cockroach: up to date"), "{stdout}");
    assert!(stdout.contains("scylla: up to date"), "{stdout}");
}

#[tokio::test]
async fn sigterm_shuts_the_server_down_cleanly() {
    let stores = foodfast_testkit::fresh_stores().await;
    let port = foodfast_testkit::free_port();
    let mut serve = foodfast();
    with_stores(&mut serve, &stores);
    let child = serve
        .args(["serve", "--grpc-addr", &format!("127.0.0.1:{port}")])
        .env("FOODFAST_SHUTDOWN_GRACE", "5s")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    foodfast_testkit::wait_for_port(port, Duration::from_secs(30));
    wait_until_serving(port).await;

    let started = Instant::now();
    let killed = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(killed.success());
    // Waited for off the runtime, so the test's own client connection keeps
    // answering the server's HTTP/2 GOAWAY/PING while it drains.
    let output = tokio::task::spawn_blocking(move || child.wait_with_output()).await.unwrap().unwrap();
    assert!(output.status.success(), "{}", text(&output));
    assert!(started.elapsed() < Duration::from_secs(5), "took {:?}", started.elapsed());
    let logs = text(&output);
    assert!(logs.contains("received SIGTERM") && logs.contains("foodfast gRPC server stopped"), "{logs}");
}

async fn wait_until_serving(port: u16) {
    use tonic_health::pb::health_check_response::ServingStatus;
    let channel = tonic::transport::Channel::from_shared(format!("http://127.0.0.1:{port}")).unwrap();
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel.connect().await.unwrap());
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let request = tonic_health::pb::HealthCheckRequest { service: String::new() };
        if health.check(request).await.unwrap().into_inner().status() == ServingStatus::Serving {
            return;
        }
        assert!(Instant::now() < deadline, "the server never became SERVING");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
