//! Finishes the payment calls that order transitions decide. A transition
//! commits `capture_pending` (or void/refund) in the same transaction as the
//! status change; this worker then makes the provider call and records the
//! result. A crash or a provider outage in between only delays it: pending
//! rows are retried (one whose call failed a minute later, so that orders the
//! provider keeps refusing do not hold the sweep's places), and the
//! provider's idempotency keys make a repeated call harmless.

use std::sync::Arc;
use std::time::Duration;

use foodfast_domain::order::PaymentEffect;
use foodfast_payments::PaymentGateway;
use foodfast_store::Chain;
use foodfast_store::orders::{Orders, PaymentStatus};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// Rows settled per sweep; the next sweep takes the rest.
const SWEEP_BATCH: u32 = 100;
/// How long an order whose payment call failed waits before the next try.
const RETRY_AFTER_FAILURE: Duration = Duration::from_secs(60);

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
        if let Err(err) = sweep(&orders, gateway.as_ref()).await {
            tracing::warn!(error = %Chain(&err), "payment settlement sweep failed");
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = nudge.notified() => {}
            _ = tokio::time::sleep(interval) => {}
        }
    }
}

async fn sweep(orders: &Orders, gateway: &dyn PaymentGateway) -> Result<(), foodfast_store::StoreError> {
    for (order_id, payment_id, status) in orders.unsettled_payments(SWEEP_BATCH).await? {
        let Some((effect, settled)) = status.unsettled() else { continue };
        let outcome = match effect {
            PaymentEffect::Capture => gateway.capture(&payment_id, order_id).await,
            PaymentEffect::Void => gateway.void(&payment_id, order_id).await,
            PaymentEffect::Refund => gateway.refund(&payment_id, order_id).await,
        };
        match outcome {
            Ok(()) => {
                if orders.settle_payment(order_id, status, settled).await? {
                    tracing::info!(order = %order_id, payment = settled.as_str(), "payment settled");
                } else if effect == PaymentEffect::Capture
                    && orders.settle_payment(order_id, PaymentStatus::VoidPending, PaymentStatus::RefundPending).await?
                {
                    // Cancelled while the capture was in flight: the hold it
                    // would void is gone and the money taken, so it is refunded.
                    tracing::info!(order = %order_id, "captured as the order was cancelled; refunding");
                }
            }
            Err(err) => {
                tracing::warn!(order = %order_id, ?effect, error = %Chain(&err), "payment call failed; will retry");
                orders.defer_payment(order_id, RETRY_AFTER_FAILURE).await?;
            }
        }
    }
    Ok(())
}
