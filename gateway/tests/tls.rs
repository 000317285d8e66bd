//! TLS end to end: an HTTPS client trusting a CA made here → the gateway
//! serving HTTPS with a certificate of that CA → the FoodFast server serving
//! TLS, reached at `https://localhost` and checked against the same CA → the
//! real stores.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use foodfast_gateway::config::GatewayConfig;
use foodfast_gateway::rest;
use foodfast_server::config::Config;
use foodfast_store::{Stores, migrate};
use foodfast_testkit::Pki;
use reqwest::StatusCode;
use serde_json::Value;
use tokio::sync::oneshot;
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};
use uuid::Uuid;

/// The FoodFast server serving TLS on migrated fresh stores; its port.
async fn start_tls_server(pki: &Pki) -> u16 {
    let mut config = Config { stores: foodfast_testkit::fresh_stores().await, ..Config::default() };
    config.grpc.tls_cert = Some(pki.cert.clone());
    config.grpc.tls_key = Some(pki.key.clone());
    let stores = Stores::connect(&config.stores).await.unwrap();
    migrate::migrate_postgres(&stores.postgres, &migrate::cockroach_migrations()).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        foodfast_server::server::serve(&config, stores, listener, std::future::pending::<()>()).await
    });
    port
}

#[tokio::test]
async fn https_clients_reach_the_tls_server_through_the_https_gateway() {
    let pki = Pki::generate();
    let server_port = start_tls_server(&pki).await;

    let mut config = GatewayConfig::default();
    config.http.tls_cert = Some(pki.cert.clone());
    config.http.tls_key = Some(pki.key.clone());
    config.upstream.url = format!("https://localhost:{server_port}");
    config.upstream.ca_cert = Some(pki.ca.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let gateway: SocketAddr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let serving = tokio::spawn(async move {
        rest::serve(&config, listener, async {
            let _ = stopped.await;
        })
        .await
    });

    let ca = std::fs::read(&pki.ca).unwrap();
    let http =
        reqwest::Client::builder().add_root_certificate(reqwest::Certificate::from_pem(&ca).unwrap()).build().unwrap();
    let base = format!("https://127.0.0.1:{}", gateway.port());

    // A menu nobody has: the server's NOT_FOUND, as the gateway's JSON error,
    // which took the whole chain (and the client's address for rate limits).
    let response = http.get(format!("{base}/api/v1/restaurants/{}/menu", Uuid::new_v4())).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["code"], "NOT_FOUND", "{body}");

    let response = http.get(format!("{base}/api/v1/openapi.json")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let document: Value = response.json().await.unwrap();
    assert!(document["paths"].is_object(), "{document}");

    // ALPN offers HTTP/2 as well as HTTP/1.1.
    for (offered, agreed) in
        [(vec![b"h2".to_vec(), b"http/1.1".to_vec()], b"h2".as_slice()), (vec![b"http/1.1".to_vec()], b"http/1.1")]
    {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(CertificateDer::from_pem_slice(&ca).unwrap()).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut client = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        client.alpn_protocols = offered;
        let tcp = tokio::net::TcpStream::connect(gateway).await.unwrap();
        let tls = tokio_rustls::TlsConnector::from(Arc::new(client))
            .connect(ServerName::try_from("localhost").unwrap(), tcp)
            .await
            .unwrap();
        assert_eq!(tls.get_ref().1.alpn_protocol(), Some(agreed));
    }

    // A plain-HTTP request to the HTTPS port gets no answer.
    let plain =
        reqwest::Client::new().get(format!("http://127.0.0.1:{}/api/v1/openapi.json", gateway.port())).send().await;
    assert!(plain.is_err() || !plain.unwrap().status().is_success());

    // An open stream does not hold the shutdown: it ends, and its client reconnects elsewhere.
    let mut watching = http.get(format!("{base}/api/v1/announcements/watch")).send().await.unwrap();
    assert_eq!(watching.status(), StatusCode::OK);
    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(10), serving).await.expect("a graceful shutdown").unwrap().unwrap();
    let ended =
        tokio::time::timeout(Duration::from_secs(5), async { while let Ok(Some(_)) = watching.chunk().await {} });
    ended.await.expect("the stream ended with the shutdown");
    assert!(tokio::net::TcpStream::connect(gateway).await.is_err(), "still listening after shutdown");
}

#[tokio::test]
async fn a_missing_or_invalid_tls_file_stops_the_gateway_naming_it() {
    let pki = Pki::generate();
    let garbage = pki.cert.with_file_name("garbage.pem");
    std::fs::write(&garbage, "not PEM at all").unwrap();
    let missing = PathBuf::from("/nonexistent/gateway.pem");
    let other = Pki::generate();
    let cases = [
        (Some(missing.clone()), Some(pki.key.clone()), None, &missing),
        (Some(garbage.clone()), Some(pki.key.clone()), None, &garbage),
        (Some(pki.cert.clone()), Some(garbage.clone()), None, &garbage),
        (None, None, Some(garbage.clone()), &garbage),
        // A key that is not the certificate's.
        (Some(pki.cert.clone()), Some(other.key.clone()), None, &pki.cert),
    ];
    for (cert, key, ca, named) in cases {
        let mut config = GatewayConfig::default();
        config.http.tls_cert = cert;
        config.http.tls_key = key;
        if ca.is_some() {
            config.upstream.url = "https://localhost:50051".into();
            config.upstream.ca_cert = ca;
        }
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let served =
            tokio::time::timeout(Duration::from_secs(10), rest::serve(&config, listener, std::future::pending()))
                .await
                .expect("the gateway refused to start");
        let err = served.expect_err("the gateway started with a bad TLS file").to_string();
        assert!(err.contains(named.to_str().unwrap()), "{err}");
    }
}
