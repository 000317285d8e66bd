//! Fan-out between server replicas through Redis pub/sub, over one pub/sub
//! connection per process for all its streams.
//!
//! - Wake-ups: a message says only "topic X changed"; the database stays the
//!   source of truth, so a lost or coalesced wake-up costs latency, never data.
//! - Driver positions: each accepted ping is published on the driver's
//!   channel (see [`crate::live`]); the process subscribes to a driver while
//!   at least one of its streams follows it, and keeps only the latest
//!   position (a `watch` channel: slow readers coalesce, latest wins).
//! - Received messages wait in a bounded inbox, taken in batches. A listener
//!   that falls behind loses messages past [`INBOX_CAPACITY`] and then
//!   catches up on what it lost (the topics whose wake-ups were dropped
//!   re-read, followed positions are fetched again): it costs latency, never
//!   unbounded memory, and a burst of positions does not make every stream
//!   re-read the database.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use ::redis::aio::{AsyncPushSender, MultiplexedConnection, SendError};
use ::redis::{PushInfo, PushKind, Value};
use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::{Notify, broadcast, mpsc, watch};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::live::{LivePosition, LivePositions, location_channel};
use crate::metrics::PUBSUB_OVERFLOWS_TOTAL;
use crate::redis::Redis;
use crate::{StoreError, lock};

const CHANNEL_PREFIX: &str = "ff:wake:";
const LOCATION_PREFIX: &str = "ff:loc:";
/// Wake-ups a slow subscriber may fall behind by before they coalesce
/// (a lagged receiver just re-reads the database).
const TOPIC_CAPACITY: usize = 16;
/// Pub/sub messages received and not yet handled by the listener.
const INBOX_CAPACITY: usize = 4_096;
/// Most messages the listener takes in one turn. Taking them one at a time,
/// it got at most Tokio's cooperative budget (128) per turn on a worker
/// busy with 12,000 streams, fewer than 10,000 positions a second.
const INBOX_BATCH: usize = 512;
/// Most distinct topics an overflow remembers dropping wake-ups for; past
/// it, every topic re-reads.
const MAX_DROPPED_TOPICS: usize = 1_024;
/// How often the pub/sub connection is asked for a PONG: a connection that
/// stopped answering (a half-open socket, a frozen server) delivers nothing
/// and fails nothing, so only asking finds it.
const SUBSCRIBER_PING_EVERY: Duration = Duration::from_secs(5);

/// A topic's wake-up: either a change was published, or changes may have
/// been missed (the pub/sub connection came back, or the listener fell
/// behind and dropped messages).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wake {
    Changed,
    MayHaveMissed,
}

#[derive(Clone)]
pub struct Fanout {
    redis: Redis,
    topics: Arc<Mutex<Topics>>,
    drivers: Arc<Mutex<HashMap<Uuid, Followed>>>,
    /// The set of followed drivers changed: the listener (un)subscribes.
    followers_changed: Arc<Notify>,
    connected: watch::Sender<bool>,
}

/// The wake-up channel of every topic some stream of this process watches.
/// A topic nobody watches any more leaves at its next wake-up, or at the
/// next sweep: when the map has doubled since the last one, so finished
/// streams (an order delivered, a conversation closed) do not pile up.
#[derive(Default)]
struct Topics {
    channels: HashMap<String, broadcast::Sender<Wake>>,
    sweep_at: usize,
}

/// The least number of topics before a sweep.
const MIN_TOPICS_SWEPT: usize = 1024;

impl Topics {
    fn subscribe(&mut self, topic: &str) -> broadcast::Receiver<Wake> {
        if self.channels.len() >= self.sweep_at.max(MIN_TOPICS_SWEPT) {
            self.channels.retain(|_, sender| sender.receiver_count() > 0);
            self.sweep_at = 2 * self.channels.len();
        }
        self.channels.entry(topic.to_string()).or_insert_with(|| broadcast::channel(TOPIC_CAPACITY).0).subscribe()
    }
}

/// A driver some stream of this process follows.
struct Followed {
    latest: watch::Sender<Option<LivePosition>>,
    followers: usize,
}

/// Follows one driver's live positions for as long as it is held.
pub struct DriverFollow {
    fanout: Fanout,
    driver_id: Uuid,
    latest: watch::Receiver<Option<LivePosition>>,
    /// `changed` saw a position that `take` has not returned yet (the
    /// receiver then counts it as seen).
    unread: bool,
}

