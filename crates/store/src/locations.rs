//! Driver locations in the time-series store: a bounded, retrying writer whose
//! acknowledgements mean durable, and the reads back (a driver's track in
//! pages, a city's day for the ops export).
//!
//! Every point becomes two rows: one in `driver_locations_by_city`, partitioned
//! by `(city, day, bucket)`, and one in `driver_track`, partitioned by
//! `(driver_id, day)`; `day` is the UTC date of `recorded_at`. Both inserts are
//! idempotent (same key, same row), so a retry or a resend is harmless. A
//! point is durable once both inserts have succeeded at the session's
//! consistency level.
//!
//! The writer takes what the queue holds (up to 1,024 points at a time) and
//! writes each table's rows grouped by partition: a group is one
//! single-partition unlogged batch (one row: the plain prepared insert),
//! which the store applies as one mutation, so a busy writer sends far fewer
//! statements than rows.
//!
//! Memory is bounded: at most `queue_capacity` points wait in the queue and
//! `max_in_flight / 2` are being written (a point holds two insert slots,
//! and a group's batch takes no more slots than its rows); `submit` waits
//! while the queue is full. Store errors are retried with backoff until the
//! writer stops, so while the store is down points wait, unacknowledged.
//!
//! Per driver the writer keeps a durable watermark (see
//! [`LocationWriter::subscribe_driver`]). Its state is bounded by the drivers
//! with points queued or in flight (at most the two bounds above), plus those
//! with a live subscription, plus those that submitted within
//! `idle_driver_ttl`; anything else is dropped by a periodic sweep.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use ::scylla::DeserializeRow;
use ::scylla::errors::{NextPageError, NextRowError, PagerExecutionError};
use ::scylla::response::{PagingState, PagingStateResponse};
use ::scylla::serialize::row::SerializeRow;
use ::scylla::statement::batch::{Batch, BatchStatement, BatchType};
use ::scylla::statement::prepared::PreparedStatement;
use ::scylla::value::MaybeUnset;
use chrono::{DateTime, NaiveDate, TimeDelta, Utc};
use futures::{Stream, StreamExt, TryStreamExt};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, watch};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::failure_log::FailureLog;
use crate::scylla::Scylla;
use crate::{InvalidSetting, StoreError, lock, sql};

/// One GPS fix of one driver, as the ingest path accepted it.
#[derive(Debug, Clone, PartialEq)]
pub struct LocationPoint {
    pub driver_id: Uuid,
    /// The app's sequence number: per driver, from 1, at most `i64::MAX`
    /// (CQL `bigint`).
    pub seq: u64,
    /// The configured zone, or the explicit "unzoned" one.
    pub city: String,
    pub lat: f64,
    pub lng: f64,
    pub accuracy_m: Option<f32>,
    pub speed_mps: Option<f32>,
    pub heading_deg: Option<f32>,
    /// The device's clock. Decides the partition day; stored to the
    /// millisecond, and one row per driver and millisecond.
    pub recorded_at: DateTime<Utc>,
    pub received_at: DateTime<Utc>,
}

impl LocationPoint {
    /// The partition day in both tables: the UTC date of `recorded_at`.
    pub fn day(&self) -> NaiveDate {
        self.recorded_at.date_naive()
    }
}

/// The bucket of a driver within a city-day partition set: FNV-1a of the
/// UUID's bytes modulo `buckets` (1 to 1024). Fixed forever, since readers of
/// older days must find the rows where they were written.
pub fn bucket_of(driver_id: Uuid, buckets: u16) -> i16 {
    (fnv1a(driver_id.as_bytes()) % u64::from(buckets)) as i16
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &byte| (hash ^ u64::from(byte)).wrapping_mul(0x100_0000_01b3))
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LocationWriterConfig {
    /// Points accepted but not yet being written. When full, `submit` waits,
    /// so the caller stops reading its stream.
    pub queue_capacity: usize,
    /// Insert slots: each point being written holds two (its two rows), so
    /// at most half as many points are in flight, in at most as many
    /// statements.
    pub max_in_flight: usize,
    /// The first retry of a failed insert waits about this long; each further
    /// one twice as long, up to `retry_backoff_max`, with jitter.
    #[serde(with = "humantime_serde")]
    pub retry_backoff_base: Duration,
    #[serde(with = "humantime_serde")]
    pub retry_backoff_max: Duration,
    /// Partitions per city and day, 1 to 1024. Only ever raise it: a day's
    /// readers scan the largest count it was written with.
    pub buckets: u16,
    /// How long the watermark of a driver with nothing pending and no
    /// subscriber is kept after its last submission.
    #[serde(with = "humantime_serde")]
    pub idle_driver_ttl: Duration,
}

