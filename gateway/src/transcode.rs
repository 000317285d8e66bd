//! REST ↔ protobuf with the proto3 JSON mapping: a request message is built
//! from the JSON body, the query string and the path variables of its route
//! (path wins over body and query), and a response message becomes JSON.
//! Unknown fields and wrong types are refused with a message naming them.

use prost::Message;
use prost_reflect::{DeserializeOptions, DynamicMessage, Kind, MessageDescriptor, SerializeOptions};
use serde_json::{Map, Value};

use crate::routes::{BodyMapping, Route};

/// Why a request cannot become its message: the client's mistake (400).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    #[error("the body is not valid JSON: {0}")]
    MalformedJson(String),
    #[error("the body must be a JSON object")]
    NotAnObject,
    #[error("{0} does not take a body")]
    UnexpectedBody(String),
    #[error("query parameter {0:?} is not a field of the request")]
    UnknownParameter(String),
    #[error("query parameter {0:?} is not taken from the query here (the request's headers set it)")]
    NotInQuery(String),
    #[error("query parameter {0:?} is not percent-encoded UTF-8")]
    BadEncoding(String),
    #[error("{0}")]
    Invalid(String),
}

/// The request message of `route` for a call with these path variables,
/// query string (without `?`) and body.
pub fn request_message(
    route: &Route,
    path_fields: &[(&str, &str)],
    query: &str,
    body: &[u8],
) -> Result<DynamicMessage, RequestError> {
    let descriptor = route.method.input();
    let mut json = Map::new();
    let body = if body.iter().all(u8::is_ascii_whitespace) { None } else { Some(body) };
    match (&route.body, body) {
        (BodyMapping::None, Some(_)) => return Err(RequestError::UnexpectedBody(route.template())),
        (_, None) => {}
        (BodyMapping::Whole, Some(body)) => match parse_json(body)? {
            Value::Object(object) => json = object,
            _ => return Err(RequestError::NotAnObject),
        },
        (BodyMapping::Field(field), Some(body)) => {
            json.insert(field.clone(), parse_json(body)?);
        }
    }
    add_query(&mut json, &descriptor, query)?;
    for (field, raw) in path_fields {
        let value = percent_encoding::percent_decode_str(raw)
            .decode_utf8()
            .map_err(|_| RequestError::BadEncoding((*field).to_string()))?;
        let kind = field_kind(&descriptor, field).expect("routes only bind existing fields");
        insert(&mut json, field, scalar(&kind, &value), false);
    }
    deserialize(descriptor, json)
}

/// A message of `descriptor` from a query string (without `?`) and the
/// fields in `given` (by JSON name), which the query may not set.
pub fn query_message(
    descriptor: MessageDescriptor,
    query: &str,
    given: Map<String, Value>,
) -> Result<DynamicMessage, RequestError> {
    for (key, _) in form_urlencoded::parse(query.as_bytes()) {
        let field = descriptor.get_field_by_name(&key).or_else(|| descriptor.get_field_by_json_name(&key));
        if field.is_some_and(|field| given.contains_key(field.json_name())) {
            return Err(RequestError::NotInQuery(key.to_string()));
        }
    }
    let mut json = given;
    add_query(&mut json, &descriptor, query)?;
    deserialize(descriptor, json)
}

fn add_query(json: &mut Map<String, Value>, descriptor: &MessageDescriptor, query: &str) -> Result<(), RequestError> {
    for (key, value) in form_urlencoded::parse(query.as_bytes()) {
        let kind = field_kind(descriptor, &key).ok_or_else(|| RequestError::UnknownParameter(key.to_string()))?;
        insert(json, &key, scalar(&kind, &value), kind.is_list());
    }
    Ok(())
}

