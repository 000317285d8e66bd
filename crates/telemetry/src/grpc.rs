//! One tower layer around every gRPC call the server answers: a span that
//! continues the caller's trace, and the RPC metrics (calls by code, handling
//! time, open streams). The call's status is read where gRPC puts it: the
//! response headers of a trailers-only answer, else the trailers at the end
//! of the body. A body dropped before its trailers is a call the client
//! cancelled.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use http_body::{Body, Frame};
use tonic::Code;
use tower::{Layer, Service};

use crate::{SPAN_TARGET, propagation};

pub const HANDLED_TOTAL: &str = "foodfast_grpc_server_handled_total";
pub const HANDLING_SECONDS: &str = "foodfast_grpc_server_handling_seconds";
pub const OPEN_STREAMS: &str = "foodfast_grpc_server_open_streams";

/// Describes the RPC metrics for the exposition's HELP lines.
pub fn describe_metrics() {
    metrics::describe_counter!(HANDLED_TOTAL, "gRPC calls finished, by service, method, type and status code");
    metrics::describe_histogram!(
        HANDLING_SECONDS,
        metrics::Unit::Seconds,
        "time from a call's arrival to its status (a stream's whole life)"
    );
    metrics::describe_gauge!(OPEN_STREAMS, "streaming calls open now, by service, method and type");
}

/// The shape of an RPC, from its descriptor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RpcKind {
    Unary,
    ClientStream,
    ServerStream,
    BidiStream,
}

impl RpcKind {
    pub fn of(client_streaming: bool, server_streaming: bool) -> Self {
        match (client_streaming, server_streaming) {
            (false, false) => Self::Unary,
            (true, false) => Self::ClientStream,
            (false, true) => Self::ServerStream,
            (true, true) => Self::BidiStream,
        }
    }

    fn label(self) -> &'static str {
        match self {
            Self::Unary => "unary",
            Self::ClientStream => "client_stream",
            Self::ServerStream => "server_stream",
            Self::BidiStream => "bidi_stream",
        }
    }
}

/// Labels of one method. Leaked once per method at start, so that
/// recording a call allocates no label strings.
#[derive(Debug)]
struct Rpc {
    path: &'static str,
    service: &'static str,
    method: &'static str,
    kind: RpcKind,
}

/// Paths nobody serves share one label set, so that random paths cannot
/// grow the metrics.
static UNKNOWN: Rpc = Rpc { path: "unknown", service: "unknown", method: "unknown", kind: RpcKind::Unary };

#[derive(Clone)]
pub struct GrpcTelemetryLayer {
    rpcs: Arc<HashMap<&'static str, &'static Rpc>>,
}

impl GrpcTelemetryLayer {
    /// `methods`: every served method as (`package.Service`, `Method`, kind).
    /// Their names are leaked, so that labels cost no allocation per call:
    /// build the layer once per process.
    pub fn new(methods: impl IntoIterator<Item = (String, String, RpcKind)>) -> Self {
        let rpcs = methods
            .into_iter()
            .map(|(service, method, kind)| {
                let leak = |text: String| -> &'static str { Box::leak(text.into_boxed_str()) };
                let path = leak(format!("/{service}/{method}"));
                let rpc: &'static Rpc =
                    Box::leak(Box::new(Rpc { path, service: leak(service), method: leak(method), kind }));
                (path, rpc)
            })
            .collect();
        Self { rpcs: Arc::new(rpcs) }
    }
}

impl<S> Layer<S> for GrpcTelemetryLayer {
    type Service = GrpcTelemetry<S>;

    fn layer(&self, inner: S) -> Self::Service {
        GrpcTelemetry { inner, rpcs: self.rpcs.clone() }
    }
}

#[derive(Clone)]
pub struct GrpcTelemetry<S> {
    inner: S,
    rpcs: Arc<HashMap<&'static str, &'static Rpc>>,
}

