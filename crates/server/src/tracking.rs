//! The body of one TrackOrder stream, pulled by the transport: it computes
//! its next message only when the client can take one, so a slow reader
//! never queues stale positions. What it holds is bounded: at most
//! `tracking.event_batch` order events read but not yet sent, the driver's
//! latest position (a `watch` slot, latest wins) and the last ETA.
//!
//! Order events come from the database (the source of truth) whenever a
//! Redis wake-up, a reconnection or the resync timer says to look; the
//! stream's cursor is the last event seq sent, so replay and live never
//! overlap or leave a gap. Driver positions come from Redis pub/sub.

use std::collections::VecDeque;
use std::time::Duration;

use chrono::{DateTime, Utc};
use foodfast_api::v1 as pb;
use foodfast_domain::eta::{Eta, EtaEstimator, Leg, should_push};
use foodfast_domain::geo::LatLng;
use foodfast_domain::names::display_name;
use foodfast_domain::order::OrderStatus;
use foodfast_store::StoreError;
use foodfast_store::fanout::{DriverFollow, Wake, order_topic};
use foodfast_store::live::LivePosition;
use foodfast_store::orders::{EventKind, Order, OrderEvent};
use tokio::sync::{broadcast, watch};
use tokio::time::Instant;
use tonic::Status;
use uuid::Uuid;

use crate::api::{App, BoxStream};
use crate::convert;
use crate::error::ApiError;
use crate::jitter::jittered;
use crate::telemetry::PING_TO_TRACKING_SECONDS;

type Message = pb::TrackOrderResponse;
type Payload = pb::track_order_response::Payload;

/// Where a stream starts: a snapshot of the order, or after an event seq.
pub enum Start {
    Fresh { order: Order, history: Vec<OrderEvent> },
    Resume { order: Order, after: i64 },
}

/// The order's facts the stream keeps up to date from its events.
struct Tracked {
    order_id: Uuid,
    status: OrderStatus,
    driver_id: Option<Uuid>,
    restaurant: LatLng,
    customer: LatLng,
    food_ready_at: DateTime<Utc>,
}

impl Tracked {
    fn of(order: &Order) -> Self {
        Self {
            order_id: order.id,
            status: order.status,
            driver_id: order.driver_id,
            restaurant: order.restaurant_address.location,
            customer: order.delivery_address.location,
            food_ready_at: order.estimated_ready_at,
        }
    }

    fn leg(&self) -> Leg {
        match self.status {
            OrderStatus::PickedUp | OrderStatus::Delivering | OrderStatus::Delivered => Leg::ToCustomer,
            _ => Leg::ToRestaurant,
        }
    }
}

struct Tracker {
    app: App,
    tracked: Tracked,
    /// Seq of the last event sent (or covered by the snapshot).
    cursor: i64,
    snapshot: Option<Message>,
    /// Read from the database, not yet sent.
    events: VecDeque<OrderEvent>,
    reread: bool,
    wake: broadcast::Receiver<Wake>,
    connected: watch::Receiver<bool>,
    degraded: bool,
    notice: Option<pb::TrackingNotice>,
    driver: Option<DriverFollow>,
    position: Option<LivePosition>,
    location_gap: Duration,
    next_location_at: Instant,
    estimator: EtaEstimator,
    eta: Option<Eta>,
    last_sent: Instant,
    next_resync: Instant,
    finished: bool,
    /// Whether the caller may see the delivery address (snapshots omit it otherwise).
    show_address: bool,
    /// The caller, when it watches as the order's driver: only while it is.
    as_driver: Option<Uuid>,
    /// When reading events started failing for lack of a database.
    database_failing_since: Option<Instant>,
}

/// How long a stream waits out an unreachable database before it ends, and
/// how often it tries meanwhile.
const DATABASE_OUTAGE_TOLERANCE: Duration = Duration::from_secs(30);
const DATABASE_RETRY: Duration = Duration::from_secs(1);

