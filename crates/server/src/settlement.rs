//! Finishes the payment calls that order transitions decide. A transition
//! commits `capture_pending` (or void/refund) in the same transaction as the
//! status change; this worker then makes the provider call and records the
//! result. A crash or a provider outage in between only delays it: pending
//! rows are retried, each failure in a row waiting twice as long (so that
//! orders the provider keeps refusing do not hold the sweep's places), and
//! the provider's idempotency keys make a repeated call harmless.
//!
//! A call the provider refuses is checked against the payment's state there:
//! an earlier call whose answer was lost may have done the work already (a
//! capture), or made this one impossible (a void of a hold that a capture
//! took, which becomes a refund). A refusal that explains nothing is logged
//! as an error, kept on the order (`payment_error`) and retried slowly.

use std::sync::Arc;
use std::time::Duration;

use foodfast_domain::order::PaymentEffect;
use foodfast_payments::{PaymentError, PaymentGateway, ProviderStatus};
use foodfast_store::orders::{Orders, PaymentStatus, UnsettledPayment};
use foodfast_store::{Chain, StoreError};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::telemetry::PAYMENT_CALLS_TOTAL;

/// Rows settled per sweep; a full batch is followed by another sweep at once.
const SWEEP_BATCH: u32 = 100;
/// How long a payment waits after its first failed call.
const FIRST_RETRY_WAIT: Duration = Duration::from_secs(60);
/// The longest wait between two calls, however many failed.
const MAX_RETRY_WAIT: Duration = Duration::from_secs(15 * 60);

#[derive(Clone)]
pub struct PaymentSettler {
    nudge: Arc<Notify>,
}

impl PaymentSettler {
    /// Sweeps every `interval`, and at once when nudged, until `stop`.
    pub fn start(
        orders: Orders,
        gateway: Arc<dyn PaymentGateway>,
        interval: Duration,
        stop: CancellationToken,
    ) -> Self {
        let nudge = Arc::new(Notify::new());
        tokio::spawn(sweep_forever(orders, gateway, interval, nudge.clone(), stop));
        Self { nudge }
    }

    /// Asks for a sweep now (a transition just committed a pending call).
    pub fn nudge(&self) {
        self.nudge.notify_one();
    }
}

async fn sweep_forever(
    orders: Orders,
    gateway: Arc<dyn PaymentGateway>,
    interval: Duration,
    nudge: Arc<Notify>,
    stop: CancellationToken,
) {
    loop {
        let again = match sweep(&orders, gateway.as_ref()).await {
            Ok(again) => again,
            Err(err) => {
                tracing::warn!(error = %Chain(&err), "payment settlement sweep failed");
                false
            }
        };
        if stop.is_cancelled() {
            return;
        }
        if again {
            continue;
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = nudge.notified() => {}
            _ = tokio::time::sleep(interval) => {}
        }
    }
}

/// Settles a batch of due payments. Returns whether more may be due at once:
/// the batch was full, or a payment moved on to another call (a refund).
async fn sweep(orders: &Orders, gateway: &dyn PaymentGateway) -> Result<bool, StoreError> {
    let due = orders.unsettled_payments(SWEEP_BATCH).await?;
    let mut again = due.len() >= SWEEP_BATCH as usize;
    for payment in &due {
        if let Some(PaymentStatus::RefundPending) = settle(orders, gateway, payment).await? {
            again = true;
        }
    }
    Ok(again)
}

/// Makes the call `payment` owes and records what came of it. Returns the
/// status the payment moved to, if it moved.
async fn settle(
    orders: &Orders,
    gateway: &dyn PaymentGateway,
    payment: &UnsettledPayment,
) -> Result<Option<PaymentStatus>, StoreError> {
    let UnsettledPayment { order_id, ref payment_id, status, failures } = *payment;
    let Some((effect, settled)) = status.unsettled() else { return Ok(None) };
    let outcome = match effect {
        PaymentEffect::Capture => gateway.capture(payment_id, order_id).await,
        PaymentEffect::Void => gateway.void(payment_id, order_id).await,
        PaymentEffect::Refund => gateway.refund(payment_id, order_id).await,
    };
    let count = |outcome: &'static str| {
        metrics::counter!(PAYMENT_CALLS_TOTAL, "effect" => effect.as_str(), "outcome" => outcome).increment(1);
    };
    let unavailable = |reason: String| async move {
        count("unavailable");
        let wait = retry_wait(failures);
        tracing::warn!(order = %order_id, effect = effect.as_str(), ?wait, reason, "payment provider unavailable; will retry");
        orders.defer_payment(order_id, status, wait, &format!("provider unavailable: {reason}")).await?;
        Ok(None)
    };
    let refusal = match outcome {
        Ok(()) => {
            count("settled");
            return record(orders, order_id, status, settled).await;
        }
        Err(PaymentError::Unavailable { reason }) => return unavailable(reason).await,
        Err(refused) => refused,
    };
    let found = match gateway.status(payment_id).await {
        Ok(found) => found,
        Err(PaymentError::Unavailable { reason }) => return unavailable(reason).await,
        Err(err) => ProviderStatus::Other(format!("unknown ({err})")),
    };
    if let Some(to) = reconciled(effect, &found) {
        count("reconciled");
        tracing::info!(order = %order_id, effect = effect.as_str(), ?found, "provider refused the call; its payment state settles it");
        return record(orders, order_id, status, to).await;
    }
    count("refused");
    let wait = retry_wait(failures);
    let error = format!("provider refused the {}: {refusal}; it says the payment is {found:?}", effect.as_str());
    tracing::error!(order = %order_id, failures = failures + 1, ?wait, error, "payment needs attention");
    orders.defer_payment(order_id, status, wait, &error).await?;
    Ok(None)
}

