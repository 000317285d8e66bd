//! A stand-in for a Stripe-like card payment provider. The payment tests run it on
//! loopback, and `make run` uses it as the demo provider, so it speaks exactly the
//! protocol `foodfast-payments` speaks to a real one:
//!
//! | request | answer |
//! | --- | --- |
//! | `POST /v1/payment_intents` `{amount, currency, payment_method, capture_method: "manual", metadata}` | 200 `{id, status: "requires_capture"}`, 402 on a decline |
//! | `POST /v1/payment_intents/{id}/capture` | 200 `{id, status: "succeeded"}` |
//! | `POST /v1/payment_intents/{id}/cancel` | 200 `{id, status: "canceled"}` |
//! | `GET /v1/payment_intents/{id}` | 200 `{id, status}`; a refund leaves `succeeded`, as Stripe's does |
//! | `POST /v1/refunds` `{payment_intent}` | 200 `{id, payment_intent, status: "succeeded"}` |
//!
//! Errors are `{"error": {"type", "code", "message"}}`. Every request needs
//! `Authorization: Bearer <api key>` (401 otherwise). A repeated `Idempotency-Key` gets
//! the first answer again, also while the first is still being worked out; server
//! errors are not saved, so a retry runs again. The payment method picks the outcome,
//! like a provider's test cards:
//!
//! | payment method | outcome |
//! | --- | --- |
//! | `pm_card_declined` | 402 `card_declined` |
//! | `pm_card_insufficient_funds` | 402 `insufficient_funds` |
//! | `pm_provider_error` | 500 on every call |
//! | `pm_provider_timeout` | answers only after [`SandboxConfig::timeout_delay`] |
//! | `pm_flaky` | 503 on the first attempt of each idempotency key, then success |
//! | `pm_provider_oversized` | 200 with a 2 MiB body on every call |
//! | `pm_capture_answer_lost` | a capture takes the funds, but every capture call answers 500 |
//! | anything else, e.g. `pm_card_visa` | approved |
//!
//! Captures, cancels and refunds behave by the payment method of their intent.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::OnceCell;
use tokio::task::JoinHandle;

/// How the sandbox behaves.
#[derive(Debug, Clone)]
pub struct SandboxConfig {
    /// The only key accepted as `Authorization: Bearer <key>`.
    pub api_key: String,
    /// How long `pm_provider_timeout` makes every call wait before it answers.
    pub timeout_delay: Duration,
}

impl Default for SandboxConfig {
    fn default() -> Self {
        Self { api_key: "sk_test_sandbox".into(), timeout_delay: Duration::from_secs(30) }
    }
}

/// One request as it arrived, recorded before authentication so that tests can count
/// every attempt a client made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedCall {
    pub method: String,
    pub path: String,
    pub idempotency_key: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IntentStatus {
    /// Funds held, waiting for capture or cancel (`requires_capture`).
    Authorized,
    Captured,
    Canceled,
    Refunded,
}

/// A payment intent as the sandbox holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IntentState {
    pub id: String,
    /// In minor units, e.g. cents.
    pub amount: i64,
    pub currency: String,
    pub payment_method: String,
    pub metadata: HashMap<String, String>,
    pub status: IntentStatus,
}

/// A running sandbox; it stops when dropped.
pub struct Sandbox {
    addr: SocketAddr,
    shared: Arc<Shared>,
    server: JoinHandle<()>,
}

impl Sandbox {
    /// Starts with the default configuration. Panics if `addr` cannot be bound, which
    /// suits tests (pass port 0); a program should call [`Sandbox::start_with`].
    pub async fn start(addr: SocketAddr) -> Sandbox {
        match Self::start_with(addr, SandboxConfig::default()).await {
            Ok(sandbox) => sandbox,
            Err(error) => panic!("payment sandbox cannot listen on {addr}: {error}"),
        }
    }

