//! Proto ↔ domain. Requests become domain types through `TryFrom`-style
//! functions that name the offending field; domain and store types become
//! proto messages through plain functions.

use foodfast_domain::access::Role;
use std::time::Duration;

use chrono::{DateTime, Utc};
use foodfast_api::v1 as pb;
use foodfast_domain::address::Address;
use foodfast_domain::announcement::{Announcement, Severity};
use foodfast_domain::geo::{LatLng, distance_m};
use foodfast_domain::hours::{OpeningHours, OpeningPeriod, parse_time, parse_time_zone};
use foodfast_domain::media::{ImageTarget, JobState};
use foodfast_domain::menu::{Customization, CustomizationOption, Menu, MenuCategory, MenuItem};
use foodfast_domain::money::{Currency, format_amount, parse_amount};
use foodfast_domain::order::{Actor, OrderStatus, Stop};
use foodfast_domain::pricing::{Cart, CartLine, Choice, PricedChoice, PricedLine, Quote};
use foodfast_domain::restaurant::{RestaurantProfile, normalize_cuisine};
use foodfast_domain::support::{ChatMessage, Conversation, ConversationStatus};
use foodfast_domain::validation::{FieldError, parse_uuid};
use foodfast_store::dispatch::DriverOffer;
use foodfast_store::notifications::Notification;
use foodfast_store::orders::{EventKind, Order, OrderEvent, OrderLine};
use foodfast_store::restaurants::{MenuSnapshot, Restaurant};
use foodfast_store::uploads::UploadJob;
use foodfast_store::users::Account;
use rust_decimal::Decimal;
use uuid::Uuid;

pub fn timestamp(at: DateTime<Utc>) -> prost_types::Timestamp {
    prost_types::Timestamp { seconds: at.timestamp(), nanos: at.timestamp_subsec_nanos() as i32 }
}

pub fn duration(d: Duration) -> prost_types::Duration {
    prost_types::Duration { seconds: d.as_secs() as i64, nanos: d.subsec_nanos() as i32 }
}

pub fn from_duration(field: &str, d: &prost_types::Duration) -> Result<Duration, FieldError> {
    if d.seconds < 0 || d.nanos < 0 {
        return Err(FieldError::new(field, "must not be negative"));
    }
    Ok(Duration::new(d.seconds as u64, d.nanos as u32))
}

pub fn money(amount: Decimal, currency: &Currency) -> pb::Money {
    pb::Money { currency_code: currency.as_str().to_string(), amount: format_amount(amount) }
}

pub fn lat_lng(p: LatLng) -> pb::LatLng {
    pb::LatLng { lat: p.lat, lng: p.lng }
}

pub fn address(a: &Address) -> pb::Address {
    pb::Address {
        location: Some(lat_lng(a.location)),
        formatted: a.formatted.clone(),
        instructions: a.instructions.clone(),
    }
}

/// A delivery as its driver sees it (the driver holds it: the address shows).
pub fn delivery(delivery_id: Uuid, order: &Order) -> pb::Delivery {
    pb::Delivery {
        delivery_id: delivery_id.to_string(),
        order_id: order.id.to_string(),
        order_status: order_status(order.status) as i32,
        restaurant_name: order.restaurant_name.clone(),
        restaurant_address: Some(address(&order.restaurant_address)),
        customer_name: foodfast_domain::names::display_name(&order.customer_name),
        customer_address: Some(address(&order.delivery_address)),
        item_count: order.lines.iter().map(|line| line.quantity).sum(),
        food_ready_at: Some(timestamp(order.estimated_ready_at)),
        // Live ETAs are on the customer's tracking stream; the app has its own map.
        pickup_eta: None,
        dropoff_eta: None,
        estimated_earnings: Some(earnings(order)),
    }
}

/// What the driver earns for an order: its delivery fee.
pub fn earnings(order: &Order) -> pb::Money {
    money(order.delivery_fee, &order.currency)
}

