//! Wake-ups between server replicas through Redis pub/sub. A message says
//! only "topic X changed"; the database stays the source of truth, so a lost
//! or coalesced wake-up costs latency, never data. Each process holds one
//! pub/sub connection for all its streams.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

use crate::StoreError;
use crate::redis::Redis;

const CHANNEL_PREFIX: &str = "ff:wake:";
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
}

impl Fanout {
    /// Starts listening; the listener reconnects by itself until `stop`.
    pub fn start(redis: Redis, stop: CancellationToken) -> Self {
        let fanout = Self { redis, topics: Arc::default() };
        tokio::spawn(fanout.clone().listen(stop));
        fanout
    }

    /// Wakes every subscriber of `topic`, in every process.
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
            let mut pubsub = match self.redis.client().get_async_pubsub().await {
                Ok(pubsub) => pubsub,
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
            if let Err(err) = pubsub.psubscribe(format!("{CHANNEL_PREFIX}*")).await {
                tracing::warn!(error = %err, "pub/sub subscribe failed");
                continue;
            }
            backoff = Duration::from_millis(100);
            if !first {
                tracing::info!("pub/sub connection restored");
                self.wake_all(Wake::Reconnected);
            }
            first = false;
            let mut messages = pubsub.on_message();
            loop {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    message = messages.next() => match message {
                        Some(message) => {
                            if let Some(topic) = message.get_channel_name().strip_prefix(CHANNEL_PREFIX) {
                                self.wake(topic, Wake::Changed);
                            }
                        }
                        None => {
                            tracing::warn!("pub/sub connection lost; reconnecting");
                            break;
                        }
                    }
                }
            }
        }
    }
}

/// The topic of one restaurant's orders.
pub fn restaurant_topic(restaurant_id: uuid::Uuid) -> String {
    format!("restaurant:{restaurant_id}")
}

/// The topic of one order.
pub fn order_topic(order_id: uuid::Uuid) -> String {
    format!("order:{order_id}")
}
