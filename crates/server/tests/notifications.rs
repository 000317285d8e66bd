//! NotificationService. System-wide announcements: each watcher gets those
//! addressed to its role (anonymous ones only those for everyone), first what
//! is in force, then new ones as they are published on any replica; a cursor
//! resumes after what was seen; only admins publish, and bad input is named.
//! Push devices: one registration per token, which follows the account that
//! registered it last.

mod common;

use std::time::Duration;

use chrono::{TimeDelta, Utc};
use common::{Authed, TestServer};
use foodfast_api::v1 as pb;
use foodfast_api::v1::notification_service_client::NotificationServiceClient;
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
    Announcements::new(server.stores.postgres.clone()).publish(&expired, None).await.unwrap();

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
    let cases: [(&str, Spoil); 5] = [
        ("title", |r| r.title = "  ".into()),
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
