//! TLS to the real PostgreSQL, set by libpq's URL parameters: `make services`
//! serves TLS with a development CA whose server certificate names only
//! `localhost`, so connecting to 127.0.0.1 tells verify-full from verify-ca.

use foodfast_store::Chain;
use foodfast_store::postgres::{Postgres, PostgresConfig};
use foodfast_testkit::postgres_tls_file;

/// The fresh database's URL with `host` and the query `params` (without '?').
async fn url(host: &str, params: &str) -> String {
    let fresh = foodfast_testkit::fresh_postgres().await.url;
    let url = fresh.replace("@127.0.0.1:", &format!("@{host}:"));
    format!("{url}?{params}")
}

async fn connect(url: String) -> Result<Postgres, String> {
    Postgres::connect(&PostgresConfig { url, ..Default::default() }).await.map_err(|err| Chain(&err).to_string())
}

/// The error of a connection that must fail.
async fn refused(url: String) -> String {
    match connect(url).await {
        Ok(_) => panic!("the connection was expected to fail"),
        Err(err) => err,
    }
}

/// Whether the session is encrypted, and the client certificate's subject if one was sent.
async fn session(postgres: &Postgres) -> (bool, Option<String>) {
    let client = postgres.client().await.unwrap();
    let row =
        client.query_one("SELECT ssl, client_dn FROM pg_stat_ssl WHERE pid = pg_backend_pid()", &[]).await.unwrap();
    (row.get(0), row.get(1))
}

fn ca() -> String {
    postgres_tls_file("ca.pem").display().to_string()
}

#[tokio::test]
async fn verify_full_checks_the_chain_and_the_host_name() {
    let postgres = connect(url("localhost", &format!("sslmode=verify-full&sslrootcert={}", ca())).await).await.unwrap();
    assert_eq!(session(&postgres).await, (true, None));

    let err = refused(url("127.0.0.1", &format!("sslmode=verify-full&sslrootcert={}", ca())).await).await;
    assert!(err.contains("certificate not valid for name"), "{err}");

    let other_ca = foodfast_testkit::Pki::generate();
    let params = format!("sslmode=verify-full&sslrootcert={}", other_ca.ca.display());
    let err = refused(url("localhost", &params).await).await;
    assert!(err.contains("UnknownIssuer") || err.contains("unknown issuer"), "{err}");
    let err = refused(url("localhost", "sslmode=verify-full").await).await;
    assert!(err.contains("UnknownIssuer") || err.contains("unknown issuer"), "the Mozilla roots do not know it: {err}");
}

#[tokio::test]
async fn verify_ca_checks_the_chain_but_not_the_host_name() {
    let postgres = connect(url("127.0.0.1", &format!("sslmode=verify-ca&sslrootcert={}", ca())).await).await.unwrap();
    assert_eq!(session(&postgres).await, (true, None));
    let other_ca = foodfast_testkit::Pki::generate();
    let params = format!("sslmode=verify-ca&sslrootcert={}", other_ca.ca.display());
    let err = refused(url("127.0.0.1", &params).await).await;
    assert!(err.contains("UnknownIssuer") || err.contains("unknown issuer"), "{err}");
}

#[tokio::test]
async fn prefer_and_require_encrypt_and_disable_does_not() {
    for params in ["", "sslmode=prefer", "sslmode=require"] {
        let postgres = connect(url("127.0.0.1", params).await).await.unwrap();
        assert_eq!(session(&postgres).await, (true, None), "{params:?}");
    }
    let postgres = connect(url("127.0.0.1", "sslmode=disable").await).await.unwrap();
    assert_eq!(session(&postgres).await, (false, None));
}

#[tokio::test]
async fn a_client_certificate_is_presented() {
    let params = format!(
        "sslmode=verify-full&sslrootcert={}&sslcert={}&sslkey={}",
        ca(),
        postgres_tls_file("client.pem").display(),
        postgres_tls_file("client.key").display()
    );
    let postgres = connect(url("localhost", &params).await).await.unwrap();
    assert_eq!(session(&postgres).await, (true, Some("/CN=foodfast".to_string())));
}
