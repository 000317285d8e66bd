//! NotificationService. System-wide announcements: each watcher gets those
//! addressed to its role (anonymous ones only those for everyone), first what
//! is in force, then new ones as they are published on any replica; a cursor
//! resumes after what was seen; only admins publish, and bad input is named.
//! Push devices: one registration per token, which follows the account that
//! registered it last. Notifications: queued by operators, sent through a
//! provider stand-in with retries, every attempt recorded and read back by
//! the recipient.

mod common;

use std::time::Duration;

use chrono::{TimeDelta, Utc};
use common::{Authed, Provider, TestServer};
use foodfast_api::v1 as pb;
use foodfast_api::v1::notification_service_client::NotificationServiceClient;
use foodfast_domain::access::Principal;
use foodfast_domain::announcement::{NewAnnouncement, Severity};
use foodfast_store::announcements::Announcements;
use tonic::Code;

fn request(title: &str, audience: &[pb::Role]) -> pb::PublishAnnouncementRequest {
    pb::PublishAnnouncementRequest {
        title: title.into(),
        body: format!("{title}: details"),
        severity: pb::AnnouncementSeverity::Warning as i32,
        audience: audience.iter().map(|&role| role as i32).collect(),
        city: "Paris".into(),
        expires_at: Some(foodfast_server::convert::timestamp(Utc::now() + TimeDelta::hours(1))),
        idempotency_key: String::new(),
    }
}

async fn publish(
    client: &mut NotificationServiceClient<Authed>,
    title: &str,
    audience: &[pb::Role],
) -> pb::Announcement {
    client.publish_announcement(request(title, audience)).await.unwrap().into_inner().announcement.unwrap()
}

type Watch = tonic::Streaming<pb::WatchAnnouncementsResponse>;

async fn watch(client: &mut NotificationServiceClient<Authed>, after_cursor: &str) -> Watch {
    let request = pb::WatchAnnouncementsRequest { after_cursor: after_cursor.into() };
    client.watch_announcements(request).await.unwrap().into_inner()
}

/// The next announcement's title and cursor (heartbeats skipped).
async fn next(stream: &mut Watch) -> (String, String) {
    tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let message = stream.message().await.unwrap().expect("the stream stays open");
            if let Some(pb::watch_announcements_response::Payload::Announcement(announcement)) = message.payload {
                return (announcement.title, message.cursor);
            }
        }
    })
    .await
    .expect("no announcement came")
}

async fn titles(stream: &mut Watch, count: usize) -> Vec<String> {
    let mut titles = Vec::new();
    for _ in 0..count {
        titles.push(next(stream).await.0);
    }
    titles
}

#[tokio::test]
async fn watchers_get_what_is_addressed_to_them_live_on_every_replica_and_resume_after_their_cursor() {
    let server = TestServer::start().await;
    let (admin, customer, driver) = (server.admin().await, server.customer().await, server.driver().await);
    let mut admin_client = server.notifications(Some(&admin));
    let everyone = publish(&mut admin_client, "everyone", &[]).await;
    assert_eq!(everyone.severity, pb::AnnouncementSeverity::Warning as i32);
    assert_eq!(everyone.city, "Paris");
    publish(&mut admin_client, "drivers", &[pb::Role::Driver]).await;
    // Expired: never shown.
    let expired = NewAnnouncement {
        title: "expired".into(),
        body: "gone".into(),
        severity: Severity::Info,
        audience: vec![],
        city: String::new(),
        expires_at: Utc::now() - TimeDelta::seconds(1),
    };
    Announcements::new(server.stores.postgres.clone()).publish(&expired, None, None).await.unwrap();

    let replica = server.spawn_replica().await;
    let mut as_customer = watch(&mut server.notifications(Some(&customer)), "").await;
    let mut as_driver = watch(&mut server.notifications_at(&replica, Some(&driver)), "").await;
    let mut anonymous = watch(&mut server.notifications(None), "").await;
    let (title, first_cursor) = next(&mut as_customer).await;
    assert_eq!(title, "everyone");
    assert_eq!(titles(&mut as_driver, 2).await, ["everyone", "drivers"]);
    assert_eq!(titles(&mut anonymous, 1).await, ["everyone"]);

    // Live, published on the first server, delivered on both.
    publish(&mut admin_client, "customers", &[pb::Role::Customer]).await;
    publish(&mut admin_client, "drivers and customers", &[pb::Role::Driver, pb::Role::Customer]).await;
    publish(&mut admin_client, "everyone again", &[]).await;
    assert_eq!(titles(&mut as_customer, 3).await, ["customers", "drivers and customers", "everyone again"]);
    assert_eq!(titles(&mut as_driver, 2).await, ["drivers and customers", "everyone again"], "not the customers' one");
    assert_eq!(titles(&mut anonymous, 1).await, ["everyone again"]);

    // Resuming after the first one replays only what came after it.
    let mut resumed = watch(&mut server.notifications(Some(&customer)), &first_cursor).await;
    assert_eq!(titles(&mut resumed, 3).await, ["customers", "drivers and customers", "everyone again"]);
}

