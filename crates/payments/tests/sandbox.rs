//! `HttpPaymentGateway` against a real `Sandbox` over loopback.

use std::sync::Arc;
use std::time::{Duration, Instant};

use foodfast_payment_sandbox::{IntentStatus, Sandbox};
use foodfast_payments::{
    AuthorizeRequest, HttpPaymentGateway, PaymentError, PaymentGateway, PaymentsConfig, ProviderStatus,
};
use rust_decimal::Decimal;
use uuid::Uuid;

async fn sandbox() -> Sandbox {
    Sandbox::start(([127, 0, 0, 1], 0).into()).await
}

/// Short durations so that the failure paths run quickly.
fn config(sandbox: &Sandbox) -> PaymentsConfig {
    PaymentsConfig {
        base_url: sandbox.base_url(),
        api_key: "sk_test_sandbox".into(),
        timeout: Duration::from_secs(2),
        max_attempts: 3,
        backoff_base: Duration::from_millis(10),
        breaker_failure_threshold: 5,
        breaker_open_for: Duration::from_secs(30),
    }
}

fn gateway(config: PaymentsConfig) -> HttpPaymentGateway {
    HttpPaymentGateway::new(config).unwrap()
}

fn request(payment_method: &str) -> AuthorizeRequest {
    AuthorizeRequest {
        order_id: Uuid::new_v4(),
        customer_id: Uuid::new_v4(),
        amount: "12.5".parse().unwrap(),
        currency: "EUR".into(),
        payment_method_id: payment_method.into(),
    }
}

/// (path, idempotency key) of every request the sandbox received.
fn calls(sandbox: &Sandbox) -> Vec<(String, String)> {
    sandbox.calls().into_iter().map(|call| (call.path, call.idempotency_key.unwrap_or_default())).collect()
}

fn authorize_call(order_id: Uuid) -> (String, String) {
    ("/v1/payment_intents".into(), format!("authorize:{order_id}"))
}

#[tokio::test]
async fn approve_then_capture() {
    let sandbox = sandbox().await;
    let gateway = gateway(config(&sandbox));
    let request = request("pm_card_visa");

    let payment_id = gateway.authorize(&request).await.unwrap().payment_id;
    let intent = sandbox.intent(&payment_id).unwrap();
    assert_eq!(intent.status, IntentStatus::Authorized);
    assert_eq!((intent.amount, intent.currency.as_str()), (1250, "eur"));
    assert_eq!(intent.metadata["order_id"], request.order_id.to_string());
    assert_eq!(intent.metadata["customer_id"], request.customer_id.to_string());

    gateway.capture(&payment_id, request.order_id).await.unwrap();
    assert_eq!(sandbox.intent(&payment_id).unwrap().status, IntentStatus::Captured);
    assert_eq!(
        calls(&sandbox),
        [
            authorize_call(request.order_id),
            (format!("/v1/payment_intents/{payment_id}/capture"), format!("capture:{}", request.order_id)),
        ]
    );
}

#[tokio::test]
async fn approve_then_void() {
    let sandbox = sandbox().await;
    let gateway = gateway(config(&sandbox));
    let request = request("pm_card_visa");

    let payment_id = gateway.authorize(&request).await.unwrap().payment_id;
    gateway.void(&payment_id, request.order_id).await.unwrap();
    assert_eq!(sandbox.intent(&payment_id).unwrap().status, IntentStatus::Canceled);
    assert_eq!(
        calls(&sandbox)[1],
        (format!("/v1/payment_intents/{payment_id}/cancel"), format!("void:{}", request.order_id))
    );

    let error = gateway.capture(&payment_id, request.order_id).await.unwrap_err();
    assert!(matches!(error, PaymentError::Rejected { status: 400, .. }), "capture after void: {error:?}");
}

#[tokio::test]
async fn approve_capture_then_refund() {
    let sandbox = sandbox().await;
    let gateway = gateway(config(&sandbox));
    let request = request("pm_card_visa");

    let payment_id = gateway.authorize(&request).await.unwrap().payment_id;
    gateway.capture(&payment_id, request.order_id).await.unwrap();
    let error = gateway.void(&payment_id, request.order_id).await.unwrap_err();
    assert!(matches!(error, PaymentError::Rejected { status: 400, .. }), "void after capture: {error:?}");

    gateway.refund(&payment_id, request.order_id).await.unwrap();
    assert_eq!(sandbox.intent(&payment_id).unwrap().status, IntentStatus::Refunded);
    assert_eq!(calls(&sandbox).last().unwrap(), &("/v1/refunds".to_owned(), format!("refund:{}", request.order_id)));
}