fn deserialize(descriptor: MessageDescriptor, json: Map<String, Value>) -> Result<DynamicMessage, RequestError> {
    let options = DeserializeOptions::new().deny_unknown_fields(true);
    let mut track = serde_path_to_error::Track::new();
    let tracked = serde_path_to_error::Deserializer::new(Value::Object(json), &mut track);
    DynamicMessage::deserialize_with_options(descriptor, tracked, &options).map_err(|err| {
        match track.path().to_string() {
            path if path == "." || path.is_empty() => RequestError::Invalid(err.to_string()),
            path => RequestError::Invalid(format!("{path}: {err}")),
        }
    })
}

/// A response message (protobuf bytes of `descriptor`) as JSON, every field
/// present (defaults included) so clients see the whole shape.
pub fn response_json(descriptor: MessageDescriptor, bytes: &[u8]) -> Result<Value, prost::DecodeError> {
    let message = DynamicMessage::decode(descriptor, bytes)?;
    let options = SerializeOptions::new().skip_default_fields(false);
    Ok(message.serialize_with_options(serde_json::value::Serializer, &options).expect("a message always serializes"))
}

/// The protobuf bytes of a request message.
pub fn encode(message: &DynamicMessage) -> Vec<u8> {
    message.encode_to_vec()
}

fn parse_json(body: &[u8]) -> Result<Value, RequestError> {
    serde_json::from_slice(body).map_err(|err| RequestError::MalformedJson(err.to_string()))
}

/// What a query or path value must become for the JSON mapping to take it.
#[derive(Debug, Clone)]
struct FieldKind {
    kind: Kind,
    list: bool,
}

impl FieldKind {
    fn is_list(&self) -> bool {
        self.list
    }
}

/// The kind of the (dotted) field `path` of `message`, by proto or JSON name.
fn field_kind(message: &MessageDescriptor, path: &str) -> Option<FieldKind> {
    let mut message = message.clone();
    let mut names = path.split('.').peekable();
    while let Some(name) = names.next() {
        let field = message.get_field_by_name(name).or_else(|| message.get_field_by_json_name(name))?;
        if names.peek().is_none() {
            return (!field.is_map()).then(|| FieldKind { kind: field.kind(), list: field.is_list() });
        }
        match field.kind() {
            Kind::Message(inner) if !field.is_list() => message = inner,
            _ => return None,
        }
    }
    None
}

/// Strings everywhere the JSON mapping accepts them (numbers, enums,
/// well-known types); booleans must be JSON booleans.
fn scalar(kind: &FieldKind, value: &str) -> Value {
    match (&kind.kind, value) {
        (Kind::Bool, "true") => Value::Bool(true),
        (Kind::Bool, "false") => Value::Bool(false),
        _ => Value::String(value.to_string()),
    }
}

/// Sets the dotted `path` in `json`; a repeated field collects every value.
fn insert(json: &mut Map<String, Value>, path: &str, value: Value, list: bool) {
    let (parents, leaf) = match path.rsplit_once('.') {
        Some((parents, leaf)) => (Some(parents), leaf),
        None => (None, path),
    };
    let mut object = json;
    for parent in parents.into_iter().flat_map(|p| p.split('.')) {
        let entry = object.entry(parent.to_string()).or_insert_with(|| Value::Object(Map::new()));
        if !entry.is_object() {
            *entry = Value::Object(Map::new());
        }
        object = entry.as_object_mut().expect("made an object above");
    }
    if list {
        match object.entry(leaf.to_string()).or_insert_with(|| Value::Array(Vec::new())) {
            Value::Array(values) => values.push(value),
            other => *other = Value::Array(vec![value]),
        }
    } else {
        object.insert(leaf.to_string(), value);
    }
}

#[cfg(test)]
mod tests {
    use foodfast_api::v1 as pb;

    use super::*;
    use crate::routes::{RouteTable, Verb};

    fn table() -> RouteTable {
        RouteTable::from_descriptor_set(foodfast_api::FILE_DESCRIPTOR_SET).unwrap()
    }

