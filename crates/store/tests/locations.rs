//! The location writer and reader on real Cassandra: partitions, idempotent
//! resends, durable watermarks, paging across days, and a 20 s outage of a
//! private node during which nothing acknowledged is lost and memory stays
//! bounded.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use chrono::{DateTime, NaiveDate, SubsecRound, TimeDelta, TimeZone, Utc};
use foodfast_store::StoreError;
use foodfast_store::locations::{
    LocationPoint, LocationReader, LocationWriter, LocationWriterConfig, TrackPoint, bucket_of,
};
use foodfast_store::migrate;
use foodfast_store::scylla::Scylla;
use futures::TryStreamExt;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// A migrated keyspace of the test's own, on the shared node or on `node`.
async fn fresh_keyspace(node: Option<String>) -> Scylla {
    let mut config = foodfast_testkit::fresh_stores().await.scylla;
    if let Some(node) = node {
        config.contact_points = vec![node];
    }
    let scylla = Scylla::connect(&config).await.expect("connect to Cassandra");
    migrate::migrate_scylla(&scylla, &config, &migrate::scylla_migrations()).await.expect("migrate");
    scylla
}

async fn drop_keyspace(scylla: &Scylla) {
    scylla.session().query_unpaged(format!("DROP KEYSPACE {}", scylla.keyspace()), ()).await.expect("drop keyspace");
}

fn at(day: u32, h: u32, m: u32, s: u32, ms: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, day, h, m, s).unwrap() + TimeDelta::milliseconds(ms)
}

fn point(driver_id: Uuid, seq: u64, city: &str, recorded_at: DateTime<Utc>) -> LocationPoint {
    LocationPoint {
        driver_id,
        seq,
        city: city.into(),
        lat: 31.5 + seq as f64 * 1e-5,
        lng: 74.3,
        accuracy_m: Some(4.5),
        speed_mps: seq.is_multiple_of(2).then_some(8.25),
        heading_deg: None,
        recorded_at,
        received_at: recorded_at + TimeDelta::milliseconds(250),
    }
}

fn track_point(point: &LocationPoint) -> TrackPoint {
    TrackPoint {
        seq: point.seq,
        city: point.city.clone(),
        lat: point.lat,
        lng: point.lng,
        accuracy_m: point.accuracy_m,
        speed_mps: point.speed_mps,
        heading_deg: point.heading_deg,
        recorded_at: point.recorded_at,
    }
}

async fn start_writer(scylla: &Scylla, config: LocationWriterConfig, stop: &CancellationToken) -> LocationWriter {
    LocationWriter::start(scylla.clone(), config, stop.clone()).await.expect("start the writer")
}

async fn wait_durable(writer: &LocationWriter, driver_id: Uuid, seq: u64) {
    let mut durable = writer.subscribe_driver(driver_id);
    tokio::time::timeout(Duration::from_secs(30), durable.wait_for(|&durable| durable >= seq))
        .await
        .unwrap_or_else(|_| panic!("seq {seq} of {driver_id} not durable after 30 s: {:?}", writer.stats()))
        .expect("writer running");
}

/// Seqs in the driver's `driver_track` partition for `day`.
async fn track_seqs(scylla: &Scylla, driver_id: Uuid, day: NaiveDate) -> Vec<i64> {
    let cql = format!("SELECT seq FROM {}.driver_track WHERE driver_id = ? AND day = ?", scylla.keyspace());
    let rows = scylla.session().query_unpaged(cql, (driver_id, day)).await.unwrap().into_rows_result().unwrap();
    rows.rows::<(i64,)>().unwrap().map(|row| row.unwrap().0).collect()
}

/// `(driver_id, seq)` in one `driver_locations_by_city` partition.
async fn city_partition(scylla: &Scylla, city: &str, day: NaiveDate, bucket: i16) -> Vec<(Uuid, i64)> {
    let cql = format!(
        "SELECT driver_id, seq FROM {}.driver_locations_by_city WHERE city = ? AND day = ? AND bucket = ?",
        scylla.keyspace()
    );
    let rows = scylla.session().query_unpaged(cql, (city, day, bucket)).await.unwrap().into_rows_result().unwrap();
    rows.rows::<(Uuid, i64)>().unwrap().map(|row| row.unwrap()).collect()
}