impl DriverFollow {
    pub fn driver_id(&self) -> Uuid {
        self.driver_id
    }

    /// The latest position, marking it seen.
    pub fn take(&mut self) -> Option<LivePosition> {
        self.unread = false;
        *self.latest.borrow_and_update()
    }

    /// Whether a position arrived since the last `take`.
    pub fn has_new(&self) -> bool {
        self.unread || self.latest.has_changed().unwrap_or(false)
    }

    /// Waits for a position newer than the last `take`.
    pub async fn changed(&mut self) {
        if self.unread {
            return;
        }
        if self.latest.changed().await.is_err() {
            // The sender lives as long as this follow: unreachable, but never spin.
            std::future::pending::<()>().await;
        }
        self.unread = true;
    }

    /// Offers a position read elsewhere (e.g. the live hash at start): kept
    /// only if newer than what pub/sub delivered.
    pub fn offer(&self, position: LivePosition) {
        self.fanout.deliver(position);
    }
}

impl Drop for DriverFollow {
    fn drop(&mut self) {
        let mut drivers = self.fanout.drivers();
        if let Some(followed) = drivers.get_mut(&self.driver_id) {
            followed.followers -= 1;
            if followed.followers == 0 {
                drivers.remove(&self.driver_id);
                self.fanout.followers_changed.notify_one();
            }
        }
    }
}

impl Fanout {
    /// Starts listening; the listener reconnects by itself until `stop`.
    pub fn start(redis: Redis, stop: CancellationToken) -> Self {
        Self::start_with_inbox(redis, INBOX_CAPACITY, stop)
    }

    /// [`Fanout::start`] with an inbox of `inbox_capacity` messages (at least 1).
    pub fn start_with_inbox(redis: Redis, inbox_capacity: usize, stop: CancellationToken) -> Self {
        let fanout = Self {
            redis,
            topics: Arc::default(),
            drivers: Arc::default(),
            followers_changed: Arc::default(),
            connected: watch::Sender::new(false),
        };
        tokio::spawn(fanout.clone().listen(inbox_capacity.max(1), stop));
        fanout
    }

    /// Whether the pub/sub connection is up; changes as it drops and returns.
    pub fn connected(&self) -> watch::Receiver<bool> {
        self.connected.subscribe()
    }

    /// Follows `driver_id`'s positions: the driver's last live position once
    /// the subscription took effect, then every newer one.
    pub fn follow_driver(&self, driver_id: Uuid) -> DriverFollow {
        let mut drivers = self.drivers();
        let followed = drivers.entry(driver_id).or_insert_with(|| {
            self.followers_changed.notify_one();
            Followed { latest: watch::Sender::new(None), followers: 0 }
        });
        followed.followers += 1;
        let mut latest = followed.latest.subscribe();
        if latest.borrow().is_some() {
            // A follower joining later still gets the position others hold.
            latest.mark_changed();
        }
        DriverFollow { fanout: self.clone(), driver_id, latest, unread: false }
    }

    /// Drivers followed in this process.
    pub fn followed_drivers(&self) -> usize {
        self.drivers().len()
    }