/// An offer as the driver's app shows it: the drop-off only as an area
/// (about a kilometre), the exact address comes with the assignment.
pub fn offer(offer: &DriverOffer, order: &Order) -> pb::Offer {
    let pickup = order.restaurant_address.location;
    let dropoff = order.delivery_address.location;
    let area = |degrees: f64| (degrees * 100.0).round() / 100.0;
    pb::Offer {
        offer_id: offer.offer_id.to_string(),
        delivery_id: offer.delivery_id.to_string(),
        order_id: order.id.to_string(),
        restaurant_name: order.restaurant_name.clone(),
        pickup: Some(address(&order.restaurant_address)),
        dropoff_area: Some(pb::LatLng { lat: area(dropoff.lat), lng: area(dropoff.lng) }),
        dropoff_area_name: String::new(),
        pickup_distance_m: offer.distance_m,
        dropoff_distance_m: distance_m(pickup, dropoff).round() as u32,
        estimated_earnings: Some(earnings(order)),
        food_ready_at: Some(timestamp(order.estimated_ready_at)),
        expires_at: Some(timestamp(offer.deadline)),
    }
}

/// A stream's "nothing happened", sent every `interval` of silence.
pub fn heartbeat(interval: Duration) -> pb::Heartbeat {
    pb::Heartbeat { server_time: Some(timestamp(Utc::now())), interval: Some(duration(interval)) }
}

pub fn role(role: Role) -> pb::Role {
    match role {
        Role::Customer => pb::Role::Customer,
        Role::RestaurantStaff => pb::Role::RestaurantStaff,
        Role::Driver => pb::Role::Driver,
        Role::Support => pb::Role::Support,
        Role::Admin => pb::Role::Admin,
    }
}

/// An enum field's value; a number this version of the contract does not
/// define (a newer client's) is refused, not read as UNSPECIFIED.
pub fn known_enum<E: TryFrom<i32>>(field: &str, value: i32) -> Result<E, FieldError> {
    E::try_from(value).map_err(|_| FieldError::new(field, format!("has no value {value} in this version of the API")))
}

pub fn parse_role(field: &str, role: i32) -> Result<Role, FieldError> {
    Ok(match known_enum(field, role)? {
        pb::Role::Unspecified => return Err(FieldError::new(field, "is required")),
        pb::Role::Customer => Role::Customer,
        pb::Role::RestaurantStaff => Role::RestaurantStaff,
        pb::Role::Driver => Role::Driver,
        pb::Role::Support => Role::Support,
        pb::Role::Admin => Role::Admin,
    })
}

/// A required timestamp.
pub fn parse_timestamp(field: &str, t: Option<&prost_types::Timestamp>) -> Result<DateTime<Utc>, FieldError> {
    let t = t.ok_or_else(|| FieldError::new(field, "is required"))?;
    DateTime::from_timestamp(t.seconds, t.nanos.max(0) as u32).ok_or_else(|| FieldError::new(field, "is out of range"))
}

/// A stream's resume cursor (`after_cursor`): empty is none.
pub fn parse_cursor(cursor: &str) -> Result<Option<i64>, FieldError> {
    if cursor.is_empty() {
        return Ok(None);
    }
    cursor.parse::<i64>().ok().filter(|c| *c >= 0).map(Some).ok_or_else(unknown_cursor)
}

/// A cursor this stream never handed out.
pub fn unknown_cursor() -> FieldError {
    FieldError::new("after_cursor", "is not a cursor of this stream; start without one")
}

pub fn announcement(announcement: &Announcement) -> pb::Announcement {
    pb::Announcement {
        announcement_id: announcement.id.to_string(),
        title: announcement.title.clone(),
        body: announcement.body.clone(),
        severity: match announcement.severity {
            Severity::Info => pb::AnnouncementSeverity::Info,
            Severity::Warning => pb::AnnouncementSeverity::Warning,
            Severity::Critical => pb::AnnouncementSeverity::Critical,
        } as i32,
        audience: announcement.audience.iter().map(|&r| role(r) as i32).collect(),
        city: announcement.city.clone(),
        published_at: Some(timestamp(announcement.published_at)),
        expires_at: Some(timestamp(announcement.expires_at)),
    }
}

