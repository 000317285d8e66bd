//! Support chat: who may start and join a conversation, what joining does to
//! it, what may be written, and how fast.

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::access::{Principal, Role};
use crate::validation::{FieldError, max_len, non_empty};

pub const MAX_SUBJECT_CHARS: usize = 200;
pub const MAX_TEXT_CHARS: usize = 4_000;
pub const MAX_NOTE_CHARS: usize = 500;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConversationStatus {
    Open,
    Closed,
}

names!(ConversationStatus { Open => "open", Closed => "closed" });

#[derive(Debug, Clone, PartialEq)]
pub struct Conversation {
    pub id: Uuid,
    pub customer_id: Uuid,
    pub order_id: Option<Uuid>,
    pub subject: String,
    pub status: ConversationStatus,
    /// The support agent who last joined.
    pub agent_id: Option<Uuid>,
    /// The `seq` of its latest message; 0 before the first.
    pub last_seq: i64,
    pub created_at: DateTime<Utc>,
    pub last_activity_at: DateTime<Utc>,
}

/// A persisted message. `seq` numbers a conversation's messages from 1 with
/// no gaps: it is the reader's resume cursor.
#[derive(Debug, Clone, PartialEq)]
pub struct ChatMessage {
    pub id: Uuid,
    pub conversation_id: Uuid,
    pub seq: i64,
    pub sender_id: Uuid,
    pub sender_role: Role,
    /// As the other side sees the sender ([`crate::names::display_name`]).
    pub sender_name: String,
    pub text: String,
    /// The sender's id for it; `None` for a closing note.
    pub client_message_id: Option<Uuid>,
    pub sent_at: DateTime<Utc>,
}

/// What joining a conversation changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Join {
    /// It was closed: joining opens it again.
    pub reopens: bool,
    /// An operator who is not its agent yet becomes it.
    pub new_agent: Option<Uuid>,
}

impl Join {
    pub fn changes_anything(&self) -> bool {
        self.reopens || self.new_agent.is_some()
    }
}

/// Only customers start conversations (about themselves).
pub fn may_start(caller: &Principal) -> bool {
    caller.role == Role::Customer
}

impl Conversation {
    /// Its customer, support and admins.
    pub fn may_take_part(&self, caller: &Principal) -> bool {
        caller.is_operator() || (caller.role == Role::Customer && caller.user_id == self.customer_id)
    }

    /// What `caller` joining changes (it may take part).
    pub fn joined_by(&self, caller: &Principal) -> Join {
        Join {
            reopens: self.status == ConversationStatus::Closed,
            new_agent: (caller.is_operator() && self.agent_id != Some(caller.user_id)).then_some(caller.user_id),
        }
    }
}

/// A subject, trimmed: 1 to [`MAX_SUBJECT_CHARS`] characters.
pub fn subject(field: &str, raw: &str) -> Result<String, FieldError> {
    let subject = raw.trim();
    non_empty(field, subject)?;
    max_len(field, subject, MAX_SUBJECT_CHARS)?;
    Ok(subject.to_owned())
}

/// A message's text: not blank, at most [`MAX_TEXT_CHARS`] characters;
/// kept as written apart from surrounding whitespace.
pub fn text(field: &str, raw: &str) -> Result<String, FieldError> {
    let text = raw.trim();
    non_empty(field, text)?;
    max_len(field, text, MAX_TEXT_CHARS)?;
    Ok(text.to_owned())
}

/// A closing note: optional, at most [`MAX_NOTE_CHARS`] characters.
pub fn closing_note(field: &str, raw: &str) -> Result<String, FieldError> {
    let note = raw.trim();
    max_len(field, note, MAX_NOTE_CHARS)?;
    Ok(note.to_owned())
}

/// How fast one chat stream may send messages: a token bucket, `burst`
/// messages at once, then one every `every`.
#[derive(Debug, Clone)]
pub struct SendRate {
    burst: u32,
    every: Duration,
    tokens: f64,
    at: Option<Instant>,
}

impl SendRate {
    pub fn new(burst: u32, every: Duration) -> Self {
        Self { burst, every, tokens: f64::from(burst), at: None }
    }

