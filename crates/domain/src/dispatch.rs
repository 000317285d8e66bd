//! Driver dispatch: which available driver to offer an order to, and, in batch mode, which driver
//! takes which of several pending orders.
//!
//! The rules:
//! - A driver can take an order when they have a free slot (`active_deliveries < capacity`) and are
//!   within the job's radius of the restaurant in straight line: `search_radius_m`, or
//!   `widened_radius_m` once the order has had `rounds_before_widening` unanswered offers or
//!   nobody free was within `search_radius_m` ([`DispatchPolicy::wider_radius_m`]).
//! - Travel time = straight-line distance × `detour_factor` / `driving_speed_mps`, rounded up to a
//!   second (as the ETA does).
//! - The cost of a pairing (lower is better) is the sum of five terms, in milliseconds of late
//!   arrival: the weights price every other factor in that unit.
//!   - wait: the mismatch between arriving and the food being ready. Each late millisecond costs
//!     `late`, each early one `early`. Late is dearer by default: a late driver makes the food wait
//!     and the customer with it, an early one only idles. So a closer driver is better when both
//!     would arrive after the food is ready, but a driver who would wait a long time at the
//!     restaurant can lose to one further away who arrives just in time.
//!   - heading: 0 driving straight towards the restaurant, the full `heading` weight straight
//!     away, half when the heading is unknown or the driver is (nearly) standing still.
//!   - acceptance: (1 − acceptance rate) × `acceptance`.
//!   - load: active deliveries / capacity × `load`.
//!   - fairness: `fairness` for a driver offered something just now, falling linearly to 0 at
//!     `fairness_horizon` since their last offer (and for one never offered anything).
//! - [`rank`] orders the candidates of one order for offers one at a time; [`assign_batch`] solves
//!   several orders at once with the Hungarian algorithm, first serving as many orders as possible,
//!   then at the least total cost; [`assign_greedy`] is the baseline it is measured against.
//!
//! Nothing here reads a clock or a store: the caller passes durations measured from its own `now`.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use pathfinding::kuhn_munkres::kuhn_munkres_min;
use pathfinding::matrix::Matrix;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::geo::{LatLng, MAX_SEARCH_RADIUS_M, distance_m, travel_time};

/// Below this speed a device's heading is noise, so it counts as unknown.
const MIN_HEADING_SPEED_MPS: f64 = 1.0;

/// Within this distance the driver is at the restaurant: any heading is as good as towards it.
const AT_RESTAURANT_M: f64 = 50.0;

/// The largest cost a pairing contributes to the batch (about 11.6 days late): clamping keeps the
/// Hungarian sums within i64 for any batch small enough to solve in reasonable time.
const MAX_PAIR_COST: u64 = 1_000_000_000;

/// Platform-wide dispatch tuning, from configuration.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DispatchPolicy {
    /// The speed assumed to the restaurant. The default is the quote's courier speed, 20 km/h.
    pub driving_speed_mps: f64,
    /// Road distance over straight-line distance: drivers follow streets. At least 1.
    pub detour_factor: f64,
    /// How far from the restaurant drivers are looked for at first.
    pub search_radius_m: u32,
    /// How far once an order has had `rounds_before_widening` offers declined or timed out.
    pub widened_radius_m: u32,
    /// Unanswered offers before the search widens.
    pub rounds_before_widening: u32,
    /// Unanswered offers, all radii together, after which the order is flagged for operations.
    pub max_rounds: u32,
    /// How many nearby drivers a search fetches (the GEOSEARCH COUNT).
    pub max_candidates: u32,
    /// How long a driver has to answer an offer before it goes to the next one.
    #[serde(with = "humantime_serde")]
    pub offer_timeout: Duration,
    pub weights: DispatchWeights,
}

impl Default for DispatchPolicy {
    fn default() -> Self {
        Self {
            driving_speed_mps: 20.0 / 3.6,
            detour_factor: 1.3,
            search_radius_m: 5_000,
            widened_radius_m: 10_000,
            rounds_before_widening: 3,
            max_rounds: 6,
            max_candidates: 20,
            offer_timeout: Duration::from_secs(30),
            weights: DispatchWeights::default(),
        }
    }
}

/// What each factor costs, in late arrival: `heading = "2m"` reads "driving away from the
/// restaurant is as bad as arriving two minutes late". A zero weight turns its factor off.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DispatchWeights {
    /// Cost per unit of time the driver arrives after the food is ready.
    pub late: f64,
    /// Cost per unit of time the driver arrives before the food is ready.
    pub early: f64,
    /// The cost of driving straight away from the restaurant.
    #[serde(with = "humantime_serde")]
    pub heading: Duration,
    /// The cost of a driver who never accepts: at least an offer timeout lost per decline.
    #[serde(with = "humantime_serde")]
    pub acceptance: Duration,
    /// The cost of a full driver; a driver at capacity is not a candidate at all.
    #[serde(with = "humantime_serde")]
    pub load: Duration,
    /// The cost of a driver who was offered something just now.
    #[serde(with = "humantime_serde")]
    pub fairness: Duration,
    /// After this long since their last offer a driver has no fairness cost.
    #[serde(with = "humantime_serde")]
    pub fairness_horizon: Duration,
}

impl Default for DispatchWeights {
    fn default() -> Self {
        Self {
            late: 1.0,
            early: 0.5,
            heading: Duration::from_secs(120),
            acceptance: Duration::from_secs(120),
            load: Duration::from_secs(300),
            fairness: Duration::from_secs(60),
            fairness_horizon: Duration::from_secs(600),
        }
    }
}

/// A policy field that is out of range. Displays as "`field` `message`".
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field} {message}")]
pub struct InvalidPolicy {
    pub field: &'static str,
    pub message: String,
}

impl InvalidPolicy {
    fn new(field: &'static str, message: impl Into<String>) -> Self {
        Self { field, message: message.into() }
    }
}

