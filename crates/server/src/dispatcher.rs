//! The dispatcher, running in every replica: it leases due dispatch jobs
//! (an order just confirmed, an offer declined, expired or dropped), finds
//! the free drivers near the restaurant in Redis, scores them with the
//! domain's policy and offers the order to the best one. Greedy cities offer
//! each order as soon as it is due; batch cities collect their orders until
//! the next `batch_interval` boundary and solve them together. The store's
//! conditional writes keep one open offer per order and per driver, whatever
//! replicas race; a dispatcher that dies leaves its leases to run out.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use chrono::{DateTime, Utc};
use foodfast_domain::dispatch::{self, Candidate, DispatchPolicy, Job, Score};
use foodfast_store::StoreError;
use foodfast_store::dispatch::{ClaimedJob, NewOffer, Offered};
use foodfast_store::fanout::{DISPATCH_TOPIC, driver_topic};
use futures::StreamExt;
use uuid::Uuid;

use crate::api::App;

/// Without an earlier rate, a driver counts as accepting this share of offers.
const PRIOR_ACCEPTANCE: (f32, f32) = (1.0, 2.0);
/// How long after an offer's deadline a flagged order may be offered to the
/// same driver again. Without it the nearest driver would be asked again the
/// moment they declined, and everyone further away never.
const REOFFER_AFTER: Duration = Duration::from_secs(120);

/// Runs until the server stops.
pub async fn run(app: App) {
    let owner = Uuid::new_v4();
    let config = app.dispatch_config.clone();
    let mut wakes = app.fanout.subscribe(DISPATCH_TOPIC);
    tracing::info!(dispatcher = %owner, batch_cities = ?config.batch_cities, "dispatcher started");
    loop {
        loop {
            match claim_and_match(&app, owner).await {
                // A full claim: more may be due.
                Ok(claimed) if claimed == config.claim_limit as usize => continue,
                Ok(_) => break,
                Err(err) => {
                    tracing::warn!(error = %foodfast_store::Chain(&err), "dispatch round failed; retrying at the next poll");
                    break;
                }
            }
        }
        tokio::select! {
            _ = app.stopping.cancelled() => return,
            // A lagged or reconnected subscription is a wake-up too.
            _ = wakes.recv() => {}
            _ = tokio::time::sleep(config.poll_interval) => {}
        }
    }
}

/// One claim of due jobs, matched. Returns how many were claimed.
async fn claim_and_match(app: &App, owner: Uuid) -> Result<usize, StoreError> {
    let config = &app.dispatch_config;
    let jobs = app.dispatch.claim_due(owner, config.lease, config.claim_limit).await?;
    let claimed = jobs.len();
    let mut batches: BTreeMap<String, Vec<ClaimedJob>> = BTreeMap::new();
    let mut greedy = Vec::new();
    for job in jobs {
        match settle_open_offer(app, job).await {
            Ok(Some(job)) if config.batch_cities.contains(&job.city) => {
                batches.entry(job.city.clone()).or_default().push(job)
            }
            Ok(Some(job)) => greedy.push(job),
            Ok(None) => {}
            Err(err) => {
                tracing::warn!(error = %foodfast_store::Chain(&err), "dispatch job failed; its lease will run out")
            }
        }
    }
    futures::stream::iter(greedy)
        .for_each_concurrent(config.concurrency, |job| async move {
            if let Err(err) = match_greedy(app, &job).await {
                tracing::warn!(order = %job.order_id, error = %foodfast_store::Chain(&err), "matching failed; retrying");
                release(app, &job, config.retry_interval).await;
            }
        })
        .await;
    for (city, jobs) in batches {
        if let Err(err) = match_batch(app, &jobs).await {
            tracing::warn!(%city, error = %foodfast_store::Chain(&err), "batch matching failed; retrying");
            for job in &jobs {
                release(app, job, config.batch_interval).await;
            }
        }
    }
    Ok(claimed)
}

