//! `DispatchService`: ops assigning a driver by hand. Automatic matching
//! (offers, rounds, flagged orders) arrives with the dispatch issue; its RPCs
//! answer `UNIMPLEMENTED` until then.

use foodfast_api::v1 as pb;
use foodfast_api::v1::dispatch_service_server::DispatchService;
use foodfast_domain::order::OrderAction;
use foodfast_domain::validation::{FieldError, parse_uuid};
use foodfast_store::orders::TransitionRequest;
use tonic::{Request, Response, Status};

use super::App;
use crate::auth::principal;
use crate::convert;
use crate::error::ApiError;

const MAX_REASON_CHARS: usize = 500;

pub struct DispatchApi {
    app: App,
}

impl DispatchApi {
    pub fn new(app: App) -> Self {
        Self { app }
    }
}

#[tonic::async_trait]
impl DispatchService for DispatchApi {
    /// Support and admins. The driver must be online or busy with room for
    /// one more delivery; an order keeps at most one driver (a second
    /// assignment is `FAILED_PRECONDITION` unless `replace`, before pickup).
    async fn assign_driver(
        &self,
        request: Request<pb::AssignDriverRequest>,
    ) -> Result<Response<pb::AssignDriverResponse>, Status> {
        let caller = principal(&request)?;
        if !caller.is_operator() {
            return Err(ApiError::PermissionDenied("only support and admins assign drivers by hand".into()).into());
        }
        let request = request.into_inner();
        let order_id = parse_uuid("order_id", &request.order_id).map_err(ApiError::from)?;
        let driver_id = parse_uuid("driver_id", &request.driver_id).map_err(ApiError::from)?;
        let reason = request.reason.trim();
        if reason.is_empty() || reason.chars().count() > MAX_REASON_CHARS {
            return Err(ApiError::from(FieldError::new("reason", "must be 1 to 500 characters")).into());
        }
        self.app
            .users
            .driver(driver_id)
            .await
            .map_err(ApiError::from)?
            .ok_or_else(|| ApiError::NotFound(format!("driver {driver_id} not found")))?;
        match self.app.live.availability(driver_id).await.map_err(ApiError::from)?.as_deref() {
            Some("online" | "busy") => {}
            Some(_) => return Err(ApiError::FailedPrecondition(format!("driver {driver_id} is offline")).into()),
            None => {
                return Err(ApiError::FailedPrecondition(format!(
                    "driver {driver_id} has not been online in the last hour"
                ))
                .into());
            }
        }
        let order = self.app.orders.get(order_id).await.map_err(ApiError::from)?;
        let Some(order) = order else { return Err(ApiError::NotFound(format!("order {order_id} not found")).into()) };
        // Chosen from a read: if the order changes before the transaction, the
        // state machine refuses and the caller retries.
        let action = if request.replace && order.driver_id.is_some() {
            OrderAction::ReassignDriver
        } else {
            OrderAction::AssignDriver
        };
        let transition = TransitionRequest {
            order_id,
            action,
            actor: caller.actor(),
            actor_id: Some(caller.user_id),
            reason,
            driver_id: Some(driver_id),
        };
        let done = self.app.orders.transition(transition, |_| true).await.map_err(ApiError::from)?;
        self.app.announce(done.order.restaurant_id, order_id).await;
        Ok(Response::new(pb::AssignDriverResponse {
            order_id: order_id.to_string(),
            delivery_id: done.delivery_id.map(|id| id.to_string()).unwrap_or_default(),
            driver_id: driver_id.to_string(),
            status: convert::order_status(done.order.status) as i32,
            seq: done.event.seq as u64,
        }))
    }
}
