//! TLS to the real Redis: `make services` serves it on a second port with a
//! certificate for 127.0.0.1 from the development CA, client certificates
//! optional. Commands and pub/sub both go over it.

use std::time::Duration;

use foodfast_store::Chain;
use foodfast_store::redis::{Redis, RedisConfig};
use foodfast_testkit::{postgres_tls_file, redis_tls_url};

fn tls_config() -> RedisConfig {
    RedisConfig {
        url: redis_tls_url(),
        tls_ca_cert: Some(postgres_tls_file("ca.pem")),
        connections: 1,
        response_timeout: Duration::from_secs(3),
        ..Default::default()
    }
}

async fn refused(config: RedisConfig) -> String {
    match Redis::connect(&config).await {
        Ok(_) => panic!("connected to {} despite its settings", config.url),
        Err(err) => Chain(&err).to_string(),
    }
}

#[tokio::test]
async fn commands_and_pub_sub_run_over_tls_to_the_development_authority() {
    let redis = Redis::connect(&tls_config()).await.unwrap();
    redis.ping().await.unwrap();
    let key = foodfast_testkit::unique_name("tls");
    let mut connection = redis.connection();
    let _: () =
        ::redis::cmd("SET").arg(&key).arg("over tls").arg("EX").arg(60).query_async(&mut connection).await.unwrap();
    let read: String = ::redis::cmd("GET").arg(&key).query_async(&mut connection).await.unwrap();
    assert_eq!(read, "over tls");

    let (messages, mut received) = tokio::sync::mpsc::unbounded_channel();
    let mut subscriber = redis.subscriber(messages).await.expect("the pub/sub connection keeps the TLS settings");
    subscriber.subscribe(&key).await.unwrap();
    let _: i64 = ::redis::cmd("PUBLISH").arg(&key).arg("hello").query_async(&mut connection).await.unwrap();
    let pushed = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            let push = received.recv().await.expect("the subscriber is open");
            if push.kind == ::redis::PushKind::Message {
                return push;
            }
        }
    })
    .await
    .expect("the message arrives");
    assert_eq!(pushed.data.last(), Some(&::redis::Value::BulkString(b"hello".to_vec())));

    let with_client_certificate = RedisConfig {
        tls_client_cert: Some(postgres_tls_file("client.pem")),
        tls_client_key: Some(postgres_tls_file("client.key")),
        ..tls_config()
    };
    Redis::connect(&with_client_certificate).await.unwrap().ping().await.unwrap();
}

#[tokio::test]
async fn a_server_the_authority_did_not_sign_or_plain_text_to_the_tls_port_is_refused() {
    let mozilla_roots = refused(RedisConfig { tls_ca_cert: None, ..tls_config() }).await;
    assert!(mozilla_roots.to_lowercase().contains("certificate"), "{mozilla_roots}");
    let stranger = RedisConfig { tls_ca_cert: Some(postgres_tls_file("server.pem")), ..tls_config() };
    let stranger = refused(stranger).await;
    assert!(stranger.to_lowercase().contains("certificate"), "{stranger}");
    refused(RedisConfig { url: redis_tls_url().replace("rediss://", "redis://"), tls_ca_cert: None, ..tls_config() })
        .await;
}

#[test]
fn certificates_need_a_tls_url_and_go_in_pairs() {
    let plain = RedisConfig { tls_ca_cert: Some(postgres_tls_file("ca.pem")), ..Default::default() };
    assert_eq!(plain.client().err().unwrap(), "TLS certificates need a rediss:// URL");
    let half = RedisConfig { tls_client_cert: Some("client.pem".into()), ..tls_config() };
    assert!(half.client().err().unwrap().contains("go together"));
    let missing = RedisConfig { tls_ca_cert: Some("/nowhere/ca.pem".into()), ..tls_config() };
    assert!(missing.client().err().unwrap().starts_with("tls_ca_cert /nowhere/ca.pem:"));
}
