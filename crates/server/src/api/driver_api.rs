//! `DriverService`: the driver app's one connection. Pings go up, are
//! checked, made live in Redis and queued for the time series; acks come
//! down naming the highest seq below which everything accepted is durable.
//! Delivery steps (picked up, delivered) move the driver's order through the
//! state machine, over Connect or the unary fallbacks alike.

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use chrono::{DateTime, Utc};
use foodfast_api::v1 as pb;
use foodfast_api::v1::connect_response::Payload;
use foodfast_api::v1::driver_service_server::DriverService;
use foodfast_domain::access::{Principal, Role};
use foodfast_domain::geo::distance_m;
use foodfast_domain::order::{OrderAction, OrderStatus, Stop, TransitionError};
use foodfast_domain::ping::{self, Ping, PingRejection, RawPing};
use foodfast_domain::validation::{FieldError, parse_uuid};
use foodfast_store::dispatch::{Accepted, AnswerFailure, OfferStatus};
use foodfast_store::failure_log::FailureLog;
use foodfast_store::fanout::{DISPATCH_TOPIC, driver_topic};
use foodfast_store::locations::{LocationPoint, LocationWriter, SubmitError};
use foodfast_store::orders::{Arrival, ArrivalRefused};
use tokio::sync::{mpsc, watch};
use tokio_stream::StreamExt;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Code, Request, Response, Status, Streaming};
use uuid::Uuid;

use super::order_api::not_visible;
use super::{App, BoxStream, Stepped};
use crate::auth::principal;
use crate::convert;
use crate::error::ApiError;
use crate::jitter::jittered;
use crate::telemetry::{PINGS_ACCEPTED_TOTAL, PINGS_ACKED_TOTAL, PINGS_REJECTED_TOTAL};

/// Rejections reported per ack at most; more go out in the next ack.
const MAX_REJECTIONS_PER_ACK: usize = 100;
/// Pings per ReportLocation call.
const MAX_PINGS_PER_REPORT: usize = 500;
/// Free text a driver may give with a decline.
const MAX_DECLINE_REASON_CHARS: usize = 200;
/// When an app should answer again an offer whose answer was not recorded.
const OFFER_ANSWER_RETRY_AFTER: Duration = Duration::from_secs(1);
/// A Connect stream writes its durable watermark to Redis (the next
/// session's resume point) at most this often, and when it ends.
const DURABLE_HINT_EVERY: Duration = Duration::from_secs(1);

pub struct DriverApi {
    app: App,
}

impl DriverApi {
    pub fn new(app: App) -> Self {
        Self { app }
    }
}

fn require_driver(caller: &Principal) -> Result<(), Status> {
    if caller.role == Role::Driver {
        Ok(())
    } else {
        Err(Status::permission_denied("only drivers connect, report locations and report delivery steps"))
    }
}

/// A delivery step that moves the order. Arrivals are milestones that are
/// not recorded yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    PickUp,
    Deliver,
}

/// What a Connect `DeliveryTransition` reports: a step that moves the
/// order, or an arrival (a milestone).
enum Report {
    Step(Step),
    Arrival(Stop),
}

impl Report {
    fn from_proto(step: i32) -> Result<Self, ApiError> {
        match pb::DeliveryStep::try_from(step) {
            Ok(pb::DeliveryStep::PickedUp) => Ok(Report::Step(Step::PickUp)),
            Ok(pb::DeliveryStep::Delivered) => Ok(Report::Step(Step::Deliver)),
            Ok(pb::DeliveryStep::ArrivedAtRestaurant) => Ok(Report::Arrival(Stop::Restaurant)),
            Ok(pb::DeliveryStep::ArrivedAtCustomer) => Ok(Report::Arrival(Stop::Customer)),
            Ok(pb::DeliveryStep::Unspecified) | Err(_) => Err(FieldError::new("step", "must be set").into()),
        }
    }
}

impl Step {
    fn action(self) -> OrderAction {
        match self {
            Step::PickUp => OrderAction::PickUp,
            Step::Deliver => OrderAction::Deliver,
        }
    }

    /// Whether an order in `status` went through this step already (so a
    /// resend is answered, not refused).
    fn done_by(self, status: OrderStatus) -> bool {
        match self {
            Step::PickUp => matches!(status, OrderStatus::PickedUp | OrderStatus::Delivering | OrderStatus::Delivered),
            Step::Deliver => status == OrderStatus::Delivered,
        }
    }
}

/// Why a step was refused, with the order's status when the caller may know it.
struct Refusal {
    error: ApiError,
    status: Option<OrderStatus>,
}

impl From<ApiError> for Refusal {
    fn from(error: ApiError) -> Self {
        Self { error, status: None }
    }
}

/// Runs one delivery step for the caller, who must be the order's driver.
/// The happy path is the transition's one transaction; only when the state
/// machine refuses is the order read, to answer a resend of a step already
/// recorded with the order as it is.
async fn delivery_step(app: &App, caller: &Principal, order_id: Uuid, step: Step) -> Result<Stepped, Refusal> {
    let refused = match app.transition(caller, order_id, step.action(), "", None).await {
        Ok(stepped) => return Ok(stepped),
        Err(ApiError::Transition(refused @ TransitionError::Illegal { .. })) => refused,
        Err(error) => return Err(error.into()),
    };
    let order = match app.orders.get(order_id).await {
        Ok(Some(order)) if order.driver_id == Some(caller.user_id) => order,
        // Taken away (or gone) since the transition looked.
        Ok(_) => return Err(not_visible(caller, order_id).into()),
        Err(err) => return Err(ApiError::from(err).into()),
    };
    if step.done_by(order.status) {
        Ok(Stepped::AlreadyApplied(order))
    } else {
        Err(Refusal { error: refused.into(), status: Some(order.status) })
    }
}

/// Records that the caller, the order's driver, arrived at `stop` (once:
/// a resend is answered with the order as it is).
async fn arrival(app: &App, caller: &Principal, order_id: Uuid, stop: Stop) -> Result<Stepped, Refusal> {
    match app.orders.record_arrival(order_id, caller.user_id, stop).await {
        Ok(Ok(Arrival { order, new_event: Some(event) })) => {
            app.announce(event.restaurant_id, order_id).await;
            Ok(Stepped::Applied(order))
        }
        Ok(Ok(Arrival { order, new_event: None })) => Ok(Stepped::AlreadyApplied(order)),
        Ok(Err(refused)) => {
            let status = match &refused {
                ArrivalRefused::NotNow { status, .. } => Some(*status),
                ArrivalRefused::NotFound(_) => None,
            };
            Err(Refusal { error: refused.into(), status })
        }
        Err(err) => Err(ApiError::from(err).into()),
    }
}

/// Runs what the driver reports: a step, or an arrival.
async fn reported(app: &App, caller: &Principal, order_id: Uuid, report: Report) -> Result<Stepped, Refusal> {
    match report {
        Report::Step(step) => delivery_step(app, caller, order_id, step).await,
        Report::Arrival(stop) => arrival(app, caller, order_id, stop).await,
    }
}

