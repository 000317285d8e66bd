//! gRPC statuses as HTTP answers: one mapping from code to HTTP status, and
//! one JSON body, `{"code", "message", "details"}`, for every error the
//! gateway returns, its own or the server's. The server's google.rpc details
//! (ErrorInfo, BadRequest, RetryInfo) become the JSON `details`; an
//! ErrorInfo reason can refine the status (a declined payment is 402).

use http::StatusCode;
use serde_json::{Value, json};
use tonic::Code;
use tonic_types::{ErrorDetail, StatusExt};

/// The ErrorInfo reason of a declined payment (`foodfast.v1.ErrorReason`).
const PAYMENT_DECLINED: &str = "ERROR_REASON_PAYMENT_DECLINED";

/// When to retry, in whole seconds (at least 1), if the status says.
pub fn retry_after_secs(status: &tonic::Status) -> Option<u64> {
    let delay = status.get_error_details().retry_info()?.retry_delay?;
    Some(delay.as_millis().div_ceil(1000).max(1) as u64)
}

/// The HTTP status and JSON body of a status the server answered.
pub fn answer(status: &tonic::Status) -> (StatusCode, Value) {
    let details = status.get_error_details_vec();
    let declined =
        details.iter().any(|detail| matches!(detail, ErrorDetail::ErrorInfo(info) if info.reason == PAYMENT_DECLINED));
    let http = if declined { StatusCode::PAYMENT_REQUIRED } else { http_status(status.code()) };
    let details = details.iter().filter_map(detail_json).collect();
    (http, body_with_details(status.code(), status.message(), details))
}

/// The proto3 JSON of a detail a client may act on (never DebugInfo).
fn detail_json(detail: &ErrorDetail) -> Option<Value> {
    Some(match detail {
        ErrorDetail::ErrorInfo(info) => json!({
            "@type": "type.googleapis.com/google.rpc.ErrorInfo",
            "reason": info.reason,
            "domain": info.domain,
            "metadata": info.metadata,
        }),
        ErrorDetail::BadRequest(bad) => json!({
            "@type": "type.googleapis.com/google.rpc.BadRequest",
            "fieldViolations": bad.field_violations.iter()
                .map(|v| json!({"field": v.field, "description": v.description}))
                .collect::<Vec<_>>(),
        }),
        ErrorDetail::RetryInfo(retry) => json!({
            "@type": "type.googleapis.com/google.rpc.RetryInfo",
            "retryDelay": retry.retry_delay.map(|delay| format!("{}s", delay.as_secs_f64())),
        }),
        _ => return None,
    })
}

/// The HTTP status of a gRPC code.
pub fn http_status(code: Code) -> StatusCode {
    match code {
        Code::Ok => StatusCode::OK,
        Code::InvalidArgument | Code::OutOfRange => StatusCode::BAD_REQUEST,
        Code::Unauthenticated => StatusCode::UNAUTHORIZED,
        Code::PermissionDenied => StatusCode::FORBIDDEN,
        Code::NotFound => StatusCode::NOT_FOUND,
        Code::AlreadyExists | Code::Aborted => StatusCode::CONFLICT,
        Code::FailedPrecondition => StatusCode::UNPROCESSABLE_ENTITY,
        Code::ResourceExhausted => StatusCode::TOO_MANY_REQUESTS,
        Code::Cancelled => StatusCode::from_u16(499).expect("499 is a valid status"),
        Code::Unimplemented => StatusCode::NOT_IMPLEMENTED,
        Code::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        Code::DeadlineExceeded => StatusCode::GATEWAY_TIMEOUT,
        Code::Unknown | Code::Internal | Code::DataLoss => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// The JSON body of an error answer without details.
pub fn body(code: Code, message: &str) -> Value {
    body_with_details(code, message, Vec::new())
}

fn body_with_details(code: Code, message: &str, details: Vec<Value>) -> Value {
    json!({ "code": code_name(code), "message": message, "details": details })
}

/// The canonical name, e.g. `INVALID_ARGUMENT`.
pub fn code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_issue_table() {
        for (code, status) in [
            (Code::InvalidArgument, 400),
            (Code::Unauthenticated, 401),
            (Code::PermissionDenied, 403),
            (Code::NotFound, 404),
            (Code::AlreadyExists, 409),
            (Code::Aborted, 409),
            (Code::FailedPrecondition, 422),
            (Code::ResourceExhausted, 429),
            (Code::Unavailable, 503),
            (Code::DeadlineExceeded, 504),
        ] {
            assert_eq!(http_status(code).as_u16(), status, "{code:?}");
        }
        assert_eq!(body(Code::NotFound, "order x not found")["code"], "NOT_FOUND");
    }

    #[test]
    fn details_become_json_and_a_declined_payment_is_402() {
        use std::collections::HashMap;
        use tonic_types::ErrorDetails;

        let declined = tonic::Status::with_error_details(
            Code::FailedPrecondition,
            "the payment was declined",
            ErrorDetails::with_error_info(PAYMENT_DECLINED, "foodfast.v1", HashMap::new()),
        );
        let (status, body) = answer(&declined);
        assert_eq!(status, StatusCode::PAYMENT_REQUIRED);
        assert_eq!(body["details"][0]["reason"], PAYMENT_DECLINED);

        let field = tonic::Status::with_error_details(
            Code::InvalidArgument,
            "quantity must be at least 1",
            ErrorDetails::with_bad_request_violation("items[0].quantity", "must be at least 1"),
        );
        let (status, body) = answer(&field);
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(body["details"][0]["fieldViolations"][0]["field"], "items[0].quantity");

        let (status, body) = answer(&tonic::Status::failed_precondition("closed"));
        assert_eq!((status, body["details"].as_array().unwrap().len()), (StatusCode::UNPROCESSABLE_ENTITY, 0));
    }

    #[test]
    fn the_servers_retry_info_is_the_wait_in_whole_seconds() {
        let limited = |delay| {
            let details = tonic_types::ErrorDetails::with_retry_info(Some(delay));
            tonic::Status::with_error_details(Code::ResourceExhausted, "too many orders", details)
        };
        assert_eq!(retry_after_secs(&limited(std::time::Duration::from_millis(177_200))), Some(178));
        assert_eq!(retry_after_secs(&limited(std::time::Duration::from_millis(20))), Some(1), "never 0");
        assert_eq!(retry_after_secs(&tonic::Status::resource_exhausted("full")), None);
    }
}