#[tokio::test]
async fn only_admins_publish_and_bad_input_is_named() {
    let server = TestServer::start().await;
    let (admin, support) = (server.admin().await, server.support().await);
    let status = server.notifications(Some(&support)).publish_announcement(request("t", &[])).await.unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
    let status = server.notifications(None).publish_announcement(request("t", &[])).await.unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");

    let mut client = server.notifications(Some(&admin));
    type Spoil = fn(&mut pb::PublishAnnouncementRequest);
    let cases: [(&str, Spoil); 8] = [
        ("title", |r| r.title = "  ".into()),
        ("idempotency_key", |r| r.idempotency_key = "short".into()),
        ("severity", |r| r.severity = 9),
        ("audience[0]", |r| r.audience = vec![77]),
        ("body", |r| r.body = "b".repeat(5_001)),
        ("expires_at", |r| r.expires_at = None),
        ("expires_at", |r| r.expires_at = Some(foodfast_server::convert::timestamp(Utc::now() + TimeDelta::days(31)))),
        ("audience[1]", |r| r.audience = vec![pb::Role::Driver as i32, pb::Role::Unspecified as i32]),
    ];
    for (field, spoil) in cases {
        let mut bad = request("t", &[]);
        spoil(&mut bad);
        let status = client.publish_announcement(bad).await.unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{field}: {status:?}");
        assert!(status.message().contains(field), "{field}: {}", status.message());
    }
    let status = server
        .notifications(None)
        .watch_announcements(pb::WatchAnnouncementsRequest { after_cursor: "yesterday".into() })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");

    // A retry after a lost answer announces once; the key with other words is refused.
    let keyed = pb::PublishAnnouncementRequest { idempotency_key: "storm-lyon-0001".into(), ..request("Storm", &[]) };
    let first = client.publish_announcement(keyed.clone()).await.unwrap().into_inner().announcement.unwrap();
    let again = client.publish_announcement(keyed.clone()).await.unwrap().into_inner().announcement.unwrap();
    assert_eq!(again, first);
    let reworded = pb::PublishAnnouncementRequest { body: "Roads are closed".into(), ..keyed };
    let status = client.publish_announcement(reworded).await.unwrap_err();
    assert_eq!(status.code(), Code::AlreadyExists, "{status:?}");
    assert!(status.message().contains("idempotency_key"), "{status:?}");
}