/// The answer to a `DeliveryTransition` sent over Connect. A refusal, or a
/// failure to record it (the app sends it again), is an answer too: it never
/// ends the stream.
async fn transition_result(app: &App, caller: &Principal, transition: pb::DeliveryTransition) -> pb::TransitionResult {
    let stepped = match (Report::from_proto(transition.step), parse_uuid("order_id", &transition.order_id)) {
        (Ok(report), Ok(order_id)) => reported(app, caller, order_id, report).await,
        (Err(error), _) => Err(error.into()),
        (_, Err(field)) => Err(ApiError::from(field).into()),
    };
    let (outcome, status, error) = match stepped {
        Ok(Stepped::Applied(order)) => (pb::TransitionOutcome::Applied, Some(order.status), String::new()),
        Ok(Stepped::AlreadyApplied(order)) => {
            (pb::TransitionOutcome::AlreadyApplied, Some(order.status), String::new())
        }
        Err(Refusal { error, status }) => {
            let error = Status::from(error);
            let outcome = match error.code() {
                Code::Unavailable
                | Code::Aborted
                | Code::DeadlineExceeded
                | Code::ResourceExhausted
                | Code::Internal => pb::TransitionOutcome::Failed,
                _ => pb::TransitionOutcome::Refused,
            };
            (outcome, status, error.message().to_string())
        }
    };
    pb::TransitionResult {
        transition_id: transition.transition_id,
        order_id: transition.order_id,
        step: transition.step,
        outcome: outcome as i32,
        order_status: status.map_or(pb::OrderStatus::Unspecified, convert::order_status) as i32,
        error,
    }
}

fn raw_ping(ping: &pb::LocationPing) -> RawPing {
    RawPing {
        seq: ping.seq,
        lat: ping.lat,
        lng: ping.lng,
        accuracy_m: ping.accuracy_m,
        speed_mps: ping.speed_mps,
        heading_deg: ping.heading_deg,
        recorded_at: ping.recorded_at.as_ref().and_then(|t| DateTime::from_timestamp(t.seconds, t.nanos.max(0) as u32)),
    }
}

fn reason_of(why: PingRejection) -> pb::PingRejectionReason {
    use pb::PingRejectionReason as R;
    match why {
        PingRejection::CoordinatesOutOfRange => R::CoordinatesOutOfRange,
        PingRejection::TimestampInFuture => R::TimestampInFuture,
        PingRejection::TimestampTooOld => R::TimestampTooOld,
        PingRejection::ImpossibleSpeed { .. } => R::ImpossibleSpeed,
        PingRejection::DuplicateSeq => R::DuplicateSeq,
        PingRejection::OutOfOrder => R::OutOfOrder,
        PingRejection::InvalidField(_) => R::InvalidField,
    }
}

fn rejection(ping: &pb::LocationPing, why: PingRejection) -> pb::RejectedPing {
    let reason = reason_of(why);
    let detail = match why {
        PingRejection::CoordinatesOutOfRange => {
            format!("lat {} / lng {} is outside -90..90 / -180..180", ping.lat, ping.lng)
        }
        _ => why.to_string(),
    };
    pb::RejectedPing { seq: ping.seq, reason: reason as i32, detail }
}

/// Every ping's live update fails while Redis is down: warned of in bulk.
static LIVE_UPDATE_FAILURES: FailureLog =
    FailureLog::new("live position updates failing; pings are still stored and acknowledged");

/// How long a new Connect stream may take to say `hello`.
const HELLO_WITHIN: Duration = Duration::from_secs(30);

/// Why [`DriverPings::take`] did not take a ping.
enum NotTaken {
    /// A bad ping: reported in the next ack, its seq covered by the watermark.
    Rejected(PingRejection),
    /// The writer stopped with the server: the ping is neither stored nor
    /// rejected, and the app resends it after reconnecting.
    Stopped,
}

impl From<PingRejection> for NotTaken {
    fn from(why: PingRejection) -> Self {
        NotTaken::Rejected(why)
    }
}

fn shutting_down() -> Status {
    Status::unavailable("the server is shutting down; reconnect and resend above durable_seq")
}

/// Rejected seqs one stream remembers while accepted pings below them wait
/// to be durable.
const MAX_REJECTED_WAITING: usize = 4096;

/// One driver's ping state: what was accepted last and what is durable.
struct DriverPings {
    driver_id: Uuid,
    last: Option<Ping>,
    /// Every ping at or below it is durable or was rejected (the ack's `durable_seq`).
    durable: u64,
    /// The highest seq handed to the writer by this session.
    submitted: u64,
    /// Accepted seqs above `durable`, not yet durable.
    pending: BTreeSet<u64>,
    /// Rejected seqs above `durable`: covered once every accepted seq below them is durable.
    rejected: BTreeSet<u64>,
    /// Accepted pings made durable since the last ack.
    newly_durable: u64,
    /// The watermark last written to Redis, and when that was last tried.
    recorded: u64,
    record_tried_at: Option<tokio::time::Instant>,
}

impl DriverPings {
    /// Picks up where the driver's previous session (on any replica) left off.
    async fn load(app: &App, writer: &LocationWriter, driver_id: Uuid) -> Result<Self, ApiError> {
        let live = app.live.position(driver_id).await?;
        let recorded = app.live.durable(driver_id).await?.unwrap_or(0);
        let durable = recorded.max(writer.durable_seq(driver_id).unwrap_or(0));
        let last = live.map(|p| Ping {
            seq: p.seq,
            position: p.position,
            accuracy_m: None,
            speed_mps: p.speed_mps,
            heading_deg: p.heading_deg,
            recorded_at: p.recorded_at,
        });
        Ok(Self::new(driver_id, last, durable))
    }

    fn new(driver_id: Uuid, last: Option<Ping>, durable: u64) -> Self {
        Self {
            driver_id,
            last,
            durable,
            submitted: 0,
            pending: BTreeSet::new(),
            rejected: BTreeSet::new(),
            newly_durable: 0,
            recorded: durable,
            record_tried_at: None,
        }
    }

