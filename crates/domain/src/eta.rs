//! Live ETA for order tracking: recomputed from the courier's position and a smoothed speed, and pushed
//! to the customer only when it changes enough or has not been sent for a while.
//!
//! The rules:
//! - Travel time = straight-line distance × `detour_factor` / smoothed speed, rounded up to a second
//!   (as [`travel_time`]). Before any usable sample the speed is `fallback_speed_mps`.
//! - Before pickup ([`Leg::ToRestaurant`]): `pickup_at` = max(now + travel to the restaurant,
//!   `food_ready_at`), and `delivery_at` = `pickup_at` + travel from the restaurant to the customer.
//! - After pickup ([`Leg::ToCustomer`]): `delivery_at` = now + travel to the customer.
//! - The smoothed speed is an EWMA of samples: the speed the device reports when it is plausible, else
//!   the distance over the time since an earlier position. A sample above `max_speed_mps` is a GPS
//!   glitch and is dropped; one below `min_speed_mps` counts as `min_speed_mps`, so a courier waiting
//!   at a light never makes the ETA infinite.
//! - [`should_push`]: the first ETA is pushed; then one whose `delivery_at` or `pickup_at` moved by
//!   `push_when_moved_by` or more (or whose `pickup_at` appeared or went), and any once
//!   `push_at_least_every` has passed since the last push.
//!
//! Nothing here reads a clock: the caller passes `now` and each sample's time.

use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};

use crate::geo::{LatLng, distance_m, travel_time};
use crate::validation::FieldError;

/// Positions closer in time than this give no derived speed: GPS jitter over a fraction of a second
/// would read as a sprint.
const MIN_DERIVED_SPAN_S: f64 = 1.0;

/// Platform-wide ETA tuning, from configuration.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EtaPolicy {
    /// The speed before the first usable sample, and where the EWMA starts, so that one sample does
    /// not swing the ETA. The default is the quote's courier speed, 20 km/h.
    pub fallback_speed_mps: f64,
    /// The slowest speed assumed: a courier standing still still arrives, eventually.
    pub min_speed_mps: f64,
    /// Faster samples are GPS glitches and are dropped. 40 m/s is 144 km/h.
    pub max_speed_mps: f64,
    /// The weight of a new sample in the EWMA, more than 0 and at most 1 (1 keeps only the latest).
    pub smoothing: f64,
    /// Road distance over straight-line distance: couriers follow streets. At least 1.
    pub detour_factor: f64,
    /// A smaller change of the ETA is not worth a push.
    #[serde(with = "humantime_serde")]
    pub push_when_moved_by: Duration,
    /// Even an unchanged ETA is pushed this often, so the customer sees it is live.
    #[serde(with = "humantime_serde")]
    pub push_at_least_every: Duration,
}

impl Default for EtaPolicy {
    fn default() -> Self {
        Self {
            fallback_speed_mps: 20.0 / 3.6,
            min_speed_mps: 1.0,
            max_speed_mps: 40.0,
            smoothing: 0.3,
            detour_factor: 1.3,
            push_when_moved_by: Duration::from_secs(60),
            push_at_least_every: Duration::from_secs(30),
        }
    }
}

impl EtaPolicy {
    /// For configuration: the field named is the struct field.
    pub fn validate(&self) -> Result<(), FieldError> {
        let positive = |field: &str, value: f64| {
            if value.is_finite() && value > 0.0 {
                Ok(())
            } else {
                Err(FieldError::new(field, "must be a number more than 0"))
            }
        };
        positive("fallback_speed_mps", self.fallback_speed_mps)?;
        positive("min_speed_mps", self.min_speed_mps)?;
        positive("max_speed_mps", self.max_speed_mps)?;
        if self.max_speed_mps < self.min_speed_mps {
            return Err(FieldError::new("max_speed_mps", "must be at least min_speed_mps"));
        }
        if !(self.min_speed_mps..=self.max_speed_mps).contains(&self.fallback_speed_mps) {
            return Err(FieldError::new("fallback_speed_mps", "must be from min_speed_mps to max_speed_mps"));
        }
        // Written so that NaN fails too.
        if !(self.smoothing > 0.0 && self.smoothing <= 1.0) {
            return Err(FieldError::new("smoothing", "must be more than 0 and at most 1"));
        }
        if !(self.detour_factor.is_finite() && self.detour_factor >= 1.0) {
            return Err(FieldError::new("detour_factor", "must be a number of at least 1"));
        }
        if self.push_when_moved_by.is_zero() {
            return Err(FieldError::new("push_when_moved_by", "must be more than 0"));
        }
        if self.push_at_least_every.is_zero() {
            return Err(FieldError::new("push_at_least_every", "must be more than 0"));
        }
        Ok(())
    }