impl Default for LocationWriterConfig {
    fn default() -> Self {
        Self {
            queue_capacity: 65_536,
            max_in_flight: 2048,
            retry_backoff_base: Duration::from_millis(50),
            retry_backoff_max: Duration::from_secs(5),
            buckets: 16,
            idle_driver_ttl: Duration::from_secs(60),
        }
    }
}

impl LocationWriterConfig {
    /// Checks what would otherwise panic or stall the writer.
    pub fn validate(&self) -> Result<(), InvalidSetting> {
        let invalid = |key, message: &str| Err(InvalidSetting { key, message: message.into() });
        if !(1..=Semaphore::MAX_PERMITS).contains(&self.queue_capacity) {
            return invalid("queue_capacity", "must be at least 1");
        }
        if !(2..=Semaphore::MAX_PERMITS).contains(&self.max_in_flight) {
            return invalid("max_in_flight", "must be at least 2 (a point is two inserts)");
        }
        if self.retry_backoff_base.is_zero() || self.retry_backoff_max < self.retry_backoff_base {
            return invalid("retry_backoff_base", "must be positive and at most retry_backoff_max");
        }
        if !(1..=1024).contains(&self.buckets) {
            return invalid("buckets", "must be 1 to 1024");
        }
        if self.idle_driver_ttl < Duration::from_secs(1) {
            return invalid("idle_driver_ttl", "must be at least 1s");
        }
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    /// Only from `try_submit`: the queue is full. The point is handed back.
    #[error("the location queue is full")]
    Full(Box<LocationPoint>),
    #[error("the location writer has stopped")]
    Stopped,
    #[error("seq {0} is out of range (at most 2^63 - 1)")]
    SeqOutOfRange(u64),
}

/// Counters since start, and the current depths.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LocationWriterStats {
    /// Points accepted by `submit` or `try_submit`.
    pub submitted: u64,
    /// Points with both rows written.
    pub durable: u64,
    pub rows_written: u64,
    /// Failed insert attempts, each retried after a backoff.
    pub retries: u64,
    /// Points waiting in the queue (at most `queue_capacity`).
    pub queue_depth: usize,
    /// Insert slots taken by inserts running or waiting to retry, and by the
    /// pair held for the next point (at most `max_in_flight`).
    pub in_flight: usize,
    /// Drivers whose watermark the writer holds.
    pub tracked_drivers: usize,
}

/// The handle to the writer's tasks; clone it freely. The tasks end when
/// `stop` is cancelled (queued and unfinished points are then dropped,
/// unacknowledged) or when every handle is gone and the queue is written.
#[derive(Clone)]
pub struct LocationWriter {
    queue: mpsc::Sender<LocationPoint>,
    shared: Arc<Shared>,
}

struct Shared {
    scylla: Scylla,
    insert_by_city: PreparedStatement,
    insert_track: PreparedStatement,
    config: LocationWriterConfig,
    in_flight: Arc<Semaphore>,
    drivers: Drivers,
    submitted: AtomicU64,
    durable: AtomicU64,
    rows_written: AtomicU64,
    retries: AtomicU64,
    failures: FailureLog,
    stop: CancellationToken,
}

impl LocationWriter {
    /// Prepares the two inserts and starts the writer's tasks.
    pub async fn start(
        scylla: Scylla,
        config: LocationWriterConfig,
        stop: CancellationToken,
    ) -> Result<Self, StoreError> {
        config.validate().map_err(|err| StoreError::InvalidQuery(format!("location writer: {err}")))?;
        let insert_by_city = prepare(&scylla, sql::cql::insert_location_by_city(scylla.keyspace())).await?;
        let insert_track = prepare(&scylla, sql::cql::insert_driver_track(scylla.keyspace())).await?;
        let (queue, receiver) = mpsc::channel(config.queue_capacity);
        let shared = Arc::new(Shared {
            scylla,
            insert_by_city,
            insert_track,
            in_flight: Arc::new(Semaphore::new(config.max_in_flight)),
            drivers: Drivers::new(),
            submitted: AtomicU64::new(0),
            durable: AtomicU64::new(0),
            rows_written: AtomicU64::new(0),
            retries: AtomicU64::new(0),
            failures: FailureLog::new("location inserts failing; retrying with backoff"),
            stop,
            config,
        });
        tokio::spawn(dispatch(shared.clone(), receiver));
        tokio::spawn(sweep(Arc::downgrade(&shared), shared.stop.clone(), shared.config.idle_driver_ttl));
        Ok(Self { queue, shared })
    }

    /// Queues a point, waiting while the queue is full. Cancel-safe: a caller
    /// that gives up while waiting leaves nothing behind.
    pub async fn submit(&self, point: LocationPoint) -> Result<(), SubmitError> {
        check_seq(point.seq)?;
        let slot = self.queue.reserve().await.map_err(|_| SubmitError::Stopped)?;
        self.enqueue(slot, point);
        Ok(())
    }

