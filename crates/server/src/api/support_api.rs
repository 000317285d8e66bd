//! `SupportService`: chat between a customer and support staff. A message is
//! stored before anyone sees it (the sender's own copy, with its seq, is its
//! acknowledgement); wake-ups through Redis tell the streams on every replica
//! to read what is new. Typing indicators live in Redis for a few seconds and
//! are never stored.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use foodfast_api::v1 as pb;
use foodfast_api::v1::support_service_server::SupportService;
use foodfast_domain::access::Principal;
use foodfast_domain::support::{self, Conversation, ConversationStatus, SendRate};
use foodfast_domain::validation::{FieldError, page_size, parse_uuid};
use foodfast_store::fanout::{Wake, conversation_topic, typing_topic};
use foodfast_store::support::{ChatSender, ConversationFilter, Sent};
use tokio::sync::{broadcast, mpsc};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};
use uuid::Uuid;

use super::{App, BoxStream, page_token};
use crate::auth::principal;
use crate::convert;
use crate::error::ApiError;
use crate::jitter::jittered;

/// How long a new stream may take to send `open`.
const OPEN_TIMEOUT: Duration = Duration::from_secs(30);
/// A typing indicator lapses this long after its last renewal (an app that
/// vanished mid-word stops "typing" by itself).
const TYPING_TTL: Duration = Duration::from_secs(6);
/// While someone keeps typing, its indicator is renewed at most this often.
const TYPING_RENEWAL: Duration = Duration::from_secs(3);
/// Messages one stream may send at once, then one per [`SEND_EVERY`].
const SEND_BURST: u32 = 10;
const SEND_EVERY: Duration = Duration::from_millis(500);
/// Messages read per round trip while catching up.
const READ_BATCH: u32 = 200;
const DEFAULT_CONVERSATIONS_PAGE: u32 = 20;
const MAX_CONVERSATIONS_PAGE: u32 = 100;
const DEFAULT_HISTORY_PAGE: u32 = 50;
const MAX_HISTORY_PAGE: u32 = 200;

pub struct SupportApi {
    app: App,
}

impl SupportApi {
    pub fn new(app: App) -> Self {
        Self { app }
    }
}

/// The conversation `caller` asks for, if it may see it: `NOT_FOUND` only
/// for operators, so a customer cannot probe for others' conversations.
async fn visible_conversation(app: &App, caller: &Principal, id: Uuid) -> Result<Conversation, ApiError> {
    match app.support.conversation(id).await? {
        Some(conversation) if conversation.may_take_part(caller) => Ok(conversation),
        None if caller.is_operator() => Err(ApiError::NotFound(format!("conversation {id} not found"))),
        _ => Err(ApiError::PermissionDenied("you may take part only in your own conversations".into())),
    }
}

#[tonic::async_trait]
impl SupportService for SupportApi {
    /// Customers (their own conversations), support and admins (any). Ends
    /// with `INVALID_ARGUMENT` when the first message is not a valid `open`,
    /// `PERMISSION_DENIED` or `NOT_FOUND` for a conversation the caller may
    /// not join, `UNAVAILABLE` when the server shuts down or the store fails
    /// (reopen with the last seq seen as `after_seq`); otherwise only when
    /// the client goes away.
    async fn chat(
        &self,
        request: Request<Streaming<pb::ChatRequest>>,
    ) -> Result<Response<BoxStream<pb::ChatResponse>>, Status> {
        let caller = principal(&request)?;
        let inbound = request.into_inner();
        let (out, receiver) = mpsc::channel(self.app.settings.watch_buffer);
        let app = self.app.clone();
        tokio::spawn(async move {
            if let Err(Stop::Failed(status)) = Chat::run(app, caller, inbound, out.clone()).await {
                let _ = out.send(Err(status)).await;
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(receiver))))
    }

