//! [`PaymentGateway`] over a Stripe-like HTTP API: JSON bodies, a Bearer API key, and an
//! `Idempotency-Key` of `{operation}:{order_id}` on every request.

use std::time::{Duration, Instant};

use async_trait::async_trait;
use reqwest::{Method, StatusCode, Url};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::breaker::CircuitBreaker;
use crate::money::to_minor_units;
use crate::{Authorization, AuthorizeRequest, PaymentError, PaymentGateway, PaymentsConfig, ProviderStatus};

const CIRCUIT_OPEN: &str = "payment provider circuit open";
/// The largest answer read from the provider: a payment intent is a few
/// hundred bytes, and a broken proxy must not make one call hold megabytes.
const MAX_ANSWER_BYTES: usize = 64 * 1024;
/// The longest wait between two attempts, whatever the attempt number.
const MAX_BACKOFF: Duration = Duration::from_secs(2);

pub struct HttpPaymentGateway {
    client: reqwest::Client,
    base_url: Url,
    api_key: String,
    max_attempts: u32,
    backoff_base: Duration,
    breaker: CircuitBreaker,
}

#[derive(Debug, thiserror::Error)]
#[error("invalid payments configuration: {0}")]
pub struct InvalidConfig(String);

/// A payment intent as the provider answers it.
#[derive(Deserialize)]
struct Intent {
    id: String,
    status: String,
}

/// The part of a capture, cancel or refund answer we check.
#[derive(Deserialize)]
struct IntentStatus {
    status: String,
}

#[derive(Deserialize)]
struct ErrorBody {
    error: ApiError,
}

#[derive(Deserialize)]
struct ApiError {
    code: Option<String>,
    message: Option<String>,
}

impl HttpPaymentGateway {
    pub fn new(config: PaymentsConfig) -> Result<Self, InvalidConfig> {
        let base_url = Url::parse(&config.base_url)
            .map_err(|error| InvalidConfig(format!("base_url {:?}: {error}", config.base_url)))?;
        if !matches!(base_url.scheme(), "http" | "https") || base_url.cannot_be_a_base() {
            return Err(InvalidConfig(format!("base_url {:?} is not an http(s) URL", config.base_url)));
        }
        if config.max_attempts == 0 || config.breaker_failure_threshold == 0 || config.timeout.is_zero() {
            return Err(InvalidConfig("timeout, max_attempts and breaker_failure_threshold must be positive".into()));
        }
        let client = reqwest::Client::builder()
            .timeout(config.timeout)
            // A redirected POST would become a GET; a payment API has no business redirecting.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|error| InvalidConfig(format!("HTTP client: {error}")))?;
        Ok(Self {
            client,
            base_url,
            api_key: config.api_key,
            max_attempts: config.max_attempts,
            backoff_base: config.backoff_base,
            breaker: CircuitBreaker::new(config.breaker_failure_threshold, config.breaker_open_for),
        })
    }

    /// The base URL with `segments` appended, each percent-encoded.
    fn url(&self, segments: &[&str]) -> Url {
        let mut url = self.base_url.clone();
        url.path_segments_mut().expect("checked in new: base_url can be a base").pop_if_empty().extend(segments);
        url
    }

    /// POSTs with `idempotency_key`; see [`Self::send`].
    async fn post<T: DeserializeOwned>(
        &self,
        url: Url,
        idempotency_key: &str,
        body: Option<&Value>,
    ) -> Result<T, PaymentError> {
        self.send(Method::POST, url, Some(idempotency_key), body).await
    }

    /// Sends until an attempt gets an answer other than "unavailable", `max_attempts`
    /// are spent, or the breaker opens. Retrying is safe because every attempt of a
    /// POST carries the same idempotency key (and a GET changes nothing).
    async fn send<T: DeserializeOwned>(
        &self,
        method: Method,
        url: Url,
        idempotency_key: Option<&str>,
        body: Option<&Value>,
    ) -> Result<T, PaymentError> {
        let mut attempt = 1;
        loop {
            let Some(permit) = self.breaker.try_acquire(Instant::now()) else {
                return Err(PaymentError::Unavailable { reason: CIRCUIT_OPEN.into() });
            };
            let outcome = self.attempt(method.clone(), &url, idempotency_key, body).await;
            // Declines and rejections are answers: the provider is up.
            match &outcome {
                Err(PaymentError::Unavailable { .. }) => permit.failure(Instant::now()),
                _ => permit.success(),
            }
            match outcome {
                Err(PaymentError::Unavailable { reason }) if attempt < self.max_attempts => {
                    let delay = backoff(self.backoff_base, attempt);
                    tracing::warn!(%url, idempotency_key, attempt, ?delay, reason, "payment provider unavailable; retrying");
                    tokio::time::sleep(delay).await;
                    attempt += 1;
                }
                outcome => return outcome,
            }
        }
    }

