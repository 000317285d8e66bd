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
    method: &'static str,
    route: String,
    started: Instant,
}

impl RequestTelemetry {
    /// `route`: the route's template, or a fixed word for what has none, so
    /// that labels stay few whatever paths clients send.
    pub fn start(method: &Method, route: String, headers: &http::HeaderMap) -> Self {
        let method = method_label(method);
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
        Self { span, method, route, started: Instant::now() }
    }

    pub fn finish(self, status: StatusCode) {
        self.span.record("http.response.status_code", status.as_u16());
        if status.is_server_error() {
            self.span.record("otel.status_code", "ERROR");
        }
        let method = self.method.to_string();
        let labels = [("method", method), ("route", self.route)];
        metrics::histogram!(HTTP_REQUEST_SECONDS, &labels).record(self.started.elapsed().as_secs_f64());
        let [method, route] = labels;
        metrics::counter!(HTTP_REQUESTS_TOTAL, &[method, route, ("status", status.as_str().to_string())]).increment(1);
    }
}

/// The method as a label: a standard one, or `_OTHER` (as OpenTelemetry
/// names it), so that a client inventing methods cannot add series.
fn method_label(method: &Method) -> &'static str {
    [
        Method::GET,
        Method::HEAD,
        Method::POST,
        Method::PUT,
        Method::DELETE,
        Method::CONNECT,
        Method::OPTIONS,
        Method::TRACE,
        Method::PATCH,
    ]
    .iter()
    .find(|known| *known == method)
    .map_or("_OTHER", Method::as_str)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invented_methods_share_one_label() {
        assert_eq!(method_label(&Method::PATCH), "PATCH");
        let invented = |name: &str| method_label(&Method::from_bytes(name.as_bytes()).unwrap());
        assert_eq!((invented("FOO1"), invented("FOO2")), ("_OTHER", "_OTHER"));
    }
}
