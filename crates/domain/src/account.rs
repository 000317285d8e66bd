//! What an account's fields must look like: a sign-in email, a password, a
//! display name and an E.164 phone number. Errors name the request field.

use crate::validation::{FieldError, excerpt, max_len, non_empty};

pub const MAX_EMAIL: usize = 254;
pub const MIN_PASSWORD: usize = 10;
pub const MAX_PASSWORD: usize = 128;
pub const MAX_DISPLAY_NAME: usize = 100;

/// The email, trimmed and lower-cased (emails are unique case-insensitively).
pub fn email(field: &str, raw: &str) -> Result<String, FieldError> {
    non_empty(field, raw)?;
    let email = raw.trim().to_lowercase();
    max_len(field, &email, MAX_EMAIL)?;
    let well_formed = match email.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && !domain.contains('@')
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
                && !domain.contains("..")
                && !email.chars().any(|c| c.is_whitespace() || c.is_control())
        }
        None => false,
    };
    if well_formed {
        Ok(email)
    } else {
        Err(FieldError::new(
            field,
            format!("is not an email address (such as ana@example.com): got \"{}\"", excerpt(raw)),
        ))
    }
}

/// A new password: 10 to 128 characters. Never echoed in the message.
pub fn password(field: &str, password: &str) -> Result<(), FieldError> {
    let chars = password.chars().count();
    if (MIN_PASSWORD..=MAX_PASSWORD).contains(&chars) {
        Ok(())
    } else {
        Err(FieldError::new(
            field,
            format!("must be {MIN_PASSWORD} to {MAX_PASSWORD} characters long (it has {chars})"),
        ))
    }
}

/// A display name: 1 to 100 characters, trimmed.
pub fn display_name(field: &str, raw: &str) -> Result<String, FieldError> {
    non_empty(field, raw)?;
    let name = raw.trim();
    max_len(field, name, MAX_DISPLAY_NAME)?;
    if name.chars().any(char::is_control) {
        return Err(FieldError::new(field, "must not contain control characters"));
    }
    Ok(name.to_string())
}

/// An optional phone number in E.164 form (`+` then 8 to 15 digits, the
/// first not 0); empty means none.
pub fn phone(field: &str, raw: &str) -> Result<Option<String>, FieldError> {
    let phone = raw.trim();
    if phone.is_empty() {
        return Ok(None);
    }
    let digits = phone.strip_prefix('+').unwrap_or("");
    if (8..=15).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit()) && !digits.starts_with('0') {
        Ok(Some(phone.to_string()))
    } else {
        Err(FieldError::new(
            field,
            format!("is not an E.164 phone number (such as +33612345678): got \"{}\"", excerpt(raw)),
        ))
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn emails_are_normalised_and_checked() {
        assert_eq!(email("email", "  Ana@Example.COM ").unwrap(), "ana@example.com");
        for bad in [
            "",
            "ana",
            "ana@",
            "@example.com",
            "ana@example",
            "ana@@example.com",
            "a na@example.com",
            "ana@.com",
            "ana@example..com",
        ] {
            let err = email("email", bad).unwrap_err();
            assert_eq!(err.field, "email", "{bad}");
        }
        assert!(email("email", &format!("{}@example.com", "a".repeat(250))).is_err(), "at most 254 characters");
    }

    #[test]
    fn passwords_have_bounds_and_are_never_echoed() {
        assert!(password("password", "0123456789").is_ok());
        let err = password("password", "secret").unwrap_err();
        assert!(!err.message.contains("secret"), "{err}");
        assert!(password("password", &"x".repeat(129)).is_err());
        assert!(password("password", &"é".repeat(10)).is_ok(), "characters, not bytes");
    }

    #[test]
    fn names_and_phones() {
        assert_eq!(display_name("display_name", "  Ana B. ").unwrap(), "Ana B.");
        assert!(display_name("display_name", " ").is_err());
        assert!(display_name("display_name", "a\u{7}b").is_err());
        assert_eq!(phone("phone", "").unwrap(), None);
        assert_eq!(phone("phone", "+33612345678").unwrap().as_deref(), Some("+33612345678"));
        for bad in ["0612345678", "+0612345678", "+33 6 12 34 56 78", "+1234", "+1234567890123456"] {
            assert!(phone("phone", bad).is_err(), "{bad}");
        }
    }

    proptest! {
        #[test]
        fn an_accepted_email_is_lower_case_with_one_at(raw in "\\PC{0,60}") {
            if let Ok(email) = email("email", &raw) {
                prop_assert_eq!(email.matches('@').count(), 1);
                prop_assert_eq!(email.to_lowercase(), email.clone());
                prop_assert!(email.chars().count() <= MAX_EMAIL);
            }
        }

        #[test]
        fn an_accepted_phone_is_plus_and_digits(raw in "[+0-9 ]{0,20}") {
            if let Ok(Some(phone)) = phone("phone", &raw) {
                prop_assert!(phone.starts_with('+'));
                prop_assert!(phone[1..].bytes().all(|b| b.is_ascii_digit()));
            }
        }
    }
}