/// A job with an open offer waits for its deadline; past it, the offer
/// expires and the job is matched again now. Returns the job if it needs a
/// driver now, after flagging it if nobody accepted for too long.
async fn settle_open_offer(app: &App, mut job: ClaimedJob) -> Result<Option<ClaimedJob>, StoreError> {
    if let Some(open) = job.open_offer {
        if open.deadline > job.claimed_at {
            app.dispatch.release(&job, until(job.claimed_at, open.deadline)).await?;
            return Ok(None);
        }
        if let Some(driver_id) = app.dispatch.expire(open.offer_id, job.order_id).await? {
            app.wake(&driver_topic(driver_id)).await;
        }
        job.open_offer = None;
    }
    let config = &app.dispatch_config;
    let waited = until(job.started_at, job.claimed_at);
    if !job.flagged && (config.policy.should_flag(job.rounds) || waited >= config.flag_after) {
        let reason = "no driver has accepted yet; expect a delay while we keep looking";
        if let Some(event) = app.dispatch.flag(&job, reason).await? {
            tracing::warn!(order = %job.order_id, rounds = job.rounds, ?waited, "order flagged: nobody accepted");
            app.announce(event.restaurant_id, job.order_id).await;
        }
        job.flagged = true;
    }
    Ok(Some(job))
}

/// Offers the job to its best candidate, or tries again later.
async fn match_greedy(app: &App, job: &ClaimedJob) -> Result<(), StoreError> {
    let policy = &app.dispatch_config.policy;
    let (radius_m, candidates) = candidates(app, job).await?;
    for (driver_id, score) in dispatch::rank(policy, &domain_job(job, radius_m), &candidates) {
        match offer(app, job, driver_id, &score).await? {
            Offered::Made { .. } | Offered::LeaseLost => return Ok(()),
            Offered::DriverTaken => continue,
        }
    }
    release(app, job, app.dispatch_config.retry_interval).await;
    Ok(())
}

/// Solves one city's due jobs together. Jobs claimed before the city's next
/// batch boundary wait for it, so that a batch collects every order of the
/// interval.
async fn match_batch(app: &App, jobs: &[ClaimedJob]) -> Result<(), StoreError> {
    let config = &app.dispatch_config;
    let Some(first) = jobs.first() else { return Ok(()) };
    let interval = config.batch_interval;
    let to_boundary = until_boundary(first.claimed_at, interval);
    // Claimed within a few ms after a boundary: this is the batch.
    if to_boundary < interval.saturating_sub(config.poll_interval) {
        for job in jobs {
            app.dispatch.release(job, to_boundary).await?;
        }
        return Ok(());
    }
    let mut candidates: HashMap<Uuid, Candidate> = HashMap::new();
    let mut domain_jobs = Vec::with_capacity(jobs.len());
    for job in jobs {
        let (radius_m, found) = self::candidates(app, job).await?;
        domain_jobs.push(domain_job(job, radius_m));
        for candidate in found {
            candidates.insert(candidate.driver_id, candidate);
        }
    }
    let mut candidates: Vec<Candidate> = candidates.into_values().collect();
    candidates.sort_by_key(|c| c.driver_id);
    // The pool is every job's candidates: a driver who declined one order may be another's.
    let by_order: HashMap<Uuid, &ClaimedJob> = jobs.iter().map(|job| (job.order_id, job)).collect();
    let may_pair = |job: &Job, candidate: &Candidate| {
        by_order.get(&job.order_id).is_some_and(|claimed| may_offer(claimed, candidate.driver_id))
    };
    let assignments = dispatch::assign_batch(&config.policy, &domain_jobs, &candidates, may_pair);
    tracing::debug!(
        jobs = jobs.len(),
        drivers = candidates.len(),
        assigned = assignments.len(),
        total_cost = dispatch::total_cost(&assignments),
        "batch solved"
    );
    for job in jobs {
        let assigned = assignments.iter().find(|a| a.order_id == job.order_id);
        let made = match assigned {
            Some(assignment) => offer(app, job, assignment.driver_id, &assignment.score).await?,
            None => Offered::DriverTaken,
        };
        if made == Offered::DriverTaken {
            release(app, job, until_boundary(job.claimed_at, interval)).await;
        }
    }
    Ok(())
}