    /// Checks one ping and, if accepted, makes it live and queues it for the
    /// time series (waiting while the writer's queue is full: backpressure).
    /// A resend of a ping that went live but is not durable yet (the app
    /// reconnected before its ack) is written again, not rejected.
    async fn accept(&mut self, app: &App, writer: &LocationWriter, ping: &pb::LocationPing) -> Result<(), NotTaken> {
        let raw = raw_ping(ping);
        let now = Utc::now();
        let policy = &app.ingest.ping_policy;
        // Below the watermark, or queued by this session already: the same
        // seq sent twice on one stream is not a resend.
        if raw.seq != 0 && (raw.seq <= self.durable || self.pending.contains(&raw.seq)) {
            return Err(PingRejection::DuplicateSeq.into());
        }
        ping::check_seq_jump(self.highest_known(), raw.seq)?;
        let resend = self.last.is_some_and(|last| raw.seq <= last.seq);
        let accepted = ping::check(policy, if resend { None } else { self.last.as_ref() }, &raw, now)?;
        let city = app.ingest.zones.city_of(accepted.position).to_string();
        if !resend {
            // The durable path still takes it; live state catches up with the next ping.
            match app.live.update(self.driver_id, &city, &accepted, now).await {
                Ok(()) => LIVE_UPDATE_FAILURES.succeeded(),
                Err(err) => LIVE_UPDATE_FAILURES.failed(&err),
            }
            self.last = Some(accepted);
        }
        let point = LocationPoint {
            driver_id: self.driver_id,
            seq: accepted.seq,
            city,
            lat: accepted.position.lat,
            lng: accepted.position.lng,
            accuracy_m: accepted.accuracy_m,
            speed_mps: accepted.speed_mps,
            heading_deg: accepted.heading_deg,
            recorded_at: accepted.recorded_at,
            received_at: now,
        };
        match writer.submit(point).await {
            Ok(()) => {}
            Err(SubmitError::Stopped) => return Err(NotTaken::Stopped),
            Err(SubmitError::SeqOutOfRange(_) | SubmitError::Full(_)) => {
                return Err(PingRejection::InvalidField("seq must be between 1 and 2^63 - 1").into());
            }
        }
        self.submitted = self.submitted.max(accepted.seq);
        self.pending.insert(accepted.seq);
        Ok(())
    }

    /// Checks a ping, remembering a rejected seq so the watermark can pass it.
    async fn take(&mut self, app: &App, writer: &LocationWriter, ping: &pb::LocationPing) -> Result<(), NotTaken> {
        let outcome = self.accept(app, writer, ping).await;
        if let Err(NotTaken::Rejected(_)) = outcome {
            let driver_id = self.driver_id;
            self.remember_rejected(ping.seq, || writer.lowest_unwritten(driver_id));
        }
        outcome
    }

    /// Remembers a rejected seq above the watermark, up to
    /// [`MAX_REJECTED_WAITING`]: past it (the store is down and the app keeps
    /// sending bad pings) the ack covers the rest only once an accepted ping
    /// above them is durable. A bogus seq far ahead is never covered: it
    /// would make every later ping a duplicate.
    fn remember_rejected(&mut self, seq: u64, unwritten_elsewhere: impl FnOnce() -> Option<u64>) {
        if seq > self.durable
            && ping::check_seq_jump(self.highest_known(), seq).is_ok()
            && self.rejected.len() < MAX_REJECTED_WAITING
        {
            self.rejected.insert(seq);
            self.advance(unwritten_elsewhere);
        }
    }

    /// The highest seq this driver is known to have reached.
    fn highest_known(&self) -> u64 {
        self.last.map_or(0, |last| last.seq).max(self.submitted).max(self.durable)
    }

    /// The writer made everything accepted up to `seq` durable.
    fn durable_moved(&mut self, seq: u64, unwritten_elsewhere: impl FnOnce() -> Option<u64>) {
        self.durable = self.durable.max(seq);
        self.advance(unwritten_elsewhere);
    }

    /// Moves `durable` over rejected seqs with nothing accepted and unwritten
    /// below them, by this session or, as `unwritten_elsewhere` tells (the
    /// writer's lowest unwritten seq of this driver, asked only when a
    /// rejected seq waits), by an older one still queued.
    fn advance(&mut self, unwritten_elsewhere: impl FnOnce() -> Option<u64>) {
        let pending = self.pending.len();
        self.pending.retain(|&seq| seq > self.durable);
        self.newly_durable += (pending - self.pending.len()) as u64;
        if self.rejected.is_empty() {
            return;
        }
        let first_pending = self.pending.first().copied().into_iter().chain(unwritten_elsewhere()).min();
        if let Some(&covered) = self.rejected.range(..first_pending.unwrap_or(u64::MAX)).next_back() {
            self.durable = self.durable.max(covered);
        }
        self.rejected.retain(|&seq| seq > self.durable);
    }

    /// Remembers the watermark for the next session (on any replica, after a
    /// restart) if it moved: at most once per [`DURABLE_HINT_EVERY`] unless
    /// `now`. It is only a resume hint: one that lags (a replica died) makes
    /// the app resend pings that are written again to the same rows.
    async fn record_durable(&mut self, app: &App, now: bool) {
        let Some(due) = self.record_due() else { return };
        if !now && due > tokio::time::Instant::now() {
            return;
        }
        self.record_tried_at = Some(tokio::time::Instant::now());
        match app.live.record_durable(self.driver_id, self.durable).await {
            Ok(()) => self.recorded = self.durable,
            Err(err) => {
                tracing::warn!(driver = %self.driver_id, error = %foodfast_store::Chain(&err), "could not record durable seq")
            }
        }
    }

    /// When the watermark should next be written, if it moved since.
    fn record_due(&self) -> Option<tokio::time::Instant> {
        (self.durable > self.recorded).then(|| match self.record_tried_at {
            Some(at) => at + DURABLE_HINT_EVERY,
            None => tokio::time::Instant::now(),
        })
    }
}

type Outbound = mpsc::Sender<Result<pb::ConnectResponse, Status>>;

fn message(payload: Payload) -> Result<pb::ConnectResponse, Status> {
    Ok(pb::ConnectResponse { payload: Some(payload) })
}

/// What the driver's app was last told about its offers and deliveries, so
/// that a re-read sends only what changed.
#[derive(Default)]
struct Shown {
    /// Open offers sent: offer → delivery.
    offers: HashMap<Uuid, Uuid>,
    /// Deliveries held: delivery → order.
    deliveries: HashMap<Uuid, Uuid>,
    /// The availability the app was last told (BUSY while at capacity).
    availability: Option<pb::DriverAvailability>,
}