/// The stream of one order. Ends with OK after a DELIVERED, CANCELLED or
/// REJECTED event (or at once for an order already finished and nothing to
/// replay); with UNAVAILABLE when the server shuts down or the database
/// stays unreachable for [`DATABASE_OUTAGE_TOLERANCE`] (resume with the last
/// seq); with PERMISSION_DENIED when
/// the order leaves `as_driver`, the watching driver.
/// `show_address`: whether the caller may see the delivery address (a
/// driver only while delivering).
pub async fn track(
    app: App,
    start: Start,
    max_locations_per_second: u32,
    show_address: bool,
    as_driver: Option<Uuid>,
) -> BoxStream<Message> {
    let (order, after, history) = match start {
        Start::Fresh { order, mut history } => {
            // History read after the order may hold newer events: they come
            // as events, after the snapshot that matches the order.
            let after = order.last_event_seq;
            history.retain(|event| event.seq <= after);
            (order, after, Some(history))
        }
        Start::Resume { order, after } => (order, after, None),
    };
    let now = Instant::now();
    let config = &app.tracking;
    let mut tracker = Tracker {
        wake: app.fanout.subscribe(&order_topic(order.id)),
        connected: app.fanout.connected(),
        tracked: Tracked::of(&order),
        cursor: after,
        snapshot: None,
        events: VecDeque::new(),
        // The order was read before subscribing: an event committed in
        // between woke nobody, so look once more.
        reread: true,
        degraded: false,
        notice: None,
        driver: None,
        position: None,
        location_gap: Duration::from_secs(1) / max_locations_per_second.max(1),
        next_location_at: now,
        estimator: EtaEstimator::new(config.eta),
        eta: None,
        last_sent: now,
        next_resync: now + jittered(config.resync_interval),
        finished: false,
        show_address,
        as_driver,
        database_failing_since: None,
        app,
    };
    // A replica that just started may not have reached Redis yet: give it a
    // moment before calling live updates degraded.
    if !*tracker.connected.borrow() {
        let _ = tokio::time::timeout(Duration::from_secs(1), tracker.connected.wait_for(|up| *up)).await;
    }
    tracker.connection_changed();
    tracker.follow(order.driver_id).await;
    if let Some(history) = history {
        tracker.snapshot = Some(tracker.snapshot_message(&order, &history).await);
    }
    Box::pin(futures::stream::unfold(tracker, |mut tracker| async move {
        let message = tracker.next().await?;
        Some((message, tracker))
    }))
}

impl Tracker {
    async fn next(&mut self) -> Option<Result<Message, Status>> {
        if self.finished {
            return None;
        }
        let message = match self.next_message().await {
            Ok(Some(message)) => message,
            Ok(None) => return None,
            Err(status) => {
                self.finished = true;
                return Some(Err(status));
            }
        };
        self.last_sent = Instant::now();
        Some(Ok(message))
    }

    async fn next_message(&mut self) -> Result<Option<Message>, Status> {
        if let Some(snapshot) = self.snapshot.take() {
            return Ok(Some(snapshot));
        }
        loop {
            if let Some(event) = self.events.pop_front() {
                // A cancellation clears the driver too: that last event is theirs to see.
                if matches!(event.kind, EventKind::DriverAssigned | EventKind::StatusChanged)
                    && !event.status.is_terminal()
                {
                    self.still_the_driver().await?;
                }
                return Ok(Some(self.event_message(event).await));
            }
            if self.reread {
                self.read_events().await?;
                if !self.events.is_empty() {
                    continue;
                }
            }
            if self.tracked.status.is_terminal() {
                // Every event up to the end has been sent.
                return Ok(None);
            }
            if let Some(notice) = self.notice.take() {
                return Ok(Some(self.message(Payload::Notice(notice))));
            }
            let now = Instant::now();
            if now >= self.next_location_at
                && let Some(message) = self.location_message()
            {
                self.next_location_at = now + self.location_gap;
                return Ok(Some(message));
            }
            if let Some(eta) = self.eta_due() {
                return Ok(Some(self.message(Payload::Eta(eta))));
            }
            if now >= self.last_sent + self.app.settings.watch_heartbeat {
                let heartbeat = convert::heartbeat(self.app.settings.watch_heartbeat);
                return Ok(Some(self.message(Payload::Heartbeat(heartbeat))));
            }
            self.wait().await?;
        }
    }

    /// Sleeps until there may be something to send.
    async fn wait(&mut self) -> Result<(), Status> {
        enum Woken {
            Stopping,
            Changed,
            Connection,
            Resync,
            Timer,
        }
        let location_waiting = self.driver.as_ref().is_some_and(DriverFollow::has_new);
        let eta_due = self.eta.map(|eta| {
            let elapsed = Utc::now().signed_duration_since(eta.computed_at).to_std().unwrap_or_default();
            Instant::now() + self.app.tracking.eta.push_at_least_every.saturating_sub(elapsed)
        });
        let heartbeat_due = self.last_sent + self.app.settings.watch_heartbeat;
        let Self { app, wake, connected, driver, next_location_at, next_resync, .. } = self;
        let woken = tokio::select! {
            biased;
            _ = app.stopping.cancelled() => Woken::Stopping,
            woken = wake.recv() => {
                if let Err(broadcast::error::RecvError::Closed) = woken {
                    *wake = app.fanout.subscribe(&order_topic(self.tracked.order_id));
                }
                Woken::Changed
            }
            changed = connected.changed() => if changed.is_err() { Woken::Stopping } else { Woken::Connection },
            _ = async { driver.as_mut().expect("guarded").changed().await }, if driver.is_some() && !location_waiting => {
                Woken::Timer
            }
            _ = tokio::time::sleep_until(*next_location_at), if location_waiting => Woken::Timer,
            _ = tokio::time::sleep_until(eta_due.unwrap_or(heartbeat_due)), if eta_due.is_some() => Woken::Timer,
            _ = tokio::time::sleep_until(heartbeat_due) => Woken::Timer,
            _ = tokio::time::sleep_until(*next_resync) => Woken::Resync,
        };
        match woken {
            Woken::Stopping => {
                return Err(Status::unavailable("the server is shutting down; resume with the last seq you received"));
            }
            Woken::Changed | Woken::Resync => self.reread = true,
            Woken::Connection => self.connection_changed(),
            Woken::Timer => {}
        }
        Ok(())
    }