    /// Whether a speed sample is usable at all: a number from 0 to `max_speed_mps`.
    fn plausible(&self, speed_mps: f64) -> bool {
        // `contains` is false for NaN, and the infinities are outside the range.
        (0.0..=self.max_speed_mps).contains(&speed_mps)
    }
}

/// Where the courier is heading.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Leg {
    /// Before pickup: to the restaurant, then on to the customer.
    ToRestaurant,
    /// After pickup: straight to the customer.
    ToCustomer,
}

/// One live estimate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Eta {
    /// When the courier leaves the restaurant with the food; `None` after pickup.
    pub pickup_at: Option<DateTime<Utc>>,
    pub delivery_at: DateTime<Utc>,
    /// Straight-line distance in whole metres to the current target: the restaurant before pickup,
    /// the customer after.
    pub remaining_distance_m: u32,
    pub computed_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
struct Fix {
    position: LatLng,
    at: DateTime<Utc>,
}

/// One courier's smoothed speed, fed with their accepted positions, for one delivery.
#[derive(Debug, Clone, PartialEq)]
pub struct EtaEstimator {
    policy: EtaPolicy,
    /// Always within [min, max]: it starts there and moves only towards samples clamped there.
    speed_mps: f64,
    /// Where the derived speed is measured from: the first fix, then each fix at least
    /// [`MIN_DERIVED_SPAN_S`] after the anchor before it, so a burst of close fixes still yields a speed.
    anchor: Option<Fix>,
    /// The newest sample's time: a sample not after it is stale and ignored.
    latest_at: Option<DateTime<Utc>>,
}

impl EtaEstimator {
    pub fn new(policy: EtaPolicy) -> Self {
        // max/min rather than clamp, which panics on a policy that failed validation.
        let speed_mps = policy.fallback_speed_mps.max(policy.min_speed_mps).min(policy.max_speed_mps);
        Self { policy, speed_mps, anchor: None, latest_at: None }
    }

    /// The smoothed speed the next estimate uses.
    pub fn speed_mps(&self) -> f64 {
        self.speed_mps
    }

    /// Takes in one position. The sample is the device's `reported_speed_mps` when plausible, else the
    /// distance over the time since the anchor (at least a second back); a sample at or before the
    /// newest one is ignored entirely.
    pub fn observe(&mut self, position: LatLng, at: DateTime<Utc>, reported_speed_mps: Option<f32>) {
        if self.latest_at.is_some_and(|latest| at <= latest) {
            return;
        }
        self.latest_at = Some(at);
        let here = Fix { position, at };
        let derived = match self.anchor {
            None => {
                self.anchor = Some(here);
                None
            }
            Some(anchor) => {
                let span_s = (at - anchor.at).as_seconds_f64();
                if span_s < MIN_DERIVED_SPAN_S {
                    None
                } else {
                    self.anchor = Some(here);
                    Some(distance_m(anchor.position, position) / span_s)
                }
            }
        };
        let sample = reported_speed_mps
            .map(f64::from)
            .filter(|&s| self.policy.plausible(s))
            .or(derived.filter(|&s| self.policy.plausible(s)));
        if let Some(sample) = sample {
            let sample = sample.max(self.policy.min_speed_mps);
            self.speed_mps += self.policy.smoothing * (sample - self.speed_mps);
        }
    }