    async fn list_conversations(
        &self,
        request: Request<pb::ListConversationsRequest>,
    ) -> Result<Response<pb::ListConversationsResponse>, Status> {
        let caller = principal(&request)?;
        let request = request.into_inner();
        let status = match request.status() {
            pb::ConversationStatus::Unspecified => None,
            pb::ConversationStatus::Open => Some(ConversationStatus::Open),
            pb::ConversationStatus::Closed => Some(ConversationStatus::Closed),
        };
        let order_id = match request.order_id.as_str() {
            "" => None,
            id => Some(parse_uuid("order_id", id).map_err(ApiError::from)?),
        };
        // Customers see their own; the policy layer lets only operators otherwise.
        let customer_id = (!caller.is_operator()).then_some(caller.user_id);
        let filter = ConversationFilter { customer_id, status, order_id };
        let query = format!("conversations:{customer_id:?}:{status:?}:{order_id:?}");
        let after = page_token::decode_time_page(&request.page_token, &query).map_err(ApiError::from)?;
        let limit = page_size(request.page_size, DEFAULT_CONVERSATIONS_PAGE, MAX_CONVERSATIONS_PAGE);
        let mut conversations = self.app.support.list(&filter, after, limit + 1).await.map_err(ApiError::from)?;
        let next_page_token = if conversations.len() > limit as usize {
            conversations.truncate(limit as usize);
            conversations
                .last()
                .map(|c| page_token::encode_time_page(&query, c.last_activity_at, c.id))
                .unwrap_or_default()
        } else {
            String::new()
        };
        Ok(Response::new(pb::ListConversationsResponse {
            conversations: conversations.iter().map(convert::conversation).collect(),
            next_page_token,
        }))
    }

    async fn get_conversation_history(
        &self,
        request: Request<pb::GetConversationHistoryRequest>,
    ) -> Result<Response<pb::GetConversationHistoryResponse>, Status> {
        let caller = principal(&request)?;
        let request = request.into_inner();
        let id = parse_uuid("conversation_id", &request.conversation_id).map_err(ApiError::from)?;
        let before = page_token::decode_seq_page(&request.page_token, &request.conversation_id)
            .map_err(ApiError::from)?
            .unwrap_or(i64::MAX);
        let limit = page_size(request.page_size, DEFAULT_HISTORY_PAGE, MAX_HISTORY_PAGE);
        visible_conversation(&self.app, &caller, id).await?;
        let mut messages = self.app.support.messages_before(id, before, limit + 1).await.map_err(ApiError::from)?;
        let next_page_token = if messages.len() > limit as usize {
            messages.truncate(limit as usize);
            messages.last().map(|m| page_token::encode_seq_page(&request.conversation_id, m.seq)).unwrap_or_default()
        } else {
            String::new()
        };
        Ok(Response::new(pb::GetConversationHistoryResponse {
            messages: messages.iter().map(convert::chat_message).collect(),
            next_page_token,
        }))
    }
}

/// Why a chat stream ends.
enum Stop {
    /// The client went away: nothing to tell it.
    Gone,
    Failed(Status),
}

impl From<ApiError> for Stop {
    fn from(err: ApiError) -> Self {
        Stop::Failed(err.into())
    }
}

/// One Chat stream, once its conversation is open.
struct Chat {
    app: App,
    me: ChatSender,
    /// The conversation as this stream last told it.
    conversation: Conversation,
    /// The seq of the last message sent down.
    cursor: i64,
    out: mpsc::Sender<Result<pb::ChatResponse, Status>>,
    last_sent: Instant,
    /// Who else is typing, as last told, and until when.
    others_typing: HashMap<Uuid, Instant>,
    /// When this caller's typing entry was last renewed, while it types.
    typing_renewed: Option<Instant>,
    rate: SendRate,
}

