//! The order state machine: the one place that decides every transition and who may make it.
//!
//! ```text
//! pending ─accept→ confirmed ─start_preparing→ preparing ─mark_ready→ ready_for_pickup
//! pending ─reject→ rejected              confirmed ─mark_ready→ ready_for_pickup (no preparing step)
//! ready_for_pickup ─assign_driver→ driver_assigned ─pick_up→ picked_up ─start_delivering→ delivering
//! picked_up | delivering ─deliver→ delivered
//! any open status ─cancel→ cancelled
//! ```
//! A driver may be assigned early (while confirmed or preparing); marking ready then goes straight
//! to `driver_assigned`. Until pickup, operators (or dispatch) may replace the driver: the status
//! stays. `cancel` ends any open order, but only support and admins may cancel at
//! every stage: a customer until preparation starts, a restaurant once it has accepted.
//!
//! Payments: accept captures the hold, reject voids it; cancelling voids it while pending and
//! refunds after capture.

use std::str::FromStr;

/// Status of an order. The names of [`OrderStatus::as_str`] are stored in SQL.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OrderStatus {
    Pending,
    Confirmed,
    Preparing,
    ReadyForPickup,
    DriverAssigned,
    PickedUp,
    Delivering,
    Delivered,
    Cancelled,
    Rejected,
}

/// Who asks for a transition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Actor {
    Customer,
    Restaurant,
    Driver,
    Support,
    Admin,
    /// FoodFast itself: dispatch, timers.
    System,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OrderAction {
    Accept,
    Reject,
    StartPreparing,
    MarkReady,
    AssignDriver,
    ReassignDriver,
    PickUp,
    StartDelivering,
    Deliver,
    Cancel,
}

/// What to do with the payment hold made when the order was placed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PaymentEffect {
    Capture,
    Void,
    Refund,
}

impl PaymentEffect {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Capture => "capture",
            Self::Void => "void",
            Self::Refund => "refund",
        }
    }
}

/// What a decision needs to know about an order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct OrderState {
    pub status: OrderStatus,
    pub has_driver: bool,
}

impl OrderState {
    /// A newly placed order.
    pub const PLACED: Self = Self { status: OrderStatus::Pending, has_driver: false };
}

/// An allowed transition: the order's new state, and what to do with the payment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    pub status: OrderStatus,
    pub has_driver: bool,
    pub payment: Option<PaymentEffect>,
}

