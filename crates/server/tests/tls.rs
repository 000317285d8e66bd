//! TLS: the server on fresh real stores serving a certificate signed by a CA
//! made here, health over TLS for a client trusting that CA, nothing for a
//! plaintext client; and the configuration of the certificate files.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use foodfast_server::config::{Config, Overrides};
use foodfast_store::Stores;
use foodfast_testkit::Pki;
use tokio::sync::oneshot;
use tonic::transport::{Certificate, Channel, ClientTlsConfig};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

struct TlsServer {
    port: u16,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl TlsServer {
    async fn start(pki: &Pki) -> Self {
        let mut config = Config { stores: foodfast_testkit::fresh_stores().await, ..Config::default() };
        config.health.probe_interval = Duration::from_millis(100);
        config.grpc.tls_cert = Some(pki.cert.clone());
        config.grpc.tls_key = Some(pki.key.clone());
        let stores = Stores::connect(&config.stores).await.unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            foodfast_server::server::serve(&config, stores, listener, async {
                let _ = stopped.await;
            })
            .await
        });
        Self { port, stop: Some(stop), task }
    }

    async fn shut_down(mut self) {
        self.stop.take().unwrap().send(()).unwrap();
        tokio::time::timeout(Duration::from_secs(30), self.task).await.unwrap().unwrap().unwrap();
    }
}

async fn health(channel: Channel) -> Result<ServingStatus, tonic::Status> {
    let response = HealthClient::new(channel).check(HealthCheckRequest { service: String::new() }).await?;
    Ok(response.into_inner().status())
}

#[tokio::test]
async fn health_answers_over_tls_to_a_client_trusting_the_ca_and_not_in_plaintext() {
    let pki = Pki::generate();
    let server = TlsServer::start(&pki).await;

    let ca = Certificate::from_pem(std::fs::read(&pki.ca).unwrap());
    let channel = Channel::from_shared(format!("https://localhost:{}", server.port))
        .unwrap()
        .tls_config(ClientTlsConfig::new().ca_certificate(ca))
        .unwrap()
        .connect()
        .await
        .expect("a TLS connection trusting the test CA");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let status = health(channel.clone()).await.expect("health over TLS");
        if status == ServingStatus::Serving {
            break;
        }
        assert!(Instant::now() < deadline, "the server stayed {status:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // A plaintext HTTP/2 client gets nowhere: the server speaks only TLS.
    let plaintext = Channel::from_shared(format!("http://127.0.0.1:{}", server.port))
        .unwrap()
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(5))
        .connect_lazy();
    let refused = health(plaintext).await;
    assert!(refused.is_err(), "a plaintext call was answered: {refused:?}");

    // Nor does a TLS client that trusts another CA.
    let other_ca = Certificate::from_pem(std::fs::read(&Pki::generate().ca).unwrap());
    let untrusting = Channel::from_shared(format!("https://localhost:{}", server.port))
        .unwrap()
        .tls_config(ClientTlsConfig::new().ca_certificate(other_ca))
        .unwrap()
        .connect()
        .await;
    assert!(untrusting.is_err(), "a client without the CA connected");

    server.shut_down().await;
}

#[tokio::test]
async fn an_unreadable_or_invalid_certificate_file_stops_the_server_naming_it() {
    let pki = Pki::generate();
    let garbage = pki.cert.with_file_name("garbage.pem");
    std::fs::write(&garbage, "not a certificate").unwrap();
    let missing = Path::new("/nonexistent/server.pem").to_path_buf();
    let other = Pki::generate();
    let cases = [
        (missing.clone(), pki.key.clone(), missing),
        (garbage.clone(), pki.key.clone(), garbage.clone()),
        (pki.cert.clone(), garbage.clone(), garbage),
        // A key that is not the certificate's.
        (pki.cert.clone(), other.key.clone(), pki.cert.clone()),
    ];
    let mut config = Config { stores: foodfast_testkit::fresh_stores().await, ..Config::default() };
    let stores = Stores::connect(&config.stores).await.unwrap();
    for (cert, key, named) in cases {
        config.grpc.tls_cert = Some(cert);
        config.grpc.tls_key = Some(key);
        let stores = stores.clone();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let served = tokio::time::timeout(
            Duration::from_secs(10),
            foodfast_server::server::serve(&config, stores, listener, std::future::pending()),
        )
        .await
        .expect("the server refused to start");
        let err = format!("{:#}", served.expect_err("the server started with a bad TLS file"));
        assert!(err.contains(named.to_str().unwrap()), "{err}");
    }
}

fn load(pairs: &[(&str, &str)]) -> Result<Config, foodfast_server::config::ConfigError> {
    let env: BTreeMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    Config::load(None, &env, &Overrides::default())
}

#[test]
fn the_certificate_and_key_are_configured_both_or_neither() {
    let both = load(&[
        ("FOODFAST_GRPC_TLS_CERT", "/etc/foodfast/tls.pem"),
        ("FOODFAST_GRPC_TLS_KEY", "/etc/foodfast/tls.key"),
    ])
    .unwrap();
    assert_eq!(both.grpc.tls_cert.as_deref(), Some(Path::new("/etc/foodfast/tls.pem")));
    assert_eq!(both.grpc.tls_key.as_deref(), Some(Path::new("/etc/foodfast/tls.key")));
    let neither = load(&[]).unwrap();
    assert!(neither.grpc.tls_cert.is_none() && neither.grpc.tls_key.is_none());

    let err = load(&[("FOODFAST_GRPC_TLS_CERT", "/etc/foodfast/tls.pem")]).unwrap_err().to_string();
    assert!(err.contains("FOODFAST_GRPC_TLS_KEY"), "{err}");
    let err = load(&[("FOODFAST_GRPC_TLS_KEY", "/etc/foodfast/tls.key")]).unwrap_err().to_string();
    assert!(err.contains("FOODFAST_GRPC_TLS_CERT"), "{err}");
}