#[tokio::test]
async fn points_land_in_both_tables_in_their_day_and_bucket() {
    let scylla = fresh_keyspace(None).await;
    let stop = CancellationToken::new();
    let writer = start_writer(&scylla, LocationWriterConfig::default(), &stop).await;
    let reader = LocationReader::prepare(&scylla).await.unwrap();
    let (driver, other) = (Uuid::new_v4(), Uuid::new_v4());
    let before_midnight = point(driver, 1, "lahore", at(21, 23, 59, 59, 900));
    let after_midnight = point(driver, 2, "lahore", at(22, 0, 0, 0, 100));
    let elsewhere = point(other, 1, "karachi", at(22, 0, 0, 0, 100));
    for point in [&before_midnight, &after_midnight, &elsewhere] {
        writer.submit(point.clone()).await.unwrap();
    }
    wait_durable(&writer, driver, 2).await;
    wait_durable(&writer, other, 1).await;

    let (day21, day22) = (before_midnight.day(), after_midnight.day());
    assert_eq!((day21.to_string(), day22.to_string()), ("2026-11-21".into(), "2026-11-22".into()));
    let bucket = bucket_of(driver, 16);
    assert_eq!(city_partition(&scylla, "lahore", day21, bucket).await, [(driver, 1)]);
    assert_eq!(city_partition(&scylla, "lahore", day22, bucket).await, [(driver, 2)]);
    assert_eq!(city_partition(&scylla, "karachi", day22, bucket_of(other, 16)).await, [(other, 1)]);
    assert_eq!(track_seqs(&scylla, driver, day21).await, [1]);
    assert_eq!(track_seqs(&scylla, driver, day22).await, [2]);
    assert_eq!(track_seqs(&scylla, other, day22).await, [1]);

    // Every column comes back, from every bucket and nowhere else.
    let lahore_21: Vec<_> = reader.city_day("lahore", day21, 16).try_collect().await.unwrap();
    assert_eq!(lahore_21, std::slice::from_ref(&before_midnight));
    let lahore_22: Vec<_> = reader.city_day("lahore", day22, 16).try_collect().await.unwrap();
    assert_eq!(lahore_22, std::slice::from_ref(&after_midnight));
    let karachi_21: Vec<_> = reader.city_day("karachi", day21, 16).try_collect().await.unwrap();
    assert!(karachi_21.is_empty());
    let page = reader.driver_track(driver, at(21, 12, 0, 0, 0), at(22, 12, 0, 0, 0), 10, None).await.unwrap();
    assert_eq!(page.points, [track_point(&before_midnight), track_point(&after_midnight)]);
    assert_eq!(page.next_page_token, None);

    let stats = writer.stats();
    assert_eq!((stats.submitted, stats.durable, stats.rows_written, stats.retries), (3, 3, 6, 0), "{stats:?}");
    stop.cancel();
    drop_keyspace(&scylla).await;
}

#[tokio::test]
async fn resends_write_one_row_and_the_watermark_skips_only_unsubmitted_seqs() {
    let scylla = fresh_keyspace(None).await;
    let stop = CancellationToken::new();
    let writer = start_writer(&scylla, LocationWriterConfig::default(), &stop).await;
    let driver = Uuid::new_v4();
    let points: Vec<_> = (1..=5).map(|seq| point(driver, seq, "lahore", at(22, 10, 0, seq as u32, 0))).collect();
    let day = points[0].day();

    // Every watermark announced must already be backed by rows: each
    // submitted seq at or below it is in the store when it is seen.
    let mut durable = writer.subscribe_driver(driver);
    let submitted = Arc::new(std::sync::Mutex::new(BTreeSet::new()));
    let checker = tokio::spawn({
        let (scylla, submitted) = (scylla.clone(), submitted.clone());
        async move {
            let mut seen = vec![];
            while durable.changed().await.is_ok() {
                let watermark = *durable.borrow_and_update();
                let stored = track_seqs(&scylla, driver, day).await;
                let expected: Vec<u64> = submitted.lock().unwrap().range(..=watermark).copied().collect();
                for seq in expected {
                    assert!(
                        stored.contains(&(seq as i64)),
                        "watermark {watermark} announced before seq {seq} was stored"
                    );
                }
                seen.push(watermark);
                if watermark == 5 {
                    return seen;
                }
            }
            panic!("the writer stopped before seq 5 was durable");
        }
    });

    // 3 is never submitted (rejected upstream, say): it does not hold 4 back.
    for seq in [1, 2, 4] {
        submitted.lock().unwrap().insert(seq);
        writer.submit(points[seq as usize - 1].clone()).await.unwrap();
    }
    wait_durable(&writer, driver, 4).await;
    assert_eq!(writer.durable_seq(driver), Some(4));

    // A resend below the watermark and a duplicate above it: written again,
    // same key, same row.
    submitted.lock().unwrap().insert(5);
    for seq in [2, 5, 5] {
        writer.submit(points[seq as usize - 1].clone()).await.unwrap();
    }
    let seen = tokio::time::timeout(Duration::from_secs(30), checker).await.expect("seq 5 durable").unwrap();
    // A watch channel coalesces: the checker may skip values, never see them go down.
    assert!(seen.windows(2).all(|w| w[0] < w[1]), "watermarks seen: {seen:?}");
    assert_eq!(writer.durable_seq(driver), Some(5));

    assert_eq!(track_seqs(&scylla, driver, day).await, [1, 2, 4, 5]);
    let by_city = city_partition(&scylla, "lahore", day, bucket_of(driver, 16)).await;
    assert_eq!(by_city, [(driver, 1), (driver, 2), (driver, 4), (driver, 5)]);
    let stats = writer.stats();
    assert_eq!((stats.submitted, stats.durable, stats.rows_written), (6, 6, 12), "{stats:?}");
    assert_eq!(writer.durable_seq(Uuid::new_v4()), None);
    stop.cancel();
    drop_keyspace(&scylla).await;
}