impl<S, ReqBody, ResBody> Service<http::Request<ReqBody>> for GrpcTelemetry<S>
where
    S: Service<http::Request<ReqBody>, Response = http::Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    ReqBody: Send + 'static,
{
    type Response = http::Response<ObservedBody<ResBody>>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<ReqBody>) -> Self::Future {
        let rpc: &'static Rpc = self.rpcs.get(request.uri().path()).copied().unwrap_or(&UNKNOWN);
        let span = tracing::info_span!(
            target: SPAN_TARGET,
            "grpc.server",
            otel.name = rpc.path.trim_start_matches('/'),
            otel.kind = "server",
            otel.status_code = tracing::field::Empty,
            rpc.system = "grpc",
            rpc.service = rpc.service,
            rpc.method = rpc.method,
            rpc.grpc.status_code = tracing::field::Empty,
        );
        propagation::continue_trace(&span, request.headers());
        let call = Call::start(rpc, span.clone());
        // The clone that was polled ready serves this call.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let response = tracing::Instrument::instrument(inner.call(request), span);
        Box::pin(async move {
            let response = response.await?;
            let mut call = call;
            if let Some(code) = response.headers().get("grpc-status") {
                call.code = Some(Code::from_bytes(code.as_bytes()));
            }
            Ok(response.map(|body| ObservedBody { inner: body, call: Some(call) }))
        })
    }
}

/// One call being served; recorded when dropped.
struct Call {
    rpc: &'static Rpc,
    started: Instant,
    code: Option<Code>,
    span: tracing::Span,
}

impl Call {
    fn start(rpc: &'static Rpc, span: tracing::Span) -> Self {
        if rpc.kind != RpcKind::Unary {
            metrics::gauge!(OPEN_STREAMS, &labels(rpc)).increment(1.0);
        }
        Self { rpc, started: Instant::now(), code: None, span }
    }
}

fn labels(rpc: &Rpc) -> [(&'static str, &'static str); 3] {
    [("grpc_service", rpc.service), ("grpc_method", rpc.method), ("grpc_type", rpc.kind.label())]
}

impl Drop for Call {
    fn drop(&mut self) {
        let rpc = self.rpc;
        let code = self.code.unwrap_or(Code::Cancelled);
        let name = code_name(code);
        self.span.record("rpc.grpc.status_code", code as i32);
        if !matches!(code, Code::Ok) {
            self.span.record("otel.status_code", "ERROR");
        }
        let [service, method, kind] = labels(rpc);
        metrics::counter!(HANDLED_TOTAL, &[service, method, kind, ("grpc_code", name)]).increment(1);
        metrics::histogram!(HANDLING_SECONDS, &labels(rpc)).record(self.started.elapsed().as_secs_f64());
        if rpc.kind != RpcKind::Unary {
            metrics::gauge!(OPEN_STREAMS, &labels(rpc)).decrement(1.0);
        }
    }
}

pin_project_lite::pin_project! {
    /// A response body that records its call when it ends or is dropped.
    pub struct ObservedBody<B> {
        #[pin]
        inner: B,
        call: Option<Call>,
    }
}

impl<B: Body> Body for ObservedBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.project();
        let polled = this.inner.poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let (Some(trailers), Some(call)) = (frame.trailers_ref(), this.call.as_mut()) {
                    call.code = trailers.get("grpc-status").map(|code| Code::from_bytes(code.as_bytes())).or(call.code);
                    this.call.take();
                }
            }
            // A transport error ends the call without a status the client sees.
            Poll::Ready(Some(Err(_))) => {
                if let Some(call) = this.call.as_mut() {
                    call.code.get_or_insert(Code::Internal);
                }
                this.call.take();
            }
            Poll::Ready(None) => {
                this.call.take();
            }
            Poll::Pending => {}
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

/// The canonical names, as grpc-go and grpc-prometheus spell them.
pub fn code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "Canceled",
        Code::Unknown => "Unknown",
        Code::InvalidArgument => "InvalidArgument",
        Code::DeadlineExceeded => "DeadlineExceeded",
        Code::NotFound => "NotFound",
        Code::AlreadyExists => "AlreadyExists",
        Code::PermissionDenied => "PermissionDenied",
        Code::ResourceExhausted => "ResourceExhausted",
        Code::FailedPrecondition => "FailedPrecondition",
        Code::Aborted => "Aborted",
        Code::OutOfRange => "OutOfRange",
        Code::Unimplemented => "Unimplemented",
        Code::Internal => "Internal",
        Code::Unavailable => "Unavailable",
        Code::DataLoss => "DataLoss",
        Code::Unauthenticated => "Unauthenticated",
    }
}
