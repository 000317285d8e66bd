//! `PasswordAuthenticator` on a real Cassandra node of the test's own (the
//! shared development node runs without authentication): the configured
//! credentials connect and migrate; none, or a wrong password, are refused at
//! start with the node's reason.

use std::time::Duration;

use foodfast_store::Chain;
use foodfast_store::migrate;
use foodfast_store::scylla::{Scylla, ScyllaConfig};
use foodfast_testkit::PrivateCassandra;

/// Cassandra's default superuser, created when a node with password
/// authentication first starts.
const SUPERUSER: (&str, &str) = ("cassandra", "cassandra");

fn config(node: &PrivateCassandra, username: &str, password: &str) -> ScyllaConfig {
    ScyllaConfig {
        contact_points: vec![node.contact_point()],
        keyspace: foodfast_testkit::unique_name("test"),
        username: username.into(),
        password: password.into(),
        connect_timeout: Duration::from_secs(10),
        connections: 1,
        ..Default::default()
    }
}

async fn connect(config: &ScyllaConfig) -> Result<Scylla, String> {
    Scylla::connect(config).await.map_err(|err| Chain(&err).to_string())
}

#[tokio::test]
async fn the_configured_credentials_connect_and_others_are_refused_with_the_reason() {
    let node = PrivateCassandra::launch_with(
        "authenticator:\n  class_name: org.apache.cassandra.auth.PasswordAuthenticator\n",
    );
    let with_superuser = config(&node, SUPERUSER.0, SUPERUSER.1);
    // The node creates its superuser just after it starts answering.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let scylla = loop {
        match connect(&with_superuser).await {
            Ok(scylla) => break scylla,
            Err(err) => {
                assert!(tokio::time::Instant::now() < deadline, "the superuser never signed in: {err}");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    };
    let report = migrate::migrate_scylla(&scylla, &with_superuser, &migrate::scylla_migrations()).await.unwrap();
    assert!(!report.applied.is_empty(), "{report:?}");
    scylla.ping().await.unwrap();

    let anonymous = connect(&config(&node, "", "")).await.err().expect("no credentials connected");
    assert!(anonymous.to_lowercase().contains("authenticat"), "{anonymous}");
    let wrong =
        connect(&config(&node, SUPERUSER.0, "not the password")).await.err().expect("a wrong password connected");
    assert!(wrong.contains("password") || wrong.contains("credentials"), "{wrong}");
}