impl Shown {
    /// Re-reads the driver's open offers, held deliveries and availability
    /// (with `repair`, its at-capacity flag repaired from the database first)
    /// and returns the messages that bring the app up to date: new offers,
    /// closed ones, deliveries assigned, taken away or cancelled, and the
    /// availability when the server changed it (e.g. BUSY at capacity).
    async fn sync(&mut self, app: &App, driver_id: Uuid, repair: bool) -> Result<Vec<Payload>, ApiError> {
        let mut messages = Vec::new();
        let open = app.dispatch.open_offers(driver_id).await?;
        let closed: Vec<Uuid> =
            self.offers.keys().filter(|id| !open.iter().any(|o| o.offer_id == **id)).copied().collect();
        if !closed.is_empty() {
            for (offer_id, delivery_id, status) in app.dispatch.offer_outcomes(&closed).await? {
                self.offers.remove(&offer_id);
                let reason = match status {
                    OfferStatus::Declined => pb::OfferClosedReason::Declined,
                    OfferStatus::Expired => pb::OfferClosedReason::Expired,
                    OfferStatus::Withdrawn => pb::OfferClosedReason::Withdrawn,
                    // Accepted: the assignment below says it.
                    OfferStatus::Accepted | OfferStatus::Pending => continue,
                };
                messages.push(offer_closed(offer_id, delivery_id, reason));
            }
        }
        for offer in open {
            if self.offers.contains_key(&offer.offer_id) {
                continue;
            }
            if let Some(order) = app.orders.get(offer.order_id).await? {
                messages.push(Payload::Offer(convert::offer(&offer, &order)));
                self.offers.insert(offer.offer_id, offer.delivery_id);
            }
        }
        let held = app.orders.active_deliveries(driver_id).await?;
        let gone: Vec<(Uuid, Uuid)> = self
            .deliveries
            .iter()
            .filter(|(id, _)| !held.iter().any(|(held_id, _)| held_id == *id))
            .map(|(id, order)| (*id, *order))
            .collect();
        for (delivery_id, order_id) in gone {
            self.deliveries.remove(&delivery_id);
            let Some(order) = app.orders.get(order_id).await? else { continue };
            let kind = match order.status {
                OrderStatus::Delivered => continue,
                OrderStatus::Cancelled | OrderStatus::Rejected => pb::AssignmentChangeKind::Cancelled,
                _ => pb::AssignmentChangeKind::Unassigned,
            };
            let mut delivery = convert::delivery(delivery_id, &order);
            // No longer this driver's to deliver: no address.
            delivery.customer_address = None;
            messages.push(Payload::Assignment(pb::AssignmentChange {
                kind: kind as i32,
                delivery: Some(delivery),
                reason: String::new(),
            }));
        }
        for (delivery_id, order_id) in held {
            if self.deliveries.contains_key(&delivery_id) {
                continue;
            }
            if let Some(order) = app.orders.get(order_id).await? {
                self.deliveries.insert(delivery_id, order_id);
                messages.push(Payload::Assignment(pb::AssignmentChange {
                    kind: pb::AssignmentChangeKind::Assigned as i32,
                    delivery: Some(convert::delivery(delivery_id, &order)),
                    reason: String::new(),
                }));
            }
        }
        // The live at-capacity flag follows each commit; a Redis failure then
        // (or the hash expiring) would leave it wrong until this repair, done
        // on the periodic resync rather than on every wake-up.
        if repair && let Some(profile) = app.users.driver(driver_id).await? {
            app.live.set_at_capacity(driver_id, profile.active_deliveries >= profile.capacity).await?;
        }
        let availability = availability_from(app.live.availability(driver_id).await?.as_deref());
        if let Some(change) = self.availability_moved(availability) {
            messages.push(change);
        }
        Ok(messages)
    }

    /// The message telling the app the server moved its availability to
    /// `availability`, unless the app already knows (the first look only
    /// remembers it).
    fn availability_moved(&mut self, availability: pb::DriverAvailability) -> Option<Payload> {
        let told = self.availability.replace(availability)?;
        let reason = match (told, availability) {
            (pb::DriverAvailability::Online, pb::DriverAvailability::Busy) => AT_CAPACITY,
            (pb::DriverAvailability::Busy, pb::DriverAvailability::Online) => "a delivery is done: taking offers again",
            _ => "",
        };
        (told != availability).then(|| availability_change(availability, reason))
    }
}

const AT_CAPACITY: &str = "holding as many deliveries as allowed: no new offers until one is done";

fn availability_change(availability: pb::DriverAvailability, reason: &str) -> Payload {
    Payload::Availability(pb::AvailabilityChange { availability: availability as i32, reason: reason.into() })
}

fn offer_closed(offer_id: Uuid, delivery_id: Uuid, reason: pb::OfferClosedReason) -> Payload {
    Payload::OfferClosed(pb::OfferClosed {
        offer_id: offer_id.to_string(),
        delivery_id: delivery_id.to_string(),
        reason: reason as i32,
    })
}

/// How a refused answer reads on the stream.
fn closed_reason(failure: &AnswerFailure) -> pb::OfferClosedReason {
    match failure {
        AnswerFailure::Expired(_) | AnswerFailure::Closed { status: OfferStatus::Expired, .. } => {
            pb::OfferClosedReason::Expired
        }
        AnswerFailure::Closed { status: OfferStatus::Declined, .. } => pb::OfferClosedReason::Declined,
        _ => pb::OfferClosedReason::Withdrawn,
    }
}

/// A driver accepts its offer of `delivery_id`: one transaction assigns it.
async fn accept_offer(
    app: &App,
    driver_id: Uuid,
    delivery_id: Uuid,
) -> Result<Result<Accepted, AnswerFailure>, ApiError> {
    let outcome = app.dispatch.accept(driver_id, delivery_id).await?;
    match &outcome {
        Ok(Accepted::Now(done)) => app.committed(done).await,
        Ok(Accepted::Before(_)) => {}
        // The order goes to the next driver now.
        Err(_) => app.wake(DISPATCH_TOPIC).await,
    }
    Ok(outcome)
}

async fn decline_offer(app: &App, driver_id: Uuid, delivery_id: Uuid) -> Result<Result<(), AnswerFailure>, ApiError> {
    let outcome = app.dispatch.decline(driver_id, delivery_id).await?;
    app.wake(DISPATCH_TOPIC).await;
    Ok(outcome)
}

/// Answers an `OfferAnswer` sent over Connect. A refused answer is told as
/// the offer's closing, one the store could not record as
/// `OfferAnswerFailed` (answer again); only a malformed answer is a
/// protocol error (and ends the stream).
async fn answer_on_stream(
    app: &App,
    driver_id: Uuid,
    shown: &Shown,
    answer: pb::OfferAnswer,
) -> Result<Option<Payload>, Status> {
    let offer_id = Uuid::parse_str(&answer.offer_id)
        .map_err(|_| Status::invalid_argument("offer_answer.offer_id must be the offer's id"))?;
    let decision = match pb::OfferDecision::try_from(answer.decision) {
        Ok(pb::OfferDecision::Accept) => pb::OfferDecision::Accept,
        Ok(pb::OfferDecision::Decline) => pb::OfferDecision::Decline,
        _ => return Err(Status::invalid_argument("offer_answer.decision must be accept or decline")),
    };
    if answer.reason.chars().count() > MAX_DECLINE_REASON_CHARS {
        return Err(Status::invalid_argument("offer_answer.reason must be at most 200 characters"));
    }
    let known = match shown.offers.get(&offer_id) {
        Some(delivery_id) => Ok(Some(*delivery_id)),
        None => app.dispatch.offer_outcomes(&[offer_id]).await.map(|found| found.first().map(|(_, id, _)| *id)),
    };
    let delivery_id = match known.map_err(ApiError::from) {
        Ok(Some(delivery_id)) => delivery_id,
        Ok(None) => return Ok(Some(offer_closed(offer_id, Uuid::nil(), pb::OfferClosedReason::Withdrawn))),
        Err(err) => return Ok(Some(answer_failed(driver_id, offer_id, err))),
    };
    let answered = if decision == pb::OfferDecision::Accept {
        accept_offer(app, driver_id, delivery_id).await.map(Result::err)
    } else {
        decline_offer(app, driver_id, delivery_id).await.map(Result::err)
    };
    let refused = match answered {
        Ok(refused) => refused,
        Err(err) => return Ok(Some(answer_failed(driver_id, offer_id, err))),
    };
    // An accepted or declined offer is told by the next sync, like any change.
    Ok(refused.map(|failure| offer_closed(offer_id, delivery_id, closed_reason(&failure))))
}