impl DispatchPolicy {
    /// For configuration: the field named is the struct field (`weights.late` for a weight).
    pub fn validate(&self) -> Result<(), InvalidPolicy> {
        if !(self.driving_speed_mps.is_finite() && self.driving_speed_mps > 0.0) {
            return Err(InvalidPolicy::new("driving_speed_mps", "must be a number more than 0"));
        }
        if !(self.detour_factor.is_finite() && self.detour_factor >= 1.0) {
            return Err(InvalidPolicy::new("detour_factor", "must be a number of at least 1"));
        }
        if !(1..=MAX_SEARCH_RADIUS_M).contains(&self.search_radius_m) {
            return Err(InvalidPolicy::new("search_radius_m", format!("must be from 1 to {MAX_SEARCH_RADIUS_M}")));
        }
        if !(self.search_radius_m..=MAX_SEARCH_RADIUS_M).contains(&self.widened_radius_m) {
            return Err(InvalidPolicy::new(
                "widened_radius_m",
                format!("must be from search_radius_m to {MAX_SEARCH_RADIUS_M}"),
            ));
        }
        if self.max_rounds == 0 {
            return Err(InvalidPolicy::new("max_rounds", "must be at least 1"));
        }
        if self.rounds_before_widening > self.max_rounds {
            return Err(InvalidPolicy::new("rounds_before_widening", "must be at most max_rounds"));
        }
        if self.max_candidates == 0 {
            return Err(InvalidPolicy::new("max_candidates", "must be at least 1"));
        }
        if self.offer_timeout.is_zero() {
            return Err(InvalidPolicy::new("offer_timeout", "must be more than 0"));
        }
        let weights = &self.weights;
        for (field, value) in [("weights.late", weights.late), ("weights.early", weights.early)] {
            // Written so that NaN fails too.
            if !(value.is_finite() && value >= 0.0) {
                return Err(InvalidPolicy::new(field, "must be a number of at least 0"));
            }
        }
        if weights.fairness_horizon.is_zero() {
            return Err(InvalidPolicy::new("weights.fairness_horizon", "must be more than 0"));
        }
        Ok(())
    }

    /// The search radius for an order that has had `offer_rounds` offers declined or timed out.
    pub fn radius_m(&self, offer_rounds: u32) -> u32 {
        if offer_rounds >= self.rounds_before_widening { self.widened_radius_m } else { self.search_radius_m }
    }

    /// The radius to search when nobody who can take the order is within `radius_m`: the widened
    /// one, unless the search was already that wide. Waiting for the rounds to widen would only
    /// delay an order that nobody nearby can take.
    pub fn wider_radius_m(&self, radius_m: u32) -> Option<u32> {
        (radius_m < self.widened_radius_m).then_some(self.widened_radius_m)
    }

    /// The estimated driving time over `distance_m` of straight line.
    pub fn travel_time(&self, distance_m: f64) -> Duration {
        travel_time(distance_m * self.detour_factor, self.driving_speed_mps * 3.6)
    }

    /// Whether an order that has had `offer_rounds` unanswered offers goes to operations instead.
    pub fn should_flag(&self, offer_rounds: u32) -> bool {
        offer_rounds >= self.max_rounds
    }
}

/// An available driver, as the live location store and the driver's record know them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Candidate {
    pub driver_id: Uuid,
    pub position: LatLng,
    /// Course over ground in degrees clockwise from north, as the device reports it.
    pub heading_deg: Option<f32>,
    /// Speed in m/s as the device reports it: only used to tell whether the heading means anything.
    pub speed_mps: Option<f32>,
    /// Offers accepted over offers made, from 0 to 1 (clamped; NaN counts as 0.5). The caller
    /// gives new drivers a prior.
    pub acceptance_rate: f32,
    pub active_deliveries: u32,
    /// Deliveries the driver carries at once; at capacity (or 0) they are not a candidate.
    pub capacity: u32,
    /// Time since the driver's last offer; `None` if they have had none.
    pub since_last_offer: Option<Duration>,
}

/// An order waiting for a driver.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Job {
    pub order_id: Uuid,
    pub restaurant: LatLng,
    /// How long until the restaurant expects the food to be ready; zero if it is.
    pub food_ready_in: Duration,
    /// How far from the restaurant, in straight line, a driver may be: see
    /// [`DispatchPolicy::radius_m`] and [`DispatchPolicy::wider_radius_m`].
    pub radius_m: u32,
}

/// One driver's cost for one order, with its terms for explaining the choice. Costs are in
/// milliseconds of late arrival; `total` is the exact sum of the five terms (saturating).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Score {
    pub total: u64,
    /// Straight-line distance to the restaurant.
    pub distance_m: f64,
    /// Estimated driving time to the restaurant.
    pub travel: Duration,
    pub wait: u64,
    pub heading: u64,
    pub acceptance: u64,
    pub load: u64,
    pub fairness: u64,
}

/// `candidate`'s cost for `job`, or `None` when they cannot take it: no free slot, or beyond the
/// job's radius.
pub fn score(policy: &DispatchPolicy, job: &Job, candidate: &Candidate) -> Option<Score> {
    if candidate.active_deliveries >= candidate.capacity {
        return None;
    }
    let distance = distance_m(candidate.position, job.restaurant);
    // A NaN distance (a point that skipped LatLng::new) is out of range too.
    if distance.is_nan() || distance > f64::from(job.radius_m) {
        return None;
    }
    let weights = &policy.weights;
    let travel = policy.travel_time(distance);
    let wait = if travel >= job.food_ready_in {
        ms(travel - job.food_ready_in) * weights.late
    } else {
        ms(job.food_ready_in - travel) * weights.early
    };
    let heading = ms(weights.heading) * heading_factor(candidate, job.restaurant, distance);
    let rate = f64::from(candidate.acceptance_rate);
    let rate = if rate.is_nan() { 0.5 } else { rate.clamp(0.0, 1.0) };
    let acceptance = ms(weights.acceptance) * (1.0 - rate);
    let load = ms(weights.load) * f64::from(candidate.active_deliveries) / f64::from(candidate.capacity);
    let fairness = match candidate.since_last_offer {
        None => 0.0,
        Some(since) => {
            let rested = since.min(weights.fairness_horizon).as_secs_f64() / weights.fairness_horizon.as_secs_f64();
            // A zero horizon (an invalid policy) gives NaN: count it as rested.
            if rested.is_nan() { 0.0 } else { ms(weights.fairness) * (1.0 - rested) }
        }
    };
    let terms = [wait, heading, acceptance, load, fairness].map(cost);
    Some(Score {
        total: terms.iter().fold(0u64, |sum, &term| sum.saturating_add(term)),
        distance_m: distance,
        travel,
        wait: terms[0],
        heading: terms[1],
        acceptance: terms[2],
        load: terms[3],
        fairness: terms[4],
    })
}

/// The candidates who can take `job`, best first; equal costs go by driver id, so every replica
/// offers in the same order.
pub fn rank(policy: &DispatchPolicy, job: &Job, candidates: &[Candidate]) -> Vec<(Uuid, Score)> {
    let mut ranked: Vec<_> =
        candidates.iter().filter_map(|c| score(policy, job, c).map(|s| (c.driver_id, s))).collect();
    ranked.sort_by_key(|(id, s)| (s.total, *id));
    ranked
}

/// One order given to one driver.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Assignment {
    pub order_id: Uuid,
    pub driver_id: Uuid,
    pub score: Score,
}

/// The sum of the assignments' costs (saturating).
pub fn total_cost(assignments: &[Assignment]) -> u64 {
    assignments.iter().fold(0u64, |sum, a| sum.saturating_add(a.score.total))
}

