//! Devices that receive push notifications.

use crate::validation::{FieldError, max_len};

/// The longest push token (or Web Push subscription JSON) accepted.
pub const MAX_PUSH_TOKEN_CHARS: usize = 4_096;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Platform {
    Ios,
    Android,
    Web,
}

names!(Platform { Ios => "ios", Android => "android", Web => "web" });

/// A push token as sent: required, at most [`MAX_PUSH_TOKEN_CHARS`], taken
/// as is (tokens are opaque; surrounding whitespace is a client's mistake).
pub fn validate_push_token(field: &str, token: &str) -> Result<(), FieldError> {
    if token.is_empty() {
        return Err(FieldError::new(field, "is required"));
    }
    if token.trim() != token {
        return Err(FieldError::new(field, "must not start or end with whitespace"));
    }
    max_len(field, token, MAX_PUSH_TOKEN_CHARS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_push_token_is_required_bounded_and_untrimmed() {
        assert!(validate_push_token("push_token", "fcm:abc").is_ok());
        assert!(validate_push_token("push_token", &"t".repeat(MAX_PUSH_TOKEN_CHARS)).is_ok());
        for bad in ["", " fcm:abc", "fcm:abc\n", "fcm:a\0b", &"t".repeat(MAX_PUSH_TOKEN_CHARS + 1)] {
            assert_eq!(validate_push_token("push_token", bad).unwrap_err().field, "push_token", "{bad:?}");
        }
    }
}