/// An answer the store could not record. Not the app's fault: the offer
/// stays open until its deadline, the app is told to answer again, and the
/// stream goes on.
fn answer_failed(driver_id: Uuid, offer_id: Uuid, err: ApiError) -> Payload {
    tracing::warn!(driver = %driver_id, %offer_id, error = %err, "could not record an offer answer");
    let status = Status::from(err);
    Payload::OfferAnswerFailed(pb::OfferAnswerFailed {
        offer_id: offer_id.to_string(),
        code: status.code() as i32,
        message: status.message().to_string(),
        retry_after: Some(convert::duration(OFFER_ANSWER_RETRY_AFTER)),
    })
}

/// One Connect stream. Ends with `INVALID_ARGUMENT` when the first message
/// is not `hello` (or does not come within [`HELLO_WITHIN`]) or a message is
/// malformed, `UNAVAILABLE` when the server shuts down or a store it needs to
/// start the session is unreachable (reconnect with backoff and resend above
/// the last `durable_seq`), and `ABORTED` when a newer Connect stream of the
/// driver (on any replica) replaced it (the app carries on with the newer
/// one); a bad ping never ends it. When it ends, the driver gets no more
/// offers until it reconnects, and an offer it had not answered goes to the
/// next candidate (unless a newer stream replaced it, or the server is
/// shutting down: then at the offer's deadline).
async fn session(
    app: App,
    writer: LocationWriter,
    caller: Principal,
    mut inbound: Streaming<pb::ConnectRequest>,
    outbound: Outbound,
) {
    let driver_id = caller.user_id;
    let first = tokio::select! {
        first = tokio::time::timeout(HELLO_WITHIN, inbound.next()) => first,
        _ = app.stopping.cancelled() => return,
    };
    let hello = match first {
        Ok(Some(Ok(pb::ConnectRequest { payload: Some(pb::connect_request::Payload::Hello(hello)) }))) => hello,
        Ok(Some(Ok(_))) | Err(_) => {
            let message = format!("the first message must be `hello`, within {} s", HELLO_WITHIN.as_secs());
            let _ = outbound.send(Err(Status::invalid_argument(message))).await;
            return;
        }
        Ok(Some(Err(_)) | None) => return,
    };
    let session_id = Uuid::new_v4();
    let recorded = match app.live.start_session(driver_id, session_id).await {
        Ok(()) => {
            // The driver's older stream, on any replica, looks and ends.
            app.wake(&driver_topic(driver_id)).await;
            Some(session_id)
        }
        Err(err) => {
            tracing::warn!(driver = %driver_id, error = %foodfast_store::Chain(&err), "could not record the session; no offers until it is");
            None
        }
    };
    connected(&app, writer, caller, hello, inbound, &outbound, recorded).await;
    match app.live.end_session(driver_id, session_id).await {
        // A deploy: the app reconnects to another replica and finds its
        // offers there; their deadlines cover an app that does not.
        Ok(true) if app.stopping.is_cancelled() => {}
        // Reconnected (to any replica) already: its new stream shows the offers.
        Ok(true) if app.live.connected(driver_id).await.unwrap_or(false) => {}
        Ok(true) => match app.dispatch.expire_driver_offers(driver_id).await {
            Ok(orders) if !orders.is_empty() => app.wake(DISPATCH_TOPIC).await,
            Ok(_) => {}
            Err(err) => {
                tracing::warn!(driver = %driver_id, error = %foodfast_store::Chain(&err), "open offers of a gone driver will expire at their deadline");
            }
        },
        // A newer stream of the driver carries on.
        Ok(false) => {}
        Err(err) => {
            tracing::warn!(driver = %driver_id, error = %foodfast_store::Chain(&err), "could not end the session")
        }
    }
}