#[tokio::test]
async fn a_track_reads_back_in_pages_across_midnight_once_each_in_time_order() {
    let scylla = fresh_keyspace(None).await;
    let stop = CancellationToken::new();
    let writer = start_writer(&scylla, LocationWriterConfig::default(), &stop).await;
    let reader = LocationReader::prepare(&scylla).await.unwrap();
    let (driver, other) = (Uuid::new_v4(), Uuid::new_v4());
    // Every two minutes from 23:00 on the 21st to 00:28 on the 22nd.
    let start = at(21, 23, 0, 0, 0);
    let points: Vec<_> =
        (1..=45).map(|seq| point(driver, seq, "lahore", start + TimeDelta::minutes(2 * (seq as i64 - 1)))).collect();
    // Submitted out of time order; the reads sort by recorded_at.
    for point in points.iter().rev() {
        writer.submit(point.clone()).await.unwrap();
    }
    writer.submit(point(other, 1, "lahore", at(21, 23, 30, 0, 0))).await.unwrap();
    wait_durable(&writer, driver, 45).await;
    wait_durable(&writer, other, 1).await;

    // [23:10, 00:20): 25 points on the 21st, 10 on the 22nd.
    let (from, to) = (at(21, 23, 10, 0, 0), at(22, 0, 20, 0, 0));
    let expected: Vec<_> =
        points.iter().filter(|p| p.recorded_at >= from && p.recorded_at < to).map(track_point).collect();
    assert_eq!(expected.len(), 35);
    for page_size in [1, 5, 7, 35, 1000] {
        let mut read = vec![];
        let mut token = None;
        let mut pages = 0;
        loop {
            let page = reader.driver_track(driver, from, to, page_size, token.as_deref()).await.unwrap();
            assert!(page.points.len() <= page_size as usize, "page of {} > {page_size}", page.points.len());
            read.extend(page.points);
            pages += 1;
            assert!(pages <= 40, "page size {page_size}: the pages never end");
            match page.next_page_token {
                Some(next) => token = Some(next),
                None => break,
            }
        }
        assert_eq!(read, expected, "page size {page_size}");
    }

    // A token only fits its own range.
    let page = reader.driver_track(driver, from, to, 30, None).await.unwrap();
    let token = page.next_page_token.expect("more pages");
    let err = reader.driver_track(driver, at(22, 1, 0, 0, 0), at(22, 2, 0, 0, 0), 30, Some(&token)).await.unwrap_err();
    assert!(matches!(err, StoreError::InvalidQuery(_)), "{err}");
    let err = reader.driver_track(driver, from, to, 30, Some("not a token")).await.unwrap_err();
    assert!(matches!(err, StoreError::InvalidQuery(_)), "{err}");
    stop.cancel();
    drop_keyspace(&scylla).await;
}

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|line| line.starts_with("VmRSS:")).expect("VmRSS");
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

