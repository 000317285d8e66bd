//! Waits that double after each failure in a row, up to a cap: the one rule
//! every retry loop here follows.

use std::time::Duration;

/// The wait after a failure that followed `failures_before` others in a row:
/// `first`, doubling each time, never more than `cap`.
pub fn doubling(first: Duration, cap: Duration, failures_before: u32) -> Duration {
    first.saturating_mul(1 << failures_before.min(20)).min(cap)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_from_the_first_wait_up_to_the_cap_and_never_overflows() {
        let (first, cap) = (Duration::from_secs(2), Duration::from_secs(60));
        let waits: Vec<u64> = (0..7).map(|n| doubling(first, cap, n).as_secs()).collect();
        assert_eq!(waits, [2, 4, 8, 16, 32, 60, 60]);
        assert_eq!(doubling(first, cap, u32::MAX), cap);
        assert_eq!(doubling(Duration::MAX, Duration::MAX, 40), Duration::MAX);
    }
}
