//! `RestaurantService`: restaurants, search, menus, and the dashboard's live
//! order stream.

use std::time::Instant;

use chrono::Utc;
use foodfast_api::v1 as pb;
use foodfast_api::v1::restaurant_service_server::RestaurantService;
use foodfast_domain::access::{Principal, Role};
use foodfast_domain::geo::{GeoError, LatLng, MAX_SEARCH_RADIUS_M};
use foodfast_domain::order::OrderAction;
use foodfast_domain::restaurant::{self, normalize_cuisine};
use foodfast_domain::validation::{FieldError, max_len, page_size, parse_uuid};
use foodfast_store::fanout::{Wake, restaurant_topic};
use foodfast_store::restaurants::{ProfileUpdateError, SearchQuery};
use tokio::sync::{broadcast, mpsc};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};
use uuid::Uuid;

use super::{App, BoxStream, page_token};
use crate::auth::principal;
use crate::convert;
use crate::error::ApiError;
use crate::jitter::jittered;

const DEFAULT_SEARCH_RADIUS_M: u32 = 5_000;
const DEFAULT_PAGE_SIZE: u32 = 20;
const MAX_PAGE_SIZE: u32 = 100;
/// Events read from the database per round trip while catching up.
const WATCH_BATCH: u32 = 100;

pub struct RestaurantApi {
    app: App,
}

impl RestaurantApi {
    pub fn new(app: App) -> Self {
        Self { app }
    }
}

fn require_manager(caller: &Principal, restaurant_id: Uuid) -> Result<(), ApiError> {
    if caller.manages_restaurant(restaurant_id) {
        Ok(())
    } else {
        Err(ApiError::PermissionDenied(format!("you do not manage restaurant {restaurant_id}")))
    }
}

/// What `UpdateOrderStatus.status` may say, as the seeds' PATCH body has it.
fn status_action(status: &str) -> Result<OrderAction, FieldError> {
    match status {
        "accepted" => Ok(OrderAction::Accept),
        "rejected" => Ok(OrderAction::Reject),
        "preparing" => Ok(OrderAction::StartPreparing),
        "ready_for_pickup" => Ok(OrderAction::MarkReady),
        other => Err(FieldError::new(
            "status",
            format!("{other:?} is not one of \"accepted\", \"rejected\", \"preparing\", \"ready_for_pickup\""),
        )),
    }
}

#[tonic::async_trait]
impl RestaurantService for RestaurantApi {
    async fn create_restaurant(
        &self,
        request: Request<pb::CreateRestaurantRequest>,
    ) -> Result<Response<pb::CreateRestaurantResponse>, Status> {
        let caller = principal(&request)?;
        if caller.role != Role::Admin {
            return Err(ApiError::PermissionDenied("only admins create restaurants".into()).into());
        }
        let profile = convert::parse_profile(request.get_ref().profile.as_ref()).map_err(ApiError::from)?;
        let restaurant = self.app.restaurants.create(&profile).await.map_err(ApiError::from)?;
        Ok(Response::new(pb::CreateRestaurantResponse {
            restaurant: Some(convert::restaurant(&restaurant, Utc::now())),
        }))
    }

    async fn update_restaurant(
        &self,
        request: Request<pb::UpdateRestaurantRequest>,
    ) -> Result<Response<pb::UpdateRestaurantResponse>, Status> {
        let caller = principal(&request)?;
        let request = request.into_inner();
        let id = parse_uuid("restaurant_id", &request.restaurant_id).map_err(ApiError::from)?;
        require_manager(&caller, id)?;
        let given = request.profile.ok_or_else(|| ApiError::from(FieldError::new("profile", "is required")))?;
        // The fields named are merged over the restaurant as read; a change
        // made by someone else meanwhile is merged again, not overwritten.
        let mut attempts = 1;
        let updated = loop {
            let current = self.app.restaurant(id).await?;
            let merged =
                merge_profile(convert::profile(&current.profile), given.clone(), request.update_mask.as_ref())?;
            let profile = convert::parse_profile(Some(&merged)).map_err(ApiError::from)?;
            match self.app.restaurants.update(id, &profile, current.revision).await {
                Err(ProfileUpdateError::Changed { .. }) if attempts < MAX_PROFILE_MERGES => attempts += 1,
                outcome => break outcome.map_err(ApiError::from)?,
            }
        };
        Ok(Response::new(pb::UpdateRestaurantResponse { restaurant: Some(convert::restaurant(&updated, Utc::now())) }))
    }

    async fn get_restaurant(
        &self,
        request: Request<pb::GetRestaurantRequest>,
    ) -> Result<Response<pb::GetRestaurantResponse>, Status> {
        let id = parse_uuid("restaurant_id", &request.get_ref().restaurant_id).map_err(ApiError::from)?;
        let restaurant = self.app.restaurant(id).await?;
        Ok(Response::new(pb::GetRestaurantResponse { restaurant: Some(convert::restaurant(&restaurant, Utc::now())) }))
    }

