//! The server's logs, traces and metrics (the machinery is in
//! `foodfast-telemetry`), and the metrics only the server records.

use foodfast_telemetry::grpc::{GrpcTelemetryLayer, RpcKind};
use foodfast_telemetry::{LogSettings, Telemetry, TelemetryError};
use prost_reflect::DescriptorPool;

use crate::config::{Config, LogFormat};

pub const PINGS_ACCEPTED_TOTAL: &str = "foodfast_pings_accepted_total";
pub const NOTIFICATION_ATTEMPTS_TOTAL: &str = "foodfast_notification_attempts_total";
pub const NOTIFICATIONS_PENDING: &str = "foodfast_notifications_pending";
pub const UPLOAD_JOBS_TOTAL: &str = "foodfast_upload_jobs_total";
pub const PAYMENT_CALLS_TOTAL: &str = "foodfast_payment_calls_total";
pub const PINGS_REJECTED_TOTAL: &str = "foodfast_pings_rejected_total";
pub const PINGS_ACKED_TOTAL: &str = "foodfast_pings_acked_total";
pub const PING_TO_TRACKING_SECONDS: &str = "foodfast_ping_to_tracking_seconds";

/// Logs, and traces when `traces.otlp_endpoint` is set. Call it inside the
/// Tokio runtime.
pub fn init(config: &Config) -> Result<Telemetry, TelemetryError> {
    let logs = LogSettings { filter: &config.log.filter, json: config.log.format == LogFormat::Json };
    foodfast_telemetry::init("foodfast-server", &logs, &config.traces)
}

/// HELP lines for every metric the server process records.
pub fn describe_metrics() {
    use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    foodfast_telemetry::grpc::describe_metrics();
    foodfast_store::metrics::describe();
    describe_counter!(PINGS_ACCEPTED_TOTAL, "driver pings accepted (live, and queued for the time series)");
    describe_counter!(PINGS_REJECTED_TOTAL, "driver pings rejected, by reason");
    describe_counter!(PINGS_ACKED_TOTAL, "accepted pings acknowledged to the driver as durable");
    describe_counter!(
        NOTIFICATION_ATTEMPTS_TOTAL,
        "notification attempts by this replica's sender, by channel and outcome (sent, retry, failed)"
    );
    describe_counter!(
        UPLOAD_JOBS_TOTAL,
        "image upload jobs this replica's workers ended or put back, by target and outcome \
         (succeeded, refused, failed, retry, lost)"
    );
    describe_counter!(
        PAYMENT_CALLS_TOTAL,
        "capture, void and refund calls this replica's settlement made, by effect and outcome \
         (settled, unavailable, reconciled: refused but settled by the provider's state, refused: needs a person)"
    );
    describe_gauge!(NOTIFICATIONS_PENDING, "notifications waiting to be sent, in every replica's queue");
    describe_histogram!(
        PING_TO_TRACKING_SECONDS,
        Unit::Seconds,
        "from the server accepting a driver's ping to its position leaving on a TrackOrder stream"
    );
}

/// Spans and RPC metrics for every method the server serves, named and
/// typed from the descriptor sets it also serves through reflection. Built
/// once per process: its labels live as long as the process.
pub fn grpc_layer() -> GrpcTelemetryLayer {
    static LAYER: std::sync::OnceLock<GrpcTelemetryLayer> = std::sync::OnceLock::new();
    LAYER.get_or_init(build_grpc_layer).clone()
}

fn build_grpc_layer() -> GrpcTelemetryLayer {
    GrpcTelemetryLayer::new(served_methods())
}

/// Every method the server serves, as (`package.Service`, `Method`, kind),
/// read from the descriptor sets it also serves through reflection.
pub fn served_methods() -> Vec<(String, String, RpcKind)> {
    let mut pool = DescriptorPool::new();
    for set in [
        foodfast_api::FILE_DESCRIPTOR_SET,
        tonic_health::pb::FILE_DESCRIPTOR_SET,
        tonic_reflection::pb::v1::FILE_DESCRIPTOR_SET,
        tonic_reflection::pb::v1alpha::FILE_DESCRIPTOR_SET,
    ] {
        pool.decode_file_descriptor_set(set).expect("the built-in descriptor sets decode");
    }
    pool.services()
        .flat_map(|service| {
            service
                .methods()
                .map(|method| {
                    let kind = RpcKind::of(method.is_client_streaming(), method.is_server_streaming());
                    (service.full_name().to_string(), method.name().to_string(), kind)
                })
                .collect::<Vec<_>>()
        })
        .collect()
}