#[tokio::test]
async fn a_push_token_is_registered_once_and_follows_the_account_that_registered_it_last() {
    let server = TestServer::start().await;
    let (first, second) = (server.customer().await, server.driver().await);
    let register = |caller, platform: pb::DevicePlatform, token: &str| {
        let mut client = server.notifications(caller);
        let request = pb::RegisterDeviceRequest { platform: platform as i32, push_token: token.into() };
        async move { client.register_device(request).await }
    };
    let owner = |device_id: String| {
        let postgres = server.stores.postgres.clone();
        async move {
            let id: uuid::Uuid = device_id.parse().unwrap();
            let client = postgres.client().await.unwrap();
            let row = client.query_one("SELECT user_id, platform FROM devices WHERE id = $1", &[&id]).await.unwrap();
            (row.get::<_, uuid::Uuid>(0), row.get::<_, String>(1))
        }
    };
    let token = "fcm:dGhlIGRldmljZSB0b2tlbg";
    let device = register(Some(&first), pb::DevicePlatform::Android, token).await.unwrap().into_inner().device_id;
    let again = register(Some(&first), pb::DevicePlatform::Android, token).await.unwrap().into_inner().device_id;
    assert_eq!(again, device, "the same token is the same device");
    assert_eq!(owner(device.clone()).await, (first.user_id, "android".to_string()));

    let moved = register(Some(&second), pb::DevicePlatform::Android, token).await.unwrap().into_inner().device_id;
    assert_eq!(moved, device);
    assert_eq!(owner(device.clone()).await.0, second.user_id, "the phone changed hands");
    let long_token = "w".repeat(4_096);
    let other = register(Some(&second), pb::DevicePlatform::Web, &long_token).await.unwrap().into_inner().device_id;
    assert_ne!(other, device);

    // Signing out on the phone: only its current owner can unregister it, and once.
    let unregister = |caller, token: &str| {
        let mut client = server.notifications(caller);
        let request = pb::UnregisterDeviceRequest { push_token: token.into() };
        async move { client.unregister_device(request).await }
    };
    assert!(!unregister(Some(&first), token).await.unwrap().into_inner().removed, "no longer the first's");
    assert_eq!(owner(device.clone()).await.0, second.user_id);
    assert!(unregister(Some(&second), token).await.unwrap().into_inner().removed);
    assert!(!unregister(Some(&second), token).await.unwrap().into_inner().removed, "a retry changes nothing");
    let devices = server.stores.postgres.client().await.unwrap();
    let left = devices.query("SELECT id FROM devices WHERE user_id = $1", &[&second.user_id]).await.unwrap();
    assert_eq!(left.len(), 1, "the other device stays");
    let status = unregister(Some(&second), "").await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");

    let status = register(None, pb::DevicePlatform::Ios, "apns:abc").await.unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
    for (platform, token, field) in [
        (pb::DevicePlatform::Unspecified, "apns:abc", "platform"),
        (pb::DevicePlatform::Ios, "", "push_token"),
        (pb::DevicePlatform::Ios, &"t".repeat(4_097), "push_token"),
    ] {
        let status = register(Some(&first), platform, token).await.unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{field}: {status:?}");
        assert!(status.message().contains(field), "{field}: {}", status.message());
    }
}

fn send(recipient: &Principal, channel: pb::NotificationChannel, body: &str) -> pb::SendNotificationRequest {
    pb::SendNotificationRequest {
        recipient_id: recipient.user_id.to_string(),
        channel: channel as i32,
        priority: pb::NotificationPriority::High as i32,
        idempotency_key: String::new(),
        content: Some(pb::send_notification_request::Content::Message(pb::NotificationMessage {
            title: "FoodFast".into(),
            body: body.into(),
        })),
    }
}