pub fn notification(notification: &Notification) -> pb::Notification {
    use foodfast_domain::notification::{Channel, Priority, State};
    pb::Notification {
        notification_id: notification.id.to_string(),
        recipient_id: notification.recipient_id.to_string(),
        channel: match notification.channel {
            Channel::Push => pb::NotificationChannel::Push,
            Channel::Sms => pb::NotificationChannel::Sms,
            Channel::Email => pb::NotificationChannel::Email,
        } as i32,
        priority: match notification.priority {
            Priority::Critical => pb::NotificationPriority::Critical,
            Priority::High => pb::NotificationPriority::High,
            Priority::Normal => pb::NotificationPriority::Normal,
            Priority::Low => pb::NotificationPriority::Low,
        } as i32,
        state: match notification.state {
            State::Queued => pb::NotificationState::Queued,
            State::Sending => pb::NotificationState::Sending,
            State::RetryScheduled => pb::NotificationState::RetryScheduled,
            State::Sent => pb::NotificationState::Sent,
            State::Failed => pb::NotificationState::Failed,
            State::Dropped => pb::NotificationState::Dropped,
        } as i32,
        attempts: notification
            .attempts
            .iter()
            .map(|attempt| pb::DeliveryAttempt {
                attempt: attempt.attempt,
                attempted_at: Some(timestamp(attempt.attempted_at)),
                succeeded: attempt.succeeded,
                error: attempt.error.clone(),
            })
            .collect(),
        next_attempt_at: notification.next_attempt_at.map(timestamp),
        created_at: Some(timestamp(notification.created_at)),
        updated_at: Some(timestamp(notification.updated_at)),
    }
}

pub fn conversation(conversation: &Conversation) -> pb::Conversation {
    pb::Conversation {
        conversation_id: conversation.id.to_string(),
        customer_id: conversation.customer_id.to_string(),
        order_id: conversation.order_id.map(|id| id.to_string()).unwrap_or_default(),
        subject: conversation.subject.clone(),
        status: conversation_status(conversation.status) as i32,
        agent_id: conversation.agent_id.map(|id| id.to_string()).unwrap_or_default(),
        last_seq: conversation.last_seq.max(0) as u64,
        created_at: Some(timestamp(conversation.created_at)),
        last_activity_at: Some(timestamp(conversation.last_activity_at)),
    }
}

pub fn conversation_status(status: ConversationStatus) -> pb::ConversationStatus {
    match status {
        ConversationStatus::Open => pb::ConversationStatus::Open,
        ConversationStatus::Closed => pb::ConversationStatus::Closed,
    }
}

pub fn chat_message(message: &ChatMessage) -> pb::ChatMessage {
    pb::ChatMessage {
        message_id: message.id.to_string(),
        conversation_id: message.conversation_id.to_string(),
        seq: message.seq.max(0) as u64,
        sender_id: message.sender_id.to_string(),
        sender_role: role(message.sender_role) as i32,
        sender_name: message.sender_name.clone(),
        text: message.text.clone(),
        client_message_id: message.client_message_id.map(|id| id.to_string()).unwrap_or_default(),
        sent_at: Some(timestamp(message.sent_at)),
    }
}

pub fn upload_job(job: &UploadJob, poll_after: Option<Duration>) -> pb::UploadJob {
    pb::UploadJob {
        job_id: job.id.to_string(),
        target_kind: match job.target {
            ImageTarget::MenuItem => pb::ImageTargetKind::MenuItem,
            ImageTarget::RestaurantCover => pb::ImageTargetKind::RestaurantCover,
            ImageTarget::AccountAvatar => pb::ImageTargetKind::AccountAvatar,
        } as i32,
        target_id: job.target_id.to_string(),
        state: match job.state {
            JobState::Queued => pb::UploadJobState::Queued,
            JobState::Processing => pb::UploadJobState::Processing,
            JobState::Succeeded => pb::UploadJobState::Succeeded,
            JobState::Failed => pb::UploadJobState::Failed,
        } as i32,
        progress_percent: u32::from(job.progress),
        result_url: job.result_url.clone(),
        error: job.error.clone(),
        poll_after: poll_after.map(duration),
        created_at: Some(timestamp(job.created_at)),
        updated_at: Some(timestamp(job.updated_at)),
    }
}

/// An account as its owner (or an admin) sees it.
pub fn account_profile(account: &Account) -> pb::Profile {
    pb::Profile {
        account_id: account.id.to_string(),
        role: role(account.role).into(),
        email: account.email.clone(),
        phone: account.phone.clone().unwrap_or_default(),
        display_name: account.name.clone(),
        default_address: account.default_address.as_ref().map(address),
        restaurant_id: account.restaurant_id.map(|id| id.to_string()).unwrap_or_default(),
        created_at: Some(timestamp(account.created_at)),
        avatar_url: account.avatar_url.clone(),
    }
}

