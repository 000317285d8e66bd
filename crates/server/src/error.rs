//! The one mapping from what can go wrong to a gRPC status. Every handler
//! returns `ApiError`; the gateway's HTTP statuses follow from these codes
//! (and from the ErrorInfo reason: a declined payment is HTTP 402). Driver
//! errors never reach a client: their text goes to the log.

use std::collections::HashMap;
use std::time::Duration;

use foodfast_auth::TokenRefused;
use foodfast_domain::order::TransitionError;
use foodfast_domain::pricing::CartError;
use foodfast_domain::validation::FieldError;
use foodfast_payments::PaymentError;
use foodfast_store::dispatch::AnswerFailure;
use foodfast_store::orders::{ArrivalRefused, TransitionFailure};
use foodfast_store::restaurants::{MenuUpdateError, ProfileUpdateError};
use foodfast_store::users::{CreateUserError, RefreshRefused};
use foodfast_store::{Chain, StoreError};
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

/// The ErrorInfo domain of FoodFast's reasons (`foodfast.v1.ErrorReason`).
pub const ERROR_DOMAIN: &str = "foodfast.v1";

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// A request field is missing or malformed.
    #[error("{0}")]
    Field(#[from] FieldError),
    /// The cart cannot be priced as sent.
    #[error(transparent)]
    Cart(#[from] CartError),
    #[error("{0}")]
    NotFound(String),
    /// Authenticated, but not allowed. The message never says whether the
    /// resource exists.
    #[error("{0}")]
    PermissionDenied(String),
    /// The request is valid but the resource's state refuses it.
    #[error("{0}")]
    FailedPrecondition(String),
    /// The restaurant is closed or paused.
    #[error("{0}")]
    RestaurantClosed(String),
    /// The order already has a driver, or the driver holds as many
    /// deliveries as allowed.
    #[error("{0}")]
    AssignmentConflict(String),
    /// The caller named a version that is no longer current.
    #[error("{0}")]
    VersionMismatch(String),
    #[error(transparent)]
    Transition(#[from] TransitionError),
    /// The offer answered is no longer open (expired, withdrawn, or the
    /// order went elsewhere).
    #[error("{0}")]
    OfferClosed(String),
    /// The idempotency key was used for a different request.
    #[error("idempotency key {0:?} was already used for a different order request; use a new key")]
    IdempotencyKeyReused(String),
    /// Someone else changed the resource first (stale version, contention).
    #[error("{0}")]
    Aborted(String),
    #[error("the payment was declined: {0}")]
    PaymentDeclined(String),
    /// The same answer whether the email or the password is wrong.
    #[error("wrong email or password")]
    InvalidCredentials,
    #[error("{0}; sign in again")]
    RefreshRefused(#[from] RefreshRefused),
    /// The bearer token is expired (refresh it) or not ours.
    #[error(transparent)]
    TokenRefused(#[from] TokenRefused),
    /// A rate limit or throttle refused the call: retry after `retry_after`.
    #[error("{what}; retry in {} s", .retry_after.as_millis().div_ceil(1000).max(1))]
    RateLimited { what: &'static str, retry_after: Duration },
    #[error("{0}")]
    AlreadyExists(String),
    /// A bounded queue is full: retry after `retry_after`.
    #[error("{message}")]
    QueueFull { message: String, retry_after: Duration },
    /// A bug or a broken invariant: logged, never shown.
    #[error("{0}")]
    Internal(String),
    #[error(transparent)]
    Payment(PaymentError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<ApiError> for Status {
    fn from(err: ApiError) -> Self {
        let code = match &err {
            ApiError::Field(_) => Code::InvalidArgument,
            ApiError::Cart(cart) if cart.is_about_availability() => Code::FailedPrecondition,
            ApiError::Cart(_) => Code::InvalidArgument,
            ApiError::NotFound(_) => Code::NotFound,
            ApiError::PermissionDenied(_) => Code::PermissionDenied,
            ApiError::FailedPrecondition(_) | ApiError::RestaurantClosed(_) | ApiError::AssignmentConflict(_) => {
                Code::FailedPrecondition
            }
            ApiError::VersionMismatch(_) => Code::Aborted,
            ApiError::Transition(_) => Code::FailedPrecondition,
            ApiError::OfferClosed(_) => Code::FailedPrecondition,
            ApiError::IdempotencyKeyReused(_) => Code::AlreadyExists,
            ApiError::Aborted(_) => Code::Aborted,
            ApiError::PaymentDeclined(_) => Code::FailedPrecondition,
            ApiError::InvalidCredentials | ApiError::RefreshRefused(_) | ApiError::TokenRefused(_) => {
                Code::Unauthenticated
            }
            ApiError::RateLimited { .. } => Code::ResourceExhausted,
            ApiError::AlreadyExists(_) => Code::AlreadyExists,
            ApiError::QueueFull { .. } => Code::ResourceExhausted,
            ApiError::Internal(_) => Code::Internal,
            ApiError::Payment(PaymentError::Declined { .. }) => Code::FailedPrecondition,
            ApiError::Payment(PaymentError::Unavailable { .. }) => Code::Unavailable,
            ApiError::Payment(PaymentError::Rejected { .. }) => Code::Internal,
            ApiError::Store(store) => return store_status(store),
        };
        if code == Code::Internal {
            tracing::error!(error = %Chain(&err), "internal error");
            return Status::internal("internal error; it has been logged");
        }
        let message = match &err {
            // The reason names the provider's address and its own words: for the log only.
            ApiError::Payment(PaymentError::Unavailable { reason }) => {
                tracing::warn!(reason, "payment provider unavailable");
                "the payment provider is not answering; no order was placed, retry in a moment".to_owned()
            }
            _ => err.to_string(),
        };
        match err.details() {
            Some(details) => Status::with_error_details(code, message, details),
            None => Status::new(code, message),
        }
    }
}

impl ApiError {
    /// The google.rpc details a client acts on: the field at fault
    /// (BadRequest) or the reason (ErrorInfo with an `ErrorReason` name).
    fn details(&self) -> Option<ErrorDetails> {
        let reason = |reason: &str, metadata: HashMap<String, String>| {
            Some(ErrorDetails::with_error_info(reason, ERROR_DOMAIN, metadata))
        };
        match self {
            ApiError::Field(field) => Some(ErrorDetails::with_bad_request_violation(&field.field, &field.message)),
            ApiError::Cart(CartError::ItemUnavailable { item_id, .. }) => {
                reason("ERROR_REASON_ITEM_UNAVAILABLE", HashMap::from([("item_id".into(), item_id.to_string())]))
            }
            ApiError::Cart(CartError::OptionUnavailable { item_id, option_id, .. }) => reason(
                "ERROR_REASON_ITEM_UNAVAILABLE",
                HashMap::from([("item_id".into(), item_id.to_string()), ("option_id".into(), option_id.to_string())]),
            ),
            ApiError::Cart(CartError::OutsideDeliveryArea { .. }) => {
                reason("ERROR_REASON_OUTSIDE_DELIVERY_AREA", HashMap::new())
            }
            ApiError::Cart(cart) => {
                cart.field().map(|field| ErrorDetails::with_bad_request_violation(field, cart.to_string()))
            }
            ApiError::Transition(
                TransitionError::Illegal { from, .. } | TransitionError::NotPermitted { from, .. },
            ) => reason(
                "ERROR_REASON_ILLEGAL_TRANSITION",
                HashMap::from([("status".into(), crate::convert::order_status(*from).as_str_name().into())]),
            ),
            ApiError::Transition(TransitionError::AlreadyAssigned) | ApiError::AssignmentConflict(_) => {
                reason("ERROR_REASON_ASSIGNMENT_CONFLICT", HashMap::new())
            }
            ApiError::RestaurantClosed(_) => reason("ERROR_REASON_RESTAURANT_CLOSED", HashMap::new()),
            ApiError::VersionMismatch(_) => reason("ERROR_REASON_VERSION_MISMATCH", HashMap::new()),
            ApiError::IdempotencyKeyReused(_) => reason("ERROR_REASON_IDEMPOTENCY_KEY_REUSED", HashMap::new()),
            ApiError::OfferClosed(_) => reason("ERROR_REASON_OFFER_CLOSED", HashMap::new()),
            ApiError::PaymentDeclined(_) | ApiError::Payment(PaymentError::Declined { .. }) => {
                reason("ERROR_REASON_PAYMENT_DECLINED", HashMap::new())
            }
            ApiError::Payment(PaymentError::Unavailable { .. }) => {
                reason("ERROR_REASON_PAYMENT_UNAVAILABLE", HashMap::new())
            }
            ApiError::InvalidCredentials => reason("ERROR_REASON_INVALID_CREDENTIALS", HashMap::new()),
            ApiError::RefreshRefused(RefreshRefused::Expired) | ApiError::TokenRefused(TokenRefused::Expired) => {
                reason("ERROR_REASON_TOKEN_EXPIRED", HashMap::new())
            }
            ApiError::RateLimited { retry_after, .. } => {
                let mut details = ErrorDetails::with_retry_info(Some(*retry_after));
                details.set_error_info("ERROR_REASON_RATE_LIMITED", ERROR_DOMAIN, HashMap::new());
                Some(details)
            }
            ApiError::QueueFull { retry_after, .. } => {
                let mut details = ErrorDetails::with_retry_info(Some(*retry_after));
                details.set_error_info("ERROR_REASON_QUEUE_FULL", ERROR_DOMAIN, HashMap::new());
                Some(details)
            }
            ApiError::RefreshRefused(_)
            | ApiError::TokenRefused(_)
            | ApiError::AlreadyExists(_)
            | ApiError::Internal(_)
            | ApiError::NotFound(_)
            | ApiError::PermissionDenied(_)
            | ApiError::FailedPrecondition(_)
            | ApiError::Aborted(_)
            | ApiError::Payment(PaymentError::Rejected { .. })
            | ApiError::Store(_) => None,
        }
    }
}

fn store_status(err: &StoreError) -> Status {
    match err {
        StoreError::Unavailable { backend, .. } => {
            tracing::warn!(error = %Chain(err), "store unavailable");
            Status::unavailable(format!("{backend} is unavailable; retry with backoff"))
        }
        StoreError::Conflict { attempts } => {
            Status::aborted(format!("the change conflicted with concurrent changes {attempts} times; retry it"))
        }
        StoreError::InvalidQuery(message) => Status::invalid_argument(message.clone()),
        StoreError::Query { .. }
        | StoreError::Corrupt(_)
        | StoreError::MigrationEdited { .. }
        | StoreError::MigrationUnknown { .. }
        | StoreError::MigrationLeaseLost
        | StoreError::MigrationFailed { .. } => {
            tracing::error!(error = %Chain(err), "store error");
            Status::internal("internal error; it has been logged")
        }
    }
}

impl From<PaymentError> for ApiError {
    fn from(err: PaymentError) -> Self {
        match err {
            PaymentError::Declined { message, .. } => ApiError::PaymentDeclined(message),
            other => ApiError::Payment(other),
        }
    }
}

impl From<MenuUpdateError> for ApiError {
    fn from(err: MenuUpdateError) -> Self {
        match err {
            MenuUpdateError::RestaurantNotFound(_) => ApiError::NotFound(err.to_string()),
            MenuUpdateError::VersionMismatch { .. } => ApiError::VersionMismatch(err.to_string()),
            MenuUpdateError::ForeignItem(_) => ApiError::Field(FieldError::new("categories", err.to_string())),
            MenuUpdateError::Store(store) => ApiError::Store(store),
        }
    }
}

impl From<ProfileUpdateError> for ApiError {
    fn from(err: ProfileUpdateError) -> Self {
        match err {
            ProfileUpdateError::RestaurantNotFound(_) => ApiError::NotFound(err.to_string()),
            ProfileUpdateError::CurrencyFixed { .. } => ApiError::FailedPrecondition(err.to_string()),
            ProfileUpdateError::Changed { .. } => {
                ApiError::Aborted(format!("{err} and kept changing; read it again and retry"))
            }
            ProfileUpdateError::Store(store) => ApiError::Store(store),
        }
    }
}

impl From<CreateUserError> for ApiError {
    fn from(err: CreateUserError) -> Self {
        match err {
            CreateUserError::EmailTaken => ApiError::AlreadyExists(err.to_string()),
            CreateUserError::Store(store) => ApiError::Store(store),
        }
    }
}

impl From<AnswerFailure> for ApiError {
    fn from(err: AnswerFailure) -> Self {
        match err {
            AnswerFailure::NoOffer(_) => ApiError::NotFound(err.to_string()),
            AnswerFailure::Closed { .. } | AnswerFailure::Expired(_) => ApiError::OfferClosed(err.to_string()),
            AnswerFailure::Assign(TransitionFailure::Store(store)) => ApiError::Store(store),
            AnswerFailure::Assign(failure) => ApiError::OfferClosed(format!("the offer cannot be honoured: {failure}")),
        }
    }
}

impl From<ArrivalRefused> for ApiError {
    fn from(err: ArrivalRefused) -> Self {
        match err {
            ArrivalRefused::NotFound(_) => ApiError::PermissionDenied(format!("{err}: not found or not yours")),
            ArrivalRefused::NotNow { .. } => ApiError::FailedPrecondition(err.to_string()),
        }
    }
}

impl From<TransitionFailure> for ApiError {
    fn from(err: TransitionFailure) -> Self {
        match err {
            TransitionFailure::NotFound(_) | TransitionFailure::Forbidden(_) => {
                ApiError::PermissionDenied(format!("{err}: not found or not yours"))
            }
            TransitionFailure::Refused(refused) => ApiError::Transition(refused),
            TransitionFailure::DriverNotFound(_) => ApiError::NotFound(err.to_string()),
            TransitionFailure::DriverAtCapacity(_) | TransitionFailure::SameDriver(_) => {
                ApiError::AssignmentConflict(err.to_string())
            }
            TransitionFailure::DriverMissing => ApiError::Field(FieldError::new("driver_id", "is required")),
            TransitionFailure::Store(store) => ApiError::Store(store),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_declined_payment_carries_its_reason_and_a_bad_field_its_path() {
        let declined = Status::from(ApiError::PaymentDeclined("insufficient funds".into()));
        assert_eq!(declined.code(), Code::FailedPrecondition);
        let info = declined.get_error_details().error_info().cloned().expect("an ErrorInfo");
        assert_eq!((info.reason.as_str(), info.domain.as_str()), ("ERROR_REASON_PAYMENT_DECLINED", ERROR_DOMAIN));

        let field = Status::from(ApiError::Field(FieldError::new("items[2].quantity", "must be at least 1")));
        let violations = field.get_error_details().bad_request().cloned().expect("a BadRequest").field_violations;
        assert_eq!(violations[0].field, "items[2].quantity");

        assert!(Status::from(ApiError::NotFound("order x".into())).details().is_empty(), "no details when none help");
    }
}