    /// The ETA from `position` at `now`. `food_ready_at` is when the restaurant expects the food to be
    /// ready, if known; it only matters before pickup.
    pub fn estimate(
        &self,
        position: LatLng,
        leg: Leg,
        restaurant: LatLng,
        customer: LatLng,
        food_ready_at: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> Eta {
        match leg {
            Leg::ToRestaurant => {
                let distance = distance_m(position, restaurant);
                let arrival = later(now, self.travel(distance));
                let pickup_at = food_ready_at.map_or(arrival, |ready| arrival.max(ready));
                Eta {
                    pickup_at: Some(pickup_at),
                    delivery_at: later(pickup_at, self.travel(distance_m(restaurant, customer))),
                    remaining_distance_m: whole_metres(distance),
                    computed_at: now,
                }
            }
            Leg::ToCustomer => {
                let distance = distance_m(position, customer);
                Eta {
                    pickup_at: None,
                    delivery_at: later(now, self.travel(distance)),
                    remaining_distance_m: whole_metres(distance),
                    computed_at: now,
                }
            }
        }
    }

    fn travel(&self, straight_m: f64) -> Duration {
        travel_time(straight_m * self.policy.detour_factor, self.speed_mps * 3.6)
    }
}

/// Whether to push `next` to the customer, given the last ETA pushed (`None`: nothing yet).
pub fn should_push(policy: &EtaPolicy, last_pushed: Option<&Eta>, next: &Eta) -> bool {
    let Some(last) = last_pushed else {
        return true;
    };
    let threshold = delta(policy.push_when_moved_by);
    let moved = |from: DateTime<Utc>, to: DateTime<Utc>| (to - from).abs() >= threshold;
    let pickup_changed = match (last.pickup_at, next.pickup_at) {
        (Some(from), Some(to)) => moved(from, to),
        (None, None) => false,
        // Picked up (or, oddly, back before pickup): the customer sees a different screen.
        _ => true,
    };
    pickup_changed
        || moved(last.delivery_at, next.delivery_at)
        || next.computed_at - last.computed_at >= delta(policy.push_at_least_every)
}

/// A configured duration as a [`TimeDelta`]; one too long for it is as good as forever.
fn delta(d: Duration) -> TimeDelta {
    TimeDelta::from_std(d).unwrap_or(TimeDelta::MAX)
}

/// `at` + `wait`, saturating instead of overflowing on absurd input.
fn later(at: DateTime<Utc>, wait: Duration) -> DateTime<Utc> {
    TimeDelta::from_std(wait).ok().and_then(|wait| at.checked_add_signed(wait)).unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// Half the Earth's circumference fits in a u32 of metres; the cast saturates anyway.
fn whole_metres(d: f64) -> u32 {
    d.round() as u32
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use proptest::prelude::*;

    use super::*;
    use crate::geo::{EARTH_RADIUS_M, destination};

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2024, 6, 3, 12, 0, 0).unwrap()
    }

    fn secs(s: i64) -> TimeDelta {
        TimeDelta::seconds(s)
    }

    fn restaurant() -> LatLng {
        LatLng::new(48.8566, 2.3522).unwrap()
    }

    /// A point `m` metres due north of the restaurant (south when negative): along a meridian the
    /// distance is exact.
    fn north(m: f64) -> LatLng {
        let at = restaurant();
        LatLng::new(at.lat + (m / EARTH_RADIUS_M).to_degrees(), at.lng).unwrap()
    }

    /// A policy whose numbers are easy to check: 10 m/s, no detour, every sample taken at face value.
    fn plain() -> EtaPolicy {
        EtaPolicy { fallback_speed_mps: 10.0, smoothing: 1.0, detour_factor: 1.0, ..EtaPolicy::default() }
    }

    /// Equal to within a second: distances carry float error, and travel times round up.
    #[track_caller]
    fn assert_about(actual: DateTime<Utc>, expected: DateTime<Utc>) {
        assert!((actual - expected).abs() <= secs(1), "{actual} is not about {expected}");
    }

    #[test]
    fn the_default_policy_is_valid_and_matches_the_quote() {
        let policy = EtaPolicy::default();
        assert_eq!(policy.validate(), Ok(()));
        assert!((policy.fallback_speed_mps * 3.6 - 20.0).abs() < 1e-9);
        assert_eq!(policy.push_when_moved_by, Duration::from_secs(60));
        assert_eq!(policy.push_at_least_every, Duration::from_secs(30));
        let estimator = EtaEstimator::new(policy);
        assert_eq!(estimator.speed_mps(), policy.fallback_speed_mps);
    }