impl Decision {
    pub fn state(&self) -> OrderState {
        OrderState { status: self.status, has_driver: self.has_driver }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TransitionError {
    /// Nobody may do this to an order in this state.
    #[error("order is {}; it {} be {}", .from.described(), if .from.is_terminal() { "can no longer" } else { "cannot" }, .action.done())]
    Illegal { from: OrderStatus, action: OrderAction },
    /// Someone may do this now, but not this actor.
    #[error("{} cannot {} an order that is {}", .actor.described(), .action.verb(), .from.described())]
    NotPermitted { from: OrderStatus, actor: Actor, action: OrderAction },
    #[error("order already has a driver")]
    AlreadyAssigned,
}

/// Decides whether `actor` may apply `action` to an order in `state`, and what follows.
pub fn decide(state: OrderState, action: OrderAction, actor: Actor) -> Result<Decision, TransitionError> {
    use OrderAction as A;
    use OrderStatus as S;
    use PaymentEffect as P;

    let from = state.status;
    if from.is_terminal() {
        return Err(TransitionError::Illegal { from, action });
    }
    let (status, payment) = match (action, from) {
        (A::Accept, S::Pending) => (S::Confirmed, Some(P::Capture)),
        (A::Reject, S::Pending) => (S::Rejected, Some(P::Void)),
        (A::StartPreparing, S::Confirmed) => (S::Preparing, None),
        (A::MarkReady, S::Confirmed | S::Preparing) => {
            (if state.has_driver { S::DriverAssigned } else { S::ReadyForPickup }, None)
        }
        (A::AssignDriver, _) if state.has_driver => return Err(TransitionError::AlreadyAssigned),
        // Assigned early, the driver heads over while the food is made.
        (A::AssignDriver, S::Confirmed | S::Preparing) => (from, None),
        (A::AssignDriver, S::ReadyForPickup) => (S::DriverAssigned, None),
        (A::ReassignDriver, S::Confirmed | S::Preparing | S::DriverAssigned) if state.has_driver => (from, None),
        (A::PickUp, S::DriverAssigned) => (S::PickedUp, None),
        (A::StartDelivering, S::PickedUp) => (S::Delivering, None),
        (A::Deliver, S::PickedUp | S::Delivering) => (S::Delivered, None),
        (A::Cancel, S::Pending) => (S::Cancelled, Some(P::Void)),
        (A::Cancel, _) => (S::Cancelled, Some(P::Refund)),
        _ => return Err(TransitionError::Illegal { from, action }),
    };
    if !permitted(actor, action, from) {
        return Err(TransitionError::NotPermitted { from, actor, action });
    }
    Ok(Decision { status, has_driver: state.has_driver || action == A::AssignDriver, payment })
}

/// Whether an order in `state` is where `action` puts it: a repeat of the
/// move just made (a retry after a lost answer) is then answered as done
/// instead of refused. A ready order that got its driver still counts as
/// ready; assignments have rules of their own and never repeat.
pub fn repeats(state: OrderState, action: OrderAction) -> bool {
    use OrderAction as A;
    use OrderStatus as S;

    match action {
        A::Accept => state.status == S::Confirmed,
        A::Reject => state.status == S::Rejected,
        A::StartPreparing => state.status == S::Preparing,
        A::MarkReady => matches!(state.status, S::ReadyForPickup | S::DriverAssigned),
        A::PickUp => state.status == S::PickedUp,
        A::StartDelivering => state.status == S::Delivering,
        A::Deliver => state.status == S::Delivered,
        A::Cancel => state.status == S::Cancelled,
        A::AssignDriver | A::ReassignDriver => false,
    }
}

/// Who may apply `action` to an order in `from`, given the state allows it at all.
fn permitted(actor: Actor, action: OrderAction, from: OrderStatus) -> bool {
    use Actor::*;
    use OrderAction as A;
    use OrderStatus as S;

    match action {
        A::Accept | A::StartPreparing | A::MarkReady => matches!(actor, Restaurant | Support | Admin),
        // The system rejects an order the restaurant left unanswered for too long.
        A::Reject => matches!(actor, Restaurant | Support | Admin | System),
        A::AssignDriver | A::ReassignDriver => matches!(actor, System | Support | Admin),
        A::PickUp | A::Deliver => matches!(actor, Driver | Support | Admin),
        A::StartDelivering => matches!(actor, Driver | System),
        A::Cancel => match actor {
            // Until the kitchen starts: after that the food exists.
            Customer => matches!(from, S::Pending | S::Confirmed),
            // After accepting (before, it rejects), e.g. when out of stock.
            Restaurant => matches!(from, S::Confirmed | S::Preparing),
            Support | Admin => true,
            Driver | System => false,
        },
    }
}

/// Where a driver reports arriving.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Stop {
    Restaurant,
    Customer,
}

/// Whether the order's driver may report arriving at `stop` while the order
/// is `status`: at the restaurant until the food is picked up, at the
/// customer once it is on its way. Never on a finished order.
pub const fn may_arrive(status: OrderStatus, stop: Stop) -> bool {
    match stop {
        Stop::Restaurant => matches!(
            status,
            OrderStatus::Confirmed | OrderStatus::Preparing | OrderStatus::ReadyForPickup | OrderStatus::DriverAssigned
        ),
        Stop::Customer => matches!(status, OrderStatus::PickedUp | OrderStatus::Delivering),
    }
}

impl OrderStatus {
    /// In lifecycle order.
    pub const ALL: [Self; 10] = [
        Self::Pending,
        Self::Confirmed,
        Self::Preparing,
        Self::ReadyForPickup,
        Self::DriverAssigned,
        Self::PickedUp,
        Self::Delivering,
        Self::Delivered,
        Self::Cancelled,
        Self::Rejected,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Confirmed => "confirmed",
            Self::Preparing => "preparing",
            Self::ReadyForPickup => "ready_for_pickup",
            Self::DriverAssigned => "driver_assigned",
            Self::PickedUp => "picked_up",
            Self::Delivering => "delivering",
            Self::Delivered => "delivered",
            Self::Cancelled => "cancelled",
            Self::Rejected => "rejected",
        }
    }

