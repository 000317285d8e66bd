//! System-wide announcements: who they are addressed to, how long they are in
//! force, and what a publisher may write.

use chrono::{DateTime, TimeDelta, Utc};
use uuid::Uuid;

use crate::access::Role;
use crate::validation::{FieldError, max_len, non_empty};

pub const MAX_TITLE_CHARS: usize = 200;
pub const MAX_BODY_CHARS: usize = 5_000;
pub const MAX_CITY_CHARS: usize = 100;
/// The longest an announcement may stay in force.
pub const MAX_LIFETIME: TimeDelta = TimeDelta::days(30);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    Info,
    Warning,
    Critical,
}

names!(Severity { Info => "info", Warning => "warning", Critical => "critical" });

/// What a publisher asks to announce.
#[derive(Debug, Clone, PartialEq)]
pub struct NewAnnouncement {
    pub title: String,
    pub body: String,
    pub severity: Severity,
    /// Roles it is addressed to; empty: everyone, anonymous callers included.
    pub audience: Vec<Role>,
    /// The city (zone) it concerns; empty: every city.
    pub city: String,
    pub expires_at: DateTime<Utc>,
}

impl NewAnnouncement {
    /// Checks the texts' lengths and that it expires in the future, within
    /// [`MAX_LIFETIME`] of `now`. Titles, bodies and cities are trimmed.
    pub fn validated(mut self, now: DateTime<Utc>) -> Result<Self, FieldError> {
        self.title = self.title.trim().to_owned();
        self.body = self.body.trim().to_owned();
        self.city = self.city.trim().to_owned();
        non_empty("title", &self.title)?;
        max_len("title", &self.title, MAX_TITLE_CHARS)?;
        non_empty("body", &self.body)?;
        max_len("body", &self.body, MAX_BODY_CHARS)?;
        max_len("city", &self.city, MAX_CITY_CHARS)?;
        if self.expires_at <= now {
            return Err(FieldError::new("expires_at", "must be in the future"));
        }
        if self.expires_at > now + MAX_LIFETIME {
            return Err(FieldError::new("expires_at", "must be at most 30 days ahead"));
        }
        let mut seen = Vec::with_capacity(self.audience.len());
        self.audience.retain(|role| {
            let first = !seen.contains(role);
            seen.push(*role);
            first
        });
        Ok(self)
    }
}

/// A published announcement. `seq` orders publications across replicas: it
/// is the watchers' resume cursor.
#[derive(Debug, Clone, PartialEq)]
pub struct Announcement {
    pub id: Uuid,
    pub seq: i64,
    pub title: String,
    pub body: String,
    pub severity: Severity,
    pub audience: Vec<Role>,
    pub city: String,
    pub published_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

impl Announcement {
    /// Whether a caller of `role` (`None`: anonymous) receives it.
    pub fn addressed_to(&self, role: Option<Role>) -> bool {
        self.audience.is_empty() || role.is_some_and(|role| self.audience.contains(&role))
    }

    pub fn in_force(&self, now: DateTime<Utc>) -> bool {
        self.expires_at > now
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The domain has no clock: tests pick their own now.
    fn now() -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000, 0).unwrap()
    }

    fn new(now: DateTime<Utc>) -> NewAnnouncement {
        NewAnnouncement {
            title: "  Delays in Paris ".into(),
            body: "Heavy rain: deliveries take longer.".into(),
            severity: Severity::Warning,
            audience: vec![Role::Customer, Role::Driver, Role::Customer],
            city: "Paris".into(),
            expires_at: now + TimeDelta::hours(2),
        }
    }

    #[test]
    fn a_valid_announcement_is_trimmed_and_its_audience_deduplicated() {
        let now = now();
        let valid = new(now).validated(now).unwrap();
        assert_eq!(valid.title, "Delays in Paris");
        assert_eq!(valid.audience, [Role::Customer, Role::Driver]);
    }

    #[test]
    fn each_field_is_checked_and_named() {
        let now = now();
        let field = |change: fn(&mut NewAnnouncement, DateTime<Utc>)| {
            let mut announcement = new(now);
            change(&mut announcement, now);
            announcement.validated(now).unwrap_err().field
        };
        assert_eq!(field(|a, _| a.title = " ".into()), "title");
        assert_eq!(field(|a, _| a.title = "x".repeat(MAX_TITLE_CHARS + 1)), "title");
        assert_eq!(field(|a, _| a.body = String::new()), "body");
        assert_eq!(field(|a, _| a.body = "é".repeat(MAX_BODY_CHARS + 1)), "body");
        assert_eq!(field(|a, _| a.city = "c".repeat(MAX_CITY_CHARS + 1)), "city");
        assert_eq!(field(|a, _| a.body = "a\0b".into()), "body");
        assert_eq!(field(|a, now| a.expires_at = now), "expires_at");
        assert_eq!(field(|a, now| a.expires_at = now + MAX_LIFETIME + TimeDelta::seconds(1)), "expires_at");
        let mut longest = new(now);
        longest.title = "é".repeat(MAX_TITLE_CHARS);
        longest.expires_at = now + MAX_LIFETIME;
        assert!(longest.validated(now).is_ok(), "the limits themselves are allowed");
    }

    #[test]
    fn an_audience_of_roles_excludes_anonymous_callers_and_an_empty_one_includes_everyone() {
        let now = now();
        let mut announcement = Announcement {
            id: Uuid::new_v4(),
            seq: 1,
            title: "t".into(),
            body: "b".into(),
            severity: Severity::Info,
            audience: vec![Role::Driver],
            city: String::new(),
            published_at: now,
            expires_at: now + TimeDelta::minutes(1),
        };
        assert!(announcement.addressed_to(Some(Role::Driver)));
        assert!(!announcement.addressed_to(Some(Role::Customer)));
        assert!(!announcement.addressed_to(None));
        announcement.audience.clear();
        assert!(announcement.addressed_to(None) && announcement.addressed_to(Some(Role::Admin)));
        assert!(announcement.in_force(now) && !announcement.in_force(now + TimeDelta::minutes(1)));
    }

    #[test]
    fn severities_read_back() {
        for severity in [Severity::Info, Severity::Warning, Severity::Critical] {
            assert_eq!(Severity::parse(severity.as_str()), Some(severity));
        }
        assert_eq!(Severity::parse("panic"), None);
    }
}
