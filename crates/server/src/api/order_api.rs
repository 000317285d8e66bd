//! `OrderService`: quotes, placing orders exactly once, history, cancelling.

use std::time::Instant;

use chrono::{DateTime, Utc};
use foodfast_api::v1 as pb;
use foodfast_api::v1::order_service_server::OrderService;
use foodfast_domain::access::{OrderParties, Principal, Role};
use foodfast_domain::address::Address;
use foodfast_domain::order::{self, OrderAction, TransitionError};
use foodfast_domain::pricing::{Cart, Quote, canonical_cart_hash};
use foodfast_domain::validation::{FieldError, length_between, max_len, non_empty, page_size, parse_uuid};
use foodfast_payments::AuthorizeRequest;
use foodfast_store::orders::{Claim, NewOrder, Order, OrderEvent, TransitionFailure, TransitionRequest};
use foodfast_store::restaurants::Restaurant;
use sha2::{Digest, Sha256};
use tonic::{Request, Response, Status};
use uuid::Uuid;

use super::{App, Stepped};
use crate::auth::principal;
use crate::convert;
use crate::error::ApiError;

/// Idempotency keys, in characters: enough for a UUID, short enough to index.
const IDEMPOTENCY_KEY_CHARS: std::ops::RangeInclusive<usize> = 8..=128;
const DEFAULT_PAGE_SIZE: u32 = 20;
const MAX_PAGE_SIZE: u32 = 100;

pub struct OrderApi {
    app: App,
}

impl OrderApi {
    pub fn new(app: App) -> Self {
        Self { app }
    }

    /// Prices a cart against the restaurant's current menu, server-side,
    /// if the restaurant takes orders now.
    async fn price(
        &self,
        restaurant_id: Uuid,
        cart: &Cart,
        dropoff: &Address,
    ) -> Result<(Restaurant, Quote), ApiError> {
        let restaurant = self.app.restaurant(restaurant_id).await?;
        let now = Utc::now();
        if !restaurant.profile.is_open(now) {
            return Err(ApiError::RestaurantClosed(format!(
                "restaurant {:?} is not taking orders right now",
                restaurant.profile.name
            )));
        }
        let ids: Vec<Uuid> = cart.lines.iter().map(|line| line.item_id).collect();
        let items = self.app.restaurants.items(restaurant_id, &ids).await?;
        let quote = foodfast_domain::pricing::quote(
            &self.app.pricing,
            &restaurant.profile.terms(),
            &items,
            cart,
            dropoff.location,
            now,
        )?;
        Ok((restaurant, quote))
    }

    /// Places the order whose idempotency key this call owns. A refusal
    /// (a bad cart, a decline) gives the key back for a corrected request. A
    /// failure (the provider or the database did not answer) keeps the
    /// order's id for the retry: the provider may hold money under it already,
    /// and the retry must find that hold, not place a second one.
    async fn place(&self, request: &PlaceRequest<'_>, order_id: Uuid) -> Result<(Order, OrderEvent), ApiError> {
        let placed = self.authorize_and_write(request, order_id).await;
        if let Err(err) = &placed {
            let (customer, key) = (request.customer_id, request.key);
            let given_back = match err {
                ApiError::Payment(_) | ApiError::Store(_) | ApiError::Internal(_) => {
                    self.app.orders.abandon(customer, key, order_id).await
                }
                _ => self.app.orders.release(customer, key, order_id).await,
            };
            if let Err(err) = given_back {
                tracing::warn!(order = %order_id, error = %foodfast_store::Chain(&err), "could not give the idempotency key back; it goes stale by itself");
            }
        }
        placed
    }