pub fn parse_address(field: &str, a: Option<&pb::Address>) -> Result<Address, FieldError> {
    let a = a.ok_or_else(|| FieldError::new(field, "is required"))?;
    Address::new(field, a.location.as_ref().map(|l| (l.lat, l.lng)), &a.formatted, &a.instructions)
}

pub fn order_status(status: OrderStatus) -> pb::OrderStatus {
    match status {
        OrderStatus::Pending => pb::OrderStatus::Pending,
        OrderStatus::Confirmed => pb::OrderStatus::Confirmed,
        OrderStatus::Preparing => pb::OrderStatus::Preparing,
        OrderStatus::ReadyForPickup => pb::OrderStatus::ReadyForPickup,
        OrderStatus::DriverAssigned => pb::OrderStatus::DriverAssigned,
        OrderStatus::PickedUp => pb::OrderStatus::PickedUp,
        OrderStatus::Delivering => pb::OrderStatus::Delivering,
        OrderStatus::Delivered => pb::OrderStatus::Delivered,
        OrderStatus::Cancelled => pb::OrderStatus::Cancelled,
        OrderStatus::Rejected => pb::OrderStatus::Rejected,
    }
}

fn actor(actor: Actor) -> pb::Actor {
    match actor {
        Actor::Customer => pb::Actor::Customer,
        Actor::Restaurant => pb::Actor::Restaurant,
        Actor::Driver => pb::Actor::Driver,
        Actor::Support => pb::Actor::Support,
        Actor::Admin => pb::Actor::Admin,
        Actor::System => pb::Actor::System,
    }
}

pub fn order_event(event: &OrderEvent) -> pb::OrderEvent {
    pb::OrderEvent {
        seq: event.seq as u64,
        order_id: event.order_id.to_string(),
        kind: match event.kind {
            EventKind::StatusChanged => pb::OrderEventKind::StatusChanged,
            EventKind::DriverAssigned => pb::OrderEventKind::DriverAssigned,
            EventKind::DispatchDelayed => pb::OrderEventKind::DispatchDelayed,
            EventKind::DriverArrived(Stop::Restaurant) => pb::OrderEventKind::DriverArrivedAtRestaurant,
            EventKind::DriverArrived(Stop::Customer) => pb::OrderEventKind::DriverArrivedAtCustomer,
            EventKind::PrepTimeUpdated => pb::OrderEventKind::PrepTimeUpdated,
            EventKind::Unknown => pb::OrderEventKind::Unspecified,
        } as i32,
        status: order_status(event.status) as i32,
        previous_status: event.previous_status.map_or(pb::OrderStatus::Unspecified, order_status) as i32,
        actor: actor(event.actor) as i32,
        occurred_at: Some(timestamp(event.created_at)),
        reason: event.reason.clone(),
        driver: event
            .driver_id
            .map(|driver_id| pb::DriverSummary { driver_id: driver_id.to_string(), ..Default::default() }),
    }
}

fn selected_option(choice: &PricedChoice, currency: &Currency) -> pb::SelectedOption {
    pb::SelectedOption {
        customization_id: choice.customization_id.to_string(),
        customization_name: choice.customization_name.clone(),
        option_id: choice.option_id.to_string(),
        option_name: choice.option_name.clone(),
        surcharge: Some(money(choice.surcharge, currency)),
    }
}

fn order_line(line: &OrderLine, currency: &Currency) -> pb::OrderLine {
    pb::OrderLine {
        item_id: line.item_id.to_string(),
        name: line.name.clone(),
        quantity: line.quantity,
        unit_price: Some(money(line.unit_price, currency)),
        options: line.choices.iter().map(|c| selected_option(c, currency)).collect(),
        note: line.note.clone(),
        line_total: Some(money(line.line_total, currency)),
    }
}

pub fn priced_line(line: &PricedLine, note: &str, currency: &Currency) -> pb::OrderLine {
    pb::OrderLine {
        item_id: line.item_id.to_string(),
        name: line.name.clone(),
        quantity: line.quantity,
        unit_price: Some(money(line.unit_price, currency)),
        options: line.choices.iter().map(|c| selected_option(c, currency)).collect(),
        note: note.to_string(),
        line_total: Some(money(line.line_total, currency)),
    }
}

