//! `TrackingService`: an order's live tracking stream (its body is
//! [`crate::tracking`]), a driver's stored route, and the ops export of a
//! city's day.

use chrono::NaiveDate;
use foodfast_api::v1 as pb;
use foodfast_api::v1::tracking_service_server::TrackingService;
use foodfast_domain::access::{OrderParties, Role};
use foodfast_domain::validation::{FieldError, page_size, parse_uuid};
use foodfast_store::StoreError;
use foodfast_store::locations::{MAX_TRACK_RANGE, TrackPoint};
use futures::StreamExt;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use super::{App, BoxStream};
use crate::auth::principal;
use crate::convert;
use crate::error::ApiError;
use crate::tracking::{self, Start};

const DEFAULT_PAGE_SIZE: u32 = 1_000;
const MAX_PAGE_SIZE: u32 = 5_000;
/// Pings per ExportCityPings message, as the contract promises.
const EXPORT_BATCH: usize = 1_000;

pub struct TrackingApi {
    app: App,
}

impl TrackingApi {
    pub fn new(app: App) -> Self {
        Self { app }
    }
}

fn location_ping(point: &TrackPoint) -> pb::LocationPing {
    pb::LocationPing {
        seq: point.seq,
        lat: point.lat,
        lng: point.lng,
        accuracy_m: point.accuracy_m,
        speed_mps: point.speed_mps,
        heading_deg: point.heading_deg,
        recorded_at: Some(convert::timestamp(point.recorded_at)),
    }
}

#[tonic::async_trait]
impl TrackingService for TrackingApi {
    /// The order's customer, its restaurant's staff, its driver and
    /// operators; anyone else `PERMISSION_DENIED`. See [`tracking::track`]
    /// for how the stream ends.
    async fn track_order(
        &self,
        request: Request<pb::TrackOrderRequest>,
    ) -> Result<Response<BoxStream<pb::TrackOrderResponse>>, Status> {
        let caller = principal(&request)?;
        let request = request.into_inner();
        let order_id = parse_uuid("order_id", &request.order_id).map_err(ApiError::from)?;
        let limit = self.app.tracking.max_location_rate;
        let rate = match request.max_location_updates_per_second {
            0 => limit,
            rate if rate <= limit => rate,
            _ => {
                return Err(ApiError::from(FieldError::new(
                    "max_location_updates_per_second",
                    format!("must be 0 (the server's limit) or 1 to {limit}"),
                ))
                .into());
            }
        };
        let order = self.app.orders.get(order_id).await.map_err(ApiError::from)?;
        let parties = |o: &foodfast_store::orders::Order| OrderParties {
            customer_id: o.customer_id,
            restaurant_id: o.restaurant_id,
            driver_id: o.driver_id,
        };
        let order = order
            .filter(|o| caller.may_view_order(&parties(o)))
            .ok_or_else(|| super::order_api::not_visible(&caller, order_id))?;
        let show_address = caller.may_see_delivery_address(&parties(&order), order.status);
        let resume_after = i64::try_from(request.resume_after).unwrap_or(i64::MAX);
        let start = if resume_after == 0 {
            let history = self.app.orders.events(order_id).await.map_err(ApiError::from)?;
            Start::Fresh { order, history }
        } else if resume_after > order.last_event_seq {
            return Err(ApiError::from(FieldError::new(
                "resume_after",
                format!(
                    "is past the order's last event ({}); resume with the highest seq you received",
                    order.last_event_seq
                ),
            ))
            .into());
        } else {
            Start::Resume { order, after: resume_after }
        };
        let as_driver = (caller.role == Role::Driver).then_some(caller.user_id);
        Ok(Response::new(tracking::track(self.app.clone(), start, rate, show_address, as_driver).await))
    }

    async fn get_driver_track(
        &self,
        request: Request<pb::GetDriverTrackRequest>,
    ) -> Result<Response<pb::GetDriverTrackResponse>, Status> {
        let caller = principal(&request)?;
        let request = request.into_inner();
        let driver_id = parse_uuid("driver_id", &request.driver_id).map_err(ApiError::from)?;
        if !(caller.is_operator() || (caller.role == Role::Driver && caller.user_id == driver_id)) {
            return Err(ApiError::PermissionDenied("a driver may read only their own track".into()).into());
        }
        let from = convert::parse_timestamp("start_time", request.start_time.as_ref()).map_err(ApiError::from)?;
        let to = convert::parse_timestamp("end_time", request.end_time.as_ref()).map_err(ApiError::from)?;
        if to <= from || to - from > MAX_TRACK_RANGE {
            let message = "must be after start_time and at most 24 hours after it";
            return Err(ApiError::from(FieldError::new("end_time", message)).into());
        }
        let limit = page_size(request.page_size, DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE);
        let token = Some(request.page_token.as_str()).filter(|t| !t.is_empty());
        let reader = self.app.location_reader().await?;
        // The range and the page size are checked above: what the store can still refuse is the token.
        let page = reader.driver_track(driver_id, from, to, limit, token).await.map_err(|err| match err {
            StoreError::InvalidQuery(message) => ApiError::from(FieldError::new("page_token", message)),
            other => ApiError::from(other),
        })?;
        Ok(Response::new(pb::GetDriverTrackResponse {
            points: page.points.iter().map(location_ping).collect(),
            next_page_token: page.next_page_token.unwrap_or_default(),
        }))
    }

    /// Ends with `UNAVAILABLE` if the store fails midway (start again: the
    /// export is a read).
    async fn export_city_pings(
        &self,
        request: Request<pb::ExportCityPingsRequest>,
    ) -> Result<Response<BoxStream<pb::ExportCityPingsResponse>>, Status> {
        let caller = principal(&request)?;
        if !caller.is_operator() {
            return Err(ApiError::PermissionDenied("the export is for support and admins".into()).into());
        }
        let request = request.into_inner();
        let day = NaiveDate::parse_from_str(&request.day, "%Y-%m-%d")
            .map_err(|_| ApiError::from(FieldError::new("day", "must be a date like 2026-11-22")))?;
        if request.city.is_empty() {
            return Err(ApiError::from(FieldError::new("city", "is required")).into());
        }
        let reader = self.app.location_reader().await?;
        let mut points = Box::pin(reader.city_day(&request.city, day, self.app.ingest.writer.buckets));
        let (sender, receiver) = mpsc::channel(4);
        tokio::spawn(async move {
            let mut batch = Vec::with_capacity(EXPORT_BATCH);
            loop {
                let next = points.next().await;
                let done = next.is_none();
                match next {
                    Some(Ok(point)) => batch.push(pb::CityPing {
                        driver_id: point.driver_id.to_string(),
                        ping: Some(pb::LocationPing {
                            seq: point.seq,
                            lat: point.lat,
                            lng: point.lng,
                            accuracy_m: point.accuracy_m,
                            speed_mps: point.speed_mps,
                            heading_deg: point.heading_deg,
                            recorded_at: Some(convert::timestamp(point.recorded_at)),
                        }),
                    }),
                    Some(Err(err)) => {
                        let _ = sender.send(Err(ApiError::from(err).into())).await;
                        return;
                    }
                    None => {}
                }
                if (done && !batch.is_empty()) || batch.len() == EXPORT_BATCH {
                    let pings = std::mem::replace(&mut batch, Vec::with_capacity(EXPORT_BATCH));
                    if sender.send(Ok(pb::ExportCityPingsResponse { pings })).await.is_err() {
                        return;
                    }
                }
                if done {
                    return;
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(receiver))))
    }
}
