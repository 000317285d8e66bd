//! SupportService on the real stores: a customer and an agent on different
//! replicas chat, every message stored (with its seq) before anyone sees it;
//! a resent message is stored once; typing indicators cross replicas and
//! lapse; a closed conversation refuses messages until it is opened again;
//! a reconnect replays only what was missed; a retried start rejoins the open
//! conversation; bad input is rejected without ending the stream; nobody
//! reads another customer's conversation.

mod common;

use std::time::Duration;

use common::{Authed, Kitchen};
use foodfast_api::v1 as pb;
use foodfast_api::v1::chat_response::Payload;
use foodfast_api::v1::support_service_client::SupportServiceClient;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Code, Status, Streaming};
use uuid::Uuid;

/// One Chat stream, as an app holds it.
struct Chat {
    up: mpsc::Sender<pb::ChatRequest>,
    down: Streaming<pb::ChatResponse>,
}

impl Chat {
    /// Opens a stream whose first message is `open`.
    async fn open(client: &mut SupportServiceClient<Authed>, open: pb::OpenConversation) -> Chat {
        Self::first(client, pb::chat_request::Payload::Open(open)).await
    }

    /// Opens a stream whose first message is `payload`.
    async fn first(client: &mut SupportServiceClient<Authed>, payload: pb::chat_request::Payload) -> Chat {
        let (up, requests) = mpsc::channel(16);
        up.send(pb::ChatRequest { payload: Some(payload) }).await.unwrap();
        let down = client.chat(ReceiverStream::new(requests)).await.unwrap().into_inner();
        Chat { up, down }
    }

    async fn up(&self, payload: pb::chat_request::Payload) {
        self.up.send(pb::ChatRequest { payload: Some(payload) }).await.unwrap();
    }

    /// Sends `text` with a new client id, which it returns.
    async fn say(&self, text: &str) -> String {
        let client_message_id = Uuid::new_v4().to_string();
        self.say_as(&client_message_id, text).await;
        client_message_id
    }

    async fn say_as(&self, client_message_id: &str, text: &str) {
        let send = pb::SendChatMessage { client_message_id: client_message_id.into(), text: text.into() };
        self.up(pb::chat_request::Payload::Send(send)).await;
    }

    async fn typing(&self, typing: bool) {
        self.up(pb::chat_request::Payload::Typing(pb::TypingIndicator { typing, account_id: String::new() })).await;
    }

    /// The next message down (heartbeats skipped), or how the stream ended.
    async fn next(&mut self) -> Result<Payload, Status> {
        loop {
            let message = tokio::time::timeout(Duration::from_secs(15), self.down.message())
                .await
                .expect("the server answers within 15 s")?
                .ok_or_else(|| Status::cancelled("the stream ended"))?;
            match message.payload.expect("every message carries something") {
                Payload::Heartbeat(_) => continue,
                payload => return Ok(payload),
            }
        }
    }

    async fn conversation(&mut self) -> pb::Conversation {
        match self.next().await.unwrap() {
            Payload::Conversation(conversation) => conversation,
            other => panic!("expected the conversation, got {other:?}"),
        }
    }

    async fn message(&mut self) -> pb::ChatMessage {
        match self.next().await.unwrap() {
            Payload::Message(message) => message,
            other => panic!("expected a message, got {other:?}"),
        }
    }

    async fn typing_indicator(&mut self) -> pb::TypingIndicator {
        match self.next().await.unwrap() {
            Payload::Typing(typing) => typing,
            other => panic!("expected a typing indicator, got {other:?}"),
        }
    }

    async fn rejected(&mut self) -> pb::ChatMessageRejected {
        match self.next().await.unwrap() {
            Payload::Rejected(rejected) => rejected,
            other => panic!("expected a rejection, got {other:?}"),
        }
    }

    /// How the server ended the stream.
    async fn ended(&mut self) -> Status {
        match self.next().await {
            Err(status) => status,
            Ok(payload) => panic!("expected the stream to end, got {payload:?}"),
        }
    }
}

fn new_conversation(subject: &str, order_id: &str) -> pb::OpenConversation {
    pb::OpenConversation { subject: subject.into(), order_id: order_id.into(), ..Default::default() }
}

fn join(conversation_id: &str, after_seq: u64) -> pb::OpenConversation {
    pb::OpenConversation { conversation_id: conversation_id.into(), after_seq, ..Default::default() }
}