    async fn authorize_and_write(
        &self,
        request: &PlaceRequest<'_>,
        order_id: Uuid,
    ) -> Result<(Order, OrderEvent), ApiError> {
        let now = Utc::now();
        let (restaurant, quote) = self.price(request.restaurant_id, &request.cart, &request.address).await?;
        // Counted once the cart is valid, before the payment provider is asked.
        match self.app.order_rate.take(&request.customer_id.to_string()).await {
            Ok(None) => {}
            Ok(Some(retry_after)) => {
                return Err(ApiError::RateLimited { what: "too many orders placed in a short time", retry_after });
            }
            // Orders keep flowing without Redis; only the limit is lost for a while.
            Err(err) => tracing::warn!(error = %foodfast_store::Chain(&err), "order rate limit unavailable"),
        }
        let customer_name = self
            .app
            .users
            .name(request.customer_id)
            .await?
            .ok_or_else(|| ApiError::FailedPrecondition("the caller's account does not exist".into()))?;
        let authorization = self
            .app
            .payments
            .authorize(&AuthorizeRequest {
                order_id,
                customer_id: request.customer_id,
                amount: quote.total,
                currency: quote.currency.as_str().to_string(),
                payment_method_id: request.payment_method_id.to_string(),
            })
            .await?;
        let new = NewOrder {
            id: order_id,
            customer_id: request.customer_id,
            customer_name,
            restaurant_id: restaurant.id,
            restaurant_name: restaurant.profile.name.clone(),
            restaurant_address: restaurant.profile.address.clone(),
            delivery_address: request.address.clone(),
            customer_note: request.customer_note.to_string(),
            line_notes: request.notes.clone(),
            estimated_ready_at: now + restaurant.profile.prep_time,
            quote,
            payment_method_id: request.payment_method_id.to_string(),
            payment_id: authorization.payment_id.clone(),
            idempotency_key: request.key.to_string(),
        };
        match self.app.orders.place(&new).await {
            Ok((order, event)) => {
                self.app.announce(order.restaurant_id, order.id).await;
                Ok((order, event))
            }
            Err(err) => self.written_anyway(order_id, &authorization.payment_id, err).await,
        }
    }

    /// After writing the order failed: the order anyway, if it is there (the
    /// commit's answer was lost, or a takeover of a stale key wrote it first:
    /// it keeps its hold), else the failure, once the hold is voided. When the
    /// database cannot tell, the hold is left to expire at the provider: a
    /// voided hold under a real order could never be captured.
    async fn written_anyway(
        &self,
        order_id: Uuid,
        payment_id: &str,
        err: foodfast_store::StoreError,
    ) -> Result<(Order, OrderEvent), ApiError> {
        let chain = foodfast_store::Chain(&err).to_string();
        match self.app.orders.get(order_id).await {
            Ok(Some(order)) => {
                tracing::warn!(order = %order_id, error = chain, "writing the order failed, but it is there");
                let placed = self.app.orders.events(order_id).await?.into_iter().next();
                let placed = placed.ok_or_else(|| ApiError::Internal(format!("order {order_id} has no events")))?;
                self.app.announce(order.restaurant_id, order.id).await;
                Ok((order, placed))
            }
            Ok(None) => {
                if let Err(void) = self.app.payments.void(payment_id, order_id).await {
                    tracing::warn!(order = %order_id, error = %foodfast_store::Chain(&void), "could not void the hold");
                }
                Err(err.into())
            }
            Err(unknown) => {
                tracing::warn!(order = %order_id, error = %foodfast_store::Chain(&unknown), write_error = chain, "cannot tell whether the order was written; its hold is left to expire");
                Err(err.into())
            }
        }
    }

    async fn with_history(&self, order: &Order) -> Result<pb::Order, ApiError> {
        let history = self.app.orders.events(order.id).await?;
        Ok(convert::order(order, &history))
    }
}

/// A validated CreateOrder.
struct PlaceRequest<'a> {
    customer_id: Uuid,
    key: &'a str,
    restaurant_id: Uuid,
    cart: Cart,
    notes: Vec<String>,
    address: Address,
    payment_method_id: &'a str,
    customer_note: &'a str,
}

impl PlaceRequest<'_> {
    /// What "the same request" means for an idempotency key.
    fn fingerprint(&self) -> String {
        let cart = canonical_cart_hash(self.restaurant_id, &self.cart, self.address.location, self.payment_method_id);
        let mut hasher = Sha256::new();
        for part in [cart.as_str(), &self.address.formatted, &self.address.instructions, self.customer_note] {
            hasher.update(part.as_bytes());
            hasher.update([0]);
        }
        for note in &self.notes {
            hasher.update(note.as_bytes());
            hasher.update([0]);
        }
        hex::encode(hasher.finalize())
    }
}

fn parties(order: &Order) -> OrderParties {
    OrderParties { customer_id: order.customer_id, restaurant_id: order.restaurant_id, driver_id: order.driver_id }
}