impl Chat {
    async fn run(
        app: App,
        caller: Principal,
        mut inbound: Streaming<pb::ChatRequest>,
        out: mpsc::Sender<Result<pb::ChatResponse, Status>>,
    ) -> Result<(), Stop> {
        let first = match tokio::time::timeout(OPEN_TIMEOUT, inbound.message()).await {
            Err(_) => {
                let late = FieldError::new("open", "must be the first message, within 30 s of the stream's start");
                return Err(ApiError::from(late).into());
            }
            Ok(Ok(Some(first))) => first,
            Ok(_) => return Err(Stop::Gone),
        };
        let Some(pb::chat_request::Payload::Open(open)) = first.payload else {
            return Err(ApiError::from(FieldError::new("open", "must be the first message of the stream")).into());
        };
        let (conversation, after) = Self::open(&app, &caller, &open).await?;
        let name = app.users.name(caller.user_id).await.map_err(ApiError::from)?.unwrap_or_default();
        let me =
            ChatSender { id: caller.user_id, role: caller.role, name: foodfast_domain::names::display_name(&name) };
        // Subscribed before the first read, so no change falls in between.
        let mut changed = app.fanout.subscribe(&conversation_topic(conversation.id));
        let mut typed = app.fanout.subscribe(&typing_topic(conversation.id));
        let mut chat = Chat {
            app,
            me,
            conversation: conversation.clone(),
            cursor: after,
            out,
            last_sent: Instant::now(),
            others_typing: HashMap::new(),
            typing_renewed: None,
            rate: SendRate::new(SEND_BURST, SEND_EVERY),
        };
        chat.send(pb::chat_response::Payload::Conversation(convert::conversation(&conversation))).await?;
        let outcome = chat.follow(&mut inbound, &mut changed, &mut typed).await;
        if chat.typing_renewed.is_some() {
            chat.set_typing(false).await;
        }
        outcome
    }

    /// Starts or joins the conversation `open` names; its replay starts after
    /// the seq returned.
    async fn open(app: &App, caller: &Principal, open: &pb::OpenConversation) -> Result<(Conversation, i64), ApiError> {
        let conversation = if open.conversation_id.is_empty() {
            if !support::may_start(caller) {
                return Err(ApiError::PermissionDenied(
                    "only customers start conversations; join one with open.conversation_id".into(),
                ));
            }
            let subject = support::subject("open.subject", &open.subject)?;
            let order_id = match open.order_id.as_str() {
                "" => None,
                id => {
                    let order_id = parse_uuid("open.order_id", id)?;
                    match app.orders.get(order_id).await? {
                        Some(order) if order.customer_id == caller.user_id => Some(order_id),
                        _ => {
                            return Err(ApiError::PermissionDenied("open.order_id is not one of your orders".into()));
                        }
                    }
                }
            };
            app.support.start(caller.user_id, order_id, &subject).await?
        } else {
            let id = parse_uuid("open.conversation_id", &open.conversation_id)?;
            visible_conversation(app, caller, id).await?;
            let (conversation, changed) = app
                .support
                .join(id, caller)
                .await?
                .ok_or_else(|| ApiError::NotFound(format!("conversation {id} not found")))?;
            if changed {
                app.wake(&conversation_topic(id)).await;
            }
            conversation
        };
        let after = i64::try_from(open.after_seq).unwrap_or(i64::MAX);
        if after > conversation.last_seq {
            return Err(FieldError::new(
                "open.after_seq",
                format!("is past the conversation's last message ({})", conversation.last_seq),
            )
            .into());
        }
        Ok((conversation, after))
    }

