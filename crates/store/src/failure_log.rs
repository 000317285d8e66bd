//! Logging a failure that repeats on every message (every point written,
//! every ping made live) without flooding the logs while a store is down.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::{Chain, StoreError, lock};

const WARN_EVERY: Duration = Duration::from_secs(10);

/// Warns at most once per 10 s with a count, not once per failure, and says
/// once when it works again after a warning.
pub struct FailureLog {
    /// What fails, as the warning says it.
    what: &'static str,
    failing: AtomicBool,
    state: Mutex<FailureState>,
}

struct FailureState {
    since: Option<Instant>,
    last_warn: Option<Instant>,
    warned: bool,
    unreported: u64,
}

impl FailureLog {
    pub const fn new(what: &'static str) -> Self {
        Self {
            what,
            failing: AtomicBool::new(false),
            state: Mutex::new(FailureState { since: None, last_warn: None, warned: false, unreported: 0 }),
        }
    }

    pub fn failed(&self, err: &StoreError) {
        let mut state = lock(&self.state);
        // Under the lock, so a concurrent success cannot miss this episode.
        self.failing.store(true, Ordering::Relaxed);
        let now = Instant::now();
        let since = *state.since.get_or_insert(now);
        state.unreported += 1;
        if state.last_warn.is_none_or(|at| now - at >= WARN_EVERY) {
            tracing::warn!(
                error = %Chain(err),
                failed_attempts = state.unreported,
                failing_for = ?now - since,
                "{}", self.what
            );
            state.last_warn = Some(now);
            state.warned = true;
            state.unreported = 0;
        }
    }

    pub fn succeeded(&self) {
        // The common case costs one relaxed load.
        if !self.failing.load(Ordering::Relaxed) || !self.failing.swap(false, Ordering::Relaxed) {
            return;
        }
        let mut state = lock(&self.state);
        let Some(since) = state.since.take() else { return };
        state.unreported = 0;
        if std::mem::take(&mut state.warned) {
            tracing::info!(failing_for = ?since.elapsed(), "works again after: {}", self.what);
        }
    }
}
