//! The HTTP face of the contract: grpc-web calls pass through to the server;
//! everything else is REST/JSON, one handler for every route of the route
//! table. It matches the route, builds the request message from the
//! path, query and JSON body, calls the gRPC method, and answers JSON (unary)
//! or Server-Sent Events (server streams). Every error, the gateway's own or
//! the server's, is `{"code", "message", "details"}` with the mapped status.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use foodfast_auth::Tokens;
use futures::StreamExt;
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header};
use prost_reflect::{DynamicMessage, MessageDescriptor, ReflectMessage, Value};
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_util::sync::CancellationToken;
use tonic::Code;
use tonic::metadata::{MetadataMap, MetadataValue};
use tonic::transport::{Channel, ClientTlsConfig, Endpoint};
use tower_http::cors::{AllowOrigin, CorsLayer};
use tracing::Instrument;
use uuid::Uuid;

use crate::config::GatewayConfig;
use crate::errors;
use crate::limits::{Held, Limits};
use crate::routes::{NoRoute, Route, RouteTable, Verb};
use crate::telemetry::RequestTelemetry;
use crate::transcode::{self, RequestError};
use crate::upload::{self, Upload};
use crate::upstream::Upstream;
use crate::web::WebPages;

/// Headers passed on to the server as gRPC metadata.
const FORWARDED_HEADERS: [&str; 4] = ["authorization", REQUEST_ID, TRACEPARENT, "tracestate"];
const REQUEST_ID: &str = "x-request-id";
const TRACEPARENT: &str = "traceparent";

/// What the handler needs, built once from the configuration.
pub struct Rest {
    routes: RouteTable,
    upstream: Upstream,
    max_body_bytes: usize,
    request_timeout: Duration,
    limits: Limits,
    /// The server's keys, to refuse forged tokens at the edge (none: unchecked;
    /// expired ones go on: the server knows which calls need a caller).
    tokens: Option<Tokens>,
    /// The OpenAPI document, rendered once.
    openapi: bytes::Bytes,
    upload: Upload,
    web: WebPages,
    /// Cancelled when the gateway shuts down: open streams end then.
    stopping: CancellationToken,
}

impl Rest {
    pub fn new(config: &GatewayConfig) -> Result<Self, GatewayError> {
        let routes = RouteTable::from_descriptor_set(foodfast_api::FILE_DESCRIPTOR_SET)?;
        let openapi = serde_json::to_vec(&crate::openapi::document(&routes)).expect("JSON values serialize").into();
        let channels = (0..config.upstream.connections).map(|_| upstream_channel(config)).collect::<Result<_, _>>()?;
        let keys = config.token_keys().map_err(|err| GatewayError::Config(err.to_string()))?;
        Ok(Self {
            upload: Upload::new(routes.pool()),
            routes,
            upstream: Upstream::new(channels, config.http.max_response_bytes),
            max_body_bytes: config.http.max_body_bytes,
            request_timeout: config.http.request_timeout,
            limits: Limits::new(&config.limits),
            stopping: CancellationToken::new(),
            tokens: (!keys.is_empty()).then(|| Tokens::new(&keys)),
            openapi,
            web: web_pages(&config.http.web_dir)?,
        })
    }
}

/// The pages in `dir`; none when it is not set, or not built.
fn web_pages(dir: &Path) -> Result<WebPages, GatewayError> {
    if dir.as_os_str().is_empty() {
        return Ok(WebPages::default());
    }
    if !dir.is_dir() {
        tracing::warn!(dir = %dir.display(), "no browser pages to serve there (`make web` builds them)");
        return Ok(WebPages::default());
    }
    WebPages::load(dir).map_err(|err| GatewayError::Config(format!("the browser pages: {err}")))
}

