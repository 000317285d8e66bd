//! The assembled server on the real stores: health per service following the
//! stores, reflection listing the whole contract.

use std::time::{Duration, Instant};

use foodfast_server::config::Config;
use foodfast_store::{Stores, StoresConfig};
use foodfast_testkit::PrivateRedis;
use prost::Message;
use tokio::sync::oneshot;
use tokio_stream::StreamExt;
use tonic::transport::Channel;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

const TOKEN_KEY: &str = "test:a-test-signing-key-that-is-long-enough";

struct RunningServer {
    channel: Channel,
    addr: std::net::SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl RunningServer {
    async fn start(stores: StoresConfig) -> Self {
        Self::start_with(stores, |_| {}).await
    }

    async fn start_with(stores: StoresConfig, adjust: impl FnOnce(&mut Config)) -> Self {
        let mut config = Config { stores, ..Config::default() };
        config.auth.keys = vec![TOKEN_KEY.into()];
        config.health.probe_interval = Duration::from_millis(100);
        config.health.probe_timeout = Duration::from_millis(500);
        adjust(&mut config);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let stores = Stores::connect(&config.stores).await.unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            foodfast_server::server::serve(&config, stores, listener, async {
                let _ = stopped.await;
            })
            .await
        });
        let channel = Channel::from_shared(format!("http://{addr}")).unwrap().connect().await.unwrap();
        Self { channel, addr, stop: Some(stop), task }
    }

    async fn shut_down(mut self) {
        self.stop.take().unwrap().send(()).unwrap();
        tokio::time::timeout(Duration::from_secs(10), self.task).await.unwrap().unwrap().unwrap();
    }
}

async fn status(channel: &Channel, service: &str) -> ServingStatus {
    let response =
        HealthClient::new(channel.clone()).check(HealthCheckRequest { service: service.into() }).await.unwrap();
    response.into_inner().status()
}

async fn wait_for(channel: &Channel, service: &str, wanted: ServingStatus) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let seen = status(channel, service).await;
        if seen == wanted {
            return;
        }
        assert!(Instant::now() < deadline, "{service:?} stayed {seen:?}, expected {wanted:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn health_turns_not_serving_while_redis_is_down_and_serving_when_it_is_back() {
    let mut redis = PrivateRedis::start();
    let mut stores = foodfast_testkit::fresh_stores().await;
    stores.redis.url = redis.url();
    let server = RunningServer::start(stores).await;

    for service in ["", "foodfast.v1.OrderService", "foodfast.v1.DriverService"] {
        wait_for(&server.channel, service, ServingStatus::Serving).await;
    }

    redis.kill();
    for service in ["", "foodfast.v1.OrderService", "foodfast.v1.DriverService"] {
        wait_for(&server.channel, service, ServingStatus::NotServing).await;
    }

    redis.restart();
    for service in ["", "foodfast.v1.OrderService", "foodfast.v1.DriverService"] {
        wait_for(&server.channel, service, ServingStatus::Serving).await;
    }
    server.shut_down().await;
}

/// Every service declared in `proto/`, from the descriptor set itself.
fn declared_services() -> Vec<String> {
    let set = prost_types::FileDescriptorSet::decode(foodfast_api::FILE_DESCRIPTOR_SET).unwrap();
    let mut services: Vec<String> = set
        .file
        .iter()
        .filter(|file| file.package() == "foodfast.v1")
        .flat_map(|file| file.service.iter().map(move |s| format!("{}.{}", file.package(), s.name())))
        .collect();
    services.sort();
    services
}

#[tokio::test]
async fn reflection_v1_and_v1alpha_list_every_service() {
    use tonic_reflection::pb::{v1, v1alpha};
    let server = RunningServer::start(foodfast_testkit::fresh_stores().await).await;
    let declared = declared_services();
    assert_eq!(declared.len(), 9, "{declared:?}");

    let request = v1::ServerReflectionRequest {
        message_request: Some(v1::server_reflection_request::MessageRequest::ListServices(String::new())),
        ..Default::default()
    };
    let mut responses = v1::server_reflection_client::ServerReflectionClient::new(server.channel.clone())
        .server_reflection_info(tokio_stream::once(request))
        .await
        .unwrap()
        .into_inner();
    let Some(v1::server_reflection_response::MessageResponse::ListServicesResponse(list)) =
        responses.next().await.unwrap().unwrap().message_response
    else {
        panic!("v1 reflection did not list services")
    };
    let listed: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    for service in &declared {
        assert!(listed.contains(service), "v1 reflection lacks {service}: {listed:?}");
    }
    assert!(listed.iter().any(|s| s == "grpc.health.v1.Health"));

    let request = v1alpha::ServerReflectionRequest {
        message_request: Some(v1alpha::server_reflection_request::MessageRequest::ListServices(String::new())),
        ..Default::default()
    };
    let mut responses = v1alpha::server_reflection_client::ServerReflectionClient::new(server.channel.clone())
        .server_reflection_info(tokio_stream::once(request))
        .await
        .unwrap()
        .into_inner();
    let Some(v1alpha::server_reflection_response::MessageResponse::ListServicesResponse(list)) =
        responses.next().await.unwrap().unwrap().message_response
    else {
        panic!("v1alpha reflection did not list services")
    };
    let listed: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    for service in &declared {
        assert!(listed.contains(service), "v1alpha reflection lacks {service}");
    }
    server.shut_down().await;
}