    pub async fn start_with(addr: SocketAddr, config: SandboxConfig) -> std::io::Result<Sandbox> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared::new(config));
        let app = router(shared.clone());
        let server = tokio::spawn(async move {
            if let Err(error) = axum::serve(listener, app).await {
                eprintln!("payment sandbox stopped: {error}");
            }
        });
        Ok(Sandbox { addr, shared, server })
    }

    /// The address it listens on, with the real port when it was started on port 0.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://` and the address: what a client takes as its base URL.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every request received so far, in order of arrival.
    pub fn calls(&self) -> Vec<RecordedCall> {
        lock(&self.shared.calls).clone()
    }

    pub fn intent(&self, id: &str) -> Option<IntentState> {
        self.shared.intent(id)
    }

    /// Every intent created so far, oldest first.
    pub fn intents(&self) -> Vec<IntentState> {
        lock(&self.shared.intents).clone()
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        self.server.abort();
    }
}

struct Shared {
    config: SandboxConfig,
    calls: Mutex<Vec<RecordedCall>>,
    intents: Mutex<Vec<IntentState>>,
    /// Answers by idempotency key. The cell makes a concurrent repeat wait for the
    /// first request's answer instead of doing the work twice.
    saved: Mutex<HashMap<String, Arc<OnceCell<Saved>>>>,
    /// Idempotency keys `pm_flaky` has already failed once.
    flaky_seen: Mutex<HashSet<String>>,
}

/// An answer, and what it answered, so a key reused for another request is refused.
struct Saved {
    fingerprint: String,
    reply: Reply,
}

#[derive(Clone)]
struct Reply {
    status: StatusCode,
    body: Value,
}

impl IntoResponse for Reply {
    fn into_response(self) -> Response {
        (self.status, axum::Json(self.body)).into_response()
    }
}

/// A poisoned lock only means another handler panicked; the data is still usable.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/v1/payment_intents", post(create_intent))
        .route("/v1/payment_intents/{id}", get(retrieve_intent))
        .route("/v1/payment_intents/{id}/capture", post(capture_intent))
        .route("/v1/payment_intents/{id}/cancel", post(cancel_intent))
        .route("/v1/refunds", post(refund))
        .layer(middleware::from_fn_with_state(shared.clone(), record_and_authenticate))
        .with_state(shared)
}

async fn record_and_authenticate(State(shared): State<Arc<Shared>>, request: Request, next: Next) -> Response {
    lock(&shared.calls).push(RecordedCall {
        method: request.method().to_string(),
        path: request.uri().path().to_owned(),
        idempotency_key: idempotency_key(request.headers()),
    });
    let expected = format!("Bearer {}", shared.config.api_key);
    let given = request.headers().get(header::AUTHORIZATION).and_then(|value| value.to_str().ok());
    if given != Some(expected.as_str()) {
        return error(
            StatusCode::UNAUTHORIZED,
            "invalid_request_error",
            "invalid_api_key",
            "Invalid API Key provided.",
        )
        .into_response();
    }
    next.run(request).await
}

fn idempotency_key(headers: &HeaderMap) -> Option<String> {
    headers.get("idempotency-key").and_then(|value| value.to_str().ok()).map(str::to_owned)
}

fn error(status: StatusCode, kind: &str, code: &str, message: impl Into<String>) -> Reply {
    Reply { status, body: json!({"error": {"type": kind, "code": code, "message": message.into()}}) }
}

fn invalid(message: impl Into<String>) -> Reply {
    error(StatusCode::BAD_REQUEST, "invalid_request_error", "parameter_invalid", message)
}

fn unexpected_state(intent: &IntentState, action: &str) -> Reply {
    let message = format!("You cannot {action} PaymentIntent {} because it is {:?}.", intent.id, intent.status);
    error(StatusCode::BAD_REQUEST, "invalid_request_error", "payment_intent_unexpected_state", message)
}

fn missing_intent(id: &str) -> Reply {
    let message = format!("No such payment_intent: '{id}'");
    error(StatusCode::NOT_FOUND, "invalid_request_error", "resource_missing", message)
}

impl Shared {
    fn new(config: SandboxConfig) -> Self {
        Self {
            config,
            calls: Mutex::default(),
            intents: Mutex::default(),
            saved: Mutex::default(),
            flaky_seen: Mutex::default(),
        }
    }

