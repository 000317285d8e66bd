//! Opening hours in the restaurant's local wall-clock time.
//!
//! A period opens on `day` at `opens` and closes at `closes` the same day, or the next day when
//! `closes <= opens` (22:00–02:00 runs past midnight; 09:00–09:00 is 24 hours). [`OpeningHours::is_open`]
//! compares wall-clock times in the restaurant's zone, so a period means what its sign on the door
//! says on DST days too: 22:00–02:00 is open until 02:00 local time, whether the night is 23, 24 or
//! 25 hours long.

use std::fmt;

use chrono::{DateTime, Datelike, NaiveTime, Timelike, Utc, Weekday};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

use crate::validation::excerpt;

/// More periods than this is a data-entry mistake: six a day, every day.
pub const MAX_PERIODS: usize = 42;

const DAY_S: u32 = 24 * 60 * 60;
const WEEK_S: u32 = 7 * DAY_S;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HoursError {
    #[error("\"{}\" is not a time of day: use HH:MM from 00:00 to 23:59", excerpt(.0))]
    InvalidTime(String),
    #[error("unknown time zone \"{}\": use an IANA name such as Europe/Paris", excerpt(.0))]
    UnknownTimeZone(String),
    #[error("{count} opening periods are too many: at most {max} are allowed", max = MAX_PERIODS)]
    TooManyPeriods { count: usize },
    #[error("opening periods {0} and {1} overlap")]
    Overlap(OpeningPeriod, OpeningPeriod),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpeningPeriod {
    pub day: Weekday,
    pub opens: NaiveTime,
    pub closes: NaiveTime,
}

impl OpeningPeriod {
    /// Where the period starts, in seconds from Monday 00:00, and how many seconds it lasts.
    fn span(&self) -> (u32, u32) {
        let (opens, closes) = (self.opens.num_seconds_from_midnight(), self.closes.num_seconds_from_midnight());
        let start = self.day.num_days_from_monday() * DAY_S + opens;
        let length = if closes > opens { closes - opens } else { DAY_S - opens + closes };
        (start, length)
    }

    /// Whether the wall-clock second of the week `at` falls in the period; Sunday night periods wrap
    /// into Monday.
    fn contains(&self, at: u32) -> bool {
        let (start, length) = self.span();
        (at + WEEK_S - start) % WEEK_S < length
    }
}

impl fmt::Display for OpeningPeriod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}–{}", self.day, self.opens.format("%H:%M"), self.closes.format("%H:%M"))
    }
}

/// A week of opening periods. No periods: never open.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpeningHours(pub Vec<OpeningPeriod>);

impl OpeningHours {
    /// At most [`MAX_PERIODS`], and no two overlapping (a typo such as 11:00–15:00 next to
    /// 14:00–22:00 is refused rather than merged).
    pub fn validate(&self) -> Result<(), HoursError> {
        if self.0.len() > MAX_PERIODS {
            return Err(HoursError::TooManyPeriods { count: self.0.len() });
        }
        let mut periods: Vec<_> = self.0.iter().map(|period| (period.span(), period)).collect();
        periods.sort_by_key(|&(span, _)| span);
        // Sorted by start and each shorter than a week, a period that overlaps any other overlaps
        // the next one; the last may run past Sunday midnight into the first.
        let next = periods.iter().skip(1).chain(periods.first().filter(|_| periods.len() > 1));
        for (&((start, length), period), &((next_start, _), next)) in periods.iter().zip(next) {
            let next_start = if next_start < start { next_start + WEEK_S } else { next_start };
            if start + length > next_start {
                return Err(HoursError::Overlap(*period, *next));
            }
        }
        Ok(())
    }

    /// Whether the restaurant is open at the instant `at`, read on the wall clock of `tz`.
    pub fn is_open(&self, tz: Tz, at: DateTime<Utc>) -> bool {
        let local = at.with_timezone(&tz);
        let second_of_week = local.weekday().num_days_from_monday() * DAY_S + local.num_seconds_from_midnight();
        self.0.iter().any(|period| period.contains(second_of_week))
    }
}

