//! Announcements on the real PostgreSQL: concurrent publishers get distinct
//! sequence numbers in commit order, and only those in force read back.

use chrono::{TimeDelta, Utc};
use foodfast_domain::access::Role;
use foodfast_domain::announcement::{NewAnnouncement, Severity};
use foodfast_store::announcements::{Announcements, Published};
use foodfast_store::migrate;
use foodfast_store::postgres::Postgres;

fn new(title: &str, expires_in: TimeDelta) -> NewAnnouncement {
    NewAnnouncement {
        title: title.into(),
        body: "body".into(),
        severity: Severity::Critical,
        audience: vec![Role::Driver, Role::RestaurantStaff],
        city: "Lyon".into(),
        expires_at: Utc::now() + expires_in,
    }
}

#[tokio::test]
async fn concurrent_publishers_get_distinct_sequence_numbers_and_only_those_in_force_read_back() {
    let postgres = Postgres::connect(&foodfast_testkit::fresh_postgres().await).await.unwrap();
    migrate::migrate_postgres(&postgres, &migrate::cockroach_migrations()).await.unwrap();
    let store = Announcements::new(postgres.clone());
    let published = futures::future::join_all((0..8).map(|n| {
        let store = store.clone();
        async move { store.publish(&new(&format!("a{n}"), TimeDelta::hours(1)), None, None).await.unwrap() }
    }))
    .await;
    let published: Vec<_> = published.into_iter().map(|p| p.announcement().unwrap()).collect();
    let mut seqs: Vec<i64> = published.iter().map(|a| a.seq).collect();
    seqs.sort();
    assert_eq!(seqs, (1..=8).collect::<Vec<_>>(), "one number each, none skipped or shared");
    store.publish(&new("expired", TimeDelta::seconds(-1)), None, None).await.unwrap();

    let read = store.in_force_after(0, 100).await.unwrap();
    assert_eq!((read.read_to, read.more), (Some(8), false));
    let in_force = read.announcements;
    assert_eq!(in_force.iter().map(|a| a.seq).collect::<Vec<_>>(), (1..=8).collect::<Vec<_>>());
    let first = published.iter().find(|a| a.seq == 1).unwrap();
    assert_eq!(&in_force[0], first, "reads back as published");
    assert_eq!(in_force[0].audience, [Role::Driver, Role::RestaurantStaff]);
    assert_eq!(store.in_force_after(6, 100).await.unwrap().announcements.len(), 2);
    let first_three = store.in_force_after(0, 3).await.unwrap();
    assert_eq!((first_three.announcements.len(), first_three.read_to, first_three.more), (3, Some(3), true));

    // A newer version's audience: skipped, but read past, so the reader moves on.
    let client = postgres.client().await.unwrap();
    client.execute("UPDATE announcements SET audience = ARRAY['martian'] WHERE seq <= 3", &[]).await.unwrap();
    let skipped = store.in_force_after(0, 3).await.unwrap();
    assert_eq!((skipped.announcements.len(), skipped.read_to, skipped.more), (0, Some(3), true));
    let next = store.in_force_after(3, 3).await.unwrap();
    assert_eq!(next.announcements.iter().map(|a| a.seq).collect::<Vec<_>>(), [4, 5, 6]);
}

#[tokio::test]
async fn a_key_publishes_once_and_is_refused_for_another_announcement() {
    let postgres = Postgres::connect(&foodfast_testkit::fresh_postgres().await).await.unwrap();
    migrate::migrate_postgres(&postgres, &migrate::cockroach_migrations()).await.unwrap();
    let store = Announcements::new(postgres);
    let outage = new("Outage", TimeDelta::hours(1));
    let retries = futures::future::join_all((0..4).map(|_| {
        let (store, outage) = (store.clone(), outage.clone());
        async move { store.publish(&outage, None, Some("outage-lyon-1")).await.unwrap() }
    }))
    .await;
    let firsts: Vec<_> = retries.iter().filter(|p| matches!(p, Published::New(_))).collect();
    assert_eq!(firsts.len(), 1, "published once: {retries:?}");
    let first = firsts[0].clone().announcement().unwrap();
    assert!(retries.iter().all(|p| p.clone().announcement() == Some(first.clone())), "{retries:?}");
    let read = store.in_force_after(0, 100).await.unwrap();
    assert_eq!(read.announcements, [first]);

    let other = NewAnnouncement { body: "another text".into(), ..outage };
    assert_eq!(store.publish(&other, None, Some("outage-lyon-1")).await.unwrap(), Published::KeyInUse);
    assert_eq!(store.in_force_after(0, 100).await.unwrap().announcements.len(), 1);
}