    /// Runs `work` once per idempotency key and replays its answer to every repeat.
    async fn idempotent(&self, key: Option<&str>, fingerprint: String, work: impl Future<Output = Reply>) -> Reply {
        let Some(key) = key else { return work.await };
        let cell = lock(&self.saved).entry(key.to_owned()).or_default().clone();
        let first = fingerprint.clone();
        let saved = cell
            .get_or_try_init(move || async move {
                let reply = work.await;
                // Like Stripe, a server error is not saved: the retry runs again.
                if reply.status.is_server_error() { Err(reply) } else { Ok(Saved { fingerprint: first, reply }) }
            })
            .await;
        match saved {
            Ok(saved) if saved.fingerprint == fingerprint => saved.reply.clone(),
            Ok(_) => error(
                StatusCode::BAD_REQUEST,
                "idempotency_error",
                "idempotency_key_in_use",
                "Keys for idempotent requests can only be used with the same parameters they were first used with.",
            ),
            Err(reply) => reply,
        }
    }

    /// The provider-side faults the test payment methods ask for; `None` lets the call
    /// go on normally.
    async fn fault(&self, payment_method: &str, key: Option<&str>) -> Option<Reply> {
        match payment_method {
            "pm_provider_error" => {
                Some(error(StatusCode::INTERNAL_SERVER_ERROR, "api_error", "internal_error", "Something went wrong."))
            }
            "pm_provider_timeout" => {
                tokio::time::sleep(self.config.timeout_delay).await;
                None
            }
            "pm_provider_oversized" => {
                Some(Reply { status: StatusCode::OK, body: json!({"padding": "x".repeat(2 << 20)}) })
            }
            "pm_flaky" if key.is_none_or(|key| lock(&self.flaky_seen).insert(key.to_owned())) => {
                Some(error(StatusCode::SERVICE_UNAVAILABLE, "api_error", "service_unavailable", "Try again."))
            }
            _ => None,
        }
    }

    fn intent(&self, id: &str) -> Option<IntentState> {
        lock(&self.intents).iter().find(|intent| intent.id == id).cloned()
    }

    fn payment_method_of(&self, id: &str) -> Option<String> {
        self.intent(id).map(|intent| intent.payment_method)
    }

    /// Moves intent `id` from `from` to `to` atomically, or says why not.
    fn transition(&self, id: &str, action: &str, from: IntentStatus, to: IntentStatus) -> Result<IntentState, Reply> {
        let mut intents = lock(&self.intents);
        let Some(intent) = intents.iter_mut().find(|intent| intent.id == id) else { return Err(missing_intent(id)) };
        if intent.status != from {
            return Err(unexpected_state(intent, action));
        }
        intent.status = to;
        Ok(intent.clone())
    }
}