/// The stream after `hello`, until it ends. `session`, once recorded in
/// Redis, is checked at each wake-up and resync: a newer stream replaced it.
async fn connected(
    app: &App,
    writer: LocationWriter,
    caller: Principal,
    hello: pb::Hello,
    mut inbound: Streaming<pb::ConnectRequest>,
    outbound: &Outbound,
    session: Option<Uuid>,
) {
    let driver_id = caller.user_id;
    let mut durable_seqs: watch::Receiver<u64> = writer.subscribe_driver(driver_id);
    let mut inbox = app.fanout.subscribe(&driver_topic(driver_id));
    let mut pings = match DriverPings::load(app, &writer, driver_id).await {
        Ok(pings) => pings,
        Err(err) => {
            let _ = outbound.send(Err(err.into())).await;
            return;
        }
    };
    match pb::DriverAvailability::try_from(hello.availability) {
        Ok(pb::DriverAvailability::Unspecified) | Err(_) => {
            // Keep the server's; a driver it knows nothing of starts online.
            if let Ok(None) = app.live.availability(driver_id).await {
                set_availability(app, driver_id, pb::DriverAvailability::Online).await;
            }
        }
        Ok(given) => set_availability(app, driver_id, given).await,
    }
    let mut shown = Shown::default();
    let (mut open_offers, mut active_deliveries) = (Vec::new(), Vec::new());
    match shown.sync(app, driver_id, true).await {
        Ok(messages) => {
            for payload in messages {
                match payload {
                    Payload::Offer(offer) => open_offers.push(offer),
                    Payload::Assignment(change) => active_deliveries.extend(change.delivery),
                    _ => {}
                }
            }
        }
        Err(err) => {
            let _ = outbound.send(Err(err.into())).await;
            return;
        }
    }
    let welcome = pb::Welcome {
        driver_id: driver_id.to_string(),
        durable_seq: pings.durable,
        availability: shown.availability.unwrap_or(pb::DriverAvailability::Offline) as i32,
        active_deliveries,
        open_offers,
        hint: Some(pb::ServerHint {
            ping_interval: Some(convert::duration(app.ingest.ping_interval)),
            reconnect: false,
        }),
    };
    if outbound.send(message(Payload::Welcome(welcome))).await.is_err() {
        return;
    }

    let mut rejected: Vec<pb::RejectedPing> = Vec::new();
    let mut acked = pings.durable;
    let mut drain_deadline: Option<tokio::time::Instant> = None;
    // Armed only while the watermark's record waits for its turn: an idle
    // stream does not wake.
    let mut follow_up: Option<tokio::time::Instant> = None;
    let resync_every = app.dispatch_config.driver_resync_interval;
    let mut next_resync = tokio::time::Instant::now() + jittered(resync_every);
    'stream: loop {
        let (mut needs_sync, mut repair) = (false, false);
        tokio::select! {
            _ = app.stopping.cancelled() => {
                let hint = pb::ServerHint { ping_interval: None, reconnect: true };
                let _ = outbound.send(message(Payload::Hint(hint))).await;
                let _ = outbound.send(Err(shutting_down())).await;
                break 'stream;
            }
            _ = outbound.closed() => break 'stream,
            _ = sleep_until_or_never(drain_deadline) => break 'stream,
            request = inbound.next(), if drain_deadline.is_none() => match request {
                None => drain_deadline = Some(tokio::time::Instant::now() + app.ingest.drain_timeout),
                Some(Err(status)) => {
                    tracing::debug!(driver = %driver_id, %status, "driver stream failed");
                    break 'stream;
                }
                Some(Ok(request)) => match request.payload {
                    Some(pb::connect_request::Payload::Ping(ping)) => {
                        // Taking may wait for room in the writer's queue: not
                        // past the app leaving or the server stopping.
                        let taken = tokio::select! {
                            taken = pings.take(app, &writer, &ping) => taken,
                            _ = outbound.closed() => break 'stream,
                            _ = app.stopping.cancelled() => Err(NotTaken::Stopped),
                        };
                        match taken {
                            Ok(()) => metrics::counter!(PINGS_ACCEPTED_TOTAL).increment(1),
                            Err(NotTaken::Rejected(why)) => {
                                note_rejection(driver_id, ping.seq, why);
                                rejected.push(rejection(&ping, why));
                            }
                            Err(NotTaken::Stopped) => {
                                let _ = outbound.send(Err(shutting_down())).await;
                                break 'stream;
                            }
                        }
                    }
                    Some(pb::connect_request::Payload::Availability(change)) => {
                        match pb::DriverAvailability::try_from(change.availability) {
                            Ok(pb::DriverAvailability::Unspecified) | Err(_) => {
                                let _ = outbound.send(Err(Status::invalid_argument("availability must be online, offline or busy"))).await;
                                break 'stream;
                            }
                            Ok(wanted) => {
                                set_availability(app, driver_id, wanted).await;
                                // What the server has now, BUSY at capacity even when ONLINE was asked.
                                let now = match app.live.availability(driver_id).await {
                                    Ok(now) => availability_from(now.as_deref()),
                                    Err(_) => wanted,
                                };
                                shown.availability = Some(now);
                                let reason = if now == wanted { "" } else { AT_CAPACITY };
                                if outbound.send(message(availability_change(now, reason))).await.is_err() {
                                    break 'stream;
                                }
                            }
                        }
                    }
                    Some(pb::connect_request::Payload::Hello(_)) => {
                        let _ = outbound.send(Err(Status::invalid_argument("`hello` comes once, first"))).await;
                        break 'stream;
                    }
                    Some(pb::connect_request::Payload::OfferAnswer(answer)) => {
                        match answer_on_stream(app, driver_id, &shown, answer).await {
                            Ok(refusal) => {
                                if let Some(closed) = refusal
                                    && outbound.send(message(closed)).await.is_err()
                                {
                                    break 'stream;
                                }
                                needs_sync = true;
                            }
                            Err(status) => {
                                let _ = outbound.send(Err(status)).await;
                                break 'stream;
                            }
                        }
                    }
                    Some(pb::connect_request::Payload::Transition(transition)) => {
                        // Inline, like a ping: one short transaction.
                        let result = transition_result(app, &caller, transition).await;
                        if outbound.send(message(Payload::TransitionResult(result))).await.is_err() {
                            break 'stream;
                        }
                    }
                    None => {
                        let _ = outbound.send(Err(Status::invalid_argument("a message must carry a payload"))).await;
                        break 'stream;
                    }
                },
            },
            changed = durable_seqs.changed() => {
                if changed.is_err() {
                    break 'stream;
                }
                let seq = *durable_seqs.borrow_and_update();
                pings.durable_moved(seq, || writer.lowest_unwritten(driver_id));
            }
            // Lagged or reconnected: re-reading is the answer either way.
            _ = inbox.recv() => needs_sync = true,
            _ = tokio::time::sleep_until(next_resync) => {
                next_resync = tokio::time::Instant::now() + jittered(resync_every);
                (needs_sync, repair) = (true, true);
            }
            _ = sleep_until_or_never(follow_up) => {}
        }
        if needs_sync {
            // The wake-up of a newer stream may be lost: the resync looks too.
            if let Some(session) = session {
                match app.live.replaced(driver_id, session).await {
                    Ok(true) => {
                        let _ = outbound.send(Err(Status::aborted("another Connect stream of this driver replaced this one; carry on with the newer stream"))).await;
                        break 'stream;
                    }
                    Ok(false) => {}
                    // The next wake-up or resync looks again.
                    Err(err) => {
                        tracing::warn!(driver = %driver_id, error = %foodfast_store::Chain(&err), "could not check whether a newer stream replaced this one")
                    }
                }
            }
            match shown.sync(app, driver_id, repair).await {
                Ok(messages) => {
                    for payload in messages {
                        if outbound.send(message(payload)).await.is_err() {
                            break 'stream;
                        }
                    }
                }
                // The next wake-up or resync tries again.
                Err(err) => {
                    tracing::warn!(driver = %driver_id, error = %foodfast_store::Chain(&err), "could not re-read offers and deliveries")
                }
            }
        }
        // At most one ack per turn of the loop, when the watermark moved or
        // rejections wait (the watch coalesces the writer's completions).
        if pings.durable > acked || !rejected.is_empty() {
            let batch: Vec<_> = rejected.drain(..rejected.len().min(MAX_REJECTIONS_PER_ACK)).collect();
            let ack = pb::PingAck { durable_seq: pings.durable, rejected: batch };
            if outbound.send(message(Payload::Ack(ack))).await.is_err() {
                break 'stream;
            }
            metrics::counter!(PINGS_ACKED_TOTAL).increment(std::mem::take(&mut pings.newly_durable));
            acked = pings.durable;
        }
        pings.record_durable(app, false).await;
        follow_up = pings.record_due();
        if drain_deadline.is_some() && pings.durable >= pings.submitted && rejected.is_empty() {
            break 'stream;
        }
    }
    pings.record_durable(app, true).await;
}

async fn sleep_until_or_never(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// Impossible speed is a spoofing signal worth an operator's eye; the rest
/// are ordinary (bad GPS, resends).
fn note_rejection(driver_id: Uuid, seq: u64, why: PingRejection) {
    let reason = reason_of(why).as_str_name().trim_start_matches("PING_REJECTION_REASON_");
    metrics::counter!(PINGS_REJECTED_TOTAL, "reason" => reason).increment(1);
    if let PingRejection::ImpossibleSpeed { speed_mps } = why {
        tracing::warn!(driver = %driver_id, seq, speed_mps, "ping rejected: impossible speed");
    } else {
        tracing::debug!(driver = %driver_id, seq, reason = %why, "ping rejected");
    }
}

fn availability_name(availability: pb::DriverAvailability) -> &'static str {
    match availability {
        pb::DriverAvailability::Offline => "offline",
        pb::DriverAvailability::Busy => "busy",
        _ => "online",
    }
}

/// As the live store names it; never reported: OFFLINE.
fn availability_from(name: Option<&str>) -> pb::DriverAvailability {
    match name {
        Some("online") => pb::DriverAvailability::Online,
        Some("busy") => pb::DriverAvailability::Busy,
        _ => pb::DriverAvailability::Offline,
    }
}