    /// Queues a point if there is room now.
    pub fn try_submit(&self, point: LocationPoint) -> Result<(), SubmitError> {
        check_seq(point.seq)?;
        match self.queue.try_reserve() {
            Ok(slot) => {
                self.enqueue(slot, point);
                Ok(())
            }
            Err(mpsc::error::TrySendError::Full(())) => Err(SubmitError::Full(Box::new(point))),
            Err(mpsc::error::TrySendError::Closed(())) => Err(SubmitError::Stopped),
        }
    }

    fn enqueue(&self, slot: mpsc::Permit<'_, LocationPoint>, point: LocationPoint) {
        // Registered before it is sent, so its completion always finds it.
        self.shared.drivers.submitted(point.driver_id, point.seq);
        self.shared.submitted.fetch_add(1, Ordering::Relaxed);
        slot.send(point);
        crate::metrics::location_queue_depth(self.queue.max_capacity() - self.queue.capacity());
    }

    /// The driver's durable watermark, 0 until one exists: the highest seq
    /// S such that every point with seq <= S submitted for this driver (since
    /// the writer began holding state for it) is durable. Seqs never submitted
    /// (rejected upstream) do not hold it back; it never goes down, and a
    /// seq at or below it that is submitted again is written but not waited
    /// for. Holding a receiver keeps the driver's state.
    pub fn subscribe_driver(&self, driver_id: Uuid) -> watch::Receiver<u64> {
        self.shared.drivers.subscribe(driver_id)
    }

    /// The watermark (see `subscribe_driver`), or `None` if the writer holds no
    /// durable seq for the driver (never submitted, nothing durable yet, or
    /// idle longer than `idle_driver_ttl`).
    pub fn durable_seq(&self, driver_id: Uuid) -> Option<u64> {
        self.shared.drivers.durable_seq(driver_id)
    }

    /// The lowest seq of this driver queued or being written, not durable yet.
    pub fn lowest_unwritten(&self, driver_id: Uuid) -> Option<u64> {
        self.shared.drivers.lowest_unwritten(driver_id)
    }

    pub fn stats(&self) -> LocationWriterStats {
        let shared = &self.shared;
        LocationWriterStats {
            submitted: shared.submitted.load(Ordering::Relaxed),
            durable: shared.durable.load(Ordering::Relaxed),
            rows_written: shared.rows_written.load(Ordering::Relaxed),
            retries: shared.retries.load(Ordering::Relaxed),
            queue_depth: self.queue.max_capacity() - self.queue.capacity(),
            in_flight: shared.config.max_in_flight - shared.in_flight.available_permits(),
            tracked_drivers: shared.drivers.len(),
        }
    }
}

fn check_seq(seq: u64) -> Result<(), SubmitError> {
    if i64::try_from(seq).is_err() {
        return Err(SubmitError::SeqOutOfRange(seq));
    }
    Ok(())
}

async fn prepare(scylla: &Scylla, cql: String) -> Result<PreparedStatement, StoreError> {
    let mut statement = scylla.session().prepare(cql).await.map_err(StoreError::scylla_query)?;
    statement.set_is_idempotent(true);
    Ok(statement)
}

/// Most points taken from the queue for one write: their rows are grouped
/// by partition, each group one statement.
const MAX_POINTS_PER_WRITE: usize = 1024;
/// Most rows in one batch: well under Cassandra's default 5 KiB batch-size
/// warning (a row is about 120 bytes).
const MAX_ROWS_PER_BATCH: usize = 32;

/// Hands what the queue holds to a write task: up to `MAX_POINTS_PER_WRITE`
/// points, each holding two of the `max_in_flight` insert slots (its two
/// rows; a partition group's batch needs no more than its rows), taken
/// before the point leaves the queue, so waiting points stay counted there.
async fn dispatch(shared: Arc<Shared>, mut queue: mpsc::Receiver<LocationPoint>) {
    loop {
        let slots = tokio::select! {
            biased;
            _ = shared.stop.cancelled() => return,
            slots = shared.in_flight.clone().acquire_many_owned(2) => slots,
        };
        let Ok(mut slots) = slots else { return };
        let first = tokio::select! {
            biased;
            _ = shared.stop.cancelled() => return,
            point = queue.recv() => point,
        };
        let Some(first) = first else { return };
        let mut points = vec![first];
        while points.len() < MAX_POINTS_PER_WRITE && !queue.is_empty() {
            let Ok(more) = shared.in_flight.clone().try_acquire_many_owned(2) else { break };
            slots.merge(more);
            // The only receiver: not empty means a point is there.
            let Ok(point) = queue.try_recv() else { break };
            points.push(point);
        }
        crate::metrics::location_queue_depth(queue.len());
        let writes = PartitionWrites::of(&points, shared.config.buckets);
        tokio::spawn(shared.clone().write(points, writes, slots));
    }
}

