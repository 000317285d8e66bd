//! The baseline of the Connect path: a bare tonic bidi stream of the same
//! messages that answers `hello` with an empty `welcome` and each ping at
//! once with an ack carrying its seq. No checks, no stores.

use foodfast_api::v1 as pb;
use foodfast_api::v1::driver_service_server::{DriverService, DriverServiceServer};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_stream::StreamExt;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::codegen::BoxStream;
use tonic::{Request, Response, Status, Streaming};

struct Echo;

#[tonic::async_trait]
impl DriverService for Echo {
    async fn connect(
        &self,
        request: Request<Streaming<pb::ConnectRequest>>,
    ) -> Result<Response<BoxStream<pb::ConnectResponse>>, Status> {
        use pb::connect_request::Payload as Up;
        use pb::connect_response::Payload as Down;
        let answers = request.into_inner().map(|request| {
            let payload = match request?.payload {
                Some(Up::Hello(_)) => Down::Welcome(pb::Welcome::default()),
                Some(Up::Ping(ping)) => Down::Ack(pb::PingAck { durable_seq: ping.seq, rejected: vec![] }),
                _ => return Err(Status::invalid_argument("the echo answers only hello and pings")),
            };
            Ok(pb::ConnectResponse { payload: Some(payload) })
        });
        Ok(Response::new(Box::pin(answers)))
    }
}

/// The echo server on a loopback port of its own, until dropped.
pub struct EchoServer {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    _stop: oneshot::Sender<()>,
    _task: JoinHandle<()>,
}

impl EchoServer {
    pub async fn start() -> anyhow::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}", listener.local_addr()?);
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let served = tonic::transport::Server::builder()
                .add_service(DriverServiceServer::new(Echo))
                .serve_with_incoming_shutdown(TcpListenerStream::new(listener), async {
                    let _ = stopped.await;
                })
                .await;
            if let Err(err) = served {
                eprintln!("echo server failed: {err}");
            }
        });
        Ok(Self { url, _stop: stop, _task: task })
    }
}