#[tokio::test]
async fn a_customer_and_an_agent_on_different_replicas_chat_and_every_message_is_stored_first() {
    let kitchen = Kitchen::open().await;
    let server = &kitchen.server;
    let replica = server.spawn_replica().await;
    let customer = &kitchen.customer;
    let agent = server.support().await;
    let order_id = kitchen.placed_order().await;

    let mut mine = Chat::open(&mut server.support_chat(Some(customer)), new_conversation("Cold soup", &order_id)).await;
    let opened = mine.conversation().await;
    assert_eq!(opened.status(), pb::ConversationStatus::Open);
    assert_eq!((opened.order_id.as_str(), opened.subject.as_str()), (order_id.as_str(), "Cold soup"));
    assert_eq!((opened.customer_id, opened.agent_id.as_str(), opened.last_seq), (customer.user_id.to_string(), "", 0));
    let id = opened.conversation_id;

    let asked = mine.say("  Where is my soup?  ").await;
    let own = mine.message().await;
    assert_eq!((own.seq, own.text.as_str(), own.client_message_id.as_str()), (1, "Where is my soup?", asked.as_str()));
    assert_eq!((own.sender_role(), own.sender_name.as_str()), (pb::Role::Customer, "Test P."), "as others see names");

    // The agent, on the other replica, joins: it becomes the agent and gets the history.
    let mut theirs = Chat::open(&mut server.support_chat_at(&replica, Some(&agent)), join(&id, 0)).await;
    let joined = theirs.conversation().await;
    assert_eq!((joined.agent_id.clone(), joined.last_seq), (agent.user_id.to_string(), 1));
    assert_eq!(theirs.message().await, own, "replayed as stored");
    assert_eq!(mine.conversation().await.agent_id, agent.user_id.to_string(), "the customer sees who answers");

    theirs.typing(true).await;
    let typing = mine.typing_indicator().await;
    assert_eq!((typing.typing, typing.account_id), (true, agent.user_id.to_string()));
    let answered = theirs.say("Checking with the kitchen.").await;
    let answer = theirs.message().await;
    assert_eq!(
        (answer.seq, answer.client_message_id.clone()),
        (2, answered),
        "the sender's copy is its acknowledgement"
    );
    // Sending ends typing: the customer hears both, in either order.
    let (mut got_answer, mut typing_ended) = (false, false);
    while !(got_answer && typing_ended) {
        match mine.next().await.unwrap() {
            Payload::Message(message) => {
                assert_eq!(message, answer);
                got_answer = true;
            }
            Payload::Typing(typing) => {
                assert_eq!((typing.typing, typing.account_id.clone()), (false, agent.user_id.to_string()));
                typing_ended = true;
            }
            other => panic!("{other:?}"),
        }
    }

    // A resend (the app did not see its copy in time) is stored once.
    mine.say_as(&asked, "Where is my soup?").await;
    let thanks = mine.say("Thanks!").await;
    let next = mine.message().await;
    assert_eq!((next.seq, next.client_message_id), (3, thanks), "the resend took no number");
    assert_eq!(theirs.message().await.seq, 3, "next after its own copy: nobody is told of their own typing");

    // The agent closes it with a note: it is the last message, and the conversation closes.
    let close = pb::CloseConversation { note: "Refunded the soup.".into() };
    theirs.up(pb::chat_request::Payload::Close(close)).await;
    for chat in [&mut mine, &mut theirs] {
        let note = chat.message().await;
        assert_eq!((note.seq, note.text.as_str(), note.client_message_id.as_str()), (4, "Refunded the soup.", ""));
        let closed = chat.conversation().await;
        assert_eq!((closed.status(), closed.last_seq), (pb::ConversationStatus::Closed, 4));
    }
    let late = mine.say("One more thing").await;
    let rejected = mine.rejected().await;
    assert_eq!(rejected.client_message_id, late);
    assert!(rejected.reason.contains("closed"), "{}", rejected.reason);

    // The history, newest first, in pages.
    let mut support = server.support_chat(Some(customer));
    let request = pb::GetConversationHistoryRequest { conversation_id: id.clone(), page_size: 3, ..Default::default() };
    let page = support.get_conversation_history(request.clone()).await.unwrap().into_inner();
    assert_eq!(page.messages.iter().map(|m| m.seq).collect::<Vec<_>>(), [4, 3, 2]);
    let rest = pb::GetConversationHistoryRequest { page_token: page.next_page_token, ..request };
    let rest = support.get_conversation_history(rest).await.unwrap().into_inner();
    assert_eq!(rest.messages, [own]);
    assert!(rest.next_page_token.is_empty());

    // The customer comes back after seq 2: the conversation reopens and only 3 and 4 are replayed.
    drop(mine);
    let mut again = Chat::open(&mut server.support_chat(Some(customer)), join(&id, 2)).await;
    let reopened = again.conversation().await;
    assert_eq!((reopened.status(), reopened.last_seq), (pb::ConversationStatus::Open, 4));
    assert_eq!(again.message().await.seq, 3);
    assert_eq!(again.message().await.seq, 4);
    assert_eq!(theirs.conversation().await.status(), pb::ConversationStatus::Open, "the agent sees it reopen");
    again.say("It came, thanks").await;
    assert_eq!(again.message().await.seq, 5);
    assert_eq!(theirs.message().await.seq, 5);
}

