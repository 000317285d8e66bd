//! Money is `rust_decimal::Decimal`, never a float.
//!
//! **The rounding rule.** Amounts are kept to 2 decimal places. Whenever a computation can produce
//! more (a per-km fee, tax at a rate), the result is rounded once with [`round_money`]: to 2 decimal
//! places, a midpoint away from zero (0.125 → 0.13, 0.124 → 0.12). Sums and products by whole
//! quantities of 2-decimal amounts are exact and are not rounded.

use std::fmt;

use rust_decimal::{Decimal, RoundingStrategy};

use crate::validation::excerpt;

/// Decimal places of every amount.
pub const AMOUNT_DECIMALS: u32 = 2;

/// Digits an amount may have before the decimal point, so it fits a `NUMERIC(12, 2)` column.
pub const AMOUNT_INTEGER_DIGITS: u32 = 10;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MoneyError {
    #[error("\"{}\" is not a currency code: use three capital letters, such as EUR", excerpt(.0))]
    InvalidCurrency(String),
    #[error("amount \"{}\" {problem}", excerpt(.input))]
    InvalidAmount { input: String, problem: AmountProblem },
}

/// What is wrong with an amount; phrased to follow the amount in a sentence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AmountProblem {
    #[error("is not a plain decimal number such as 12.50")]
    NotANumber,
    #[error("is negative")]
    Negative,
    #[error("has more than {AMOUNT_DECIMALS} decimal places")]
    TooManyDecimals,
    #[error("has more than {AMOUNT_INTEGER_DIGITS} digits before the decimal point")]
    TooLarge,
}

/// Currencies without minor units, and those with three decimals (ISO 4217); every
/// other currency has two.
const ZERO_DECIMAL: &[&str] =
    &["BIF", "CLP", "DJF", "GNF", "JPY", "KMF", "KRW", "MGA", "PYG", "RWF", "UGX", "VND", "VUV", "XAF", "XOF", "XPF"];
const THREE_DECIMAL: &[&str] = &["BHD", "JOD", "KWD", "OMR", "TND"];

/// An ISO 4217-shaped currency code: three ASCII capital letters. Whether the code is assigned is
/// not checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Currency([u8; 3]);

impl TryFrom<String> for Currency {
    type Error = MoneyError;

    fn try_from(code: String) -> Result<Self, MoneyError> {
        Currency::new(&code)
    }
}

impl From<Currency> for String {
    fn from(currency: Currency) -> String {
        currency.as_str().to_owned()
    }
}

impl Currency {
    pub fn new(code: &str) -> Result<Self, MoneyError> {
        match code.as_bytes() {
            &[a, b, c] if [a, b, c].iter().all(u8::is_ascii_uppercase) => Ok(Self([a, b, c])),
            _ => Err(MoneyError::InvalidCurrency(code.to_owned())),
        }
    }

    /// Digits of the currency's minor unit (ISO 4217): 0 for JPY, 3 for KWD, 2 for most.
    pub fn minor_unit_digits(&self) -> u32 {
        let code = self.as_str();
        if ZERO_DECIMAL.contains(&code) {
            0
        } else if THREE_DECIMAL.contains(&code) {
            3
        } else {
            2
        }
    }

    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).expect("Currency::new admits only ASCII")
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// THE rounding rule: 2 decimal places, a midpoint away from zero.
pub fn round_money(d: Decimal) -> Decimal {
    d.round_dp_with_strategy(AMOUNT_DECIMALS, RoundingStrategy::MidpointAwayFromZero)
}

/// Checks an amount that arrived as a `Decimal` (a menu price, a configured fee): not negative (not
/// even -0), at most 2 decimal places as written (1.500 has 3), at most 10 integer digits.
pub fn check_amount(d: Decimal) -> Result<(), AmountProblem> {
    if d.is_sign_negative() {
        Err(AmountProblem::Negative)
    } else if d.scale() > AMOUNT_DECIMALS {
        Err(AmountProblem::TooManyDecimals)
    } else if d >= Decimal::from(10u64.pow(AMOUNT_INTEGER_DIGITS)) {
        Err(AmountProblem::TooLarge)
    } else {
        Ok(())
    }
}

/// Parses an amount written as digits with an optional decimal point: "12.50", "0", "3.5".
/// No sign, exponent, spaces or separators; then the rules of [`check_amount`].
pub fn parse_amount(s: &str) -> Result<Decimal, MoneyError> {
    let invalid = |problem| MoneyError::InvalidAmount { input: s.to_owned(), problem };
    let digits = s.strip_prefix('-').unwrap_or(s);
    let (int, frac) = digits.split_once('.').unwrap_or((digits, "0"));
    let all_digits = |part: &str| !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit());
    if !all_digits(int) || !all_digits(frac) {
        return Err(invalid(AmountProblem::NotANumber));
    }
    if digits.len() < s.len() {
        // Decided on the text, as "-0" would parse to a zero.
        return Err(invalid(AmountProblem::Negative));
    }
    // Decimal holds 28 digits; beyond that, name the part that is too long.
    let d = Decimal::from_str_exact(digits).map_err(|_| {
        invalid(if frac.len() > AMOUNT_DECIMALS as usize {
            AmountProblem::TooManyDecimals
        } else {
            AmountProblem::TooLarge
        })
    })?;
    check_amount(d).map_err(invalid)?;
    Ok(d)
}

