//! How much one replica takes on at once: connections
//! (`grpc.max_connections`), unary calls being handled
//! (`grpc.max_calls_in_flight`) and streams open (`grpc.max_open_streams`).
//! At the connection limit the server stops accepting, so new clients wait
//! in the kernel's backlog (and time out there) until one leaves.
//! Past a call limit a call is refused at once with RESOURCE_EXHAUSTED,
//! ERROR_REASON_OVERLOADED and a RetryInfo, rather than queued: a queue here
//! only adds latency to calls whose clients give up anyway, while a refusal
//! lets the client back off or its load balancer pick another replica.
//! Health checks are never refused, so that an overloaded replica is not
//! also restarted by its liveness probe.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use foodfast_telemetry::grpc::RpcKind;
use futures::{Stream, StreamExt};
use http_body::{Body, Frame};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tonic::transport::server::Connected;
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

use crate::error::ERROR_DOMAIN;

/// When a refused caller is told to retry.
const RETRY_AFTER: Duration = Duration::from_secs(1);
const HEALTH_PATH: &str = "/grpc.health.v1.Health/";

/// Connections from `incoming`, at most `max` open at once: the next one is
/// accepted only once a place is free.
pub fn limit_connections<S, IO>(incoming: S, max: usize) -> impl Stream<Item = std::io::Result<Admitted<IO>>>
where
    S: Stream<Item = std::io::Result<IO>> + Unpin,
{
    let places = Arc::new(Semaphore::new(max));
    futures::stream::unfold((incoming, places), |(mut incoming, places)| async move {
        let permit = places.clone().acquire_owned().await.expect("the semaphore is never closed");
        let accepted = incoming.next().await?;
        Some((accepted.map(|io| Admitted { io, _permit: permit }), (incoming, places)))
    })
}

pin_project_lite::pin_project! {
    /// An accepted connection holding its place until it closes.
    pub struct Admitted<IO> {
        #[pin]
        io: IO,
        _permit: OwnedSemaphorePermit,
    }
}

impl<IO: Connected> Connected for Admitted<IO> {
    type ConnectInfo = IO::ConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.io.connect_info()
    }
}

impl<IO: AsyncRead> AsyncRead for Admitted<IO> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        self.project().io.poll_read(cx, buf)
    }
}

impl<IO: AsyncWrite> AsyncWrite for Admitted<IO> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        self.project().io.poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.project().io.poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.project().io.poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        self.project().io.poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}

#[derive(Clone)]
pub struct AdmissionLayer {
    limits: Arc<Limits>,
}

struct Limits {
    calls: Arc<Semaphore>,
    max_calls: usize,
    streams: Arc<Semaphore>,
    max_streams: usize,
    /// Paths of the methods whose responses or requests are streams.
    streaming: HashSet<String>,
}

impl AdmissionLayer {
    /// `methods`: every served method, as `telemetry::served_methods` lists them.
    pub fn new(max_calls: usize, max_streams: usize, methods: &[(String, String, RpcKind)]) -> Self {
        let streaming = methods
            .iter()
            .filter(|(_, _, kind)| *kind != RpcKind::Unary)
            .map(|(service, method, _)| format!("/{service}/{method}"))
            .collect();
        Self {
            limits: Arc::new(Limits {
                calls: Arc::new(Semaphore::new(max_calls)),
                max_calls,
                streams: Arc::new(Semaphore::new(max_streams)),
                max_streams,
                streaming,
            }),
        }
    }
}

impl<S> tower::Layer<S> for AdmissionLayer {
    type Service = Admission<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Admission { inner, limits: self.limits.clone() }
    }
}

#[derive(Clone)]
pub struct Admission<S> {
    inner: S,
    limits: Arc<Limits>,
}

/// The permit a call holds while it counts against a limit (none: exempt),
/// and whether the call is a stream, which keeps it until its body ends.
struct Pass {
    permit: Option<OwnedSemaphorePermit>,
    stream: bool,
}