    fn drivers(&self) -> MutexGuard<'_, HashMap<Uuid, Followed>> {
        lock(&self.drivers)
    }

    /// Hands `position` to the driver's followers unless they hold a newer one.
    fn deliver(&self, position: LivePosition) {
        if let Some(followed) = self.drivers().get(&position.driver_id) {
            followed.latest.send_if_modified(|latest| {
                let newer = latest.is_none_or(|held| position.seq > held.seq);
                if newer {
                    *latest = Some(position);
                }
                newer
            });
        }
    }

    /// Wakes every subscriber of `topic`, in every process.
    #[tracing::instrument(target = "foodfast::trace", name = "Fanout.publish", skip_all, fields(otel.kind = "client", db.system = "redis"))]
    pub async fn publish(&self, topic: &str) -> Result<(), StoreError> {
        let mut connection = self.redis.connection();
        let _: i64 = ::redis::cmd("PUBLISH")
            .arg(format!("{CHANNEL_PREFIX}{topic}"))
            .arg("")
            .query_async(&mut connection)
            .await
            .map_err(StoreError::redis)?;
        Ok(())
    }

    /// Subscribes to `topic` in this process.
    pub fn subscribe(&self, topic: &str) -> broadcast::Receiver<Wake> {
        lock(&self.topics).subscribe(topic)
    }

    fn wake(&self, topic: &str, wake: Wake) {
        let channels = &mut lock(&self.topics).channels;
        if let Some(sender) = channels.get(topic)
            && sender.send(wake).is_err()
        {
            // Nobody listens any more.
            channels.remove(topic);
        }
    }

    fn wake_all(&self, wake: Wake) {
        lock(&self.topics).channels.retain(|_, sender| sender.send(wake).is_ok());
    }

    async fn listen(self, inbox_capacity: usize, stop: CancellationToken) {
        let mut backoff = Duration::from_millis(100);
        let mut first = true;
        while !stop.is_cancelled() {
            let (sender, mut inbox) = inbox(inbox_capacity);
            let connected = async {
                let mut connection = self.redis.subscriber(sender).await?;
                connection.psubscribe(format!("{CHANNEL_PREFIX}*")).await?;
                Ok::<_, ::redis::RedisError>(connection)
            };
            let mut connection = match connected.await {
                Ok(connection) => connection,
                Err(err) => {
                    tracing::warn!(error = %err, retry_in = ?backoff, "pub/sub connection failed");
                    tokio::select! {
                        _ = stop.cancelled() => return,
                        _ = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                    continue;
                }
            };
            backoff = Duration::from_millis(100);
            let mut subscribed = HashSet::new();
            if let Err(err) = self.sync_subscriptions(&mut connection, &mut subscribed).await {
                tracing::warn!(error = %err, "pub/sub subscribe failed");
                continue;
            }
            if !first {
                // The shared connections reconnect on the first command that
                // finds theirs broken: have every one meet it now, before
                // streams re-read and wake-ups are published again.
                let _ = self.redis.ping().await;
                tracing::info!("pub/sub connection restored");
            }
            self.connected.send_replace(true);
            if !first {
                self.wake_all(Wake::MayHaveMissed);
            }
            first = false;
            let mut health =
                tokio::time::interval_at(tokio::time::Instant::now() + SUBSCRIBER_PING_EVERY, SUBSCRIBER_PING_EVERY);
            health.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = health.tick() => {
                        // Answered within the connection's response timeout, or it is gone.
                        if let Err(err) = ::redis::cmd("PING").query_async::<Value>(&mut connection).await {
                            tracing::warn!(error = %err, "pub/sub connection does not answer; reconnecting");
                            break;
                        }
                    }
                    _ = self.followers_changed.notified() => {
                        if let Err(err) = self.sync_subscriptions(&mut connection, &mut subscribed).await {
                            tracing::warn!(error = %err, "pub/sub subscribe failed; reconnecting");
                            break;
                        }
                    }
                    delivery = inbox.next() => match delivery {
                        Delivery::Messages(messages) => messages.iter().for_each(|message| self.dispatch(message)),
                        Delivery::Overflowed(dropped) => self.catch_up(dropped).await,
                        Delivery::Disconnected => {
                            tracing::warn!("pub/sub connection lost; reconnecting");
                            break;
                        }
                    }
                }
            }
            self.connected.send_replace(false);
        }
    }

    /// Subscribes to the channels of newly followed drivers and leaves those
    /// nobody follows any more.
    async fn sync_subscriptions(
        &self,
        connection: &mut MultiplexedConnection,
        subscribed: &mut HashSet<Uuid>,
    ) -> Result<(), ::redis::RedisError> {
        let wanted: HashSet<Uuid> = self.drivers().keys().copied().collect();
        let joined: Vec<Uuid> = wanted.difference(subscribed).copied().collect();
        let left: Vec<Uuid> = subscribed.difference(&wanted).copied().collect();
        if !joined.is_empty() {
            connection.subscribe(joined.iter().map(|&id| location_channel(id)).collect::<Vec<_>>()).await?;
        }
        if !left.is_empty() {
            connection.unsubscribe(left.iter().map(|&id| location_channel(id)).collect::<Vec<_>>()).await?;
        }
        *subscribed = wanted;
        // A ping published just before the subscription took effect is in
        // the live hash (written before the publish): nothing falls between.
        self.refresh_positions(&joined).await;
        Ok(())
    }

    /// Messages were dropped: the topics they woke re-read, and followed
    /// drivers' positions are fetched again if any position was lost.
    async fn catch_up(&self, dropped: Dropped) {
        metrics::counter!(PUBSUB_OVERFLOWS_TOTAL).increment(1);
        tracing::debug!(topics = dropped.topics.len(), "pub/sub inbox overflowed; catching up from the stores");
        if dropped.everything {
            self.wake_all(Wake::MayHaveMissed);
        } else {
            dropped.topics.iter().for_each(|topic| self.wake(topic, Wake::MayHaveMissed));
        }
        if dropped.everything || dropped.positions {
            let followed: Vec<Uuid> = self.drivers().keys().copied().collect();
            self.refresh_positions(&followed).await;
        }
    }

    /// Hands the drivers' last live positions to their followers.
    async fn refresh_positions(&self, drivers: &[Uuid]) {
        match LivePositions::new(self.redis.clone()).positions(drivers).await {
            Ok(positions) => positions.into_iter().for_each(|position| self.deliver(position)),
            Err(err) => tracing::debug!(error = %crate::Chain(&err), "could not fetch live positions"),
        }
    }

    fn dispatch(&self, message: &PushInfo) {
        // Subscription confirmations and the like carry nothing.
        let Some((channel, payload)) = channel_and_payload(message) else { return };
        let channel = String::from_utf8_lossy(channel);
        if let Some(topic) = channel.strip_prefix(CHANNEL_PREFIX) {
            self.wake(topic, Wake::Changed);
        } else if channel.starts_with(LOCATION_PREFIX) {
            match serde_json::from_slice::<LivePosition>(payload) {
                Ok(position) => self.deliver(position),
                Err(err) => tracing::warn!(%channel, error = %err, "unreadable live position"),
            }
        }
    }
}