    pub const fn is_terminal(self) -> bool {
        matches!(self, Self::Delivered | Self::Cancelled | Self::Rejected)
    }

    /// For messages: "order is {described}".
    pub const fn described(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Confirmed => "confirmed",
            Self::Preparing => "being prepared",
            Self::ReadyForPickup => "ready for pickup",
            Self::DriverAssigned => "waiting for its driver",
            Self::PickedUp => "picked up",
            Self::Delivering => "on its way",
            Self::Delivered => "delivered",
            Self::Cancelled => "cancelled",
            Self::Rejected => "rejected",
        }
    }
}

impl Actor {
    pub const ALL: [Self; 6] =
        [Self::Customer, Self::Restaurant, Self::Driver, Self::Support, Self::Admin, Self::System];

    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Customer => "customer",
            Self::Restaurant => "restaurant",
            Self::Driver => "driver",
            Self::Support => "support",
            Self::Admin => "admin",
            Self::System => "system",
        }
    }

    const fn described(self) -> &'static str {
        match self {
            Self::Customer => "a customer",
            Self::Restaurant => "the restaurant",
            Self::Driver => "a driver",
            Self::Support => "support",
            Self::Admin => "an admin",
            Self::System => "the system",
        }
    }
}

impl OrderAction {
    pub const ALL: [Self; 10] = [
        Self::Accept,
        Self::Reject,
        Self::StartPreparing,
        Self::MarkReady,
        Self::AssignDriver,
        Self::ReassignDriver,
        Self::PickUp,
        Self::StartDelivering,
        Self::Deliver,
        Self::Cancel,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Accept => "accept",
            Self::Reject => "reject",
            Self::StartPreparing => "start_preparing",
            Self::MarkReady => "mark_ready",
            Self::AssignDriver => "assign_driver",
            Self::ReassignDriver => "reassign_driver",
            Self::PickUp => "pick_up",
            Self::StartDelivering => "start_delivering",
            Self::Deliver => "deliver",
            Self::Cancel => "cancel",
        }
    }

    /// For messages: "{actor} cannot {verb} an order".
    const fn verb(self) -> &'static str {
        match self {
            Self::Accept => "accept",
            Self::Reject => "reject",
            Self::StartPreparing => "start preparing",
            Self::MarkReady => "mark ready",
            Self::AssignDriver => "assign a driver to",
            Self::ReassignDriver => "replace the driver of",
            Self::PickUp => "pick up",
            Self::StartDelivering => "start delivering",
            Self::Deliver => "deliver",
            Self::Cancel => "cancel",
        }
    }

    /// For messages: "it cannot be {done}".
    const fn done(self) -> &'static str {
        match self {
            Self::Accept => "accepted",
            Self::Reject => "rejected",
            Self::StartPreparing => "started",
            Self::MarkReady => "marked ready",
            Self::AssignDriver => "assigned a driver",
            Self::ReassignDriver => "given another driver",
            Self::PickUp => "picked up",
            Self::StartDelivering => "sent out for delivery",
            Self::Deliver => "delivered",
            Self::Cancel => "cancelled",
        }
    }
}

/// A stored name that matches no variant.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {kind} \"{name}\"")]
pub struct UnknownName {
    pub kind: &'static str,
    pub name: String,
}

/// Parses the `as_str` names; one implementation for the three enums.
fn parse_name<T: Copy>(
    all: &[T],
    as_str: fn(T) -> &'static str,
    kind: &'static str,
    s: &str,
) -> Result<T, UnknownName> {
    all.iter().copied().find(|&v| as_str(v) == s).ok_or_else(|| UnknownName { kind, name: s.to_owned() })
}