/// The rows of a set of points, grouped by partition in each table (indexes
/// into the points), so that each group is one single-partition batch:
/// Cassandra and ScyllaDB apply it as one mutation.
struct PartitionWrites {
    by_city: Vec<Vec<usize>>,
    track: Vec<Vec<usize>>,
}

impl PartitionWrites {
    fn of(points: &[LocationPoint], buckets: u16) -> Self {
        let mut by_city: HashMap<(&str, NaiveDate, i16), Vec<usize>> = HashMap::new();
        let mut track: HashMap<(Uuid, NaiveDate), Vec<usize>> = HashMap::new();
        for (index, point) in points.iter().enumerate() {
            let day = point.day();
            by_city.entry((&point.city, day, bucket_of(point.driver_id, buckets))).or_default().push(index);
            track.entry((point.driver_id, day)).or_default().push(index);
        }
        Self { by_city: batches(by_city.into_values()), track: batches(track.into_values()) }
    }
}

/// Partition groups cut to at most `MAX_ROWS_PER_BATCH` rows each.
fn batches(groups: impl Iterator<Item = Vec<usize>>) -> Vec<Vec<usize>> {
    groups.flat_map(|rows| rows.chunks(MAX_ROWS_PER_BATCH).map(<[usize]>::to_vec).collect::<Vec<_>>()).collect()
}

async fn sweep(shared: Weak<Shared>, stop: CancellationToken, ttl: Duration) {
    let mut every = tokio::time::interval(ttl / 2);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = every.tick() => {}
        }
        let Some(shared) = shared.upgrade() else { return };
        shared.drivers.sweep(ttl);
    }
}

impl Shared {
    /// Writes both rows of every point, each partition group as one
    /// statement, and marks the points durable once all are written.
    async fn write(self: Arc<Self>, points: Vec<LocationPoint>, writes: PartitionWrites, _slots: OwnedSemaphorePermit) {
        let started = Instant::now();
        let rows: Vec<(CityRowValues<'_>, TrackRowValues<'_>)> =
            points.iter().map(|point| rows_of(point, self.config.buckets)).collect();
        let by_city = writes.by_city.iter().map(|group| {
            self.insert(&self.insert_by_city, group.iter().map(|&index| &rows[index].0).collect::<Vec<_>>())
        });
        let track = writes.track.iter().map(|group| {
            self.insert(&self.insert_track, group.iter().map(|&index| &rows[index].1).collect::<Vec<_>>())
        });
        let (by_city, track) = tokio::join!(futures::future::join_all(by_city), futures::future::join_all(track));
        if by_city.into_iter().chain(track).all(|written| written) {
            self.durable.fetch_add(points.len() as u64, Ordering::Relaxed);
            for point in &points {
                self.drivers.completed(point.driver_id, point.seq);
                crate::metrics::location_written(started.elapsed());
            }
        }
    }

    /// Writes `rows` of one partition (one row: the prepared statement; more:
    /// an unlogged batch of it) until that succeeds (true) or the writer
    /// stops (false).
    async fn insert<R: SerializeRow>(&self, statement: &PreparedStatement, rows: Vec<&R>) -> bool {
        let batch = (rows.len() > 1).then(|| {
            let mut batch = Batch::new_with_statements(
                BatchType::Unlogged,
                vec![BatchStatement::PreparedStatement(statement.clone()); rows.len()],
            );
            batch.set_is_idempotent(true);
            batch
        });
        let mut attempt = 0;
        loop {
            let session = self.scylla.session();
            let result = tokio::select! {
                biased;
                _ = self.stop.cancelled() => return false,
                result = async {
                    match &batch {
                        Some(batch) => session.batch(batch, &rows).await,
                        None => session.execute_unpaged(statement, rows[0]).await,
                    }
                } => result,
            };
            match result {
                Ok(_) => {
                    self.rows_written.fetch_add(rows.len() as u64, Ordering::Relaxed);
                    self.failures.succeeded();
                    return true;
                }
                Err(err) => {
                    self.retries.fetch_add(1, Ordering::Relaxed);
                    crate::metrics::location_write_retried();
                    self.failures.failed(&StoreError::scylla(err));
                }
            }
            let delay = backoff(self.config.retry_backoff_base, self.config.retry_backoff_max, attempt);
            attempt = attempt.saturating_add(1);
            tokio::select! {
                biased;
                _ = self.stop.cancelled() => return false,
                _ = tokio::time::sleep(delay) => {}
            }
        }
    }
}

