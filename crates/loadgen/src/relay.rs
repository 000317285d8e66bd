//! The baseline of order tracking: a bare tonic relay with the same messages.
//! Publishers speak `DriverService/Connect` (a `welcome` for `hello`, an ack
//! per ping at once), subscribers `TrackingService/TrackOrder` (an empty
//! snapshot, then each location); each ping goes to the subscribers of its
//! key through a `watch` slot (latest wins, as FoodFast coalesces). No
//! checks, no Redis, no database.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use foodfast_api::v1 as pb;
use foodfast_api::v1::driver_service_server::{DriverService, DriverServiceServer};
use foodfast_api::v1::tracking_service_server::{TrackingService, TrackingServiceServer};
use tokio::net::TcpListener;
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;
use tokio_stream::StreamExt;
use tokio_stream::wrappers::WatchStream;
use tonic::codegen::BoxStream;
use tonic::transport::server::TcpIncoming;
use tonic::{Request, Response, Status, Streaming};

type Slot = watch::Sender<Option<pb::DriverLocationUpdate>>;

/// One slot per key: a publisher's key is its `authorization` header (where
/// FoodFast finds the driver's token), a subscriber's the `order_id` it asks
/// for (where FoodFast looks up the order's driver).
#[derive(Clone, Default)]
struct Relay {
    slots: Arc<Mutex<HashMap<String, Slot>>>,
}

impl Relay {
    fn slot(&self, key: &str) -> Slot {
        let mut slots = self.slots.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        slots.entry(key.to_string()).or_insert_with(|| watch::channel(None).0).clone()
    }
}

#[tonic::async_trait]
impl DriverService for Relay {
    async fn connect(
        &self,
        request: Request<Streaming<pb::ConnectRequest>>,
    ) -> Result<Response<BoxStream<pb::ConnectResponse>>, Status> {
        use pb::connect_request::Payload as Up;
        use pb::connect_response::Payload as Down;
        let key = request
            .metadata()
            .get("authorization")
            .and_then(|key| key.to_str().ok())
            .ok_or_else(|| Status::unauthenticated("the relay keys publishers by their authorization header"))?;
        let slot = self.slot(key);
        let answers = request.into_inner().map(move |request| {
            let payload = match request?.payload {
                Some(Up::Hello(_)) => Down::Welcome(pb::Welcome::default()),
                Some(Up::Ping(ping)) => {
                    slot.send_replace(Some(pb::DriverLocationUpdate {
                        position: Some(pb::LatLng { lat: ping.lat, lng: ping.lng }),
                        heading_deg: ping.heading_deg,
                        speed_mps: ping.speed_mps,
                        recorded_at: ping.recorded_at,
                    }));
                    Down::Ack(pb::PingAck { durable_seq: ping.seq, rejected: vec![] })
                }
                _ => return Err(Status::invalid_argument("the relay answers only hello and pings")),
            };
            Ok(pb::ConnectResponse { payload: Some(payload) })
        });
        Ok(Response::new(Box::pin(answers)))
    }
}

#[tonic::async_trait]
impl TrackingService for Relay {
    async fn track_order(
        &self,
        request: Request<pb::TrackOrderRequest>,
    ) -> Result<Response<BoxStream<pb::TrackOrderResponse>>, Status> {
        type Payload = pb::track_order_response::Payload;
        let updates = self.slot(&request.get_ref().order_id).subscribe();
        let snapshot =
            pb::TrackOrderResponse { seq: 0, payload: Some(Payload::Snapshot(pb::TrackingSnapshot::default())) };
        let locations = WatchStream::from_changes(updates).filter_map(|update| {
            update.map(|update| Ok(pb::TrackOrderResponse { seq: 0, payload: Some(Payload::DriverLocation(update)) }))
        });
        Ok(Response::new(Box::pin(tokio_stream::once(Ok(snapshot)).chain(locations))))
    }
}

/// The relay on a loopback port of its own, until dropped.
pub struct RelayServer {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    _stop: oneshot::Sender<()>,
    _task: JoinHandle<()>,
}

impl RelayServer {
    /// With FoodFast's HTTP/2 stream limit and `TCP_NODELAY`, as `serve` sets them.
    pub async fn start(max_concurrent_streams: u32) -> anyhow::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}", listener.local_addr()?);
        let (stop, stopped) = oneshot::channel::<()>();
        let relay = Relay::default();
        let task = tokio::spawn(async move {
            let served = tonic::transport::Server::builder()
                .max_concurrent_streams(Some(max_concurrent_streams))
                .add_service(DriverServiceServer::new(relay.clone()))
                .add_service(TrackingServiceServer::new(relay))
                .serve_with_incoming_shutdown(TcpIncoming::from(listener).with_nodelay(Some(true)), async {
                    let _ = stopped.await;
                })
                .await;
            if let Err(err) = served {
                eprintln!("relay server failed: {err}");
            }
        });
        Ok(Self { url, _stop: stop, _task: task })
    }
}