/// The notification once it reached a final state, read by `reader`.
async fn settled(server: &TestServer, reader: &Principal, id: &str) -> pb::Notification {
    let mut client = server.notifications(Some(reader));
    tokio::time::timeout(Duration::from_secs(15), async {
        loop {
            let request = pb::GetNotificationRequest { notification_id: id.into() };
            let notification = client.get_notification(request).await.unwrap().into_inner().notification.unwrap();
            if [pb::NotificationState::Sent as i32, pb::NotificationState::Failed as i32].contains(&notification.state)
            {
                return notification;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("the notification never settled")
}

fn outcomes(notification: &pb::Notification) -> Vec<bool> {
    notification.attempts.iter().map(|attempt| attempt.succeeded).collect()
}

#[tokio::test]
async fn notifications_go_through_the_provider_with_retries_and_every_attempt_reads_back() {
    let provider = Provider::start().await;
    let server = TestServer::start_with(|config| {
        config.notifications.provider_url = provider.url.clone();
        config.notifications.max_attempts = 3;
        config.notifications.backoff_base = Duration::from_millis(50);
        // Also the longest Retry-After honoured.
        config.notifications.backoff_cap = Duration::from_secs(1);
        config.notifications.poll_interval = Duration::from_millis(100);
    })
    .await;
    let (support, customer) = (server.support().await, server.customer().await);
    let client = server.notifications(Some(&support));
    let queue = |request| {
        let mut client = client.clone();
        async move { client.send_notification(request).await.unwrap().into_inner().notification_id }
    };

    let email = queue(send(&customer, pb::NotificationChannel::Email, "Your order is on its way")).await;
    let sent = settled(&server, &customer, &email).await;
    assert_eq!(sent.state, pb::NotificationState::Sent as i32);
    assert_eq!(outcomes(&sent), [true]);
    let delivered = provider.accepted_for(&email);
    assert_eq!(delivered.len(), 1);
    assert_eq!(delivered[0]["channel"], "email");
    assert!(delivered[0]["to"][0].as_str().unwrap().ends_with("@example.test"), "{}", delivered[0]);
    assert_eq!(delivered[0]["body"], "Your order is on its way");

    let flaky = queue(send(&customer, pb::NotificationChannel::Email, "flaky")).await;
    let sent = settled(&server, &support, &flaky).await;
    assert_eq!((sent.state, outcomes(&sent)), (pb::NotificationState::Sent as i32, vec![false, true]));
    assert!(sent.attempts[0].error.contains("503"), "{:?}", sent.attempts[0]);

    let down = queue(send(&customer, pb::NotificationChannel::Email, "down")).await;
    let failed = settled(&server, &support, &down).await;
    assert_eq!((failed.state, outcomes(&failed)), (pb::NotificationState::Failed as i32, vec![false; 3]));

    let refused = queue(send(&customer, pb::NotificationChannel::Email, "refuse")).await;
    let failed = settled(&server, &support, &refused).await;
    assert_eq!(outcomes(&failed), [false], "a refusal is final");
    assert!(failed.attempts[0].error.contains("400"), "{:?}", failed.attempts[0]);
    assert!(
        !failed.attempts[0].error.contains("+336"),
        "the provider's words stay in the log: {:?}",
        failed.attempts[0]
    );

    // Asked to slow down (Retry-After: 1), the sender waits as long as the provider said, not its own 50 ms.
    let throttled = queue(send(&customer, pb::NotificationChannel::Email, "throttle")).await;
    let sent = settled(&server, &support, &throttled).await;
    assert_eq!(outcomes(&sent), [false, true]);
    let at = |i: usize| {
        let t = sent.attempts[i].attempted_at.unwrap();
        Duration::new(t.seconds as u64, t.nanos as u32)
    };
    assert!(at(1) - at(0) >= Duration::from_millis(900), "retried after {:?}", at(1) - at(0));

    // Our key refused (rotated, mistyped): our configuration is wrong, not the message; it waits.
    let misconfigured = queue(send(&customer, pb::NotificationChannel::Email, "wrong key")).await;
    let sent = settled(&server, &support, &misconfigured).await;
    assert_eq!(outcomes(&sent), [false, true], "not failed for good");
    assert!(sent.attempts[0].error.contains("401"), "{:?}", sent.attempts[0]);

    let sms = queue(send(&customer, pb::NotificationChannel::Sms, "Your driver is here")).await;
    let failed = settled(&server, &support, &sms).await;
    assert_eq!(outcomes(&failed), [false]);
    assert_eq!(failed.attempts[0].error, "the recipient has no phone number");
    assert!(provider.accepted_for(&sms).is_empty());

    let token = "apns:0123456789abcdef";
    let device = pb::RegisterDeviceRequest { platform: pb::DevicePlatform::Ios as i32, push_token: token.into() };
    server.notifications(Some(&customer)).register_device(device).await.unwrap();
    let mut templated = send(&customer, pb::NotificationChannel::Push, "");
    templated.content = Some(pb::send_notification_request::Content::Template(pb::NotificationTemplate {
        template_id: "order_delivered".into(),
        params: [("restaurant_name".to_string(), "Mario's".to_string())].into(),
    }));
    templated.idempotency_key = "order:42:delivered:push".into();
    let push = queue(templated.clone()).await;
    assert_eq!(queue(templated.clone()).await, push, "the same key is the same notification");
    let mut another = templated;
    another.content = Some(pb::send_notification_request::Content::Message(pb::NotificationMessage {
        title: "Sorry".into(),
        body: "Your order is late".into(),
    }));
    let err = client.clone().send_notification(another).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::AlreadyExists, "{err:?}");
    assert!(err.message().contains("idempotency_key"), "{err:?}");
    settled(&server, &customer, &push).await;
    let delivered = provider.accepted_for(&push);
    assert_eq!(delivered.len(), 1, "sent once");
    assert_eq!(delivered[0]["to"], serde_json::json!([token]));
    assert_eq!(delivered[0]["body"], "Your order from Mario's was delivered. Enjoy!");
}

#[tokio::test]
async fn only_operators_send_only_the_recipient_and_operators_read_and_bad_input_is_named() {
    let server = TestServer::start().await;
    let (support, customer, other) = (server.support().await, server.customer().await, server.customer().await);
    let status = server
        .notifications(Some(&customer))
        .send_notification(send(&other, pb::NotificationChannel::Email, "hi"))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");

    let mut client = server.notifications(Some(&support));
    let id = client
        .send_notification(send(&customer, pb::NotificationChannel::Email, "hi"))
        .await
        .unwrap()
        .into_inner()
        .notification_id;
    let read = |caller, id: String| {
        let mut client = server.notifications(Some(caller));
        async move { client.get_notification(pb::GetNotificationRequest { notification_id: id }).await }
    };
    let queued = read(&customer, id.clone()).await.unwrap().into_inner().notification.unwrap();
    assert_eq!(queued.state, pb::NotificationState::Queued as i32, "no provider: it waits in the queue");
    assert_eq!(queued.priority, pb::NotificationPriority::High as i32);
    assert_eq!(read(&other, id.clone()).await.unwrap_err().code(), Code::PermissionDenied);
    let unknown = uuid::Uuid::new_v4().to_string();
    assert_eq!(read(&other, unknown.clone()).await.unwrap_err().code(), Code::PermissionDenied, "same as not yours");
    assert_eq!(read(&support, unknown).await.unwrap_err().code(), Code::NotFound);

    let stranger = Principal { user_id: uuid::Uuid::new_v4(), ..customer };
    let status = client.send_notification(send(&stranger, pb::NotificationChannel::Email, "hi")).await.unwrap_err();
    assert_eq!(status.code(), Code::NotFound, "{status:?}");
    type Spoil = fn(&mut pb::SendNotificationRequest);
    let cases: [(&str, Spoil); 5] = [
        ("recipient_id", |r| r.recipient_id = "me".into()),
        ("channel", |r| r.channel = 0),
        ("content", |r| r.content = None),
        ("idempotency_key", |r| r.idempotency_key = "short".into()),
        ("template.params[restaurant_name]", |r| {
            r.content = Some(pb::send_notification_request::Content::Template(pb::NotificationTemplate {
                template_id: "order_confirmed".into(),
                params: Default::default(),
            }))
        }),
    ];
    for (field, spoil) in cases {
        let mut bad = send(&customer, pb::NotificationChannel::Email, "hi");
        spoil(&mut bad);
        let status = client.send_notification(bad).await.unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{field}: {status:?}");
        assert!(status.message().contains(field), "{field}: {}", status.message());
    }
}

#[tokio::test]
async fn past_the_pending_limit_low_priority_ones_are_dropped_and_others_refused() {
    let server = TestServer::start_with(|config| {
        config.notifications.max_pending = 1;
        config.notifications.poll_interval = Duration::from_millis(50);
    })
    .await;
    let (support, customer) = (server.support().await, server.customer().await);
    let mut client = server.notifications(Some(&support));
    let with_priority = |priority: pb::NotificationPriority| pb::SendNotificationRequest {
        priority: priority as i32,
        ..send(&customer, pb::NotificationChannel::Email, "hi")
    };
    // No provider: the first one stays pending, and the limit is reached once it is counted.
    client.send_notification(with_priority(pb::NotificationPriority::Normal)).await.unwrap();
    let refused = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match client.send_notification(with_priority(pb::NotificationPriority::Critical)).await {
                Err(status) => return status,
                Ok(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        }
    })
    .await
    .expect("the limit never applied");
    assert_eq!(refused.code(), Code::ResourceExhausted, "{refused:?}");
    assert!(refused.message().contains("retry later"), "{}", refused.message());

    let shed = client
        .send_notification(with_priority(pb::NotificationPriority::Low))
        .await
        .unwrap()
        .into_inner()
        .notification_id;
    let request = pb::GetNotificationRequest { notification_id: shed };
    let dropped = client.get_notification(request).await.unwrap().into_inner().notification.unwrap();
    assert_eq!(dropped.state, pb::NotificationState::Dropped as i32);
    assert!(dropped.attempts.is_empty());
}

#[tokio::test]
async fn the_customer_hears_of_its_orders_steps_on_its_device_once_each() {
    let provider = Provider::start().await;
    let kitchen = common::Kitchen::open_with(|config| {
        config.notifications.provider_url = provider.url.clone();
        config.notifications.poll_interval = Duration::from_millis(100);
    })
    .await;
    // Before the customer has a device: nothing is queued for it.
    let unheard = kitchen.placed_order().await;
    kitchen.restaurant_sets(&unheard, "accepted").await;

    let token = "fcm:the-customers-phone";
    let device = pb::RegisterDeviceRequest { platform: pb::DevicePlatform::Android as i32, push_token: token.into() };
    kitchen.server.notifications(Some(&kitchen.customer)).register_device(device).await.unwrap();
    let accepted = kitchen.placed_order().await;
    kitchen.restaurant_sets(&accepted, "accepted").await;
    kitchen.restaurant_sets(&accepted, "preparing").await;
    let rejected = kitchen.placed_order().await;
    kitchen.restaurant_sets(&rejected, "rejected").await;
    let driver = kitchen.driver(1).await;
    kitchen.online(&driver).await;
    let ready = kitchen.ready_order().await;
    kitchen.assign(&ready, &driver).await.unwrap();

    let heard = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let heard = provider.accepted.lock().unwrap().clone();
            if heard.len() >= 4 {
                return heard;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("the customer heard nothing");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut bodies: Vec<String> = heard.iter().map(|m| m["body"].as_str().unwrap().to_string()).collect();
    bodies.sort();
    assert_eq!(
        bodies,
        [
            "Luigi is preparing your order.",
            "Luigi is preparing your order.",
            "Test P. will pick up your order from Luigi.",
            "Your order from Luigi was cancelled: closing early"
        ]
    );
    assert!(heard.iter().all(|m| m["to"] == serde_json::json!([token]) && m["channel"] == "push"), "{heard:?}");
    assert_eq!(provider.accepted.lock().unwrap().len(), 4, "once each, and nothing for the other steps");
}

#[tokio::test]
async fn an_orders_notice_is_queued_with_its_step_even_past_the_outbox_limit() {
    // No provider: nothing drains the outbox, which holds one notification at most.
    let kitchen = common::Kitchen::open_with(|config| {
        config.notifications.max_pending = 1;
        config.notifications.poll_interval = Duration::from_millis(50);
    })
    .await;
    let device =
        pb::RegisterDeviceRequest { platform: pb::DevicePlatform::Ios as i32, push_token: "apns:phone".into() };
    kitchen.server.notifications(Some(&kitchen.customer)).register_device(device).await.unwrap();
    let first = kitchen.placed_order().await;
    kitchen.restaurant_sets(&first, "accepted").await;
    let states = || async {
        let client = kitchen.server.stores.postgres.client().await.unwrap();
        let rows = client
            .query(
                "SELECT state FROM notifications WHERE recipient_id = $1 ORDER BY created_at",
                &[&kitchen.customer.user_id],
            )
            .await
            .unwrap();
        rows.iter().map(|row| row.get::<_, String>(0)).collect::<Vec<_>>()
    };
    // Written with the step: there when the answer arrives.
    assert_eq!(states().await, ["queued"]);
    tokio::time::sleep(Duration::from_millis(300)).await; // the backlog is counted again

    let second = kitchen.placed_order().await;
    kitchen.restaurant_sets(&second, "accepted").await;
    // Only LOW notifications are shed; an order's are HIGH or CRITICAL, as many as the orders.
    assert_eq!(states().await, ["queued", "queued"]);
}
