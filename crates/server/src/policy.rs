//! Who may call what, and the audit trail of what they changed: one tower
//! layer around each service, driven by one table that classifies every RPC
//! of the contract (a test fails when a new RPC is not in it).
//!
//! Access is checked by role here, before any handler runs: no token where
//! one is needed is `UNAUTHENTICATED`, a role the RPC is not for is
//! `PERMISSION_DENIED`. Which resources a caller may touch (its own orders,
//! its restaurant's menu) is checked per resource by the handlers.
//!
//! Every state-changing call that succeeds leaves an audit row saying who
//! did what to which resource, when. The resource id is read from the
//! request message or, for creations, from the answer; the answer is held
//! until its row is written.

use std::convert::Infallible;
use std::task::{Context, Poll};

use bytes::Buf;
use foodfast_domain::access::{Principal, Role};
use foodfast_store::audit::{AuditEntry, AuditLog};
use futures::future::BoxFuture;
use http_body_util::{BodyExt, Limited, StreamBody};
use prost_reflect::{DescriptorPool, DynamicMessage, MessageDescriptor, Value};
use tonic::body::Body;
use tonic::server::NamedService;
use tower::Service;

use crate::auth::RefusedToken;

/// Where an audited call's resource id comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdFrom {
    /// A (dotted) field of the request.
    Request(&'static str),
    /// A (dotted) field of the answer: the call created the resource.
    Response(&'static str),
    /// The caller's own account.
    Caller,
}

/// What the audit does with an RPC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Audit {
    /// A state change on a resource of this kind.
    Changes(&'static str, IdFrom),
    /// Reads only.
    ReadOnly,
    /// Changes state but is recorded elsewhere, for the reason given.
    RecordedElsewhere(&'static str),
}

/// Who may call an RPC (before per-resource checks).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone, with or without a token.
    Public,
    /// Any signed-in caller.
    Authenticated,
    /// Signed-in callers with one of these roles.
    Roles(&'static [Role]),
}

use Access::{Authenticated, Public, Roles};
use Audit::{Changes, ReadOnly, RecordedElsewhere};
use IdFrom::{Caller, Request, Response};

const ADMINS: Access = Roles(&[Role::Admin]);
const OPS: Access = Roles(&[Role::Support, Role::Admin]);
const CUSTOMERS: Access = Roles(&[Role::Customer]);
const CUSTOMERS_AND_OPS: Access = Roles(&[Role::Customer, Role::Support, Role::Admin]);
const DRIVERS: Access = Roles(&[Role::Driver]);
const DRIVERS_AND_OPS: Access = Roles(&[Role::Driver, Role::Support, Role::Admin]);
const STAFF_AND_ADMINS: Access = Roles(&[Role::RestaurantStaff, Role::Admin]);
const STAFF_AND_OPS: Access = Roles(&[Role::RestaurantStaff, Role::Support, Role::Admin]);

/// Every RPC of `foodfast.v1`, by `Service/Method`: who may call it (as the
/// contract's comments say) and what the audit records.
pub const RPCS: &[(&str, Access, Audit)] = &[
    ("AccountService/Register", Public, Changes("account", Response("profile.account_id"))),
    ("AccountService/Login", Public, Changes("account", Response("profile.account_id"))),
    (
        "AccountService/RefreshToken",
        Public,
        RecordedElsewhere("refresh_tokens records each token's issue, rotation, revocation"),
    ),
    (
        "AccountService/Logout",
        Public,
        RecordedElsewhere("refresh_tokens records each token's issue, rotation, revocation"),
    ),
    ("AccountService/GetProfile", Authenticated, ReadOnly),
    ("AccountService/UpdateProfile", Authenticated, Changes("account", Caller)),
    ("AccountService/CreateAccount", ADMINS, Changes("account", Response("profile.account_id"))),
    ("DispatchService/AssignDriver", OPS, Changes("order", Request("order_id"))),
    ("DispatchService/GetMatchingState", OPS, ReadOnly),
    ("DispatchService/ListFlaggedOrders", OPS, ReadOnly),
    (
        "DriverService/Connect",
        DRIVERS,
        RecordedElsewhere("pings are telemetry; delivery steps are order events with their actor"),
    ),
    (
        "DriverService/ReportLocation",
        DRIVERS,
        RecordedElsewhere("pings are telemetry, kept in the location time series"),
    ),
    ("DriverService/SetAvailability", DRIVERS, Changes("driver", Caller)),
    ("DriverService/GetDriverState", DRIVERS_AND_OPS, ReadOnly),
    ("DriverService/AcceptOffer", DRIVERS, Changes("delivery", Request("delivery_id"))),
    ("DriverService/DeclineOffer", DRIVERS, Changes("delivery", Request("delivery_id"))),
    ("DriverService/MarkArrived", DRIVERS, Changes("order", Request("order_id"))),
    ("DriverService/MarkPickedUp", DRIVERS, Changes("order", Request("order_id"))),
    ("DriverService/MarkDelivered", DRIVERS, Changes("order", Request("order_id"))),
    ("MediaService/UploadImage", Authenticated, Changes("upload", Response("job_id"))),
    ("MediaService/GetUploadJob", Authenticated, ReadOnly),
    ("NotificationService/SendNotification", OPS, Changes("notification", Response("notification_id"))),
    ("NotificationService/GetNotification", Authenticated, ReadOnly),
    ("NotificationService/RegisterDevice", Authenticated, Changes("device", Response("device_id"))),
    ("NotificationService/UnregisterDevice", Authenticated, Changes("device", Caller)),
    ("NotificationService/WatchAnnouncements", Public, ReadOnly),
    (
        "NotificationService/PublishAnnouncement",
        ADMINS,
        Changes("announcement", Response("announcement.announcement_id")),
    ),
    ("OrderService/Quote", CUSTOMERS, ReadOnly),
    ("OrderService/CreateOrder", CUSTOMERS, Changes("order", Response("order.order_id"))),
    ("OrderService/GetOrder", Authenticated, ReadOnly),
    ("OrderService/ListOrders", CUSTOMERS_AND_OPS, ReadOnly),
    ("OrderService/CancelOrder", CUSTOMERS_AND_OPS, Changes("order", Request("order_id"))),
    ("RestaurantService/CreateRestaurant", ADMINS, Changes("restaurant", Response("restaurant.restaurant_id"))),
    ("RestaurantService/UpdateRestaurant", STAFF_AND_ADMINS, Changes("restaurant", Request("restaurant_id"))),
    ("RestaurantService/GetRestaurant", Public, ReadOnly),
    ("RestaurantService/SearchNearby", Public, ReadOnly),
    ("RestaurantService/GetMenu", Public, ReadOnly),
    ("RestaurantService/UpsertMenu", STAFF_AND_ADMINS, Changes("restaurant", Request("restaurant_id"))),
    ("RestaurantService/WatchOrders", STAFF_AND_OPS, ReadOnly),
    ("RestaurantService/UpdateOrderStatus", STAFF_AND_ADMINS, Changes("order", Request("order_id"))),
    ("SupportService/Chat", CUSTOMERS_AND_OPS, RecordedElsewhere("a conversation's messages are its record")),
    ("SupportService/ListConversations", CUSTOMERS_AND_OPS, ReadOnly),
    ("SupportService/GetConversationHistory", CUSTOMERS_AND_OPS, ReadOnly),
    ("TrackingService/TrackOrder", Authenticated, ReadOnly),
    ("TrackingService/GetDriverTrack", DRIVERS_AND_OPS, ReadOnly),
    ("TrackingService/ExportCityPings", OPS, ReadOnly),
];

/// The access and audit of `path` (`/foodfast.v1.Service/Method`).
fn policy_of(path: &str) -> Option<(Access, Audit)> {
    let method = path.strip_prefix("/foodfast.v1.")?;
    RPCS.iter().find(|(name, ..)| *name == method).map(|(_, access, audit)| (*access, *audit))
}

/// Why `caller` may not call `method`, if it may not. `refused_token`: the
/// token the call came with was refused (it matters only where a caller is
/// needed).
fn refusal(
    access: Access,
    caller: Option<&Principal>,
    refused_token: Option<&RefusedToken>,
    method: &str,
) -> Option<tonic::Status> {
    match (access, caller) {
        (Public, _) => None,
        (_, None) => Some(match refused_token {
            Some(RefusedToken(status)) => status.clone(),
            None => {
                tonic::Status::unauthenticated(format!("{method} needs a bearer token in the `authorization` metadata"))
            }
        }),
        (Authenticated, Some(_)) => None,
        (Roles(roles), Some(caller)) if roles.contains(&caller.role) => None,
        (Roles(roles), Some(caller)) => {
            let allowed = roles.iter().map(|role| role.as_str()).collect::<Vec<_>>().join(", ");
            Some(tonic::Status::permission_denied(format!(
                "{method} is for {allowed}; a {} may not call it",
                caller.role.as_str()
            )))
        }
    }
}

/// Wraps one service: callers are checked against the table, and audited
/// calls are recorded in `log`.
#[derive(Clone)]
pub struct Guarded<S> {
    inner: S,
    log: AuditLog,
    pool: DescriptorPool,
    /// Messages are buffered to read ids; the server refuses larger ones anyway.
    max_message_bytes: usize,
}

impl<S> Guarded<S> {
    pub fn new(inner: S, log: AuditLog, max_message_bytes: usize) -> Self {
        let pool =
            DescriptorPool::decode(foodfast_api::FILE_DESCRIPTOR_SET).expect("the contract's descriptors decode");
        Self { inner, log, pool, max_message_bytes }
    }
}

impl<S: NamedService> NamedService for Guarded<S> {
    const NAME: &'static str = S::NAME;
}

impl<S> Service<http::Request<Body>> for Guarded<S>
where
    S: Service<http::Request<Body>, Response = http::Response<Body>, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        let path = request.uri().path().to_string();
        let caller = request.extensions().get::<Principal>().copied();
        // An RPC missing from the table is refused: the table test names it.
        let Some((access, audit)) = policy_of(&path) else {
            let status = tonic::Status::permission_denied(format!("{path} has no access rule"));
            return Box::pin(async move { Ok(status.into_http()) });
        };
        let refused_token = request.extensions().get::<RefusedToken>();
        if let Some(status) = refusal(access, caller.as_ref(), refused_token, path.trim_start_matches('/')) {
            return Box::pin(async move { Ok(status.into_http()) });
        }
        let Changes(kind, from) = audit else {
            return Box::pin(self.inner.call(request));
        };
        // The ready inner service serves this call; a fresh clone waits for the next.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let (log, pool, limit) = (self.log.clone(), self.pool.clone(), self.max_message_bytes + 5);
        Box::pin(async move {
            let method = pool
                .get_service_by_name(path.trim_start_matches('/').split('/').next().unwrap_or(""))
                .and_then(|service| service.methods().find(|m| path.ends_with(&format!("/{}", m.name()))));
            let request_id = header(request.headers(), "x-request-id");
            let (request, mut resource_id) = match (from, &method) {
                (Request(field), Some(method)) => {
                    let (parts, body) = request.into_parts();
                    let Ok(bytes) = Limited::new(body, limit).collect().await.map(|c| c.to_bytes()) else {
                        return Ok(tonic::Status::resource_exhausted("the request is too large").into_http());
                    };
                    let id = field_of(&method.input(), &bytes, field);
                    (http::Request::from_parts(parts, Body::new(http_body_util::Full::new(bytes))), id)
                }
                (Caller, _) => (request, caller.map(|caller| caller.user_id.to_string())),
                _ => (request, None),
            };
            let response = inner.call(request).await?;
            let (parts, body) = response.into_parts();
            let Ok(collected) = Limited::new(body, limit).collect().await else {
                return Ok(tonic::Status::internal("the answer could not be read").into_http());
            };
            let trailers = collected.trailers().cloned();
            let status = trailers
                .as_ref()
                .and_then(|t| header_opt(t, "grpc-status"))
                .or_else(|| header_opt(&parts.headers, "grpc-status"));
            let bytes = collected.to_bytes();
            if status.as_deref() == Some("0") {
                if let (Response(field), Some(method)) = (from, &method) {
                    resource_id = field_of(&method.output(), &bytes, field);
                }
                let entry = AuditEntry {
                    at: chrono::Utc::now(),
                    actor_id: caller.map(|caller| caller.user_id),
                    actor_role: caller.map_or("anonymous", |caller| caller.role.as_str()).to_string(),
                    action: path.trim_start_matches('/').to_string(),
                    resource_kind: kind.to_string(),
                    resource_id: resource_id.unwrap_or_default(),
                    request_id,
                };
                if let Err(err) = log.record(&entry).await {
                    // The change is made; refusing the answer now would only invite a retry.
                    tracing::error!(error = %foodfast_store::Chain(&err), action = %entry.action, "audit row not written");
                }
            }
            let body = match trailers {
                // Trailers-only (a refusal): the headers carry the status and
                // must end the stream; grpc-go and grpcio read a body after
                // them as a stream closed without trailers.
                None if bytes.is_empty() => Body::empty(),
                trailers => {
                    let mut frames = vec![Ok::<_, Infallible>(http_body::Frame::data(bytes))];
                    frames.extend(trailers.map(|trailers| Ok(http_body::Frame::trailers(trailers))));
                    Body::new(StreamBody::new(futures::stream::iter(frames)))
                }
            };
            Ok(http::Response::from_parts(parts, body))
        })
    }
}

