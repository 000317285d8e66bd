//! Checking one GPS ping from a driver's app. A bad ping is reported back
//! with its reason and does not end the stream; only the accepted ones move
//! the driver and reach the time series.

use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::geo::{LatLng, distance_m};
use crate::validation::FieldError;

/// How strict the checks are (from configuration).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PingPolicy {
    /// How far ahead of the server's clock a phone's clock may be.
    #[serde(with = "humantime_serde")]
    pub max_future_skew: Duration,
    /// Older pings are refused: they are no use live, and an app that
    /// buffered longer than this has lost the thread.
    #[serde(with = "humantime_serde")]
    pub max_age: Duration,
    /// Faster than this between two accepted pings is a spoofing signal.
    /// 70 m/s is 252 km/h.
    pub max_speed_mps: f64,
    /// Movement up to this many meters is GPS jitter, whatever the time
    /// between the pings (two fixes in the same second can differ).
    pub jitter_m: f64,
}

impl Default for PingPolicy {
    fn default() -> Self {
        Self {
            max_future_skew: Duration::from_secs(10),
            max_age: Duration::from_secs(600),
            max_speed_mps: 70.0,
            jitter_m: 50.0,
        }
    }
}

/// The longest `max_age` or `max_future_skew` a policy may have: the
/// stored track lives 30 days, and time arithmetic stays far from overflow.
pub const MAX_PING_WINDOW: Duration = Duration::from_secs(30 * 24 * 3600);

impl PingPolicy {
    /// For configuration: the field named is the struct field.
    pub fn validate(&self) -> Result<(), FieldError> {
        if self.max_age.is_zero() || self.max_age > MAX_PING_WINDOW {
            return Err(FieldError::new("max_age", "must be more than 0 and at most 30 days"));
        }
        if self.max_future_skew > MAX_PING_WINDOW {
            return Err(FieldError::new("max_future_skew", "must be at most 30 days"));
        }
        // Written so that NaN fails too.
        if !(self.max_speed_mps.is_finite() && self.max_speed_mps > 0.0) {
            return Err(FieldError::new("max_speed_mps", "must be a number more than 0"));
        }
        if !(self.jitter_m.is_finite() && self.jitter_m >= 0.0) {
            return Err(FieldError::new("jitter_m", "must be a number, 0 or more"));
        }
        Ok(())
    }
}

/// How far past the driver's highest known seq a ping's seq may be. Seqs go
/// up by one per ping, so a bigger jump is a bug; taking it (or covering it
/// by the durable watermark) would make every later ping a duplicate.
pub const MAX_SEQ_JUMP: u64 = 1_000_000;

/// Refuses a seq more than [`MAX_SEQ_JUMP`] past `highest_known`.
pub fn check_seq_jump(highest_known: u64, seq: u64) -> Result<(), PingRejection> {
    if seq > highest_known.saturating_add(MAX_SEQ_JUMP) {
        return Err(PingRejection::InvalidField(
            "seq is more than 1,000,000 past the driver's last one; seqs go up by 1 per ping",
        ));
    }
    Ok(())
}

/// A ping as the app sent it, not yet trusted.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RawPing {
    pub seq: u64,
    pub lat: f64,
    pub lng: f64,
    pub accuracy_m: Option<f32>,
    pub speed_mps: Option<f32>,
    pub heading_deg: Option<f32>,
    pub recorded_at: Option<DateTime<Utc>>,
}

/// A ping that passed every check.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Ping {
    pub seq: u64,
    pub position: LatLng,
    pub accuracy_m: Option<f32>,
    pub speed_mps: Option<f32>,
    pub heading_deg: Option<f32>,
    pub recorded_at: DateTime<Utc>,
}

