//! Quotes: what an order costs and when it arrives, computed only from server-side data.
//!
//! The rules:
//! - Prices come only from the menu; a client never sends one. The menu is assumed to have passed
//!   [`Menu::validate`](crate::menu::Menu::validate), so every price has at most 2 decimals.
//! - `unit_price` = the item's price + the surcharges of the chosen options.
//! - `line_total` = `unit_price` × `quantity`, and `subtotal` = Σ `line_total`: exact, never rounded.
//! - `delivery_fee` = `round_money(min(delivery_fee_max, delivery_fee_base + delivery_fee_per_km ×
//!   km))`, with km from the great-circle distance in whole metres.
//! - `tax` = `round_money(subtotal × tax_rate)`. The delivery fee is not taxed.
//! - `total` = `subtotal` + `delivery_fee` + `tax`: exact, as each part has 2 decimals.
//! - `eta_earliest` = now + the restaurant's prep time + travel time at the courier speed (rounded up
//!   to a second); `eta_latest` = `eta_earliest` + `eta_spread`.
//!
//! [`round_money`] is the one rounding rule: 2 decimals, a midpoint away from zero.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use rust_decimal::Decimal;
use rust_decimal::prelude::ToPrimitive;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::geo::{LatLng, distance_m, travel_time};
use crate::menu::MenuItem;
use crate::money::{Currency, check_amount, round_money};
use crate::validation::FieldError;

pub const MAX_LINES: usize = 50;
pub const MAX_QUANTITY: u32 = 99;
/// The largest amount an order stores (NUMERIC(12, 2)): a cart past it is
/// refused when priced, before any payment is asked for.
pub const MAX_ORDER_TOTAL: Decimal = Decimal::from_parts(3_567_587_327, 232, 0, false, 2);

/// Platform-wide pricing, from configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PricingPolicy {
    pub delivery_fee_base: Decimal,
    pub delivery_fee_per_km: Decimal,
    pub delivery_fee_max: Decimal,
    /// A fraction: 0.08 is 8 %.
    pub tax_rate: Decimal,
    pub courier_speed_kmh: Decimal,
    /// Width of the delivery window.
    #[serde(with = "humantime_serde")]
    pub eta_spread: Duration,
}

impl Default for PricingPolicy {
    fn default() -> Self {
        Self {
            delivery_fee_base: Decimal::new(199, 2),
            delivery_fee_per_km: Decimal::new(50, 2),
            delivery_fee_max: Decimal::new(799, 2),
            tax_rate: Decimal::new(8, 2),
            courier_speed_kmh: Decimal::from(20),
            eta_spread: Duration::from_secs(15 * 60),
        }
    }
}

impl PricingPolicy {
    /// For configuration: the field named is the struct field.
    pub fn validate(&self) -> Result<(), FieldError> {
        let amount = |field, d| check_amount(d).map_err(|problem| FieldError::new(field, problem.to_string()));
        amount("delivery_fee_base", self.delivery_fee_base)?;
        amount("delivery_fee_max", self.delivery_fee_max)?;
        if self.delivery_fee_per_km.is_sign_negative() {
            return Err(FieldError::new("delivery_fee_per_km", "is negative"));
        }
        if self.delivery_fee_max < self.delivery_fee_base {
            return Err(FieldError::new("delivery_fee_max", "must be at least delivery_fee_base"));
        }
        if !(Decimal::ZERO..=Decimal::ONE).contains(&self.tax_rate) {
            return Err(FieldError::new("tax_rate", "must be a fraction from 0 to 1 (0.08 is 8%)"));
        }
        if self.courier_speed_kmh <= Decimal::ZERO {
            return Err(FieldError::new("courier_speed_kmh", "must be more than 0"));
        }
        Ok(())
    }

    /// The delivery fee for a distance in whole metres.
    /// How long a courier takes for `distance_m` in a straight line.
    pub fn travel_time(&self, distance_m: u32) -> Duration {
        travel_time(distance_m.into(), self.courier_speed_kmh.to_f64().unwrap_or(0.0))
    }