/// An HTTP/2 connection's channel to the server (connected on first use),
/// with TLS for an `https://` upstream.
pub fn upstream_channel(config: &GatewayConfig) -> Result<Channel, GatewayError> {
    let mut endpoint = Endpoint::from_shared(config.upstream.url.clone())
        .map_err(|err| GatewayError::Upstream(err.to_string()))?
        .connect_timeout(config.upstream.connect_timeout);
    if config.upstream.url.starts_with("https://") {
        // The server's certificate must chain to `upstream.ca_cert`, else
        // to the webpki roots.
        let tls = match &config.upstream.ca_cert {
            Some(path) => ClientTlsConfig::new()
                .ca_certificate(tonic::transport::Certificate::from_pem(pem_certificates(path)?.0)),
            None => ClientTlsConfig::new().with_webpki_roots(),
        };
        endpoint = endpoint.tls_config(tls).map_err(|err| GatewayError::Upstream(format!("TLS: {err}")))?;
    }
    Ok(endpoint.connect_lazy())
}

/// Why the gateway cannot start.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    #[error(transparent)]
    Routes(#[from] crate::routes::RouteError),
    #[error("the upstream URL: {0}")]
    Upstream(String),
    #[error("{0}")]
    Config(String),
}

/// How often rate-limit buckets of quiet clients are forgotten.
const FORGET_IDLE_EVERY: Duration = Duration::from_secs(60);

/// Serves the gateway on `listener` until `shutdown` completes: rate limits,
/// edge token checks, request ids and trace context, grpc-web, REST and SSE,
/// CORS when origins are configured; open streams end with the shutdown.
pub async fn serve(
    config: &GatewayConfig,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), GatewayError> {
    // Libraries that ask rustls for the process's provider (tonic's TLS) get ring.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let tls = match (&config.http.tls_cert, &config.http.tls_key) {
        (Some(cert), Some(key)) => Some(tls_acceptor(cert, key)?),
        _ => None,
    };
    let rest = Arc::new(Rest::new(config)?);
    let forgetting = tokio::spawn({
        let rest = rest.clone();
        async move {
            let mut every = tokio::time::interval(FORGET_IDLE_EVERY);
            loop {
                every.tick().await;
                rest.limits.forget_idle();
            }
        }
    });
    let shutdown = {
        let stopping = rest.stopping.clone();
        async move {
            shutdown.await;
            stopping.cancel();
        }
    };
    let mut app = axum::Router::new().fallback(handle).with_state(rest);
    if let Some(cors) = cors(&config.http.cors_allowed_origins) {
        app = app.layer(cors);
    }
    let app = app.into_make_service_with_connect_info::<SocketAddr>();
    let served = match tls {
        None => axum::serve(listener, app).with_graceful_shutdown(shutdown).await,
        // `tap_io` only so that axum gives handlers the peer as ConnectInfo.
        Some(acceptor) => {
            use axum::serve::ListenerExt;
            let listener = TlsListener::new(listener, acceptor).tap_io(|_| {});
            axum::serve(listener, app).with_graceful_shutdown(shutdown).await
        }
    };
    forgetting.abort();
    served.map_err(|err| GatewayError::Config(format!("serving: {err}")))
}

/// How long a client gets to complete the TLS handshake.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// A file's PEM certificates (its bytes, and them parsed); none is an error.
fn pem_certificates(path: &Path) -> Result<(Vec<u8>, Vec<CertificateDer<'static>>), GatewayError> {
    let failed = |message: String| GatewayError::Config(format!("TLS certificate file {}: {message}", path.display()));
    let pem = std::fs::read(path).map_err(|err| failed(err.to_string()))?;
    let certificates = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|err| failed(format!("not PEM: {err}")))?;
    if certificates.is_empty() {
        return Err(failed("no PEM CERTIFICATE in it".into()));
    }
    Ok((pem, certificates))
}

