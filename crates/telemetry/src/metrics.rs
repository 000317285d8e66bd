//! The process-wide Prometheus recorder. Crates record through the `metrics`
//! facade (a no-op until this is installed, e.g. in tests that run a server
//! in process) and describe their own metrics next to where they record them.

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::TelemetryError;

/// Buckets of every `*_seconds` histogram: sub-millisecond calls up to
/// streams that stay open for minutes.
const SECONDS_BUCKETS: &[f64] =
    &[0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 1800.0];

/// Installs the global recorder; the handle renders the text exposition.
pub fn install() -> Result<PrometheusHandle, TelemetryError> {
    PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), SECONDS_BUCKETS)
        .map_err(|err| TelemetryError::Metrics(err.to_string()))?
        .install_recorder()
        .map_err(|err| TelemetryError::Metrics(err.to_string()))
}