#[tokio::test]
async fn status_follows_the_payment_through_its_life() {
    let sandbox = sandbox().await;
    let gateway = gateway(config(&sandbox));

    let voided = request("pm_card_visa");
    let payment_id = gateway.authorize(&voided).await.unwrap().payment_id;
    assert_eq!(gateway.status(&payment_id).await.unwrap(), ProviderStatus::Held);
    gateway.void(&payment_id, voided.order_id).await.unwrap();
    assert_eq!(gateway.status(&payment_id).await.unwrap(), ProviderStatus::Voided);

    let refunded = request("pm_card_visa");
    let payment_id = gateway.authorize(&refunded).await.unwrap().payment_id;
    gateway.capture(&payment_id, refunded.order_id).await.unwrap();
    assert_eq!(gateway.status(&payment_id).await.unwrap(), ProviderStatus::Captured);
    gateway.refund(&payment_id, refunded.order_id).await.unwrap();
    assert_eq!(gateway.status(&payment_id).await.unwrap(), ProviderStatus::Captured, "as the provider says it");

    let error = gateway.status("pi_unknown").await.unwrap_err();
    assert!(matches!(error, PaymentError::Rejected { status: 404, .. }), "{error:?}");
}

#[tokio::test]
async fn a_capture_whose_answer_is_lost_took_the_funds_and_status_says_so() {
    let sandbox = sandbox().await;
    let gateway = gateway(config(&sandbox));
    let request = request("pm_capture_answer_lost");

    let payment_id = gateway.authorize(&request).await.unwrap().payment_id;
    let error = gateway.capture(&payment_id, request.order_id).await.unwrap_err();
    assert!(matches!(error, PaymentError::Unavailable { .. }), "{error:?}");
    assert_eq!(gateway.status(&payment_id).await.unwrap(), ProviderStatus::Captured);
    let error = gateway.void(&payment_id, request.order_id).await.unwrap_err();
    assert!(matches!(error, PaymentError::Rejected { status: 400, .. }), "a captured hold cannot be voided: {error:?}");
}

#[tokio::test]
async fn declines_carry_the_code_and_are_not_retried() {
    let sandbox = sandbox().await;
    let gateway = gateway(config(&sandbox));

    for (payment_method, code) in
        [("pm_card_declined", "card_declined"), ("pm_card_insufficient_funds", "insufficient_funds")]
    {
        let request = request(payment_method);
        match gateway.authorize(&request).await {
            Err(PaymentError::Declined { code: got, message }) => {
                assert_eq!(got, code);
                assert!(!message.is_empty());
            }
            other => panic!("{payment_method}: expected a decline, got {other:?}"),
        }
        assert_eq!(calls(&sandbox).last().unwrap(), &authorize_call(request.order_id));
    }
    assert_eq!(sandbox.calls().len(), 2, "one call per decline");
    assert!(sandbox.intents().is_empty());
}

#[tokio::test]
async fn provider_errors_are_unavailable_after_max_attempts() {
    let sandbox = sandbox().await;
    let gateway = gateway(config(&sandbox));
    let request = request("pm_provider_error");

    let error = gateway.authorize(&request).await.unwrap_err();
    assert!(matches!(&error, PaymentError::Unavailable { reason } if reason.contains("500")), "{error:?}");
    assert_eq!(calls(&sandbox), vec![authorize_call(request.order_id); 3], "every attempt with the same key");
}

#[tokio::test]
async fn an_oversized_answer_is_unavailable_not_read_whole() {
    let sandbox = sandbox().await;
    let gateway = gateway(config(&sandbox));
    let request = request("pm_provider_oversized");

    let error = gateway.authorize(&request).await.unwrap_err();
    assert!(matches!(&error, PaymentError::Unavailable { reason } if reason.contains("more than")), "{error:?}");
    assert_eq!(calls(&sandbox), vec![authorize_call(request.order_id); 3]);
}

#[tokio::test]
async fn timeouts_are_unavailable_within_timeout_times_attempts() {
    let sandbox = sandbox().await;
    let timeout = Duration::from_millis(300);
    let gateway = gateway(PaymentsConfig { timeout, ..config(&sandbox) });
    let request = request("pm_provider_timeout");

    let started = Instant::now();
    let error = gateway.authorize(&request).await.unwrap_err();
    let elapsed = started.elapsed();
    assert!(matches!(&error, PaymentError::Unavailable { reason } if reason.contains("timed out")), "{error:?}");
    assert_eq!(calls(&sandbox), vec![authorize_call(request.order_id); 3]);
    assert!(elapsed >= timeout * 3, "gave up after {elapsed:?}");
    assert!(elapsed < timeout * 3 + Duration::from_secs(1), "gave up only after {elapsed:?}");
}