#[tokio::test]
async fn bad_input_is_rejected_and_the_stream_goes_on() {
    let kitchen = Kitchen::open().await;
    let server = &kitchen.server;
    let customer = &kitchen.customer;
    let mut client = server.support_chat(Some(customer));

    let mut chat = Chat::first(&mut client, pb::chat_request::Payload::Typing(pb::TypingIndicator::default())).await;
    let status = chat.ended().await;
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(status.message().contains("first message"), "{}", status.message());

    let status = Chat::open(&mut client, new_conversation("   ", "")).await.ended().await;
    assert_eq!((status.code(), status.message()), (Code::InvalidArgument, "open.subject is required"));

    let mut chat = Chat::open(&mut client, new_conversation("Missing fork", "")).await;
    let id = chat.conversation().await.conversation_id;
    chat.say_as("not-a-uuid", "hello").await;
    let rejected = chat.rejected().await;
    assert_eq!(rejected.client_message_id, "not-a-uuid");
    assert!(rejected.reason.starts_with("send.client_message_id is not a UUID"), "{}", rejected.reason);
    let long = chat.say(&"a".repeat(4_001)).await;
    let rejected = chat.rejected().await;
    assert_eq!(rejected.client_message_id, long);
    assert_eq!(rejected.reason, "send.text must be at most 4000 characters long (it has 4001)");
    chat.say("   ").await;
    assert_eq!(chat.rejected().await.reason, "send.text is required");
    chat.up(pb::chat_request::Payload::Open(join(&id, 0))).await;
    assert!(chat.rejected().await.reason.contains("open already"));

    // Still open: the next message goes through, as number 1.
    chat.say("hello").await;
    assert_eq!(chat.message().await.seq, 1);
    // Sending too fast: past the burst, messages are refused, not stored.
    let burst: Vec<String> = futures::future::join_all((0..12).map(|n| {
        let chat = &chat;
        async move { chat.say(&format!("spam {n}")).await }
    }))
    .await;
    let (mut stored, mut refused) = (0, 0);
    for _ in &burst {
        match chat.next().await.unwrap() {
            Payload::Message(_) => stored += 1,
            Payload::Rejected(rejected) => {
                assert!(rejected.reason.starts_with("sending too fast"), "{}", rejected.reason);
                refused += 1;
            }
            other => panic!("{other:?}"),
        }
    }
    assert!(refused >= 2 && stored + refused == 12, "{stored} stored, {refused} refused");

    let status = Chat::open(&mut client, join(&id, 1_000)).await.ended().await;
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(status.message().starts_with("open.after_seq is past the conversation's last message"));
}