impl Limits {
    fn admit(&self, path: &str) -> Result<Pass, Status> {
        if path.starts_with(HEALTH_PATH) {
            return Ok(Pass { permit: None, stream: false });
        }
        if self.streaming.contains(path) {
            return match self.streams.clone().try_acquire_owned() {
                Ok(permit) => Ok(Pass { permit: Some(permit), stream: true }),
                Err(_) => Err(overloaded(format!(
                    "this server has {} streams open, as many as it takes (grpc.max_open_streams)",
                    self.max_streams
                ))),
            };
        }
        match self.calls.clone().try_acquire_owned() {
            Ok(permit) => Ok(Pass { permit: Some(permit), stream: false }),
            Err(_) => Err(overloaded(format!(
                "this server is handling {} calls, as many as it takes at once (grpc.max_calls_in_flight)",
                self.max_calls
            ))),
        }
    }
}

fn overloaded(what: String) -> Status {
    let mut details = ErrorDetails::with_retry_info(Some(RETRY_AFTER));
    details.set_error_info("ERROR_REASON_OVERLOADED", ERROR_DOMAIN, HashMap::<String, String>::new());
    let message = format!("{what}; retry in {} s", RETRY_AFTER.as_secs());
    Status::with_error_details(Code::ResourceExhausted, message, details)
}

impl<S, ReqBody, ResBody> tower::Service<http::Request<ReqBody>> for Admission<S>
where
    S: tower::Service<http::Request<ReqBody>, Response = http::Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    ResBody: Default + Send + 'static,
{
    type Response = http::Response<AdmittedBody<ResBody>>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<ReqBody>) -> Self::Future {
        let pass = match self.limits.admit(request.uri().path()) {
            Ok(pass) => pass,
            Err(refusal) => {
                let response = refusal.into_http::<ResBody>().map(|inner| AdmittedBody { inner, permit: None });
                return Box::pin(std::future::ready(Ok(response)));
            }
        };
        // The clone that was polled ready serves this call.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let response = inner.call(request);
        Box::pin(async move {
            let response = response.await?;
            // A unary call is done once its answer is ready; a stream holds
            // its permit until its body ends.
            let permit = if pass.stream { pass.permit } else { None };
            Ok(response.map(|inner| AdmittedBody { inner, permit }))
        })
    }
}

pin_project_lite::pin_project! {
    /// A response body that gives back its stream's permit when it ends or
    /// is dropped (the client went away).
    pub struct AdmittedBody<B> {
        #[pin]
        inner: B,
        permit: Option<OwnedSemaphorePermit>,
    }
}