    /// Whether a message may go at `now`; takes a token if so.
    pub fn allow(&mut self, now: Instant) -> bool {
        if let Some(at) = self.at {
            let refilled = now.saturating_duration_since(at).as_secs_f64() / self.every.as_secs_f64();
            self.tokens = (self.tokens + refilled).min(f64::from(self.burst));
        }
        self.at = Some(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn principal(role: Role) -> Principal {
        Principal { user_id: Uuid::new_v4(), role, restaurant_id: None }
    }

    fn conversation(customer_id: Uuid, status: ConversationStatus, agent_id: Option<Uuid>) -> Conversation {
        let now = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        Conversation {
            id: Uuid::new_v4(),
            customer_id,
            order_id: None,
            subject: "Missing fries".into(),
            status,
            agent_id,
            last_seq: 0,
            created_at: now,
            last_activity_at: now,
        }
    }

    #[test]
    fn its_customer_and_operators_take_part_nobody_else() {
        let customer = principal(Role::Customer);
        let talk = conversation(customer.user_id, ConversationStatus::Open, None);
        assert!(talk.may_take_part(&customer));
        assert!(talk.may_take_part(&principal(Role::Support)));
        assert!(talk.may_take_part(&principal(Role::Admin)));
        assert!(!talk.may_take_part(&principal(Role::Customer)), "another customer");
        for role in [Role::Driver, Role::RestaurantStaff] {
            // Even one whose id happens to be the customer's cannot, by role.
            let outsider = Principal { role, ..customer };
            assert!(!talk.may_take_part(&outsider), "{role:?}");
        }
        assert!(may_start(&customer));
        assert!(!may_start(&principal(Role::Support)), "support answers, it does not open");
    }

    #[test]
    fn joining_reopens_a_closed_one_and_makes_an_operator_its_agent() {
        let customer = principal(Role::Customer);
        let agent = principal(Role::Support);
        let open = conversation(customer.user_id, ConversationStatus::Open, None);
        assert_eq!(open.joined_by(&customer), Join { reopens: false, new_agent: None });
        assert!(!open.joined_by(&customer).changes_anything());
        assert_eq!(open.joined_by(&agent), Join { reopens: false, new_agent: Some(agent.user_id) });

        let served = conversation(customer.user_id, ConversationStatus::Open, Some(agent.user_id));
        assert!(!served.joined_by(&agent).changes_anything(), "the agent coming back changes nothing");
        let colleague = principal(Role::Admin);
        assert_eq!(served.joined_by(&colleague).new_agent, Some(colleague.user_id), "the last to join answers");

        let closed = conversation(customer.user_id, ConversationStatus::Closed, Some(agent.user_id));
        assert_eq!(closed.joined_by(&customer), Join { reopens: true, new_agent: None });
    }

    #[test]
    fn texts_are_trimmed_and_bounded() {
        assert_eq!(text("text", "  hello \n").unwrap(), "hello");
        assert_eq!(text("text", " \t ").unwrap_err().message, "is required");
        assert!(text("text", &"é".repeat(MAX_TEXT_CHARS)).is_ok(), "characters, not bytes");
        let long = text("send.text", &"a".repeat(MAX_TEXT_CHARS + 1)).unwrap_err();
        assert_eq!(long.to_string(), "send.text must be at most 4000 characters long (it has 4001)");
        assert!(text("text", "a\0b").is_err());

        assert_eq!(subject("open.subject", " Cold soup ").unwrap(), "Cold soup");
        assert!(subject("open.subject", "").is_err());
        assert!(subject("open.subject", &"s".repeat(MAX_SUBJECT_CHARS + 1)).is_err());

        assert_eq!(closing_note("close.note", "").unwrap(), "", "a note is optional");
        assert!(closing_note("close.note", &"n".repeat(MAX_NOTE_CHARS + 1)).is_err());
    }

    #[test]
    fn the_send_rate_allows_a_burst_then_one_per_interval() {
        let start = Instant::now();
        let mut rate = SendRate::new(3, Duration::from_secs(1));
        assert!((0..3).all(|_| rate.allow(start)));
        assert!(!rate.allow(start), "the burst is spent");
        assert!(!rate.allow(start + Duration::from_millis(900)));
        assert!(rate.allow(start + Duration::from_millis(1_000)), "one more after the interval");
        assert!(!rate.allow(start + Duration::from_millis(1_100)));
        assert!((0..3).all(|_| rate.allow(start + Duration::from_secs(60))), "refills up to the burst");
        assert!(!rate.allow(start + Duration::from_secs(60)), "and no further");
    }

    proptest! {
        #[test]
        fn never_more_than_the_burst_plus_the_refill(gaps_ms in proptest::collection::vec(0u64..400, 1..200)) {
            let start = Instant::now();
            let mut rate = SendRate::new(5, Duration::from_millis(200));
            let mut now = start;
            let mut allowed = 0u64;
            for gap in gaps_ms {
                now += Duration::from_millis(gap);
                allowed += u64::from(rate.allow(now));
            }
            let elapsed = now.duration_since(start).as_millis() as u64;
            prop_assert!(allowed <= 5 + elapsed / 200, "{allowed} in {elapsed} ms");
        }
    }
}
