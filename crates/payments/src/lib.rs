//! Card payments. The provider sits behind [`PaymentGateway`]: an order authorizes
//! (holds) the amount when it is created, captures it when the restaurant accepts,
//! voids the hold when the order is rejected or cancelled before capture, and refunds
//! after capture. Every call carries the order id as its idempotency key, so a retry
//! (ours, or a client's repeated request) never charges twice.
//!
//! [`HttpPaymentGateway`] talks to a Stripe-like HTTP API with a timeout, bounded
//! retries with backoff, and a circuit breaker.

mod breaker;
mod config;
mod http;
mod money;

use async_trait::async_trait;
use rust_decimal::Decimal;
use uuid::Uuid;

pub use config::PaymentsConfig;
pub use http::{HttpPaymentGateway, InvalidConfig};

#[async_trait]
pub trait PaymentGateway: Send + Sync + 'static {
    /// Places a hold for the order's total. A decline is [`PaymentError::Declined`], and
    /// then no order may be created.
    async fn authorize(&self, request: &AuthorizeRequest) -> Result<Authorization, PaymentError>;
    /// Takes the held funds: the restaurant accepted the order.
    async fn capture(&self, payment_id: &str, order_id: Uuid) -> Result<(), PaymentError>;
    /// Releases the hold: the order was rejected or cancelled before capture.
    async fn void(&self, payment_id: &str, order_id: Uuid) -> Result<(), PaymentError>;
    /// Gives captured funds back.
    async fn refund(&self, payment_id: &str, order_id: Uuid) -> Result<(), PaymentError>;
    /// Where the provider says the payment stands: what settles a call it
    /// refused, e.g. a void of a hold that a capture, whose answer was lost,
    /// already took.
    async fn status(&self, payment_id: &str) -> Result<ProviderStatus, PaymentError>;
}

/// A payment as the provider holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProviderStatus {
    /// Funds held, waiting for capture or void.
    Held,
    /// Funds taken (and perhaps refunded since: a refund leaves this status).
    Captured,
    /// The hold released.
    Voided,
    /// Any other state the provider names, e.g. still waiting for the card.
    Other(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthorizeRequest {
    pub order_id: Uuid,
    pub customer_id: Uuid,
    /// In major units (12.50 EUR is `12.50`); it may not have more decimals than the
    /// currency has.
    pub amount: Decimal,
    /// ISO 4217, e.g. `EUR`.
    pub currency: String,
    pub payment_method_id: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authorization {
    /// The provider's id for the payment, needed to capture, void or refund it.
    pub payment_id: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PaymentError {
    /// The customer's card said no: `FAILED_PRECONDITION` (HTTP 402).
    #[error("payment declined ({code}): {message}")]
    Declined { code: String, message: String },
    /// The provider could not be reached or answered in time, failed, or the circuit
    /// breaker is open: `UNAVAILABLE`. The call may be repeated with the same order id.
    #[error("payment provider unavailable: {reason}")]
    Unavailable { reason: String },
    /// The provider refused our request (a 4xx other than a decline), or it was refused
    /// before it was sent: a bug on our side, `INTERNAL`.
    #[error("payment request rejected (status {status}): {message}")]
    Rejected {
        /// The provider's HTTP status; 0 when the request was refused before it was sent.
        status: u16,
        message: String,
    },
}
