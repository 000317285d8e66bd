//! The standard gRPC health service, per service: a service is SERVING only
//! while every store it needs answers, and the overall status (`""`) only
//! while all do.

use std::time::Duration;

use foodfast_store::health::StoreHealth;
use foodfast_store::{Backend, Stores};
use tokio_util::sync::CancellationToken;
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;

use Backend::{Postgres, Redis, Scylla};

/// Which stores each service cannot work without.
pub const SERVICE_DEPENDENCIES: &[(&str, &[Backend])] = &[
    ("foodfast.v1.AccountService", &[Postgres, Redis]),
    ("foodfast.v1.RestaurantService", &[Postgres, Redis]),
    ("foodfast.v1.OrderService", &[Postgres, Redis]),
    ("foodfast.v1.DriverService", &[Postgres, Redis, Scylla]),
    ("foodfast.v1.TrackingService", &[Postgres, Redis, Scylla]),
    ("foodfast.v1.DispatchService", &[Postgres, Redis]),
    ("foodfast.v1.NotificationService", &[Postgres, Redis]),
    ("foodfast.v1.SupportService", &[Postgres, Redis]),
    ("foodfast.v1.MediaService", &[Postgres, Redis]),
];

/// Publishes one probe's outcome.
pub async fn publish(reporter: &HealthReporter, health: StoreHealth) {
    for (service, needs) in SERVICE_DEPENDENCIES {
        reporter.set_service_status(*service, status(needs.iter().all(|b| health.is_up(*b)))).await;
    }
    let all_up = health.postgres && health.redis && health.scylla;
    reporter.set_service_status("", status(all_up)).await;
}

/// Marks everything NOT_SERVING, so load balancers stop sending new calls
/// while a shutdown drains the open ones.
pub async fn publish_shutting_down(reporter: &HealthReporter) {
    for (service, _) in SERVICE_DEPENDENCIES {
        reporter.set_service_status(*service, ServingStatus::NotServing).await;
    }
    reporter.set_service_status("", ServingStatus::NotServing).await;
}

/// Probes the stores every `interval` until `stop` is cancelled.
pub async fn watch_stores(
    stores: Stores,
    reporter: HealthReporter,
    interval: Duration,
    timeout: Duration,
    stop: CancellationToken,
) {
    let mut last = None;
    loop {
        let health = stores.probe(timeout).await;
        if last != Some(health) {
            tracing::info!(postgres = health.postgres, redis = health.redis, scylla = health.scylla, "store health");
            last = Some(health);
        }
        publish(&reporter, health).await;
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(interval) => {}
        }
    }
}

fn status(up: bool) -> ServingStatus {
    if up { ServingStatus::Serving } else { ServingStatus::NotServing }
}
