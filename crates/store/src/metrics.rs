//! What the stores count, through the `metrics` facade (a no-op until a
//! binary installs a recorder). Names follow Prometheus conventions: units
//! in the name, `_total` on counters.

use std::time::Duration;

use foodfast_domain::order::OrderStatus;

use crate::dispatch::OfferStatus;

pub const ORDER_TRANSITIONS_TOTAL: &str = "foodfast_order_transitions_total";
pub const DISPATCH_OFFERS_TOTAL: &str = "foodfast_dispatch_offers_total";
pub const DISPATCH_OFFER_ANSWERS_TOTAL: &str = "foodfast_dispatch_offer_outcomes_total";
pub const CACHE_REQUESTS_TOTAL: &str = "foodfast_cache_requests_total";
pub const RATE_LIMITED_TOTAL: &str = "foodfast_rate_limited_total";
pub const LOCATION_QUEUE_DEPTH: &str = "foodfast_location_writer_queue_depth";
pub const LOCATION_WRITE_SECONDS: &str = "foodfast_location_write_seconds";
pub const LOCATION_WRITE_RETRIES_TOTAL: &str = "foodfast_location_write_retries_total";
pub const PUBSUB_OVERFLOWS_TOTAL: &str = "foodfast_pubsub_inbox_overflows_total";

pub fn describe() {
    use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    describe_counter!(ORDER_TRANSITIONS_TOTAL, "order status changes committed, by from and to status");
    describe_counter!(DISPATCH_OFFERS_TOTAL, "delivery offers made to drivers");
    describe_counter!(
        DISPATCH_OFFER_ANSWERS_TOTAL,
        "delivery offers closed, by outcome: accepted, declined, expired (no answer in time or the driver left)"
    );
    describe_counter!(CACHE_REQUESTS_TOTAL, "cache lookups, by cache and result (hit, miss, error)");
    describe_counter!(RATE_LIMITED_TOTAL, "requests refused by a rate limit, by limit");
    describe_gauge!(LOCATION_QUEUE_DEPTH, "accepted pings waiting for the time-series writer");
    describe_histogram!(
        LOCATION_WRITE_SECONDS,
        Unit::Seconds,
        "time from a ping leaving the writer's queue to both of its rows being written, retries included"
    );
    describe_counter!(LOCATION_WRITE_RETRIES_TOTAL, "time-series inserts that failed and were retried");
    describe_counter!(
        PUBSUB_OVERFLOWS_TOTAL,
        "times the pub/sub listener fell behind, dropped messages and caught up from the stores"
    );
}

/// A committed status change (`from` None: the order was just placed).
pub(crate) fn order_transition(from: Option<OrderStatus>, to: OrderStatus) {
    let from = from.map_or("new", OrderStatus::as_str);
    metrics::counter!(ORDER_TRANSITIONS_TOTAL, "from" => from, "to" => to.as_str()).increment(1);
}

pub(crate) fn offer_made() {
    metrics::counter!(DISPATCH_OFFERS_TOTAL).increment(1);
}

pub(crate) fn offers_closed(outcome: OfferStatus, count: usize) {
    metrics::counter!(DISPATCH_OFFER_ANSWERS_TOTAL, "outcome" => outcome.as_str()).increment(count as u64);
}

pub(crate) fn cache_lookup(cache: &'static str, result: &'static str) {
    metrics::counter!(CACHE_REQUESTS_TOTAL, "cache" => cache, "result" => result).increment(1);
}

pub(crate) fn rate_limited(limit: &'static str) {
    metrics::counter!(RATE_LIMITED_TOTAL, "limit" => limit).increment(1);
}

pub(crate) fn location_queue_depth(depth: usize) {
    metrics::gauge!(LOCATION_QUEUE_DEPTH).set(depth as f64);
}

pub(crate) fn location_written(took: Duration) {
    metrics::histogram!(LOCATION_WRITE_SECONDS).record(took.as_secs_f64());
}

pub(crate) fn location_write_retried() {
    metrics::counter!(LOCATION_WRITE_RETRIES_TOTAL).increment(1);
}