    fn request<M: Message + Default>(verb: Verb, path: &str, query: &str, body: &str) -> Result<M, RequestError> {
        let table = table();
        let (route, fields) = table.find(verb, path).unwrap();
        let message = request_message(route, &fields, query, body.as_bytes())?;
        Ok(M::decode(encode(&message).as_slice()).unwrap())
    }

    #[test]
    fn query_parameters_fill_the_request_with_their_types() {
        let search: pb::SearchNearbyRequest = request(
            Verb::Get,
            "/api/v1/restaurants",
            "lat=48.85&lng=2.35&radius_m=3000&cuisine=pizza&open_now=true&pageToken=abc%3D",
            "",
        )
        .unwrap();
        assert_eq!((search.lat, search.lng, search.radius_m, search.open_now), (48.85, 2.35, 3000, true));
        assert_eq!((search.cuisine.as_str(), search.page_token.as_str()), ("pizza", "abc="), "proto or JSON names");
        let not_a_number = request::<pb::SearchNearbyRequest>(Verb::Get, "/api/v1/restaurants", "lat=north", "");
        assert!(matches!(not_a_number, Err(RequestError::Invalid(_))), "{not_a_number:?}");
    }

    #[test]
    fn a_body_and_path_variables_make_one_message_and_the_path_wins() {
        let update: pb::UpdateOrderStatusRequest = request(
            Verb::Patch,
            "/api/v1/restaurants/orders/o%2F1",
            "",
            r#"{"status": "accepted", "orderId": "from-body"}"#,
        )
        .unwrap();
        assert_eq!((update.order_id.as_str(), update.status.as_str()), ("o/1", "accepted"));
    }

    #[test]
    fn mistakes_are_named() {
        let unknown = request::<pb::GetOrderRequest>(Verb::Get, "/api/v1/orders/o1", "colour=red", "").unwrap_err();
        assert_eq!(unknown, RequestError::UnknownParameter("colour".into()));
        let body = request::<pb::GetOrderRequest>(Verb::Get, "/api/v1/orders/o1", "", "{}").unwrap_err();
        assert!(matches!(body, RequestError::UnexpectedBody(_)), "{body:?}");
        let malformed = request::<pb::CancelOrderRequest>(Verb::Post, "/api/v1/orders/o1/cancel", "", "{").unwrap_err();
        assert!(matches!(malformed, RequestError::MalformedJson(_)), "{malformed:?}");
        let field =
            request::<pb::CancelOrderRequest>(Verb::Post, "/api/v1/orders/o1/cancel", "", r#"{"why": 1}"#).unwrap_err();
        assert!(field.to_string().contains("why"), "{field}");
        let wrong_type =
            request::<pb::CancelOrderRequest>(Verb::Post, "/api/v1/orders/o1/cancel", "", r#"{"reason": 5}"#)
                .unwrap_err();
        assert!(matches!(wrong_type, RequestError::Invalid(_)), "{wrong_type:?}");
        let array = request::<pb::CancelOrderRequest>(Verb::Post, "/api/v1/orders/o1/cancel", "", "[]").unwrap_err();
        assert_eq!(array, RequestError::NotAnObject);
    }

    #[test]
    fn responses_become_proto3_json_with_every_field() {
        let table = table();
        let (route, _) = table.find(Verb::Get, "/api/v1/orders/o1").unwrap();
        let response = pb::GetOrderResponse {
            order: Some(pb::Order { order_id: "o1".into(), last_event_seq: 7, ..Default::default() }),
        };
        let json = response_json(route.method.output(), &response.encode_to_vec()).unwrap();
        assert_eq!(json["order"]["orderId"], "o1");
        assert_eq!(json["order"]["lastEventSeq"], "7", "64-bit integers are strings");
        assert_eq!(json["order"]["status"], "ORDER_STATUS_UNSPECIFIED");
        assert_eq!(json["order"]["customerNote"], "", "defaults are present");
    }
}