    /// Notes a pub/sub connection drop or return, for a notice.
    fn connection_changed(&mut self) {
        let connected = *self.connected.borrow_and_update();
        if connected != self.degraded {
            return;
        }
        self.degraded = !connected;
        let config = &self.app.tracking;
        let (kind, message) = if self.degraded {
            (
                pb::TrackingNoticeKind::LiveUpdatesDegraded,
                "live updates are interrupted: driver locations pause; missed order events will be replayed",
            )
        } else {
            (pb::TrackingNoticeKind::LiveUpdatesRestored, "live updates are back; missed order events were replayed")
        };
        self.notice = Some(pb::TrackingNotice { kind: kind as i32, message: message.into() });
        // Catch up now, then poll while Redis cannot wake us.
        self.reread = true;
        self.next_resync = Instant::now()
            + jittered(if self.degraded { config.degraded_poll_interval } else { config.resync_interval });
    }

    /// Reads the events after the cursor. While the database is unreachable
    /// (a failover, a draining node) it tries again every second or so, and
    /// gives up with UNAVAILABLE after [`DATABASE_OUTAGE_TOLERANCE`]: one
    /// stream in 50,000 reconnecting at once would read far more.
    async fn read_events(&mut self) -> Result<(), Status> {
        let config = &self.app.tracking;
        let events = match self.app.orders.events_after(self.tracked.order_id, self.cursor, config.event_batch).await {
            Ok(events) => {
                self.database_failing_since = None;
                events
            }
            Err(err @ (StoreError::Unavailable { .. } | StoreError::Conflict { .. })) => {
                let since = *self.database_failing_since.get_or_insert_with(Instant::now);
                if since.elapsed() >= DATABASE_OUTAGE_TOLERANCE {
                    return Err(ApiError::from(err).into());
                }
                self.reread = false;
                self.next_resync = Instant::now() + jittered(DATABASE_RETRY);
                return Ok(());
            }
            Err(err) => return Err(ApiError::from(err).into()),
        };
        // A full batch may have more behind it.
        self.reread = events.len() == config.event_batch as usize;
        self.events.extend(events);
        let interval = if self.degraded { config.degraded_poll_interval } else { config.resync_interval };
        self.next_resync = Instant::now() + jittered(interval);
        Ok(())
    }

    /// A driver watches only while the order is theirs: a reassignment (or a
    /// release) ends the stream before it shows the next driver.
    async fn still_the_driver(&self) -> Result<(), Status> {
        let Some(me) = self.as_driver else { return Ok(()) };
        let order = self.app.orders.get(self.tracked.order_id).await.map_err(ApiError::from)?;
        if order.is_some_and(|order| order.driver_id == Some(me)) {
            return Ok(());
        }
        Err(Status::permission_denied("the order is no longer assigned to you"))
    }

    async fn event_message(&mut self, event: OrderEvent) -> Message {
        self.cursor = event.seq;
        self.tracked.status = event.status;
        let mut message = convert::order_event(&event);
        if event.kind == EventKind::DriverAssigned {
            self.follow(event.driver_id).await;
            message.driver = self.driver_summary(false).await;
        }
        if event.kind == EventKind::PrepTimeUpdated {
            // The ETA before pickup waits for the food.
            match self.app.orders.get(self.tracked.order_id).await {
                Ok(Some(order)) => self.tracked.food_ready_at = order.estimated_ready_at,
                Ok(None) => {}
                Err(err) => {
                    tracing::warn!(order = %self.tracked.order_id, error = %foodfast_store::Chain(&err), "could not read the new preparation estimate")
                }
            }
        }
        if event.status.is_terminal() {
            self.driver = None;
        }
        self.message(Payload::Event(message))
    }