    async fn attempt<T: DeserializeOwned>(
        &self,
        method: Method,
        url: &Url,
        idempotency_key: Option<&str>,
        body: Option<&Value>,
    ) -> Result<T, PaymentError> {
        let mut request = self.client.request(method, url.clone()).bearer_auth(&self.api_key);
        if let Some(key) = idempotency_key {
            request = request.header("Idempotency-Key", key);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        let mut response = request.send().await.map_err(unavailable)?;
        let status = response.status();
        if status.is_success() {
            let body = read_at_most(&mut response, MAX_ANSWER_BYTES).await.map_err(unavailable)?;
            let Some(body) = body else {
                let reason = format!("provider answered more than {MAX_ANSWER_BYTES} bytes");
                return Err(PaymentError::Unavailable { reason });
            };
            return serde_json::from_slice(&body)
                .map_err(|err| PaymentError::Unavailable { reason: format!("provider's answer unreadable: {err}") });
        }
        // The body only explains the status; an unreadable or long one must not hide it.
        let text = match read_at_most(&mut response, MAX_ANSWER_BYTES).await {
            Ok(Some(body)) => String::from_utf8_lossy(&body).into_owned(),
            Ok(None) | Err(_) => String::new(),
        };
        let (code, message) = match serde_json::from_str::<ErrorBody>(&text) {
            Ok(ErrorBody { error }) => (error.code, error.message.unwrap_or_default()),
            Err(_) => (None, text.chars().take(200).collect()),
        };
        Err(classify(status, code, message))
    }
}

/// The whole body, or `None` once it grows past `limit` bytes (the rest is
/// not read).
async fn read_at_most(response: &mut reqwest::Response, limit: usize) -> Result<Option<Vec<u8>>, reqwest::Error> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        if body.len() + chunk.len() > limit {
            return Ok(None);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Some(body))
}

fn classify(status: StatusCode, code: Option<String>, message: String) -> PaymentError {
    if status == StatusCode::PAYMENT_REQUIRED {
        PaymentError::Declined { code: code.unwrap_or_else(|| "card_declined".into()), message }
    } else if status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error() {
        PaymentError::Unavailable { reason: format!("provider answered {status}: {message}") }
    } else {
        PaymentError::Rejected { status: status.as_u16(), message }
    }
}

/// Timeouts, refused connections, cut-off or garbled answers: worth another attempt.
fn unavailable(error: reqwest::Error) -> PaymentError {
    let mut reason = if error.is_timeout() { "timed out".to_owned() } else { error.to_string() };
    let mut source = std::error::Error::source(&error);
    while let Some(cause) = source {
        reason.push_str(": ");
        reason.push_str(&cause.to_string());
        source = cause.source();
    }
    PaymentError::Unavailable { reason }
}

/// Exponential and capped, with "equal jitter" (half fixed, half random) so that the
/// retries of many orders hit during one outage spread out instead of arriving together.
fn backoff(base: Duration, attempt: u32) -> Duration {
    let ceiling = foodfast_domain::backoff::doubling(base, MAX_BACKOFF, attempt.saturating_sub(1));
    ceiling / 2 + ceiling.mul_f64(fastrand::f64()) / 2
}

/// An answer that is 200 but not the state we asked for means the provider and we
/// disagree on the protocol: a bug, not something a retry fixes.
fn expect_status(operation: &str, status: &str, expected: &str) -> Result<(), PaymentError> {
    if status == expected {
        Ok(())
    } else {
        Err(PaymentError::Rejected {
            status: StatusCode::OK.as_u16(),
            message: format!("{operation} left the payment {status}, expected {expected}"),
        })
    }
}