    /// Replays what the client has not seen, then relays everything new
    /// until the client goes, the server stops, or the store fails.
    async fn follow(
        &mut self,
        inbound: &mut Streaming<pb::ChatRequest>,
        changed: &mut broadcast::Receiver<Wake>,
        typed: &mut broadcast::Receiver<Wake>,
    ) -> Result<(), Stop> {
        let id = self.conversation.id;
        self.catch_up().await?;
        self.read_typing().await?;
        let mut inbound_open = true;
        loop {
            let heartbeat_due = self.last_sent + self.app.settings.watch_heartbeat;
            let typing_lapses = self.others_typing.values().min().copied();
            tokio::select! {
                _ = self.app.stopping.cancelled() => return Err(Stop::Failed(super::shutting_down())),
                _ = self.out.closed() => return Err(Stop::Gone),
                request = inbound.message(), if inbound_open => match request {
                    Ok(Some(request)) => self.handle(request).await?,
                    // The client sends no more but may still read.
                    Ok(None) => inbound_open = false,
                    Err(_) => return Err(Stop::Gone),
                },
                // Changed, lagged or reconnected: all mean "read again".
                woken = changed.recv() => {
                    if let Err(broadcast::error::RecvError::Closed) = woken {
                        *changed = self.app.fanout.subscribe(&conversation_topic(id));
                    }
                    self.catch_up().await?;
                }
                woken = typed.recv() => {
                    if let Err(broadcast::error::RecvError::Closed) = woken {
                        *typed = self.app.fanout.subscribe(&typing_topic(id));
                    }
                    self.read_typing().await?;
                }
                _ = sleep_until(typing_lapses) => self.read_typing().await?,
                _ = tokio::time::sleep(jittered(self.app.settings.watch_poll_interval)) => self.catch_up().await?,
                _ = tokio::time::sleep_until(heartbeat_due.into()) => {
                    let heartbeat = convert::heartbeat(self.app.settings.watch_heartbeat);
                    self.send(pb::chat_response::Payload::Heartbeat(heartbeat)).await?;
                }
            }
        }
    }

    /// One message up. Anything refused is answered with `rejected`; the
    /// stream goes on.
    async fn handle(&mut self, request: pb::ChatRequest) -> Result<(), Stop> {
        use pb::chat_request::Payload;
        match request.payload {
            None => self.reject("", "the message carries nothing: send `send`, `typing` or `close`").await,
            Some(Payload::Open(_)) => {
                self.reject("", "this stream's conversation is open already; open another stream for another").await
            }
            Some(Payload::Send(send)) => self.send_message(send).await,
            Some(Payload::Typing(typing)) => {
                let renewal_due = self.typing_renewed.is_none_or(|at| at.elapsed() >= TYPING_RENEWAL);
                if typing.typing && renewal_due {
                    self.set_typing(true).await;
                } else if !typing.typing && self.typing_renewed.is_some() {
                    self.set_typing(false).await;
                }
                Ok(())
            }
            Some(Payload::Close(close)) => {
                let note = match support::closing_note("close.note", &close.note) {
                    Ok(note) => note,
                    Err(err) => return self.reject("", &err.to_string()).await,
                };
                match self.app.support.close(self.conversation.id, &self.me, &note).await {
                    Ok(Some(_)) => {
                        self.app.wake(&conversation_topic(self.conversation.id)).await;
                        self.catch_up().await
                    }
                    Ok(None) => self.reject("", "the conversation is closed already").await,
                    Err(err) => {
                        tracing::warn!(error = %foodfast_store::Chain(&err), "could not close a conversation");
                        self.reject("", "the conversation could not be closed just now; try again").await
                    }
                }
            }
        }
    }

    async fn send_message(&mut self, send: pb::SendChatMessage) -> Result<(), Stop> {
        let client_id = &send.client_message_id;
        let checked = parse_uuid("send.client_message_id", client_id)
            .and_then(|id| Ok((id, support::text("send.text", &send.text)?)));
        let (client_message_id, text) = match checked {
            Ok(checked) => checked,
            Err(err) => return self.reject(client_id, &err.to_string()).await,
        };
        if !self.rate.allow(Instant::now()) {
            let reason = format!(
                "sending too fast: at most {SEND_BURST} messages at once, then one every {} ms; send it again",
                SEND_EVERY.as_millis()
            );
            return self.reject(client_id, &reason).await;
        }
        match self.app.support.send(self.conversation.id, &self.me, client_message_id, &text).await {
            Ok(Sent::New(_)) => {
                self.app.wake(&conversation_topic(self.conversation.id)).await;
                if self.typing_renewed.is_some() {
                    self.set_typing(false).await;
                }
                self.catch_up().await
            }
            // Sent down already, or about to be by the catch-up.
            Ok(Sent::Resent(_)) => self.catch_up().await,
            Ok(Sent::Closed) => {
                self.catch_up().await?;
                self.reject(client_id, "the conversation is closed; open it again to write").await
            }
            Ok(Sent::NotFound) => Err(ApiError::Internal("a conversation being written to vanished".into()).into()),
            Err(err) => {
                tracing::warn!(error = %foodfast_store::Chain(&err), "could not store a chat message");
                self.reject(client_id, "could not be stored just now; send it again with the same client_message_id")
                    .await
            }
        }
    }

