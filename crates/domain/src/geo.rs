//! Points, distances, travel times, and the H3 cells restaurants are indexed and searched by.
//!
//! Search is two-step: the store selects restaurants whose cell is in [`search_cells`] (an indexed
//! `IN` list), then keeps those whose exact [`distance_m`] is within the radius. The first step must
//! therefore never miss a restaurant; the property test at the bottom checks that it does not.

use std::time::Duration;

use h3o::{CellIndex, Resolution};
use serde::{Deserialize, Serialize};

/// Mean Earth radius (IUGG), the radius of the haversine formula.
pub const EARTH_RADIUS_M: f64 = 6_371_008.8;

/// The largest radius [`search_cells`] accepts.
pub const MAX_SEARCH_RADIUS_M: u32 = 50_000;

/// Up to this radius a search uses resolution 8 cells; above it, resolution 6.
pub const RES8_MAX_RADIUS_M: u32 = 2_000;

#[derive(Debug, Clone, Copy, PartialEq, thiserror::Error)]
pub enum GeoError {
    #[error("latitude {0} is out of range: it must be a number from -90 to 90")]
    Latitude(f64),
    #[error("longitude {0} is out of range: it must be a number from -180 to 180")]
    Longitude(f64),
    #[error("radius {radius_m} m is out of range: it must be from 1 to {max} m", max = MAX_SEARCH_RADIUS_M)]
    RadiusOutOfRange { radius_m: u32 },
}

/// A point in degrees (WGS 84). Build it with [`LatLng::new`] so the range is checked; the serde
/// derives are for stored rows, which were checked on the way in.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LatLng {
    pub lat: f64,
    pub lng: f64,
}

impl LatLng {
    pub fn new(lat: f64, lng: f64) -> Result<Self, GeoError> {
        // `contains` is false for NaN, and the infinities are outside the range.
        if !(-90.0..=90.0).contains(&lat) {
            return Err(GeoError::Latitude(lat));
        }
        if !(-180.0..=180.0).contains(&lng) {
            return Err(GeoError::Longitude(lng));
        }
        Ok(Self { lat, lng })
    }

    /// # Panics
    /// If a coordinate is not finite, which [`LatLng::new`] rules out.
    fn to_h3(self) -> h3o::LatLng {
        h3o::LatLng::new(self.lat, self.lng).expect("LatLng::new admits only finite coordinates")
    }
}

/// Great-circle distance in metres (haversine).
pub fn distance_m(a: LatLng, b: LatLng) -> f64 {
    let (lat_a, lat_b) = (a.lat.to_radians(), b.lat.to_radians());
    let half_dlat = (lat_b - lat_a) / 2.0;
    let half_dlng = (b.lng - a.lng).to_radians() / 2.0;
    let h = half_dlat.sin().powi(2) + lat_a.cos() * lat_b.cos() * half_dlng.sin().powi(2);
    // Rounding can push h a hair above 1 for antipodal points; asin would return NaN.
    2.0 * EARTH_RADIUS_M * h.sqrt().min(1.0).asin()
}

/// Time to cover `distance_m` at `speed_kmh`, rounded up to a whole second.
/// A speed that is not positive gives [`Duration::MAX`] rather than a panic.
pub fn travel_time(distance_m: f64, speed_kmh: f64) -> Duration {
    let seconds = (distance_m.max(0.0) * 3.6 / speed_kmh).ceil();
    Duration::try_from_secs_f64(seconds).unwrap_or(Duration::MAX)
}

/// The two H3 resolutions restaurants are indexed at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SearchResolution {
    /// Cells of about 36 km²: for wide searches.
    Res6,
    /// Cells of about 0.74 km²: for searches up to [`RES8_MAX_RADIUS_M`].
    Res8,
}

impl SearchResolution {
    pub const fn h3(self) -> Resolution {
        match self {
            Self::Res6 => Resolution::Six,
            Self::Res8 => Resolution::Eight,
        }
    }

