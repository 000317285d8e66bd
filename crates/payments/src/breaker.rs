//! A circuit breaker: after `threshold` consecutive failed attempts the provider is left
//! alone for `open_for`, so that a provider outage costs each order a fast error instead
//! of a slow one and the provider is not hammered while it recovers. Then one trial
//! attempt is let through (half-open): success closes the breaker, failure opens it
//! again for another `open_for`.
//!
//! Time is passed in, which keeps the breaker deterministic to test.

use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

pub(crate) struct CircuitBreaker {
    threshold: u32,
    open_for: Duration,
    state: Mutex<State>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Closed { failures: u32 },
    Open { until: Instant },
    HalfOpen { trial_in_flight: bool },
}

/// Leave to make one attempt; report its outcome with [`Permit::success`] or
/// [`Permit::failure`].
pub(crate) struct Permit<'a> {
    breaker: &'a CircuitBreaker,
    trial: bool,
    reported: bool,
}

impl CircuitBreaker {
    pub(crate) fn new(threshold: u32, open_for: Duration) -> Self {
        Self { threshold, open_for, state: Mutex::new(State::Closed { failures: 0 }) }
    }

    /// A permit, or `None` while the breaker is open (or half-open with its one trial
    /// already under way).
    pub(crate) fn try_acquire(&self, now: Instant) -> Option<Permit<'_>> {
        let mut state = self.state();
        let trial = match *state {
            State::Closed { .. } => false,
            State::Open { until } if now >= until => {
                *state = State::HalfOpen { trial_in_flight: true };
                true
            }
            State::HalfOpen { trial_in_flight: false } => {
                *state = State::HalfOpen { trial_in_flight: true };
                true
            }
            State::Open { .. } | State::HalfOpen { trial_in_flight: true } => return None,
        };
        Some(Permit { breaker: self, trial, reported: false })
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // The state is a plain value, valid even if a holder panicked.
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Permit<'_> {
    pub(crate) fn success(mut self) {
        self.reported = true;
        let mut state = self.breaker.state();
        match *state {
            State::Closed { .. } => *state = State::Closed { failures: 0 },
            State::HalfOpen { .. } if self.trial => *state = State::Closed { failures: 0 },
            // An attempt begun before the breaker opened says nothing about now.
            State::Open { .. } | State::HalfOpen { .. } => {}
        }
    }

    pub(crate) fn failure(mut self, now: Instant) {
        self.reported = true;
        let mut state = self.breaker.state();
        let open = State::Open { until: now + self.breaker.open_for };
        match *state {
            State::Closed { failures } if failures + 1 >= self.breaker.threshold => {
                tracing::warn!(failures = failures + 1, open_for = ?self.breaker.open_for, "payment provider circuit opened");
                *state = open;
            }
            State::Closed { failures } => *state = State::Closed { failures: failures + 1 },
            State::HalfOpen { .. } if self.trial => {
                tracing::warn!(open_for = ?self.breaker.open_for, "payment provider trial call failed; circuit open again");
                *state = open;
            }
            State::Open { .. } | State::HalfOpen { .. } => {}
        }
    }
}

impl Drop for Permit<'_> {
    /// A trial abandoned without an outcome (its caller was cancelled) must not keep the
    /// breaker half-open forever: the next caller gets the trial.
    fn drop(&mut self) {
        if self.trial && !self.reported {
            let mut state = self.breaker.state();
            if *state == (State::HalfOpen { trial_in_flight: true }) {
                *state = State::HalfOpen { trial_in_flight: false };
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OPEN_FOR: Duration = Duration::from_secs(30);

    fn fail(breaker: &CircuitBreaker, now: Instant) {
        breaker.try_acquire(now).expect("breaker should let the attempt through").failure(now);
    }

    fn succeed(breaker: &CircuitBreaker, now: Instant) {
        breaker.try_acquire(now).expect("breaker should let the attempt through").success();
    }

    #[test]
    fn opens_after_threshold_consecutive_failures() {
        let breaker = CircuitBreaker::new(3, OPEN_FOR);
        let t0 = Instant::now();
        fail(&breaker, t0);
        fail(&breaker, t0);
        assert!(breaker.try_acquire(t0).is_some(), "two failures of three keep it closed");
        fail(&breaker, t0);
        assert!(breaker.try_acquire(t0).is_none());
        assert!(breaker.try_acquire(t0 + OPEN_FOR - Duration::from_millis(1)).is_none());
    }

    #[test]
    fn a_success_resets_the_count() {
        let breaker = CircuitBreaker::new(3, OPEN_FOR);
        let t0 = Instant::now();
        fail(&breaker, t0);
        fail(&breaker, t0);
        succeed(&breaker, t0);
        fail(&breaker, t0);
        fail(&breaker, t0);
        assert!(breaker.try_acquire(t0).is_some(), "only consecutive failures count");
    }

    #[test]
    fn half_open_lets_one_trial_through_and_its_success_closes() {
        let breaker = CircuitBreaker::new(1, OPEN_FOR);
        let t0 = Instant::now();
        fail(&breaker, t0);
        let later = t0 + OPEN_FOR;
        let trial = breaker.try_acquire(later).expect("cool-down over: one trial");
        assert!(breaker.try_acquire(later).is_none(), "only one trial at a time");
        trial.success();
        assert!(breaker.try_acquire(later).is_some());
        assert!(breaker.try_acquire(later).is_some(), "closed: no limit on attempts");
    }

    #[test]
    fn a_failed_trial_opens_it_for_another_cool_down() {
        let breaker = CircuitBreaker::new(2, OPEN_FOR);
        let t0 = Instant::now();
        fail(&breaker, t0);
        fail(&breaker, t0);
        let t1 = t0 + OPEN_FOR + Duration::from_secs(5);
        fail(&breaker, t1);
        assert!(breaker.try_acquire(t1 + OPEN_FOR - Duration::from_millis(1)).is_none());
        assert!(breaker.try_acquire(t1 + OPEN_FOR).is_some());
    }

    #[test]
    fn an_abandoned_trial_frees_the_slot() {
        let breaker = CircuitBreaker::new(1, OPEN_FOR);
        let t0 = Instant::now();
        fail(&breaker, t0);
        let later = t0 + OPEN_FOR;
        drop(breaker.try_acquire(later).unwrap());
        assert!(breaker.try_acquire(later).is_some());
    }

    #[test]
    fn attempts_begun_before_the_opening_change_nothing() {
        let breaker = CircuitBreaker::new(1, OPEN_FOR);
        let t0 = Instant::now();
        let early_success = breaker.try_acquire(t0).unwrap();
        let early_failure = breaker.try_acquire(t0).unwrap();
        fail(&breaker, t0);
        early_success.success();
        assert!(breaker.try_acquire(t0).is_none(), "an old success does not close an open breaker");

        let later = t0 + OPEN_FOR;
        let trial = breaker.try_acquire(later).unwrap();
        early_failure.failure(later);
        trial.success();
        assert!(breaker.try_acquire(later).is_some(), "only the trial decides a half-open breaker");
    }
}
