//! Cities are configured zones. A driver's pings are filed under the zone
//! they fall in; one outside every zone is kept under [`UNZONED`], never
//! dropped.

use serde::{Deserialize, Serialize};

use crate::geo::LatLng;

/// Where pings outside every zone are filed.
pub const UNZONED: &str = "unzoned";

/// A city as a latitude/longitude box.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Zone {
    /// Lowercase letters, digits and `-`: it names Redis keys and Scylla partitions.
    pub name: String,
    pub south: f64,
    pub west: f64,
    pub north: f64,
    pub east: f64,
}

impl Zone {
    fn contains(&self, p: LatLng) -> bool {
        (self.south..=self.north).contains(&p.lat) && (self.west..=self.east).contains(&p.lng)
    }
}

/// The configured zones, in the order they are tried.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Zones(pub Vec<Zone>);

impl Zones {
    /// The first zone containing `p`, or [`UNZONED`].
    pub fn city_of(&self, p: LatLng) -> &str {
        self.0.iter().find(|zone| zone.contains(p)).map_or(UNZONED, |zone| zone.name.as_str())
    }

    pub fn validate(&self) -> Result<(), String> {
        for zone in &self.0 {
            let name_ok = !zone.name.is_empty()
                && zone.name.len() <= 40
                && zone.name != UNZONED
                && zone.name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
            if !name_ok {
                return Err(format!(
                    "zone name {:?} must be 1 to 40 lowercase letters, digits or '-', and not {UNZONED:?}",
                    zone.name
                ));
            }
            let corners_ok = LatLng::new(zone.south, zone.west).is_ok()
                && LatLng::new(zone.north, zone.east).is_ok()
                && zone.south < zone.north
                && zone.west < zone.east;
            if !corners_ok {
                return Err(format!("zone {:?} needs south < north and west < east, within range", zone.name));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paris() -> Zone {
        Zone { name: "paris".into(), south: 48.7, west: 2.1, north: 49.0, east: 2.6 }
    }

    #[test]
    fn a_point_is_filed_under_its_zone_or_unzoned() {
        let zones = Zones(vec![paris(), Zone { name: "lyon".into(), south: 45.6, west: 4.7, north: 45.9, east: 5.0 }]);
        assert_eq!(zones.city_of(LatLng::new(48.85, 2.35).unwrap()), "paris");
        assert_eq!(zones.city_of(LatLng::new(45.76, 4.83).unwrap()), "lyon");
        assert_eq!(zones.city_of(LatLng::new(0.0, 0.0).unwrap()), UNZONED);
        assert_eq!(Zones::default().city_of(LatLng::new(48.85, 2.35).unwrap()), UNZONED);
    }

    #[test]
    fn zones_are_validated() {
        assert!(Zones(vec![paris()]).validate().is_ok());
        let bad_name = Zone { name: "Paris!".into(), ..paris() };
        let inverted = Zone { south: 49.0, north: 48.7, ..paris() };
        let reserved = Zone { name: UNZONED.into(), ..paris() };
        for zone in [bad_name, inverted, reserved] {
            assert!(Zones(vec![zone]).validate().is_err());
        }
    }
}