/// Why a ping was not accepted. Mirrors `PingRejectionReason` in the contract.
#[derive(Debug, Clone, Copy, PartialEq, thiserror::Error)]
pub enum PingRejection {
    #[error("coordinates out of range")]
    CoordinatesOutOfRange,
    #[error("recorded_at is ahead of the server's clock by more than the allowed skew")]
    TimestampInFuture,
    #[error("recorded_at is too old")]
    TimestampTooOld,
    #[error("the distance from the previous ping implies {speed_mps:.0} m/s")]
    ImpossibleSpeed { speed_mps: f64 },
    #[error("a ping with this seq was already received")]
    DuplicateSeq,
    #[error("recorded_at is not later than the previous ping's")]
    OutOfOrder,
    #[error("{0}")]
    InvalidField(&'static str),
}

/// Checks `raw` against the driver's last accepted ping, at server time `now`.
pub fn check(
    policy: &PingPolicy,
    last: Option<&Ping>,
    raw: &RawPing,
    now: DateTime<Utc>,
) -> Result<Ping, PingRejection> {
    if raw.seq == 0 || raw.seq > i64::MAX as u64 {
        return Err(PingRejection::InvalidField("seq must be between 1 and 2^63 - 1"));
    }
    if last.is_some_and(|last| raw.seq <= last.seq) {
        return Err(PingRejection::DuplicateSeq);
    }
    let recorded_at = raw.recorded_at.ok_or(PingRejection::InvalidField("recorded_at is required"))?;
    let position = LatLng::new(raw.lat, raw.lng).map_err(|_| PingRejection::CoordinatesOutOfRange)?;
    if raw.accuracy_m.is_some_and(|a| !(a.is_finite() && a >= 0.0)) {
        return Err(PingRejection::InvalidField("accuracy_m must be a non-negative number"));
    }
    if raw.speed_mps.is_some_and(|s| !(s.is_finite() && s >= 0.0)) {
        return Err(PingRejection::InvalidField("speed_mps must be a non-negative number"));
    }
    if raw.heading_deg.is_some_and(|h| !(h.is_finite() && (0.0..360.0).contains(&h))) {
        return Err(PingRejection::InvalidField("heading_deg must be in 0..360"));
    }
    if recorded_at > now + policy.max_future_skew {
        return Err(PingRejection::TimestampInFuture);
    }
    if recorded_at < now - policy.max_age {
        return Err(PingRejection::TimestampTooOld);
    }
    if let Some(last) = last {
        // Strictly later: the time series keeps one row per driver and
        // millisecond, so an equal time would overwrite the previous fix.
        if recorded_at <= last.recorded_at {
            return Err(PingRejection::OutOfOrder);
        }
        let moved_m = distance_m(last.position, position);
        if moved_m > policy.jitter_m {
            let elapsed_s = (recorded_at - last.recorded_at).as_seconds_f64();
            let speed_mps = if elapsed_s > 0.0 { moved_m / elapsed_s } else { f64::INFINITY };
            if speed_mps > policy.max_speed_mps {
                return Err(PingRejection::ImpossibleSpeed { speed_mps });
            }
        }
    }
    Ok(Ping {
        seq: raw.seq,
        position,
        accuracy_m: raw.accuracy_m,
        speed_mps: raw.speed_mps,
        heading_deg: raw.heading_deg,
        recorded_at,
    })
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-11-22T12:00:00Z").unwrap().with_timezone(&Utc)
    }

    #[test]
    fn a_seq_may_jump_at_most_max_seq_jump_past_the_highest_known() {
        assert!(check_seq_jump(0, MAX_SEQ_JUMP).is_ok());
        assert!(check_seq_jump(0, MAX_SEQ_JUMP + 1).is_err());
        assert!(check_seq_jump(u64::MAX - 1, u64::MAX).is_ok(), "no overflow near the top");
    }

    #[test]
    fn the_default_policy_is_valid_and_bad_ones_name_their_field() {
        PingPolicy::default().validate().unwrap();
        let bad = [
            ("max_age", PingPolicy { max_age: Duration::ZERO, ..PingPolicy::default() }),
            ("max_age", PingPolicy { max_age: Duration::from_secs(u64::MAX), ..PingPolicy::default() }),
            ("max_future_skew", PingPolicy { max_future_skew: MAX_PING_WINDOW * 2, ..PingPolicy::default() }),
            ("max_speed_mps", PingPolicy { max_speed_mps: f64::NAN, ..PingPolicy::default() }),
            ("jitter_m", PingPolicy { jitter_m: -1.0, ..PingPolicy::default() }),
        ];
        for (field, policy) in bad {
            assert_eq!(policy.validate().unwrap_err().field, field);
        }
    }

    fn raw(seq: u64, lat: f64, lng: f64, seconds_ago: i64) -> RawPing {
        RawPing {
            seq,
            lat,
            lng,
            accuracy_m: Some(5.0),
            speed_mps: Some(8.0),
            heading_deg: Some(90.0),
            recorded_at: Some(now() - chrono::TimeDelta::seconds(seconds_ago)),
        }
    }

    fn accepted(seq: u64, lat: f64, lng: f64, seconds_ago: i64) -> Ping {
        check(&PingPolicy::default(), None, &raw(seq, lat, lng, seconds_ago), now()).unwrap()
    }

    /// Meters of latitude.
    fn north(m: f64) -> f64 {
        48.85 + m / 111_195.0
    }