    /// Lower bound on how far apart, per ring, the centres of two cells k rings apart are.
    ///
    /// In a hexagonal grid whose neighbouring centres are at least `s` apart, ring k lies on a hexagon
    /// whose sides are k·s·√3/2 from the centre. The smallest neighbour spacing over every cell of
    /// the globe, pentagons included, is 4482.6 m at res 6 and 640.1 m at res 8 (measured with h3o
    /// 0.11: all 14.1 M res-6 cells; 6.9 M res-8 cells sampled worldwide and all around the 12
    /// pentagons), so the bound is 3882 m and 554 m. The measured per-ring minimum is 4078 m and
    /// 582 m. The constants are rounded down from the bound.
    const fn min_ring_step_m(self) -> f64 {
        match self {
            Self::Res6 => 3_850.0,
            Self::Res8 => 550.0,
        }
    }

    /// Upper bound on the distance from a cell's centre to any point of the cell: its largest
    /// centre-to-vertex distance, measured as above (4096.2 m and 585.2 m), rounded up.
    const fn max_cell_radius_m(self) -> f64 {
        match self {
            Self::Res6 => 4_150.0,
            Self::Res8 => 600.0,
        }
    }

    /// The grid distance k whose disk around the centre's cell covers a circle of `radius_m`.
    ///
    /// A point p within r of the centre c lies in a cell whose centre is at most
    /// r + 2·max_cell_radius from the centre of c's cell, so that cell is at most
    /// ⌊(r + 2·max_cell_radius) / min_ring_step⌋ rings out. One more ring absorbs what the
    /// planar argument does not cover (curvature, the change of cell size across the disk).
    fn rings(self, radius_m: u32) -> u32 {
        let reach = f64::from(radius_m) + 2.0 * self.max_cell_radius_m();
        // Radii are capped, so this is at most 16: the cast cannot truncate.
        (reach / self.min_ring_step_m()).floor() as u32 + 1
    }

    fn cell(self, p: LatLng) -> i64 {
        cell_to_i64(p.to_h3().to_cell(self.h3()))
    }
}

/// A restaurant's cells, one per column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexCells {
    pub res6: i64,
    pub res8: i64,
}

/// The cells to store with a restaurant at `p`.
///
/// # Panics
/// If a coordinate is not finite, which [`LatLng::new`] rules out.
pub fn index_cells(p: LatLng) -> IndexCells {
    IndexCells { res6: SearchResolution::Res6.cell(p), res8: SearchResolution::Res8.cell(p) }
}

/// Cells whose union contains every point within `radius_m` of the centre.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchCells {
    /// Which of [`IndexCells`]' columns `cells` refers to.
    pub resolution: SearchResolution,
    pub cells: Vec<i64>,
}

/// The cells to look up for a search of `radius_m` around `center`: res 8 up to
/// [`RES8_MAX_RADIUS_M`] (at most 127 cells), res 6 above (37 cells at 2 km, 817 at 50 km).
///
/// # Panics
/// If a coordinate is not finite, which [`LatLng::new`] rules out.
pub fn search_cells(center: LatLng, radius_m: u32) -> Result<SearchCells, GeoError> {
    if !(1..=MAX_SEARCH_RADIUS_M).contains(&radius_m) {
        return Err(GeoError::RadiusOutOfRange { radius_m });
    }
    let resolution = if radius_m <= RES8_MAX_RADIUS_M { SearchResolution::Res8 } else { SearchResolution::Res6 };
    let origin = center.to_h3().to_cell(resolution.h3());
    let cells = origin.grid_disk::<Vec<_>>(resolution.rings(radius_m)).into_iter().map(cell_to_i64).collect();
    Ok(SearchCells { resolution, cells })
}

/// A cell as an INT8 column value. H3 keeps the top bit of every index zero, so the value is
/// positive and the cast loses nothing.
fn cell_to_i64(cell: CellIndex) -> i64 {
    u64::from(cell) as i64
}

