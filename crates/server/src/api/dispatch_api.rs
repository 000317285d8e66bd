//! `DispatchService`: what ops see of matching (an order's rounds and
//! offers, the flagged orders) and assigning a driver by hand. Matching
//! itself runs in [`crate::dispatcher`].

use foodfast_api::v1 as pb;
use foodfast_api::v1::dispatch_service_server::DispatchService;
use foodfast_domain::order::OrderAction;
use foodfast_domain::validation::{FieldError, page_size, parse_uuid};
use foodfast_store::dispatch::{JobPhase, OfferRecord, OfferStatus};
use foodfast_store::orders::TransitionRequest;
use tonic::{Request, Response, Status};

use super::App;
use crate::auth::principal;
use crate::convert;
use crate::error::ApiError;

const MAX_REASON_CHARS: usize = 500;
const DEFAULT_PAGE_SIZE: u32 = 20;
const MAX_PAGE_SIZE: u32 = 100;

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
            ready_at: None,
        };
        let done = self.app.orders.transition(transition, |_| true).await.map_err(ApiError::from)?;
        self.app.committed(&done).await;
        Ok(Response::new(pb::AssignDriverResponse {
            order_id: order_id.to_string(),
            delivery_id: done.delivery_id.map(|id| id.to_string()).unwrap_or_default(),
            driver_id: driver_id.to_string(),
            status: convert::order_status(done.order.status) as i32,
            seq: done.event.seq as u64,
        }))
    }

    /// Before confirmation the phase is NOT_STARTED; an order that does not
    /// exist is NOT_FOUND.
    async fn get_matching_state(
        &self,
        request: Request<pb::GetMatchingStateRequest>,
    ) -> Result<Response<pb::GetMatchingStateResponse>, Status> {
        let order_id = parse_uuid("order_id", &request.get_ref().order_id).map_err(ApiError::from)?;
        let order = self.app.orders.get(order_id).await.map_err(ApiError::from)?;
        let Some(order) = order else { return Err(ApiError::NotFound(format!("order {order_id} not found")).into()) };
        let state = self.app.dispatch.matching_state(order_id).await.map_err(ApiError::from)?;
        let policy = &self.app.dispatch_config.policy;
        let Some(state) = state else {
            return Ok(Response::new(pb::GetMatchingStateResponse {
                order_id: order_id.to_string(),
                phase: pb::MatchingPhase::NotStarted as i32,
                mode: self.mode(self.app.ingest.zones.city_of(order.restaurant_address.location)) as i32,
                round: 0,
                radius_m: policy.radius_m(0),
                offers: vec![],
                assigned_driver_id: String::new(),
                started_at: None,
                flagged_at: None,
            }));
        };
        let phase = match state.phase {
            JobPhase::Assigned => pb::MatchingPhase::Assigned,
            JobPhase::Closed => pb::MatchingPhase::Closed,
            _ if state.flagged_at.is_some() => pb::MatchingPhase::Flagged,
            JobPhase::Offered => pb::MatchingPhase::Offered,
            JobPhase::Searching => pb::MatchingPhase::Searching,
        };
        Ok(Response::new(pb::GetMatchingStateResponse {
            order_id: order_id.to_string(),
            phase: phase as i32,
            mode: self.mode(&state.city) as i32,
            round: state.rounds,
            radius_m: policy.radius_m(state.rounds),
            offers: state.offers.iter().map(offer_record).collect(),
            assigned_driver_id: order.driver_id.map(|id| id.to_string()).unwrap_or_default(),
            started_at: Some(convert::timestamp(state.started_at)),
            flagged_at: state.flagged_at.map(convert::timestamp),
        }))
    }

    async fn list_flagged_orders(
        &self,
        request: Request<pb::ListFlaggedOrdersRequest>,
    ) -> Result<Response<pb::ListFlaggedOrdersResponse>, Status> {
        let request = request.into_inner();
        let query = format!("flagged:{}", request.city);
        let after = super::page_token::decode_time_page(&request.page_token, &query).map_err(ApiError::from)?;
        let limit = page_size(request.page_size, DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE);
        let mut flagged = self.app.dispatch.flagged(&request.city, after, limit + 1).await.map_err(ApiError::from)?;
        let next_page_token = if flagged.len() > limit as usize {
            flagged.truncate(limit as usize);
            flagged
                .last()
                .map(|f| super::page_token::encode_time_page(&query, f.flagged_at, f.order_id))
                .unwrap_or_default()
        } else {
            String::new()
        };
        Ok(Response::new(pb::ListFlaggedOrdersResponse {
            orders: flagged
                .iter()
                .map(|f| pb::FlaggedOrder {
                    order_id: f.order_id.to_string(),
                    restaurant_id: f.restaurant_id.to_string(),
                    restaurant_name: f.restaurant_name.clone(),
                    city: f.city.clone(),
                    status: convert::order_status(f.status) as i32,
                    rounds: f.rounds,
                    flagged_at: Some(convert::timestamp(f.flagged_at)),
                })
                .collect(),
            next_page_token,
        }))
    }
}

impl DispatchApi {
    fn mode(&self, city: &str) -> pb::MatchingMode {
        if self.app.dispatch_config.batch_cities.iter().any(|batch| batch == city) {
            pb::MatchingMode::Batch
        } else {
            pb::MatchingMode::Greedy
        }
    }
}

fn offer_record(offer: &OfferRecord) -> pb::OfferRecord {
    let outcome = match offer.status {
        OfferStatus::Pending => pb::OfferOutcome::Pending,
        OfferStatus::Accepted => pb::OfferOutcome::Accepted,
        OfferStatus::Declined => pb::OfferOutcome::Declined,
        OfferStatus::Expired => pb::OfferOutcome::Expired,
        OfferStatus::Withdrawn => pb::OfferOutcome::Withdrawn,
    };
    pb::OfferRecord {
        offer_id: offer.offer_id.to_string(),
        driver_id: offer.driver_id.to_string(),
        round: offer.round,
        score: offer.score,
        distance_m: offer.distance_m,
        offered_at: Some(convert::timestamp(offer.offered_at)),
        expires_at: Some(convert::timestamp(offer.deadline)),
        outcome: outcome as i32,
        decided_at: offer.answered_at.map(convert::timestamp),
    }
}