/// HTTPS with the certificate chain in `cert` and its key in `key`, offering
/// HTTP/2 and HTTP/1.1 (ALPN).
fn tls_acceptor(cert: &Path, key: &Path) -> Result<tokio_rustls::TlsAcceptor, GatewayError> {
    let (_, chain) = pem_certificates(cert)?;
    let key = PrivateKeyDer::from_pem_file(key)
        .map_err(|err| GatewayError::Config(format!("TLS key file {}: {err}", key.display())))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut tls = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .and_then(|builder| builder.with_no_client_auth().with_single_cert(chain, key))
        .map_err(|err| GatewayError::Config(format!("TLS certificate {}: {err}", cert.display())))?;
    tls.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(tls)))
}

/// Accepted TLS connections for `axum::serve`. Handshakes run in tasks of
/// their own, so a slow or silent client holds up nobody else.
struct TlsListener {
    handshaken: tokio::sync::mpsc::Receiver<(tokio_rustls::server::TlsStream<tokio::net::TcpStream>, SocketAddr)>,
    local_addr: SocketAddr,
    accepting: tokio::task::JoinHandle<()>,
}

impl TlsListener {
    fn new(listener: tokio::net::TcpListener, acceptor: tokio_rustls::TlsAcceptor) -> Self {
        let local_addr = listener.local_addr().expect("a bound listener has an address");
        let (done, handshaken) = tokio::sync::mpsc::channel(64);
        let accepting = tokio::spawn(async move {
            loop {
                let (tcp, peer) = match listener.accept().await {
                    Ok(accepted) => accepted,
                    Err(err) => {
                        // Out of file descriptors, say: wait rather than spin.
                        tracing::warn!(%err, "accepting a connection");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                };
                let (acceptor, done) = (acceptor.clone(), done.clone());
                tokio::spawn(async move {
                    match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                        Ok(Ok(tls)) => {
                            let _ = done.send((tls, peer)).await;
                        }
                        Ok(Err(err)) => tracing::debug!(%peer, %err, "TLS handshake failed"),
                        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                    }
                });
            }
        });
        Self { handshaken, local_addr, accepting }
    }
}

