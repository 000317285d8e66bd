//! Amounts as the provider wants them: an integer count of the currency's minor unit.

use foodfast_domain::money::Currency;
use rust_decimal::Decimal;
use rust_decimal::prelude::ToPrimitive;

/// `amount` × 10^exponent exactly: 12.5 EUR is 1250. An amount with more decimals than
/// the currency has is refused rather than rounded, since rounding money is the pricing
/// code's decision, not the payment adapter's.
pub(crate) fn to_minor_units(amount: Decimal, currency: &str) -> Result<i64, String> {
    let code = Currency::new(&currency.to_ascii_uppercase()).map_err(|err| err.to_string())?;
    let exponent = code.minor_unit_digits();
    if amount <= Decimal::ZERO {
        return Err(format!("amount {amount} {code} is not positive"));
    }
    let minor = amount
        .checked_mul(Decimal::from(10_i64.pow(exponent)))
        .filter(|minor| minor.fract().is_zero())
        .ok_or_else(|| format!("amount {amount} {code} has more than {exponent} decimals"))?;
    minor.to_i64().ok_or_else(|| format!("amount {amount} {code} is too large"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn minor(amount: &str, currency: &str) -> Result<i64, String> {
        to_minor_units(amount.parse().unwrap(), currency)
    }

    #[test]
    fn scales_by_the_currency_exponent() {
        assert_eq!(minor("12.5", "EUR"), Ok(1250));
        assert_eq!(minor("12.50", "eur"), Ok(1250));
        assert_eq!(minor("0.01", "USD"), Ok(1));
        assert_eq!(minor("19.990000", "EUR"), Ok(1999));
        assert_eq!(minor("500", "JPY"), Ok(500));
        assert_eq!(minor("1.234", "KWD"), Ok(1234));
    }

    #[test]
    fn refuses_what_it_cannot_represent_exactly() {
        assert!(minor("12.345", "EUR").unwrap_err().contains("more than 2 decimals"));
        assert!(minor("500.5", "JPY").is_err());
        assert!(minor("1.2345", "KWD").is_err());
        assert!(minor("0", "EUR").is_err());
        assert!(minor("-1", "EUR").is_err());
        assert!(minor("1", "EURO").is_err());
        assert!(minor("1", "E1R").is_err());
        assert!(minor("79228162514264337593543950335", "EUR").is_err());
    }
}