type CityRowValues<'a> = (
    &'a str,
    NaiveDate,
    i16,
    Uuid,
    DateTime<Utc>,
    i64,
    f64,
    f64,
    MaybeUnset<f32>,
    MaybeUnset<f32>,
    MaybeUnset<f32>,
    DateTime<Utc>,
);
type TrackRowValues<'a> =
    (Uuid, NaiveDate, DateTime<Utc>, i64, &'a str, f64, f64, MaybeUnset<f32>, MaybeUnset<f32>, MaybeUnset<f32>);

/// A point's row in each table.
fn rows_of(point: &LocationPoint, buckets: u16) -> (CityRowValues<'_>, TrackRowValues<'_>) {
    let day = point.day();
    // Checked by `submit`.
    let seq = point.seq as i64;
    // Unset, not null: a null would write a tombstone.
    let accuracy = MaybeUnset::from_option(point.accuracy_m);
    let speed = MaybeUnset::from_option(point.speed_mps);
    let heading = MaybeUnset::from_option(point.heading_deg);
    let by_city = (
        point.city.as_str(),
        day,
        bucket_of(point.driver_id, buckets),
        point.driver_id,
        point.recorded_at,
        seq,
        point.lat,
        point.lng,
        accuracy,
        speed,
        heading,
        point.received_at,
    );
    let track = (
        point.driver_id,
        day,
        point.recorded_at,
        seq,
        point.city.as_str(),
        point.lat,
        point.lng,
        accuracy,
        speed,
        heading,
    );
    (by_city, track)
}

/// Exponential backoff with "equal jitter": between half and all of
/// `base * 2^attempt` (capped at `max`), so retries spread out yet back off.
fn backoff(base: Duration, max: Duration, attempt: u32) -> Duration {
    let ceiling = base.saturating_mul(2u32.saturating_pow(attempt)).min(max);
    ceiling / 2 + ceiling.mul_f64(fastrand::f64() / 2.0)
}

/// Per-driver watermarks, sharded so submitting and completing points of
/// different drivers rarely contend.
struct Drivers {
    shards: Box<[Mutex<HashMap<Uuid, DriverState>>]>,
}

const SHARDS: u64 = 64;

struct DriverState {
    /// Submitted seqs above the watermark, with their unfinished submissions:
    /// 0 means written but waiting for a lower seq.
    pending: BTreeMap<u64, u32>,
    durable: watch::Sender<u64>,
    touched: Instant,
}

impl DriverState {
    fn new() -> Self {
        Self { pending: BTreeMap::new(), durable: watch::Sender::new(0), touched: Instant::now() }
    }
}

impl Drivers {
    fn new() -> Self {
        Self { shards: (0..SHARDS).map(|_| Mutex::default()).collect() }
    }

    fn shard(&self, driver_id: &Uuid) -> MutexGuard<'_, HashMap<Uuid, DriverState>> {
        lock(&self.shards[(fnv1a(driver_id.as_bytes()) % SHARDS) as usize])
    }

    fn submitted(&self, driver_id: Uuid, seq: u64) {
        let mut shard = self.shard(&driver_id);
        let state = shard.entry(driver_id).or_insert_with(DriverState::new);
        state.touched = Instant::now();
        if seq > *state.durable.borrow() {
            *state.pending.entry(seq).or_default() += 1;
        }
    }

    fn completed(&self, driver_id: Uuid, seq: u64) {
        let mut shard = self.shard(&driver_id);
        let Some(state) = shard.get_mut(&driver_id) else { return };
        let Some(unfinished) = state.pending.get_mut(&seq) else { return };
        // Saturating: a write of the same seq submitted before the state was
        // swept may finish after a new submission already counted it.
        *unfinished = unfinished.saturating_sub(1);
        let mut watermark = *state.durable.borrow();
        while let Some(lowest) = state.pending.first_entry() {
            if *lowest.get() > 0 {
                break;
            }
            watermark = lowest.remove_entry().0;
        }
        state.durable.send_if_modified(|durable| {
            let advanced = watermark > *durable;
            *durable = watermark.max(*durable);
            advanced
        });
    }

    fn subscribe(&self, driver_id: Uuid) -> watch::Receiver<u64> {
        let mut shard = self.shard(&driver_id);
        let state = shard.entry(driver_id).or_insert_with(DriverState::new);
        state.touched = Instant::now();
        state.durable.subscribe()
    }

    fn durable_seq(&self, driver_id: Uuid) -> Option<u64> {
        let shard = self.shard(&driver_id);
        shard.get(&driver_id).map(|state| *state.durable.borrow()).filter(|&seq| seq > 0)
    }

    /// The lowest pending seq is always unfinished: finished ones at the
    /// bottom are removed as the watermark passes them.
    fn lowest_unwritten(&self, driver_id: Uuid) -> Option<u64> {
        let shard = self.shard(&driver_id);
        shard.get(&driver_id).and_then(|state| state.pending.first_key_value().map(|(&seq, _)| seq))
    }

    /// Drops drivers with nothing pending, no subscriber, and no submission
    /// for `ttl`.
    fn sweep(&self, ttl: Duration) {
        for shard in &self.shards {
            lock(shard).retain(|_, state| {
                !state.pending.is_empty() || state.durable.receiver_count() > 0 || state.touched.elapsed() < ttl
            });
        }
    }

    fn len(&self) -> usize {
        self.shards.iter().map(|shard| lock(shard).len()).sum()
    }
}