impl Drop for TlsListener {
    /// axum drops the listener when shutting down: stop accepting then.
    fn drop(&mut self) {
        self.accepting.abort();
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = tokio_rustls::server::TlsStream<tokio::net::TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, SocketAddr) {
        match self.handshaken.recv().await {
            Some(accepted) => accepted,
            // The accept loop only ends when this listener is dropped.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<SocketAddr> {
        Ok(self.local_addr)
    }
}

/// Cross-origin access for browsers on `origins` (`*`: any): the REST verbs,
/// the headers FoodFast reads, and the grpc-web trailers-in-headers exposed.
fn cors(origins: &[String]) -> Option<CorsLayer> {
    let allow_origin = match origins {
        [] => return None,
        any if any.iter().any(|origin| origin == "*") => AllowOrigin::any(),
        listed => AllowOrigin::list(listed.iter().filter_map(|origin| HeaderValue::from_str(origin).ok())),
    };
    let header = HeaderName::from_static;
    Some(
        CorsLayer::new()
            .allow_origin(allow_origin)
            .allow_methods([Method::GET, Method::POST, Method::PUT, Method::PATCH, Method::DELETE])
            .allow_headers([
                header::AUTHORIZATION,
                header::CONTENT_TYPE,
                header("idempotency-key"),
                header("last-event-id"),
                header(REQUEST_ID),
                header(TRACEPARENT),
                header("tracestate"),
                header("x-grpc-web"),
                header("x-user-agent"),
                header("grpc-timeout"),
            ])
            .expose_headers([
                header("grpc-status"),
                header("grpc-message"),
                header("grpc-status-details-bin"),
                header(REQUEST_ID),
                header::RETRY_AFTER,
                header::LOCATION,
            ])
            .max_age(Duration::from_secs(3600)),
    )
}

/// Gives the request an id (the client's, if it sent a sane one) and W3C
/// trace context (the client's, if valid; else a new trace), answers, and
/// echoes the id on the response.
async fn handle(
    State(rest): State<Arc<Rest>>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    mut request: Request,
) -> Response {
    token_from_query(&rest.routes, &mut request);
    let telemetry = RequestTelemetry::start(request.method(), route_label(&rest, &request), request.headers());
    let request_id = identify(request.headers_mut());
    // The server's spans become children of this request's.
    foodfast_telemetry::propagation::inject(&telemetry.span, request.headers_mut());
    let mut response = match rest.limits.enter(client.ip()) {
        Ok(in_flight) => {
            let response = answer(&rest, client, request).instrument(telemetry.span.clone()).await;
            response.map(|body| Body::new(Held::new(body, in_flight, rest.stopping.clone())))
        }
        Err(max) => {
            let message = format!(
                "this client has {max} requests open, as many as it may (limits.max_in_flight_per_ip); finish some first"
            );
            let details = tonic_types::ErrorDetails::with_retry_info(Some(Duration::from_secs(1)));
            refuse(&request, exhausted(message, details))
        }
    };
    response.headers_mut().insert(REQUEST_ID, request_id);
    telemetry.finish(response.status());
    response
}

/// The route's template for metrics and spans; never the raw path.
fn route_label(rest: &Rest, request: &Request) -> String {
    if crate::grpc_web::is_grpc_web(request) {
        return "grpc-web".into();
    }
    let path = request.uri().path();
    if path == crate::openapi::PATH || path == crate::web::DESCRIPTORS_PATH || path == upload::PATH {
        return path.into();
    }
    if rest.web.contains(path) {
        return "web".into();
    }
    let route =
        Verb::parse(request.method().as_str()).and_then(|verb| rest.routes.find(verb, request.uri().path()).ok());
    route.map_or_else(|| "unmatched".into(), |(route, _)| route.template())
}

/// Moves `?access_token=` on a Server-Sent Events route into the
/// `Authorization` header: a browser's `EventSource` cannot set headers.
/// Only there, and only without a header, since a token in a URL can end up
/// in proxies' logs and browser histories.
fn token_from_query(routes: &RouteTable, request: &mut Request) {
    if request.method() != Method::GET || request.headers().contains_key(header::AUTHORIZATION) {
        return;
    }
    let Some(query) = request.uri().query() else { return };
    let path = request.uri().path();
    if !routes.find(Verb::Get, path).is_ok_and(|(route, _)| route.method.is_server_streaming()) {
        return;
    }
    let (tokens, kept): (Vec<_>, Vec<_>) =
        form_urlencoded::parse(query.as_bytes()).into_owned().partition(|(key, _)| key == "access_token");
    let Some((_, token)) = tokens.into_iter().next_back() else { return };
    let Ok(bearer) = HeaderValue::from_str(&format!("Bearer {token}")) else { return };
    let mut uri = request.uri().clone().into_parts();
    let kept = form_urlencoded::Serializer::new(String::new()).extend_pairs(kept).finish();
    let path_and_query = if kept.is_empty() { path.to_string() } else { format!("{path}?{kept}") };
    let Ok(path_and_query) = path_and_query.parse() else { return };
    uri.path_and_query = Some(path_and_query);
    let Ok(uri) = http::Uri::from_parts(uri) else { return };
    *request.uri_mut() = uri;
    request.headers_mut().insert(header::AUTHORIZATION, bearer);
}

/// Sets `x-request-id` and `traceparent` on `headers`; returns the id.
fn identify(headers: &mut HeaderMap) -> HeaderValue {
    let sane = |value: &HeaderValue| {
        value.len() <= 128 && value.as_bytes().iter().all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(b))
    };
    let request_id = match headers.get(REQUEST_ID) {
        Some(id) if !id.is_empty() && sane(id) => id.clone(),
        _ => HeaderValue::from_str(&Uuid::new_v4().to_string()).expect("a UUID is a header value"),
    };
    headers.insert(REQUEST_ID, request_id.clone());
    if !headers.get(TRACEPARENT).and_then(|v| v.to_str().ok()).is_some_and(is_traceparent) {
        let trace = format!("00-{}-{}-01", Uuid::new_v4().simple(), &Uuid::new_v4().simple().to_string()[..16]);
        headers.insert(TRACEPARENT, HeaderValue::from_str(&trace).expect("hex is a header value"));
        headers.remove("tracestate");
    }
    request_id
}

