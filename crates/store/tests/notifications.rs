//! The notification queue on the real PostgreSQL: the most urgent due
//! notification is claimed first, a claimed one is not claimed again until
//! its claim lapses, and a settled attempt is recorded once.

use std::time::Duration;

use foodfast_domain::access::Role;
use foodfast_domain::notification::{Channel, Message, Priority, State};
use foodfast_store::migrate;
use foodfast_store::notifications::{Enqueued, NewNotification, Notifications, Outcome};
use foodfast_store::postgres::Postgres;
use foodfast_store::users::{NewUser, Users};

#[tokio::test]
async fn the_most_urgent_is_claimed_first_and_a_claim_holds_until_it_lapses() {
    let postgres = Postgres::connect(&foodfast_testkit::fresh_postgres().await).await.unwrap();
    migrate::migrate_postgres(&postgres, &migrate::cockroach_migrations()).await.unwrap();
    let user = NewUser {
        email: "r@test",
        phone: Some("+33600000000"),
        name: "R",
        role: Role::Customer,
        password_hash: "!",
        restaurant_id: None,
    };
    let recipient_id = Users::new(postgres.clone()).create(&user).await.unwrap();
    let store = Notifications::new(postgres);
    let new = |priority, body: &str| NewNotification {
        recipient_id,
        channel: Channel::Sms,
        priority,
        message: Message { title: String::new(), body: body.into() },
        idempotency_key: None,
    };
    let queue = |new, state| {
        let store = &store;
        async move { store.enqueue(&new, state).await.unwrap().id().unwrap() }
    };
    let low = queue(new(Priority::Low, "low"), State::Queued).await;
    let critical = queue(new(Priority::Critical, "critical"), State::Queued).await;
    let shed = queue(new(Priority::Low, "shed"), State::Dropped).await;
    assert_eq!(store.pending().await.unwrap(), 2, "a dropped one is not pending");

    let first = store.claim_due(1, Duration::from_secs(60)).await.unwrap();
    assert_eq!(first.iter().map(|c| c.id).collect::<Vec<_>>(), [critical], "critical before low, though queued later");
    assert_eq!(first[0].attempt, 1);
    let second = store.claim_due(10, Duration::from_millis(300)).await.unwrap();
    assert_eq!(second.iter().map(|c| c.id).collect::<Vec<_>>(), [low], "a claimed one is not claimed again");

    // The low one's claim lapses (its sender died): another sender takes it, as attempt 2.
    tokio::time::sleep(Duration::from_millis(400)).await;
    let retaken = store.claim_due(10, Duration::from_secs(60)).await.unwrap();
    assert_eq!((retaken[0].id, retaken[0].attempt), (low, 2));
    assert!(!store.settle(&second[0], &Outcome::Sent).await.unwrap(), "the lapsed claim cannot settle");
    assert!(store.settle(&retaken[0], &Outcome::Sent).await.unwrap());
    let retry = Outcome::Retry { after: Duration::from_secs(60), error: "503".into() };
    assert!(store.settle(&first[0], &retry).await.unwrap());

    let sent = store.get(low).await.unwrap().unwrap();
    assert_eq!(sent.state, State::Sent);
    assert_eq!(sent.attempts.iter().map(|a| (a.attempt, a.succeeded)).collect::<Vec<_>>(), [(2, true)]);
    let waiting = store.get(critical).await.unwrap().unwrap();
    assert_eq!(waiting.state, State::RetryScheduled);
    assert!(waiting.next_attempt_at.is_some());
    assert!(store.claim_due(10, Duration::from_secs(60)).await.unwrap().is_empty(), "not due for a minute");
    assert_eq!(store.get(shed).await.unwrap().unwrap().state, State::Dropped);
    assert_eq!(store.pending().await.unwrap(), 1, "the retry still waits");
    let contact = store.contact(recipient_id).await.unwrap().unwrap();
    assert_eq!((contact.phone.as_deref(), contact.push_tokens.len()), (Some("+33600000000"), 0));
}

#[tokio::test]
async fn an_idempotency_key_queues_once_and_is_refused_for_another_notification() {
    let postgres = Postgres::connect(&foodfast_testkit::fresh_postgres().await).await.unwrap();
    migrate::migrate_postgres(&postgres, &migrate::cockroach_migrations()).await.unwrap();
    let users = Users::new(postgres.clone());
    let user = |email| NewUser {
        email,
        phone: None,
        name: "R",
        role: Role::Customer,
        password_hash: "!",
        restaurant_id: None,
    };
    let (first_id, second_id) =
        (users.create(&user("a@test")).await.unwrap(), users.create(&user("b@test")).await.unwrap());
    let store = Notifications::new(postgres);
    let new = NewNotification {
        recipient_id: first_id,
        channel: Channel::Email,
        priority: Priority::High,
        message: Message { title: "Hi".into(), body: "Your order".into() },
        idempotency_key: Some("send:welcome-1".into()),
    };
    assert_eq!(store.queued_under_key(&new).await.unwrap(), None);
    let Enqueued::New(id) = store.enqueue(&new, State::Queued).await.unwrap() else { panic!("queued") };
    assert_eq!(store.enqueue(&new, State::Queued).await.unwrap(), Enqueued::Repeat(id));
    assert_eq!(store.queued_under_key(&new).await.unwrap(), Some(Enqueued::Repeat(id)));
    for other in [
        NewNotification { recipient_id: second_id, ..new.clone() },
        NewNotification { channel: Channel::Sms, ..new.clone() },
        NewNotification { priority: Priority::Low, ..new.clone() },
        NewNotification { message: Message { title: "Hi".into(), body: "Another".into() }, ..new.clone() },
    ] {
        assert_eq!(store.enqueue(&other, State::Queued).await.unwrap(), Enqueued::KeyInUse, "{other:?}");
    }
    assert_eq!(store.pending().await.unwrap(), 1);
}
