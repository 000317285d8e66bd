//! The gateway's metrics and its span per request (the machinery is in
//! `foodfast-telemetry`).

use std::time::Instant;

use http::{Method, StatusCode};
use tracing::field::Empty;

pub const HTTP_REQUESTS_TOTAL: &str = "foodfast_gateway_http_requests_total";
pub const HTTP_REQUEST_SECONDS: &str = "foodfast_gateway_http_request_duration_seconds";
pub const RATE_LIMITED_TOTAL: &str = "foodfast_gateway_rate_limited_total";

pub fn describe_metrics() {
    use metrics::{Unit, describe_counter, describe_histogram};
    describe_counter!(HTTP_REQUESTS_TOTAL, "HTTP requests answered, by method, route and status");
    describe_histogram!(
        HTTP_REQUEST_SECONDS,
        Unit::Seconds,
        "time to the response's headers, by method and route (an SSE stream's first byte, not its life)"
    );
    describe_counter!(RATE_LIMITED_TOTAL, "requests refused with 429 at the edge, by limit");
}

/// One request being answered: its span (a child of the caller's trace,
/// when it sent one) and its timing.
pub struct RequestTelemetry {
    pub span: tracing::Span,
    method: Method,
    route: String,
    started: Instant,
}

impl RequestTelemetry {
    /// `route`: the route's template, or a fixed word for what has none, so
    /// that labels stay few whatever paths clients send.
    pub fn start(method: &Method, route: String, headers: &http::HeaderMap) -> Self {
        let span = tracing::info_span!(
            target: "foodfast::trace",
            "http.server",
            otel.name = format!("{method} {route}"),
            otel.kind = "server",
            otel.status_code = Empty,
            http.request.method = %method,
            http.route = %route,
            http.response.status_code = Empty,
        );
        foodfast_telemetry::propagation::continue_trace(&span, headers);
        Self { span, method: method.clone(), route, started: Instant::now() }
    }

    pub fn finish(self, status: StatusCode) {
        self.span.record("http.response.status_code", status.as_u16());
        if status.is_server_error() {
            self.span.record("otel.status_code", "ERROR");
        }
        let method = self.method.as_str().to_string();
        let labels = [("method", method), ("route", self.route)];
        metrics::histogram!(HTTP_REQUEST_SECONDS, &labels).record(self.started.elapsed().as_secs_f64());
        let [method, route] = labels;
        metrics::counter!(HTTP_REQUESTS_TOTAL, &[method, route, ("status", status.as_str().to_string())]).increment(1);
    }
}