/// The point `d` metres from `from` on initial bearing `bearing` (radians), on the same sphere:
/// tests place points at known distances with it.
#[cfg(test)]
pub(crate) fn destination(from: LatLng, bearing: f64, d: f64) -> LatLng {
    let (lat1, lng1) = (from.lat.to_radians(), from.lng.to_radians());
    let delta = d / EARTH_RADIUS_M;
    let lat2 = (lat1.sin() * delta.cos() + lat1.cos() * delta.sin() * bearing.cos()).asin();
    let lng2 = lng1 + (bearing.sin() * delta.sin() * lat1.cos()).atan2(delta.cos() - lat1.sin() * lat2.sin());
    let lng2 = (lng2.to_degrees() + 540.0).rem_euclid(360.0) - 180.0;
    LatLng::new(lat2.to_degrees().clamp(-90.0, 90.0), lng2).expect("clamped into range")
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use proptest::prelude::*;

    use super::*;

    fn p(lat: f64, lng: f64) -> LatLng {
        LatLng::new(lat, lng).unwrap()
    }

    #[test]
    fn new_checks_ranges_and_names_the_value() {
        assert_eq!(LatLng::new(48.8566, 2.3522), Ok(LatLng { lat: 48.8566, lng: 2.3522 }));
        for (lat, lng) in [(90.0, 180.0), (-90.0, -180.0), (0.0, 0.0)] {
            assert!(LatLng::new(lat, lng).is_ok(), "{lat},{lng}");
        }
        assert_eq!(LatLng::new(90.5, 0.0), Err(GeoError::Latitude(90.5)));
        assert_eq!(LatLng::new(0.0, -180.01), Err(GeoError::Longitude(-180.01)));
        assert!(matches!(LatLng::new(f64::NAN, 0.0), Err(GeoError::Latitude(_))));
        assert!(matches!(LatLng::new(0.0, f64::INFINITY), Err(GeoError::Longitude(_))));
        assert_eq!(
            LatLng::new(91.0, 0.0).unwrap_err().to_string(),
            "latitude 91 is out of range: it must be a number from -90 to 90"
        );
        assert_eq!(
            LatLng::new(0.0, f64::NAN).unwrap_err().to_string(),
            "longitude NaN is out of range: it must be a number from -180 to 180"
        );
    }

    #[test]
    fn distance_matches_known_values() {
        let paris = p(48.8566, 2.3522);
        let london = p(51.5074, -0.1278);
        assert!((distance_m(paris, london) - 343_560.0).abs() < 500.0, "{}", distance_m(paris, london));
        assert_eq!(distance_m(paris, paris), 0.0);
        // A quarter of a meridian, and half the equator.
        let quarter = std::f64::consts::FRAC_PI_2 * EARTH_RADIUS_M;
        assert!((distance_m(p(0.0, 0.0), p(90.0, 0.0)) - quarter).abs() < 1e-6);
        assert!((distance_m(p(0.0, 0.0), p(0.0, 180.0)) - 2.0 * quarter).abs() < 1e-6);
        // Across the antimeridian is short.
        assert!((distance_m(p(0.0, 179.999), p(0.0, -179.999)) - 222.4).abs() < 0.1);
    }

    #[test]
    fn travel_time_rounds_up_and_never_panics() {
        assert_eq!(travel_time(1000.0, 36.0), Duration::from_secs(100));
        assert_eq!(travel_time(1000.5, 36.0), Duration::from_secs(101));
        assert_eq!(travel_time(0.0, 20.0), Duration::ZERO);
        assert_eq!(travel_time(-5.0, 20.0), Duration::ZERO);
        assert_eq!(travel_time(100.0, 0.0), Duration::MAX);
        assert_eq!(travel_time(100.0, -1.0), Duration::MAX);
        assert_eq!(travel_time(100.0, f64::NAN), Duration::MAX);
    }

    #[test]
    fn index_cells_are_positive_and_nested() {
        let cells = index_cells(p(48.8566, 2.3522));
        assert!(cells.res6 > 0 && cells.res8 > 0);
        let res8 = CellIndex::try_from(cells.res8 as u64).unwrap();
        assert_eq!(res8.resolution(), Resolution::Eight);
        assert_eq!(res8.parent(Resolution::Six).map(u64::from), Some(cells.res6 as u64));
    }

    #[test]
    fn search_resolution_follows_the_radius() {
        let center = p(40.7128, -74.0060);
        let at = |r| search_cells(center, r).unwrap();
        assert_eq!(at(1).resolution, SearchResolution::Res8);
        assert_eq!(at(RES8_MAX_RADIUS_M).resolution, SearchResolution::Res8);
        assert_eq!(at(RES8_MAX_RADIUS_M + 1).resolution, SearchResolution::Res6);
        assert_eq!(at(MAX_SEARCH_RADIUS_M).resolution, SearchResolution::Res6);
        // Disk sizes 3k(k+1)+1 for the k documented on search_cells.
        assert_eq!(at(1).cells.len(), 37);
        assert_eq!(at(RES8_MAX_RADIUS_M).cells.len(), 127);
        assert_eq!(at(RES8_MAX_RADIUS_M + 1).cells.len(), 37);
        assert_eq!(at(MAX_SEARCH_RADIUS_M).cells.len(), 817);
        assert!(at(500).cells.contains(&index_cells(center).res8));
    }

    #[test]
    fn search_radius_is_capped() {
        let center = p(0.0, 0.0);
        assert_eq!(search_cells(center, 0), Err(GeoError::RadiusOutOfRange { radius_m: 0 }));
        assert_eq!(
            search_cells(center, 50_001).unwrap_err().to_string(),
            "radius 50001 m is out of range: it must be from 1 to 50000 m"
        );
    }

    fn pentagon_centers() -> Vec<LatLng> {
        CellIndex::base_cells()
            .filter(|c| c.is_pentagon())
            .map(|c| {
                let center = h3o::LatLng::from(c);
                p(center.lat(), center.lng())
            })
            .collect()
    }

    fn any_center() -> impl Strategy<Value = LatLng> {
        let pentagons = pentagon_centers();
        prop_oneof![
            // Uniform on the sphere, poles and antimeridian included.
            (-1.0..=1.0f64, -180.0..=180.0f64).prop_map(|(z, lng)| p(z.asin().to_degrees(), lng)),
            // Where the grid is most distorted.
            (0..pentagons.len(), 0.0..std::f64::consts::TAU, 0.0..60_000.0f64)
                .prop_map(move |(i, bearing, d)| destination(pentagons[i], bearing, d)),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2_000))]

        #[test]
        fn search_cells_contain_every_point_within_the_radius(
            center in any_center(),
            radius_m in prop_oneof![1..=RES8_MAX_RADIUS_M, 1..=20_000u32, 1..=MAX_SEARCH_RADIUS_M],
            targets in prop::collection::vec((0.0..std::f64::consts::TAU, 0.0..=1.0f64), 1..16),
        ) {
            let found = search_cells(center, radius_m).unwrap();
            let cells: HashSet<i64> = found.cells.iter().copied().collect();
            for (bearing, fraction) in targets {
                // Points on the rim matter most: half of them go 1 mm inside it.
                let fraction = if fraction > 0.5 { 1.0 } else { fraction * 2.0 };
                let point = destination(center, bearing, (f64::from(radius_m) * fraction - 0.001).max(0.0));
                if distance_m(center, point) > f64::from(radius_m) {
                    continue; // float error put it outside: no promise to keep
                }
                let cell = match found.resolution {
                    SearchResolution::Res6 => index_cells(point).res6,
                    SearchResolution::Res8 => index_cells(point).res8,
                };
                prop_assert!(cells.contains(&cell), "{point:?} is {} m from {center:?}", distance_m(center, point));
            }
        }

        #[test]
        fn distance_is_symmetric_and_bounded(
            a in (-90.0..=90.0f64, -180.0..=180.0f64),
            b in (-90.0..=90.0f64, -180.0..=180.0f64),
        ) {
            let (a, b) = (p(a.0, a.1), p(b.0, b.1));
            let d = distance_m(a, b);
            prop_assert!((0.0..=std::f64::consts::PI * EARTH_RADIUS_M + 1e-6).contains(&d));
            prop_assert!((d - distance_m(b, a)).abs() < 1e-6);
        }
    }
}