/// Parses an IANA time zone name such as "Europe/Paris" (case as in the database).
pub fn parse_time_zone(s: &str) -> Result<Tz, HoursError> {
    s.parse().map_err(|_| HoursError::UnknownTimeZone(s.to_owned()))
}

/// Parses "HH:MM", two digits each, 00:00 to 23:59. Midnight as a closing time is "00:00".
pub fn parse_time(s: &str) -> Result<NaiveTime, HoursError> {
    let two_digits =
        |hi: u8, lo: u8| (hi.is_ascii_digit() && lo.is_ascii_digit()).then(|| u32::from((hi - b'0') * 10 + lo - b'0'));
    let time = match *s.as_bytes() {
        [h1, h2, b':', m1, m2] => two_digits(h1, h2)
            .zip(two_digits(m1, m2))
            .and_then(|(hour, minute)| NaiveTime::from_hms_opt(hour, minute, 0)),
        _ => None,
    };
    time.ok_or_else(|| HoursError::InvalidTime(s.to_owned()))
}

#[cfg(test)]
mod tests {
    use chrono::{NaiveDate, TimeDelta, TimeZone};
    use proptest::prelude::*;

    use super::*;

    fn t(s: &str) -> NaiveTime {
        parse_time(s).unwrap()
    }

    fn period(day: Weekday, opens: &str, closes: &str) -> OpeningPeriod {
        OpeningPeriod { day, opens: t(opens), closes: t(closes) }
    }