    #[test]
    fn a_plausible_ping_is_accepted() {
        let last = accepted(1, north(0.0), 2.35, 10);
        let ping = check(&PingPolicy::default(), Some(&last), &raw(2, north(100.0), 2.35, 5), now()).unwrap();
        assert_eq!(ping.seq, 2);
    }

    #[test]
    fn each_rejection_has_its_reason() {
        let policy = PingPolicy::default();
        let last = accepted(5, north(0.0), 2.35, 20);
        let check = |raw: RawPing| check(&policy, Some(&last), &raw, now());
        assert_eq!(check(raw(6, 91.0, 2.35, 5)), Err(PingRejection::CoordinatesOutOfRange));
        assert_eq!(check(raw(6, f64::NAN, 2.35, 5)), Err(PingRejection::CoordinatesOutOfRange));
        assert_eq!(check(raw(6, north(0.0), 2.35, -11)), Err(PingRejection::TimestampInFuture));
        assert_eq!(check(raw(6, north(0.0), 2.35, 601)), Err(PingRejection::TimestampTooOld));
        assert_eq!(check(raw(5, north(0.0), 2.35, 5)), Err(PingRejection::DuplicateSeq));
        assert_eq!(check(raw(3, north(0.0), 2.35, 5)), Err(PingRejection::DuplicateSeq));
        assert_eq!(check(raw(6, north(0.0), 2.35, 30)), Err(PingRejection::OutOfOrder));
        // 2 km in 10 s is 200 m/s.
        assert!(
            matches!(check(raw(6, north(2_000.0), 2.35, 10)), Err(PingRejection::ImpossibleSpeed { speed_mps }) if speed_mps > 190.0)
        );
        assert!(matches!(check(raw(0, north(0.0), 2.35, 5)), Err(PingRejection::InvalidField(_))));
        assert!(matches!(
            check(RawPing { recorded_at: None, ..raw(6, north(0.0), 2.35, 5) }),
            Err(PingRejection::InvalidField(_))
        ));
        assert!(matches!(
            check(RawPing { heading_deg: Some(360.0), ..raw(6, north(0.0), 2.35, 5) }),
            Err(PingRejection::InvalidField(_))
        ));
        assert!(matches!(
            check(RawPing { accuracy_m: Some(-1.0), ..raw(6, north(0.0), 2.35, 5) }),
            Err(PingRejection::InvalidField(_))
        ));
        assert!(matches!(
            check(RawPing { speed_mps: Some(f32::NAN), ..raw(6, north(0.0), 2.35, 5) }),
            Err(PingRejection::InvalidField(_))
        ));
    }

    #[test]
    fn jitter_within_a_second_is_not_speed() {
        let last = accepted(1, north(0.0), 2.35, 6);
        assert!(check(&PingPolicy::default(), Some(&last), &raw(2, north(45.0), 2.35, 5), now()).is_ok());
        assert!(matches!(
            check(&PingPolicy::default(), Some(&last), &raw(2, north(80.0), 2.35, 5), now()),
            Err(PingRejection::ImpossibleSpeed { .. })
        ));
        assert_eq!(
            check(&PingPolicy::default(), Some(&last), &raw(2, north(1.0), 2.35, 6), now()),
            Err(PingRejection::OutOfOrder),
            "the same instant twice"
        );
    }

    #[test]
    fn the_limits_hold_at_their_edges() {
        let policy = PingPolicy::default();
        assert!(check(&policy, None, &raw(1, north(0.0), 2.35, -10), now()).is_ok());
        assert!(check(&policy, None, &raw(1, north(0.0), 2.35, 600), now()).is_ok());
        let last = accepted(1, north(0.0), 2.35, 20);
        // Just under and just over 70 m/s for 10 s.
        assert!(check(&policy, Some(&last), &raw(2, north(695.0), 2.35, 10), now()).is_ok());
        assert!(check(&policy, Some(&last), &raw(2, north(705.0), 2.35, 10), now()).is_err());
    }

    proptest! {
        #[test]
        fn anything_accepted_is_in_range_and_newer(
            lat in -100.0f64..100.0,
            lng in -200.0f64..200.0,
            age in -30i64..1000,
            seq in 0u64..10,
        ) {
            let last = accepted(3, north(0.0), 2.35, 600);
            if let Ok(ping) = check(&PingPolicy::default(), Some(&last), &raw(seq, lat, lng, age), now()) {
                prop_assert!(ping.seq > last.seq);
                prop_assert!(ping.recorded_at > last.recorded_at);
                prop_assert!((-90.0..=90.0).contains(&ping.position.lat));
                prop_assert!((-180.0..=180.0).contains(&ping.position.lng));
                prop_assert!(ping.recorded_at <= now() + chrono::TimeDelta::seconds(10));
            }
        }
    }
}