#[tokio::test]
async fn a_flaky_provider_succeeds_on_retry_with_one_intent() {
    let sandbox = sandbox().await;
    let gateway = gateway(config(&sandbox));
    let request = request("pm_flaky");

    let payment_id = gateway.authorize(&request).await.unwrap().payment_id;
    assert_eq!(calls(&sandbox), vec![authorize_call(request.order_id); 2]);
    assert_eq!(sandbox.intents().len(), 1, "the retry reused the intent");

    gateway.capture(&payment_id, request.order_id).await.unwrap();
    assert_eq!(sandbox.calls().len(), 4, "the capture failed once too");
    assert_eq!(sandbox.intent(&payment_id).unwrap().status, IntentStatus::Captured);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_authorizations_of_one_order_hold_once() {
    let sandbox = sandbox().await;
    let gateway = Arc::new(gateway(config(&sandbox)));
    let request = request("pm_card_visa");

    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..10 {
        let (gateway, request) = (gateway.clone(), request.clone());
        tasks.spawn(async move { gateway.authorize(&request).await.unwrap().payment_id });
    }
    let payment_ids = tasks.join_all().await;
    assert!(payment_ids.iter().all(|id| id == &payment_ids[0]), "{payment_ids:?}");
    assert_eq!(sandbox.intents().len(), 1);
    assert_eq!(sandbox.calls().len(), 10);
}

#[tokio::test]
async fn the_breaker_fails_fast_while_open_and_a_success_closes_it() {
    let sandbox = sandbox().await;
    let open_for = Duration::from_millis(300);
    let gateway = gateway(PaymentsConfig {
        max_attempts: 2,
        breaker_failure_threshold: 4,
        breaker_open_for: open_for,
        ..config(&sandbox)
    });
    let circuit_open = PaymentError::Unavailable { reason: "payment provider circuit open".into() };

    // Two calls of two failed attempts each: four consecutive failures.
    for _ in 0..2 {
        let error = gateway.authorize(&request("pm_provider_error")).await.unwrap_err();
        assert_ne!(error, circuit_open);
    }
    assert_eq!(sandbox.calls().len(), 4);

    let started = Instant::now();
    assert_eq!(gateway.authorize(&request("pm_card_visa")).await.unwrap_err(), circuit_open);
    assert!(started.elapsed() < Duration::from_millis(100));
    assert_eq!(sandbox.calls().len(), 4, "an open breaker does not call the provider");

    tokio::time::sleep(open_for).await;
    gateway.authorize(&request("pm_card_visa")).await.unwrap();
    assert_eq!(sandbox.calls().len(), 5);

    // Closed again: a failing call gets all its attempts.
    let error = gateway.authorize(&request("pm_provider_error")).await.unwrap_err();
    assert_ne!(error, circuit_open);
    assert_eq!(sandbox.calls().len(), 7);
}

#[tokio::test]
async fn a_wrong_api_key_is_rejected_without_retry() {
    let sandbox = sandbox().await;
    let gateway = gateway(PaymentsConfig { api_key: "sk_test_wrong".into(), ..config(&sandbox) });

    let error = gateway.authorize(&request("pm_card_visa")).await.unwrap_err();
    assert!(matches!(error, PaymentError::Rejected { status: 401, .. }), "{error:?}");
    assert_eq!(sandbox.calls().len(), 1);
}

#[tokio::test]
async fn amounts_go_out_in_exact_minor_units() {
    let sandbox = sandbox().await;
    let gateway = gateway(config(&sandbox));

    for (amount, currency, minor) in [("12.5", "EUR", 1250), ("0.99", "USD", 99), ("1500", "JPY", 1500)] {
        let request =
            AuthorizeRequest { amount: amount.parse().unwrap(), currency: currency.into(), ..request("pm_card_visa") };
        let payment_id = gateway.authorize(&request).await.unwrap().payment_id;
        let intent = sandbox.intent(&payment_id).unwrap();
        assert_eq!((intent.amount, intent.currency), (minor, currency.to_ascii_lowercase()));
    }

    let calls_before = sandbox.calls().len();
    let too_precise = AuthorizeRequest { amount: Decimal::new(12_345, 3), ..request("pm_card_visa") };
    let error = gateway.authorize(&too_precise).await.unwrap_err();
    assert!(matches!(&error, PaymentError::Rejected { status: 0, message } if message.contains("12.345")), "{error:?}");
    assert_eq!(sandbox.calls().len(), calls_before, "refused before any HTTP call");
}

#[tokio::test]
async fn an_order_id_cannot_authorize_two_different_amounts() {
    let sandbox = sandbox().await;
    let gateway = gateway(config(&sandbox));
    let request = request("pm_card_visa");

    let first = gateway.authorize(&request).await.unwrap();
    assert_eq!(gateway.authorize(&request).await.unwrap(), first, "a repeat gets the same payment");

    let changed = AuthorizeRequest { amount: "13".parse().unwrap(), ..request };
    let error = gateway.authorize(&changed).await.unwrap_err();
    assert!(
        matches!(&error, PaymentError::Rejected { status: 400, message } if message.contains("same parameters")),
        "{error:?}"
    );
    assert_eq!(sandbox.intents().len(), 1);
}
