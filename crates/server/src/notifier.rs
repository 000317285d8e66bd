//! Sends queued notifications through the provider: each replica's sender
//! claims due ones from the database, most urgent first, and records every
//! attempt. Failures are retried with exponential backoff until
//! `notifications.max_attempts`; a notification nobody could ever receive
//! (no phone number, no device) or that the provider refuses fails at once.
//! While the provider is down, slows us down or refuses our credentials,
//! the sender pauses between batches (doubling from `backoff_base` up to
//! `backoff_cap`, or as long as its `Retry-After` asks), so an outage costs
//! each waiting notification few attempts instead of all of them.
//!
//! What an attempt records (readable by the recipient) says what happened
//! in a few words; the details, which may name internal hosts or echo the
//! provider's answer, go to the log.
//!
//! The provider's API (a push/SMS/email aggregator; the tests run a stand-in):
//!
//! | request | answer |
//! | --- | --- |
//! | `POST /v1/messages` `{id, channel: "push"/"sms"/"email", to: [...], title, body}`, `Idempotency-Key: <id>` | 2xx accepted; 408, 429 and 5xx: try again (`Retry-After` in seconds is honoured); 401, 403, 404: our configuration is wrong, try again; other 4xx: refused for good |

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use foodfast_domain::backoff;
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
    let mut busy_batches = 0u32;
    loop {
        let claimed = match sender.store.claim_due(config.batch, config.timeout + LEASE_MARGIN).await {
            Ok(claimed) => claimed,
            Err(err) => {
                tracing::warn!(error = %foodfast_store::Chain(&err), "could not claim notifications");
                Vec::new()
            }
        };
        let full = claimed.len() == config.batch as usize;
        let answers = futures::future::join_all(claimed.iter().map(|notification| sender.deliver(notification))).await;
        let asked_to_wait = answers.iter().flatten().max().copied();
        let wait = match asked_to_wait {
            Some(asked) => {
                let pause = backoff::doubling(config.backoff_base, config.backoff_cap, busy_batches);
                let wait = pause.max(asked.min(config.backoff_cap));
                busy_batches = busy_batches.saturating_add(1);
                tracing::warn!(?wait, "notification provider unavailable; pausing the sender");
                wait
            }
            None => {
                busy_batches = 0;
                if full && !stop.is_cancelled() {
                    continue;
                }
                config.poll_interval
            }
        };
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = nudge.notified(), if asked_to_wait.is_none() => {}
            _ = tokio::time::sleep(wait) => {}
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
    /// This one may go through later.
    Transient(String),
    /// The provider cannot take anything now: try again later, and pause
    /// the sender, at least as long as the provider asked.
    ProviderUnavailable { error: String, retry_after: Duration },
}

impl Sender {
    /// Attempts `notification` and records the outcome. Returns how long the
    /// provider asked us to wait, when it could not take it.
    async fn deliver(&self, notification: &Claimed) -> Option<Duration> {
        let mut asked_to_wait = None;
        let outcome = match self.attempt(notification).await {
            Ok(()) => Outcome::Sent,
            Err(Failure::Permanent(error)) => Outcome::Failed { error },
            Err(Failure::Transient(error)) => self.retry(notification, error),
            Err(Failure::ProviderUnavailable { error, retry_after }) => {
                asked_to_wait = Some(retry_after);
                self.retry(notification, error)
            }
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
        asked_to_wait
    }

    fn retry(&self, notification: &Claimed, error: String) -> Outcome {
        match self.policy.next_delay(notification.attempt) {
            Some(after) => Outcome::Retry { after, error },
            None => Outcome::Failed { error },
        }
    }

    async fn attempt(&self, notification: &Claimed) -> Result<(), Failure> {
        let contact = self
            .store
            .contact(notification.recipient_id)
            .await
            .map_err(|err| {
                tracing::warn!(notification = %notification.id, error = %foodfast_store::Chain(&err), "could not read a notification's recipient");
                Failure::Transient("the recipient's details could not be read just now".into())
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
            .map_err(|err| {
                tracing::warn!(notification = %notification.id, error = %err, "notification provider unreachable");
                let error = if err.is_timeout() {
                    "the provider did not answer in time"
                } else {
                    "the provider was unreachable"
                };
                Failure::ProviderUnavailable { error: error.into(), retry_after: Duration::ZERO }
            })?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|value| value.to_str().ok()?.trim().parse::<u64>().ok())
            .map_or(Duration::ZERO, Duration::from_secs);
        // The first chunk is plenty to explain the status: the rest is not read.
        let detail = response.chunk().await.ok().flatten().unwrap_or_default();
        let detail: String = String::from_utf8_lossy(&detail).chars().take(200).collect();
        let error = format!("the provider answered {status}");
        match status.as_u16() {
            408 | 429 | 500.. => {
                tracing::warn!(notification = %notification.id, %status, detail, "notification provider unavailable");
                Err(Failure::ProviderUnavailable { error, retry_after })
            }
            401 | 403 | 404 => {
                tracing::error!(%status, detail, url = self.url, "the notification provider refuses our key or URL: check notifications.provider_url");
                Err(Failure::ProviderUnavailable { error, retry_after })
            }
            _ => {
                tracing::warn!(notification = %notification.id, %status, detail, "notification refused by the provider");
                Err(Failure::Permanent(error))
            }
        }
    }
}
