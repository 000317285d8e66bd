//! Fan-out between server replicas through Redis pub/sub, over one pub/sub
//! connection per process for all its streams.
//!
//! - Wake-ups: a message says only "topic X changed"; the database stays the
//!   source of truth, so a lost or coalesced wake-up costs latency, never data.
//! - Driver positions: each accepted ping is published on the driver's
//!   channel (see [`crate::live`]); the process subscribes to a driver while
//!   at least one of its streams follows it, and keeps only the latest
//!   position (a `watch` channel: slow readers coalesce, latest wins).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use futures::StreamExt;
use tokio::sync::{Notify, broadcast, watch};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::StoreError;
use crate::live::{LivePosition, LivePositions, location_channel};
use crate::redis::Redis;

const CHANNEL_PREFIX: &str = "ff:wake:";
const LOCATION_PREFIX: &str = "ff:loc:";
/// Wake-ups a slow subscriber may fall behind by before they coalesce
/// (a lagged receiver just re-reads the database).
const TOPIC_CAPACITY: usize = 16;

/// A topic's wake-up: either a change was published, or the pub/sub
/// connection came back and changes may have been missed meanwhile.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wake {
    Changed,
    Reconnected,
}

#[derive(Clone)]
pub struct Fanout {
    redis: Redis,
    topics: Arc<Mutex<HashMap<String, broadcast::Sender<Wake>>>>,
    drivers: Arc<Mutex<HashMap<Uuid, Followed>>>,
    /// The set of followed drivers changed: the listener (un)subscribes.
    followers_changed: Arc<Notify>,
    connected: watch::Sender<bool>,
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
        let fanout = Self {
            redis,
            topics: Arc::default(),
            drivers: Arc::default(),
            followers_changed: Arc::default(),
            connected: watch::Sender::new(false),
        };
        tokio::spawn(fanout.clone().listen(stop));
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
        self.drivers.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
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
        let mut topics = self.topics.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        topics.entry(topic.to_string()).or_insert_with(|| broadcast::channel(TOPIC_CAPACITY).0).subscribe()
    }

    fn wake(&self, topic: &str, wake: Wake) {
        let mut topics = self.topics.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(sender) = topics.get(topic)
            && sender.send(wake).is_err()
        {
            // Nobody listens any more.
            topics.remove(topic);
        }
    }

    fn wake_all(&self, wake: Wake) {
        let mut topics = self.topics.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        topics.retain(|_, sender| sender.send(wake).is_ok());
    }

    async fn listen(self, stop: CancellationToken) {
        let mut backoff = Duration::from_millis(100);
        let mut first = true;
        while !stop.is_cancelled() {
            let connected = async {
                let mut pubsub = self.redis.client().get_async_pubsub().await?;
                pubsub.psubscribe(format!("{CHANNEL_PREFIX}*")).await?;
                Ok::<_, ::redis::RedisError>(pubsub.split())
            };
            let (mut sink, mut messages) = match connected.await {
                Ok(split) => split,
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
            if let Err(err) = self.sync_subscriptions(&mut sink, &mut subscribed).await {
                tracing::warn!(error = %err, "pub/sub subscribe failed");
                continue;
            }
            self.connected.send_replace(true);
            if !first {
                tracing::info!("pub/sub connection restored");
                self.wake_all(Wake::Reconnected);
            }
            first = false;
            loop {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = self.followers_changed.notified() => {
                        if let Err(err) = self.sync_subscriptions(&mut sink, &mut subscribed).await {
                            tracing::warn!(error = %err, "pub/sub subscribe failed; reconnecting");
                            break;
                        }
                    }
                    message = messages.next() => match message {
                        Some(message) => self.dispatch(&message),
                        None => {
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
        sink: &mut ::redis::aio::PubSubSink,
        subscribed: &mut HashSet<Uuid>,
    ) -> Result<(), ::redis::RedisError> {
        let wanted: HashSet<Uuid> = self.drivers().keys().copied().collect();
        let join: Vec<String> = wanted.difference(subscribed).map(|&id| location_channel(id)).collect();
        let leave: Vec<String> = subscribed.difference(&wanted).map(|&id| location_channel(id)).collect();
        let joined: Vec<Uuid> = wanted.difference(subscribed).copied().collect();
        if !join.is_empty() {
            sink.subscribe(&join).await?;
        }
        if !leave.is_empty() {
            sink.unsubscribe(&leave).await?;
        }
        *subscribed = wanted;
        // A ping published just before the subscription took effect is in
        // the live hash (written before the publish): nothing falls between.
        let live = LivePositions::new(self.redis.clone());
        for driver_id in joined {
            match live.position(driver_id).await {
                Ok(Some(position)) => self.deliver(position),
                Ok(None) => {}
                Err(err) => tracing::debug!(error = %crate::Chain(&err), "no live position after subscribing"),
            }
        }
        Ok(())
    }

    fn dispatch(&self, message: &::redis::Msg) {
        let channel = message.get_channel_name();
        if let Some(topic) = channel.strip_prefix(CHANNEL_PREFIX) {
            self.wake(topic, Wake::Changed);
        } else if channel.starts_with(LOCATION_PREFIX) {
            match serde_json::from_slice::<LivePosition>(message.get_payload_bytes()) {
                Ok(position) => self.deliver(position),
                Err(err) => tracing::warn!(%channel, error = %err, "unreadable live position"),
            }
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

/// The topic of one order.
pub fn order_topic(order_id: uuid::Uuid) -> String {
    format!("order:{order_id}")
}