/// A published message's channel and payload.
fn channel_and_payload(message: &PushInfo) -> Option<(&[u8], &[u8])> {
    // [channel, payload], or [pattern, channel, payload] for a pattern.
    match (&message.kind, message.data.as_slice()) {
        (PushKind::Message, [channel, payload]) | (PushKind::PMessage, [_, channel, payload]) => {
            Some((bytes(channel), bytes(payload)))
        }
        _ => None,
    }
}

fn bytes(value: &Value) -> &[u8] {
    match value {
        Value::BulkString(bytes) => bytes,
        Value::SimpleString(text) => text.as_bytes(),
        _ => &[],
    }
}

/// The pub/sub connection's side of the listener's bounded inbox. A message
/// that finds it full is dropped and the listener told what to catch up on;
/// a lost connection is always told.
struct Inbox {
    messages: mpsc::Sender<PushInfo>,
    flags: Arc<InboxFlags>,
}

#[derive(Default)]
struct InboxFlags {
    /// Set, with `dropped` locked, when `dropped` gained something.
    overflowed: AtomicBool,
    dropped: Mutex<Dropped>,
    disconnected: AtomicBool,
}

/// What a full inbox dropped since the listener last looked.
#[derive(Debug, Default, PartialEq)]
struct Dropped {
    /// Topics whose wake-ups were dropped.
    topics: HashSet<String>,
    /// Some driver's position was dropped.
    positions: bool,
    /// More topics than `MAX_DROPPED_TOPICS`, or a channel of no known kind.
    everything: bool,
}

impl Dropped {
    fn add(&mut self, message: &PushInfo) {
        let Some((channel, _)) = channel_and_payload(message) else { return };
        let channel = String::from_utf8_lossy(channel);
        if let Some(topic) = channel.strip_prefix(CHANNEL_PREFIX) {
            if self.topics.len() < MAX_DROPPED_TOPICS {
                self.topics.insert(topic.to_string());
            } else if !self.topics.contains(topic) {
                self.everything = true;
            }
        } else if channel.starts_with(LOCATION_PREFIX) {
            self.positions = true;
        } else {
            self.everything = true;
        }
    }
}

/// The listener's side of the inbox.
struct InboxReceiver {
    messages: mpsc::Receiver<PushInfo>,
    flags: Arc<InboxFlags>,
}

/// What the listener takes from its inbox.
#[derive(Debug)]
enum Delivery {
    /// One to `INBOX_BATCH` messages, in the order received.
    Messages(Vec<PushInfo>),
    /// Messages were dropped since the last delivery.
    Overflowed(Dropped),
    Disconnected,
}