/// A W3C `traceparent`: version, 32-hex trace id, 16-hex parent id, flags,
/// with all-zero ids invalid.
fn is_traceparent(value: &str) -> bool {
    let parts: Vec<&str> = value.split('-').collect();
    let hex =
        |part: &str, len: usize| part.len() == len && part.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    let nonzero = |part: &str| part.bytes().any(|b| b != b'0');
    parts.len() >= 4
        && hex(parts[0], 2)
        && parts[0] != "ff"
        && hex(parts[1], 32)
        && nonzero(parts[1])
        && hex(parts[2], 16)
        && nonzero(parts[2])
        && hex(parts[3], 2)
}

/// The path of CreateOrder over grpc-web, limited like `POST /api/v1/orders`.
const CREATE_ORDER_GRPC_PATH: &str = "/foodfast.v1.OrderService/CreateOrder";

async fn answer(rest: &Rest, client: SocketAddr, request: Request) -> Response {
    let authorization = request.headers().get(header::AUTHORIZATION).and_then(|value| value.to_str().ok());
    let grpc_web = crate::grpc_web::is_grpc_web(&request);
    let path = request.uri().path();
    let places_order = request.method() == http::Method::POST
        && (path == "/api/v1/orders" || (grpc_web && path == CREATE_ORDER_GRPC_PATH));
    if let Err(wait) = rest.limits.check(client.ip(), authorization, places_order) {
        // Whole seconds, rounded up: a client that waits that long finds a token.
        let wait = Duration::from_secs(wait.as_millis().div_ceil(1000).max(1) as u64);
        let message = format!("too many requests; retry in {} s", wait.as_secs());
        let details = tonic_types::ErrorDetails::with_retry_info(Some(wait));
        return refuse(&request, exhausted(message, details));
    }
    if request.method() == Method::GET {
        let path = request.uri().path();
        if path == crate::openapi::PATH {
            return ([(header::CONTENT_TYPE, "application/json")], rest.openapi.clone()).into_response();
        }
        if path == crate::web::DESCRIPTORS_PATH {
            return crate::web::descriptors();
        }
        if let Some(page) = rest.web.get(path) {
            return page;
        }
    }
    if let (Some(tokens), Some(authorization)) = (&rest.tokens, authorization) {
        let checked = foodfast_auth::bearer(authorization).map_err(tonic::Status::unauthenticated).and_then(|token| {
            match tokens.verify(token) {
                // Genuine but old: the server refuses it (TOKEN_EXPIRED) where a caller
                // is needed, and ignores it on public calls such as RefreshToken.
                Ok(_) | Err(foodfast_auth::TokenRefused::Expired) => Ok(()),
                Err(refused) => Err(tonic::Status::unauthenticated(refused.to_string())),
            }
        });
        if let Err(status) = checked {
            return refuse(&request, status);
        }
    }
    if grpc_web {
        if !crate::grpc_web::is_served_encoding(&request) {
            let message = "grpc-web is served in binary (application/grpc-web+proto) and text \
                           (application/grpc-web-text+proto) encodings";
            return crate::grpc_web::refuse(&request, tonic::Status::unimplemented(message));
        }
        return crate::grpc_web::call(rest.upstream.channel(), request, rest.request_timeout).await;
    }
    let (parts, body) = request.into_parts();
    if parts.uri.path() == upload::PATH {
        if parts.method != Method::POST {
            let message = format!("{} is served with POST", upload::PATH);
            let mut response = error(Code::InvalidArgument, StatusCode::METHOD_NOT_ALLOWED, &message);
            response.headers_mut().insert(header::ALLOW, HeaderValue::from_static("POST"));
            return response;
        }
        return rest.upload.call(&rest.upstream, &parts, body).await;
    }
    let path = parts.uri.path();
    let verb = match Verb::parse(parts.method.as_str()) {
        Some(verb) => verb,
        // GET without the body, which hyper leaves out of a HEAD answer.
        None if parts.method == Method::HEAD => Verb::Get,
        None => return not_served(&parts.method, path, rest.routes.verbs(path)),
    };
    let (route, fields) = match rest.routes.find(verb, path) {
        Ok(found) => found,
        Err(NoRoute::NotFound) => return not_served(&parts.method, path, Vec::new()),
        Err(NoRoute::MethodNotAllowed(verbs)) => return not_served(&parts.method, path, verbs),
    };
    let body = match axum::body::to_bytes(body, rest.max_body_bytes).await {
        Ok(body) => body,
        Err(_) => {
            let message = format!("the body is larger than {} bytes", rest.max_body_bytes);
            return error(Code::InvalidArgument, StatusCode::PAYLOAD_TOO_LARGE, &message);
        }
    };
    let query = parts.uri.query().unwrap_or("");
    let mut message = match transcode::request_message(route, &fields, query, &body) {
        Ok(message) => message,
        Err(err) => return request_error(&err),
    };
    apply_headers(&mut message, &parts.headers);
    let metadata = metadata(&parts.headers);
    let path = format!("/{}/{}", route.method.parent_service().full_name(), route.method.name());
    let mut call = tonic::Request::new(transcode::encode(&message));
    *call.metadata_mut() = metadata;
    if route.method.is_server_streaming() {
        return server_stream(&rest.upstream, route, &path, call, rest.request_timeout).await;
    }
    // The server learns the deadline (`grpc-timeout`) and stops working
    // past it; the gateway keeps it too, so the client gets 504 either way.
    // (tonic's server reports its expiry as CANCELLED: past the deadline, that is the deadline.)
    call.set_timeout(rest.request_timeout);
    let deadline = tokio::time::Instant::now() + rest.request_timeout;
    let past_deadline = || Err(not_answered_within(rest.request_timeout));
    let answered = match tokio::time::timeout_at(deadline, rest.upstream.unary(&path, call)).await {
        Err(_) => past_deadline(),
        Ok(Err(status)) if status.code() == Code::Cancelled && tokio::time::Instant::now() >= deadline => {
            past_deadline()
        }
        Ok(answered) => answered,
    };
    json_answer(route.method.output(), &path, answered, |json| {
        let created = verb == Verb::Post && route.method.name().starts_with("Create");
        let status = if created { StatusCode::CREATED } else { StatusCode::OK };
        (status, axum::Json(json)).into_response()
    })
}

