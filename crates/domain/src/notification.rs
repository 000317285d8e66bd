//! Notifications to one person: what may be sent, the server's templates,
//! and how failed attempts are retried.

use std::collections::HashMap;
use std::time::Duration;

use crate::validation::{FieldError, length_between, max_len, non_empty};

pub const MAX_TITLE_CHARS: usize = 200;
pub const MAX_BODY_CHARS: usize = 2_000;
pub const IDEMPOTENCY_KEY_CHARS: std::ops::RangeInclusive<usize> = 8..=200;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Channel {
    Push,
    Sms,
    Email,
}

/// Higher priorities are sent first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Priority {
    Critical = 1,
    High = 2,
    Normal = 3,
    Low = 4,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Queued,
    Sending,
    RetryScheduled,
    Sent,
    Failed,
    Dropped,
}

names!(Channel { Push => "push", Sms => "sms", Email => "email" });
names!(State {
    Queued => "queued",
    Sending => "sending",
    RetryScheduled => "retry_scheduled",
    Sent => "sent",
    Failed => "failed",
    Dropped => "dropped",
});

impl Priority {
    pub fn from_rank(rank: i16) -> Option<Self> {
        Some(match rank {
            1 => Priority::Critical,
            2 => Priority::High,
            3 => Priority::Normal,
            4 => Priority::Low,
            _ => return None,
        })
    }

    pub fn rank(self) -> i16 {
        self as i16
    }
}

/// A notification's text, as sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// Title (push) or subject (email); unused for SMS.
    pub title: String,
    pub body: String,
}

impl Message {
    /// Literal text from a caller: title at most 200 characters, body 1 to 2000.
    pub fn literal(title: &str, body: &str) -> Result<Self, FieldError> {
        let (title, body) = (title.trim(), body.trim());
        max_len("message.title", title, MAX_TITLE_CHARS)?;
        non_empty("message.body", body)?;
        max_len("message.body", body, MAX_BODY_CHARS)?;
        Ok(Self { title: title.to_owned(), body: body.to_owned() })
    }
}

/// The server's templates: id, title, body; `{name}` is a parameter.
const TEMPLATES: &[(&str, &str, &str)] = &[
    ("order_confirmed", "Order confirmed", "{restaurant_name} is preparing your order."),
    ("driver_assigned", "Driver on the way", "{driver_name} will pick up your order from {restaurant_name}."),
    ("order_delivered", "Order delivered", "Your order from {restaurant_name} was delivered. Enjoy!"),
    ("order_cancelled", "Order cancelled", "Your order from {restaurant_name} was cancelled: {reason}"),
];

/// Renders template `id` with `params`; every placeholder needs a value.
pub fn render(id: &str, params: &HashMap<String, String>) -> Result<Message, FieldError> {
    let Some(&(_, title, body)) = TEMPLATES.iter().find(|(name, _, _)| *name == id) else {
        let known: Vec<&str> = TEMPLATES.iter().map(|(name, _, _)| *name).collect();
        return Err(FieldError::new("template.template_id", format!("{id:?} is not one of {known:?}")));
    };
    let fill = |text: &str| -> Result<String, FieldError> {
        let mut out = String::with_capacity(text.len());
        let mut rest = text;
        while let Some(start) = rest.find('{') {
            let end = start + rest[start..].find('}').expect("templates close their braces");
            let name = &rest[start + 1..end];
            let value = params
                .get(name)
                .ok_or_else(|| FieldError::new(format!("template.params[{name}]"), "is required by the template"))?;
            out.push_str(&rest[..start]);
            out.push_str(value);
            rest = &rest[end + 1..];
        }
        out.push_str(rest);
        Ok(out)
    };
    let message = Message { title: fill(title)?, body: fill(body)? };
    max_len("template.params", &message.body, MAX_BODY_CHARS)?;
    Ok(message)
}

/// An idempotency key as sent: empty (none) or 8 to 200 characters.
pub fn idempotency_key(key: &str) -> Result<Option<&str>, FieldError> {
    if key.is_empty() {
        return Ok(None);
    }
    length_between("idempotency_key", key, IDEMPOTENCY_KEY_CHARS)?;
    Ok(Some(key))
}

/// How failed attempts are retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included.
    pub max_attempts: u32,
    /// The wait after the first failure; it doubles after each further one.
    pub backoff_base: Duration,
    pub backoff_cap: Duration,
}

impl RetryPolicy {
    /// The wait before the attempt after failed attempt `attempt` (from 1),
    /// or `None` when none is left.
    pub fn next_delay(&self, attempt: u32) -> Option<Duration> {
        (attempt < self.max_attempts)
            .then(|| crate::backoff::doubling(self.backoff_base, self.backoff_cap, attempt.saturating_sub(1)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_fill_every_placeholder_and_name_a_missing_one() {
        let params = HashMap::from([("restaurant_name".to_string(), "Mario's".to_string())]);
        let message = render("order_delivered", &params).unwrap();
        assert_eq!(message.body, "Your order from Mario's was delivered. Enjoy!");
        assert_eq!(message.title, "Order delivered");
        let nul = HashMap::from([("restaurant_name".to_string(), "Mario\0s".to_string())]);
        assert_eq!(render("order_delivered", &nul).unwrap_err().field, "template.params");
        let err = render("driver_assigned", &params).unwrap_err();
        assert_eq!(err.field, "template.params[driver_name]");
        assert_eq!(render("order_lost", &params).unwrap_err().field, "template.template_id");
    }

    #[test]
    fn literal_messages_and_idempotency_keys_are_bounded() {
        assert_eq!(Message::literal(" Hi ", " there ").unwrap(), Message { title: "Hi".into(), body: "there".into() });
        assert_eq!(Message::literal("", " ").unwrap_err().field, "message.body");
        assert_eq!(Message::literal(&"t".repeat(201), "b").unwrap_err().field, "message.title");
        assert_eq!(Message::literal("t", &"b".repeat(2_001)).unwrap_err().field, "message.body");
        assert_eq!(Message::literal("t\0", "b").unwrap_err().field, "message.title");
        assert!(idempotency_key("order:1:\0push").is_err());
        assert_eq!(idempotency_key("").unwrap(), None);
        assert_eq!(idempotency_key("order:1:push").unwrap(), Some("order:1:push"));
        assert!(idempotency_key("short").is_err() && idempotency_key(&"k".repeat(201)).is_err());
    }

    #[test]
    fn retries_back_off_exponentially_up_to_the_cap_and_stop_at_the_last_attempt() {
        let policy =
            RetryPolicy { max_attempts: 4, backoff_base: Duration::from_secs(1), backoff_cap: Duration::from_secs(3) };
        let delays: Vec<_> = (1..=4).map(|attempt| policy.next_delay(attempt)).collect();
        assert_eq!(
            delays,
            [Some(Duration::from_secs(1)), Some(Duration::from_secs(2)), Some(Duration::from_secs(3)), None]
        );
    }

    #[test]
    fn names_and_ranks_read_back() {
        for channel in [Channel::Push, Channel::Sms, Channel::Email] {
            assert_eq!(Channel::parse(channel.as_str()), Some(channel));
        }
        for state in [State::Queued, State::Sending, State::RetryScheduled, State::Sent, State::Failed, State::Dropped]
        {
            assert_eq!(State::parse(state.as_str()), Some(state));
        }
        for priority in [Priority::Critical, Priority::High, Priority::Normal, Priority::Low] {
            assert_eq!(Priority::from_rank(priority.rank()), Some(priority));
        }
        assert!(Priority::Critical < Priority::Low, "critical sorts first");
    }
}
