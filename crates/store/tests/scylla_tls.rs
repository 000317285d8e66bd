//! TLS to the real Cassandra: `make services` serves CQL with and without
//! TLS on one port, with a certificate for 127.0.0.1 from the development
//! CA. One test, so no other session of this binary is open while it reads
//! which clients are encrypted.

use std::path::PathBuf;
use std::time::Duration;

use foodfast_store::Chain;
use foodfast_store::scylla::{Scylla, ScyllaConfig, TlsMode};
use foodfast_testkit::postgres_tls_file;

/// The test node's contact points, with `tls_mode` and `tls_ca_cert`.
async fn connect(tls_mode: TlsMode, tls_ca_cert: Option<PathBuf>) -> Result<Scylla, String> {
    let node = foodfast_testkit::fresh_stores().await.scylla;
    let config = ScyllaConfig {
        tls_mode,
        tls_ca_cert,
        connect_timeout: Duration::from_secs(5),
        connections: 1,
        contact_points: node.contact_points,
        ..Default::default()
    };
    Scylla::connect(&config).await.map_err(|err| Chain(&err).to_string())
}

/// Whether each client connection the node has now is encrypted.
async fn encrypted_clients(scylla: &Scylla) -> Vec<bool> {
    let result = scylla.session().query_unpaged("SELECT ssl_enabled FROM system_views.clients", ()).await.unwrap();
    let rows = result.into_rows_result().unwrap();
    rows.rows::<(Option<bool>,)>().unwrap().map(|row| row.unwrap().0.unwrap_or(false)).collect()
}

#[tokio::test]
async fn every_tls_mode_connects_as_it_promises_and_a_wrong_authority_is_refused() {
    let ca = Some(postgres_tls_file("ca.pem"));
    // Not the authority that signed Cassandra's certificate.
    let stranger = Some(postgres_tls_file("server.pem"));

    let plain = connect(TlsMode::Disable, None).await.unwrap();
    assert!(encrypted_clients(&plain).await.iter().all(|encrypted| !encrypted), "no TLS session exists yet");

    for (mode, ca) in [
        (TlsMode::VerifyFull, ca.clone()),
        (TlsMode::VerifyCa, ca.clone()),
        (TlsMode::Require, ca.clone()),
        (TlsMode::Require, None),
    ] {
        let secured = connect(mode, ca.clone()).await.unwrap_or_else(|err| panic!("{mode:?} with {ca:?}: {err}"));
        secured.ping().await.unwrap();
        assert!(encrypted_clients(&secured).await.contains(&true), "{mode:?}: this session is encrypted");
    }

    for (mode, ca, why) in [
        (TlsMode::VerifyFull, None, "the Mozilla roots did not sign the development certificate"),
        (TlsMode::VerifyCa, stranger.clone(), "another authority"),
        (TlsMode::Require, stranger.clone(), "a given authority is checked in require too"),
    ] {
        let refused = connect(mode, ca).await.err().unwrap_or_else(|| panic!("{mode:?} connected despite {why}"));
        assert!(refused.contains("certificate") || refused.contains("Certificate"), "{mode:?}: {refused}");
    }
}

#[test]
fn a_client_certificate_needs_its_key_and_files_are_named() {
    let mut config = ScyllaConfig { tls_mode: TlsMode::VerifyFull, ..Default::default() };
    config.tls_client_cert = Some("client.pem".into());
    assert!(config.tls().unwrap_err().contains("tls_client_cert and tls_client_key go together"));
    config.tls_client_cert = None;
    config.tls_ca_cert = Some("/nowhere/ca.pem".into());
    assert!(config.tls().unwrap_err().starts_with("tls_ca_cert /nowhere/ca.pem:"));
    assert!(ScyllaConfig::default().tls().unwrap().is_none(), "disable by default");
    assert!(!format!("{:?}", ScyllaConfig { password: "hunter2".into(), ..Default::default() }).contains("hunter2"));
}