/// The canonical text of an amount: rounded by [`round_money`], exactly 2 decimals ("3.50").
pub fn format_amount(d: Decimal) -> String {
    let mut rounded = round_money(d);
    rounded.rescale(AMOUNT_DECIMALS);
    if rounded.is_zero() {
        // Rounding -0.004 leaves -0.00.
        rounded.set_sign_positive(true);
    }
    rounded.to_string()
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use rust_decimal_macros::dec;

    use super::*;

    #[test]
    fn minor_units_follow_iso_4217() {
        let digits = |code: &str| Currency::new(code).unwrap().minor_unit_digits();
        assert_eq!([digits("EUR"), digits("USD"), digits("PKR")], [2, 2, 2]);
        assert_eq!([digits("JPY"), digits("KRW"), digits("XOF")], [0, 0, 0]);
        assert_eq!([digits("KWD"), digits("BHD"), digits("TND")], [3, 3, 3]);
    }

    #[test]
    fn currency_takes_three_capitals() {
        let eur = Currency::new("EUR").unwrap();
        assert_eq!(eur.as_str(), "EUR");
        assert_eq!(eur.to_string(), "EUR");
        for bad in ["", "EU", "EURO", "eur", "Eur", "E1R", "ÉUR", " EUR"] {
            assert_eq!(Currency::new(bad), Err(MoneyError::InvalidCurrency(bad.to_owned())), "{bad:?}");
        }
        assert_eq!(
            Currency::new("eur").unwrap_err().to_string(),
            "\"eur\" is not a currency code: use three capital letters, such as EUR"
        );
    }

    #[test]
    fn round_money_rounds_midpoints_away_from_zero() {
        let cases = [
            (dec!(0.125), dec!(0.13)),
            (dec!(0.135), dec!(0.14)),
            (dec!(0.124), dec!(0.12)),
            (dec!(0.1251), dec!(0.13)),
            (dec!(2.675), dec!(2.68)),
            (dec!(-0.125), dec!(-0.13)),
            (dec!(1.005), dec!(1.01)),
            (dec!(7), dec!(7)),
            (dec!(7.1), dec!(7.1)),
        ];
        for (input, expected) in cases {
            assert_eq!(round_money(input), expected, "{input}");
        }
    }

    #[test]
    fn parse_amount_accepts_plain_decimals() {
        let cases = [
            ("12.50", dec!(12.50)),
            ("0", dec!(0)),
            ("3.5", dec!(3.5)),
            ("0.01", dec!(0.01)),
            ("007.10", dec!(7.10)),
            ("9999999999.99", dec!(9999999999.99)),
        ];
        for (input, expected) in cases {
            assert_eq!(parse_amount(input), Ok(expected), "{input}");
        }
    }

    #[test]
    fn parse_amount_names_the_problem() {
        use AmountProblem::*;
        let cases = [
            ("", NotANumber),
            ("abc", NotANumber),
            ("1,50", NotANumber),
            (".5", NotANumber),
            ("5.", NotANumber),
            ("1.2.3", NotANumber),
            ("+1", NotANumber),
            (" 1", NotANumber),
            ("1e3", NotANumber),
            ("１", NotANumber),
            ("-1", Negative),
            ("-0", Negative),
            ("12.345", TooManyDecimals),
            ("1.500", TooManyDecimals),
            ("1.00000000000000000000000000000000001", TooManyDecimals),
            ("10000000000", TooLarge),
            ("99999999999999999999999999999999999", TooLarge),
        ];
        for (input, problem) in cases {
            assert_eq!(
                parse_amount(input),
                Err(MoneyError::InvalidAmount { input: input.to_owned(), problem }),
                "{input:?}"
            );
        }
        assert_eq!(parse_amount("12.345").unwrap_err().to_string(), "amount \"12.345\" has more than 2 decimal places");
        assert_eq!(
            parse_amount("10000000000").unwrap_err().to_string(),
            "amount \"10000000000\" has more than 10 digits before the decimal point"
        );
    }

    #[test]
    fn check_amount_applies_the_same_rules_to_decimals() {
        assert_eq!(check_amount(dec!(12.50)), Ok(()));
        assert_eq!(check_amount(dec!(-0.01)), Err(AmountProblem::Negative));
        assert_eq!(check_amount(dec!(0.001)), Err(AmountProblem::TooManyDecimals));
        assert_eq!(check_amount(dec!(10000000000)), Err(AmountProblem::TooLarge));
    }

    #[test]
    fn format_amount_writes_exactly_two_decimals() {
        let cases = [
            (dec!(3.5), "3.50"),
            (dec!(0), "0.00"),
            (dec!(12), "12.00"),
            (dec!(0.125), "0.13"),
            (dec!(-0.004), "0.00"),
            (dec!(-1.5), "-1.50"),
            (dec!(1234567.891), "1234567.89"),
        ];
        for (input, expected) in cases {
            assert_eq!(format_amount(input), expected, "{input}");
        }
    }

    proptest! {
        #[test]
        fn format_then_parse_round_trips(cents in 0u64..1_000_000_000_000) {
            let amount = Decimal::new(cents as i64, 2);
            let text = format_amount(amount);
            prop_assert_eq!(text.split_once('.').map(|(_, f)| f.len()), Some(2));
            prop_assert_eq!(parse_amount(&text), Ok(amount));
        }

        #[test]
        fn round_money_is_within_half_a_cent_and_idempotent(units in any::<i64>(), scale in 0u32..=8) {
            let d = Decimal::new(units, scale);
            let rounded = round_money(d);
            prop_assert!(rounded.scale() <= 2);
            prop_assert!((rounded - d).abs() <= dec!(0.005));
            prop_assert_eq!(round_money(rounded), rounded);
        }
    }
}
