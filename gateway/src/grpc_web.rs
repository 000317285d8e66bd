//! grpc-web (binary and text) for browsers: `tonic_web` turns each grpc-web
//! call into a gRPC call, which is forwarded as is to the server over the
//! gateway's HTTP/2 channel. grpc-web has unary and server-streaming calls
//! only; that is the protocol.

use std::convert::Infallible;
use std::time::Duration;

use axum::response::{IntoResponse, Response};
use http::Request;
use tonic::transport::Channel;
use tower::{Layer, Service, ServiceExt};

/// Whether a request speaks grpc-web (by its content type).
pub fn is_grpc_web(request: &Request<axum::body::Body>) -> bool {
    request
        .headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|content_type| content_type.starts_with("application/grpc-web"))
}

/// Whether the grpc-web encoding is one served: protobuf, binary or base64
/// text (not grpc-web+json).
pub fn is_served_encoding(request: &Request<axum::body::Body>) -> bool {
    matches!(
        media_type(request),
        "application/grpc-web"
            | "application/grpc-web+proto"
            | "application/grpc-web-text"
            | "application/grpc-web-text+proto"
    )
}

/// The content type without its parameters (`; charset=utf-8`).
fn media_type(request: &Request<axum::body::Body>) -> &str {
    let content_type = request.headers().get(http::header::CONTENT_TYPE).and_then(|value| value.to_str().ok());
    content_type.unwrap_or("").split(';').next().unwrap_or("").trim()
}

/// A grpc-web answer that refuses the call at the edge: trailers-only
/// (the status in the headers), in the encoding the client asked for.
pub fn refuse(request: &Request<axum::body::Body>, status: tonic::Status) -> Response {
    trailers_only(request.headers().get(http::header::CONTENT_TYPE).cloned(), status)
}

fn trailers_only(content_type: Option<http::HeaderValue>, status: tonic::Status) -> Response {
    let mut response = status.into_http::<axum::body::Body>();
    if let Some(content_type) = content_type {
        response.headers_mut().insert(http::header::CONTENT_TYPE, content_type);
    }
    response.into_response()
}

/// Answers one grpc-web request through the server. The server's answer
/// (a stream's first headers) must come within `answer_timeout`, as for a
/// REST call; else DEADLINE_EXCEEDED.
pub async fn call(channel: Channel, mut request: Request<axum::body::Body>, answer_timeout: Duration) -> Response {
    // tonic_web knows the bare media types only.
    if let Ok(bare) = http::HeaderValue::from_str(media_type(&request)) {
        request.headers_mut().insert(http::header::CONTENT_TYPE, bare);
    }
    let forward = tower::service_fn(move |request: Request<tonic::body::Body>| {
        let mut channel = channel.clone();
        async move {
            let response = match channel.ready().await {
                Ok(ready) => ready.call(request).await,
                Err(err) => Err(err),
            };
            Ok::<_, Infallible>(response.unwrap_or_else(|err| {
                tonic::Status::unavailable(format!("the FoodFast server is unreachable: {err}")).into_http()
            }))
        }
    });
    let content_type = request.headers().get(http::header::CONTENT_TYPE).cloned();
    let mut grpc_web = tonic_web::GrpcWebLayer::new().layer(forward);
    match tokio::time::timeout(answer_timeout, grpc_web.call(request)).await {
        Ok(Ok(response)) => response.map(axum::body::Body::new).into_response(),
        Ok(Err(never)) => match never {},
        Err(_) => trailers_only(content_type, crate::rest::not_answered_within(answer_timeout)),
    }
}
