//! What every FoodFast binary reports about itself: logs on stderr, traces
//! over OTLP/gRPC when a collector is configured, and Prometheus metrics on a
//! separate admin listener. The server and the gateway share all of it.
//!
//! Spans meant for traces (one per RPC, per HTTP request and per store call)
//! use the target [`SPAN_TARGET`]. Logs never subscribe to it, so with no
//! collector configured those spans are disabled callsites: no cost.

pub mod admin;
pub mod grpc;
pub mod metrics;
pub mod propagation;

use std::time::Duration;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider};
use serde::{Deserialize, Serialize};
use tracing::level_filters::LevelFilter;
use tracing_subscriber::filter::{EnvFilter, Targets};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{Layer, Registry};

/// The target of spans that only traces want.
pub const SPAN_TARGET: &str = "foodfast::trace";

/// Where traces go.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TracesConfig {
    /// OTLP/gRPC endpoint of a collector, e.g. `http://otel-collector:4317`.
    /// None: no traces are exported (and none are recorded).
    pub otlp_endpoint: Option<String>,
    /// Share of traces started here that are kept, 0 to 1. A request that
    /// arrives with a sampled `traceparent` is always kept.
    pub sample_ratio: f64,
}

impl Default for TracesConfig {
    fn default() -> Self {
        Self { otlp_endpoint: None, sample_ratio: 1.0 }
    }
}

impl TracesConfig {
    /// Checks each field; a refusal names the field (`sample_ratio`,
    /// `otlp_endpoint`) so that the binary can name its variable.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        if !(0.0..=1.0).contains(&self.sample_ratio) {
            return Err(("sample_ratio", format!("must be between 0 and 1, not {}", self.sample_ratio)));
        }
        if let Some(endpoint) = &self.otlp_endpoint {
            let expected =
                || ("otlp_endpoint", format!("{endpoint:?}: expected http://host:port or https://host:port"));
            let uri: http::Uri = endpoint.parse().map_err(|_| expected())?;
            if !matches!(uri.scheme_str(), Some("http" | "https")) || uri.host().is_none() {
                return Err(expected());
            }
        }
        Ok(())
    }
}

/// How logs are written.
pub struct LogSettings<'a> {
    /// A `tracing` filter such as `info,scylla=warn`; `RUST_LOG` wins when set.
    pub filter: &'a str,
    pub json: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    #[error("OTLP exporter: {0}")]
    Exporter(#[from] opentelemetry_otlp::ExporterBuildError),
    #[error("installing the metrics recorder: {0}")]
    Metrics(String),
    #[error("cannot listen on {addr} (admin.listen_addr): {source}")]
    AdminListener { addr: std::net::SocketAddr, source: std::io::Error },
}

/// Keeps the trace pipeline alive; dropping it flushes the spans not yet
/// exported (bounded by the exporter's timeout).
#[must_use = "dropping the guard stops trace export"]
pub struct Telemetry {
    tracer_provider: Option<SdkTracerProvider>,
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        if let Some(provider) = self.tracer_provider.take()
            && let Err(err) = provider.shutdown()
        {
            eprintln!("flushing traces at exit: {err}");
        }
    }
}

/// Installs the global subscriber: logs, and traces when `traces` names a
/// collector. Call it inside the Tokio runtime: the OTLP exporter's channel
/// lives there.
pub fn init(
    service_name: &'static str,
    logs: &LogSettings<'_>,
    traces: &TracesConfig,
) -> Result<Telemetry, TelemetryError> {
    opentelemetry::global::set_text_map_propagator(opentelemetry_sdk::propagation::TraceContextPropagator::new());
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new(logs.filter))
        .add_directive(format!("{SPAN_TARGET}=off").parse().expect("a valid directive"));
    let fmt = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let fmt: Box<dyn Layer<Registry> + Send + Sync> = if logs.json {
        fmt.json().flatten_event(true).with_current_span(true).with_filter(filter).boxed()
    } else {
        fmt.with_filter(filter).boxed()
    };
    let Some(endpoint) = &traces.otlp_endpoint else {
        tracing_subscriber::registry().with(fmt).init();
        return Ok(Telemetry { tracer_provider: None });
    };
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .with_endpoint(endpoint)
        .with_timeout(Duration::from_secs(5))
        .build()?;
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_sampler(Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(traces.sample_ratio))))
        .with_resource(Resource::builder().with_service_name(service_name).build())
        .build();
    // Our spans, and warnings from anywhere as events on them.
    let traced = Targets::new().with_default(LevelFilter::WARN).with_target(SPAN_TARGET, LevelFilter::TRACE);
    let otel = tracing_opentelemetry::layer().with_tracer(provider.tracer(service_name)).with_filter(traced);
    tracing_subscriber::registry().with(fmt).with(otel).init();
    Ok(Telemetry { tracer_provider: Some(provider) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_and_ratios_are_checked() {
        assert!(TracesConfig::default().validate().is_ok());
        let with = |endpoint: &str, sample_ratio| TracesConfig { otlp_endpoint: Some(endpoint.into()), sample_ratio };
        assert!(with("http://otel-collector:4317", 0.1).validate().is_ok());
        assert!(with("https://collector.example", 1.0).validate().is_ok());
        let (field, message) = with("otel-collector:4317", 1.0).validate().unwrap_err();
        assert_eq!(field, "otlp_endpoint");
        assert!(message.contains("http://host:port"), "{message}");
        let (field, message) = with("http://otel-collector:4317", 1.5).validate().unwrap_err();
        assert_eq!(field, "sample_ratio");
        assert!(message.contains("between 0 and 1"), "{message}");
    }
}