fn inbox(capacity: usize) -> (Inbox, InboxReceiver) {
    let (sender, receiver) = mpsc::channel(capacity);
    let flags = Arc::new(InboxFlags::default());
    (Inbox { messages: sender, flags: flags.clone() }, InboxReceiver { messages: receiver, flags })
}

impl AsyncPushSender for Inbox {
    fn send(&self, info: PushInfo) -> Result<(), SendError> {
        match self.messages.try_send(info) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(info)) => {
                if info.kind == PushKind::Disconnection {
                    self.flags.disconnected.store(true, Ordering::Release);
                } else {
                    let mut dropped = lock(&self.flags.dropped);
                    dropped.add(&info);
                    self.flags.overflowed.store(true, Ordering::Release);
                }
                Ok(())
            }
            Err(TrySendError::Closed(_)) => Err(SendError),
        }
    }
}

impl InboxReceiver {
    /// The next delivery. Cancel-safe: flags are taken only when returned at once.
    async fn next(&mut self) -> Delivery {
        // A flag is raised only while the inbox is full, so never while this waits on an empty one.
        if self.flags.disconnected.swap(false, Ordering::AcqRel) {
            return Delivery::Disconnected;
        }
        if self.flags.overflowed.load(Ordering::Acquire) {
            let mut dropped = lock(&self.flags.dropped);
            self.flags.overflowed.store(false, Ordering::Release);
            return Delivery::Overflowed(std::mem::take(&mut dropped));
        }
        // One cooperative-budget unit for the whole batch.
        let mut messages = Vec::new();
        if self.messages.recv_many(&mut messages, INBOX_BATCH).await == 0 {
            return Delivery::Disconnected;
        }
        match messages.iter().position(|info| info.kind == PushKind::Disconnection) {
            Some(0) => Delivery::Disconnected,
            Some(at) => {
                // Hand over what came before it; the next call reports it.
                messages.truncate(at);
                self.flags.disconnected.store(true, Ordering::Release);
                Delivery::Messages(messages)
            }
            None => Delivery::Messages(messages),
        }
    }
}

/// The topic of one restaurant's orders.
pub fn restaurant_topic(restaurant_id: uuid::Uuid) -> String {
    format!("restaurant:{restaurant_id}")
}

/// A driver's offers or deliveries changed: its Connect stream re-reads them.
pub fn driver_topic(driver_id: uuid::Uuid) -> String {
    format!("driver:{driver_id}")
}

/// Dispatch jobs became due (an order confirmed, an offer declined or
/// dropped): dispatchers on every replica look now instead of at their next poll.
pub const DISPATCH_TOPIC: &str = "dispatch";

/// An announcement was published: every replica's board reads the new ones.
pub const ANNOUNCEMENTS_TOPIC: &str = "announcements";

/// A support conversation has new messages or changed (agent, status).
pub fn conversation_topic(conversation_id: uuid::Uuid) -> String {
    format!("conversation:{conversation_id}")
}

/// Someone started or stopped typing in a support conversation.
pub fn typing_topic(conversation_id: uuid::Uuid) -> String {
    format!("typing:{conversation_id}")
}

/// The topic of one order.
pub fn order_topic(order_id: uuid::Uuid) -> String {
    format!("order:{order_id}")
}

#[cfg(test)]
mod tests {
    use futures::FutureExt;

    use super::*;

    #[test]
    fn topics_nobody_watches_are_swept_as_the_map_grows() {
        let mut topics = Topics::default();
        let watched = topics.subscribe("order:watched");
        for n in 0..10_000 {
            drop(topics.subscribe(&format!("order:{n}")));
        }
        assert!(topics.channels.len() <= MIN_TOPICS_SWEPT, "{} topics kept", topics.channels.len());
        assert!(topics.channels.contains_key("order:watched"), "a watched topic stays");
        drop(watched);
    }

    fn message(channel: String) -> PushInfo {
        PushInfo {
            kind: PushKind::Message,
            data: vec![Value::BulkString(channel.into_bytes()), Value::BulkString(Vec::new())],
        }
    }

    fn wake_message(n: usize) -> PushInfo {
        message(format!("{CHANNEL_PREFIX}t{n}"))
    }