    /// Follows `driver_id`'s positions (dropping any previous driver), starting
    /// from its last live position.
    async fn follow(&mut self, driver_id: Option<Uuid>) {
        self.tracked.driver_id = driver_id;
        if self.driver.as_ref().map(DriverFollow::driver_id) == driver_id {
            return;
        }
        self.driver = driver_id.map(|id| self.app.fanout.follow_driver(id));
        self.position = None;
        self.eta = None;
        self.estimator = EtaEstimator::new(self.app.tracking.eta);
        let (Some(driver), Some(driver_id)) = (&self.driver, driver_id) else { return };
        match self.app.live.position(driver_id).await {
            Ok(Some(position)) => driver.offer(position),
            Ok(None) => {}
            Err(err) => tracing::debug!(error = %foodfast_store::Chain(&err), "no live position at start"),
        }
    }

    /// The driver's name and vehicle, with the position when asked.
    async fn driver_summary(&self, with_position: bool) -> Option<pb::DriverSummary> {
        let driver_id = self.tracked.driver_id?;
        let profile = match self.app.users.driver(driver_id).await {
            Ok(profile) => profile,
            Err(err) => {
                tracing::warn!(error = %foodfast_store::Chain(&err), "driver profile unavailable");
                None
            }
        };
        let position = self.position.filter(|_| with_position);
        Some(pb::DriverSummary {
            driver_id: driver_id.to_string(),
            display_name: profile.as_ref().map(|p| display_name(&p.name)).unwrap_or_default(),
            vehicle: profile.map(|p| p.vehicle).unwrap_or_default(),
            position: position.map(|p| convert::lat_lng(p.position)),
            position_recorded_at: position.map(|p| convert::timestamp(p.recorded_at)),
        })
    }

    async fn snapshot_message(&mut self, order: &Order, history: &[OrderEvent]) -> Message {
        // The position the snapshot shows is not sent again as an update.
        if let Some(driver) = &mut self.driver
            && let Some(position) = driver.take()
        {
            self.observe(position);
        }
        let eta = self.eta_due();
        let history: Vec<OrderEvent> = history.iter().filter(|e| e.seq <= order.last_event_seq).cloned().collect();
        let mut snapshot = convert::order(order, &history);
        snapshot.driver = self.driver_summary(true).await;
        if !self.show_address {
            snapshot.delivery_address = None;
        }
        self.message(Payload::Snapshot(pb::TrackingSnapshot { order: Some(snapshot), eta }))
    }

    /// The driver's newest position, if there is one not sent yet.
    fn location_message(&mut self) -> Option<Message> {
        let driver = self.driver.as_mut()?;
        if !driver.has_new() {
            return None;
        }
        let position = driver.take()?;
        if self.position.is_some_and(|seen| seen.seq >= position.seq) {
            return None;
        }
        self.observe(position);
        if let Ok(latency) = (Utc::now() - position.received_at).to_std() {
            metrics::histogram!(PING_TO_TRACKING_SECONDS).record(latency.as_secs_f64());
        }
        Some(self.message(Payload::DriverLocation(pb::DriverLocationUpdate {
            position: Some(convert::lat_lng(position.position)),
            heading_deg: position.heading_deg,
            speed_mps: position.speed_mps,
            recorded_at: Some(convert::timestamp(position.recorded_at)),
        })))
    }

    fn observe(&mut self, position: LivePosition) {
        self.estimator.observe(position.position, position.recorded_at, position.speed_mps);
        self.position = Some(position);
    }

    /// A new ETA, when it moved enough or the last one is getting old.
    fn eta_due(&mut self) -> Option<pb::TrackingEta> {
        let position = self.position?;
        let tracked = &self.tracked;
        let food_ready_at = (tracked.leg() == Leg::ToRestaurant).then_some(tracked.food_ready_at);
        let eta = self.estimator.estimate(
            position.position,
            tracked.leg(),
            tracked.restaurant,
            tracked.customer,
            food_ready_at,
            Utc::now(),
        );
        if !should_push(&self.app.tracking.eta, self.eta.as_ref(), &eta) {
            return None;
        }
        self.eta = Some(eta);
        Some(pb::TrackingEta {
            estimated_pickup_at: eta.pickup_at.map(convert::timestamp),
            estimated_delivery_at: Some(convert::timestamp(eta.delivery_at)),
            remaining_distance_m: eta.remaining_distance_m,
            computed_at: Some(convert::timestamp(eta.computed_at)),
        })
    }

    fn message(&self, payload: Payload) -> Message {
        Message { seq: self.cursor.max(0) as u64, payload: Some(payload) }
    }
}