/// Non-operators learn nothing about orders that are not theirs, not even
/// whether they exist.
pub(crate) fn not_visible(principal: &Principal, order_id: Uuid) -> ApiError {
    if principal.is_operator() {
        ApiError::NotFound(format!("order {order_id} not found"))
    } else {
        ApiError::PermissionDenied(format!("order {order_id} is not yours or does not exist"))
    }
}

#[tonic::async_trait]
impl OrderService for OrderApi {
    async fn quote(&self, request: Request<pb::QuoteRequest>) -> Result<Response<pb::QuoteResponse>, Status> {
        let request = request.into_inner();
        let restaurant_id = parse_uuid("restaurant_id", &request.restaurant_id).map_err(ApiError::from)?;
        let (cart, notes) = convert::parse_cart(&request.items).map_err(ApiError::from)?;
        let address =
            convert::parse_address("delivery_address", request.delivery_address.as_ref()).map_err(ApiError::from)?;
        let (_, quote) = self.price(restaurant_id, &cart, &address).await?;
        Ok(Response::new(convert::quote_response(&quote, &notes, Utc::now())))
    }

    async fn create_order(
        &self,
        request: Request<pb::CreateOrderRequest>,
    ) -> Result<Response<pb::CreateOrderResponse>, Status> {
        let caller = principal(&request)?;
        if caller.role != Role::Customer {
            return Err(ApiError::PermissionDenied("only customers place orders".into()).into());
        }
        let request = request.into_inner();
        let place = parse_place_request(caller.user_id, &request).map_err(ApiError::from)?;
        let fingerprint = place.fingerprint();
        let waited = Instant::now();
        let settings = &self.app.settings;
        let (order, history) = loop {
            let claim = self
                .app
                .orders
                .claim(caller.user_id, place.key, &fingerprint, settings.idempotency_stale_after)
                .await
                .map_err(ApiError::from)?;
            match claim {
                Claim::Owned { order_id } => {
                    let (order, event) = self.place(&place, order_id).await?;
                    break (order, vec![event]);
                }
                Claim::Completed { order_id } => {
                    let order = self.app.orders.get(order_id).await.map_err(ApiError::from)?.ok_or_else(|| {
                        ApiError::NotFound(format!("order {order_id} of this idempotency key no longer exists"))
                    })?;
                    let history = self.app.orders.events(order_id).await.map_err(ApiError::from)?;
                    break (order, history);
                }
                Claim::Mismatch => return Err(ApiError::IdempotencyKeyReused(place.key.to_string()).into()),
                Claim::InProgress if waited.elapsed() < settings.idempotency_wait => {
                    tokio::time::sleep(std::time::Duration::from_millis(25)).await;
                }
                Claim::InProgress => {
                    return Err(ApiError::Aborted(
                        "an order request with this idempotency key is still being placed; retry shortly".into(),
                    )
                    .into());
                }
            }
        };
        Ok(Response::new(pb::CreateOrderResponse { order: Some(convert::order(&order, &history)) }))
    }

    async fn get_order(&self, request: Request<pb::GetOrderRequest>) -> Result<Response<pb::GetOrderResponse>, Status> {
        let caller = principal(&request)?;
        let order_id = parse_uuid("order_id", &request.get_ref().order_id).map_err(ApiError::from)?;
        let order = match self.app.orders.get(order_id).await.map_err(ApiError::from)? {
            Some(order) if caller.may_view_order(&parties(&order)) => order,
            _ => return Err(not_visible(&caller, order_id).into()),
        };
        let mut shown = self.with_history(&order).await?;
        if !caller.may_see_delivery_address(&parties(&order), order.status) {
            shown.delivery_address = None;
        }
        Ok(Response::new(pb::GetOrderResponse { order: Some(shown) }))
    }