pub fn price(
    subtotal: Decimal,
    delivery_fee: Decimal,
    tax: Decimal,
    total: Decimal,
    c: &Currency,
) -> pb::PriceBreakdown {
    pb::PriceBreakdown {
        subtotal: Some(money(subtotal, c)),
        delivery_fee: Some(money(delivery_fee, c)),
        tax: Some(money(tax, c)),
        total: Some(money(total, c)),
    }
}

pub fn quote_response(quote: &Quote, notes: &[String], quoted_at: DateTime<Utc>) -> pb::QuoteResponse {
    let c = &quote.currency;
    pb::QuoteResponse {
        items: quote
            .lines
            .iter()
            .enumerate()
            .map(|(i, line)| priced_line(line, notes.get(i).map_or("", String::as_str), c))
            .collect(),
        price: Some(price(quote.subtotal, quote.delivery_fee, quote.tax, quote.total, c)),
        estimated_delivery: Some(pb::EtaWindow {
            earliest: Some(timestamp(quote.eta_earliest)),
            latest: Some(timestamp(quote.eta_latest)),
        }),
        delivery_distance_m: quote.distance_m,
        quoted_at: Some(timestamp(quoted_at)),
    }
}

/// The order as clients see it; `history` is empty where it is not asked for.
pub fn order(order: &Order, history: &[OrderEvent]) -> pb::Order {
    let c = &order.currency;
    pb::Order {
        order_id: order.id.to_string(),
        customer_id: order.customer_id.to_string(),
        customer_name: order.customer_name.clone(),
        restaurant_id: order.restaurant_id.to_string(),
        restaurant_name: order.restaurant_name.clone(),
        restaurant_address: Some(address(&order.restaurant_address)),
        status: order_status(order.status) as i32,
        items: order.lines.iter().map(|line| order_line(line, c)).collect(),
        price: Some(price(order.subtotal, order.delivery_fee, order.tax, order.total, c)),
        delivery_address: Some(address(&order.delivery_address)),
        customer_note: order.customer_note.clone(),
        driver: order
            .driver_id
            .map(|driver_id| pb::DriverSummary { driver_id: driver_id.to_string(), ..Default::default() }),
        estimated_delivery: Some(pb::EtaWindow {
            earliest: Some(timestamp(order.estimated_delivery_earliest)),
            latest: Some(timestamp(order.estimated_delivery_latest)),
        }),
        estimated_ready_at: Some(timestamp(order.estimated_ready_at)),
        history: history.iter().map(order_event).collect(),
        last_event_seq: order.last_event_seq as u64,
        created_at: Some(timestamp(order.created_at)),
        updated_at: Some(timestamp(order.updated_at)),
    }
}

fn weekday(day: chrono::Weekday) -> pb::Weekday {
    match day {
        chrono::Weekday::Mon => pb::Weekday::Monday,
        chrono::Weekday::Tue => pb::Weekday::Tuesday,
        chrono::Weekday::Wed => pb::Weekday::Wednesday,
        chrono::Weekday::Thu => pb::Weekday::Thursday,
        chrono::Weekday::Fri => pb::Weekday::Friday,
        chrono::Weekday::Sat => pb::Weekday::Saturday,
        chrono::Weekday::Sun => pb::Weekday::Sunday,
    }
}

fn parse_weekday(field: &str, day: i32) -> Result<chrono::Weekday, FieldError> {
    Ok(match pb::Weekday::try_from(day) {
        Ok(pb::Weekday::Monday) => chrono::Weekday::Mon,
        Ok(pb::Weekday::Tuesday) => chrono::Weekday::Tue,
        Ok(pb::Weekday::Wednesday) => chrono::Weekday::Wed,
        Ok(pb::Weekday::Thursday) => chrono::Weekday::Thu,
        Ok(pb::Weekday::Friday) => chrono::Weekday::Fri,
        Ok(pb::Weekday::Saturday) => chrono::Weekday::Sat,
        Ok(pb::Weekday::Sunday) => chrono::Weekday::Sun,
        _ => return Err(FieldError::new(field, "must name a weekday")),
    })
}