async fn set_availability(app: &App, driver_id: Uuid, availability: pb::DriverAvailability) {
    let name = availability_name(availability);
    if let Err(err) = app.live.set_availability(driver_id, name).await {
        tracing::warn!(driver = %driver_id, error = %foodfast_store::Chain(&err), "could not record availability");
    }
    if availability == pb::DriverAvailability::Online {
        // Orders waiting for a driver may have one now.
        app.wake(DISPATCH_TOPIC).await;
    }
}

#[tonic::async_trait]
impl DriverService for DriverApi {
    async fn connect(
        &self,
        request: Request<Streaming<pb::ConnectRequest>>,
    ) -> Result<Response<BoxStream<pb::ConnectResponse>>, Status> {
        let caller = principal(&request)?;
        require_driver(&caller)?;
        let writer = self.app.location_writer().await?;
        let (outbound, receiver) = mpsc::channel(self.app.ingest.outbound_buffer);
        tokio::spawn(session(self.app.clone(), writer, caller, request.into_inner(), outbound));
        Ok(Response::new(Box::pin(ReceiverStream::new(receiver))))
    }

    /// Answers once every accepted ping of the batch is durable (or after
    /// `report_timeout`, with the watermark reached so far).
    async fn report_location(
        &self,
        request: Request<pb::ReportLocationRequest>,
    ) -> Result<Response<pb::ReportLocationResponse>, Status> {
        let caller = principal(&request)?;
        require_driver(&caller)?;
        let request = request.into_inner();
        if request.pings.is_empty() || request.pings.len() > MAX_PINGS_PER_REPORT {
            return Err(
                ApiError::from(FieldError::new("pings", format!("send 1 to {MAX_PINGS_PER_REPORT} pings"))).into()
            );
        }
        let writer = self.app.location_writer().await?;
        let mut durable_seqs = writer.subscribe_driver(caller.user_id);
        let mut pings = DriverPings::load(&self.app, &writer, caller.user_id).await?;
        let mut rejected = Vec::new();
        let mut highest = 0;
        let mut sorted = request.pings;
        sorted.sort_by_key(|ping| ping.seq);
        for ping in &sorted {
            match pings.take(&self.app, &writer, ping).await {
                Ok(()) => highest = highest.max(ping.seq),
                Err(NotTaken::Rejected(why)) => {
                    note_rejection(caller.user_id, ping.seq, why);
                    rejected.push(rejection(ping, why));
                }
                Err(NotTaken::Stopped) => return Err(shutting_down()),
            }
        }
        let deadline = tokio::time::sleep(self.app.ingest.report_timeout);
        tokio::pin!(deadline);
        while *durable_seqs.borrow_and_update() < highest {
            tokio::select! {
                _ = &mut deadline => break,
                changed = durable_seqs.changed() => if changed.is_err() { break },
            }
        }
        let seq = *durable_seqs.borrow();
        pings.durable_moved(seq, || writer.lowest_unwritten(caller.user_id));
        pings.record_durable(&self.app, true).await;
        Ok(Response::new(pb::ReportLocationResponse {
            ack: Some(pb::PingAck { durable_seq: pings.durable, rejected }),
        }))
    }

    /// The answer is the availability dispatch sees: BUSY while the driver
    /// is at capacity, even when ONLINE was asked.
    async fn set_availability(
        &self,
        request: Request<pb::SetAvailabilityRequest>,
    ) -> Result<Response<pb::SetAvailabilityResponse>, Status> {
        let caller = principal(&request)?;
        require_driver(&caller)?;
        let wanted = match pb::DriverAvailability::try_from(request.get_ref().availability) {
            Ok(pb::DriverAvailability::Unspecified) | Err(_) => {
                return Err(ApiError::from(FieldError::new("availability", "must be online, offline or busy")).into());
            }
            Ok(wanted) => wanted,
        };
        set_availability(&self.app, caller.user_id, wanted).await;
        let now = self.app.live.availability(caller.user_id).await.map_err(ApiError::from)?;
        Ok(Response::new(pb::SetAvailabilityResponse { availability: availability_from(now.as_deref()) as i32 }))
    }

    /// Drivers read their own state; support and admins any driver's.
    async fn get_driver_state(
        &self,
        request: Request<pb::GetDriverStateRequest>,
    ) -> Result<Response<pb::GetDriverStateResponse>, Status> {
        let caller = principal(&request)?;
        let driver_id = match request.get_ref().driver_id.as_str() {
            "" => caller.user_id,
            given => parse_uuid("driver_id", given).map_err(ApiError::from)?,
        };
        if driver_id != caller.user_id && !caller.is_operator() {
            return Err(ApiError::PermissionDenied("drivers read only their own state".into()).into());
        }
        if caller.role != Role::Driver && self.app.users.driver(driver_id).await.map_err(ApiError::from)?.is_none() {
            return Err(ApiError::NotFound(format!("driver {driver_id} not found")).into());
        }
        let live = &self.app.live;
        let position = live.position(driver_id).await.map_err(ApiError::from)?;
        let mut shown = Shown::default();
        let (mut open_offers, mut active_deliveries) = (Vec::new(), Vec::new());
        for payload in shown.sync(&self.app, driver_id, true).await? {
            match payload {
                Payload::Offer(offer) => open_offers.push(offer),
                Payload::Assignment(change) => active_deliveries.extend(change.delivery),
                _ => {}
            }
        }
        Ok(Response::new(pb::GetDriverStateResponse {
            driver_id: driver_id.to_string(),
            // Read by the sync, after it repaired the at-capacity flag.
            availability: shown.availability.unwrap_or(pb::DriverAvailability::Offline) as i32,
            connected: live.connected(driver_id).await.map_err(ApiError::from)?,
            last_position: position.map(|p| convert::lat_lng(p.position)),
            last_position_at: position.map(|p| convert::timestamp(p.recorded_at)),
            durable_seq: live.durable(driver_id).await.map_err(ApiError::from)?.unwrap_or(0),
            active_deliveries,
            open_offers,
        }))
    }

    /// The order gets the caller in one transaction with the accepted offer;
    /// the answer carries the full drop-off address.
    async fn accept_offer(
        &self,
        request: Request<pb::AcceptOfferRequest>,
    ) -> Result<Response<pb::AcceptOfferResponse>, Status> {
        let caller = principal(&request)?;
        require_driver(&caller)?;
        let delivery_id = parse_uuid("delivery_id", &request.get_ref().delivery_id).map_err(ApiError::from)?;
        let accepted = accept_offer(&self.app, caller.user_id, delivery_id).await?.map_err(ApiError::from)?;
        let order = accepted.order();
        let pickup = order.restaurant_address.location;
        let pickup_eta = match self.app.live.position(caller.user_id).await {
            Ok(Some(live)) => {
                let travel = self.app.dispatch_config.policy.travel_time(distance_m(live.position, pickup));
                Some(convert::timestamp(Utc::now() + travel))
            }
            _ => None,
        };
        Ok(Response::new(pb::AcceptOfferResponse {
            delivery_id: delivery_id.to_string(),
            order_id: order.id.to_string(),
            restaurant_name: order.restaurant_name.clone(),
            restaurant_address: Some(convert::address(&order.restaurant_address)),
            customer_address: Some(convert::address(&order.delivery_address)),
            pickup_eta,
            food_ready_at: Some(convert::timestamp(order.estimated_ready_at)),
            estimated_earnings: Some(convert::earnings(order)),
        }))
    }