fn fingerprint(path: &str, body: &[u8]) -> String {
    format!("{path}\n{}", String::from_utf8_lossy(body))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateIntent {
    amount: i64,
    currency: String,
    payment_method: String,
    capture_method: String,
    #[serde(default)]
    metadata: HashMap<String, String>,
}

async fn create_intent(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Reply {
    let key = idempotency_key(&headers);
    let work = async {
        let request: CreateIntent = match serde_json::from_slice(&body) {
            Ok(request) => request,
            Err(parse_error) => return invalid(format!("Invalid request body: {parse_error}")),
        };
        if request.amount < 1 {
            return invalid("amount must be a positive integer in minor units");
        }
        if request.currency.len() != 3 || !request.currency.bytes().all(|b| b.is_ascii_lowercase()) {
            return invalid(format!("Invalid currency: {}", request.currency));
        }
        if request.capture_method != "manual" {
            return invalid("capture_method must be manual");
        }
        if let Some(reply) = shared.fault(&request.payment_method, key.as_deref()).await {
            return reply;
        }
        match request.payment_method.as_str() {
            "pm_card_declined" => decline("card_declined", "Your card was declined."),
            "pm_card_insufficient_funds" => decline("insufficient_funds", "Your card has insufficient funds."),
            _ => {
                let intent = IntentState {
                    id: format!("pi_{}", uuid::Uuid::new_v4().simple()),
                    amount: request.amount,
                    currency: request.currency,
                    payment_method: request.payment_method,
                    metadata: request.metadata,
                    status: IntentStatus::Authorized,
                };
                let body = json!({
                    "id": intent.id,
                    "object": "payment_intent",
                    "amount": intent.amount,
                    "currency": intent.currency,
                    "status": "requires_capture",
                });
                lock(&shared.intents).push(intent);
                Reply { status: StatusCode::OK, body }
            }
        }
    };
    shared.idempotent(key.as_deref(), fingerprint("/v1/payment_intents", &body), work).await
}

fn decline(code: &str, message: &str) -> Reply {
    error(StatusCode::PAYMENT_REQUIRED, "card_error", code, message)
}

async fn retrieve_intent(State(shared): State<Arc<Shared>>, Path(id): Path<String>) -> Reply {
    let Some(intent) = shared.intent(&id) else { return missing_intent(&id) };
    let status = match intent.status {
        IntentStatus::Authorized => "requires_capture",
        IntentStatus::Captured | IntentStatus::Refunded => "succeeded",
        IntentStatus::Canceled => "canceled",
    };
    Reply { status: StatusCode::OK, body: json!({"id": intent.id, "status": status}) }
}

async fn capture_intent(State(shared): State<Arc<Shared>>, Path(id): Path<String>, headers: HeaderMap) -> Reply {
    let key = idempotency_key(&headers);
    let work = async {
        let Some(payment_method) = shared.payment_method_of(&id) else { return missing_intent(&id) };
        if let Some(reply) = shared.fault(&payment_method, key.as_deref()).await {
            return reply;
        }
        let captured = shared.transition(&id, "capture", IntentStatus::Authorized, IntentStatus::Captured);
        if payment_method == "pm_capture_answer_lost" {
            return error(StatusCode::INTERNAL_SERVER_ERROR, "api_error", "internal_error", "Something went wrong.");
        }
        match captured {
            Ok(intent) => Reply { status: StatusCode::OK, body: json!({"id": intent.id, "status": "succeeded"}) },
            Err(reply) => reply,
        }
    };
    let path = format!("/v1/payment_intents/{id}/capture");
    shared.idempotent(key.as_deref(), fingerprint(&path, b""), work).await
}

async fn cancel_intent(State(shared): State<Arc<Shared>>, Path(id): Path<String>, headers: HeaderMap) -> Reply {
    let key = idempotency_key(&headers);
    let work = async {
        let Some(payment_method) = shared.payment_method_of(&id) else { return missing_intent(&id) };
        if let Some(reply) = shared.fault(&payment_method, key.as_deref()).await {
            return reply;
        }
        match shared.transition(&id, "cancel", IntentStatus::Authorized, IntentStatus::Canceled) {
            Ok(intent) => Reply { status: StatusCode::OK, body: json!({"id": intent.id, "status": "canceled"}) },
            Err(reply) => reply,
        }
    };
    let path = format!("/v1/payment_intents/{id}/cancel");
    shared.idempotent(key.as_deref(), fingerprint(&path, b""), work).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateRefund {
    payment_intent: String,
}

async fn refund(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Reply {
    let key = idempotency_key(&headers);
    let work = async {
        let request: CreateRefund = match serde_json::from_slice(&body) {
            Ok(request) => request,
            Err(parse_error) => return invalid(format!("Invalid request body: {parse_error}")),
        };
        let id = request.payment_intent;
        let Some(payment_method) = shared.payment_method_of(&id) else { return missing_intent(&id) };
        if let Some(reply) = shared.fault(&payment_method, key.as_deref()).await {
            return reply;
        }
        match shared.transition(&id, "refund", IntentStatus::Captured, IntentStatus::Refunded) {
            Ok(intent) => Reply {
                status: StatusCode::OK,
                body: json!({
                    "id": format!("re_{}", uuid::Uuid::new_v4().simple()),
                    "object": "refund",
                    "payment_intent": intent.id,
                    "amount": intent.amount,
                    "status": "succeeded",
                }),
            },
            Err(reply) => reply,
        }
    };
    shared.idempotent(key.as_deref(), fingerprint("/v1/refunds", &body), work).await
}
