//! Sends queued notifications through the provider: each replica's sender
//! claims due ones from the database, most urgent first, and records every
//! attempt. Failures are retried with exponential backoff until
//! `notifications.max_attempts`; a notification nobody could ever receive
//! (no phone number, no device) or that the provider refuses fails at once.
//!
//! The provider's API (a push/SMS/email aggregator; the tests run a stand-in):
//!
//! | request | answer |
//! | --- | --- |
//! | `POST /v1/messages` `{id, channel: "push"/"sms"/"email", to: [...], title, body}`, `Idempotency-Key: <id>` | 2xx accepted; 408, 429 and 5xx: try again; other 4xx: refused for good |

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use foodfast_domain::notification::{Channel, RetryPolicy};
use foodfast_store::notifications::{Claimed, Notifications, Outcome};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::config::NotificationsConfig;
use crate::telemetry::{NOTIFICATION_ATTEMPTS_TOTAL, NOTIFICATIONS_PENDING};

/// How long a claim lasts past the provider's timeout before another
/// sender may take the notification over.
const LEASE_MARGIN: Duration = Duration::from_secs(30);

/// Runs the sender until `stop`. `nudge` makes it look at once (a
/// notification was just queued on this replica).
pub async fn run(store: Notifications, config: NotificationsConfig, nudge: Arc<Notify>, stop: CancellationToken) {
    let http = match reqwest::Client::builder().timeout(config.timeout).build() {
        Ok(http) => http,
        Err(err) => {
            tracing::error!(error = %err, "notification sender cannot start");
            return;
        }
    };
    let policy = RetryPolicy {
        max_attempts: config.max_attempts,
        backoff_base: config.backoff_base,
        backoff_cap: config.backoff_cap,
    };
    let sender =
        Sender { store, http, url: format!("{}/v1/messages", config.provider_url.trim_end_matches('/')), policy };
    loop {
        let claimed = match sender.store.claim_due(config.batch, config.timeout + LEASE_MARGIN).await {
            Ok(claimed) => claimed,
            Err(err) => {
                tracing::warn!(error = %foodfast_store::Chain(&err), "could not claim notifications");
                Vec::new()
            }
        };
        let full = claimed.len() == config.batch as usize;
        futures::future::join_all(claimed.iter().map(|notification| sender.deliver(notification))).await;
        if full {
            continue;
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = nudge.notified() => {}
            _ = tokio::time::sleep(config.poll_interval) => {}
        }
    }
}

/// Keeps `backlog` at the number of pending notifications, counted every
/// `interval`, for SendNotification's bound.
pub async fn count_pending(store: Notifications, backlog: Arc<AtomicU64>, interval: Duration, stop: CancellationToken) {
    loop {
        match store.pending().await {
            Ok(pending) => {
                backlog.store(pending, Ordering::Relaxed);
                metrics::gauge!(NOTIFICATIONS_PENDING).set(pending as f64);
            }
            Err(err) => tracing::debug!(error = %foodfast_store::Chain(&err), "could not count pending notifications"),
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(interval) => {}
        }
    }
}

struct Sender {
    store: Notifications,
    http: reqwest::Client,
    url: String,
    policy: RetryPolicy,
}

/// Why an attempt did not go through.
enum Failure {
    /// Nothing will change it: fail now.
    Permanent(String),
    Transient(String),
}

impl Sender {
    async fn deliver(&self, notification: &Claimed) {
        let outcome = match self.attempt(notification).await {
            Ok(()) => Outcome::Sent,
            Err(Failure::Permanent(error)) => Outcome::Failed { error },
            Err(Failure::Transient(error)) => match self.policy.next_delay(notification.attempt) {
                Some(after) => Outcome::Retry { after, error },
                None => Outcome::Failed { error },
            },
        };
        let counted = match outcome {
            Outcome::Sent => "sent",
            Outcome::Retry { .. } => "retry",
            Outcome::Failed { .. } => "failed",
        };
        metrics::counter!(NOTIFICATION_ATTEMPTS_TOTAL, "channel" => notification.channel.as_str(), "outcome" => counted)
            .increment(1);
        if let Err(err) = self.store.settle(notification, &outcome).await {
            // The claim lapses and another attempt follows: sent twice at worst,
            // and the provider drops the repeat by its idempotency key.
            tracing::warn!(notification = %notification.id, error = %foodfast_store::Chain(&err), "could not record a notification attempt");
        }
    }

    async fn attempt(&self, notification: &Claimed) -> Result<(), Failure> {
        let contact = self
            .store
            .contact(notification.recipient_id)
            .await
            .map_err(|err| {
                Failure::Transient(format!("could not read the recipient: {}", foodfast_store::Chain(&err)))
            })?
            .ok_or_else(|| Failure::Permanent("the recipient's account does not exist".into()))?;
        let to = match notification.channel {
            Channel::Email => vec![contact.email],
            Channel::Sms => {
                vec![contact.phone.ok_or_else(|| Failure::Permanent("the recipient has no phone number".into()))?]
            }
            Channel::Push if contact.push_tokens.is_empty() => {
                return Err(Failure::Permanent("the recipient has no registered device".into()));
            }
            Channel::Push => contact.push_tokens,
        };
        let body = serde_json::json!({
            "id": notification.id,
            "channel": notification.channel.as_str(),
            "to": to,
            "title": notification.message.title,
            "body": notification.message.body,
        });
        let mut response = self
            .http
            .post(&self.url)
            .header("Idempotency-Key", notification.id.to_string())
            .json(&body)
            .send()
            .await
            .map_err(|err| Failure::Transient(format!("provider unreachable: {err}")))?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        // The first chunk is plenty to explain the status: the rest is not read.
        let detail = response.chunk().await.ok().flatten().unwrap_or_default();
        let detail = String::from_utf8_lossy(&detail);
        let error = format!("provider answered {status}: {}", detail.chars().take(200).collect::<String>());
        if status.is_server_error() || status.as_u16() == 408 || status.as_u16() == 429 {
            Err(Failure::Transient(error))
        } else {
            Err(Failure::Permanent(error))
        }
    }
}