    /// Declining again is answered the same; the order goes to the next driver.
    async fn decline_offer(
        &self,
        request: Request<pb::DeclineOfferRequest>,
    ) -> Result<Response<pb::DeclineOfferResponse>, Status> {
        let caller = principal(&request)?;
        require_driver(&caller)?;
        let request = request.into_inner();
        let delivery_id = parse_uuid("delivery_id", &request.delivery_id).map_err(ApiError::from)?;
        if request.reason.chars().count() > MAX_DECLINE_REASON_CHARS {
            return Err(ApiError::from(FieldError::new("reason", "must be at most 200 characters")).into());
        }
        decline_offer(&self.app, caller.user_id, delivery_id).await?.map_err(ApiError::from)?;
        Ok(Response::new(pb::DeclineOfferResponse { delivery_id: delivery_id.to_string() }))
    }

    /// Appends DRIVER_ARRIVED_AT_RESTAURANT or _AT_CUSTOMER to the order's
    /// events (status unchanged). A resend answers OK with the order as it is.
    async fn mark_arrived(
        &self,
        request: Request<pb::MarkArrivedRequest>,
    ) -> Result<Response<pb::MarkArrivedResponse>, Status> {
        let caller = principal(&request)?;
        let request = request.into_inner();
        let stop = match pb::DeliveryStop::try_from(request.stop) {
            Ok(pb::DeliveryStop::Restaurant) => Stop::Restaurant,
            Ok(pb::DeliveryStop::Customer) => Stop::Customer,
            Ok(pb::DeliveryStop::Unspecified) | Err(_) => {
                return Err(ApiError::from(FieldError::new("stop", "must be RESTAURANT or CUSTOMER")).into());
            }
        };
        let stepped = self.unary(&caller, &request.order_id, Report::Arrival(stop)).await?;
        let order = stepped.order();
        Ok(Response::new(pb::MarkArrivedResponse {
            order_id: order.id.to_string(),
            status: convert::order_status(order.status) as i32,
            seq: order.last_event_seq as u64,
        }))
    }

    /// A resend after the step was recorded answers OK with the order as it is.
    async fn mark_picked_up(
        &self,
        request: Request<pb::MarkPickedUpRequest>,
    ) -> Result<Response<pb::MarkPickedUpResponse>, Status> {
        let caller = principal(&request)?;
        let stepped = self.unary(&caller, &request.get_ref().order_id, Report::Step(Step::PickUp)).await?;
        let order = stepped.order();
        Ok(Response::new(pb::MarkPickedUpResponse {
            order_id: order.id.to_string(),
            status: convert::order_status(order.status) as i32,
            seq: order.last_event_seq as u64,
        }))
    }

    /// A resend after the step was recorded answers OK with the order as it is.
    async fn mark_delivered(
        &self,
        request: Request<pb::MarkDeliveredRequest>,
    ) -> Result<Response<pb::MarkDeliveredResponse>, Status> {
        let caller = principal(&request)?;
        let stepped = self.unary(&caller, &request.get_ref().order_id, Report::Step(Step::Deliver)).await?;
        let order = stepped.order();
        Ok(Response::new(pb::MarkDeliveredResponse {
            order_id: order.id.to_string(),
            status: convert::order_status(order.status) as i32,
            seq: order.last_event_seq as u64,
        }))
    }
}

impl DriverApi {
    /// MarkArrived, MarkPickedUp and MarkDelivered: what a driver reports on its order.
    async fn unary(&self, caller: &Principal, order_id: &str, report: Report) -> Result<Stepped, Status> {
        require_driver(caller)?;
        let order_id = parse_uuid("order_id", order_id).map_err(ApiError::from)?;
        reported(&self.app, caller, order_id, report).await.map_err(|refusal| refusal.error.into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pings(durable: u64) -> DriverPings {
        DriverPings::new(Uuid::new_v4(), None, durable)
    }

    /// `seqs` accepted and queued by this session.
    fn submit(state: &mut DriverPings, seqs: &[u64]) {
        state.pending.extend(seqs);
        state.submitted = state.submitted.max(seqs.iter().copied().max().unwrap_or(0));
    }

    #[test]
    fn a_rejected_seq_is_covered_once_everything_accepted_below_it_is_durable() {
        let mut state = pings(0);
        submit(&mut state, &[1, 3]);
        state.remember_rejected(2, || None);
        assert_eq!(state.durable, 0, "1 is not durable yet");
        state.durable_moved(1, || None);
        assert_eq!(state.durable, 2, "1 durable, 2 rejected: both covered; 3 still pending");
        submit(&mut state, &[5]);
        state.remember_rejected(4, || None);
        assert_eq!(state.durable, 2, "3 is pending below 4");
        state.durable_moved(3, || None);
        assert_eq!(state.durable, 4);
        state.durable_moved(5, || None);
        assert!(state.rejected.is_empty() && state.pending.is_empty());
    }

    #[test]
    fn a_rejected_seq_far_past_every_known_one_is_not_covered() {
        let mut state = pings(0);
        submit(&mut state, &[1]);
        state.durable_moved(1, || None);
        // A bogus seq far ahead: covering it would refuse every later ping as a duplicate.
        state.remember_rejected(1 << 62, || None);
        assert_eq!(state.durable, 1);
        state.remember_rejected(2, || None);
        assert_eq!(state.durable, 2, "the newest ping was bad: covered, nothing is pending below it");
    }

    #[test]
    fn a_rejected_seq_waits_for_an_older_session_s_unwritten_pings() {
        // The app reconnected: 5 and 6 are still queued by the old session,
        // and their resends here were rejected (too old, say).
        let mut state = pings(4);
        submit(&mut state, &[7]);
        state.remember_rejected(5, || Some(5));
        state.remember_rejected(6, || Some(5));
        assert_eq!(state.durable, 4, "5 and 6 are only queued, not written");
        state.durable_moved(6, || None);
        assert_eq!(state.durable, 6);
    }

    #[test]
    fn bad_pings_behind_one_that_is_not_durable_are_remembered_up_to_a_bound() {
        let mut state = pings(0);
        submit(&mut state, &[1, 10_000]);
        for seq in 2..10_000 {
            state.remember_rejected(seq, || None);
        }
        assert_eq!(state.rejected.len(), MAX_REJECTED_WAITING);
        state.durable_moved(1, || None);
        assert_eq!(state.durable, MAX_REJECTED_WAITING as u64 + 1, "the remembered ones are covered");
        state.durable_moved(10_000, || None);
        assert_eq!(state.durable, 10_000, "an accepted ping above the rest covers them too");
        assert!(state.rejected.is_empty());
    }
}
