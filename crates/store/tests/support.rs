//! Support chat on the real PostgreSQL and Redis: concurrent senders get
//! gap-free sequence numbers, a resent message is stored once, a closed
//! conversation takes nothing until someone joins it again, lists page by
//! activity, and typing entries lapse by themselves.

use std::collections::HashSet;
use std::time::Duration;

use foodfast_domain::access::{Principal, Role};
use foodfast_domain::support::ConversationStatus;
use foodfast_store::migrate;
use foodfast_store::postgres::Postgres;
use foodfast_store::redis::Redis;
use foodfast_store::sql;
use foodfast_store::support::{ChatSender, ConversationFilter, Sent, Support};
use foodfast_store::users::{NewUser, Users};
use uuid::Uuid;

struct Fixture {
    support: Support,
    users: Users,
    postgres: Postgres,
}

impl Fixture {
    async fn new() -> Self {
        let config = foodfast_testkit::fresh_stores().await;
        let postgres = Postgres::connect(&config.postgres).await.unwrap();
        migrate::migrate_postgres(&postgres, &migrate::cockroach_migrations()).await.unwrap();
        let redis = Redis::connect(&config.redis).await.unwrap();
        Self { support: Support::new(postgres.clone(), redis), users: Users::new(postgres.clone()), postgres }
    }

    /// A conversation of `customer` about no order, written as it is stored:
    /// `start` would rejoin the open one instead of opening another.
    async fn conversation(&self, customer: &ChatSender, subject: &str) -> Uuid {
        let id = Uuid::new_v4();
        let client = self.postgres.client().await.unwrap();
        client.query_one(sql::INSERT_CONVERSATION, &[&id, &customer.id, &None::<Uuid>, &subject]).await.unwrap();
        id
    }

    async fn account(&self, role: Role) -> ChatSender {
        let email = format!("{}@test", Uuid::new_v4());
        let user =
            NewUser { email: &email, phone: None, name: "Sam Lee", role, password_hash: "!", restaurant_id: None };
        let id = self.users.create(&user).await.unwrap();
        ChatSender { id, role, name: "Sam L.".into() }
    }
}

fn principal(sender: &ChatSender) -> Principal {
    Principal { user_id: sender.id, role: sender.role, restaurant_id: None }
}