/// One stored point of a driver's track (the driver is the one asked for).
#[derive(Debug, Clone, PartialEq)]
pub struct TrackPoint {
    pub seq: u64,
    pub city: String,
    pub lat: f64,
    pub lng: f64,
    pub accuracy_m: Option<f32>,
    pub speed_mps: Option<f32>,
    pub heading_deg: Option<f32>,
    pub recorded_at: DateTime<Utc>,
}

/// One page of a driver's track, oldest first.
#[derive(Debug, Clone, PartialEq)]
pub struct TrackPage {
    pub points: Vec<TrackPoint>,
    /// Opaque; `None` when the range is exhausted.
    pub next_page_token: Option<String>,
}

/// The longest range `driver_track` reads: a day, so one call visits at
/// most two day partitions.
pub const MAX_TRACK_RANGE: TimeDelta = TimeDelta::hours(24);

/// Prepared reads of the location tables; clone freely.
#[derive(Clone)]
pub struct LocationReader {
    scylla: Scylla,
    select_track: PreparedStatement,
    select_by_city: PreparedStatement,
}

#[derive(DeserializeRow)]
struct TrackRow {
    recorded_at: DateTime<Utc>,
    seq: i64,
    city: String,
    lat: f64,
    lng: f64,
    accuracy_m: Option<f32>,
    speed_mps: Option<f32>,
    heading_deg: Option<f32>,
}

#[derive(DeserializeRow)]
struct CityRow {
    driver_id: Uuid,
    recorded_at: DateTime<Utc>,
    seq: i64,
    lat: f64,
    lng: f64,
    accuracy_m: Option<f32>,
    speed_mps: Option<f32>,
    heading_deg: Option<f32>,
    received_at: DateTime<Utc>,
}

fn stored_seq(seq: i64) -> Result<u64, StoreError> {
    u64::try_from(seq).map_err(|_| StoreError::Corrupt(format!("negative location seq {seq}")))
}

impl LocationReader {
    #[tracing::instrument(target = "foodfast::trace", name = "LocationReader.prepare", skip_all, fields(otel.kind = "client", db.system = "cassandra"))]
    pub async fn prepare(scylla: &Scylla) -> Result<Self, StoreError> {
        Ok(Self {
            scylla: scylla.clone(),
            select_track: prepare(scylla, sql::cql::select_driver_track(scylla.keyspace())).await?,
            select_by_city: prepare(scylla, sql::cql::select_locations_by_city(scylla.keyspace())).await?,
        })
    }

    /// A page of at most `page_size` points of the driver recorded in
    /// `[from, to)`, oldest first, over the day partitions the range touches.
    /// `page_token` is a previous page's `next_page_token` for the same range.
    #[tracing::instrument(target = "foodfast::trace", name = "LocationReader.driver_track", skip_all, fields(otel.kind = "client", db.system = "cassandra"))]
    pub async fn driver_track(
        &self,
        driver_id: Uuid,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        page_size: u32,
        page_token: Option<&str>,
    ) -> Result<TrackPage, StoreError> {
        if from >= to || to - from > MAX_TRACK_RANGE {
            return Err(StoreError::InvalidQuery(format!(
                "track range must be non-empty and at most {MAX_TRACK_RANGE}"
            )));
        }
        if page_size == 0 {
            return Err(StoreError::InvalidQuery("page size must be at least 1".into()));
        }
        let first_day = from.date_naive();
        let last_day = (to - TimeDelta::nanoseconds(1)).date_naive();
        let range = range_tag(driver_id, from, to);
        let (mut day, mut paging) = match page_token {
            None => (first_day, PagingState::start()),
            Some(token) => decode_token(token, range, first_day, last_day)?,
        };
        let page_size = page_size as usize;
        let mut points = Vec::new();
        loop {
            let mut select = self.select_track.clone();
            select.set_page_size(i32::try_from(page_size - points.len()).unwrap_or(i32::MAX));
            let (result, response) = self
                .scylla
                .session()
                .execute_single_page(&select, (driver_id, day, from, to), paging)
                .await
                .map_err(StoreError::scylla)?;
            let rows = result.into_rows_result().map_err(StoreError::scylla_query)?;
            for row in rows.rows::<TrackRow>().map_err(StoreError::scylla_query)? {
                let row = row.map_err(StoreError::scylla_query)?;
                points.push(TrackPoint {
                    seq: stored_seq(row.seq)?,
                    city: row.city,
                    lat: row.lat,
                    lng: row.lng,
                    accuracy_m: row.accuracy_m,
                    speed_mps: row.speed_mps,
                    heading_deg: row.heading_deg,
                    recorded_at: row.recorded_at,
                });
            }
            let next = match response {
                PagingStateResponse::HasMorePages { state } => Some((day, state)),
                PagingStateResponse::NoMorePages => {
                    day.succ_opt().filter(|next| *next <= last_day).map(|next| (next, PagingState::start()))
                }
            };
            match next {
                Some((next_day, next_paging)) if points.len() < page_size => (day, paging) = (next_day, next_paging),
                next => {
                    let next_page_token = next.map(|(day, paging)| encode_token(day, &paging, range));
                    return Ok(TrackPage { points, next_page_token });
                }
            }
        }
    }

