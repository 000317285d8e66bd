//! How people are named to each other: a customer sees "Ali K.", not the
//! driver's full name, and the other way round.

/// First name and the initial of the last, e.g. "Ali Khan Niazi" → "Ali N.".
/// A single name is shown as is; blank stays blank.
pub fn display_name(full_name: &str) -> String {
    let mut words = full_name.split_whitespace();
    let Some(first) = words.next() else { return String::new() };
    match words.last().and_then(|last| last.chars().next()) {
        Some(initial) => format!("{first} {}.", initial.to_uppercase()),
        None => first.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn first_name_and_initial_of_the_last() {
        assert_eq!(display_name("Ali Khan"), "Ali K.");
        assert_eq!(display_name("  Ali   Khan Niazi "), "Ali N.");
        assert_eq!(display_name("Zoë émile"), "Zoë É.");
        assert_eq!(display_name("Cher"), "Cher");
        assert_eq!(display_name("   "), "");
    }

    proptest! {
        #[test]
        fn starts_with_the_first_name_and_adds_at_most_an_initial(name in "\\PC{0,40}") {
            let shown = display_name(&name);
            let first = name.split_whitespace().next().unwrap_or("");
            prop_assert!(shown.starts_with(first));
            prop_assert!(shown.chars().count() <= first.chars().count() + 5);
        }
    }
}
