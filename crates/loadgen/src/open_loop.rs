//! Open-loop load: calls start on a fixed schedule whatever the earlier ones
//! are doing, and each latency runs from the call's *scheduled* start, so a
//! server that falls behind shows its queueing instead of slowing the load
//! down (no coordinated omission).

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use clap::builder::RangedU64ValueParser;
use hdrhistogram::Histogram;
use tokio::sync::{Semaphore, mpsc};
use tokio::time::Instant;

/// A call that has not answered after this long counts as a `timeout` error.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// The shape of a load, shared by every mode.
#[derive(Debug, Clone, clap::Args)]
pub struct Load {
    /// Calls started per second, at exact intervals.
    #[arg(long, default_value_t = 200, value_parser = RangedU64ValueParser::<u32>::new().range(1..))]
    pub rate: u32,
    /// How long the measured part runs.
    #[arg(long, default_value = "20s", value_parser = humantime::parse_duration)]
    pub duration: Duration,
    /// Load before the measured part, at the same rate, not recorded.
    #[arg(long, default_value = "3s", value_parser = humantime::parse_duration)]
    pub warmup: Duration,
    /// Most calls in flight at once. A call due while all are busy waits,
    /// and the wait counts in its latency.
    #[arg(long, default_value_t = 64, value_parser = RangedU64ValueParser::<usize>::new().range(1..))]
    pub concurrency: usize,
}

impl Load {
    /// When call `index` is due, counted from the start of the warm-up.
    fn due(&self, index: u64) -> Duration {
        Duration::from_nanos(index * 1_000_000_000 / u64::from(self.rate))
    }

    fn calls_in(&self, span: Duration) -> u64 {
        (span.as_secs_f64() * f64::from(self.rate)).round() as u64
    }
}

/// What the measured calls did.
pub struct Outcome {
    pub ok: u64,
    /// Failed calls by kind (a gRPC code, an SQLSTATE, `timeout`).
    pub errors: BTreeMap<String, u64>,
    /// Latency of the successful calls, in microseconds.
    pub latency: Histogram<u64>,
    /// From the first measured call's scheduled start to the last measured
    /// call's answer.
    pub elapsed: Duration,
}

impl Outcome {
    /// Successful calls per second over the measured part.
    pub fn throughput(&self) -> f64 {
        if self.elapsed.is_zero() { 0.0 } else { self.ok as f64 / self.elapsed.as_secs_f64() }
    }
}

struct Done {
    measured: bool,
    scheduled: Instant,
    finished: Instant,
    result: Result<(), String>,
}

/// Runs `load`, starting `call()` at each scheduled instant; a call answers
/// `Err(kind)` when it fails. Returns when every call has answered or timed
/// out.
pub async fn run<F, Fut>(load: &Load, mut call: F) -> Outcome
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<(), String>> + Send + 'static,
{
    let warmup_calls = load.calls_in(load.warmup);
    let total_calls = warmup_calls + load.calls_in(load.duration);
    let slots = Arc::new(Semaphore::new(load.concurrency));
    let (done_tx, done_rx) = mpsc::unbounded_channel();
    let start = Instant::now();
    for index in 0..total_calls {
        let scheduled = start + load.due(index);
        tokio::time::sleep_until(scheduled).await;
        let slot = slots.clone().acquire_owned().await.expect("the semaphore is never closed");
        let call = call();
        let done_tx = done_tx.clone();
        tokio::spawn(async move {
            let result = tokio::time::timeout(CALL_TIMEOUT, call).await.unwrap_or_else(|_| Err("timeout".into()));
            let finished = Instant::now();
            drop(slot);
            let _ = done_tx.send(Done { measured: index >= warmup_calls, scheduled, finished, result });
        });
    }
    drop(done_tx);
    collect(done_rx, start + load.due(warmup_calls)).await
}

/// Closed-loop load, for the most a system can do: `load.concurrency`
/// callers, each starting its next call as soon as its previous one answered,
/// through the warm-up and the measured part (`load.rate` is not used).
/// Latency runs from each call's start.
pub async fn run_closed<F, Fut>(load: &Load, call: F) -> Outcome
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), String>> + Send + 'static,
{
    let call = Arc::new(call);
    let measured_from = Instant::now() + load.warmup;
    let end = measured_from + load.duration;
    let (done_tx, done_rx) = mpsc::unbounded_channel();
    for _ in 0..load.concurrency {
        let (call, done_tx) = (call.clone(), done_tx.clone());
        tokio::spawn(async move {
            while Instant::now() < end {
                let scheduled = Instant::now();
                let result = tokio::time::timeout(CALL_TIMEOUT, call()).await.unwrap_or_else(|_| Err("timeout".into()));
                let finished = Instant::now();
                let _ = done_tx.send(Done { measured: scheduled >= measured_from, scheduled, finished, result });
            }
        });
    }
    drop(done_tx);
    collect(done_rx, measured_from).await
}

/// Tallies the measured calls as they answer, until every caller is done.
async fn collect(mut done_rx: mpsc::UnboundedReceiver<Done>, measured_from: Instant) -> Outcome {
    let mut outcome = Outcome {
        ok: 0,
        errors: BTreeMap::new(),
        latency: Histogram::new_with_bounds(1, CALL_TIMEOUT.as_micros() as u64 * 2, 3).expect("valid bounds"),
        elapsed: Duration::ZERO,
    };
    while let Some(done) = done_rx.recv().await {
        if !done.measured {
            continue;
        }
        outcome.elapsed = outcome.elapsed.max(done.finished - measured_from);
        match done.result {
            Ok(()) => {
                outcome.ok += 1;
                outcome.latency.saturating_record((done.finished - done.scheduled).as_micros() as u64);
            }
            Err(kind) => *outcome.errors.entry(kind).or_default() += 1,
        }
    }
    outcome
}
