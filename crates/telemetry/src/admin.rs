//! The admin listener, apart from the traffic port so that it is never
//! exposed with it: `GET /metrics` (Prometheus text), `GET /livez` (the
//! process answers) and, where the binary has one, `GET /readyz`.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use metrics_exporter_prometheus::PrometheusHandle;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::TelemetryError;

/// Whether the binary should take traffic now.
pub type ReadinessCheck = Arc<dyn Fn() -> Pin<Box<dyn Future<Output = bool> + Send>> + Send + Sync>;

#[derive(Clone)]
struct Admin {
    metrics: PrometheusHandle,
    readiness: Option<ReadinessCheck>,
}

/// Installs the metrics recorder and serves the admin endpoints on `addr`
/// until the returned token is cancelled (after the traffic port, so that
/// the drain shows in the metrics).
pub async fn start(addr: SocketAddr, readiness: Option<ReadinessCheck>) -> Result<CancellationToken, TelemetryError> {
    let metrics = crate::metrics::install()?;
    let listener = TcpListener::bind(addr).await.map_err(|source| TelemetryError::AdminListener { addr, source })?;
    tracing::info!(%addr, "admin listener: /metrics, /livez{}", if readiness.is_some() { ", /readyz" } else { "" });
    let stop = CancellationToken::new();
    let stopped = stop.clone().cancelled_owned();
    tokio::spawn(async move {
        if let Err(err) = serve(listener, metrics, readiness, stopped).await {
            tracing::error!(error = %err, "admin listener failed");
        }
    });
    Ok(stop)
}

/// Serves the admin endpoints on `listener` until `shutdown` resolves.
async fn serve(
    listener: TcpListener,
    metrics: PrometheusHandle,
    readiness: Option<ReadinessCheck>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let upkeep = {
        let metrics = metrics.clone();
        // Histograms are drained into their buckets by upkeep; without it
        // their samples pile up between scrapes.
        tokio::spawn(async move {
            let mut every = tokio::time::interval(Duration::from_secs(5));
            loop {
                every.tick().await;
                metrics.run_upkeep();
            }
        })
    };
    let mut router = Router::new().route("/metrics", get(render)).route("/livez", get(|| async { "ok\n" }));
    if readiness.is_some() {
        router = router.route("/readyz", get(ready));
    }
    let served =
        axum::serve(listener, router.with_state(Admin { metrics, readiness })).with_graceful_shutdown(shutdown).await;
    upkeep.abort();
    served
}

async fn render(State(admin): State<Admin>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], admin.metrics.render())
}

async fn ready(State(admin): State<Admin>) -> impl IntoResponse {
    let ready = match &admin.readiness {
        Some(check) => check().await,
        None => true,
    };
    if ready { (StatusCode::OK, "ready\n") } else { (StatusCode::SERVICE_UNAVAILABLE, "not ready\n") }
}