#[test]
fn every_declared_service_has_its_store_dependencies_listed() {
    let mut listed: Vec<String> =
        foodfast_server::health::SERVICE_DEPENDENCIES.iter().map(|(name, _)| name.to_string()).collect();
    listed.sort();
    assert_eq!(listed, declared_services());
}

/// Opens a reflection stream (any caller may) and keeps it open until the
/// returned sender is dropped.
async fn open_reflection_stream(
    channel: &Channel,
) -> Result<
    (
        tokio::sync::mpsc::Sender<tonic_reflection::pb::v1::ServerReflectionRequest>,
        tonic::Streaming<tonic_reflection::pb::v1::ServerReflectionResponse>,
    ),
    tonic::Status,
> {
    use tonic_reflection::pb::v1;
    let (requests, outgoing) = tokio::sync::mpsc::channel(1);
    let list = v1::ServerReflectionRequest {
        message_request: Some(v1::server_reflection_request::MessageRequest::ListServices(String::new())),
        ..Default::default()
    };
    requests.send(list).await.unwrap();
    let mut responses = v1::server_reflection_client::ServerReflectionClient::new(channel.clone())
        .server_reflection_info(tokio_stream::wrappers::ReceiverStream::new(outgoing))
        .await?
        .into_inner();
    responses.message().await?.expect("the stream answers the listing");
    Ok((requests, responses))
}

#[tokio::test]
async fn a_stream_past_max_open_streams_is_refused_until_one_closes() {
    let server =
        RunningServer::start_with(foodfast_testkit::fresh_stores().await, |config| config.grpc.max_open_streams = 2)
            .await;
    let first = open_reflection_stream(&server.channel).await.unwrap();
    let second = open_reflection_stream(&server.channel).await.unwrap();

    let refused = open_reflection_stream(&server.channel).await.unwrap_err();
    assert_eq!(refused.code(), tonic::Code::ResourceExhausted, "{refused:?}");
    assert!(refused.message().contains("grpc.max_open_streams"), "{refused:?}");
    let reason = tonic_types::StatusExt::get_error_details(&refused).error_info().map(|info| info.reason.clone());
    assert_eq!(reason.as_deref(), Some("ERROR_REASON_OVERLOADED"));
    // Unary calls and health checks have their own room.
    wait_for(&server.channel, "", ServingStatus::Serving).await;

    drop(first);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match open_reflection_stream(&server.channel).await {
            Ok(_) => break,
            Err(status) if status.code() == tonic::Code::ResourceExhausted && Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(status) => panic!("a stream closed, but a new one is still refused: {status:?}"),
        }
    }
    drop(second);
    server.shut_down().await;
}

#[tokio::test]
async fn a_connection_past_max_connections_waits_until_one_closes() {
    let mut server =
        RunningServer::start_with(foodfast_testkit::fresh_stores().await, |config| config.grpc.max_connections = 1)
            .await;
    wait_for(&server.channel, "", ServingStatus::Serving).await;

    // The kernel completes the TCP handshake, but the server does not take the connection.
    let second = Channel::from_shared(format!("http://{}", server.addr)).unwrap().connect_lazy();
    let mut health = HealthClient::new(second.clone());
    let check = health.check(HealthCheckRequest::default());
    assert!(
        tokio::time::timeout(Duration::from_millis(1500), check).await.is_err(),
        "a second connection was served while the first was open"
    );

    // The first connection closes: the waiting one is taken.
    drop(std::mem::replace(&mut server.channel, second.clone()));
    let mut health = HealthClient::new(second);
    let check = health.check(HealthCheckRequest::default());
    let answered = tokio::time::timeout(Duration::from_secs(10), check).await.expect("still not served");
    assert_eq!(answered.unwrap().into_inner().status(), ServingStatus::Serving);
    server.shut_down().await;
}
