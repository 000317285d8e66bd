//! The one mapping from what can go wrong to a gRPC status. Every handler
//! returns `ApiError`; the gateway's HTTP statuses follow from these codes.
//! Driver errors never reach a client: their text goes to the log.

use foodfast_domain::order::TransitionError;
use foodfast_domain::pricing::CartError;
use foodfast_domain::validation::FieldError;
use foodfast_payments::PaymentError;
use foodfast_store::orders::TransitionFailure;
use foodfast_store::restaurants::MenuUpdateError;
use foodfast_store::{Chain, StoreError};
use tonic::{Code, Status};

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
    #[error(transparent)]
    Transition(#[from] TransitionError),
    /// The idempotency key was used for a different request.
    #[error("idempotency key {0:?} was already used for a different order request; use a new key")]
    IdempotencyKeyReused(String),
    /// Someone else changed the resource first (stale version, contention).
    #[error("{0}")]
    Aborted(String),
    #[error("the payment was declined: {0}")]
    PaymentDeclined(String),
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
            ApiError::FailedPrecondition(_) => Code::FailedPrecondition,
            ApiError::Transition(TransitionError::NotPermitted { .. }) => Code::PermissionDenied,
            ApiError::Transition(_) => Code::FailedPrecondition,
            ApiError::IdempotencyKeyReused(_) => Code::FailedPrecondition,
            ApiError::Aborted(_) => Code::Aborted,
            ApiError::PaymentDeclined(_) => Code::FailedPrecondition,
            ApiError::Payment(PaymentError::Declined { .. }) => Code::FailedPrecondition,
            ApiError::Payment(PaymentError::Unavailable { .. }) => Code::Unavailable,
            ApiError::Payment(PaymentError::Rejected { .. }) => Code::Internal,
            ApiError::Store(store) => return store_status(store),
        };
        if code == Code::Internal {
            tracing::error!(error = %Chain(&err), "internal error");
            return Status::internal("internal error; it has been logged");
        }
        Status::new(code, err.to_string())
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
            MenuUpdateError::VersionMismatch { .. } => ApiError::Aborted(err.to_string()),
            MenuUpdateError::ForeignItem(_) => ApiError::Field(FieldError::new("categories", err.to_string())),
            MenuUpdateError::Store(store) => ApiError::Store(store),
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
                ApiError::FailedPrecondition(err.to_string())
            }
            TransitionFailure::DriverMissing => ApiError::Field(FieldError::new("driver_id", "is required")),
            TransitionFailure::Store(store) => ApiError::Store(store),
        }
    }
}