/// The server's answer to a unary call made at `path`, as JSON handed to
/// `respond`, or its error as HTTP; a message that does not decode is 502.
pub(crate) fn json_answer(
    output: MessageDescriptor,
    path: &str,
    answered: Result<tonic::Response<Vec<u8>>, tonic::Status>,
    respond: impl FnOnce(serde_json::Value) -> Response,
) -> Response {
    match answered {
        Ok(response) => match transcode::response_json(output, response.get_ref()) {
            Ok(json) => respond(json),
            Err(err) => {
                tracing::error!(error = %err, %path, "the server answered a message that does not decode");
                error(Code::Internal, StatusCode::BAD_GATEWAY, "the server's answer could not be read")
            }
        },
        Err(status) => grpc_error(&status),
    }
}

/// The answer to `method` on `path` when no route takes it: 404 for a path
/// nothing serves; else, with `Allow` naming what does, 204 to OPTIONS (CORS
/// preflights are answered before this when origins are configured) and 405
/// to anything else.
fn not_served(method: &Method, path: &str, verbs: Vec<Verb>) -> Response {
    if verbs.is_empty() {
        return error(Code::NotFound, StatusCode::NOT_FOUND, &format!("no route {method} {path}"));
    }
    let mut allowed: Vec<&str> = verbs.iter().map(|verb| verb.as_str()).collect();
    if verbs.contains(&Verb::Get) {
        allowed.push("HEAD");
    }
    allowed.push("OPTIONS");
    let allowed = allowed.join(", ");
    let mut response = if method == Method::OPTIONS {
        StatusCode::NO_CONTENT.into_response()
    } else {
        let message = format!("{path} is served with {allowed}");
        error(Code::InvalidArgument, StatusCode::METHOD_NOT_ALLOWED, &message)
    };
    if let Ok(allow) = HeaderValue::from_str(&allowed) {
        response.headers_mut().insert(header::ALLOW, allow);
    }
    response
}