/// Moves the payment from `from` to `to`, unless a transition changed it
/// meanwhile. Returns the status it moved to.
async fn record(
    orders: &Orders,
    order_id: uuid::Uuid,
    from: PaymentStatus,
    to: PaymentStatus,
) -> Result<Option<PaymentStatus>, StoreError> {
    if orders.settle_payment(order_id, from, to).await? {
        tracing::info!(order = %order_id, payment = to.as_str(), "payment settled");
        return Ok(Some(to));
    }
    if to == PaymentStatus::Captured
        && orders.settle_payment(order_id, PaymentStatus::VoidPending, PaymentStatus::RefundPending).await?
    {
        // Cancelled while the capture was in flight: the hold it would void
        // is gone and the money taken, so it is refunded.
        tracing::info!(order = %order_id, "captured as the order was cancelled; refunding");
        return Ok(Some(PaymentStatus::RefundPending));
    }
    Ok(None)
}

/// Where a payment goes when the provider refused the call owed for
/// `effect` and says the payment is `found`; `None` when that explains
/// nothing (a person must look).
fn reconciled(effect: PaymentEffect, found: &ProviderStatus) -> Option<PaymentStatus> {
    match (effect, found) {
        // An earlier capture or void went through; its answer was lost.
        (PaymentEffect::Capture, ProviderStatus::Captured) => Some(PaymentStatus::Captured),
        (PaymentEffect::Void, ProviderStatus::Voided) => Some(PaymentStatus::Voided),
        // A capture whose answer was lost took the hold before the order was
        // cancelled: the money is given back.
        (PaymentEffect::Void, ProviderStatus::Captured) => Some(PaymentStatus::RefundPending),
        _ => None,
    }
}

/// How long to wait after the call failed, `failures` calls having failed
/// in a row before it.
fn retry_wait(failures: u32) -> Duration {
    foodfast_domain::backoff::doubling(FIRST_RETRY_WAIT, MAX_RETRY_WAIT, failures)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_in_a_row_wait_twice_as_long_up_to_the_cap() {
        let waits: Vec<u64> = (0..7).map(|failures| retry_wait(failures).as_secs()).collect();
        assert_eq!(waits, [60, 120, 240, 480, 900, 900, 900]);
        assert_eq!(retry_wait(u32::MAX), MAX_RETRY_WAIT);
    }

    #[test]
    fn a_refusal_is_settled_only_by_a_provider_state_that_explains_it() {
        use PaymentEffect::*;
        let other = ProviderStatus::Other("requires_payment_method".into());
        let cases = [
            (Capture, ProviderStatus::Captured, Some(PaymentStatus::Captured)),
            (Void, ProviderStatus::Voided, Some(PaymentStatus::Voided)),
            (Void, ProviderStatus::Captured, Some(PaymentStatus::RefundPending)),
            // The hold expired or was released: nothing was collected.
            (Capture, ProviderStatus::Voided, None),
            (Capture, ProviderStatus::Held, None),
            (Void, ProviderStatus::Held, None),
            // A refused refund is not explained by the intent (a refund leaves it captured).
            (Refund, ProviderStatus::Captured, None),
            (Refund, ProviderStatus::Voided, None),
            (Capture, other.clone(), None),
            (Void, other, None),
        ];
        for (effect, found, expected) in cases {
            assert_eq!(reconciled(effect, &found), expected, "{effect:?} refused, provider says {found:?}");
        }
    }
}
