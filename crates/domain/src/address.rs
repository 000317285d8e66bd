//! Where something is: a validated point plus the words a person needs to
//! find it.

use serde::{Deserialize, Serialize};

use crate::geo::LatLng;
use crate::validation::{FieldError, no_nul};

/// Longest formatted address accepted.
pub const MAX_FORMATTED_CHARS: usize = 300;
/// Longest instructions for the driver accepted.
pub const MAX_INSTRUCTIONS_CHARS: usize = 500;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Address {
    pub location: LatLng,
    pub formatted: String,
    pub instructions: String,
}

impl Address {
    /// Builds an address, naming fields under `prefix` (e.g. `delivery_address`)
    /// in errors.
    pub fn new(
        prefix: &str,
        location: Option<(f64, f64)>,
        formatted: &str,
        instructions: &str,
    ) -> Result<Self, FieldError> {
        let (lat, lng) = location.ok_or_else(|| FieldError::new(format!("{prefix}.location"), "is required"))?;
        let location =
            LatLng::new(lat, lng).map_err(|err| FieldError::new(format!("{prefix}.location"), err.to_string()))?;
        let formatted = formatted.trim();
        if formatted.is_empty() {
            return Err(FieldError::new(format!("{prefix}.formatted"), "is required"));
        }
        for (field, text, max) in
            [("formatted", formatted, MAX_FORMATTED_CHARS), ("instructions", instructions, MAX_INSTRUCTIONS_CHARS)]
        {
            let field = format!("{prefix}.{field}");
            no_nul(&field, text)?;
            if text.chars().count() > max {
                return Err(FieldError::new(field, format!("must be at most {max} characters")));
            }
        }
        Ok(Self { location, formatted: formatted.to_string(), instructions: instructions.trim().to_string() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn address(formatted: &str, instructions: &str) -> Result<Address, FieldError> {
        Address::new("delivery_address", Some((48.85, 2.35)), formatted, instructions)
    }

    #[test]
    fn texts_are_trimmed_and_bounded_each_by_its_own_limit() {
        let kept = address("  12 Main St  ", " ring twice ").unwrap();
        assert_eq!((kept.formatted.as_str(), kept.instructions.as_str()), ("12 Main St", "ring twice"));
        assert!(address(&"é".repeat(MAX_FORMATTED_CHARS), &"é".repeat(MAX_INSTRUCTIONS_CHARS)).is_ok());

        let long = address(&"x".repeat(MAX_FORMATTED_CHARS + 1), "").unwrap_err();
        assert_eq!(
            (long.field.as_str(), long.message.as_str()),
            ("delivery_address.formatted", "must be at most 300 characters")
        );
        let long = address("12 Main St", &"x".repeat(MAX_INSTRUCTIONS_CHARS + 1)).unwrap_err();
        assert_eq!(long.field, "delivery_address.instructions");
        assert_eq!(address("   ", "").unwrap_err().field, "delivery_address.formatted");
        assert_eq!(address("12 Main\0St", "").unwrap_err().field, "delivery_address.formatted");
        assert_eq!(address("12 Main St", "gate\0").unwrap_err().field, "delivery_address.instructions");
    }

    #[test]
    fn the_location_is_required_and_in_range() {
        let missing = Address::new("pickup", None, "12 Main St", "").unwrap_err();
        assert_eq!((missing.field.as_str(), missing.message.as_str()), ("pickup.location", "is required"));
        let outside = Address::new("pickup", Some((91.0, 0.0)), "12 Main St", "").unwrap_err();
        assert_eq!(outside.field, "pickup.location");
    }
}
