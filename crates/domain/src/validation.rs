//! Small checks shared by every handler. Errors name the request field (a proto field path such as
//! `items[2].item_id`), so they map straight onto `INVALID_ARGUMENT` field violations.

use uuid::Uuid;

/// A request field that failed validation. Displays as "`field` `message`", e.g.
/// "`items[2].item_id is not a UUID …`".
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field} {message}")]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self { field: field.into(), message: message.into() }
    }
}

/// Parses a UUID in any of the usual spellings; empty and nil are refused, as proto3 sends "" for unset.
pub fn parse_uuid(field: &str, s: &str) -> Result<Uuid, FieldError> {
    non_empty(field, s)?;
    match Uuid::parse_str(s) {
        Ok(id) if id.is_nil() => Err(FieldError::new(field, "must not be the nil UUID")),
        Ok(id) => Ok(id),
        Err(_) => Err(FieldError::new(
            field,
            format!("is not a UUID (such as 67e55044-10b1-426f-9247-bb680e5fe0c8): got \"{}\"", excerpt(s)),
        )),
    }
}

/// Refuses an empty or whitespace-only value.
pub fn non_empty(field: &str, s: &str) -> Result<(), FieldError> {
    if s.trim().is_empty() { Err(FieldError::new(field, "is required")) } else { Ok(()) }
}

/// Refuses a NUL character: PostgreSQL cannot store one in text (CockroachDB
/// can), so it would fail only on one engine, and late.
pub fn no_nul(field: &str, s: &str) -> Result<(), FieldError> {
    if s.contains('\0') { Err(FieldError::new(field, "must not contain NUL characters")) } else { Ok(()) }
}

/// Refuses a value longer than `max_chars` characters (not bytes: names are not ASCII everywhere),
/// or holding a NUL (see [`no_nul`]): every free text gets a bound, so every one gets both.
pub fn max_len(field: &str, s: &str, max_chars: usize) -> Result<(), FieldError> {
    no_nul(field, s)?;
    let chars = s.chars().count();
    if chars > max_chars {
        Err(FieldError::new(field, format!("must be at most {max_chars} characters long (it has {chars})")))
    } else {
        Ok(())
    }
}

/// Refuses a value whose length in characters is outside `chars`, or that holds a NUL.
pub fn length_between(field: &str, s: &str, chars: std::ops::RangeInclusive<usize>) -> Result<(), FieldError> {
    no_nul(field, s)?;
    let count = s.chars().count();
    if chars.contains(&count) {
        Ok(())
    } else {
        let (min, max) = chars.into_inner();
        Err(FieldError::new(field, format!("must be {min} to {max} characters long (it has {count})")))
    }
}

/// The page size to use: 0 (proto3's "unset") means `default`, anything above `max` is cut to `max`.
pub fn page_size(requested: u32, default: u32, max: u32) -> u32 {
    if requested == 0 { default.min(max) } else { requested.min(max) }
}

/// The start of `s`, for quoting user input in messages without echoing megabytes back.
pub(crate) fn excerpt(s: &str) -> String {
    const MAX: usize = 40;
    match s.char_indices().nth(MAX) {
        Some((end, _)) => format!("{}…", &s[..end]),
        None => s.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_uuid_accepts_the_usual_spellings() {
        let id = Uuid::parse_str("67e55044-10b1-426f-9247-bb680e5fe0c8").unwrap();
        for s in [
            "67e55044-10b1-426f-9247-bb680e5fe0c8",
            "67E55044-10B1-426F-9247-BB680E5FE0C8",
            "67e5504410b1426f9247bb680e5fe0c8",
        ] {
            assert_eq!(parse_uuid("restaurant_id", s), Ok(id), "{s}");
        }
    }

    #[test]
    fn parse_uuid_names_the_field_and_the_problem() {
        let err = parse_uuid("items[2].item_id", "pizza").unwrap_err();
        assert_eq!(err.field, "items[2].item_id");
        assert_eq!(
            err.to_string(),
            "items[2].item_id is not a UUID (such as 67e55044-10b1-426f-9247-bb680e5fe0c8): got \"pizza\""
        );
        assert_eq!(parse_uuid("order_id", "").unwrap_err().to_string(), "order_id is required");
        assert_eq!(
            parse_uuid("order_id", "00000000-0000-0000-0000-000000000000").unwrap_err().message,
            "must not be the nil UUID"
        );
    }

    #[test]
    fn parse_uuid_does_not_echo_huge_input() {
        let err = parse_uuid("order_id", &"x".repeat(10_000)).unwrap_err();
        assert!(err.message.len() < 200, "{}", err.message);
        assert!(err.message.ends_with("…\""));
    }

    #[test]
    fn non_empty_refuses_blank() {
        assert!(non_empty("name", "Pizza").is_ok());
        for s in ["", " ", "\t\n"] {
            assert_eq!(non_empty("name", s), Err(FieldError::new("name", "is required")));
        }
    }

    #[test]
    fn every_bounded_text_refuses_nul() {
        let nul = "fine\0text";
        assert_eq!(max_len("note", nul, 100).unwrap_err().to_string(), "note must not contain NUL characters");
        assert_eq!(length_between("reason", nul, 1..=100).unwrap_err().field, "reason");
        assert!(max_len("note", "fine text", 100).is_ok());
    }

    #[test]
    fn max_len_counts_characters_not_bytes() {
        assert!(max_len("name", "ééé", 3).is_ok());
        assert!(max_len("name", "", 0).is_ok());
        assert_eq!(
            max_len("name", "éééé", 3).unwrap_err().to_string(),
            "name must be at most 3 characters long (it has 4)"
        );
    }

    #[test]
    fn page_size_defaults_and_clamps() {
        assert_eq!(page_size(0, 20, 100), 20);
        assert_eq!(page_size(1, 20, 100), 1);
        assert_eq!(page_size(100, 20, 100), 100);
        assert_eq!(page_size(101, 20, 100), 100);
        assert_eq!(page_size(u32::MAX, 20, 100), 100);
        // A default above the maximum is still capped.
        assert_eq!(page_size(0, 500, 100), 100);
    }

    #[test]
    fn excerpt_cuts_on_character_boundaries() {
        assert_eq!(excerpt("short"), "short");
        let long = "é".repeat(41);
        assert_eq!(excerpt(&long), format!("{}…", "é".repeat(40)));
    }
}
