//! The standard gRPC health service, per service: a service is SERVING only
//! while every store it needs answers, and the overall status (`""`) only
//! while all do.

use foodfast_store::health::StoreHealth;
use foodfast_store::{Backend, Stores};
use tokio_util::sync::CancellationToken;
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;

use crate::config::HealthConfig;

use Backend::{Objects, Postgres, Redis, Scylla};

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
    ("foodfast.v1.MediaService", &[Postgres, Objects]),
];

/// Publishes one probe's outcome.
pub async fn publish(reporter: &HealthReporter, health: StoreHealth) {
    for (service, needs) in SERVICE_DEPENDENCIES {
        reporter.set_service_status(*service, status(needs.iter().all(|b| health.is_up(*b)))).await;
    }
    let all_up = health.postgres && health.redis && health.scylla && health.objects;
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

/// Probes the stores every `probe_interval` until `stop` is cancelled.
pub async fn watch_stores(stores: Stores, reporter: HealthReporter, config: HealthConfig, stop: CancellationToken) {
    let mut debounced = Debounced::new(config.failures_before_down);
    let mut last = None;
    loop {
        let health = debounced.observe(stores.probe(config.probe_timeout).await);
        if last != Some(health) {
            tracing::info!(
                postgres = health.postgres,
                redis = health.redis,
                scylla = health.scylla,
                objects = health.objects,
                "store health"
            );
            last = Some(health);
        }
        publish(&reporter, health).await;
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(config.probe_interval) => {}
        }
    }
}

/// Store health as reported: a store that was up is down only after
/// `failures_before_down` failed probes in a row, and up on its first answer.
/// Every store starts down, until it answers.
struct Debounced {
    failures_before_down: u32,
    /// Consecutive failed probes per store: PostgreSQL, Redis, Scylla, object storage.
    failures: [u32; 4],
}

impl Debounced {
    fn new(failures_before_down: u32) -> Self {
        Self { failures_before_down, failures: [failures_before_down; 4] }
    }

    fn observe(&mut self, probe: StoreHealth) -> StoreHealth {
        let answered = [probe.postgres, probe.redis, probe.scylla, probe.objects];
        for (failures, up) in self.failures.iter_mut().zip(answered) {
            *failures = if up { 0 } else { failures.saturating_add(1) };
        }
        let up = self.failures.map(|failures| failures < self.failures_before_down);
        StoreHealth { postgres: up[0], redis: up[1], scylla: up[2], objects: up[3] }
    }
}

fn status(up: bool) -> ServingStatus {
    if up { ServingStatus::Serving } else { ServingStatus::NotServing }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn probe(postgres: bool, redis: bool, scylla: bool) -> StoreHealth {
        StoreHealth { postgres, redis, scylla, objects: true }
    }

    #[test]
    fn stores_start_down_and_are_up_on_their_first_answer() {
        let mut debounced = Debounced::new(3);
        assert_eq!(debounced.observe(probe(false, true, false)), probe(false, true, false));
        assert_eq!(debounced.observe(probe(true, true, true)), probe(true, true, true));
    }

    #[test]
    fn a_store_that_was_up_is_down_only_after_the_failures_in_a_row() {
        let mut debounced = Debounced::new(3);
        debounced.observe(probe(true, true, true));
        assert_eq!(debounced.observe(probe(true, false, true)), probe(true, true, true), "one slow answer");
        assert_eq!(debounced.observe(probe(true, false, true)), probe(true, true, true));
        assert_eq!(debounced.observe(probe(true, false, true)), probe(true, false, true), "the third in a row");
        assert_eq!(debounced.observe(probe(true, true, true)), probe(true, true, true), "up on its first answer");
    }

    #[test]
    fn an_answer_between_failures_starts_the_count_again() {
        let mut debounced = Debounced::new(2);
        debounced.observe(probe(true, true, true));
        assert_eq!(debounced.observe(probe(false, true, true)), probe(true, true, true));
        assert_eq!(debounced.observe(probe(true, true, true)), probe(true, true, true));
        assert_eq!(debounced.observe(probe(false, true, true)), probe(true, true, true));
        assert_eq!(debounced.observe(probe(false, true, true)), probe(false, true, true));
    }

    #[test]
    fn object_storage_is_counted_like_the_databases() {
        let mut debounced = Debounced::new(2);
        debounced.observe(probe(true, true, true));
        let without_objects = StoreHealth { objects: false, ..probe(true, true, true) };
        assert!(debounced.observe(without_objects).objects, "one failure is allowed");
        assert_eq!(debounced.observe(without_objects), without_objects);
    }

    #[test]
    fn with_one_failure_allowed_a_store_is_down_at_once() {
        let mut debounced = Debounced::new(1);
        debounced.observe(probe(true, true, true));
        assert_eq!(debounced.observe(probe(true, true, false)), probe(true, true, false));
    }
}