    #[test]
    fn policy_validation_names_the_field() {
        let default = EtaPolicy::default;
        let cases = [
            (EtaPolicy { fallback_speed_mps: 0.0, ..default() }, "fallback_speed_mps must be a number more than 0"),
            (
                EtaPolicy { fallback_speed_mps: f64::NAN, ..default() },
                "fallback_speed_mps must be a number more than 0",
            ),
            (EtaPolicy { min_speed_mps: -1.0, ..default() }, "min_speed_mps must be a number more than 0"),
            (EtaPolicy { max_speed_mps: f64::INFINITY, ..default() }, "max_speed_mps must be a number more than 0"),
            (
                EtaPolicy { min_speed_mps: 5.0, max_speed_mps: 4.0, fallback_speed_mps: 4.5, ..default() },
                "max_speed_mps must be at least min_speed_mps",
            ),
            (
                EtaPolicy { fallback_speed_mps: 50.0, ..default() },
                "fallback_speed_mps must be from min_speed_mps to max_speed_mps",
            ),
            (
                EtaPolicy { fallback_speed_mps: 0.5, ..default() },
                "fallback_speed_mps must be from min_speed_mps to max_speed_mps",
            ),
            (EtaPolicy { smoothing: 0.0, ..default() }, "smoothing must be more than 0 and at most 1"),
            (EtaPolicy { smoothing: 1.01, ..default() }, "smoothing must be more than 0 and at most 1"),
            (EtaPolicy { smoothing: f64::NAN, ..default() }, "smoothing must be more than 0 and at most 1"),
            (EtaPolicy { detour_factor: 0.9, ..default() }, "detour_factor must be a number of at least 1"),
            (EtaPolicy { detour_factor: f64::NAN, ..default() }, "detour_factor must be a number of at least 1"),
            (EtaPolicy { push_when_moved_by: Duration::ZERO, ..default() }, "push_when_moved_by must be more than 0"),
            (EtaPolicy { push_at_least_every: Duration::ZERO, ..default() }, "push_at_least_every must be more than 0"),
        ];
        for (policy, expected) in cases {
            assert_eq!(policy.validate().unwrap_err().to_string(), expected);
        }
        let edges = EtaPolicy {
            fallback_speed_mps: 3.0,
            min_speed_mps: 3.0,
            max_speed_mps: 3.0,
            smoothing: 1.0,
            detour_factor: 1.0,
            ..default()
        };
        assert_eq!(edges.validate(), Ok(()), "every bound is inclusive");
    }

