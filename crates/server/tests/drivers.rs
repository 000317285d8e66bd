//! The driver's Connect stream on the real Redis and Cassandra: pings are
//! checked, made live, written durably, acknowledged, and read back.

mod common;

use std::time::Duration;

use chrono::Utc;
use common::TestServer;
use foodfast_api::v1 as pb;
use foodfast_domain::access::Principal;
use tokio::sync::mpsc;
use tokio_stream::StreamExt;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Code;

const LAT: f64 = 48.8566;
const LNG: f64 = 2.3522;

fn ping(seq: u64, north_m: f64, seconds_ago: f64) -> pb::LocationPing {
    let at = Utc::now() - chrono::TimeDelta::milliseconds((seconds_ago * 1000.0) as i64);
    pb::LocationPing {
        seq,
        lat: LAT + north_m / 111_195.0,
        lng: LNG,
        accuracy_m: Some(4.0),
        speed_mps: Some(6.0),
        heading_deg: Some(0.0),
        recorded_at: Some(prost_types::Timestamp {
            seconds: at.timestamp(),
            nanos: at.timestamp_subsec_nanos() as i32,
        }),
    }
}

fn up(payload: pb::connect_request::Payload) -> pb::ConnectRequest {
    pb::ConnectRequest { payload: Some(payload) }
}

fn hello() -> pb::ConnectRequest {
    up(pb::connect_request::Payload::Hello(pb::Hello {
        app_version: "test".into(),
        availability: pb::DriverAvailability::Online as i32,
    }))
}

struct Session {
    sender: mpsc::Sender<pb::ConnectRequest>,
    responses: tonic::codec::Streaming<pb::ConnectResponse>,
    welcome: pb::Welcome,
}

async fn connect(server: &TestServer, driver: &Principal) -> Session {
    let (sender, receiver) = mpsc::channel(64);
    sender.send(hello()).await.unwrap();
    let mut responses = server.drivers(Some(driver)).connect(ReceiverStream::new(receiver)).await.unwrap().into_inner();
    let welcome = match responses.next().await.unwrap().unwrap().payload {
        Some(pb::connect_response::Payload::Welcome(welcome)) => welcome,
        other => panic!("expected welcome, got {other:?}"),
    };
    Session { sender, responses, welcome }
}

impl Session {
    async fn send(&self, ping: pb::LocationPing) {
        self.sender.send(up(pb::connect_request::Payload::Ping(ping))).await.unwrap();
    }

    /// Reads acks until the durable seq reaches `seq`; returns every
    /// rejection seen on the way.
    async fn until_durable(&mut self, seq: u64) -> Vec<pb::RejectedPing> {
        let mut rejected = Vec::new();
        loop {
            let message = tokio::time::timeout(Duration::from_secs(15), self.responses.next())
                .await
                .unwrap_or_else(|_| panic!("no ack reached {seq}"))
                .unwrap()
                .unwrap();
            if let Some(pb::connect_response::Payload::Ack(ack)) = message.payload {
                rejected.extend(ack.rejected);
                if ack.durable_seq >= seq {
                    return rejected;
                }
            }
        }
    }
}

async fn track(server: &TestServer, caller: &Principal, driver: &Principal) -> Vec<pb::LocationPing> {
    let now = Utc::now();
    let mut points = Vec::new();
    let mut token = String::new();
    loop {
        let page = server
            .tracking(Some(caller))
            .get_driver_track(pb::GetDriverTrackRequest {
                driver_id: driver.user_id.to_string(),
                start_time: Some(prost_types::Timestamp {
                    seconds: (now - chrono::TimeDelta::hours(1)).timestamp(),
                    nanos: 0,
                }),
                end_time: Some(prost_types::Timestamp {
                    seconds: (now + chrono::TimeDelta::hours(1)).timestamp(),
                    nanos: 0,
                }),
                page_size: 7,
                page_token: token,
            })
            .await
            .unwrap()
            .into_inner();
        points.extend(page.points);
        if page.next_page_token.is_empty() {
            return points;
        }
        token = page.next_page_token;
    }
}

async fn driver_server() -> TestServer {
    let server = TestServer::start().await;
    server.migrate_scylla().await;
    server
}

