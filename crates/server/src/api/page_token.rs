//! Opaque keyset page tokens. Each token is bound to the query it came from,
//! so a token replayed against another query is refused instead of silently
//! paging through the wrong results.

use chrono::{DateTime, Utc};
use foodfast_domain::validation::FieldError;
use sha2::{Digest, Sha256};
use uuid::Uuid;

const FIELD: &str = "page_token";

fn invalid() -> FieldError {
    FieldError::new(FIELD, "is not a page token of this query; start again without one")
}

fn query_tag(query: &str) -> String {
    hex::encode(&Sha256::digest(query.as_bytes())[..8])
}

fn encode(query: &str, position: &str) -> String {
    hex::encode(format!("{}|{position}", query_tag(query)))
}

/// The position part of `token`, if it belongs to `query`.
fn decode<'t>(token: &str, query: &str, buffer: &'t mut String) -> Result<Option<&'t str>, FieldError> {
    if token.is_empty() {
        return Ok(None);
    }
    *buffer = String::from_utf8(hex::decode(token).map_err(|_| invalid())?).map_err(|_| invalid())?;
    let (tag, position) = buffer.split_once('|').ok_or_else(invalid)?;
    if tag != query_tag(query) {
        return Err(invalid());
    }
    Ok(Some(position))
}

/// A restaurant search page: after (distance, id).
pub fn encode_search_page(query: &str, distance_m: u32, id: Uuid) -> String {
    encode(query, &format!("{distance_m}:{id}"))
}

pub fn decode_search_page(token: &str, query: &str) -> Result<Option<(u32, Uuid)>, FieldError> {
    let mut buffer = String::new();
    let Some(position) = decode(token, query, &mut buffer)? else { return Ok(None) };
    let (distance, id) = position.split_once(':').ok_or_else(invalid)?;
    Ok(Some((distance.parse().map_err(|_| invalid())?, id.parse().map_err(|_| invalid())?)))
}

/// A page of a list ordered by time: after (at, id). `query` names the
/// list (the customer's id for its order history, the city for flagged orders).
pub fn encode_time_page(query: &str, at: DateTime<Utc>, id: Uuid) -> String {
    encode(query, &format!("{}:{id}", at.timestamp_micros()))
}

pub fn decode_time_page(token: &str, query: &str) -> Result<Option<(DateTime<Utc>, Uuid)>, FieldError> {
    let mut buffer = String::new();
    let Some(position) = decode(token, query, &mut buffer)? else { return Ok(None) };
    let (micros, id) = position.split_once(':').ok_or_else(invalid)?;
    let at = DateTime::from_timestamp_micros(micros.parse().map_err(|_| invalid())?).ok_or_else(invalid)?;
    Ok(Some((at, id.parse().map_err(|_| invalid())?)))
}

/// A page of a list ordered by sequence number, newest first: before `seq`.
pub fn encode_seq_page(query: &str, seq: i64) -> String {
    encode(query, &seq.to_string())
}

pub fn decode_seq_page(token: &str, query: &str) -> Result<Option<i64>, FieldError> {
    let mut buffer = String::new();
    let Some(position) = decode(token, query, &mut buffer)? else { return Ok(None) };
    Ok(Some(position.parse().map_err(|_| invalid())?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_within_their_query_only() {
        let id = Uuid::new_v4();
        let token = encode_search_page("q1", 120, id);
        assert_eq!(decode_search_page(&token, "q1").unwrap(), Some((120, id)));
        assert!(decode_search_page(&token, "q2").is_err());
        assert_eq!(decode_search_page("", "q1").unwrap(), None);
        assert!(decode_search_page("zz", "q1").is_err());

        let customer = Uuid::new_v4().to_string();
        let at = DateTime::from_timestamp_micros(1_700_000_000_123_456).unwrap();
        let token = encode_time_page(&customer, at, id);
        assert_eq!(decode_time_page(&token, &customer).unwrap(), Some((at, id)));
        assert!(decode_time_page(&token, &Uuid::new_v4().to_string()).is_err());

        let token = encode_seq_page(&customer, 42);
        assert_eq!(decode_seq_page(&token, &customer).unwrap(), Some(42));
        assert!(decode_seq_page(&token, "another conversation").is_err());
        assert!(decode_seq_page(&encode_time_page(&customer, at, id), &customer).is_err(), "another kind of page");
    }
}