    #[test]
    fn policy_reads_from_configuration() {
        let policy: EtaPolicy =
            serde_json::from_str(r#"{"smoothing": 0.5, "push_when_moved_by": "2m", "push_at_least_every": "15s"}"#)
                .unwrap();
        assert_eq!(policy.smoothing, 0.5);
        assert_eq!(policy.push_when_moved_by, Duration::from_secs(120));
        assert_eq!(policy.push_at_least_every, Duration::from_secs(15));
        assert_eq!(policy.detour_factor, 1.3, "the rest is the default");
        assert!(serde_json::from_str::<EtaPolicy>(r#"{"smothing": 0.5}"#).is_err(), "typos are refused");
    }

    #[test]
    fn before_pickup_the_target_is_the_restaurant_then_the_customer() {
        let estimator = EtaEstimator::new(plain());
        let eta = estimator.estimate(north(1_000.0), Leg::ToRestaurant, restaurant(), north(-2_000.0), None, now());
        assert_eq!(eta.remaining_distance_m, 1_000);
        // 1 km to the restaurant, then 2 km to the customer, at 10 m/s.
        assert_about(eta.pickup_at.unwrap(), now() + secs(100));
        assert_about(eta.delivery_at, eta.pickup_at.unwrap() + secs(200));
        assert_eq!(eta.computed_at, now());
    }

    #[test]
    fn after_pickup_the_target_is_the_customer() {
        let estimator = EtaEstimator::new(plain());
        let ready = Some(now() + secs(3_600));
        let eta = estimator.estimate(north(1_000.0), Leg::ToCustomer, restaurant(), north(-2_000.0), ready, now());
        assert_eq!(eta.pickup_at, None, "and food_ready_at no longer matters");
        assert_eq!(eta.remaining_distance_m, 3_000);
        assert_about(eta.delivery_at, now() + secs(300));
    }

    #[test]
    fn the_detour_factor_stretches_travel_but_not_the_remaining_distance() {
        let estimator = EtaEstimator::new(EtaPolicy { detour_factor: 1.5, ..plain() });
        let eta = estimator.estimate(north(1_000.0), Leg::ToCustomer, restaurant(), restaurant(), None, now());
        assert_eq!(eta.remaining_distance_m, 1_000);
        assert_about(eta.delivery_at, now() + secs(150));
    }

    #[test]
    fn waiting_for_the_food_dominates_a_short_ride() {
        let estimator = EtaEstimator::new(plain());
        let ready = now() + secs(15 * 60);
        let customer = north(-2_000.0);
        let eta = estimator.estimate(north(100.0), Leg::ToRestaurant, restaurant(), customer, Some(ready), now());
        assert_eq!(eta.pickup_at, Some(ready));
        assert_about(eta.delivery_at, ready + secs(200));
        assert_eq!(eta.remaining_distance_m, 100);

        // Food that was ready long ago does not pull the pickup into the past.
        let early = Some(now() - secs(600));
        let eta = estimator.estimate(north(100.0), Leg::ToRestaurant, restaurant(), customer, early, now());
        assert_about(eta.pickup_at.unwrap(), now() + secs(10));
    }

    #[test]
    fn a_courier_standing_still_floors_at_the_minimum_speed() {
        let policy = EtaPolicy::default();
        let mut reported = EtaEstimator::new(policy);
        let mut derived = EtaEstimator::new(policy);
        for s in 0..100 {
            reported.observe(north(500.0), now() + secs(s), Some(0.0));
            derived.observe(north(500.0), now() + secs(s), None);
        }
        for estimator in [&reported, &derived] {
            assert!((estimator.speed_mps() - policy.min_speed_mps).abs() < 1e-9, "{}", estimator.speed_mps());
            assert!(estimator.speed_mps() >= policy.min_speed_mps);
            let eta = estimator.estimate(north(500.0), Leg::ToCustomer, restaurant(), restaurant(), None, now());
            // 500 m × 1.3 at 1 m/s.
            assert_about(eta.delivery_at, now() + secs(650));
        }
    }

    #[test]
    fn an_implausible_reported_speed_falls_back_to_the_derived_one() {
        for bad in [41.0, 1_000.0, -1.0, f32::NAN, f32::INFINITY] {
            let mut estimator = EtaEstimator::new(plain());
            estimator.observe(north(0.0), now(), Some(bad));
            assert_eq!(estimator.speed_mps(), 10.0, "{bad}: nothing to derive from yet");
            // 60 m in 10 s.
            estimator.observe(north(60.0), now() + secs(10), Some(bad));
            assert!((estimator.speed_mps() - 6.0).abs() < 1e-6, "{bad}: {}", estimator.speed_mps());
        }
        let mut estimator = EtaEstimator::new(plain());
        estimator.observe(north(0.0), now(), None);
        estimator.observe(north(60.0), now() + secs(10), Some(40.0));
        assert_eq!(estimator.speed_mps(), 40.0, "max_speed_mps itself is plausible, and beats the derived speed");
        estimator.observe(north(70.0), now() + secs(20), Some(0.5));
        assert_eq!(estimator.speed_mps(), 1.0, "raised to min_speed_mps");
    }

    #[test]
    fn a_gps_jump_is_not_a_speed() {
        let mut estimator = EtaEstimator::new(plain());
        estimator.observe(north(0.0), now(), None);
        // 2 km in 10 s is 200 m/s.
        estimator.observe(north(2_000.0), now() + secs(10), None);
        assert_eq!(estimator.speed_mps(), 10.0);
        // The jump still moved the anchor: the next speed is measured from there.
        estimator.observe(north(2_080.0), now() + secs(20), None);
        assert!((estimator.speed_mps() - 8.0).abs() < 1e-6, "{}", estimator.speed_mps());
    }

    #[test]
    fn derived_speed_needs_a_second_and_forward_time() {
        let mut estimator = EtaEstimator::new(plain());
        estimator.observe(north(0.0), now(), None);
        // Half a second later: too close to measure, and the anchor stays.
        estimator.observe(north(20.0), now() + TimeDelta::milliseconds(500), None);
        assert_eq!(estimator.speed_mps(), 10.0);
        // Out of order and the same instant: stale, ignored even with a reported speed.
        estimator.observe(north(0.0), now(), Some(3.0));
        estimator.observe(north(0.0), now() + TimeDelta::milliseconds(500), Some(3.0));
        assert_eq!(estimator.speed_mps(), 10.0);
        // Measured from the anchor: 30 m in 2 s.
        estimator.observe(north(30.0), now() + secs(2), None);
        assert!((estimator.speed_mps() - 15.0).abs() < 1e-6, "{}", estimator.speed_mps());
        // A reported speed needs no span.
        estimator.observe(north(30.0), now() + TimeDelta::milliseconds(2_100), Some(5.0));
        assert_eq!(estimator.speed_mps(), 5.0);
    }

    #[test]
    fn the_ewma_converges_to_a_constant_speed() {
        let policy = EtaPolicy::default();
        let mut estimator = EtaEstimator::new(policy);
        let mut previous_gap = (estimator.speed_mps() - 12.0).abs();
        for s in 0..40 {
            estimator.observe(north(12.0 * s as f64), now() + secs(s), Some(12.0));
            let gap = (estimator.speed_mps() - 12.0).abs();
            assert!(gap < previous_gap, "step {s}: {gap} after {previous_gap}");
            previous_gap = gap;
        }
        assert!(previous_gap < 1e-3, "{previous_gap}");
        // One sample moves it by the smoothing weight: 12 + 0.3 × (2 − 12).
        estimator.observe(north(500.0), now() + secs(40), Some(2.0));
        assert!((estimator.speed_mps() - 9.0).abs() < 1e-3, "{}", estimator.speed_mps());
        // The same from derived speeds alone.
        let mut derived = EtaEstimator::new(policy);
        for s in 0..40 {
            derived.observe(north(12.0 * s as f64), now() + secs(s), None);
        }
        assert!((derived.speed_mps() - 12.0).abs() < 1e-3, "{}", derived.speed_mps());
    }

    #[test]
    fn a_faster_courier_arrives_sooner() {
        let mut estimator = EtaEstimator::new(plain());
        let before = estimator.estimate(north(1_000.0), Leg::ToCustomer, restaurant(), restaurant(), None, now());
        estimator.observe(north(1_000.0), now(), Some(20.0));
        let after = estimator.estimate(north(1_000.0), Leg::ToCustomer, restaurant(), restaurant(), None, now());
        assert_about(before.delivery_at, now() + secs(100));
        assert_about(after.delivery_at, now() + secs(50));
    }

    #[test]
    fn absurd_input_saturates_instead_of_panicking() {
        // A policy that failed validation: a zero speed.
        let broken = EtaPolicy { fallback_speed_mps: 0.0, min_speed_mps: 0.0, ..plain() };
        let eta =
            EtaEstimator::new(broken).estimate(north(10.0), Leg::ToRestaurant, restaurant(), north(0.0), None, now());
        assert_eq!(eta.pickup_at, Some(DateTime::<Utc>::MAX_UTC));
        assert_eq!(eta.delivery_at, DateTime::<Utc>::MAX_UTC);
        let inverted = EtaPolicy { min_speed_mps: 5.0, max_speed_mps: 1.0, ..plain() };
        assert_eq!(EtaEstimator::new(inverted).speed_mps(), 1.0);
        let eta = EtaEstimator::new(plain()).estimate(
            north(10.0),
            Leg::ToCustomer,
            restaurant(),
            north(0.0),
            None,
            DateTime::<Utc>::MAX_UTC,
        );
        assert_eq!(eta.delivery_at, DateTime::<Utc>::MAX_UTC);
    }

    fn eta(pickup_in: Option<i64>, delivery_in: i64, computed_at: i64) -> Eta {
        Eta {
            pickup_at: pickup_in.map(|s| now() + secs(s)),
            delivery_at: now() + secs(delivery_in),
            remaining_distance_m: 1_000,
            computed_at: now() + secs(computed_at),
        }
    }

    #[test]
    fn the_first_eta_is_always_pushed() {
        assert!(should_push(&EtaPolicy::default(), None, &eta(Some(600), 1_200, 0)));
        assert!(should_push(&EtaPolicy::default(), None, &eta(None, 1_200, 0)));
    }

    #[test]
    fn a_move_of_a_minute_is_pushed_and_less_is_not() {
        let policy = EtaPolicy::default();
        let last = eta(Some(600), 1_200, 0);
        let push = |next: Eta| should_push(&policy, Some(&last), &next);
        assert!(!push(eta(Some(600), 1_200, 10)), "unchanged");
        assert!(!push(eta(Some(600), 1_259, 10)));
        assert!(push(eta(Some(600), 1_260, 10)));
        assert!(!push(eta(Some(600), 1_141, 10)), "earlier counts the same");
        assert!(push(eta(Some(600), 1_140, 10)));
        assert!(!push(eta(Some(659), 1_200, 10)), "the pickup moving");
        assert!(push(eta(Some(660), 1_200, 10)));
        assert!(push(eta(Some(540), 1_200, 10)));
        assert!(push(eta(None, 1_200, 10)), "picked up");
        let after_pickup = eta(None, 1_200, 0);
        assert!(should_push(&policy, Some(&after_pickup), &eta(Some(600), 1_200, 10)), "back before pickup");
        assert!(!should_push(&policy, Some(&after_pickup), &eta(None, 1_259, 10)));
    }

    #[test]
    fn an_unchanged_eta_is_pushed_every_30_seconds() {
        let policy = EtaPolicy::default();
        let last = eta(Some(600), 1_200, 0);
        assert!(!should_push(&policy, Some(&last), &eta(Some(600), 1_200, 29)));
        assert!(should_push(&policy, Some(&last), &eta(Some(600), 1_200, 30)));
        assert!(should_push(&policy, Some(&last), &eta(Some(600), 1_200, 3_600)));
        assert!(!should_push(&policy, Some(&last), &eta(Some(600), 1_200, -60)), "a clock going back");
        let never = EtaPolicy { push_at_least_every: Duration::MAX, push_when_moved_by: Duration::MAX, ..policy };
        assert!(!should_push(&never, Some(&last), &eta(Some(600), 100_000, 100_000)));
    }

    fn any_point() -> impl Strategy<Value = LatLng> {
        prop_oneof![
            // Anywhere on the sphere, poles and antimeridian included.
            (-1.0..=1.0f64, -180.0..=180.0f64).prop_map(|(z, lng)| LatLng::new(z.asin().to_degrees(), lng).unwrap()),
            // Around the restaurant, where deliveries are.
            (0.0..std::f64::consts::TAU, 0.0..20_000.0f64).prop_map(|(b, d)| destination(restaurant(), b, d)),
        ]
    }

    fn any_valid_policy() -> impl Strategy<Value = EtaPolicy> {
        (0.1..10.0f64, 0.0..100.0f64, 0.0..=1.0f64, 0.001..=1.0f64, 1.0..3.0f64).prop_map(
            |(min, span, at, smoothing, detour_factor)| EtaPolicy {
                min_speed_mps: min,
                max_speed_mps: min + span,
                fallback_speed_mps: min + span * at,
                smoothing,
                detour_factor,
                ..EtaPolicy::default()
            },
        )
    }

    /// Samples as `observe` may see them: any time step (backwards too), any reported speed.
    fn any_samples() -> impl Strategy<Value = Vec<(LatLng, i64, Option<f32>)>> {
        let speed = prop_oneof![
            Just(None),
            (0.0..50.0f32).prop_map(Some),
            prop::sample::select(vec![f32::NAN, f32::INFINITY, -1.0, 0.0, 1e9]).prop_map(Some),
        ];
        prop::collection::vec((any_point(), -5_000..60_000i64, speed), 0..20)
    }

    fn fed(policy: EtaPolicy, samples: &[(LatLng, i64, Option<f32>)]) -> EtaEstimator {
        let mut estimator = EtaEstimator::new(policy);
        for &(position, ms, speed) in samples {
            estimator.observe(position, now() + TimeDelta::milliseconds(ms), speed);
        }
        estimator
    }

    fn any_leg() -> impl Strategy<Value = Leg> {
        prop_oneof![Just(Leg::ToRestaurant), Just(Leg::ToCustomer)]
    }

    proptest! {
        #[test]
        fn estimates_are_ordered_finite_and_never_before_now(
            policy in any_valid_policy(),
            samples in any_samples(),
            (position, restaurant, customer) in (any_point(), any_point(), any_point()),
            leg in any_leg(),
            food_ready_in in prop::option::of(-3_600..7_200i64),
        ) {
            prop_assert_eq!(policy.validate(), Ok(()));
            let estimator = fed(policy, &samples);
            prop_assert!((policy.min_speed_mps..=policy.max_speed_mps).contains(&estimator.speed_mps()));
            let ready = food_ready_in.map(|s| now() + secs(s));
            let eta = estimator.estimate(position, leg, restaurant, customer, ready, now());
            prop_assert_eq!(eta.computed_at, now());
            prop_assert!(eta.delivery_at >= now());
            // Finite: at most twice half the globe, with the detour, at the slowest speed.
            let longest = 2.0 * std::f64::consts::PI * EARTH_RADIUS_M * policy.detour_factor / policy.min_speed_mps;
            prop_assert!(eta.delivery_at <= now() + secs(7_200) + secs(longest.ceil() as i64 + 2));
            match leg {
                Leg::ToRestaurant => {
                    let pickup_at = eta.pickup_at.unwrap();
                    prop_assert!(pickup_at >= now());
                    prop_assert!(eta.delivery_at >= pickup_at);
                    if let Some(ready) = ready {
                        prop_assert!(pickup_at >= ready);
                    }
                    prop_assert_eq!(eta.remaining_distance_m, whole_metres(distance_m(position, restaurant)));
                }
                Leg::ToCustomer => {
                    prop_assert_eq!(eta.pickup_at, None);
                    prop_assert_eq!(eta.remaining_distance_m, whole_metres(distance_m(position, customer)));
                }
            }
        }

        #[test]
        fn moving_closer_at_the_same_speed_never_brings_the_eta_or_distance_up(
            samples in any_samples(),
            leg in any_leg(),
            target in (-85.0..85.0f64, -180.0..=180.0f64).prop_map(|(lat, lng)| LatLng::new(lat, lng).unwrap()),
            other in any_point(),
            bearing in 0.0..std::f64::consts::TAU,
            (far, closer_by) in (1.0..50_000.0f64).prop_flat_map(|d| (Just(d), 1.0..=d)),
        ) {
            let estimator = fed(EtaPolicy::default(), &samples);
            let (restaurant, customer) = match leg {
                Leg::ToRestaurant => (target, other),
                Leg::ToCustomer => (other, target),
            };
            let at = |d| estimator.estimate(destination(target, bearing, d), leg, restaurant, customer, None, now());
            let (from_far, from_closer) = (at(far), at(far - closer_by));
            prop_assert!(from_closer.remaining_distance_m <= from_far.remaining_distance_m);
            prop_assert!(from_closer.delivery_at <= from_far.delivery_at);
            prop_assert!(from_closer.pickup_at <= from_far.pickup_at);
        }

        #[test]
        fn the_first_push_happens_and_an_identical_eta_is_not_pushed_again_within_the_period(
            pickup_in in prop::option::of(0..10_000i64),
            delivery_in in 0..20_000i64,
            later_by in 0..30i64,
        ) {
            let policy = EtaPolicy::default();
            let last = eta(pickup_in, delivery_in, 0);
            prop_assert!(should_push(&policy, None, &last));
            prop_assert!(!should_push(&policy, Some(&last), &eta(pickup_in, delivery_in, later_by)));
            prop_assert!(should_push(&policy, Some(&last), &eta(pickup_in, delivery_in, 30 + later_by)));
        }
    }
}