    async fn search_nearby(
        &self,
        request: Request<pb::SearchNearbyRequest>,
    ) -> Result<Response<pb::SearchNearbyResponse>, Status> {
        let request = request.into_inner();
        // proto3 sends an unset double as 0: the point (0, 0), in the ocean, is taken as missing.
        if request.lat == 0.0 && request.lng == 0.0 {
            return Err(ApiError::from(FieldError::new("lat", "and lng are required")).into());
        }
        let center = LatLng::new(request.lat, request.lng).map_err(|err| {
            let field = if matches!(err, GeoError::Longitude(_)) { "lng" } else { "lat" };
            ApiError::from(FieldError::new(field, err.to_string()))
        })?;
        let radius_m = if request.radius_m == 0 { DEFAULT_SEARCH_RADIUS_M } else { request.radius_m };
        if radius_m > MAX_SEARCH_RADIUS_M {
            return Err(ApiError::from(FieldError::new(
                "radius_m",
                format!("must be at most {MAX_SEARCH_RADIUS_M} meters"),
            ))
            .into());
        }
        max_len("cuisine", &request.cuisine, 40).map_err(ApiError::from)?;
        let cuisine = Some(normalize_cuisine(&request.cuisine)).filter(|c| !c.is_empty());
        let query_key = format!("{}|{}|{radius_m}|{cuisine:?}|{}", request.lat, request.lng, request.open_now);
        let after = page_token::decode_search_page(&request.page_token, &query_key).map_err(ApiError::from)?;
        let limit = page_size(request.page_size, DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE) as usize;
        let now = Utc::now();
        let mut hits = self
            .app
            .restaurants
            .search(&SearchQuery {
                center,
                radius_m,
                cuisine,
                open_at: request.open_now.then_some(now),
                after,
                limit: limit + 1,
            })
            .await
            .map_err(ApiError::from)?;
        let next_page_token = if hits.len() > limit {
            hits.truncate(limit);
            hits.last()
                .map(|hit| page_token::encode_search_page(&query_key, hit.distance_m, hit.restaurant.id))
                .unwrap_or_default()
        } else {
            String::new()
        };
        let pricing = &self.app.pricing;
        let restaurants = hits
            .iter()
            .map(|hit| {
                let profile = &hit.restaurant.profile;
                pb::RestaurantSearchResult {
                    restaurant_id: hit.restaurant.id.to_string(),
                    name: profile.name.clone(),
                    cuisines: profile.cuisines.clone(),
                    rating: hit.restaurant.rating,
                    delivery_fee: Some(convert::money(pricing.delivery_fee(hit.distance_m), &profile.currency)),
                    estimated_delivery_time: Some(convert::duration(
                        profile.prep_time + pricing.travel_time(hit.distance_m),
                    )),
                    distance_m: hit.distance_m,
                    thumbnail_url: hit.restaurant.image_url.clone(),
                    open_now: profile.is_open(now),
                }
            })
            .collect();
        Ok(Response::new(pb::SearchNearbyResponse { restaurants, next_page_token }))
    }

    async fn get_menu(&self, request: Request<pb::GetMenuRequest>) -> Result<Response<pb::GetMenuResponse>, Status> {
        let id = parse_uuid("restaurant_id", &request.get_ref().restaurant_id).map_err(ApiError::from)?;
        let snapshot = self
            .app
            .restaurants
            .menu(id)
            .await
            .map_err(ApiError::from)?
            .ok_or_else(|| ApiError::NotFound(format!("restaurant {id} not found")))?;
        Ok(Response::new(convert::menu_response(&snapshot, Utc::now())))
    }

    async fn upsert_menu(
        &self,
        request: Request<pb::UpsertMenuRequest>,
    ) -> Result<Response<pb::UpsertMenuResponse>, Status> {
        let caller = principal(&request)?;
        let request = request.into_inner();
        let id = parse_uuid("restaurant_id", &request.restaurant_id).map_err(ApiError::from)?;
        require_manager(&caller, id)?;
        let expected_version = if request.expected_menu_version.is_empty() {
            None
        } else {
            Some(request.expected_menu_version.parse::<i64>().map_err(|_| {
                ApiError::from(FieldError::new("expected_menu_version", "must be a menu_version GetMenu returned"))
            })?)
        };
        let restaurant = self.app.restaurant(id).await?;
        let menu = convert::parse_menu(&request.categories, &restaurant.profile.currency).map_err(ApiError::from)?;
        let snapshot = self.app.restaurants.upsert_menu(id, &menu, expected_version).await.map_err(ApiError::from)?;
        let r = &snapshot.restaurant;
        Ok(Response::new(pb::UpsertMenuResponse {
            categories: convert::menu_categories(&snapshot.menu, &r.profile.currency),
            menu_version: r.menu_version.to_string(),
            menu_updated_at: Some(convert::timestamp(r.menu_updated_at)),
        }))
    }