/// Each job in turn, in the order given, takes its best remaining candidate. The baseline for
/// [`assign_batch`]; a repeated order or driver id counts once (the first).
pub fn assign_greedy(policy: &DispatchPolicy, jobs: &[Job], candidates: &[Candidate]) -> Vec<Assignment> {
    let candidates = first_of_each(candidates, |c| c.driver_id);
    let mut taken = HashSet::new();
    let mut assignments = Vec::new();
    for job in first_of_each(jobs, |j| j.order_id) {
        let best = candidates
            .iter()
            .filter(|c| !taken.contains(&c.driver_id))
            .filter_map(|c| score(policy, job, c).map(|s| (c.driver_id, s)))
            .min_by_key(|(id, s)| (s.total, *id));
        if let Some((driver_id, score)) = best {
            taken.insert(driver_id);
            assignments.push(Assignment { order_id: job.order_id, driver_id, score });
        }
    }
    assignments
}

/// Assigns the jobs to the candidates globally (Hungarian algorithm): as many jobs as can be served
/// at all, and among those assignments the one of least total cost. Jobs no candidate can take are
/// left out; so is every job beyond the number of drivers, and every pair `may_pair` refuses (e.g.
/// a driver who declined that order). The result follows the order of `jobs` and does not depend
/// on the order of either input. A repeated order or driver id counts once (the first). O(n³) in
/// the larger side: meant for batches of up to a few hundred.
pub fn assign_batch(
    policy: &DispatchPolicy,
    jobs: &[Job],
    candidates: &[Candidate],
    may_pair: impl Fn(&Job, &Candidate) -> bool,
) -> Vec<Assignment> {
    let jobs_in_order = first_of_each(jobs, |j| j.order_id);
    // Sorted by id, so the matrix, and the optimum picked among equal ones, ignore input order.
    let mut by_id = jobs_in_order.clone();
    by_id.sort_by_key(|j| j.order_id);
    let mut drivers = first_of_each(candidates, |c| c.driver_id);
    drivers.sort_by_key(|c| c.driver_id);
    let scores: Vec<Vec<Option<Score>>> =
        by_id.iter().map(|job| drivers.iter().map(|c| pair_score(policy, job, c, &may_pair)).collect()).collect();
    // Only rows and columns with a feasible pair: a smaller matrix, and no empty side.
    let rows: Vec<usize> = (0..by_id.len()).filter(|&r| scores[r].iter().any(Option::is_some)).collect();
    let cols: Vec<usize> = (0..drivers.len()).filter(|&c| rows.iter().any(|&r| scores[r][c].is_some())).collect();
    if rows.is_empty() {
        return Vec::new();
    }
    let pair_cost = |r: usize, c: usize| scores[rows[r]][cols[c]].map(|s| s.total.min(MAX_PAIR_COST) as i64);
    let k = rows.len().min(cols.len()) as i64;
    let max_feasible =
        (0..rows.len()).flat_map(|r| (0..cols.len()).filter_map(move |c| pair_cost(r, c))).max().unwrap_or(0);
    // More than any k feasible pairs together: one more order served always beats a cheaper total.
    let infeasible = k * max_feasible + 1;
    let cost = |r, c| pair_cost(r, c).unwrap_or(infeasible);
    // kuhn_munkres needs rows <= columns: the smaller side goes in the rows.
    let transpose = rows.len() > cols.len();
    let matrix = if transpose {
        Matrix::from_fn(cols.len(), rows.len(), |(c, r)| cost(r, c))
    } else {
        Matrix::from_fn(rows.len(), cols.len(), |(r, c)| cost(r, c))
    };
    let (_, matched) = kuhn_munkres_min(&matrix);
    let mut chosen: HashMap<Uuid, Assignment> = HashMap::new();
    for (i, j) in matched.into_iter().enumerate() {
        let (r, c) = if transpose { (j, i) } else { (i, j) };
        if let Some(score) = scores[rows[r]][cols[c]] {
            let order_id = by_id[rows[r]].order_id;
            chosen.insert(order_id, Assignment { order_id, driver_id: drivers[cols[c]].driver_id, score });
        }
    }
    jobs_in_order.iter().filter_map(|j| chosen.remove(&j.order_id)).collect()
}

fn pair_score(
    policy: &DispatchPolicy,
    job: &Job,
    candidate: &Candidate,
    may_pair: impl Fn(&Job, &Candidate) -> bool,
) -> Option<Score> {
    if may_pair(job, candidate) { score(policy, job, candidate) } else { None }
}

/// Each item whose id has not been seen before, in order.
fn first_of_each<T>(items: &[T], id: impl Fn(&T) -> Uuid) -> Vec<&T> {
    let mut seen = HashSet::new();
    items.iter().filter(|item| seen.insert(id(item))).collect()
}

/// 0 towards the restaurant, 1 away from it, ½ when the heading tells nothing.
fn heading_factor(candidate: &Candidate, restaurant: LatLng, distance_m: f64) -> f64 {
    if distance_m <= AT_RESTAURANT_M {
        return 0.0;
    }
    // A NaN speed compares false: unknown.
    let moving = candidate.speed_mps.is_none_or(|s| f64::from(s) >= MIN_HEADING_SPEED_MPS);
    match candidate.heading_deg.filter(|h| h.is_finite()) {
        Some(heading) if moving => {
            let off = (f64::from(heading) - bearing_deg(candidate.position, restaurant)).to_radians();
            (1.0 - off.cos()) / 2.0
        }
        _ => 0.5,
    }
}

/// Initial great-circle bearing from `from` to `to`, degrees clockwise from north.
fn bearing_deg(from: LatLng, to: LatLng) -> f64 {
    let (lat_a, lat_b) = (from.lat.to_radians(), to.lat.to_radians());
    let dlng = (to.lng - from.lng).to_radians();
    let y = dlng.sin() * lat_b.cos();
    let x = lat_a.cos() * lat_b.sin() - lat_a.sin() * lat_b.cos() * dlng.cos();
    y.atan2(x).to_degrees()
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1_000.0
}