impl<B: Body> Body for AdmittedBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.project();
        let polled = this.inner.poll_frame(cx);
        let ended = match &polled {
            Poll::Ready(Some(Ok(frame))) => frame.is_trailers(),
            Poll::Ready(Some(Err(_)) | None) => true,
            Poll::Pending => false,
        };
        if ended {
            this.permit.take();
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;

    use tokio::sync::oneshot;
    use tower::{Layer, Service, ServiceExt};

    use super::*;

    type Reply = http::Response<tonic::body::Body>;

    fn methods() -> Vec<(String, String, RpcKind)> {
        vec![
            ("foodfast.v1.OrderService".into(), "GetOrder".into(), RpcKind::Unary),
            ("foodfast.v1.TrackingService".into(), "TrackOrder".into(), RpcKind::ServerStream),
            ("grpc.health.v1.Health".into(), "Check".into(), RpcKind::Unary),
        ]
    }

    fn request(path: &str) -> http::Request<()> {
        http::Request::builder().uri(path).body(()).unwrap()
    }

    fn refusal(response: &http::Response<AdmittedBody<tonic::body::Body>>) -> Option<Status> {
        Status::from_header_map(response.headers()).filter(|status| status.code() != Code::Ok)
    }

    /// A unary call that answers once `release` fires.
    async fn held_call(
        layer: &AdmissionLayer,
        path: &'static str,
    ) -> (oneshot::Sender<()>, tokio::task::JoinHandle<http::Response<AdmittedBody<tonic::body::Body>>>) {
        let (release, released) = oneshot::channel::<()>();
        let released = Arc::new(std::sync::Mutex::new(Some(released)));
        let service = layer.layer(tower::service_fn(move |_: http::Request<()>| {
            let released = released.lock().unwrap().take().expect("called once");
            async move {
                let _ = released.await;
                Ok::<Reply, Infallible>(http::Response::new(tonic::body::Body::default()))
            }
        }));
        let call = tokio::spawn(async move { service.oneshot(request(path)).await.unwrap() });
        tokio::task::yield_now().await;
        (release, call)
    }

    async fn answer(layer: &AdmissionLayer, path: &str) -> http::Response<AdmittedBody<tonic::body::Body>> {
        let mut service = layer.layer(tower::service_fn(|_: http::Request<()>| async {
            Ok::<Reply, Infallible>(http::Response::new(tonic::body::Body::default()))
        }));
        service.ready().await.unwrap().call(request(path)).await.unwrap()
    }

    #[tokio::test]
    async fn a_call_past_the_limit_is_refused_until_one_in_flight_ends() {
        let layer = AdmissionLayer::new(1, 1, &methods());
        let (release, held) = held_call(&layer, "/foodfast.v1.OrderService/GetOrder").await;

        let refused = answer(&layer, "/foodfast.v1.OrderService/GetOrder").await;
        let status = refusal(&refused).expect("the second call is refused");
        assert_eq!(status.code(), Code::ResourceExhausted);
        assert!(status.message().contains("grpc.max_calls_in_flight"), "{}", status.message());
        let details = status.get_error_details();
        assert_eq!(details.error_info().unwrap().reason, "ERROR_REASON_OVERLOADED");
        assert_eq!(details.retry_info().unwrap().retry_delay, Some(RETRY_AFTER));

        // Streams and health checks count apart from unary calls.
        assert!(refusal(&answer(&layer, "/foodfast.v1.TrackingService/TrackOrder").await).is_none());
        assert!(refusal(&answer(&layer, "/grpc.health.v1.Health/Check").await).is_none());

        release.send(()).unwrap();
        assert!(refusal(&held.await.unwrap()).is_none());
        assert!(refusal(&answer(&layer, "/foodfast.v1.OrderService/GetOrder").await).is_none());
    }

    #[tokio::test]
    async fn a_stream_holds_its_place_until_its_body_is_dropped() {
        let layer = AdmissionLayer::new(1, 1, &methods());
        let open = answer(&layer, "/foodfast.v1.TrackingService/TrackOrder").await;
        assert!(refusal(&open).is_none());

        let refused = answer(&layer, "/foodfast.v1.TrackingService/TrackOrder").await;
        let status = refusal(&refused).expect("a second stream is refused while the first is open");
        assert_eq!(status.code(), Code::ResourceExhausted);
        assert!(status.message().contains("grpc.max_open_streams"), "{}", status.message());
        // A unary call still has room.
        assert!(refusal(&answer(&layer, "/foodfast.v1.OrderService/GetOrder").await).is_none());

        drop(open);
        assert!(refusal(&answer(&layer, "/foodfast.v1.TrackingService/TrackOrder").await).is_none());
    }

    #[tokio::test]
    async fn a_stream_gives_its_place_back_when_its_body_ends() {
        let layer = AdmissionLayer::new(1, 1, &methods());
        let open = answer(&layer, "/foodfast.v1.TrackingService/TrackOrder").await;
        let mut body = std::pin::pin!(open.into_body());
        // The empty body ends at its first poll; the response stays alive.
        assert!(std::future::poll_fn(|cx| body.as_mut().poll_frame(cx)).await.is_none());
        assert!(refusal(&answer(&layer, "/foodfast.v1.TrackingService/TrackOrder").await).is_none());
    }

    #[tokio::test]
    async fn health_checks_are_never_refused() {
        let layer = AdmissionLayer::new(1, 1, &methods());
        let (_release, _held) = held_call(&layer, "/grpc.health.v1.Health/Check").await;
        let (_release_call, _held_call) = held_call(&layer, "/foodfast.v1.OrderService/GetOrder").await;
        assert!(refusal(&answer(&layer, "/grpc.health.v1.Health/Check").await).is_none());
    }
}
