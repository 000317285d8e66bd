//! Periodic re-reads spread out in time: streams opened together (a
//! deploy, a reconnect storm, a load test) must not hit the database
//! together on every tick.

use std::time::Duration;

/// `interval` scaled by a random factor in [0.5, 1.5): the same mean, but
/// timers that started together drift apart instead of firing as one herd.
pub fn jittered(interval: Duration) -> Duration {
    interval.mul_f64(0.5 + fastrand::f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jittered_intervals_stay_within_half_to_one_and_a_half_and_spread() {
        let interval = Duration::from_secs(30);
        let samples: Vec<Duration> = (0..1_000).map(|_| jittered(interval)).collect();
        assert!(samples.iter().all(|d| *d >= interval / 2 && *d < interval * 3 / 2));
        let mean = samples.iter().sum::<Duration>() / samples.len() as u32;
        assert!(mean > Duration::from_secs(28) && mean < Duration::from_secs(32), "mean {mean:?}");
        let (early, late) = (samples.iter().filter(|d| **d < interval).count(), samples.len());
        assert!(early > 400 && early < 600, "{early} of {late} below the interval");
    }
}
