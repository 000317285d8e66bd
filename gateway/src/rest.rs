//! The HTTP face of the contract: grpc-web calls pass through to the server;
//! everything else is REST/JSON, one handler for every route of the route
//! table. It matches the route, builds the request message from the
//! path, query and JSON body, calls the gRPC method, and answers JSON (unary)
//! or Server-Sent Events (server streams). Every error, the gateway's own or
//! the server's, is `{"code", "message", "details"}` with the mapped status.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{ConnectInfo, Request, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use http::{HeaderMap, HeaderValue, StatusCode, header};
use prost_reflect::{DynamicMessage, MessageDescriptor, ReflectMessage, Value};
use tonic::Code;
use tonic::metadata::{MetadataMap, MetadataValue};

use crate::errors;
use crate::limits::Limits;
use crate::routes::{NoRoute, Route, RouteTable, Verb};
use crate::transcode::{self, RequestError};
use crate::upstream::Upstream;

/// Headers passed on to the server as gRPC metadata.
const FORWARDED_HEADERS: [&str; 4] = ["authorization", "x-request-id", "traceparent", "tracestate"];

/// What the handler needs.
pub struct Rest {
    pub routes: RouteTable,
    pub upstream: Upstream,
    /// The same server, for grpc-web calls passed through unchanged.
    pub channel: tonic::transport::Channel,
    /// Largest request body accepted; larger ones get 413 without reaching the server.
    pub max_body_bytes: usize,
    pub limits: Limits,
}

/// How often rate-limit buckets of quiet clients are forgotten.
const FORGET_IDLE_EVERY: Duration = Duration::from_secs(60);

/// Serves the gateway on `listener` until `shutdown` completes.
pub async fn serve(
    listener: tokio::net::TcpListener,
    rest: Rest,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let rest = Arc::new(rest);
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
    let app = axum::Router::new().fallback(handle).with_state(rest);
    let served = axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>())
        .with_graceful_shutdown(shutdown)
        .await;
    forgetting.abort();
    served
}

async fn handle(
    State(rest): State<Arc<Rest>>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    request: Request,
) -> Response {
    let authorization = request.headers().get(header::AUTHORIZATION).and_then(|value| value.to_str().ok());
    let places_order = request.method() == http::Method::POST && request.uri().path() == "/api/v1/orders";
    if let Err(wait) = rest.limits.check(client.ip(), authorization, places_order) {
        let message = format!("too many requests; retry in {} s", wait.as_secs().max(1));
        let mut response = error(Code::ResourceExhausted, StatusCode::TOO_MANY_REQUESTS, &message);
        if let Ok(retry_after) = HeaderValue::from_str(&wait.as_secs().max(1).to_string()) {
            response.headers_mut().insert(header::RETRY_AFTER, retry_after);
        }
        return response;
    }
    if crate::grpc_web::is_grpc_web(&request) {
        return crate::grpc_web::call(rest.channel.clone(), request).await;
    }
    let (parts, body) = request.into_parts();
    let Some(verb) = Verb::parse(parts.method.as_str()) else {
        return error(Code::Unimplemented, StatusCode::METHOD_NOT_ALLOWED, &format!("{} is not served", parts.method));
    };
    let (route, fields) = match rest.routes.find(verb, parts.uri.path()) {
        Ok(found) => found,
        Err(NoRoute::NotFound) => {
            let message = format!("no route {} {}", verb.as_str(), parts.uri.path());
            return error(Code::NotFound, StatusCode::NOT_FOUND, &message);
        }
        Err(NoRoute::MethodNotAllowed(verbs)) => {
            let allowed = verbs.iter().map(|v| v.as_str()).collect::<Vec<_>>().join(", ");
            let message = format!("{} is served with {allowed}", parts.uri.path());
            let mut response = error(Code::InvalidArgument, StatusCode::METHOD_NOT_ALLOWED, &message);
            if let Ok(allow) = HeaderValue::from_str(&allowed) {
                response.headers_mut().insert(header::ALLOW, allow);
            }
            return response;
        }
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
        return server_stream(&rest.upstream, route, &path, call).await;
    }
    match rest.upstream.unary(&path, call).await {
        Ok(response) => match transcode::response_json(route.method.output(), response.get_ref()) {
            Ok(json) => {
                let created = verb == Verb::Post && route.method.name().starts_with("Create");
                let status = if created { StatusCode::CREATED } else { StatusCode::OK };
                (status, axum::Json(json)).into_response()
            }
            Err(err) => {
                tracing::error!(error = %err, %path, "the server answered a message that does not decode");
                error(Code::Internal, StatusCode::BAD_GATEWAY, "the server's answer could not be read")
            }
        },
        Err(status) => grpc_error(&status),
    }
}

/// A server stream as Server-Sent Events: one `data:` JSON per message, its
/// `seq` (or `cursor`) as the event id, heartbeats as comments; an error
/// mid-stream becomes an `event: error` and ends it.
async fn server_stream(upstream: &Upstream, route: &Route, path: &str, call: tonic::Request<Vec<u8>>) -> Response {
    let messages = match upstream.server_streaming(path, call).await {
        Ok(response) => response.into_inner(),
        Err(status) => return grpc_error(&status),
    };
    let output = route.method.output();
    let events = messages.map(move |message| {
        let event = match message {
            Ok(bytes) => stream_event(output.clone(), &bytes),
            Err(status) => {
                let body = errors::body(status.code(), status.message());
                Event::default().event("error").data(body.to_string())
            }
        };
        Ok::<_, Infallible>(event)
    });
    Sse::new(events).keep_alive(KeepAlive::default()).into_response()
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

fn metadata(headers: &HeaderMap) -> MetadataMap {
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

fn request_error(err: &RequestError) -> Response {
    error(Code::InvalidArgument, StatusCode::BAD_REQUEST, &err.to_string())
}

fn grpc_error(status: &tonic::Status) -> Response {
    error(status.code(), errors::http_status(status.code()), status.message())
}

fn error(code: Code, status: StatusCode, message: &str) -> Response {
    let mut response = (status, axum::Json(errors::body(code, message))).into_response();
    if status == StatusCode::TOO_MANY_REQUESTS {
        response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    }
    response
}