pub fn profile(p: &RestaurantProfile) -> pb::RestaurantProfile {
    pb::RestaurantProfile {
        name: p.name.clone(),
        address: Some(address(&p.address)),
        cuisines: p.cuisines.clone(),
        phone: p.phone.clone(),
        time_zone: p.time_zone.name().to_string(),
        opening_hours: p
            .opening_hours
            .0
            .iter()
            .map(|period| pb::OpeningPeriod {
                day: weekday(period.day) as i32,
                opens_at: period.opens.format("%H:%M").to_string(),
                closes_at: period.closes.format("%H:%M").to_string(),
            })
            .collect(),
        delivery_radius_m: p.delivery_radius_m,
        average_prep_time: Some(duration(p.prep_time)),
        currency_code: p.currency.as_str().to_string(),
        paused: p.paused,
    }
}

pub fn parse_profile(p: Option<&pb::RestaurantProfile>) -> Result<RestaurantProfile, FieldError> {
    let p = p.ok_or_else(|| FieldError::new("profile", "is required"))?;
    let mut periods = Vec::with_capacity(p.opening_hours.len());
    for (i, period) in p.opening_hours.iter().enumerate() {
        let field = |name: &str| format!("profile.opening_hours[{i}].{name}");
        periods.push(OpeningPeriod {
            day: parse_weekday(&field("day"), period.day)?,
            opens: parse_time(&period.opens_at).map_err(|err| FieldError::new(field("opens_at"), err.to_string()))?,
            closes: parse_time(&period.closes_at)
                .map_err(|err| FieldError::new(field("closes_at"), err.to_string()))?,
        });
    }
    let profile = RestaurantProfile {
        name: p.name.trim().to_string(),
        phone: foodfast_domain::account::phone("profile.phone", &p.phone)?.unwrap_or_default(),
        address: parse_address("profile.address", p.address.as_ref())?,
        cuisines: p.cuisines.iter().map(|c| normalize_cuisine(c)).collect(),
        time_zone: parse_time_zone(&p.time_zone)
            .map_err(|err| FieldError::new("profile.time_zone", err.to_string()))?,
        opening_hours: OpeningHours(periods),
        delivery_radius_m: p.delivery_radius_m,
        prep_time: p
            .average_prep_time
            .as_ref()
            .map(|d| from_duration("profile.average_prep_time", d))
            .transpose()?
            .unwrap_or_default(),
        currency: Currency::new(&p.currency_code)
            .map_err(|err| FieldError::new("profile.currency_code", err.to_string()))?,
        paused: p.paused,
    };
    profile.validate()?;
    Ok(profile)
}

pub fn restaurant(r: &Restaurant, now: DateTime<Utc>) -> pb::Restaurant {
    pb::Restaurant {
        restaurant_id: r.id.to_string(),
        profile: Some(profile(&r.profile)),
        open_now: r.profile.is_open(now),
        rating: r.rating,
        rating_count: r.rating_count,
        image_url: r.image_url.clone(),
        created_at: Some(timestamp(r.created_at)),
        updated_at: Some(timestamp(r.updated_at)),
    }
}

pub fn menu_categories(menu: &Menu, currency: &Currency) -> Vec<pb::MenuCategory> {
    menu.categories
        .iter()
        .map(|category| pb::MenuCategory {
            category_id: category.id.to_string(),
            name: category.name.clone(),
            items: category
                .items
                .iter()
                .map(|item| pb::MenuItem {
                    item_id: item.id.to_string(),
                    name: item.name.clone(),
                    description: item.description.clone(),
                    price: Some(money(item.price, currency)),
                    available: item.available,
                    image_url: item.image_url.clone().unwrap_or_default(),
                    customizations: item
                        .customizations
                        .iter()
                        .map(|c| pb::Customization {
                            customization_id: c.id.to_string(),
                            name: c.name.clone(),
                            min_choices: c.min_choices,
                            max_choices: c.max_choices,
                            options: c
                                .options
                                .iter()
                                .map(|o| pb::CustomizationOption {
                                    option_id: o.id.to_string(),
                                    name: o.name.clone(),
                                    surcharge: Some(money(o.surcharge, currency)),
                                    available: o.available,
                                })
                                .collect(),
                        })
                        .collect(),
                })
                .collect(),
        })
        .collect()
}

pub fn menu_response(snapshot: &MenuSnapshot, now: DateTime<Utc>) -> pb::GetMenuResponse {
    let r = &snapshot.restaurant;
    pb::GetMenuResponse {
        restaurant: Some(restaurant(r, now)),
        categories: menu_categories(&snapshot.menu, &r.profile.currency),
        menu_version: r.menu_version.to_string(),
        menu_updated_at: Some(timestamp(r.menu_updated_at)),
    }
}