async fn offer(app: &App, job: &ClaimedJob, driver_id: Uuid, score: &Score) -> Result<Offered, StoreError> {
    let new = NewOffer {
        driver_id,
        // Higher is better on the wire: the negated cost in seconds.
        score: -(score.total as f64) / 1000.0,
        distance_m: score.distance_m.round() as u32,
        timeout: app.dispatch_config.policy.offer_timeout,
    };
    let offered = app.dispatch.offer(job, &new).await?;
    if let Offered::Made { offer_id, .. } = offered {
        tracing::debug!(order = %job.order_id, driver = %driver_id, %offer_id, round = job.rounds + 1, cost_ms = score.total, "offer made");
        app.wake(&driver_topic(driver_id)).await;
    }
    Ok(offered)
}

/// Free drivers near the restaurant whom the order may be offered to, with
/// their records, and the radius they were found within: the round's, or
/// the widened one at once when nobody was within that.
async fn candidates(app: &App, job: &ClaimedJob) -> Result<(u32, Vec<Candidate>), StoreError> {
    let policy: &DispatchPolicy = &app.dispatch_config.policy;
    let mut radius_m = policy.radius_m(job.rounds);
    loop {
        let found = candidates_within(app, job, radius_m).await?;
        match policy.wider_radius_m(radius_m) {
            Some(wider) if found.is_empty() => radius_m = wider,
            _ => return Ok((radius_m, found)),
        }
    }
}

async fn candidates_within(app: &App, job: &ClaimedJob, radius_m: u32) -> Result<Vec<Candidate>, StoreError> {
    let policy: &DispatchPolicy = &app.dispatch_config.policy;
    // Enough to have `max_candidates` left after those the order may not go to.
    let wanted = policy.max_candidates as usize + job.offered.len();
    let max_age = chrono::Duration::from_std(app.dispatch_config.max_position_age).unwrap_or(chrono::Duration::MAX);
    let fresh_since = Utc::now().checked_sub_signed(max_age).unwrap_or(DateTime::<Utc>::MIN_UTC);
    let nearby = app.live.available_near(&job.city, job.restaurant, radius_m, wanted, fresh_since).await?;
    let nearby: Vec<_> = nearby.into_iter().filter(|p| may_offer(job, p.driver_id)).collect();
    if nearby.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<Uuid> = nearby.iter().map(|p| p.driver_id).collect();
    let records = app.dispatch.candidates(&ids).await?;
    Ok(nearby
        .iter()
        .filter_map(|live| {
            let record = records.iter().find(|r| r.driver_id == live.driver_id)?;
            let (prior_accepted, prior_offers) = PRIOR_ACCEPTANCE;
            Some(Candidate {
                driver_id: live.driver_id,
                position: live.position,
                heading_deg: live.heading_deg,
                speed_mps: live.speed_mps,
                acceptance_rate: (record.offers_accepted as f32 + prior_accepted)
                    / (record.offers_received as f32 + prior_offers),
                active_deliveries: record.active_deliveries,
                capacity: record.capacity,
                since_last_offer: record.last_offer_at.map(|at| until(at, job.claimed_at)),
            })
        })
        // A driver without a free slot (the live state lagging) widens the search like nobody.
        .filter(|candidate| candidate.active_deliveries < candidate.capacity)
        .collect())
}

/// Whether the job's order may be offered to `driver_id`: never twice to
/// one driver, until the order is flagged; then again, once `REOFFER_AFTER`
/// has passed since their last offer of it.
fn may_offer(job: &ClaimedJob, driver_id: Uuid) -> bool {
    let mut theirs = job.offered.iter().filter(|offer| offer.driver_id == driver_id);
    if !job.flagged {
        return theirs.next().is_none();
    }
    theirs.all(|offer| until(offer.deadline, job.claimed_at) >= REOFFER_AFTER)
}

