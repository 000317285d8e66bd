use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Where the payment provider is and how patient to be with it. The defaults point at
/// the local sandbox that `make run` starts.
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PaymentsConfig {
    /// e.g. `https://api.provider.example`; the API paths (`/v1/...`) are appended.
    pub base_url: String,
    /// Sent as `Authorization: Bearer <key>`.
    pub api_key: String,
    /// Longest one HTTP attempt may take, connecting included.
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    /// Attempts per call, the first included; only timeouts, connection failures, 429
    /// and 5xx are retried.
    pub max_attempts: u32,
    /// The wait before the first retry; it doubles for each further one, with jitter,
    /// up to a cap.
    #[serde(with = "humantime_serde")]
    pub backoff_base: Duration,
    /// Consecutive failed attempts that open the circuit breaker.
    pub breaker_failure_threshold: u32,
    /// How long an open breaker fails calls without trying; then one trial call decides.
    #[serde(with = "humantime_serde")]
    pub breaker_open_for: Duration,
}

impl Default for PaymentsConfig {
    fn default() -> Self {
        Self {
            base_url: "http://127.0.0.1:8099".into(),
            api_key: "sk_test_sandbox".into(),
            timeout: Duration::from_secs(3),
            max_attempts: 3,
            backoff_base: Duration::from_millis(100),
            breaker_failure_threshold: 5,
            breaker_open_for: Duration::from_secs(30),
        }
    }
}

/// Written by hand so that the API key never reaches a log.
impl fmt::Debug for PaymentsConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PaymentsConfig")
            .field("base_url", &self.base_url)
            .field("api_key", &"<redacted>")
            .field("timeout", &self.timeout)
            .field("max_attempts", &self.max_attempts)
            .field("backoff_base", &self.backoff_base)
            .field("breaker_failure_threshold", &self.breaker_failure_threshold)
            .field("breaker_open_for", &self.breaker_open_for)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_human_durations_and_refuses_unknown_fields() {
        let config: PaymentsConfig = serde_json::from_value(serde_json::json!({
            "base_url": "https://pay.example",
            "api_key": "sk_live_x",
            "timeout": "2s 500ms",
            "max_attempts": 4,
            "backoff_base": "50ms",
            "breaker_failure_threshold": 10,
            "breaker_open_for": "1m",
        }))
        .unwrap();
        assert_eq!(config.timeout, Duration::from_millis(2500));
        assert_eq!(config.backoff_base, Duration::from_millis(50));
        assert_eq!(config.breaker_open_for, Duration::from_secs(60));

        let mut value = serde_json::to_value(PaymentsConfig::default()).unwrap();
        value["retries"] = 3.into();
        assert!(serde_json::from_value::<PaymentsConfig>(value).is_err());
    }

    #[test]
    fn debug_hides_the_api_key() {
        let config = PaymentsConfig { api_key: "sk_live_secret".into(), ..PaymentsConfig::default() };
        assert!(!format!("{config:?}").contains("sk_live_secret"));
    }
}