fn header(headers: &http::HeaderMap, name: &str) -> String {
    header_opt(headers, name).unwrap_or_default()
}

fn header_opt(headers: &http::HeaderMap, name: &str) -> Option<String> {
    headers.get(name).and_then(|value| value.to_str().ok()).map(str::to_string)
}

/// The string at `path` (dotted) in the first gRPC frame of `body`, a
/// `message` (uncompressed frames only).
fn field_of(message: &MessageDescriptor, mut body: &[u8], path: &str) -> Option<String> {
    if body.len() < 5 || body[0] != 0 {
        return None;
    }
    body.advance(1);
    let length = body.get_u32() as usize;
    let decoded = DynamicMessage::decode(message.clone(), body.get(..length)?).ok()?;
    let mut value = Value::Message(decoded);
    for name in path.split('.') {
        let Value::Message(message) = value else { return None };
        value = message.get_field_by_name(name)?.into_owned();
    }
    match value {
        Value::String(id) if !id.is_empty() => Some(id),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_rpc_of_the_contract_is_classified_once_with_fields_that_exist() {
        let pool = DescriptorPool::decode(foodfast_api::FILE_DESCRIPTOR_SET).unwrap();
        let mut methods = Vec::new();
        for service in pool.services().filter(|s| s.package_name() == "foodfast.v1") {
            for method in service.methods() {
                methods.push(format!("{}/{}", service.name(), method.name()));
                let audit = policy_of(&format!("/{}/{}", service.full_name(), method.name())).map(|(_, audit)| audit);
                let exists = |message: MessageDescriptor, path: &str| {
                    let mut message = Some(message);
                    for name in path.split('.') {
                        let field = message.take().and_then(|m| m.get_field_by_name(name));
                        let Some(field) = field else { return false };
                        message = field.kind().as_message().cloned();
                    }
                    true
                };
                match audit {
                    None => panic!("{}/{} is not in policy::RPCS", service.name(), method.name()),
                    Some(Changes(_, Request(path))) => assert!(exists(method.input(), path), "{path}"),
                    Some(Changes(_, Response(path))) => assert!(exists(method.output(), path), "{path}"),
                    Some(_) => {}
                }
            }
        }
        assert_eq!(methods.len(), RPCS.len(), "RPCS lists exactly the contract's RPCs");
    }

    #[test]
    fn ids_are_read_from_grpc_frames() {
        use prost::Message;
        let pool = DescriptorPool::decode(foodfast_api::FILE_DESCRIPTOR_SET).unwrap();
        let input = pool.get_message_by_name("foodfast.v1.CancelOrderRequest").unwrap();
        let message = foodfast_api::v1::CancelOrderRequest { order_id: "o-1".into(), ..Default::default() };
        let encoded = message.encode_to_vec();
        let mut frame = vec![0u8];
        frame.extend_from_slice(&(encoded.len() as u32).to_be_bytes());
        frame.extend_from_slice(&encoded);
        assert_eq!(field_of(&input, &frame, "order_id").as_deref(), Some("o-1"));
        assert_eq!(field_of(&input, &frame[..3], "order_id"), None, "a truncated frame has no id");
    }
}