fn domain_job(job: &ClaimedJob, radius_m: u32) -> Job {
    Job {
        order_id: job.order_id,
        restaurant: job.restaurant,
        food_ready_in: until(job.claimed_at, job.food_ready_at),
        radius_m,
    }
}

async fn release(app: &App, job: &ClaimedJob, after: Duration) {
    if let Err(err) = app.dispatch.release(job, after).await {
        tracing::warn!(order = %job.order_id, error = %foodfast_store::Chain(&err), "could not release a dispatch job; its lease will run out");
    }
}

/// From `from` to `to`, zero if `to` is not later.
fn until(from: DateTime<Utc>, to: DateTime<Utc>) -> Duration {
    (to - from).to_std().unwrap_or_default()
}

/// Time from `now` to the next multiple of `interval` since the epoch: the
/// same boundaries on every replica.
fn until_boundary(now: DateTime<Utc>, interval: Duration) -> Duration {
    let interval_ms = interval.as_millis().max(1) as i64;
    let now_ms = now.timestamp_millis();
    let next = (now_ms / interval_ms + 1) * interval_ms;
    Duration::from_millis((next - now_ms) as u64)
}

#[cfg(test)]
mod tests {
    use foodfast_store::dispatch::PastOffer;

    use super::*;

    #[test]
    fn batch_boundaries_are_multiples_of_the_interval() {
        let at = |ms: i64| DateTime::from_timestamp_millis(ms).unwrap();
        let three = Duration::from_secs(3);
        assert_eq!(until_boundary(at(9_000), three), three, "on a boundary: the next one");
        assert_eq!(until_boundary(at(9_001), three), Duration::from_millis(2_999));
        assert_eq!(until_boundary(at(11_999), three), Duration::from_millis(1));
    }

    #[test]
    fn a_driver_is_asked_again_only_once_the_order_is_flagged_and_after_a_pause() {
        let now = Utc::now();
        let (asked, other) = (Uuid::new_v4(), Uuid::new_v4());
        let closed_ago = |secs: i64| PastOffer { driver_id: asked, deadline: now - chrono::Duration::seconds(secs) };
        let job = |flagged: bool, offered: Vec<PastOffer>| ClaimedJob {
            order_id: Uuid::new_v4(),
            delivery_id: Uuid::new_v4(),
            city: "lisbon".into(),
            restaurant: foodfast_domain::geo::LatLng::new(38.7, -9.1).unwrap(),
            rounds: offered.len() as u32,
            lease_epoch: 1,
            started_at: now,
            flagged,
            claimed_at: now,
            food_ready_at: now,
            open_offer: None,
            offered,
        };
        assert!(may_offer(&job(false, vec![]), asked));
        assert!(!may_offer(&job(false, vec![closed_ago(3_600)]), asked), "never twice before flagging");
        assert!(may_offer(&job(false, vec![closed_ago(3_600)]), other));
        assert!(!may_offer(&job(true, vec![closed_ago(0)]), asked), "not the moment they declined");
        assert!(!may_offer(&job(true, vec![closed_ago(119)]), asked));
        assert!(may_offer(&job(true, vec![closed_ago(120)]), asked));
        assert!(!may_offer(&job(true, vec![closed_ago(600), closed_ago(30)]), asked), "the latest offer counts");
        assert!(may_offer(&job(true, vec![closed_ago(0)]), other));
    }

    #[test]
    fn until_is_never_negative() {
        let now = Utc::now();
        assert_eq!(until(now, now - chrono::Duration::seconds(5)), Duration::ZERO);
        assert_eq!(until(now, now + chrono::Duration::seconds(5)), Duration::from_secs(5));
    }
}
