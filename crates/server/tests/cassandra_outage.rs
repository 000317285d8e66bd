//! Issue 4's outage test through a real Connect stream, in a test binary of
//! its own: it measures the process's memory, which tests running beside it
//! would move.

mod common;

use std::time::Duration;

use common::{TestServer, hello, ping, track, up};
use foodfast_api::v1 as pb;
use tokio::sync::mpsc;
use tokio_stream::StreamExt;
use tokio_stream::wrappers::ReceiverStream;

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
        // Few points in flight, so the queue fills and the stream stops reading.
        config.ingest.writer.queue_capacity = 200;
        config.ingest.writer.max_in_flight = 64;
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