/// An id the client may leave empty for something new.
fn id_or_new(field: &str, id: &str) -> Result<Uuid, FieldError> {
    if id.is_empty() { Ok(Uuid::new_v4()) } else { parse_uuid(field, id) }
}

/// A price in the restaurant's currency; any other currency is refused.
fn parse_price(field: &str, m: &pb::Money, currency: &Currency) -> Result<Decimal, FieldError> {
    if !m.currency_code.is_empty() && m.currency_code != currency.as_str() {
        return Err(FieldError::new(
            format!("{field}.currency_code"),
            format!("must be the restaurant's currency {currency}"),
        ));
    }
    parse_amount(&m.amount).map_err(|err| FieldError::new(format!("{field}.amount"), err.to_string()))
}

pub fn parse_menu(categories: &[pb::MenuCategory], currency: &Currency) -> Result<Menu, FieldError> {
    let mut menu = Menu { categories: Vec::with_capacity(categories.len()) };
    for (ci, category) in categories.iter().enumerate() {
        let cf = format!("categories[{ci}]");
        let mut items = Vec::with_capacity(category.items.len());
        for (ii, item) in category.items.iter().enumerate() {
            let f = format!("{cf}.items[{ii}]");
            let mut customizations = Vec::with_capacity(item.customizations.len());
            for (ki, c) in item.customizations.iter().enumerate() {
                let kf = format!("{f}.customizations[{ki}]");
                let mut options = Vec::with_capacity(c.options.len());
                for (oi, o) in c.options.iter().enumerate() {
                    let of = format!("{kf}.options[{oi}]");
                    options.push(CustomizationOption {
                        id: id_or_new(&format!("{of}.option_id"), &o.option_id)?,
                        name: o.name.trim().to_string(),
                        surcharge: match &o.surcharge {
                            Some(surcharge) => parse_price(&format!("{of}.surcharge"), surcharge, currency)?,
                            None => Decimal::ZERO,
                        },
                        available: o.available,
                    });
                }
                customizations.push(Customization {
                    id: id_or_new(&format!("{kf}.customization_id"), &c.customization_id)?,
                    name: c.name.trim().to_string(),
                    min_choices: c.min_choices,
                    max_choices: c.max_choices,
                    options,
                });
            }
            items.push(MenuItem {
                id: id_or_new(&format!("{f}.item_id"), &item.item_id)?,
                name: item.name.trim().to_string(),
                description: item.description.trim().to_string(),
                price: match &item.price {
                    Some(price) => parse_price(&format!("{f}.price"), price, currency)?,
                    None => return Err(FieldError::new(format!("{f}.price"), "is required")),
                },
                available: item.available,
                // Set only by MediaService: an edited item keeps its image.
                image_url: None,
                customizations,
            });
        }
        menu.categories.push(MenuCategory {
            id: id_or_new(&format!("{cf}.category_id"), &category.category_id)?,
            name: category.name.trim().to_string(),
            items,
        });
    }
    menu.validate().map_err(|err| FieldError::new("categories", err.to_string()))?;
    Ok(menu)
}

/// The cart and the notes of its lines (by line index).
pub fn parse_cart(items: &[pb::CartItem]) -> Result<(Cart, Vec<String>), FieldError> {
    let mut lines = Vec::with_capacity(items.len());
    let mut notes = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let f = format!("items[{i}]");
        let mut choices = Vec::new();
        for (ci, c) in item.customizations.iter().enumerate() {
            let cf = format!("{f}.customizations[{ci}]");
            let customization_id = parse_uuid(&format!("{cf}.customization_id"), &c.customization_id)?;
            for (oi, option_id) in c.option_ids.iter().enumerate() {
                let option_id = parse_uuid(&format!("{cf}.option_ids[{oi}]"), option_id)?;
                choices.push(Choice { customization_id, option_id });
            }
        }
        foodfast_domain::validation::max_len(&format!("{f}.note"), &item.note, 200)?;
        lines.push(CartLine {
            item_id: parse_uuid(&format!("{f}.item_id"), &item.item_id)?,
            quantity: item.quantity,
            choices,
        });
        notes.push(item.note.trim().to_string());
    }
    Ok((Cart { lines }, notes))
}