#[async_trait]
impl PaymentGateway for HttpPaymentGateway {
    async fn authorize(&self, request: &AuthorizeRequest) -> Result<Authorization, PaymentError> {
        let amount = to_minor_units(request.amount, &request.currency)
            .map_err(|message| PaymentError::Rejected { status: 0, message })?;
        let body = json!({
            "amount": amount,
            "currency": request.currency.to_ascii_lowercase(),
            "payment_method": request.payment_method_id,
            "capture_method": "manual",
            "metadata": {
                "order_id": request.order_id.to_string(),
                "customer_id": request.customer_id.to_string(),
            },
        });
        let key = format!("authorize:{}", request.order_id);
        let intent: Intent = self.post(self.url(&["v1", "payment_intents"]), &key, Some(&body)).await?;
        expect_status("authorize", &intent.status, "requires_capture")?;
        Ok(Authorization { payment_id: intent.id })
    }

    async fn capture(&self, payment_id: &str, order_id: Uuid) -> Result<(), PaymentError> {
        let url = self.url(&["v1", "payment_intents", payment_id, "capture"]);
        let intent: IntentStatus = self.post(url, &format!("capture:{order_id}"), None).await?;
        expect_status("capture", &intent.status, "succeeded")
    }

    async fn void(&self, payment_id: &str, order_id: Uuid) -> Result<(), PaymentError> {
        let url = self.url(&["v1", "payment_intents", payment_id, "cancel"]);
        let intent: IntentStatus = self.post(url, &format!("void:{order_id}"), None).await?;
        expect_status("void", &intent.status, "canceled")
    }

    async fn refund(&self, payment_id: &str, order_id: Uuid) -> Result<(), PaymentError> {
        let body = json!({ "payment_intent": payment_id });
        let refund: IntentStatus =
            self.post(self.url(&["v1", "refunds"]), &format!("refund:{order_id}"), Some(&body)).await?;
        // A pending refund completes at the provider; a failed or canceled one did not happen.
        match refund.status.as_str() {
            "succeeded" | "pending" => Ok(()),
            _ => expect_status("refund", &refund.status, "succeeded"),
        }
    }

    async fn status(&self, payment_id: &str) -> Result<ProviderStatus, PaymentError> {
        let url = self.url(&["v1", "payment_intents", payment_id]);
        let intent: IntentStatus = self.send(Method::GET, url, None, None).await?;
        Ok(match intent.status.as_str() {
            "requires_capture" => ProviderStatus::Held,
            // A refund does not change its intent's status.
            "succeeded" => ProviderStatus::Captured,
            "canceled" => ProviderStatus::Voided,
            _ => ProviderStatus::Other(intent.status),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_jitter_up_to_the_cap() {
        let base = Duration::from_millis(100);
        for _ in 0..100 {
            for (attempt, ceiling) in [(1, 100), (2, 200), (3, 400), (8, 2000), (40, 2000)] {
                let delay = backoff(base, attempt);
                let ceiling = Duration::from_millis(ceiling);
                assert!(delay >= ceiling / 2 && delay <= ceiling, "attempt {attempt}: {delay:?}");
            }
        }
    }

    #[test]
    fn statuses_map_to_the_error_kinds() {
        let kind = |status: u16| classify(StatusCode::from_u16(status).unwrap(), Some("x".into()), "m".into());
        assert_eq!(kind(402), PaymentError::Declined { code: "x".into(), message: "m".into() });
        for status in [429, 500, 502, 503, 504] {
            assert!(matches!(kind(status), PaymentError::Unavailable { .. }), "{status}");
        }
        for status in [400, 401, 403, 404, 409, 301] {
            assert_eq!(kind(status), PaymentError::Rejected { status, message: "m".into() });
        }
    }

    #[test]
    fn payment_ids_are_escaped_into_one_path_segment() {
        let config = PaymentsConfig { base_url: "https://pay.example/api/".into(), ..PaymentsConfig::default() };
        let gateway = HttpPaymentGateway::new(config).unwrap();
        let url = gateway.url(&["v1", "payment_intents", "pi_1/../x?y", "capture"]);
        assert_eq!(url.as_str(), "https://pay.example/api/v1/payment_intents/pi_1%2F..%2Fx%3Fy/capture");
    }

    #[test]
    fn refuses_unusable_configurations() {
        for config in [
            PaymentsConfig { base_url: "pay.example".into(), ..PaymentsConfig::default() },
            PaymentsConfig { base_url: "mailto:pay@example.com".into(), ..PaymentsConfig::default() },
            PaymentsConfig { max_attempts: 0, ..PaymentsConfig::default() },
            PaymentsConfig { breaker_failure_threshold: 0, ..PaymentsConfig::default() },
        ] {
            assert!(HttpPaymentGateway::new(config).is_err());
        }
    }
}