/// A term in whole milliseconds; the cast saturates, and NaN (only from an invalid policy) is the
/// worst cost rather than the best.
fn cost(term: f64) -> u64 {
    if term.is_nan() { u64::MAX } else { term.round() as u64 }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use proptest::prelude::*;

    use super::*;
    use crate::geo::{EARTH_RADIUS_M, destination};

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    fn id(n: u128) -> Uuid {
        Uuid::from_u128(n)
    }

    fn restaurant() -> LatLng {
        LatLng::new(48.8566, 2.3522).unwrap()
    }

    /// A point `m` metres due north of `at` (south when negative): along a meridian the distance is
    /// exact and the bearing back is due south.
    fn north_of(at: LatLng, m: f64) -> LatLng {
        LatLng::new(at.lat + (m / EARTH_RADIUS_M).to_degrees(), at.lng).unwrap()
    }

    fn north(m: f64) -> LatLng {
        north_of(restaurant(), m)
    }

    /// Numbers that are easy to check: 10 m/s and no detour, so 999.5 m take exactly 100 s.
    fn plain() -> DispatchPolicy {
        DispatchPolicy { driving_speed_mps: 10.0, detour_factor: 1.0, ..DispatchPolicy::default() }
    }

    /// A driver with nothing for or against them but where they are (and an unknown heading).
    fn driver(n: u128, position: LatLng) -> Candidate {
        Candidate {
            driver_id: id(n),
            position,
            heading_deg: None,
            speed_mps: None,
            acceptance_rate: 1.0,
            active_deliveries: 0,
            capacity: 1,
            since_last_offer: None,
        }
    }

    fn any_pair(_: &Job, _: &Candidate) -> bool {
        true
    }

    fn job(n: u128, restaurant: LatLng, ready_in_s: u64) -> Job {
        Job { order_id: id(n), restaurant, food_ready_in: secs(ready_in_s), radius_m: 5_000 }
    }

    /// The unknown heading's cost under the default weights: half of two minutes.
    const UNKNOWN_HEADING: u64 = 60_000;

    #[test]
    fn the_default_policy_is_valid_and_matches_the_design() {
        let policy = DispatchPolicy::default();
        assert_eq!(policy.validate(), Ok(()));
        assert_eq!(policy.search_radius_m, 5_000);
        assert_eq!(policy.widened_radius_m, 10_000);
        assert_eq!(policy.max_candidates, 20);
        assert_eq!(policy.offer_timeout, secs(30));
        assert_eq!(policy.rounds_before_widening, 3);
        assert!((policy.driving_speed_mps * 3.6 - 20.0).abs() < 1e-9);
        assert!(policy.weights.early < policy.weights.late, "arriving early costs less than arriving late");
    }

    #[test]
    fn policy_validation_names_the_field() {
        let default = DispatchPolicy::default;
        let weights = |w: DispatchWeights| DispatchPolicy { weights: w, ..default() };
        let w = DispatchWeights::default;
        let cases = [
            (DispatchPolicy { driving_speed_mps: 0.0, ..default() }, "driving_speed_mps must be a number more than 0"),
            (
                DispatchPolicy { driving_speed_mps: f64::NAN, ..default() },
                "driving_speed_mps must be a number more than 0",
            ),
            (DispatchPolicy { detour_factor: 0.99, ..default() }, "detour_factor must be a number of at least 1"),
            (
                DispatchPolicy { detour_factor: f64::INFINITY, ..default() },
                "detour_factor must be a number of at least 1",
            ),
            (DispatchPolicy { search_radius_m: 0, ..default() }, "search_radius_m must be from 1 to 50000"),
            (DispatchPolicy { search_radius_m: 50_001, ..default() }, "search_radius_m must be from 1 to 50000"),
            (
                DispatchPolicy { widened_radius_m: 4_999, ..default() },
                "widened_radius_m must be from search_radius_m to 50000",
            ),
            (
                DispatchPolicy { widened_radius_m: 50_001, ..default() },
                "widened_radius_m must be from search_radius_m to 50000",
            ),
            (DispatchPolicy { max_rounds: 0, rounds_before_widening: 0, ..default() }, "max_rounds must be at least 1"),
            (
                DispatchPolicy { rounds_before_widening: 7, ..default() },
                "rounds_before_widening must be at most max_rounds",
            ),
            (DispatchPolicy { max_candidates: 0, ..default() }, "max_candidates must be at least 1"),
            (DispatchPolicy { offer_timeout: Duration::ZERO, ..default() }, "offer_timeout must be more than 0"),
            (weights(DispatchWeights { late: -0.1, ..w() }), "weights.late must be a number of at least 0"),
            (weights(DispatchWeights { early: f64::NAN, ..w() }), "weights.early must be a number of at least 0"),
            (
                weights(DispatchWeights { fairness_horizon: Duration::ZERO, ..w() }),
                "weights.fairness_horizon must be more than 0",
            ),
        ];
        for (policy, expected) in cases {
            assert_eq!(policy.validate().unwrap_err().to_string(), expected);
        }
        let edges = DispatchPolicy {
            driving_speed_mps: 0.1,
            detour_factor: 1.0,
            search_radius_m: 50_000,
            widened_radius_m: 50_000,
            rounds_before_widening: 0,
            max_rounds: 1,
            max_candidates: 1,
            offer_timeout: Duration::from_millis(1),
            weights: DispatchWeights {
                late: 0.0,
                early: 0.0,
                heading: Duration::ZERO,
                acceptance: Duration::ZERO,
                load: Duration::ZERO,
                fairness: Duration::ZERO,
                fairness_horizon: Duration::from_millis(1),
            },
        };
        assert_eq!(edges.validate(), Ok(()), "every bound is inclusive, and any weight may be 0");
    }

    #[test]
    fn policy_reads_from_configuration() {
        let policy: DispatchPolicy = serde_json::from_str(
            r#"{"search_radius_m": 3000, "offer_timeout": "45s", "weights": {"heading": "90s", "late": 2.0}}"#,
        )
        .unwrap();
        assert_eq!(policy.search_radius_m, 3_000);
        assert_eq!(policy.offer_timeout, secs(45));
        assert_eq!(policy.weights.heading, secs(90));
        assert_eq!(policy.weights.late, 2.0);
        assert_eq!(policy.weights.load, secs(300), "the rest is the default");
        assert_eq!(policy.widened_radius_m, 10_000);
        assert!(serde_json::from_str::<DispatchPolicy>(r#"{"search_radius": 3000}"#).is_err(), "typos are refused");
        assert!(serde_json::from_str::<DispatchPolicy>(r#"{"weights": {"lateness": 1}}"#).is_err());
        let default = DispatchPolicy::default();
        let json = serde_json::to_string(&default).unwrap();
        assert!(json.contains(r#""offer_timeout":"30s""#), "{json}");
        assert_eq!(serde_json::from_str::<DispatchPolicy>(&json).unwrap(), default);
    }

    #[test]
    fn the_radius_widens_after_three_unanswered_offers_and_the_order_is_flagged_after_six() {
        let policy = DispatchPolicy::default();
        let radii: Vec<u32> = (0..7).map(|round| policy.radius_m(round)).collect();
        assert_eq!(radii, [5_000, 5_000, 5_000, 10_000, 10_000, 10_000, 10_000]);
        assert!(!policy.should_flag(5));
        assert!(policy.should_flag(6));
        assert!(policy.should_flag(u32::MAX));
    }

    #[test]
    fn nobody_within_the_radius_widens_it_at_once_but_never_past_the_widened_one() {
        let policy = DispatchPolicy::default();
        assert_eq!(policy.wider_radius_m(5_000), Some(10_000));
        assert_eq!(policy.wider_radius_m(10_000), None);
        let wide = DispatchPolicy { widened_radius_m: 5_000, ..policy };
        assert_eq!(wide.wider_radius_m(5_000), None, "widening to the same radius finds nobody new");
    }

    #[test]
    fn a_driver_without_a_free_slot_is_not_a_candidate() {
        let policy = plain();
        let order = job(1, restaurant(), 0);
        let with = |active, capacity| Candidate { active_deliveries: active, capacity, ..driver(1, north(999.5)) };
        let half = score(&policy, &order, &with(1, 2)).unwrap();
        assert_eq!(half.load, 150_000, "half of five minutes");
        assert_eq!(score(&policy, &order, &with(0, 2)).unwrap().load, 0);
        assert_eq!(score(&policy, &order, &with(2, 2)), None);
        assert_eq!(score(&policy, &order, &with(3, 2)), None);
        assert_eq!(score(&policy, &order, &with(0, 0)), None);
    }

    #[test]
    fn a_driver_beyond_the_radius_is_not_a_candidate_until_it_widens() {
        let policy = DispatchPolicy::default();
        let at = |m, rounds| {
            let order = Job { radius_m: policy.radius_m(rounds), ..job(1, restaurant(), 0) };
            score(&policy, &order, &driver(1, north(m)))
        };
        assert!(at(0.0, 0).is_some());
        assert!(at(4_999.0, 0).is_some());
        assert!(at(-4_999.0, 0).is_some());
        assert_eq!(at(5_001.0, 0), None);
        assert_eq!(at(5_001.0, 2), None);
        assert!(at(5_001.0, 3).is_some());
        assert!(at(9_999.0, 3).is_some());
        assert_eq!(at(10_001.0, 5), None);
        // A position that skipped LatLng::new is nowhere near.
        let broken = Candidate { position: LatLng { lat: f64::NAN, lng: 0.0 }, ..driver(1, north(0.0)) };
        assert_eq!(score(&policy, &job(1, restaurant(), 0), &broken), None);
    }

    #[test]
    fn wait_costs_the_mismatch_and_arriving_early_costs_half_as_much_as_late() {
        let policy = plain();
        let wait = |ready_in_s| {
            let s = score(&policy, &job(1, restaurant(), ready_in_s), &driver(1, north(999.5))).unwrap();
            assert_eq!(s.travel, secs(100));
            assert!((s.distance_m - 999.5).abs() < 1e-6, "{}", s.distance_m);
            s.wait
        };
        assert_eq!(wait(100), 0, "arrives as the food is ready");
        assert_eq!(wait(0), 100_000, "100 s late");
        assert_eq!(wait(50), 50_000, "50 s late");
        assert_eq!(wait(200), 50_000, "100 s early");
        assert_eq!(wait(300), 100_000, "200 s early");
        let detour = DispatchPolicy { detour_factor: 1.5, ..plain() };
        let s = score(&detour, &job(1, restaurant(), 0), &driver(1, north(999.5))).unwrap();
        assert_eq!(s.travel, secs(150));
    }

    #[test]
    fn a_driver_waiting_long_at_the_restaurant_can_lose_to_one_arriving_in_time() {
        let policy = plain();
        let order = job(1, restaurant(), 15 * 60);
        let near = score(&policy, &order, &driver(1, north(999.5))).unwrap();
        let far = score(&policy, &order, &driver(2, north(4_999.0))).unwrap();
        assert!(far.total < near.total, "{far:?} {near:?}");
        // Food ready now: the nearer driver wins.
        let now = job(1, restaurant(), 0);
        assert!(
            score(&policy, &now, &driver(1, north(999.5))).unwrap().total
                < score(&policy, &now, &driver(2, north(4_999.0))).unwrap().total
        );
    }

    #[test]
    fn heading_towards_beats_unknown_beats_away() {
        let policy = plain();
        let order = job(1, restaurant(), 0);
        // North of the restaurant, so it lies due south (180°).
        let heading = |heading_deg, speed_mps, at| {
            let c = Candidate { heading_deg, speed_mps, ..driver(1, north(at)) };
            score(&policy, &order, &c).unwrap().heading
        };
        assert_eq!(heading(Some(180.0), None, 1_000.0), 0);
        assert_eq!(heading(Some(-180.0), Some(5.0), 1_000.0), 0, "any turn of the circle");
        assert_eq!(heading(Some(540.0), Some(5.0), 1_000.0), 0);
        assert_eq!(heading(Some(0.0), Some(5.0), 1_000.0), 120_000, "straight away");
        assert_eq!(heading(Some(90.0), Some(5.0), 1_000.0), 60_000, "across");
        assert_eq!(heading(Some(270.0), Some(5.0), 1_000.0), 60_000);
        assert_eq!(heading(Some(135.0), Some(5.0), 1_000.0), 17_574, "45° off: (1 − cos 45°) / 2");
        assert_eq!(heading(None, Some(5.0), 1_000.0), UNKNOWN_HEADING);
        assert_eq!(heading(Some(f32::NAN), Some(5.0), 1_000.0), UNKNOWN_HEADING);
        assert_eq!(heading(Some(0.0), Some(0.5), 1_000.0), UNKNOWN_HEADING, "standing still: noise");
        assert_eq!(heading(Some(0.0), Some(f32::NAN), 1_000.0), UNKNOWN_HEADING);
        assert_eq!(heading(Some(0.0), Some(5.0), 40.0), 0, "at the restaurant already");
        assert_eq!(heading(None, None, 40.0), 0);
    }

    #[test]
    fn acceptance_and_fairness_terms() {
        let policy = plain();
        let order = job(1, restaurant(), 0);
        let acceptance = |rate| {
            let c = Candidate { acceptance_rate: rate, ..driver(1, north(999.5)) };
            score(&policy, &order, &c).unwrap().acceptance
        };
        assert_eq!(acceptance(1.0), 0);
        assert_eq!(acceptance(0.75), 30_000);
        assert_eq!(acceptance(0.0), 120_000);
        assert_eq!(acceptance(f32::NAN), 60_000, "unknown is neutral");
        assert_eq!(acceptance(1.5), 0, "clamped");
        assert_eq!(acceptance(-1.0), 120_000);
        let fairness = |since| {
            let c = Candidate { since_last_offer: since, ..driver(1, north(999.5)) };
            score(&policy, &order, &c).unwrap().fairness
        };
        assert_eq!(fairness(None), 0, "never offered anything");
        assert_eq!(fairness(Some(Duration::ZERO)), 60_000);
        assert_eq!(fairness(Some(secs(300))), 30_000);
        assert_eq!(fairness(Some(secs(600))), 0);
        assert_eq!(fairness(Some(secs(86_400))), 0, "capped at the horizon");
    }

    #[test]
    fn the_total_is_the_sum_of_the_terms() {
        let c = Candidate {
            heading_deg: Some(180.0),
            speed_mps: Some(5.0),
            acceptance_rate: 0.75,
            active_deliveries: 1,
            capacity: 4,
            since_last_offer: Some(secs(120)),
            ..driver(1, north(999.5))
        };
        let s = score(&plain(), &job(1, restaurant(), 40), &c).unwrap();
        assert_eq!(
            (s.wait, s.heading, s.acceptance, s.load, s.fairness),
            (60_000, 0, 30_000, 75_000, 48_000),
            "60 s late; towards; a quarter declined; a quarter full; a fifth of the horizon since the last offer"
        );
        assert_eq!(s.total, 213_000);
        assert_eq!(s.travel, secs(100));
    }

    #[test]
    fn absurd_input_saturates_instead_of_panicking() {
        let order = Job { food_ready_in: Duration::MAX, ..job(1, restaurant(), 0) };
        let s = score(&DispatchPolicy::default(), &order, &driver(1, north(1_000.0))).unwrap();
        assert_eq!(s.wait, u64::MAX);
        assert_eq!(s.total, u64::MAX);
        let stopped = DispatchPolicy { driving_speed_mps: 0.0, ..plain() };
        let s = score(&stopped, &job(1, restaurant(), 0), &driver(1, north(1_000.0))).unwrap();
        assert_eq!(s.travel, Duration::MAX);
        assert_eq!(s.total, u64::MAX);
        let bad_weight =
            DispatchPolicy { weights: DispatchWeights { late: f64::NAN, ..Default::default() }, ..plain() };
        let s = score(&bad_weight, &job(1, restaurant(), 0), &driver(1, north(1_000.0))).unwrap();
        assert_eq!(s.wait, u64::MAX, "NaN is the worst cost, not the best");
        // The batch still works on such costs: clamped, and the lone driver still serves one order.
        let assigned = assign_batch(
            &stopped,
            &[job(1, restaurant(), 0), job(2, restaurant(), 0)],
            &[driver(1, north(1_000.0))],
            any_pair,
        );
        assert_eq!(assigned.len(), 1);
    }

    #[test]
    fn rank_puts_the_best_first_and_breaks_ties_by_driver_id() {
        let candidates = [
            driver(3, north(2_000.0)),
            driver(2, north(1_000.0)),
            driver(1, north(-1_000.0)),
            Candidate { active_deliveries: 1, ..driver(4, north(10.0)) },
            driver(5, north(6_000.0)),
        ];
        let order = job(1, restaurant(), 0);
        let ranked = rank(&plain(), &order, &candidates);
        let ids: Vec<Uuid> = ranked.iter().map(|(id, _)| *id).collect();
        assert_eq!(ids, [id(1), id(2), id(3)], "4 is full and 5 too far");
        assert_eq!(ranked[0].1.total, ranked[1].1.total);
        let mut reversed = candidates;
        reversed.reverse();
        assert_eq!(rank(&plain(), &order, &reversed), ranked);
        assert!(rank(&plain(), &order, &[]).is_empty());
    }

    /// Restaurant A, and B 3 km north of it. X is 1 km north of A (2 km from B), Y 1.2 km south of
    /// A (4.2 km from B). Taking A first, greedy gives it X, its nearest, and B is left with Y.
    /// (Half metres off keep the travel times whole seconds despite float error.)
    #[test]
    fn batch_beats_greedy_where_the_first_order_takes_the_driver_the_second_needs() {
        let (a, b) = (restaurant(), north(2_999.0));
        let jobs = [job(1, a, 0), job(2, b, 0)];
        let drivers = [driver(10, north(999.5)), driver(11, north(-1_199.5))];
        let greedy = assign_greedy(&plain(), &jobs, &drivers);
        let batch = assign_batch(&plain(), &jobs, &drivers, any_pair);
        let pairs = |v: &[Assignment]| v.iter().map(|a| (a.order_id, a.driver_id)).collect::<Vec<_>>();
        assert_eq!(pairs(&greedy), [(id(1), id(10)), (id(2), id(11))]);
        assert_eq!(pairs(&batch), [(id(1), id(11)), (id(2), id(10))]);
        let (greedy_total, batch_total) = (total_cost(&greedy), total_cost(&batch));
        println!("greedy total {greedy_total} ms, batch total {batch_total} ms");
        // Travel 100 s + 420 s against 120 s + 200 s, and an unknown heading each.
        assert_eq!(greedy_total, 520_000 + 2 * UNKNOWN_HEADING);
        assert_eq!(batch_total, 320_000 + 2 * UNKNOWN_HEADING);
        assert!(batch_total < greedy_total);
    }

    #[test]
    fn batch_serves_every_order_it_can_even_at_a_higher_cost() {
        // B is within reach of X only; A of both, X being nearer.
        let (a, b) = (restaurant(), north(5_500.0));
        let jobs = [job(1, a, 0), job(2, b, 0)];
        let drivers = [driver(10, north(1_000.0)), driver(11, north(-1_100.0))];
        let greedy = assign_greedy(&plain(), &jobs, &drivers);
        assert_eq!(greedy.len(), 1);
        let batch = assign_batch(&plain(), &jobs, &drivers, any_pair);
        let pairs: Vec<_> = batch.iter().map(|a| (a.order_id, a.driver_id)).collect();
        assert_eq!(pairs, [(id(1), id(11)), (id(2), id(10))]);
        assert!(total_cost(&batch) > total_cost(&greedy), "two orders cost more than one");
    }

    #[test]
    fn batch_never_pairs_what_may_pair_refuses() {
        // The cheapest pairs are 1–10 and 2–11; driver 10 declined order 1.
        let jobs = [job(1, restaurant(), 0), job(2, north(2_000.0), 0)];
        let drivers = [driver(10, north(100.0)), driver(11, north(2_100.0))];
        let declined = |job: &Job, candidate: &Candidate| !(job.order_id == id(1) && candidate.driver_id == id(10));
        let pairs = |v: &[Assignment]| v.iter().map(|a| (a.order_id, a.driver_id)).collect::<Vec<_>>();
        assert_eq!(pairs(&assign_batch(&plain(), &jobs, &drivers, any_pair)), [(id(1), id(10)), (id(2), id(11))]);
        assert_eq!(pairs(&assign_batch(&plain(), &jobs, &drivers, declined)), [(id(1), id(11)), (id(2), id(10))]);
        // Refused its only driver, the order is left out.
        assert_eq!(pairs(&assign_batch(&plain(), &jobs[..1], &drivers[..1], declined)), []);
    }

    #[test]
    fn more_orders_than_drivers_and_more_drivers_than_orders() {
        let policy = plain();
        // One driver, three orders: it goes where it is cheapest.
        let jobs = [job(1, north(2_000.0), 0), job(2, north(500.0), 0), job(3, north(-3_000.0), 0)];
        let one = assign_batch(&policy, &jobs, &[driver(10, restaurant())], any_pair);
        assert_eq!(one.iter().map(|a| (a.order_id, a.driver_id)).collect::<Vec<_>>(), [(id(2), id(10))]);
        // One order, three drivers: the best of them.
        let drivers = [driver(10, north(2_000.0)), driver(11, north(-300.0)), driver(12, north(700.0))];
        let best = assign_batch(&policy, &[job(1, restaurant(), 0)], &drivers, any_pair);
        assert_eq!(best.iter().map(|a| a.driver_id).collect::<Vec<_>>(), [id(11)]);
        assert_eq!(best[0].score, score(&policy, &job(1, restaurant(), 0), &drivers[1]).unwrap());
        // Three each, in a row along a meridian: each order takes the driver at its door.
        let jobs = [job(1, north(0.0), 0), job(2, north(2_000.0), 0), job(3, north(4_000.0), 0)];
        let drivers = [driver(12, north(4_010.0)), driver(10, north(10.0)), driver(11, north(2_010.0))];
        let all = assign_batch(&policy, &jobs, &drivers, any_pair);
        let pairs: Vec<_> = all.iter().map(|a| (a.order_id, a.driver_id)).collect();
        assert_eq!(pairs, [(id(1), id(10)), (id(2), id(11)), (id(3), id(12))]);
        assert!(assign_batch(&policy, &[], &drivers, any_pair).is_empty());
        assert!(assign_batch(&policy, &jobs, &[], any_pair).is_empty());
        assert!(assign_greedy(&policy, &[], &drivers).is_empty());
        assert!(assign_greedy(&policy, &jobs, &[]).is_empty());
    }

    #[test]
    fn an_order_nobody_can_reach_is_left_out_and_repeated_ids_count_once() {
        let policy = plain();
        let far = job(2, north(20_000.0), 0);
        let jobs = [job(1, restaurant(), 0), far, job(1, north(1_000.0), 0), job(3, north(200.0), 0)];
        let drivers = [driver(10, north(100.0)), driver(10, north(150.0)), driver(11, north(50.0))];
        for assigned in [assign_batch(&policy, &jobs, &drivers, any_pair), assign_greedy(&policy, &jobs, &drivers)] {
            let orders: Vec<Uuid> = assigned.iter().map(|a| a.order_id).collect();
            assert_eq!(orders, [id(1), id(3)], "{assigned:?}");
            for a in &assigned {
                // The first entry of a repeated id is the one scored.
                let job = jobs.iter().find(|j| j.order_id == a.order_id).unwrap();
                let driver = drivers.iter().find(|c| c.driver_id == a.driver_id).unwrap();
                assert_eq!(score(&policy, job, driver), Some(a.score));
            }
        }
        // Nobody in reach of anything.
        assert!(assign_batch(&policy, &[far], &drivers, any_pair).is_empty());
        assert!(assign_greedy(&policy, &[far], &drivers).is_empty());
    }

    fn around(center: LatLng, max_m: f64) -> impl Strategy<Value = LatLng> {
        (0.0..std::f64::consts::TAU, 0.0..max_m).prop_map(move |(bearing, d)| destination(center, bearing, d))
    }

    /// Anything a driver record may hold, some of it at capacity or out of reach.
    fn any_candidate() -> impl Strategy<Value = Candidate> {
        (
            around(restaurant(), 9_000.0),
            prop::option::of(-360.0..720.0f32),
            prop::option::of(0.0..30.0f32),
            0.0..=1.0f32,
            (1..=3u32).prop_flat_map(|capacity| (0..=capacity, Just(capacity))),
            prop::option::of((0..1_200u64).prop_map(secs)),
        )
            .prop_map(|(position, heading_deg, speed_mps, acceptance_rate, (active, capacity), since)| {
                Candidate {
                    driver_id: Uuid::nil(),
                    position,
                    heading_deg,
                    speed_mps,
                    acceptance_rate,
                    active_deliveries: active,
                    capacity,
                    since_last_offer: since,
                }
            })
    }

    fn any_job() -> impl Strategy<Value = Job> {
        (around(restaurant(), 4_000.0), 0..1_800u64, prop_oneof![Just(5_000u32), Just(10_000)]).prop_map(
            |(restaurant, ready, radius_m)| Job {
                order_id: Uuid::nil(),
                restaurant,
                food_ready_in: secs(ready),
                radius_m,
            },
        )
    }

    /// Jobs and candidates with distinct ids, from random bits so that their order is random too.
    fn any_scenario(max: usize) -> impl Strategy<Value = (Vec<Job>, Vec<Candidate>)> {
        (
            prop::collection::vec((any::<u128>(), any_job()), 0..=max),
            prop::collection::vec((any::<u128>(), any_candidate()), 0..=max),
        )
            .prop_map(|(jobs, candidates)| {
                let mut seen = HashSet::new();
                let jobs = jobs
                    .into_iter()
                    .filter(|(n, _)| seen.insert(*n))
                    .map(|(n, j)| Job { order_id: id(n), ..j })
                    .collect();
                let candidates = candidates
                    .into_iter()
                    .filter(|(n, _)| seen.insert(*n))
                    .map(|(n, c)| Candidate { driver_id: id(n), ..c })
                    .collect();
                (jobs, candidates)
            })
    }

    fn any_policy() -> impl Strategy<Value = DispatchPolicy> {
        prop_oneof![
            Just(DispatchPolicy::default()),
            Just(plain()),
            (0.0..3.0f64, 0.0..3.0f64, 0..600u64, 0..600u64, 0..600u64, 0..600u64).prop_map(
                |(late, early, heading, acceptance, load, fairness)| DispatchPolicy {
                    weights: DispatchWeights {
                        late,
                        early,
                        heading: secs(heading),
                        acceptance: secs(acceptance),
                        load: secs(load),
                        fairness: secs(fairness),
                        ..DispatchWeights::default()
                    },
                    ..DispatchPolicy::default()
                }
            ),
        ]
    }

    fn pairs(assignments: &[Assignment]) -> Vec<(Uuid, Uuid)> {
        let mut pairs: Vec<_> = assignments.iter().map(|a| (a.order_id, a.driver_id)).collect();
        pairs.sort();
        pairs
    }

    /// The most orders any assignment serves, and the least total cost among those that serve that
    /// many, by trying them all.
    fn brute_force(costs: &[Vec<Option<u64>>], row: usize, used: &mut [bool]) -> (usize, u64) {
        if row == costs.len() {
            return (0, 0);
        }
        let mut best = brute_force(costs, row + 1, used);
        for col in 0..used.len() {
            if let (false, Some(cost)) = (used[col], costs[row][col]) {
                used[col] = true;
                let (n, total) = brute_force(costs, row + 1, used);
                used[col] = false;
                let this = (n + 1, total + cost);
                if this.0 > best.0 || (this.0 == best.0 && this.1 < best.1) {
                    best = this;
                }
            }
        }
        best
    }

    proptest! {
        #[test]
        fn a_score_exists_exactly_for_a_free_driver_in_reach_and_adds_up(
            policy in any_policy(),
            job in any_job(),
            candidate in any_candidate(),
        ) {
            prop_assert_eq!(policy.validate(), Ok(()));
            let in_reach = distance_m(candidate.position, job.restaurant) <= f64::from(job.radius_m);
            let free = candidate.active_deliveries < candidate.capacity;
            let s = score(&policy, &job, &candidate);
            prop_assert_eq!(s.is_some(), in_reach && free);
            if let Some(s) = s {
                prop_assert_eq!(s.total, s.wait + s.heading + s.acceptance + s.load + s.fairness);
                let w = policy.weights;
                prop_assert!(s.heading <= ms(w.heading).round() as u64);
                prop_assert!(s.acceptance <= ms(w.acceptance).round() as u64);
                prop_assert!(s.load < ms(w.load).round() as u64 || s.load == 0);
                prop_assert!(s.fairness <= ms(w.fairness).round() as u64);
                prop_assert_eq!(s.travel, travel_time(s.distance_m * policy.detour_factor, policy.driving_speed_mps * 3.6));
            }
        }

        #[test]
        fn a_closer_driver_is_never_worse_when_the_food_is_ready(
            policy in any_policy(),
            candidate in any_candidate(),
            radius_m in prop_oneof![Just(5_000u32), Just(10_000)],
            (far, closer_by) in (0.0..10_000.0f64).prop_flat_map(|d| (Just(d), 0.0..=d)),
        ) {
            let order = Job { radius_m, ..job(1, restaurant(), 0) };
            // On the meridian the restaurant lies due south from anywhere: the heading term is the same.
            let at = |m| score(&policy, &order, &Candidate { position: north(m), ..candidate });
            if let Some(from_far) = at(far) {
                let from_closer = at(far - closer_by).unwrap();
                prop_assert!(from_closer.total <= from_far.total, "{:?} {:?}", from_closer, from_far);
                if closer_by >= 100.0 && policy.weights.late > 0.1 {
                    prop_assert!(from_closer.total < from_far.total, "{:?} {:?}", from_closer, from_far);
                }
            }
        }

        #[test]
        fn higher_acceptance_and_longer_since_the_last_offer_are_never_worse(
            policy in any_policy(),
            job in any_job(),
            candidate in any_candidate(),
            (low, high) in (0.0..=1.0f32).prop_flat_map(|a| (Just(a), a..=1.0f32)),
            (recent, longer) in (0..1_200u64).prop_flat_map(|a| (Just(a), a..1_200u64)),
        ) {
            let with = |rate, since| score(&policy, &job, &Candidate { acceptance_rate: rate, since_last_offer: Some(secs(since)), ..candidate });
            if let (Some(worse), Some(better)) = (with(low, recent), with(high, longer)) {
                prop_assert!(better.total <= worse.total);
                let acceptance_weight = ms(policy.weights.acceptance);
                if high - low >= 0.01 && acceptance_weight >= 1_000.0 {
                    prop_assert!(with(high, recent).unwrap().total < worse.total);
                }
            }
        }

        #[test]
        fn heading_towards_is_never_worse_than_unknown_nor_unknown_than_away(
            policy in any_policy(),
            job in any_job(),
            candidate in any_candidate(),
        ) {
            let towards = bearing_deg(candidate.position, job.restaurant) as f32;
            let with = |heading_deg| score(&policy, &job, &Candidate { heading_deg, speed_mps: None, ..candidate });
            if let (Some(to), Some(unknown), Some(away)) = (with(Some(towards)), with(None), with(Some(towards + 180.0))) {
                prop_assert!(to.total <= unknown.total);
                prop_assert!(unknown.total <= away.total);
                if to.distance_m > AT_RESTAURANT_M && policy.weights.heading >= secs(1) {
                    prop_assert!(to.total < away.total);
                }
            }
        }

        #[test]
        fn rank_is_sorted_complete_and_independent_of_input_order(
            policy in any_policy(),
            job in any_job(),
            (candidates, shuffled) in any_scenario(12)
                .prop_flat_map(|(_, c)| (Just(c.clone()), Just(c).prop_shuffle())),
        ) {
            let ranked = rank(&policy, &job, &candidates);
            prop_assert_eq!(&rank(&policy, &job, &shuffled), &ranked);
            prop_assert!(ranked.windows(2).all(|w| (w[0].1.total, w[0].0) < (w[1].1.total, w[1].0)));
            let feasible: HashSet<Uuid> =
                candidates.iter().filter(|c| score(&policy, &job, c).is_some()).map(|c| c.driver_id).collect();
            prop_assert_eq!(ranked.iter().map(|(id, _)| *id).collect::<HashSet<_>>(), feasible);
        }

        #[test]
        fn batch_pairs_are_feasible_distinct_and_never_worse_than_greedy(
            policy in any_policy(),
            ((jobs, candidates), shuffled_jobs, shuffled_candidates) in any_scenario(10)
                .prop_flat_map(|(j, c)| (Just((j.clone(), c.clone())), Just(j).prop_shuffle(), Just(c).prop_shuffle())),
        ) {
            let batch = assign_batch(&policy, &jobs, &candidates, any_pair);
            let greedy = assign_greedy(&policy, &jobs, &candidates);
            for assigned in [&batch, &greedy] {
                let orders: HashSet<Uuid> = assigned.iter().map(|a| a.order_id).collect();
                let drivers: HashSet<Uuid> = assigned.iter().map(|a| a.driver_id).collect();
                prop_assert_eq!(orders.len(), assigned.len(), "an order twice");
                prop_assert_eq!(drivers.len(), assigned.len(), "a driver twice");
                for a in assigned.iter() {
                    let job = jobs.iter().find(|j| j.order_id == a.order_id).unwrap();
                    let driver = candidates.iter().find(|c| c.driver_id == a.driver_id).unwrap();
                    prop_assert_eq!(score(&policy, job, driver), Some(a.score));
                }
            }
            // Greedy's assignment is one the batch could have chosen: the batch serves at least as
            // many orders and, serving as many, costs no more.
            prop_assert!(batch.len() >= greedy.len());
            if batch.len() == greedy.len() {
                prop_assert!(total_cost(&batch) <= total_cost(&greedy), "{} > {}", total_cost(&batch), total_cost(&greedy));
            }
            // The batch follows the jobs' order, and its pairs do not depend on the input order.
            let position = |id: Uuid| jobs.iter().position(|j| j.order_id == id);
            prop_assert!(batch.windows(2).all(|w| position(w[0].order_id) < position(w[1].order_id)));
            prop_assert_eq!(pairs(&assign_batch(&policy, &shuffled_jobs, &shuffled_candidates, any_pair)), pairs(&batch));
        }

        #[test]
        fn batch_is_optimal_on_small_scenarios(
            policy in any_policy(),
            (jobs, candidates) in any_scenario(5),
        ) {
            let costs: Vec<Vec<Option<u64>>> =
                jobs.iter().map(|j| candidates.iter().map(|c| score(&policy, j, c).map(|s| s.total)).collect()).collect();
            let best = brute_force(&costs, 0, &mut vec![false; candidates.len()]);
            let batch = assign_batch(&policy, &jobs, &candidates, any_pair);
            prop_assert_eq!((batch.len(), total_cost(&batch)), best);
        }
    }
}