    fn utc(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    const PARIS: Tz = chrono_tz::Europe::Paris;

    #[test]
    fn parse_time_takes_hh_mm() {
        assert_eq!(parse_time("00:00"), Ok(NaiveTime::MIN));
        assert_eq!(parse_time("09:05"), Ok(NaiveTime::from_hms_opt(9, 5, 0).unwrap()));
        assert_eq!(parse_time("23:59"), Ok(NaiveTime::from_hms_opt(23, 59, 0).unwrap()));
        for bad in ["", "9:05", "09:5", "0905", "24:00", "23:60", "09:05:00", " 9:05", "09-05", "+9:05", "٠٩:٠٥"] {
            assert_eq!(parse_time(bad), Err(HoursError::InvalidTime(bad.to_owned())), "{bad:?}");
        }
        assert_eq!(
            parse_time("24:00").unwrap_err().to_string(),
            "\"24:00\" is not a time of day: use HH:MM from 00:00 to 23:59"
        );
    }

    #[test]
    fn parse_time_zone_takes_iana_names() {
        assert_eq!(parse_time_zone("Europe/Paris"), Ok(PARIS));
        assert_eq!(parse_time_zone("UTC"), Ok(chrono_tz::UTC));
        assert_eq!(
            parse_time_zone("Mars/Olympus").unwrap_err().to_string(),
            "unknown time zone \"Mars/Olympus\": use an IANA name such as Europe/Paris"
        );
    }

    #[test]
    fn open_from_opening_time_until_just_before_closing() {
        let hours = OpeningHours(vec![period(Weekday::Mon, "11:00", "15:00")]);
        // 2024-06-03 is a Monday; Paris is UTC+2 in summer.
        assert!(!hours.is_open(PARIS, utc("2024-06-03T08:59:59Z")));
        assert!(hours.is_open(PARIS, utc("2024-06-03T09:00:00Z")));
        assert!(hours.is_open(PARIS, utc("2024-06-03T12:59:59Z")));
        assert!(!hours.is_open(PARIS, utc("2024-06-03T13:00:00Z")));
        // Same wall-clock time on a Tuesday.
        assert!(!hours.is_open(PARIS, utc("2024-06-04T10:00:00Z")));
        // The same instant is 10:00 in London, before opening there.
        assert!(!hours.is_open(chrono_tz::Europe::London, utc("2024-06-03T09:00:00Z")));
    }

    #[test]
    fn a_period_closing_at_or_before_opening_runs_past_midnight() {
        let hours = OpeningHours(vec![period(Weekday::Fri, "22:00", "02:00")]);
        // Friday 2024-06-07 and the Saturday after, in winter-free UTC.
        let tz = chrono_tz::UTC;
        assert!(!hours.is_open(tz, utc("2024-06-07T21:59:00Z")));
        assert!(hours.is_open(tz, utc("2024-06-07T23:59:59Z")));
        assert!(hours.is_open(tz, utc("2024-06-08T01:59:59Z")));
        assert!(!hours.is_open(tz, utc("2024-06-08T02:00:00Z")));
        // Saturday 22:00 is not Friday.
        assert!(!hours.is_open(tz, utc("2024-06-08T22:30:00Z")));

        let sunday_night = OpeningHours(vec![period(Weekday::Sun, "20:00", "03:00")]);
        assert!(sunday_night.is_open(tz, utc("2024-06-10T02:30:00Z")), "wraps into Monday");
        assert!(!sunday_night.is_open(tz, utc("2024-06-10T03:00:00Z")));

        let midnight_close = OpeningHours(vec![period(Weekday::Sat, "18:00", "00:00")]);
        assert!(midnight_close.is_open(tz, utc("2024-06-08T23:59:59Z")));
        assert!(!midnight_close.is_open(tz, utc("2024-06-09T00:00:00Z")));
    }

    #[test]
    fn equal_opening_and_closing_means_24_hours() {
        let hours = OpeningHours(vec![period(Weekday::Tue, "09:00", "09:00")]);
        let tz = chrono_tz::UTC;
        assert!(!hours.is_open(tz, utc("2024-06-04T08:59:59Z")));
        assert!(hours.is_open(tz, utc("2024-06-04T09:00:00Z")));
        assert!(hours.is_open(tz, utc("2024-06-05T08:59:59Z")));
        assert!(!hours.is_open(tz, utc("2024-06-05T09:00:00Z")));
    }

    #[test]
    fn spring_forward_night_follows_the_wall_clock() {
        // Paris, 2024-03-31: 02:00 CET becomes 03:00 CEST at 01:00 UTC.
        let hours = OpeningHours(vec![period(Weekday::Sat, "22:00", "02:30"), period(Weekday::Sun, "02:45", "05:00")]);
        assert!(hours.is_open(PARIS, utc("2024-03-30T21:00:00Z")), "22:00 CET");
        assert!(hours.is_open(PARIS, utc("2024-03-31T00:59:59Z")), "01:59:59 CET");
        // 02:00-02:59 never happens: the first period ends at 01:00 UTC, the second is already open.
        assert!(hours.is_open(PARIS, utc("2024-03-31T01:00:00Z")), "03:00 CEST, inside 02:45-05:00");
        assert!(hours.is_open(PARIS, utc("2024-03-31T02:59:59Z")), "04:59:59 CEST");
        assert!(!hours.is_open(PARIS, utc("2024-03-31T03:00:00Z")), "05:00 CEST");
        let late = OpeningHours(vec![period(Weekday::Sat, "22:00", "02:30")]);
        assert!(!late.is_open(PARIS, utc("2024-03-31T01:00:00Z")), "03:00 CEST is past 02:30");
    }

    #[test]
    fn fall_back_night_follows_the_wall_clock() {
        // Paris, 2024-10-27: 03:00 CEST becomes 02:00 CET at 01:00 UTC, so 02:xx happens twice.
        let hours = OpeningHours(vec![period(Weekday::Sat, "22:00", "02:30")]);
        assert!(hours.is_open(PARIS, utc("2024-10-27T00:15:00Z")), "02:15 CEST");
        assert!(!hours.is_open(PARIS, utc("2024-10-27T00:45:00Z")), "02:45 CEST");
        // The sign on the door says 02:30, and the clock reads 02:15 again.
        assert!(hours.is_open(PARIS, utc("2024-10-27T01:15:00Z")), "02:15 CET");
        assert!(!hours.is_open(PARIS, utc("2024-10-27T01:30:00Z")), "02:30 CET");
    }

    #[test]
    fn no_periods_means_closed() {
        assert!(!OpeningHours::default().is_open(PARIS, utc("2024-06-03T12:00:00Z")));
        assert_eq!(OpeningHours::default().validate(), Ok(()));
    }

    #[test]
    fn validate_accepts_touching_periods() {
        let hours = OpeningHours(vec![
            period(Weekday::Mon, "15:00", "22:00"),
            period(Weekday::Mon, "11:00", "15:00"),
            period(Weekday::Mon, "22:00", "11:00"),
            period(Weekday::Sun, "11:00", "00:00"),
        ]);
        assert_eq!(hours.validate(), Ok(()));
        let days = [Weekday::Mon, Weekday::Tue, Weekday::Wed, Weekday::Thu, Weekday::Fri, Weekday::Sat, Weekday::Sun];
        let all_week = OpeningHours(days.map(|day| period(day, "00:00", "00:00")).to_vec());
        assert_eq!(all_week.validate(), Ok(()));
        assert!(all_week.is_open(PARIS, utc("2024-06-05T03:00:00Z")));
    }

    #[test]
    fn validate_refuses_overlaps_and_names_them() {
        let cases = [
            (period(Weekday::Mon, "11:00", "15:00"), period(Weekday::Mon, "14:00", "22:00")),
            (period(Weekday::Mon, "11:00", "15:00"), period(Weekday::Mon, "11:00", "12:00")),
            (period(Weekday::Mon, "22:00", "02:00"), period(Weekday::Tue, "01:00", "05:00")),
            (period(Weekday::Sun, "22:00", "02:00"), period(Weekday::Mon, "01:00", "05:00")),
            (period(Weekday::Wed, "09:00", "09:00"), period(Weekday::Thu, "08:00", "10:00")),
        ];
        for (a, b) in cases {
            for hours in [OpeningHours(vec![a, b]), OpeningHours(vec![b, a])] {
                assert!(matches!(hours.validate(), Err(HoursError::Overlap(..))), "{a} / {b}");
            }
        }
        let err = OpeningHours(vec![cases[0].0, cases[0].1]).validate().unwrap_err();
        assert_eq!(err.to_string(), "opening periods Mon 11:00–15:00 and Mon 14:00–22:00 overlap");
    }

    #[test]
    fn validate_caps_the_number_of_periods() {
        let many = OpeningHours(vec![period(Weekday::Mon, "00:00", "00:01"); MAX_PERIODS + 1]);
        assert_eq!(many.validate(), Err(HoursError::TooManyPeriods { count: 43 }));
    }

    #[test]
    fn hours_round_trip_through_json() {
        let hours = OpeningHours(vec![period(Weekday::Fri, "22:00", "02:00")]);
        let json = serde_json::to_string(&hours).unwrap();
        assert_eq!(serde_json::from_str::<OpeningHours>(&json).unwrap(), hours);
    }

    fn any_period() -> impl Strategy<Value = OpeningPeriod> {
        (0u8..7, 0u32..24 * 60, 0u32..24 * 60).prop_map(|(day, opens, closes)| OpeningPeriod {
            day: Weekday::try_from(day).unwrap(),
            opens: NaiveTime::from_hms_opt(opens / 60, opens % 60, 0).unwrap(),
            closes: NaiveTime::from_hms_opt(closes / 60, closes % 60, 0).unwrap(),
        })
    }

    proptest! {
        /// Against a second formulation: calendar arithmetic on the local date-time instead of
        /// seconds modulo a week.
        #[test]
        fn is_open_agrees_with_calendar_arithmetic(
            periods in prop::collection::vec(any_period(), 0..4),
            seconds in 1_600_000_000i64..1_900_000_000,
            zone in prop::sample::select(vec![PARIS, chrono_tz::America::New_York, chrono_tz::Asia::Kolkata, chrono_tz::UTC]),
        ) {
            let at = Utc.timestamp_opt(seconds, 0).unwrap();
            let local = at.with_timezone(&zone).naive_local();
            let expected = periods.iter().any(|p| {
                [local.date(), local.date() - TimeDelta::days(1)].into_iter().any(|date: NaiveDate| {
                    let length = if p.closes > p.opens { p.closes - p.opens } else { p.closes - p.opens + TimeDelta::days(1) };
                    let start = date.and_time(p.opens);
                    date.weekday() == p.day && start <= local && local < start + length
                })
            });
            prop_assert_eq!(OpeningHours(periods).is_open(zone, at), expected);
        }
    }
}