    /// Ends with `UNAVAILABLE` when the server shuts down or the database
    /// fails (resume with the last cursor), `INVALID_ARGUMENT` for
    /// a bad cursor, `PERMISSION_DENIED` for anyone but the restaurant's staff
    /// and operators.
    async fn watch_orders(
        &self,
        request: Request<pb::WatchOrdersRequest>,
    ) -> Result<Response<BoxStream<pb::WatchOrdersResponse>>, Status> {
        let caller = principal(&request)?;
        let request = request.into_inner();
        let restaurant_id = parse_uuid("restaurant_id", &request.restaurant_id).map_err(ApiError::from)?;
        require_manager(&caller, restaurant_id)?;
        let after = convert::parse_cursor(&request.after_cursor).map_err(ApiError::from)?;
        self.app.restaurant(restaurant_id).await?;
        if let Some(after) = after {
            let latest = self.app.orders.restaurant_cursor(restaurant_id).await.map_err(ApiError::from)?;
            if after > latest.unwrap_or(0) {
                return Err(ApiError::from(convert::unknown_cursor()).into());
            }
        }
        // Subscribed before the first read, so no change falls in between.
        let wake = self.app.fanout.subscribe(&restaurant_topic(restaurant_id));
        let (sender, receiver) = mpsc::channel(self.app.settings.watch_buffer);
        tokio::spawn(watch(self.app.clone(), restaurant_id, after, wake, sender));
        Ok(Response::new(Box::pin(ReceiverStream::new(receiver))))
    }

    async fn update_order_status(
        &self,
        request: Request<pb::UpdateOrderStatusRequest>,
    ) -> Result<Response<pb::UpdateOrderStatusResponse>, Status> {
        let caller = principal(&request)?;
        let request = request.into_inner();
        let order_id = parse_uuid("order_id", &request.order_id).map_err(ApiError::from)?;
        let action = status_action(&request.status).map_err(ApiError::from)?;
        max_len("reason", &request.reason, 500).map_err(ApiError::from)?;
        if action == OrderAction::Reject && request.reason.trim().is_empty() {
            return Err(ApiError::from(FieldError::new("reason", "is required when rejecting an order")).into());
        }
        // Staff's estimate when accepting or starting; ignored with other moves.
        let ready_at = match (&request.prep_time, action) {
            (Some(prep_time), OrderAction::Accept | OrderAction::StartPreparing) => {
                let prep_time = convert::from_duration("prep_time", prep_time)
                    .and_then(|prep_time| restaurant::order_prep_time("prep_time", prep_time))
                    .map_err(ApiError::from)?;
                Some(Utc::now() + prep_time)
            }
            _ => None,
        };
        // A reason belongs to a rejection only (restaurant.proto: ignored otherwise).
        let reason = if action == OrderAction::Reject { request.reason.trim() } else { "" };
        let order = self.app.transition(&caller, order_id, action, reason, ready_at).await?.into_order();
        Ok(Response::new(pb::UpdateOrderStatusResponse {
            order_id: order.id.to_string(),
            status: convert::order_status(order.status) as i32,
            seq: order.last_event_seq as u64,
        }))
    }
}

/// Times an update is merged again over a restaurant that kept changing.
const MAX_PROFILE_MERGES: u32 = 3;

/// Applies `given` over `current`: the fields the mask names (paths relative
/// to the profile), or, when the mask is empty, the fields `given` sets
/// (non-default: `paused = false` needs the mask).
fn merge_profile(
    current: pb::RestaurantProfile,
    given: pb::RestaurantProfile,
    mask: Option<&prost_types::FieldMask>,
) -> Result<pb::RestaurantProfile, ApiError> {
    let paths: Vec<&str> = match mask.filter(|m| !m.paths.is_empty()) {
        Some(mask) => mask.paths.iter().map(|path| path.strip_prefix("profile.").unwrap_or(path)).collect(),
        None => set_fields(&given),
    };
    let mut merged = current;
    for path in paths {
        match path {
            "name" => merged.name = given.name.clone(),
            "address" => merged.address = given.address.clone(),
            "cuisines" => merged.cuisines = given.cuisines.clone(),
            "phone" => merged.phone = given.phone.clone(),
            "time_zone" => merged.time_zone = given.time_zone.clone(),
            "opening_hours" => merged.opening_hours = given.opening_hours.clone(),
            "delivery_radius_m" => merged.delivery_radius_m = given.delivery_radius_m,
            "average_prep_time" => merged.average_prep_time = given.average_prep_time,
            "currency_code" => merged.currency_code = given.currency_code.clone(),
            "paused" => merged.paused = given.paused,
            other => {
                return Err(FieldError::new("update_mask", format!("{other:?} is not a field of the profile")).into());
            }
        }
    }
    Ok(merged)
}