    /// Every point stored for a city on one UTC day, bucket by bucket (order
    /// within a bucket: driver, then time). `buckets` is the largest count the
    /// day was written with.
    pub fn city_day(
        &self,
        city: &str,
        day: NaiveDate,
        buckets: u16,
    ) -> impl Stream<Item = Result<LocationPoint, StoreError>> + Send + 'static {
        let (scylla, select, city) = (self.scylla.clone(), self.select_by_city.clone(), city.to_owned());
        let point_city = city.clone();
        futures::stream::iter(0..buckets)
            .then(move |bucket| {
                let (scylla, select, city) = (scylla.clone(), select.clone(), city.clone());
                async move {
                    let pager = scylla
                        .session()
                        .execute_iter(select, (city, day, bucket as i16))
                        .await
                        .map_err(pager_execution_error)?;
                    Ok(pager.rows_stream::<CityRow>().map_err(StoreError::scylla_query)?.map_err(next_row_error))
                }
            })
            .try_flatten()
            .map(move |row| {
                let row = row?;
                Ok(LocationPoint {
                    driver_id: row.driver_id,
                    seq: stored_seq(row.seq)?,
                    city: point_city.clone(),
                    lat: row.lat,
                    lng: row.lng,
                    accuracy_m: row.accuracy_m,
                    speed_mps: row.speed_mps,
                    heading_deg: row.heading_deg,
                    recorded_at: row.recorded_at,
                    received_at: row.received_at,
                })
            })
    }
}

/// Which query a token continues: a paging state means something only for
/// the statement and values it came from.
fn range_tag(driver_id: Uuid, from: DateTime<Utc>, to: DateTime<Utc>) -> u64 {
    let mut bytes = driver_id.as_bytes().to_vec();
    for time in [from, to] {
        bytes.extend_from_slice(&time.timestamp().to_be_bytes());
        bytes.extend_from_slice(&time.timestamp_subsec_nanos().to_be_bytes());
    }
    fnv1a(&bytes)
}

/// `DAY.STATE.RANGE`: the day partition, the driver's paging state within it
/// in hex (empty at the start of a day), and the range's tag.
fn encode_token(day: NaiveDate, paging: &PagingState, range: u64) -> String {
    format!("{day}.{}.{range:016x}", paging.as_bytes_slice().map(hex::encode).unwrap_or_default())
}

fn decode_token(
    token: &str,
    range: u64,
    first_day: NaiveDate,
    last_day: NaiveDate,
) -> Result<(NaiveDate, PagingState), StoreError> {
    let invalid = || StoreError::InvalidQuery("page token does not belong to this range".into());
    let mut parts = token.split('.');
    let (Some(day), Some(state), Some(tag), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
        return Err(invalid());
    };
    let day = day.parse::<NaiveDate>().map_err(|_| invalid())?;
    if tag != format!("{range:016x}") || day < first_day || day > last_day {
        return Err(invalid());
    }
    let state = hex::decode(state).map_err(|_| invalid())?;
    let paging = if state.is_empty() { PagingState::start() } else { PagingState::new_from_raw_bytes(state) };
    Ok((day, paging))
}

/// Keeps "the store is down" apart from "the query is wrong" for pagers too.
fn next_page_error(err: NextPageError) -> StoreError {
    match err {
        NextPageError::RequestFailure(err) => StoreError::scylla(err.into_execution_error()),
        other => StoreError::scylla_query(other),
    }
}

fn pager_execution_error(err: PagerExecutionError) -> StoreError {
    match err {
        PagerExecutionError::NextPageError(err) => next_page_error(err),
        other => StoreError::scylla_query(other),
    }
}