const DRIVERS: usize = 20;
const PING_EVERY: Duration = Duration::from_millis(40);
const OUTAGE: Duration = Duration::from_secs(20);
const QUEUE_CAPACITY: usize = 2_000;
const MAX_IN_FLIGHT: usize = 64;

/// Issue 4's "done when": Cassandra stopped for 20 s in the middle of a
/// steady stream and started again.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_cassandra_outage_loses_no_acknowledged_point_and_memory_stays_bounded() {
    let _ = tracing_subscriber::fmt().with_test_writer().try_init();
    // Launched and restarted from this thread (see `PrivateCassandra`).
    let launched = Instant::now();
    let mut node = foodfast_testkit::PrivateCassandra::launch();
    let launch_took = launched.elapsed();
    let scylla = fresh_keyspace(Some(node.contact_point())).await;
    let stop = CancellationToken::new();
    let config = LocationWriterConfig {
        queue_capacity: QUEUE_CAPACITY,
        max_in_flight: MAX_IN_FLIGHT,
        retry_backoff_base: Duration::from_millis(50),
        retry_backoff_max: Duration::from_secs(1),
        ..Default::default()
    };
    let writer = start_writer(&scylla, config, &stop).await;
    let reader = LocationReader::prepare(&scylla).await.unwrap();
    let drivers: Vec<Uuid> = (0..DRIVERS).map(|_| Uuid::new_v4()).collect();
    // Milliseconds, as stored.
    let epoch = Utc::now().trunc_subsecs(3);
    let recorded_at = move |seq: u64| epoch + TimeDelta::from_std(PING_EVERY * seq as u32).unwrap();

    // Each driver pings steadily; `submit` blocks while the queue is full.
    let producing = CancellationToken::new();
    let last_submitted: Arc<Vec<AtomicU64>> = Arc::new(drivers.iter().map(|_| AtomicU64::new(0)).collect());
    let producers: Vec<_> = drivers
        .iter()
        .enumerate()
        .map(|(i, &driver)| {
            let (writer, producing, last_submitted) = (writer.clone(), producing.clone(), last_submitted.clone());
            tokio::spawn(async move {
                let mut every = tokio::time::interval(PING_EVERY);
                every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                for seq in 1.. {
                    every.tick().await;
                    if producing.is_cancelled() {
                        return;
                    }
                    writer.submit(point(driver, seq, "lahore", recorded_at(seq))).await.unwrap();
                    last_submitted[i].store(seq, Ordering::SeqCst);
                }
            })
        })
        .collect();

    // Every watermark ever announced, per driver.
    let acked: Arc<Vec<AtomicU64>> = Arc::new(drivers.iter().map(|_| AtomicU64::new(0)).collect());
    for (i, &driver) in drivers.iter().enumerate() {
        let (mut durable, acked, stop) = (writer.subscribe_driver(driver), acked.clone(), stop.clone());
        tokio::spawn(async move {
            while let Some(Ok(())) = stop.run_until_cancelled(durable.changed()).await {
                acked[i].fetch_max(*durable.borrow_and_update(), Ordering::SeqCst);
            }
        });
    }
    let max_queue_depth = Arc::new(AtomicU64::new(0));
    let max_rss_kib = Arc::new(AtomicU64::new(0));
    tokio::spawn({
        let (writer, max_queue_depth, max_rss_kib, stop) =
            (writer.clone(), max_queue_depth.clone(), max_rss_kib.clone(), stop.clone());
        async move {
            while stop.run_until_cancelled(tokio::time::sleep(Duration::from_millis(10))).await.is_some() {
                max_queue_depth.fetch_max(writer.stats().queue_depth as u64, Ordering::SeqCst);
                max_rss_kib.fetch_max(rss_kib(), Ordering::SeqCst);
            }
        }
    });
    let snapshot = |counters: &[AtomicU64]| counters.iter().map(|c| c.load(Ordering::SeqCst)).collect::<Vec<_>>();

    tokio::time::sleep(Duration::from_secs(5)).await;
    let rss_before = rss_kib();
    max_rss_kib.store(0, Ordering::SeqCst);
    let before = writer.stats();
    assert!(snapshot(&acked).iter().all(|&seq| seq > 50), "steady state reached: {:?}", snapshot(&acked));

    let stopping = Instant::now();
    node.stop();
    let stop_took = stopping.elapsed();
    let acked_when_down = snapshot(&acked);
    let down = writer.stats();
    tokio::time::sleep(OUTAGE).await;
    let during = writer.stats();
    assert_eq!(snapshot(&acked), acked_when_down, "a watermark moved while Cassandra was down");
    assert_eq!(during.durable, down.durable, "{during:?}");
    assert_eq!(during.queue_depth, QUEUE_CAPACITY, "the queue filled and submissions wait: {during:?}");
    assert!(during.retries > down.retries, "{during:?}");
    assert!(
        during.submitted - during.durable <= (QUEUE_CAPACITY + MAX_IN_FLIGHT / 2) as u64,
        "more points held than queue and in-flight slots: {during:?}"
    );
    let rss_during = max_rss_kib.load(Ordering::SeqCst);

    let starting = Instant::now();
    node.start();
    let up = Instant::now();
    let start_took = up - starting;
    let submitted_when_up = writer.stats().submitted;
    let caught_up = loop {
        if writer.stats().durable >= submitted_when_up {
            break up.elapsed();
        }
        assert!(up.elapsed() < Duration::from_secs(120), "no catch-up after 120 s: {:?}", writer.stats());
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    tokio::time::sleep(Duration::from_secs(3)).await;
    producing.cancel();
    for producer in producers {
        producer.await.unwrap();
    }
    let last = snapshot(&last_submitted);
    for (&driver, &seq) in drivers.iter().zip(&last) {
        wait_durable(&writer, driver, seq).await;
    }
    let after = writer.stats();
    let acked_ever = snapshot(&acked);

    // Every point submitted, so every point ever acknowledged, reads back
    // once from each table.
    let days: BTreeSet<NaiveDate> =
        (1..=*last.iter().max().unwrap()).map(|seq| recorded_at(seq).date_naive()).collect();
    let mut by_city = vec![BTreeSet::new(); DRIVERS];
    for &day in &days {
        let points: Vec<LocationPoint> = reader.city_day("lahore", day, 16).try_collect().await.unwrap();
        for p in points {
            let i = drivers.iter().position(|&d| d == p.driver_id).expect("a test driver");
            assert!(by_city[i].insert(p.seq), "seq {} of driver {i} twice", p.seq);
        }
    }
    for (i, &driver) in drivers.iter().enumerate() {
        assert!(acked_ever[i] <= last[i]);
        let mut track = vec![];
        let mut token = None;
        loop {
            let page =
                reader.driver_track(driver, epoch, recorded_at(last[i] + 1), 1000, token.as_deref()).await.unwrap();
            track.extend(page.points.into_iter().map(|p| p.seq));
            token = page.next_page_token;
            if token.is_none() {
                break;
            }
        }
        let all: Vec<u64> = (1..=last[i]).collect();
        assert_eq!(track, all, "driver {i}: track differs from what was submitted");
        assert_eq!(by_city[i].iter().copied().collect::<Vec<_>>(), all, "driver {i}: city rows differ");
    }

    let rss_growth_mib = rss_during.saturating_sub(rss_before) / 1024;
    eprintln!(
        "outage: {total} points from {DRIVERS} drivers; node launched in {launch_took:?}, stopped in {stop_took:?}, \
         down {OUTAGE:?}, restarted in {start_took:?}; submitted {in_stop} while stopping, {in_outage} while down, \
         {in_start} while restarting; queue depth max {depth} of {QUEUE_CAPACITY}; all caught up {caught_up:?} after \
         restart; retries {retries}; RSS before {rss_before} KiB, max while down {rss_during} KiB",
        total = after.submitted,
        in_stop = down.submitted - before.submitted,
        in_outage = during.submitted - down.submitted,
        in_start = submitted_when_up - during.submitted,
        depth = max_queue_depth.load(Ordering::SeqCst),
        retries = after.retries,
    );
    assert!(max_queue_depth.load(Ordering::SeqCst) <= QUEUE_CAPACITY as u64);
    assert!(rss_growth_mib < 64, "RSS grew by {rss_growth_mib} MiB while Cassandra was down");
    assert_eq!((after.submitted, after.rows_written), (after.durable, 2 * after.durable), "{after:?}");
    stop.cancel();
    drop_keyspace(&scylla).await;
    // The session goes first, so it does not retry a node that is gone.
    drop((writer, reader, scylla));
    drop(node);
}