    fn channels_of(delivery: Delivery) -> Vec<String> {
        match delivery {
            Delivery::Messages(messages) => messages
                .iter()
                .map(|info| String::from_utf8_lossy(channel_and_payload(info).expect("a message").0).into_owned())
                .collect(),
            other => panic!("expected messages, got {other:?}"),
        }
    }

    fn dropped_of(delivery: Delivery) -> Dropped {
        match delivery {
            Delivery::Overflowed(dropped) => dropped,
            other => panic!("expected an overflow, got {other:?}"),
        }
    }

    #[test]
    fn a_full_inbox_drops_what_does_not_fit_and_names_the_topics_once() {
        let (sender, mut inbox) = inbox(3);
        for n in 0..10 {
            sender.send(wake_message(n)).expect("the listener is there");
        }
        let dropped = dropped_of(inbox.next().now_or_never().expect("said first"));
        let topics: HashSet<String> = (3..10).map(|n| format!("t{n}")).collect();
        assert_eq!(dropped, Dropped { topics, positions: false, everything: false });
        let queued: Vec<String> = (0..3).map(|n| format!("{CHANNEL_PREFIX}t{n}")).collect();
        assert_eq!(channels_of(inbox.next().now_or_never().expect("queued")), queued, "in one batch, in order");
        assert!(inbox.next().now_or_never().is_none(), "seven messages were dropped, and said once");
        sender.send(wake_message(10)).unwrap();
        assert_eq!(channels_of(inbox.next().now_or_never().expect("room again")), [format!("{CHANNEL_PREFIX}t10")]);
    }

    #[test]
    fn dropped_positions_ask_only_for_positions_and_too_many_topics_for_everything() {
        let (sender, mut inbox) = inbox(1);
        sender.send(wake_message(0)).unwrap();
        sender.send(message(location_channel(Uuid::new_v4()))).unwrap();
        let dropped = dropped_of(inbox.next().now_or_never().unwrap());
        assert_eq!(dropped, Dropped { topics: HashSet::new(), positions: true, everything: false });

        for n in 0..=MAX_DROPPED_TOPICS {
            sender.send(wake_message(n)).unwrap();
        }
        let dropped = dropped_of(inbox.next().now_or_never().unwrap());
        assert!(dropped.everything && dropped.topics.len() == MAX_DROPPED_TOPICS, "{}", dropped.topics.len());

        sender.send(message("elsewhere:1".into())).unwrap();
        assert!(dropped_of(inbox.next().now_or_never().unwrap()).everything, "a channel of no known kind");
    }

    #[test]
    fn a_batch_is_bounded() {
        let (sender, mut inbox) = inbox(INBOX_BATCH + 1);
        for n in 0..=INBOX_BATCH {
            sender.send(wake_message(n)).unwrap();
        }
        assert_eq!(channels_of(inbox.next().now_or_never().unwrap()).len(), INBOX_BATCH);
        assert_eq!(channels_of(inbox.next().now_or_never().unwrap()), [format!("{CHANNEL_PREFIX}t{INBOX_BATCH}")]);
    }

    #[test]
    fn a_lost_connection_is_told_even_when_the_inbox_is_full() {
        let (sender, mut inbox) = inbox(2);
        for n in 0..2 {
            sender.send(wake_message(n)).unwrap();
        }
        sender.send(PushInfo { kind: PushKind::Disconnection, data: Vec::new() }).unwrap();
        assert!(matches!(inbox.next().now_or_never(), Some(Delivery::Disconnected)));
    }

    #[test]
    fn messages_received_before_a_disconnection_are_handed_over_first() {
        let (sender, mut inbox) = inbox(4);
        sender.send(wake_message(0)).unwrap();
        sender.send(PushInfo { kind: PushKind::Disconnection, data: Vec::new() }).unwrap();
        sender.send(wake_message(1)).unwrap();
        assert_eq!(channels_of(inbox.next().now_or_never().unwrap()), [format!("{CHANNEL_PREFIX}t0")]);
        assert!(matches!(inbox.next().now_or_never(), Some(Delivery::Disconnected)));
    }

    #[test]
    fn the_connection_learns_when_the_listener_is_gone() {
        let (sender, inbox) = inbox(2);
        drop(inbox);
        assert!(sender.send(wake_message(0)).is_err());
    }
}
