//! A restaurant as the marketplace sees it: where it is, when it is open,
//! how far it delivers and how long it takes.

use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::address::Address;
use crate::hours::OpeningHours;
use crate::money::{AMOUNT_DECIMALS, Currency};
use crate::pricing::RestaurantTerms;
use crate::validation::{FieldError, length_between};

/// The delivery radius a restaurant may set, in meters.
pub const MIN_DELIVERY_RADIUS_M: u32 = 500;
pub const MAX_DELIVERY_RADIUS_M: u32 = 30_000;
/// Longest average preparation time.
pub const MAX_PREP_TIME: Duration = Duration::from_secs(4 * 3600);

/// Checks the preparation time staff give for one order (`field`): 1 minute
/// to 3 hours from now.
pub fn order_prep_time(field: &str, prep_time: Duration) -> Result<Duration, FieldError> {
    if (Duration::from_secs(60)..=Duration::from_secs(3 * 3600)).contains(&prep_time) {
        Ok(prep_time)
    } else {
        Err(FieldError::new(field, "must be 1 minute to 3 hours"))
    }
}
pub const MAX_CUISINES: usize = 10;
pub const MAX_NAME_LEN: usize = 120;

/// What a restaurant's staff or an admin edit.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RestaurantProfile {
    pub name: String,
    pub phone: String,
    pub address: Address,
    /// Lowercase cuisine tags, e.g. `pizza`.
    pub cuisines: Vec<String>,
    pub time_zone: chrono_tz::Tz,
    pub opening_hours: OpeningHours,
    pub delivery_radius_m: u32,
    pub prep_time: Duration,
    pub currency: Currency,
    /// Temporarily not taking orders.
    pub paused: bool,
}

impl RestaurantProfile {
    /// Checks the fields a constructor cannot, naming the field under
    /// `profile.`.
    pub fn validate(&self) -> Result<(), FieldError> {
        length_between("profile.name", self.name.trim(), 1..=MAX_NAME_LEN)?;
        if self.cuisines.is_empty() || self.cuisines.len() > MAX_CUISINES {
            return Err(FieldError::new("profile.cuisines", format!("must list 1 to {MAX_CUISINES} cuisines")));
        }
        if let Some(bad) = self.cuisines.iter().find(|c| !is_cuisine_tag(c)) {
            return Err(FieldError::new(
                "profile.cuisines",
                format!("{bad:?} is not a cuisine tag (lowercase letters, digits, '-' or '_', at most 40)"),
            ));
        }
        if !(MIN_DELIVERY_RADIUS_M..=MAX_DELIVERY_RADIUS_M).contains(&self.delivery_radius_m) {
            return Err(FieldError::new(
                "profile.delivery_radius_m",
                format!("must be {MIN_DELIVERY_RADIUS_M} to {MAX_DELIVERY_RADIUS_M} meters"),
            ));
        }
        let digits = self.currency.minor_unit_digits();
        if digits != AMOUNT_DECIMALS {
            return Err(FieldError::new(
                "profile.currency_code",
                format!(
                    "{} has {digits} decimal places; prices are kept to {AMOUNT_DECIMALS} (EUR, USD, GBP, PKR, ...)",
                    self.currency
                ),
            ));
        }
        if self.prep_time > MAX_PREP_TIME {
            return Err(FieldError::new("profile.average_prep_time", "must be at most 4 hours"));
        }
        self.opening_hours.validate().map_err(|err| FieldError::new("profile.opening_hours", err.to_string()))
    }

    /// Whether an order placed at `at` is taken: not paused and within the
    /// opening hours in the restaurant's own time zone.
    pub fn is_open(&self, at: DateTime<Utc>) -> bool {
        !self.paused && self.opening_hours.is_open(self.time_zone, at)
    }

    /// What pricing needs to know of the restaurant.
    pub fn terms(&self) -> RestaurantTerms {
        RestaurantTerms {
            location: self.address.location,
            delivery_radius_m: self.delivery_radius_m,
            prep_time: self.prep_time,
            currency: self.currency,
        }
    }
}

/// Normalizes a cuisine filter or tag: trimmed and lowercased.
pub fn normalize_cuisine(tag: &str) -> String {
    tag.trim().to_lowercase()
}

fn is_cuisine_tag(tag: &str) -> bool {
    !tag.is_empty()
        && tag.len() <= 40
        && tag.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hours::OpeningHours;

    fn profile() -> RestaurantProfile {
        RestaurantProfile {
            name: "Chez Lulu".into(),
            phone: "+33123456789".into(),
            address: Address::new("profile.address", Some((48.85, 2.35)), "1 rue de Rivoli, Paris", "").unwrap(),
            cuisines: vec!["french".into()],
            time_zone: chrono_tz::Europe::Paris,
            opening_hours: OpeningHours(vec![]),
            delivery_radius_m: 5_000,
            prep_time: Duration::from_secs(900),
            currency: Currency::new("EUR").unwrap(),
            paused: false,
        }
    }

    fn field_refused(change: impl FnOnce(&mut RestaurantProfile)) -> String {
        let mut profile = profile();
        change(&mut profile);
        profile.validate().expect_err("the change should be refused").field
    }

    #[test]
    fn a_profile_within_every_bound_is_valid() {
        assert_eq!(profile().validate(), Ok(()));
        let mut edges = profile();
        edges.name = "é".repeat(MAX_NAME_LEN);
        edges.delivery_radius_m = MIN_DELIVERY_RADIUS_M;
        edges.cuisines = (0..MAX_CUISINES).map(|n| format!("cuisine-{n}")).collect();
        edges.prep_time = MAX_PREP_TIME;
        assert_eq!(edges.validate(), Ok(()));
        edges.delivery_radius_m = MAX_DELIVERY_RADIUS_M;
        assert_eq!(edges.validate(), Ok(()));
    }

    #[test]
    fn each_bound_names_its_field() {
        assert_eq!(field_refused(|p| p.name = " ".into()), "profile.name");
        assert_eq!(field_refused(|p| p.name = "x".repeat(MAX_NAME_LEN + 1)), "profile.name");
        assert_eq!(field_refused(|p| p.name = "Chez\0Lulu".into()), "profile.name");
        assert_eq!(field_refused(|p| p.cuisines.clear()), "profile.cuisines");
        assert_eq!(field_refused(|p| p.cuisines = vec!["Pizza".into()]), "profile.cuisines");
        assert_eq!(
            field_refused(|p| p.cuisines = (0..=MAX_CUISINES).map(|n| format!("c{n}")).collect()),
            "profile.cuisines"
        );
        assert_eq!(field_refused(|p| p.delivery_radius_m = MIN_DELIVERY_RADIUS_M - 1), "profile.delivery_radius_m");
        assert_eq!(field_refused(|p| p.delivery_radius_m = MAX_DELIVERY_RADIUS_M + 1), "profile.delivery_radius_m");
        assert_eq!(
            field_refused(|p| p.prep_time = MAX_PREP_TIME + Duration::from_secs(1)),
            "profile.average_prep_time"
        );
    }
}