impl FromStr for OrderStatus {
    type Err = UnknownName;
    fn from_str(s: &str) -> Result<Self, UnknownName> {
        parse_name(&Self::ALL, Self::as_str, "order status", s)
    }
}

impl FromStr for Actor {
    type Err = UnknownName;
    fn from_str(s: &str) -> Result<Self, UnknownName> {
        parse_name(&Self::ALL, Self::as_str, "actor", s)
    }
}

impl FromStr for OrderAction {
    type Err = UnknownName;
    fn from_str(s: &str) -> Result<Self, UnknownName> {
        parse_name(&Self::ALL, Self::as_str, "order action", s)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn a_driver_arrives_at_the_restaurant_before_pickup_and_at_the_customer_after() {
        use OrderStatus::*;
        let at_restaurant: Vec<_> = OrderStatus::ALL.into_iter().filter(|&s| may_arrive(s, Stop::Restaurant)).collect();
        let at_customer: Vec<_> = OrderStatus::ALL.into_iter().filter(|&s| may_arrive(s, Stop::Customer)).collect();
        assert_eq!(at_restaurant, [Confirmed, Preparing, ReadyForPickup, DriverAssigned]);
        assert_eq!(at_customer, [PickedUp, Delivering]);
        assert!(
            OrderStatus::ALL
                .into_iter()
                .filter(|s| s.is_terminal())
                .all(|s| !may_arrive(s, Stop::Restaurant) && !may_arrive(s, Stop::Customer))
        );
    }

    /// Every allowed transition, written out by hand. Columns: from, driver (yes/no/any),
    /// action, actors allowed, to, driver afterwards (yes/no, or "same"), payment (or -).
    ///
    /// Whatever is not listed is refused: `AlreadyAssigned` for assign_driver on an open order that
    /// has a driver; `NotPermitted` when the row exists but the actor is not in it; `Illegal` otherwise.
    const ALLOWED: &str = "
        pending          any accept           restaurant,support,admin          confirmed        same capture
        pending          any reject           restaurant,support,admin,system   rejected         same void
        pending          any cancel           customer,support,admin            cancelled        same void
        confirmed        any start_preparing  restaurant,support,admin          preparing        same -
        confirmed        no  mark_ready       restaurant,support,admin          ready_for_pickup no   -
        confirmed        yes mark_ready       restaurant,support,admin          driver_assigned  yes  -
        confirmed        no  assign_driver    system,support,admin              confirmed        yes  -
        confirmed        yes reassign_driver  system,support,admin              confirmed        yes  -
        confirmed        any cancel           customer,restaurant,support,admin cancelled        same refund
        preparing        no  mark_ready       restaurant,support,admin          ready_for_pickup no   -
        preparing        yes mark_ready       restaurant,support,admin          driver_assigned  yes  -
        preparing        no  assign_driver    system,support,admin              preparing        yes  -
        preparing        yes reassign_driver  system,support,admin              preparing        yes  -
        preparing        any cancel           restaurant,support,admin          cancelled        same refund
        ready_for_pickup no  assign_driver    system,support,admin              driver_assigned  yes  -
        ready_for_pickup any cancel           support,admin                     cancelled        same refund
        driver_assigned  yes reassign_driver  system,support,admin              driver_assigned  yes  -
        driver_assigned  any pick_up          driver,support,admin              picked_up        same -
        driver_assigned  any cancel           support,admin                     cancelled        same refund
        picked_up        any start_delivering driver,system                     delivering       same -
        picked_up        any deliver          driver,support,admin              delivered        same -
        picked_up        any cancel           support,admin                     cancelled        same refund
        delivering       any deliver          driver,support,admin              delivered        same -
        delivering       any cancel           support,admin                     cancelled        same refund
    ";

    struct Row {
        from: OrderStatus,
        driver: Option<bool>,
        action: OrderAction,
        actors: Vec<Actor>,
        to: OrderStatus,
        driver_after: Option<bool>,
        payment: Option<PaymentEffect>,
    }

    fn driver(s: &str) -> Option<bool> {
        match s {
            "yes" => Some(true),
            "no" => Some(false),
            "any" | "same" => None,
            _ => panic!("bad driver column {s:?}"),
        }
    }

    fn rows() -> Vec<Row> {
        ALLOWED
            .lines()
            .map(str::split_whitespace)
            .map(Iterator::collect::<Vec<_>>)
            .filter(|columns| !columns.is_empty())
            .map(|c| Row {
                from: c[0].parse().unwrap(),
                driver: driver(c[1]),
                action: c[2].parse().unwrap(),
                actors: c[3].split(',').map(|a| a.parse().unwrap()).collect(),
                to: c[4].parse().unwrap(),
                driver_after: driver(c[5]),
                payment: match c[6] {
                    "capture" => Some(PaymentEffect::Capture),
                    "void" => Some(PaymentEffect::Void),
                    "refund" => Some(PaymentEffect::Refund),
                    "-" => None,
                    other => panic!("bad payment column {other:?}"),
                },
            })
            .collect()
    }

    #[test]
    fn every_status_driver_action_and_actor_against_the_table() {
        let rows = rows();
        let (mut allowed, mut checked) = (0, 0);
        for from in OrderStatus::ALL {
            for has_driver in [false, true] {
                for action in OrderAction::ALL {
                    let row = rows
                        .iter()
                        .find(|r| r.from == from && r.action == action && r.driver.is_none_or(|d| d == has_driver));
                    for actor in Actor::ALL {
                        let expected = match row {
                            Some(row) if row.actors.contains(&actor) => Ok(Decision {
                                status: row.to,
                                has_driver: row.driver_after.unwrap_or(has_driver),
                                payment: row.payment,
                            }),
                            Some(_) => Err(TransitionError::NotPermitted { from, actor, action }),
                            None if action == OrderAction::AssignDriver && has_driver && !from.is_terminal() => {
                                Err(TransitionError::AlreadyAssigned)
                            }
                            None => Err(TransitionError::Illegal { from, action }),
                        };
                        let state = OrderState { status: from, has_driver };
                        assert_eq!(
                            decide(state, action, actor),
                            expected,
                            "{from:?} driver={has_driver} {action:?} by {actor:?}"
                        );
                        allowed += usize::from(expected.is_ok());
                        checked += 1;
                    }
                }
            }
        }
        assert_eq!(checked, 10 * 2 * 10 * 6);
        // Counted from the table by hand: rows with "any" count twice.
        assert_eq!(allowed, 108);
    }

    #[test]
    fn messages_say_what_is_wrong() {
        let state = |status| OrderState { status, has_driver: true };
        let message = |status, action, actor| decide(state(status), action, actor).unwrap_err().to_string();
        use Actor::*;
        use OrderAction::*;
        use OrderStatus::*;
        assert_eq!(message(Delivered, Cancel, Support), "order is delivered; it can no longer be cancelled");
        assert_eq!(message(Preparing, Accept, Restaurant), "order is being prepared; it cannot be accepted");
        assert_eq!(message(Pending, PickUp, Driver), "order is pending; it cannot be picked up");
        assert_eq!(message(Preparing, Cancel, Customer), "a customer cannot cancel an order that is being prepared");
        assert_eq!(message(Pending, Accept, Driver), "a driver cannot accept an order that is pending");
        assert_eq!(message(Pending, Cancel, Restaurant), "the restaurant cannot cancel an order that is pending");
        assert_eq!(message(Confirmed, AssignDriver, System), "order already has a driver");
    }

    #[test]
    fn names_round_trip_and_match_the_sql_values() {
        let sql = [
            "pending",
            "confirmed",
            "preparing",
            "ready_for_pickup",
            "driver_assigned",
            "picked_up",
            "delivering",
            "delivered",
            "cancelled",
            "rejected",
        ];
        assert_eq!(OrderStatus::ALL.map(OrderStatus::as_str), sql);
        for status in OrderStatus::ALL {
            assert_eq!(status.as_str().parse(), Ok(status));
        }
        for actor in Actor::ALL {
            assert_eq!(actor.as_str().parse(), Ok(actor));
        }
        for action in OrderAction::ALL {
            assert_eq!(action.as_str().parse(), Ok(action));
        }
        assert_eq!("Pending".parse::<OrderStatus>().unwrap_err().to_string(), "unknown order status \"Pending\"");
        assert_eq!("robot".parse::<Actor>().unwrap_err().to_string(), "unknown actor \"robot\"");
        let terminal: Vec<_> = OrderStatus::ALL.into_iter().filter(|s| s.is_terminal()).collect();
        assert_eq!(terminal, [OrderStatus::Delivered, OrderStatus::Cancelled, OrderStatus::Rejected]);
    }

    #[test]
    fn the_happy_path() {
        use Actor::*;
        use OrderAction::*;
        let steps = [
            (Accept, Restaurant, OrderStatus::Confirmed, Some(PaymentEffect::Capture)),
            (StartPreparing, Restaurant, OrderStatus::Preparing, None),
            (AssignDriver, System, OrderStatus::Preparing, None),
            (MarkReady, Restaurant, OrderStatus::DriverAssigned, None),
            (PickUp, Driver, OrderStatus::PickedUp, None),
            (StartDelivering, Driver, OrderStatus::Delivering, None),
            (Deliver, Driver, OrderStatus::Delivered, None),
        ];
        let mut state = OrderState::PLACED;
        for (action, actor, status, payment) in steps {
            let decision = decide(state, action, actor).unwrap();
            assert_eq!((decision.status, decision.payment), (status, payment), "{action:?}");
            state = decision.state();
        }
        assert!(state.has_driver);
    }

    fn any_step() -> impl Strategy<Value = (OrderAction, Actor)> {
        (prop::sample::select(OrderAction::ALL.to_vec()), prop::sample::select(Actor::ALL.to_vec()))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2_000))]

        #[test]
        fn random_histories_keep_the_invariants(steps in prop::collection::vec(any_step(), 0..40)) {
            let mut state = OrderState::PLACED;
            let (mut assignments, mut captures, mut voids, mut refunds) = (0, 0, 0, 0);
            for (action, actor) in steps {
                let Ok(decision) = decide(state, action, actor) else { continue };
                prop_assert!(!state.status.is_terminal(), "{state:?} left a terminal state by {action:?}");
                prop_assert!(state.has_driver <= decision.has_driver, "a driver is never taken away");
                let rank = |s| OrderStatus::ALL.iter().position(|&x| x == s);
                prop_assert!(decision.status.is_terminal() || rank(decision.status) >= rank(state.status), "no going back");
                assignments += usize::from(action == OrderAction::AssignDriver);
                match decision.payment {
                    Some(PaymentEffect::Capture) => captures += 1,
                    Some(PaymentEffect::Void) => voids += 1,
                    Some(PaymentEffect::Refund) => {
                        prop_assert_eq!(captures, 1, "refund without capture");
                        refunds += 1;
                    }
                    None => {}
                }
                state = decision.state();
            }
            prop_assert!(assignments <= 1, "assigned twice");
            prop_assert!(captures <= 1 && voids <= 1 && refunds <= 1);
            prop_assert!(!(captures == 1 && voids == 1), "captured and voided");
        }

        #[test]
        fn a_move_just_made_repeats_and_only_then(steps in prop::collection::vec(any_step(), 0..40), last in any_step()) {
            let mut state = OrderState::PLACED;
            for (action, actor) in steps {
                if let Ok(decision) = decide(state, action, actor) {
                    state = decision.state();
                }
            }
            let (action, actor) = last;
            // Where a move may happen, the order is not yet where it leads.
            if decide(state, action, actor).is_ok() {
                prop_assert!(!repeats(state, action), "{:?} {:?}", state, action);
            }
            let Ok(decision) = decide(state, action, actor) else { return Ok(()) };
            let assigns = matches!(action, OrderAction::AssignDriver | OrderAction::ReassignDriver);
            prop_assert_eq!(repeats(decision.state(), action), !assigns, "{:?} by {:?} from {:?}", action, actor, state);
            if !assigns {
                prop_assert!(decide(decision.state(), action, actor).is_err(), "a repeat is refused by the state machine");
            }
        }
    }
}