    pub fn delivery_fee(&self, distance_m: u32) -> Decimal {
        let km = Decimal::new(distance_m.into(), 3);
        round_money((self.delivery_fee_base + self.delivery_fee_per_km * km).min(self.delivery_fee_max))
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cart {
    pub lines: Vec<CartLine>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CartLine {
    pub item_id: Uuid,
    pub quantity: u32,
    pub choices: Vec<Choice>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Choice {
    pub customization_id: Uuid,
    pub option_id: Uuid,
}

/// What the restaurant contributes to a quote.
#[derive(Debug, Clone, PartialEq)]
pub struct RestaurantTerms {
    pub location: LatLng,
    pub delivery_radius_m: u32,
    pub prep_time: Duration,
    pub currency: Currency,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Quote {
    pub lines: Vec<PricedLine>,
    pub subtotal: Decimal,
    pub delivery_fee: Decimal,
    pub tax: Decimal,
    pub total: Decimal,
    pub currency: Currency,
    pub distance_m: u32,
    pub eta_earliest: DateTime<Utc>,
    pub eta_latest: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PricedLine {
    pub item_id: Uuid,
    pub name: String,
    pub unit_price: Decimal,
    pub quantity: u32,
    /// In the cart's order.
    pub choices: Vec<PricedChoice>,
    pub line_total: Decimal,
}

/// Stored as JSON with each order line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PricedChoice {
    pub customization_id: Uuid,
    pub customization_name: String,
    pub option_id: Uuid,
    pub option_name: String,
    pub surcharge: Decimal,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CartError {
    #[error("the cart is empty: add at least one item")]
    EmptyCart,
    #[error("the cart has {count} lines; at most {max} are allowed")]
    TooManyLines { count: usize, max: usize },
    #[error("item {item_id}: quantity {quantity} is out of range; order from 1 to {max}", max = MAX_QUANTITY)]
    QuantityOutOfRange { line: usize, item_id: Uuid, quantity: u32 },
    #[error("item {item_id} is not on this restaurant's menu")]
    UnknownItem { line: usize, item_id: Uuid },
    #[error("\"{name}\" (item {item_id}) is not available right now")]
    ItemUnavailable { item_id: Uuid, name: String },
    #[error("\"{item_name}\" has no customization {customization_id}")]
    UnknownCustomization { line: usize, item_name: String, customization_id: Uuid },
    #[error("\"{customization_name}\" of \"{item_name}\" has no option {option_id}")]
    UnknownOption { line: usize, item_name: String, customization_name: String, option_id: Uuid },
    #[error("\"{option_name}\" for \"{customization_name}\" of \"{item_name}\" is not available right now")]
    OptionUnavailable {
        item_id: Uuid,
        option_id: Uuid,
        item_name: String,
        customization_name: String,
        option_name: String,
    },
    #[error("\"{option_name}\" for \"{customization_name}\" of \"{item_name}\" is chosen more than once")]
    DuplicateChoice { line: usize, item_name: String, customization_name: String, option_name: String },
    #[error("\"{item_name}\" needs at least {min} choice(s) for \"{customization_name}\"")]
    TooFewChoices { line: usize, item_name: String, customization_name: String, min: u32 },
    #[error("\"{item_name}\" allows at most {max} choice(s) for \"{customization_name}\"")]
    TooManyChoices { line: usize, item_name: String, customization_name: String, max: u32 },
    #[error("the delivery address is {distance_m} m from the restaurant, beyond its delivery radius of {radius_m} m")]
    OutsideDeliveryArea { distance_m: u32, radius_m: u32 },
    #[error("the order's total is above {max}: place it as several orders", max = MAX_ORDER_TOTAL)]
    TotalTooLarge,
}

impl CartError {
    /// The request field at fault (`items[2].quantity`), for a malformed cart.
    pub fn field(&self) -> Option<String> {
        Some(match self {
            CartError::EmptyCart | CartError::TooManyLines { .. } | CartError::TotalTooLarge => "items".to_owned(),
            CartError::QuantityOutOfRange { line, .. } => format!("items[{line}].quantity"),
            CartError::UnknownItem { line, .. } => format!("items[{line}].item_id"),
            CartError::UnknownCustomization { line, .. }
            | CartError::UnknownOption { line, .. }
            | CartError::DuplicateChoice { line, .. }
            | CartError::TooFewChoices { line, .. }
            | CartError::TooManyChoices { line, .. } => format!("items[{line}].customizations"),
            CartError::ItemUnavailable { .. }
            | CartError::OptionUnavailable { .. }
            | CartError::OutsideDeliveryArea { .. } => return None,
        })
    }

    /// The cart is well-formed but the world refuses it right now (sold out,
    /// too far): a precondition, not a malformed request.
    pub fn is_about_availability(&self) -> bool {
        matches!(
            self,
            CartError::ItemUnavailable { .. }
                | CartError::OptionUnavailable { .. }
                | CartError::OutsideDeliveryArea { .. }
        )
    }
}

/// Prices `cart` for delivery to `dropoff`. `menu` holds the restaurant's items by id; any other id
/// is unknown.
pub fn quote(
    policy: &PricingPolicy,
    restaurant: &RestaurantTerms,
    menu: &HashMap<Uuid, MenuItem>,
    cart: &Cart,
    dropoff: LatLng,
    now: DateTime<Utc>,
) -> Result<Quote, CartError> {
    if cart.lines.is_empty() {
        return Err(CartError::EmptyCart);
    }
    if cart.lines.len() > MAX_LINES {
        return Err(CartError::TooManyLines { count: cart.lines.len(), max: MAX_LINES });
    }
    let lines =
        cart.lines.iter().enumerate().map(|(at, line)| price_line(menu, at, line)).collect::<Result<Vec<_>, _>>()?;

    // Whole metres, so the figure compared, charged and shown is the same one.
    let distance_m = distance_m(restaurant.location, dropoff).round() as u32;
    if distance_m > restaurant.delivery_radius_m {
        return Err(CartError::OutsideDeliveryArea { distance_m, radius_m: restaurant.delivery_radius_m });
    }

    let subtotal: Decimal = lines.iter().map(|line| line.line_total).sum();
    let delivery_fee = policy.delivery_fee(distance_m);
    let tax = round_money(subtotal * policy.tax_rate);
    let total = subtotal + delivery_fee + tax;
    if total > MAX_ORDER_TOTAL {
        return Err(CartError::TotalTooLarge);
    }
    let eta_earliest = later(now, restaurant.prep_time.saturating_add(policy.travel_time(distance_m)));
    Ok(Quote {
        lines,
        subtotal,
        delivery_fee,
        tax,
        total,
        currency: restaurant.currency,
        distance_m,
        eta_earliest,
        eta_latest: later(eta_earliest, policy.eta_spread),
    })
}

/// Prices the cart's line number `at`.
fn price_line(menu: &HashMap<Uuid, MenuItem>, at: usize, line: &CartLine) -> Result<PricedLine, CartError> {
    let item_id = line.item_id;
    if !(1..=MAX_QUANTITY).contains(&line.quantity) {
        return Err(CartError::QuantityOutOfRange { line: at, item_id, quantity: line.quantity });
    }
    let item = menu.get(&item_id).ok_or(CartError::UnknownItem { line: at, item_id })?;
    if !item.available {
        return Err(CartError::ItemUnavailable { item_id, name: item.name.clone() });
    }
    let choices = line.choices.iter().map(|&choice| price_choice(item, at, choice)).collect::<Result<Vec<_>, _>>()?;

    let mut seen = HashSet::new();
    for (choice, priced) in line.choices.iter().zip(&choices) {
        if !seen.insert(choice) {
            return Err(CartError::DuplicateChoice {
                line: at,
                item_name: item.name.clone(),
                customization_name: priced.customization_name.clone(),
                option_name: priced.option_name.clone(),
            });
        }
    }
    for customization in &item.customizations {
        let chosen = line.choices.iter().filter(|c| c.customization_id == customization.id).count();
        let (min, max) = (customization.min_choices, customization.max_choices);
        if !(min as usize..=max as usize).contains(&chosen) {
            let (item_name, customization_name) = (item.name.clone(), customization.name.clone());
            return Err(if chosen < min as usize {
                CartError::TooFewChoices { line: at, item_name, customization_name, min }
            } else {
                CartError::TooManyChoices { line: at, item_name, customization_name, max }
            });
        }
    }

    let unit_price = item.price + choices.iter().map(|c| c.surcharge).sum::<Decimal>();
    Ok(PricedLine {
        item_id,
        name: item.name.clone(),
        unit_price,
        quantity: line.quantity,
        choices,
        line_total: unit_price * Decimal::from(line.quantity),
    })
}

fn price_choice(item: &MenuItem, at: usize, choice: Choice) -> Result<PricedChoice, CartError> {
    let customization = item.customization(choice.customization_id).ok_or_else(|| CartError::UnknownCustomization {
        line: at,
        item_name: item.name.clone(),
        customization_id: choice.customization_id,
    })?;
    let option = customization.option(choice.option_id).ok_or_else(|| CartError::UnknownOption {
        line: at,
        item_name: item.name.clone(),
        customization_name: customization.name.clone(),
        option_id: choice.option_id,
    })?;
    if !option.available {
        return Err(CartError::OptionUnavailable {
            item_id: item.id,
            option_id: option.id,
            item_name: item.name.clone(),
            customization_name: customization.name.clone(),
            option_name: option.name.clone(),
        });
    }
    Ok(PricedChoice {
        customization_id: customization.id,
        customization_name: customization.name.clone(),
        option_id: option.id,
        option_name: option.name.clone(),
        surcharge: option.surcharge,
    })
}

/// `at` + `wait`, saturating instead of overflowing on absurd configuration.
fn later(at: DateTime<Utc>, wait: Duration) -> DateTime<Utc> {
    TimeDelta::from_std(wait).ok().and_then(|wait| at.checked_add_signed(wait)).unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// SHA-256 (hex) of a canonical encoding of an order request, to tell a retry of the same request
/// (same idempotency key, same hash) from a different request reusing a key.
///
/// Canonical: lines sorted, choices sorted within a line, every field fixed-width or
/// length-prefixed, so reordering a cart does not change the hash and no two carts share an encoding.
pub fn canonical_cart_hash(restaurant_id: Uuid, cart: &Cart, dropoff: LatLng, payment_method_id: &str) -> String {
    let mut lines: Vec<(Uuid, u32, Vec<Choice>)> = cart
        .lines
        .iter()
        .map(|line| {
            let mut choices = line.choices.clone();
            choices.sort_unstable();
            (line.item_id, line.quantity, choices)
        })
        .collect();
    lines.sort_unstable();

    let mut hash = Sha256::new();
    hash.update(b"foodfast.cart.v1");
    hash.update(restaurant_id.as_bytes());
    // Adding 0.0 turns -0.0 into 0.0: the same point must hash the same.
    hash.update((dropoff.lat + 0.0).to_bits().to_be_bytes());
    hash.update((dropoff.lng + 0.0).to_bits().to_be_bytes());
    hash.update((payment_method_id.len() as u64).to_be_bytes());
    hash.update(payment_method_id.as_bytes());
    hash.update((lines.len() as u64).to_be_bytes());
    for (item_id, quantity, choices) in &lines {
        hash.update(item_id.as_bytes());
        hash.update(quantity.to_be_bytes());
        hash.update((choices.len() as u64).to_be_bytes());
        for choice in choices {
            hash.update(choice.customization_id.as_bytes());
            hash.update(choice.option_id.as_bytes());
        }
    }
    format!("{:x}", hash.finalize())
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use proptest::prelude::*;
    use rust_decimal_macros::dec;

    use super::*;
    use crate::geo::EARTH_RADIUS_M;
    use crate::menu::tests::{id, sample};

    const MARGHERITA: u128 = 10;
    const CALZONE: u128 = 12;
    const LEMONADE: u128 = 20;
    const SIZE: u128 = 100;
    const REGULAR: u128 = 1000;
    const LARGE: u128 = 1001;
    const TOPPINGS: u128 = 101;
    const OLIVES: u128 = 1010;
    const BASIL: u128 = 1011;
    const ANCHOVIES: u128 = 1012;

    fn items() -> HashMap<Uuid, MenuItem> {
        sample().categories.into_iter().flat_map(|c| c.items).map(|item| (item.id, item)).collect()
    }

    fn restaurant() -> RestaurantTerms {
        RestaurantTerms {
            location: LatLng::new(48.8566, 2.3522).unwrap(),
            delivery_radius_m: 5_000,
            prep_time: Duration::from_secs(20 * 60),
            currency: Currency::new("EUR").unwrap(),
        }
    }

    /// A point `m` metres due north of the restaurant: along a meridian the distance is exact.
    fn north(m: f64) -> LatLng {
        let at = restaurant().location;
        LatLng::new(at.lat + (m / EARTH_RADIUS_M).to_degrees(), at.lng).unwrap()
    }

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2024, 6, 3, 12, 0, 0).unwrap()
    }

    fn line(item: u128, quantity: u32, choices: &[(u128, u128)]) -> CartLine {
        let choices = choices.iter().map(|&(c, o)| Choice { customization_id: id(c), option_id: id(o) }).collect();
        CartLine { item_id: id(item), quantity, choices }
    }

    fn quote_for(lines: Vec<CartLine>) -> Result<Quote, CartError> {
        quote(&PricingPolicy::default(), &restaurant(), &items(), &Cart { lines }, north(2_500.0), now())
    }

    fn large_pizza(quantity: u32) -> CartLine {
        line(MARGHERITA, quantity, &[(SIZE, LARGE), (TOPPINGS, OLIVES)])
    }

    #[test]
    fn a_quote_adds_up() {
        let quote = quote_for(vec![large_pizza(2), line(LEMONADE, 3, &[])]).unwrap();

        let pizza = &quote.lines[0];
        assert_eq!((pizza.name.as_str(), pizza.quantity), ("Margherita", 2));
        assert_eq!(pizza.unit_price, dec!(13.25), "9.50 + 3.00 + 0.75");
        assert_eq!(pizza.line_total, dec!(26.50));
        let names: Vec<_> =
            pizza.choices.iter().map(|c| (c.customization_name.as_str(), c.option_name.as_str())).collect();
        assert_eq!(names, [("Size", "Large"), ("Extra toppings", "Olives")]);
        assert_eq!(pizza.choices[0].surcharge, dec!(3.00));
        assert_eq!(quote.lines[1].line_total, dec!(9.60));

        assert_eq!(quote.subtotal, dec!(36.10));
        assert_eq!(quote.distance_m, 2_500);
        assert_eq!(quote.delivery_fee, dec!(3.24), "1.99 + 0.50 × 2.5");
        assert_eq!(quote.tax, dec!(2.89), "36.10 × 0.08 = 2.888");
        assert_eq!(quote.total, dec!(42.23));
        assert_eq!(quote.currency.as_str(), "EUR");
        // 20 min of preparation, 2.5 km at 20 km/h = 7 min 30 s, then a 15 min window.
        assert_eq!(quote.eta_earliest, now() + TimeDelta::seconds(20 * 60 + 450));
        assert_eq!(quote.eta_latest, quote.eta_earliest + TimeDelta::minutes(15));
    }

    #[test]
    fn delivery_fee_grows_by_distance_up_to_the_cap_and_rounds_half_away() {
        let policy = PricingPolicy::default();
        assert_eq!(policy.delivery_fee(0), dec!(1.99));
        assert_eq!(policy.delivery_fee(1_001), dec!(2.49), "2.4905");
        assert_eq!(policy.delivery_fee(1_010), dec!(2.50), "2.495, a midpoint, goes up");
        assert_eq!(policy.delivery_fee(12_000), dec!(7.99), "exactly the cap");
        assert_eq!(policy.delivery_fee(50_000), dec!(7.99));
        // Banker's rounding would give 1.24.
        let quarter = PricingPolicy { delivery_fee_base: dec!(1), delivery_fee_per_km: dec!(0.25), ..policy };
        assert_eq!(quarter.delivery_fee(980), dec!(1.25));
    }

    #[test]
    fn tax_rounds_half_away_from_zero_and_skips_the_delivery_fee() {
        let policy = PricingPolicy { tax_rate: dec!(0.10), ..PricingPolicy::default() };
        let mut menu = items();
        menu.get_mut(&id(LEMONADE)).unwrap().price = dec!(0.25);
        let cart = Cart { lines: vec![line(LEMONADE, 1, &[])] };
        let quote = quote(&policy, &restaurant(), &menu, &cart, north(2_500.0), now()).unwrap();
        assert_eq!(quote.tax, dec!(0.03), "0.025 goes up; the 3.24 fee is not taxed");
        assert_eq!(quote.total, dec!(0.25) + dec!(3.24) + dec!(0.03));
    }

    #[test]
    fn cart_size_and_quantities_are_bounded() {
        assert_eq!(quote_for(vec![]), Err(CartError::EmptyCart));
        assert!(quote_for(vec![line(LEMONADE, 1, &[]); MAX_LINES]).is_ok());
        assert_eq!(
            quote_for(vec![line(LEMONADE, 1, &[]); MAX_LINES + 1]).unwrap_err().to_string(),
            "the cart has 51 lines; at most 50 are allowed"
        );
        assert_eq!(quote_for(vec![line(LEMONADE, 99, &[])]).unwrap().subtotal, dec!(316.80));
        for quantity in [0, 100] {
            assert_eq!(
                quote_for(vec![line(LEMONADE, quantity, &[])]),
                Err(CartError::QuantityOutOfRange { line: 0, item_id: id(LEMONADE), quantity })
            );
        }
        assert_eq!(
            quote_for(vec![line(LEMONADE, 0, &[])]).unwrap_err().to_string(),
            format!("item {}: quantity 0 is out of range; order from 1 to 99", id(LEMONADE))
        );
    }

    #[test]
    fn a_total_the_order_cannot_store_is_refused_when_priced() {
        assert_eq!(MAX_ORDER_TOTAL, dec!(9999999999.99));
        let mut menu = items();
        menu.get_mut(&id(LEMONADE)).unwrap().price = dec!(200000000.00);
        let priced = |quantity| {
            let cart = Cart { lines: vec![line(LEMONADE, quantity, &[])] };
            quote(&PricingPolicy::default(), &restaurant(), &menu, &cart, north(2_500.0), now())
        };
        assert!(priced(1).is_ok());
        let refused = priced(99).unwrap_err();
        assert_eq!(refused, CartError::TotalTooLarge);
        assert_eq!(refused.field().as_deref(), Some("items"));
    }

    #[test]
    fn every_refusal_names_the_item() {
        let cases = [
            (line(77, 1, &[]), format!("item {} is not on this restaurant's menu", id(77))),
            (line(CALZONE, 1, &[]), format!("\"Calzone\" (item {}) is not available right now", id(CALZONE))),
            (
                line(MARGHERITA, 1, &[(SIZE, REGULAR), (999, REGULAR)]),
                format!("\"Margherita\" has no customization {}", id(999)),
            ),
            (
                line(MARGHERITA, 1, &[(SIZE, OLIVES)]),
                format!("\"Size\" of \"Margherita\" has no option {}", id(OLIVES)),
            ),
            (
                line(MARGHERITA, 1, &[(SIZE, REGULAR), (TOPPINGS, ANCHOVIES)]),
                "\"Anchovies\" for \"Extra toppings\" of \"Margherita\" is not available right now".to_owned(),
            ),
            (
                line(MARGHERITA, 1, &[(SIZE, REGULAR), (TOPPINGS, BASIL), (TOPPINGS, BASIL)]),
                "\"Basil\" for \"Extra toppings\" of \"Margherita\" is chosen more than once".to_owned(),
            ),
            (line(MARGHERITA, 1, &[]), "\"Margherita\" needs at least 1 choice(s) for \"Size\"".to_owned()),
            (
                line(MARGHERITA, 1, &[(SIZE, REGULAR), (SIZE, LARGE)]),
                "\"Margherita\" allows at most 1 choice(s) for \"Size\"".to_owned(),
            ),
        ];
        for (bad, expected) in cases {
            // After a good line, so the bad one is found wherever it is.
            let err = quote_for(vec![line(LEMONADE, 1, &[]), bad]).unwrap_err();
            assert_eq!(err.to_string(), expected);
            // A malformed line is named; a sold-out one is a precondition, with its item.
            let field = err.field();
            assert!(field.is_none() == err.is_about_availability(), "{err}: {field:?}");
            assert!(field.is_none_or(|field| field.starts_with("items[1].")), "{err}");
        }
        assert_eq!(quote_for(vec![line(LEMONADE, 0, &[])]).unwrap_err().field().as_deref(), Some("items[0].quantity"));
        assert_eq!(quote_for(vec![line(77, 1, &[])]).unwrap_err().field().as_deref(), Some("items[0].item_id"));
        assert!(matches!(
            quote_for(vec![line(
                MARGHERITA,
                1,
                &[(SIZE, REGULAR), (TOPPINGS, OLIVES), (TOPPINGS, BASIL), (TOPPINGS, ANCHOVIES)]
            )]),
            Err(CartError::OptionUnavailable { .. })
        ));
        assert!(matches!(
            quote_for(vec![line(
                MARGHERITA,
                1,
                &[(SIZE, REGULAR), (TOPPINGS, OLIVES), (TOPPINGS, BASIL), (TOPPINGS, OLIVES)]
            )]),
            Err(CartError::DuplicateChoice { .. })
        ));
    }

    #[test]
    fn the_delivery_radius_is_inclusive() {
        let cart = Cart { lines: vec![line(LEMONADE, 1, &[])] };
        let at = |m| quote(&PricingPolicy::default(), &restaurant(), &items(), &cart, north(m), now());
        assert_eq!(at(5_000.0).unwrap().distance_m, 5_000);
        assert_eq!(at(5_000.4).unwrap().distance_m, 5_000, "whole metres");
        assert_eq!(at(5_001.0), Err(CartError::OutsideDeliveryArea { distance_m: 5_001, radius_m: 5_000 }));
        assert_eq!(
            at(7_250.0).unwrap_err().to_string(),
            "the delivery address is 7250 m from the restaurant, beyond its delivery radius of 5000 m"
        );
    }

    #[test]
    fn absurd_times_saturate_instead_of_overflowing() {
        let slow = PricingPolicy { courier_speed_kmh: Decimal::ZERO, ..PricingPolicy::default() };
        let cart = Cart { lines: vec![line(LEMONADE, 1, &[])] };
        let quote = quote(&slow, &restaurant(), &items(), &cart, north(100.0), now()).unwrap();
        assert_eq!(quote.eta_earliest, DateTime::<Utc>::MAX_UTC);
        assert_eq!(quote.eta_latest, DateTime::<Utc>::MAX_UTC);
    }

    #[test]
    fn policy_validation_names_the_field() {
        assert_eq!(PricingPolicy::default().validate(), Ok(()));
        let default = PricingPolicy::default;
        let cases = [
            (PricingPolicy { delivery_fee_base: dec!(-1), ..default() }, "delivery_fee_base is negative"),
            (
                PricingPolicy { delivery_fee_max: dec!(1.999), ..default() },
                "delivery_fee_max has more than 2 decimal places",
            ),
            (PricingPolicy { delivery_fee_per_km: dec!(-0.1), ..default() }, "delivery_fee_per_km is negative"),
            (
                PricingPolicy { delivery_fee_max: dec!(1), ..default() },
                "delivery_fee_max must be at least delivery_fee_base",
            ),
            (PricingPolicy { tax_rate: dec!(8), ..default() }, "tax_rate must be a fraction from 0 to 1 (0.08 is 8%)"),
            (PricingPolicy { courier_speed_kmh: dec!(0), ..default() }, "courier_speed_kmh must be more than 0"),
        ];
        for (policy, expected) in cases {
            assert_eq!(policy.validate().unwrap_err().to_string(), expected);
        }
        let per_km = PricingPolicy { delivery_fee_per_km: dec!(0.125), ..default() };
        assert_eq!(per_km.validate(), Ok(()), "a rate may have more decimals than money");
    }

    #[test]
    fn cart_hash_ignores_order_and_sees_everything_else() {
        let restaurant_id = id(5);
        let dropoff = north(1_000.0);
        let cart = Cart { lines: vec![large_pizza(2), line(LEMONADE, 3, &[])] };
        let hash = canonical_cart_hash(restaurant_id, &cart, dropoff, "pm_1");
        assert_eq!(hash.len(), 64);
        assert!(hash.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));

        let reordered =
            Cart { lines: vec![line(LEMONADE, 3, &[]), line(MARGHERITA, 2, &[(TOPPINGS, OLIVES), (SIZE, LARGE)])] };
        assert_eq!(canonical_cart_hash(restaurant_id, &reordered, dropoff, "pm_1"), hash);

        let different = [
            canonical_cart_hash(id(6), &cart, dropoff, "pm_1"),
            canonical_cart_hash(
                restaurant_id,
                &Cart { lines: vec![large_pizza(1), line(LEMONADE, 3, &[])] },
                dropoff,
                "pm_1",
            ),
            canonical_cart_hash(restaurant_id, &Cart { lines: vec![large_pizza(2)] }, dropoff, "pm_1"),
            canonical_cart_hash(
                restaurant_id,
                &Cart { lines: vec![line(MARGHERITA, 2, &[(SIZE, LARGE)]), line(LEMONADE, 3, &[])] },
                dropoff,
                "pm_1",
            ),
            canonical_cart_hash(restaurant_id, &cart, north(1_001.0), "pm_1"),
            canonical_cart_hash(restaurant_id, &cart, dropoff, "pm_2"),
            canonical_cart_hash(restaurant_id, &cart, dropoff, ""),
        ];
        for other in &different {
            assert_ne!(other, &hash);
        }
        let zero = LatLng::new(0.0, 0.0).unwrap();
        let negative_zero = LatLng::new(-0.0, -0.0).unwrap();
        assert_eq!(
            canonical_cart_hash(restaurant_id, &cart, zero, "pm_1"),
            canonical_cart_hash(restaurant_id, &cart, negative_zero, "pm_1")
        );
    }

    fn any_pizza_or_lemonade() -> impl Strategy<Value = CartLine> {
        prop_oneof![
            (1..=MAX_QUANTITY).prop_map(|q| line(LEMONADE, q, &[])),
            (
                1..=MAX_QUANTITY,
                prop::sample::select(vec![REGULAR, LARGE]),
                prop::sample::subsequence(vec![OLIVES, BASIL], 0..=2)
            )
                .prop_map(|(q, size, toppings)| {
                    let choices: Vec<_> =
                        std::iter::once((SIZE, size)).chain(toppings.into_iter().map(|t| (TOPPINGS, t))).collect();
                    line(MARGHERITA, q, &choices)
                }),
        ]
    }

    proptest! {
        #[test]
        fn quotes_add_up_exactly(
            lines in prop::collection::vec(any_pizza_or_lemonade(), 1..=MAX_LINES),
            distance in 0.0..5_000.0f64,
            tax_rate in (0u32..=2_500).prop_map(|bp| Decimal::new(bp.into(), 4)),
        ) {
            let policy = PricingPolicy { tax_rate, ..PricingPolicy::default() };
            let cart = Cart { lines };
            let quote = quote(&policy, &restaurant(), &items(), &cart, north(distance), now()).unwrap();
            for line in &quote.lines {
                prop_assert_eq!(line.line_total, line.unit_price * Decimal::from(line.quantity));
                let surcharges: Decimal = line.choices.iter().map(|c| c.surcharge).sum();
                prop_assert_eq!(line.unit_price, items()[&line.item_id].price + surcharges);
            }
            prop_assert_eq!(quote.subtotal, quote.lines.iter().map(|l| l.line_total).sum::<Decimal>());
            prop_assert_eq!(quote.total, quote.subtotal + quote.delivery_fee + quote.tax);
            prop_assert!((quote.tax - quote.subtotal * tax_rate).abs() <= dec!(0.005));
            prop_assert!(quote.delivery_fee <= policy.delivery_fee_max);
            for amount in [quote.subtotal, quote.delivery_fee, quote.tax, quote.total] {
                prop_assert_eq!(amount, round_money(amount));
                prop_assert!(amount >= Decimal::ZERO);
            }
            prop_assert!(quote.eta_earliest >= now() + TimeDelta::minutes(20));
            prop_assert_eq!(quote.eta_latest - quote.eta_earliest, TimeDelta::minutes(15));
        }

        #[test]
        fn cart_hash_is_independent_of_line_and_choice_order(
            (cart, shuffled) in prop::collection::vec(any_pizza_or_lemonade(), 1..10)
                .prop_flat_map(|lines| (Just(lines.clone()), Just(lines).prop_shuffle())),
        ) {
            let mut shuffled = Cart { lines: shuffled };
            for line in &mut shuffled.lines {
                line.choices.reverse();
            }
            let dropoff = north(10.0);
            prop_assert_eq!(
                canonical_cart_hash(id(5), &Cart { lines: cart }, dropoff, "pm"),
                canonical_cart_hash(id(5), &shuffled, dropoff, "pm")
            );
        }
    }
}