#[tokio::test]
async fn pings_are_acked_once_durable_and_read_back_from_both_tables() {
    let server = driver_server().await;
    let driver = server.driver().await;
    let mut session = connect(&server, &driver).await;
    assert_eq!(session.welcome.durable_seq, 0);
    assert_eq!(session.welcome.driver_id, driver.user_id.to_string());
    for seq in 1..=20 {
        session.send(ping(seq, seq as f64 * 20.0, 30.0 - seq as f64)).await;
    }
    assert!(session.until_durable(20).await.is_empty());

    let stored: Vec<u64> = track(&server, &driver, &driver).await.iter().map(|p| p.seq).collect();
    assert_eq!(stored, (1..=20).collect::<Vec<_>>(), "every ping once, in time order");

    let support = server.support().await;
    let mut export = server
        .tracking(Some(&support))
        .export_city_pings(pb::ExportCityPingsRequest {
            city: "paris".into(),
            day: Utc::now().format("%Y-%m-%d").to_string(),
        })
        .await
        .unwrap()
        .into_inner();
    let mut exported = Vec::new();
    while let Some(batch) = export.next().await {
        exported.extend(batch.unwrap().pings.into_iter().filter(|p| p.driver_id == driver.user_id.to_string()));
    }
    assert_eq!(exported.len(), 20, "the city-day partitions hold the same pings");

    // The live position is the last ping.
    let live = foodfast_store::live::LivePositions::new(server.stores.redis.clone());
    assert_eq!(live.position(driver.user_id).await.unwrap().unwrap().seq, 20);
}

#[tokio::test]
async fn each_bad_ping_is_reported_with_its_reason_and_the_stream_goes_on() {
    let server = driver_server().await;
    let driver = server.driver().await;
    let mut session = connect(&server, &driver).await;
    session.send(ping(1, 0.0, 60.0)).await;
    session.until_durable(1).await;

    let mut far_future = ping(3, 10.0, -120.0);
    far_future.seq = 3;
    let mut out_of_range = ping(4, 0.0, 55.0);
    out_of_range.lat = 123.0;
    let teleport = ping(5, 50_000.0, 54.0);
    let too_old = ping(6, 0.0, 3_600.0);
    let duplicate = ping(1, 0.0, 53.0);
    let mut no_time = ping(7, 0.0, 52.0);
    no_time.recorded_at = None;
    let earlier = ping(8, 0.0, 61.0);
    for bad in [far_future, out_of_range, teleport, too_old, duplicate, no_time, earlier] {
        session.send(bad).await;
    }
    session.send(ping(9, 30.0, 50.0)).await;
    let rejected = session.until_durable(9).await;
    use pb::PingRejectionReason as R;
    let reasons: Vec<(u64, R)> = rejected.iter().map(|r| (r.seq, r.reason())).collect();
    assert_eq!(
        reasons,
        vec![
            (3, R::TimestampInFuture),
            (4, R::CoordinatesOutOfRange),
            (5, R::ImpossibleSpeed),
            (6, R::TimestampTooOld),
            (1, R::DuplicateSeq),
            (7, R::InvalidField),
            (8, R::OutOfOrder),
        ]
    );
    assert!(rejected.iter().all(|r| !r.detail.is_empty()));
    let stored: Vec<u64> = track(&server, &driver, &driver).await.iter().map(|p| p.seq).collect();
    assert_eq!(stored, vec![1, 9], "only accepted pings are stored");
}

#[tokio::test]
async fn a_reconnect_resends_from_the_ack_and_nothing_is_duplicated_or_missing() {
    let server = driver_server().await;
    let driver = server.driver().await;
    let mut first = connect(&server, &driver).await;
    for seq in 1..=10 {
        first.send(ping(seq, seq as f64 * 10.0, 40.0 - seq as f64)).await;
    }
    first.until_durable(10).await;
    drop(first);

    let mut second = connect(&server, &driver).await;
    assert_eq!(second.welcome.durable_seq, 10, "the new session knows what is durable");
    // The app resends from its own buffer, overlapping what was acked.
    for seq in 8..=15 {
        second.send(ping(seq, seq as f64 * 10.0, 40.0 - seq as f64)).await;
    }
    let rejected = second.until_durable(15).await;
    assert!(rejected.iter().all(|r| r.reason() == pb::PingRejectionReason::DuplicateSeq && r.seq <= 10));
    let stored: Vec<u64> = track(&server, &driver, &driver).await.iter().map(|p| p.seq).collect();
    assert_eq!(stored, (1..=15).collect::<Vec<_>>());
}

#[tokio::test]
async fn connect_needs_a_driver_and_hello_first() {
    let server = driver_server().await;
    let customer = server.customer().await;
    let (sender, receiver) = mpsc::channel(4);
    sender.send(hello()).await.unwrap();
    let err = server.drivers(Some(&customer)).connect(ReceiverStream::new(receiver)).await.unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    let (sender, receiver) = mpsc::channel(4);
    sender.send(hello()).await.unwrap();
    let err = server.drivers(None).connect(ReceiverStream::new(receiver)).await.unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);

    let driver = server.driver().await;
    let (sender, receiver) = mpsc::channel(4);
    sender.send(up(pb::connect_request::Payload::Ping(ping(1, 0.0, 1.0)))).await.unwrap();
    let mut responses =
        server.drivers(Some(&driver)).connect(ReceiverStream::new(receiver)).await.unwrap().into_inner();
    let status = responses.next().await.unwrap().unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(status.message().contains("hello"));

    // Another driver's track is not theirs to read.
    let other = server.driver().await;
    let err = server
        .tracking(Some(&other))
        .get_driver_track(pb::GetDriverTrackRequest { driver_id: driver.user_id.to_string(), ..Default::default() })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
}