#[tokio::test]
async fn concurrent_senders_get_gap_free_numbers_and_a_resend_is_stored_once() {
    let fixture = Fixture::new().await;
    let (customer, agent) = (fixture.account(Role::Customer).await, fixture.account(Role::Support).await);
    let talk = fixture.support.start(customer.id, None, "Cold soup").await.unwrap();
    assert_eq!((talk.status, talk.last_seq, talk.agent_id), (ConversationStatus::Open, 0, None));

    let sends = (0..10).map(|n| {
        let (support, sender) = (fixture.support.clone(), if n % 2 == 0 { customer.clone() } else { agent.clone() });
        async move { support.send(talk.id, &sender, Uuid::new_v4(), &format!("message {n}")).await.unwrap() }
    });
    let sent = futures::future::join_all(sends).await;
    let seqs: HashSet<i64> = sent
        .iter()
        .map(|sent| match sent {
            Sent::New(message) => message.seq,
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(seqs, (1..=10).collect(), "one number each, none skipped or shared");

    let client_id = Uuid::new_v4();
    let Sent::New(first) = fixture.support.send(talk.id, &customer, client_id, "hello").await.unwrap() else {
        panic!("stored")
    };
    assert_eq!((first.seq, first.sender_role, first.sender_name.as_str()), (11, Role::Customer, "Sam L."));
    let again = fixture.support.send(talk.id, &customer, client_id, "hello (resent)").await.unwrap();
    assert_eq!(again, Sent::Resent(first.clone()), "the first one, unchanged");
    let Sent::New(other) = fixture.support.send(talk.id, &agent, client_id, "same id, other sender").await.unwrap()
    else {
        panic!("client ids are the sender's own")
    };
    assert_eq!(other.seq, 12);

    let after = fixture.support.messages_after(talk.id, 9, 100).await.unwrap();
    assert_eq!(after.iter().map(|m| m.seq).collect::<Vec<_>>(), [10, 11, 12]);
    assert_eq!(after[1], first, "reads back as stored");
    let newest = fixture.support.messages_before(talk.id, i64::MAX, 2).await.unwrap();
    assert_eq!(newest.iter().map(|m| m.seq).collect::<Vec<_>>(), [12, 11], "newest first, limited");
    let older = fixture.support.messages_before(talk.id, 11, 100).await.unwrap();
    assert_eq!(older.len(), 10);
    assert_eq!(fixture.support.conversation(talk.id).await.unwrap().unwrap().last_seq, 12);
    assert_eq!(
        fixture.support.send(Uuid::new_v4(), &customer, Uuid::new_v4(), "nowhere").await.unwrap(),
        Sent::NotFound
    );
}

#[tokio::test]
async fn a_closed_conversation_takes_nothing_until_someone_joins_it_again() {
    let fixture = Fixture::new().await;
    let (customer, agent) = (fixture.account(Role::Customer).await, fixture.account(Role::Support).await);
    let talk = fixture.support.start(customer.id, None, "Wrong order").await.unwrap();

    let (joined, changed) = fixture.support.join(talk.id, &principal(&agent)).await.unwrap().unwrap();
    assert!(changed);
    assert_eq!(joined.agent_id, Some(agent.id), "the operator who joins answers");
    let (_, changed) = fixture.support.join(talk.id, &principal(&agent)).await.unwrap().unwrap();
    assert!(!changed, "joining again changes nothing");
    let (_, changed) = fixture.support.join(talk.id, &principal(&customer)).await.unwrap().unwrap();
    assert!(!changed, "the customer joining an open one changes nothing");
    let stranger = fixture.account(Role::Customer).await;
    let (seen, changed) = fixture.support.join(talk.id, &principal(&stranger)).await.unwrap().unwrap();
    assert!(!changed && seen.agent_id == Some(agent.id), "someone who may not take part changes nothing");

    let (closed, note) = fixture.support.close(talk.id, &agent, "Refunded.").await.unwrap().unwrap();
    assert_eq!((closed.status, closed.last_seq), (ConversationStatus::Closed, 1));
    let note = note.unwrap();
    assert_eq!((note.seq, note.text.as_str(), note.client_message_id), (1, "Refunded.", None));
    assert_eq!(fixture.support.close(talk.id, &agent, "").await.unwrap(), None, "already closed");
    assert_eq!(fixture.support.send(talk.id, &customer, Uuid::new_v4(), "hello?").await.unwrap(), Sent::Closed);

    let (reopened, changed) = fixture.support.join(talk.id, &principal(&customer)).await.unwrap().unwrap();
    assert!(changed);
    assert_eq!((reopened.status, reopened.agent_id), (ConversationStatus::Open, Some(agent.id)));
    assert!(reopened.last_activity_at > closed.last_activity_at, "reopening counts as activity");
    assert!(matches!(
        fixture.support.send(talk.id, &customer, Uuid::new_v4(), "hello?").await.unwrap(),
        Sent::New(message) if message.seq == 2
    ));
    let (closed, note) = fixture.support.close(talk.id, &customer, "").await.unwrap().unwrap();
    assert_eq!((closed.last_seq, note), (2, None), "no note, no message");
    assert_eq!(fixture.support.join(Uuid::new_v4(), &principal(&agent)).await.unwrap(), None);
}

#[tokio::test]
async fn a_start_rejoins_the_open_conversation_about_the_same_order_until_it_closes() {
    let fixture = Fixture::new().await;
    let customer = fixture.account(Role::Customer).await;
    let starts = (0..4).map(|_| fixture.support.start(customer.id, None, "Cold soup"));
    let started: HashSet<Uuid> = futures::future::join_all(starts).await.into_iter().map(|c| c.unwrap().id).collect();
    assert_eq!(started.len(), 1, "four starts at once, one conversation");
    let id = *started.iter().next().unwrap();
    fixture.support.close(id, &customer, "").await.unwrap();
    assert_ne!(
        fixture.support.start(customer.id, None, "Cold soup").await.unwrap().id,
        id,
        "a closed one is not rejoined"
    );
}

#[tokio::test]
async fn lists_page_by_latest_activity_and_filter() {
    let fixture = Fixture::new().await;
    let (ana, bo) = (fixture.account(Role::Customer).await, fixture.account(Role::Customer).await);
    let mut ids = Vec::new();
    for n in 0..5 {
        let customer = if n < 3 { &ana } else { &bo };
        ids.push(fixture.conversation(customer, &format!("subject {n}")).await);
    }
    // Ana's first conversation becomes the most recently active.
    fixture.support.send(ids[0], &ana, Uuid::new_v4(), "still there?").await.unwrap();
    fixture.support.close(ids[1], &ana, "").await.unwrap();

    let all = fixture.support.list(&ConversationFilter::default(), None, 100).await.unwrap();
    assert_eq!(all.iter().map(|c| c.id).collect::<Vec<_>>(), [ids[0], ids[4], ids[3], ids[2], ids[1]]);

    let anas = ConversationFilter { customer_id: Some(ana.id), ..Default::default() };
    let first = fixture.support.list(&anas, None, 2).await.unwrap();
    assert_eq!(first.iter().map(|c| c.id).collect::<Vec<_>>(), [ids[0], ids[2]]);
    let last = first.last().unwrap();
    let rest = fixture.support.list(&anas, Some((last.last_activity_at, last.id)), 2).await.unwrap();
    assert_eq!(rest.iter().map(|c| c.id).collect::<Vec<_>>(), [ids[1]], "only Ana's, after the page");

    let open = ConversationFilter { status: Some(ConversationStatus::Open), ..anas };
    let open = fixture.support.list(&open, None, 100).await.unwrap();
    assert_eq!(open.iter().map(|c| c.id).collect::<Vec<_>>(), [ids[0], ids[2]]);
    let closed = ConversationFilter { status: Some(ConversationStatus::Closed), ..Default::default() };
    assert_eq!(fixture.support.list(&closed, None, 100).await.unwrap().len(), 1);
    let about_an_order = ConversationFilter { order_id: Some(Uuid::new_v4()), ..Default::default() };
    assert!(fixture.support.list(&about_an_order, None, 100).await.unwrap().is_empty());
}

#[tokio::test]
async fn typing_entries_lapse_by_themselves_or_when_cleared() {
    let fixture = Fixture::new().await;
    let talk = Uuid::new_v4();
    let (ana, bo) = (Uuid::new_v4(), Uuid::new_v4());
    fixture.support.set_typing(talk, ana, Some(Duration::from_millis(400))).await.unwrap();
    fixture.support.set_typing(talk, bo, Some(Duration::from_secs(30))).await.unwrap();
    let typing = fixture.support.typing(talk).await.unwrap();
    assert_eq!(typing.iter().map(|(id, _)| *id).collect::<HashSet<_>>(), HashSet::from([ana, bo]));
    assert!(typing.iter().all(|(_, left)| *left <= Duration::from_secs(30)));

    tokio::time::sleep(Duration::from_millis(500)).await;
    let typing = fixture.support.typing(talk).await.unwrap();
    assert_eq!(typing.iter().map(|(id, _)| *id).collect::<Vec<_>>(), [bo], "Ana's entry lapsed");
    fixture.support.set_typing(talk, bo, None).await.unwrap();
    assert!(fixture.support.typing(talk).await.unwrap().is_empty(), "Bo stopped");
    assert!(fixture.support.typing(Uuid::new_v4()).await.unwrap().is_empty());
}