/// The gateway's own DEADLINE_EXCEEDED (HTTP 504): the server did not
/// answer, or open a stream, within `timeout`.
pub(crate) fn not_answered_within(timeout: Duration) -> tonic::Status {
    tonic::Status::deadline_exceeded(format!("the server did not answer within {timeout:?}"))
}

/// A server stream as Server-Sent Events: one `data:` JSON per message, its
/// `seq` (or `cursor`) as the event id, heartbeats as comments; an error
/// mid-stream becomes an `event: error` and ends it, and the server's clean
/// end an `event: end`. The stream must open within `open_timeout` (it waits
/// while every upstream slot is taken).
async fn server_stream(
    upstream: &Upstream,
    route: &Route,
    path: &str,
    call: tonic::Request<Vec<u8>>,
    open_timeout: Duration,
) -> Response {
    let messages = match tokio::time::timeout(open_timeout, upstream.server_streaming(path, call)).await {
        Ok(Ok(response)) => response.into_inner(),
        Ok(Err(status)) => return grpc_error(&status),
        Err(_) => return grpc_error(&not_answered_within(open_timeout)),
    };
    let output = route.method.output();
    let upstream = upstream.clone();
    let events = futures::stream::unfold(Some(messages), move |messages| {
        let (output, upstream) = (output.clone(), upstream.clone());
        async move {
            let mut messages = messages?;
            let (event, rest) = match messages.next().await {
                Some(Ok(bytes)) => (stream_event(output, &bytes), Some(messages)),
                Some(Err(status)) => {
                    let status = upstream.own_error(status);
                    let body = errors::body(status.code(), status.message());
                    (Event::default().event("error").data(body.to_string()), None)
                }
                // An EventSource reconnects whenever a response ends: `end`
                // tells it this one is over (the order finished, say).
                None => (Event::default().event("end").data("{}"), None),
            };
            Some((Ok::<_, Infallible>(event), rest))
        }
    });
    let mut response = Sse::new(events).keep_alive(KeepAlive::default()).into_response();
    // Proxies such as nginx would otherwise hold events back in their buffers.
    response.headers_mut().insert("x-accel-buffering", HeaderValue::from_static("no"));
    response
}

fn stream_event(descriptor: MessageDescriptor, bytes: &[u8]) -> Event {
    let Ok(message) = DynamicMessage::decode(descriptor.clone(), bytes) else {
        return Event::default().event("error").data(errors::body(Code::Internal, "unreadable message").to_string());
    };
    if message.has_field_by_name("heartbeat") {
        return Event::default().comment("heartbeat");
    }
    let json = transcode::response_json(descriptor, bytes).expect("decoded above");
    let event = Event::default().data(json.to_string());
    match event_id(&message) {
        Some(id) => event.id(id),
        None => event,
    }
}

/// The resume position a message carries: `seq` (TrackOrder) or `cursor`
/// (WatchOrders), when set.
fn event_id(message: &DynamicMessage) -> Option<String> {
    match message.get_field_by_name("seq").as_deref() {
        Some(Value::U64(seq)) if *seq > 0 => return Some(seq.to_string()),
        _ => {}
    }
    match message.get_field_by_name("cursor").as_deref() {
        Some(Value::String(cursor)) if !cursor.is_empty() => Some(cursor.clone()),
        _ => None,
    }
}

