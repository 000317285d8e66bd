//! Rejects the orders their restaurant leaves unanswered: an order still
//! PENDING `service.pending_order_timeout` after it was placed is rejected
//! by the system, like a refusal, so the customer hears of it (their hold is
//! voided, their tracking stream ends) instead of waiting for good. Every
//! replica sweeps; the transition's conditional write lets one win.

use std::time::Duration;

use foodfast_domain::order::{Actor, OrderAction};
use foodfast_store::Chain;
use foodfast_store::orders::{TransitionFailure, TransitionRequest};

use crate::api::App;

/// Orders rejected per sweep; a full sweep is followed by another at once.
const SWEEP_BATCH: u32 = 100;
/// What the customer and the restaurant read as the reason.
pub const REASON: &str = "the restaurant did not answer in time";

/// Runs until the server stops.
pub async fn run(app: App, timeout: Duration) {
    // A tenth of the timeout: an order waits at most 10% past it.
    let interval = (timeout / 10).clamp(Duration::from_millis(100), Duration::from_secs(30));
    loop {
        let full = match sweep(&app, timeout).await {
            Ok(rejected) => rejected == SWEEP_BATCH as usize,
            Err(err) => {
                tracing::warn!(error = %Chain(&err), "could not look for unanswered orders");
                false
            }
        };
        if full && !app.stopping.is_cancelled() {
            continue;
        }
        tokio::select! {
            _ = app.stopping.cancelled() => return,
            _ = tokio::time::sleep(crate::jitter::jittered(interval)) => {}
        }
    }
}

/// Rejects a batch of unanswered orders. Returns how many it rejected.
async fn sweep(app: &App, timeout: Duration) -> Result<usize, foodfast_store::StoreError> {
    let mut rejected = 0;
    for order_id in app.orders.unanswered(timeout, SWEEP_BATCH).await? {
        let request = TransitionRequest {
            order_id,
            action: OrderAction::Reject,
            actor: Actor::System,
            actor_id: None,
            reason: REASON,
            driver_id: None,
            ready_at: None,
        };
        match app.orders.transition(request, |_| true).await {
            Ok(done) => {
                tracing::info!(order = %order_id, restaurant = %done.order.restaurant_id, ?timeout, "unanswered order rejected");
                app.committed(&done).await;
                rejected += 1;
            }
            // Answered (or cancelled) meanwhile, or another replica was first.
            Err(TransitionFailure::Refused(_)) => {}
            Err(err) => tracing::warn!(order = %order_id, error = %Chain(&err), "could not reject an unanswered order"),
        }
    }
    Ok(rejected)
}