    /// Sends down every message after the cursor, then the conversation if it changed.
    async fn catch_up(&mut self) -> Result<(), Stop> {
        let id = self.conversation.id;
        // The conversation before its messages: a close commits its note and
        // the status together, so a closed status read first has its note in
        // the messages read after it, and the client gets the note first.
        let now = self.app.support.conversation(id).await.map_err(ApiError::from)?;
        loop {
            let messages =
                self.app.support.messages_after(id, self.cursor, READ_BATCH).await.map_err(ApiError::from)?;
            let done = messages.len() < READ_BATCH as usize;
            for message in messages {
                self.cursor = message.seq;
                self.send(pb::chat_response::Payload::Message(convert::chat_message(&message))).await?;
            }
            if done {
                break;
            }
        }
        if let Some(now) =
            now.filter(|now| (now.status, now.agent_id) != (self.conversation.status, self.conversation.agent_id))
        {
            self.send(pb::chat_response::Payload::Conversation(convert::conversation(&now))).await?;
            self.conversation = now;
        }
        Ok(())
    }

    /// Tells the client who else started or stopped typing since it was last told.
    async fn read_typing(&mut self) -> Result<(), Stop> {
        let typing = match self.app.support.typing(self.conversation.id).await {
            Ok(typing) => typing,
            Err(err) => {
                // Indicators are a nicety: without Redis there are none.
                tracing::debug!(error = %foodfast_store::Chain(&err), "could not read who is typing");
                Vec::new()
            }
        };
        let now = Instant::now();
        let typing: HashMap<Uuid, Instant> =
            typing.into_iter().filter(|(account, _)| *account != self.me.id).map(|(a, left)| (a, now + left)).collect();
        let started: Vec<Uuid> = typing.keys().filter(|a| !self.others_typing.contains_key(a)).copied().collect();
        let stopped: Vec<Uuid> = self.others_typing.keys().filter(|a| !typing.contains_key(a)).copied().collect();
        self.others_typing = typing;
        for (account, typing) in started.into_iter().map(|a| (a, true)).chain(stopped.into_iter().map(|a| (a, false))) {
            let indicator = pb::TypingIndicator { typing, account_id: account.to_string() };
            self.send(pb::chat_response::Payload::Typing(indicator)).await?;
        }
        Ok(())
    }

    /// Records (or clears) this caller's typing and tells every replica. A
    /// failure is logged: the indicator is a nicety.
    async fn set_typing(&mut self, typing: bool) {
        self.typing_renewed = typing.then(Instant::now);
        let id = self.conversation.id;
        match self.app.support.set_typing(id, self.me.id, typing.then_some(TYPING_TTL)).await {
            Ok(()) => self.app.wake(&typing_topic(id)).await,
            Err(err) => tracing::debug!(error = %foodfast_store::Chain(&err), "could not record typing"),
        }
    }

    async fn reject(&mut self, client_message_id: &str, reason: &str) -> Result<(), Stop> {
        let rejected =
            pb::ChatMessageRejected { client_message_id: client_message_id.to_owned(), reason: reason.into() };
        self.send(pb::chat_response::Payload::Rejected(rejected)).await
    }

    async fn send(&mut self, payload: pb::chat_response::Payload) -> Result<(), Stop> {
        self.out.send(Ok(pb::ChatResponse { payload: Some(payload) })).await.map_err(|_| Stop::Gone)?;
        self.last_sent = Instant::now();
        Ok(())
    }
}

/// Sleeps until `at`, or forever when there is nothing to wait for.
async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}