#[tokio::test]
async fn report_location_answers_once_the_batch_is_durable() {
    let server = driver_server().await;
    let driver = server.driver().await;
    let pings = (1..=5).map(|seq| ping(seq, seq as f64 * 10.0, 20.0 - seq as f64)).collect();
    let ack = server
        .drivers(Some(&driver))
        .report_location(pb::ReportLocationRequest { pings })
        .await
        .unwrap()
        .into_inner()
        .ack
        .unwrap();
    assert_eq!(ack.durable_seq, 5);
    assert!(ack.rejected.is_empty());
    assert_eq!(track(&server, &driver, &driver).await.len(), 5);

    let err =
        server.drivers(Some(&driver)).report_location(pb::ReportLocationRequest { pings: vec![] }).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
}

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|line| line.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// Cassandra stopped for 20 s in the middle of a driver's Connect stream and
/// started again: every ping the stream ever acknowledged is read back, the
/// stream survives, and memory stays bounded (the writer's queue fills and
/// the stream stops reading).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_cassandra_outage_mid_stream_loses_no_acknowledged_ping() {
    // Launched and restarted from this thread (see `PrivateCassandra`).
    let mut node = foodfast_testkit::PrivateCassandra::launch();
    let contact = node.contact_point();
    let server = TestServer::start_with(|config| {
        config.stores.scylla.contact_points = vec![contact];
        config.ingest.writer.queue_capacity = 200;
        config.ingest.writer.retry_backoff_max = Duration::from_secs(1);
    })
    .await;
    server.migrate_scylla().await;
    let driver = server.driver().await;
    let (sender, receiver) = mpsc::channel(16);
    sender.send(hello()).await.unwrap();
    let mut responses =
        server.drivers(Some(&driver)).connect(ReceiverStream::new(receiver)).await.unwrap().into_inner();
    assert!(matches!(
        responses.next().await.unwrap().unwrap().payload,
        Some(pb::connect_response::Payload::Welcome(_))
    ));

    // 50 pings/s, 20 cm apart, until told to stop.
    let stop = tokio_util::sync::CancellationToken::new();
    let producer = tokio::spawn({
        let stop = stop.clone();
        async move {
            let mut seq = 0;
            while !stop.is_cancelled() {
                seq += 1;
                let ping = up(pb::connect_request::Payload::Ping(ping(seq, seq as f64 * 0.2, 0.0)));
                tokio::select! {
                    sent = sender.send(ping) => sent.unwrap(),
                    _ = stop.cancelled() => return seq - 1,
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            seq
        }
    });
    let (acks, mut acked) = tokio::sync::watch::channel(0u64);
    let consumer = tokio::spawn(async move {
        while let Some(message) = responses.next().await {
            match message.map(|m| m.payload) {
                Ok(Some(pb::connect_response::Payload::Ack(ack))) => {
                    if !ack.rejected.is_empty() {
                        return format!("rejected: {:?}", ack.rejected);
                    }
                    acks.send_replace(ack.durable_seq);
                }
                Ok(_) => {}
                Err(status) => return format!("the stream failed: {status:?}"),
            }
        }
        "the stream ended".to_string()
    });

    tokio::time::sleep(Duration::from_secs(3)).await;
    let rss_before = rss_kib();
    node.stop();
    let acked_at_stop = *acked.borrow();
    assert!(acked_at_stop > 50, "pings were acked before the outage");
    tokio::time::sleep(Duration::from_secs(20)).await;
    let rss_during = rss_kib();
    node.start();
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.cancel();
    let last_sent = producer.await.unwrap();
    let caught_up = tokio::time::timeout(Duration::from_secs(90), acked.wait_for(|seq| *seq >= last_sent))
        .await
        .expect("every ping sent becomes durable after the outage")
        .is_ok();
    assert!(caught_up, "{}", consumer.await.unwrap());

    let stored: Vec<u64> = track(&server, &driver, &driver).await.iter().map(|p| p.seq).collect();
    assert_eq!(stored, (1..=last_sent).collect::<Vec<_>>(), "every acknowledged ping, once");
    assert!(
        rss_during < rss_before + 64 * 1024,
        "memory stayed bounded while Cassandra was down: {rss_before} KiB before, {rss_during} KiB during"
    );
    println!("sent {last_sent}, acked {acked_at_stop} when Cassandra stopped; RSS {rss_before} → {rss_during} KiB");
}