fn next_row_error(err: NextRowError) -> StoreError {
    match err {
        NextRowError::NextPageError(err) => next_page_error(err),
        other => StoreError::scylla_query(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_set_of_points_becomes_one_batch_per_partition_of_at_most_32_rows() {
        let at = |day: u32, second: u32| {
            chrono::NaiveDate::from_ymd_opt(2026, 12, day).unwrap().and_hms_opt(10, 0, second).unwrap().and_utc()
        };
        let point = |driver_id: Uuid, city: &str, recorded_at: DateTime<Utc>, seq: u64| LocationPoint {
            driver_id,
            seq,
            city: city.into(),
            lat: 0.0,
            lng: 0.0,
            accuracy_m: None,
            speed_mps: None,
            heading_deg: None,
            recorded_at,
            received_at: recorded_at,
        };
        let (busy, other) = (Uuid::new_v4(), Uuid::new_v4());
        let mut points: Vec<LocationPoint> =
            (0..40).map(|seq| point(busy, "paris", at(6, seq), u64::from(seq))).collect();
        points.push(point(busy, "paris", at(7, 0), 40));
        points.push(point(other, "lyon", at(6, 0), 1));
        let writes = PartitionWrites::of(&points, 1);

        let mut track: Vec<usize> = writes.track.iter().map(Vec::len).collect();
        track.sort();
        assert_eq!(
            track,
            [1, 1, 8, 32],
            "the busy driver's day cut in two batches, its next day and the other driver alone"
        );
        let mut by_city: Vec<usize> = writes.by_city.iter().map(Vec::len).collect();
        by_city.sort();
        assert_eq!(by_city, [1, 1, 8, 32], "one bucket: the same partitions by city and day");
        for groups in [&writes.track, &writes.by_city] {
            let mut rows: Vec<usize> = groups.iter().flatten().copied().collect();
            rows.sort();
            assert_eq!(rows, (0..points.len()).collect::<Vec<_>>(), "every point exactly once per table");
            for group in groups.iter() {
                let first = &points[group[0]];
                assert!(
                    group.iter().all(|&i| points[i].day() == first.day() && points[i].driver_id == first.driver_id)
                );
            }
        }
    }

    #[test]
    fn buckets_never_change() {
        // Rows already written are found only where this hash put them.
        let driver = Uuid::parse_str("6f1c2a52-8a4e-4c55-9d0e-3c1f9b1e7a10").unwrap();
        assert_eq!(fnv1a(driver.as_bytes()), 0xcb5f_11bb_355a_6e84);
        assert_eq!(bucket_of(driver, 16), 4);
        assert_eq!(bucket_of(driver, 1), 0);
    }

    #[test]
    fn backoff_doubles_up_to_the_cap_with_jitter() {
        let (base, max) = (Duration::from_millis(50), Duration::from_secs(5));
        for attempt in 0..40 {
            let ceiling = (base * 2u32.saturating_pow(attempt.min(31))).min(max);
            let delay = backoff(base, max, attempt);
            assert!(delay >= ceiling / 2 && delay <= ceiling, "attempt {attempt}: {delay:?} vs {ceiling:?}");
        }
    }

    #[test]
    fn the_watermark_waits_for_submitted_seqs_only() {
        let drivers = Drivers::new();
        let driver = Uuid::new_v4();
        let durable = drivers.subscribe(driver);
        for seq in [1, 2, 4] {
            drivers.submitted(driver, seq);
        }
        drivers.completed(driver, 2);
        assert_eq!(*durable.borrow(), 0, "1 is not written yet");
        drivers.completed(driver, 4);
        drivers.completed(driver, 1);
        assert_eq!(*durable.borrow(), 4, "3 was never submitted");

        // A resend at or below the watermark does not hold it back; a
        // duplicate above it waits for both copies.
        drivers.submitted(driver, 3);
        drivers.submitted(driver, 5);
        drivers.submitted(driver, 5);
        drivers.completed(driver, 5);
        assert_eq!(drivers.durable_seq(driver), Some(4));
        drivers.completed(driver, 5);
        drivers.completed(driver, 3);
        assert_eq!(drivers.durable_seq(driver), Some(5));
    }

    #[test]
    fn sweep_keeps_pending_and_subscribed_drivers() {
        let drivers = Drivers::new();
        let (pending, subscribed, idle) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
        drivers.submitted(pending, 1);
        let _durable = drivers.subscribe(subscribed);
        drivers.submitted(idle, 1);
        drivers.completed(idle, 1);
        drivers.sweep(Duration::from_secs(60));
        assert_eq!(drivers.len(), 3, "nothing idle long enough yet");
        drivers.sweep(Duration::ZERO);
        assert_eq!(drivers.len(), 2);
        assert_eq!(drivers.durable_seq(idle), None);
        assert!(drivers.shard(&pending).contains_key(&pending));
    }
}