/// Fields some headers fill: `Idempotency-Key` → `idempotency_key`, and
/// `Last-Event-ID` → `resume_after` / `after_cursor` (an SSE reconnect).
fn apply_headers(message: &mut DynamicMessage, headers: &HeaderMap) {
    let header = |name: &str| headers.get(name).and_then(|value| value.to_str().ok()).map(str::trim);
    if let Some(key) = header("idempotency-key")
        && message.descriptor().get_field_by_name("idempotency_key").is_some()
    {
        message.set_field_by_name("idempotency_key", Value::String(key.to_string()));
    }
    if let Some(last) = header("last-event-id").filter(|id| !id.is_empty()) {
        if message.descriptor().get_field_by_name("resume_after").is_some()
            && let Ok(seq) = last.parse::<u64>()
        {
            message.set_field_by_name("resume_after", Value::U64(seq));
        } else if message.descriptor().get_field_by_name("after_cursor").is_some() {
            message.set_field_by_name("after_cursor", Value::String(last.to_string()));
        }
    }
}

pub(crate) fn metadata(headers: &HeaderMap) -> MetadataMap {
    let mut metadata = MetadataMap::new();
    for name in FORWARDED_HEADERS {
        if let Some(value) = headers.get(name).and_then(|v| v.to_str().ok())
            && let Ok(value) = MetadataValue::try_from(value)
        {
            metadata.insert(name, value);
        }
    }
    metadata
}

pub(crate) fn request_error(err: &RequestError) -> Response {
    error(Code::InvalidArgument, StatusCode::BAD_REQUEST, &err.to_string())
}

/// The gateway's own refusal of `request`, in grpc-web form or as JSON.
fn refuse(request: &Request, status: tonic::Status) -> Response {
    match crate::grpc_web::is_grpc_web(request) {
        true => crate::grpc_web::refuse(request, status),
        false => grpc_error(&status),
    }
}

/// RESOURCE_EXHAUSTED with `details` (a RetryInfo).
fn exhausted(message: String, details: tonic_types::ErrorDetails) -> tonic::Status {
    <tonic::Status as tonic_types::StatusExt>::with_error_details(Code::ResourceExhausted, message, details)
}

pub(crate) fn grpc_error(status: &tonic::Status) -> Response {
    let (http, body) = errors::answer(status);
    json_error(http, body, errors::retry_after_secs(status))
}

pub(crate) fn error(code: Code, status: StatusCode, message: &str) -> Response {
    json_error(status, errors::body(code, message), None)
}

/// The JSON error answer with the headers its status calls for: Retry-After
/// on a 429 (`retry_after`, else a second), WWW-Authenticate on a 401.
fn json_error(http: StatusCode, body: serde_json::Value, retry_after: Option<u64>) -> Response {
    let mut response = (http, axum::Json(body)).into_response();
    let retry_after = retry_after.or((http == StatusCode::TOO_MANY_REQUESTS).then_some(1));
    if let Some(secs) = retry_after {
        response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    if http == StatusCode::UNAUTHORIZED {
        response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_valid_traceparent_is_kept_and_a_bad_one_replaced_by_a_new_trace() {
        let valid = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        assert!(is_traceparent(valid));
        for bad in [
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6-00f067aa0ba902b7-01",
            "hello",
        ] {
            assert!(!is_traceparent(bad), "{bad}");
        }

        let mut headers = HeaderMap::new();
        headers.insert(TRACEPARENT, HeaderValue::from_static(valid));
        identify(&mut headers);
        assert_eq!(headers[TRACEPARENT], valid);

        let mut headers = HeaderMap::new();
        headers.insert(TRACEPARENT, HeaderValue::from_static("hello"));
        headers.insert("tracestate", HeaderValue::from_static("vendor=1"));
        let id = identify(&mut headers);
        assert!(is_traceparent(headers[TRACEPARENT].to_str().unwrap()), "a new trace starts here");
        assert!(headers.get("tracestate").is_none(), "state of another trace is dropped");
        assert_eq!(headers[REQUEST_ID], id);
    }
}
