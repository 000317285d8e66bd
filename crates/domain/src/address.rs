//! Where something is: a validated point plus the words a person needs to
//! find it.

use serde::{Deserialize, Serialize};

use crate::geo::LatLng;
use crate::validation::FieldError;

/// Longest formatted address or instruction text accepted.
pub const MAX_ADDRESS_TEXT: usize = 500;

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
        for (field, text) in [("formatted", formatted), ("instructions", instructions)] {
            if text.chars().count() > MAX_ADDRESS_TEXT {
                return Err(FieldError::new(
                    format!("{prefix}.{field}"),
                    format!("must be at most {MAX_ADDRESS_TEXT} characters"),
                ));
            }
        }
        Ok(Self { location, formatted: formatted.to_string(), instructions: instructions.trim().to_string() })
    }
}