#[tokio::test]
async fn nobody_reads_or_joins_another_customers_conversation() {
    let kitchen = Kitchen::open().await;
    let server = &kitchen.server;
    let customer = &kitchen.customer;
    let stranger = server.customer().await;
    let agent = server.support().await;
    let order_id = kitchen.placed_order().await;
    let mut chat = Chat::open(&mut server.support_chat(Some(customer)), new_conversation("Wrong drink", "")).await;
    let id = chat.conversation().await.conversation_id;

    let status = Chat::open(&mut server.support_chat(Some(&stranger)), join(&id, 0)).await.ended().await;
    assert_eq!(status.code(), Code::PermissionDenied);
    let about_theirs = new_conversation("Not mine", &order_id);
    let status = Chat::open(&mut server.support_chat(Some(&stranger)), about_theirs).await.ended().await;
    assert_eq!((status.code(), status.message()), (Code::PermissionDenied, "open.order_id is not one of your orders"));
    let status = Chat::open(&mut server.support_chat(Some(&agent)), new_conversation("Hi", "")).await.ended().await;
    assert_eq!(status.code(), Code::PermissionDenied, "agents join conversations, customers start them");

    let mut theirs = server.support_chat(Some(&stranger));
    let history = pb::GetConversationHistoryRequest { conversation_id: id.clone(), ..Default::default() };
    assert_eq!(theirs.get_conversation_history(history.clone()).await.unwrap_err().code(), Code::PermissionDenied);
    let missing =
        pb::GetConversationHistoryRequest { conversation_id: Uuid::new_v4().to_string(), ..Default::default() };
    assert_eq!(
        theirs.get_conversation_history(missing.clone()).await.unwrap_err().code(),
        Code::PermissionDenied,
        "a customer cannot tell a missing conversation from another's"
    );
    let mut ops = server.support_chat(Some(&agent));
    assert_eq!(ops.get_conversation_history(missing).await.unwrap_err().code(), Code::NotFound);
    assert!(ops.get_conversation_history(history).await.is_ok());

    let listed = |response: pb::ListConversationsResponse| {
        response.conversations.into_iter().map(|c| c.conversation_id).collect::<Vec<_>>()
    };
    let all = pb::ListConversationsRequest::default();
    assert!(listed(theirs.list_conversations(all.clone()).await.unwrap().into_inner()).is_empty());
    assert_eq!(
        listed(server.support_chat(Some(customer)).list_conversations(all.clone()).await.unwrap().into_inner()),
        std::slice::from_ref(&id)
    );
    assert!(listed(ops.list_conversations(all).await.unwrap().into_inner()).contains(&id), "operators see every one");
    let bad = pb::ListConversationsRequest { order_id: "x".into(), ..Default::default() };
    assert_eq!(ops.list_conversations(bad).await.unwrap_err().code(), Code::InvalidArgument);
}

#[tokio::test]
async fn typing_stops_when_the_typist_leaves_or_goes_quiet() {
    let kitchen = Kitchen::open().await;
    let server = &kitchen.server;
    let customer = &kitchen.customer;
    let agent = server.support().await;
    let mut mine = Chat::open(&mut server.support_chat(Some(customer)), new_conversation("Allergy", "")).await;
    let id = mine.conversation().await.conversation_id;
    let mut theirs = Chat::open(&mut server.support_chat(Some(&agent)), join(&id, 0)).await;
    theirs.conversation().await;
    mine.conversation().await;

    // The agent's app vanishes mid-word: its typing ends with its stream.
    theirs.typing(true).await;
    assert!(mine.typing_indicator().await.typing);
    drop(theirs);
    let stopped = mine.typing_indicator().await;
    assert_eq!((stopped.typing, stopped.account_id), (false, agent.user_id.to_string()));

    // An app that goes quiet without saying so stops "typing" when its entry lapses (6 s).
    let theirs = Chat::open(&mut server.support_chat(Some(&agent)), join(&id, 0)).await;
    theirs.typing(true).await;
    let started = std::time::Instant::now();
    assert!(mine.typing_indicator().await.typing);
    assert!(!mine.typing_indicator().await.typing);
    assert!(started.elapsed() >= Duration::from_secs(5), "lapsed after {:?}", started.elapsed());
    drop(theirs);
}

#[tokio::test]
async fn a_start_retried_rejoins_the_open_conversation_instead_of_opening_a_second() {
    let kitchen = Kitchen::open().await;
    let server = &kitchen.server;
    let customer = &kitchen.customer;
    let order_id = kitchen.placed_order().await;
    let start = |subject: &'static str, order_id: String| async move {
        let mut chat = Chat::open(&mut server.support_chat(Some(customer)), new_conversation(subject, &order_id)).await;
        (chat.conversation().await, chat)
    };

    // Two starts about the same order at once (an app retrying one it heard nothing back from).
    let ((first, mut chat), (second, _)) =
        tokio::join!(start("Cold soup", order_id.clone()), start("Cold soup", order_id.clone()));
    assert_eq!(first.conversation_id, second.conversation_id, "one conversation for both starts");
    let about_nothing = start("A question", String::new()).await.0;
    assert_ne!(about_nothing.conversation_id, first.conversation_id, "another subject: another conversation");

    // Once that one is closed, a new start opens a new one.
    chat.up(pb::chat_request::Payload::Close(pb::CloseConversation::default())).await;
    assert_eq!(chat.conversation().await.status(), pb::ConversationStatus::Closed);
    let (third, _) = start("Cold soup again", order_id.clone()).await;
    assert_ne!(third.conversation_id, first.conversation_id);
    assert_eq!(third.subject, "Cold soup again");
}