    async fn list_orders(
        &self,
        request: Request<pb::ListOrdersRequest>,
    ) -> Result<Response<pb::ListOrdersResponse>, Status> {
        let caller = principal(&request)?;
        let request = request.into_inner();
        let customer_id = if request.customer_id.is_empty() {
            caller.user_id
        } else {
            parse_uuid("customer_id", &request.customer_id).map_err(ApiError::from)?
        };
        if !caller.may_list_orders_of(customer_id) {
            return Err(ApiError::PermissionDenied("you may list only your own orders".into()).into());
        }
        let after = super::page_token::decode_time_page(&request.page_token, &customer_id.to_string())
            .map_err(ApiError::from)?;
        let limit = page_size(request.page_size, DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE);
        let mut orders =
            self.app.orders.list_for_customer(customer_id, after, limit + 1).await.map_err(ApiError::from)?;
        let next_page_token = if orders.len() > limit as usize {
            orders.truncate(limit as usize);
            orders
                .last()
                .map(|o| super::page_token::encode_time_page(&customer_id.to_string(), o.created_at, o.id))
                .unwrap_or_default()
        } else {
            String::new()
        };
        Ok(Response::new(pb::ListOrdersResponse {
            orders: orders.iter().map(|order| convert::order(order, &[])).collect(),
            next_page_token,
        }))
    }

    async fn cancel_order(
        &self,
        request: Request<pb::CancelOrderRequest>,
    ) -> Result<Response<pb::CancelOrderResponse>, Status> {
        let caller = principal(&request)?;
        let request = request.into_inner();
        let order_id = parse_uuid("order_id", &request.order_id).map_err(ApiError::from)?;
        length_between("reason", request.reason.trim(), 1..=500).map_err(ApiError::from)?;
        let order = self
            .app
            .transition(&caller, order_id, OrderAction::Cancel, request.reason.trim(), None)
            .await?
            .into_order();
        Ok(Response::new(pb::CancelOrderResponse { order: Some(self.with_history(&order).await?) }))
    }
}

fn parse_place_request(customer_id: Uuid, request: &pb::CreateOrderRequest) -> Result<PlaceRequest<'_>, FieldError> {
    length_between("idempotency_key", &request.idempotency_key, IDEMPOTENCY_KEY_CHARS)?;
    non_empty("payment_method_id", &request.payment_method_id)?;
    max_len("payment_method_id", &request.payment_method_id, 255)?;
    max_len("customer_note", &request.customer_note, 500)?;
    let (cart, notes) = convert::parse_cart(&request.items)?;
    Ok(PlaceRequest {
        customer_id,
        key: &request.idempotency_key,
        restaurant_id: parse_uuid("restaurant_id", &request.restaurant_id)?,
        cart,
        notes,
        address: convert::parse_address("delivery_address", request.delivery_address.as_ref())?,
        payment_method_id: &request.payment_method_id,
        customer_note: request.customer_note.trim(),
    })
}

impl App {
    /// Runs one action through the state machine for `caller`, then wakes
    /// the watchers and, if the action owes the payment provider a call, the
    /// settlement worker. A repeat of the move just made (a retry) is
    /// answered with the order unchanged. `ready_at` is the restaurant's new
    /// estimate for the food, if it gave one.
    pub(crate) async fn transition(
        &self,
        caller: &Principal,
        order_id: Uuid,
        action: OrderAction,
        reason: &str,
        ready_at: Option<DateTime<Utc>>,
    ) -> Result<Stepped, ApiError> {
        let request = TransitionRequest {
            order_id,
            action,
            actor: caller.actor(),
            actor_id: Some(caller.user_id),
            reason,
            driver_id: None,
            ready_at,
        };
        let transitioned = self
            .orders
            .transition(request, {
                let caller = *caller;
                move |order| caller.may_act_on_order(&parties(order))
            })
            .await;
        let refused = match transitioned {
            Ok(transitioned) => {
                self.committed(&transitioned).await;
                return Ok(Stepped::Applied(transitioned.order));
            }
            Err(TransitionFailure::NotFound(_) | TransitionFailure::Forbidden(_)) => {
                return Err(not_visible(caller, order_id));
            }
            Err(TransitionFailure::Refused(refused @ TransitionError::Illegal { .. })) => refused,
            Err(other) => return Err(other.into()),
        };
        // Only when refused is the order read again: a repeat of the move
        // just made is answered with the order as it is.
        match self.orders.get(order_id).await? {
            Some(order) if caller.may_act_on_order(&parties(&order)) && order::repeats(order.state(), action) => {
                Ok(Stepped::AlreadyApplied(order))
            }
            _ => Err(refused.into()),
        }
    }
}