/// The profile fields `profile` sets, as update-mask paths.
fn set_fields(profile: &pb::RestaurantProfile) -> Vec<&'static str> {
    [
        ("name", !profile.name.is_empty()),
        ("address", profile.address.is_some()),
        ("cuisines", !profile.cuisines.is_empty()),
        ("phone", !profile.phone.is_empty()),
        ("time_zone", !profile.time_zone.is_empty()),
        ("opening_hours", !profile.opening_hours.is_empty()),
        ("delivery_radius_m", profile.delivery_radius_m != 0),
        ("average_prep_time", profile.average_prep_time.is_some()),
        ("currency_code", !profile.currency_code.is_empty()),
        ("paused", profile.paused),
    ]
    .into_iter()
    .filter_map(|(path, set)| set.then_some(path))
    .collect()
}

/// The body of one WatchOrders stream: a snapshot (or a replay after the
/// cursor), `caught_up`, then every change as it commits. The database is the
/// source of truth; wake-ups only say when to look. A slow client makes
/// `send` wait, which pauses reading: memory stays bounded by the channel.
async fn watch(
    app: App,
    restaurant_id: Uuid,
    after: Option<i64>,
    mut wake: broadcast::Receiver<Wake>,
    sender: mpsc::Sender<Result<pb::WatchOrdersResponse, Status>>,
) {
    let settings = &app.settings;
    let outcome: Result<(), ApiError> = async {
        let mut snapshot_len = 0;
        let mut cursor = match after {
            Some(cursor) => cursor,
            None => {
                let (cursor, orders) = app.orders.open_orders(restaurant_id).await?;
                snapshot_len = orders.len() as u32;
                for order in &orders {
                    let message = pb::WatchOrdersResponse {
                        cursor: String::new(),
                        payload: Some(pb::watch_orders_response::Payload::Snapshot(convert::order(order, &[]))),
                    };
                    if sender.send(Ok(message)).await.is_err() {
                        return Ok(());
                    }
                }
                cursor
            }
        };
        let mut caught_up = false;
        let mut last_sent = Instant::now();
        loop {
            loop {
                let events = app.orders.restaurant_events_after(restaurant_id, cursor, WATCH_BATCH).await?;
                let done = events.len() < WATCH_BATCH as usize;
                for event in events {
                    let order = app.orders.get(event.order_id).await?;
                    cursor = event.restaurant_seq;
                    let message = pb::WatchOrdersResponse {
                        cursor: cursor.to_string(),
                        payload: Some(pb::watch_orders_response::Payload::Change(pb::RestaurantOrderChange {
                            event: Some(convert::order_event(&event)),
                            order: order.as_ref().map(|order| convert::order(order, &[])),
                        })),
                    };
                    if sender.send(Ok(message)).await.is_err() {
                        return Ok(());
                    }
                    last_sent = Instant::now();
                }
                if done {
                    break;
                }
            }
            if !caught_up {
                caught_up = true;
                let message = pb::WatchOrdersResponse {
                    cursor: cursor.to_string(),
                    payload: Some(pb::watch_orders_response::Payload::CaughtUp(pb::WatchOrdersCaughtUp {
                        open_orders: snapshot_len,
                    })),
                };
                if sender.send(Ok(message)).await.is_err() {
                    return Ok(());
                }
                last_sent = Instant::now();
            }
            let heartbeat_due = last_sent + settings.watch_heartbeat;
            tokio::select! {
                _ = app.stopping.cancelled() => {
                    let _ = sender.send(Err(super::shutting_down())).await;
                    return Ok(());
                }
                _ = sender.closed() => return Ok(()),
                // Changed, lagged or reconnected: all mean "read again".
                woken = wake.recv() => {
                    if let Err(broadcast::error::RecvError::Closed) = woken {
                        wake = app.fanout.subscribe(&restaurant_topic(restaurant_id));
                    }
                }
                _ = tokio::time::sleep(jittered(settings.watch_poll_interval)) => {}
                _ = tokio::time::sleep_until(heartbeat_due.into()) => {
                    let message = pb::WatchOrdersResponse {
                        cursor: cursor.to_string(),
                        payload: Some(pb::watch_orders_response::Payload::Heartbeat(convert::heartbeat(
                            settings.watch_heartbeat,
                        ))),
                    };
                    if sender.send(Ok(message)).await.is_err() {
                        return Ok(());
                    }
                    last_sent = Instant::now();
                }
            }
        }
    }
    .await;
    if let Err(err) = outcome {
        let _ = sender.send(Err(err.into())).await;
    }
}
