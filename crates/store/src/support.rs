//! Support chat: conversations and their messages on CockroachDB/PostgreSQL
//! (see `migrations/cockroach/0009_support.sql`), and who is typing in Redis
//! (ephemeral, shared by every replica).

use std::time::Duration;

use chrono::{DateTime, Utc};
use foodfast_domain::access::{Principal, Role};
use foodfast_domain::support::{ChatMessage, Conversation, ConversationStatus};
use tokio_postgres::Row;
use uuid::Uuid;

use crate::postgres::{Postgres, TxError};
use crate::redis::Redis;
use crate::{StoreError, sql};

/// Who writes a message, as stored with it.
#[derive(Debug, Clone, PartialEq)]
pub struct ChatSender {
    pub id: Uuid,
    pub role: Role,
    /// As the other side sees the sender.
    pub name: String,
}

/// What became of a message sent.
#[derive(Debug, Clone, PartialEq)]
pub enum Sent {
    /// Stored with the next seq.
    New(ChatMessage),
    /// Its client id was used before by this sender here: the first one, unchanged.
    Resent(ChatMessage),
    /// The conversation is closed: nothing stored.
    Closed,
    NotFound,
}

/// Which conversations a list shows.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ConversationFilter {
    /// Only this customer's.
    pub customer_id: Option<Uuid>,
    pub status: Option<ConversationStatus>,
    pub order_id: Option<Uuid>,
}

#[derive(Clone)]
pub struct Support {
    postgres: Postgres,
    redis: Redis,
}

impl Support {
    pub fn new(postgres: Postgres, redis: Redis) -> Self {
        Self { postgres, redis }
    }

    /// Opens a conversation for `customer_id` about `order_id` (or about no
    /// order), unless one is open already: then that one, so that an app
    /// retrying a start it heard no answer to does not open a second.
    #[tracing::instrument(target = "foodfast::trace", name = "Support.start", skip_all, fields(otel.kind = "client", db.system = "postgresql"))]
    pub async fn start(
        &self,
        customer_id: Uuid,
        order_id: Option<Uuid>,
        subject: &str,
    ) -> Result<Conversation, StoreError> {
        // SERIALIZABLE: two starts at once cannot both find none and insert.
        let subject = subject.to_string();
        self.postgres
            .serializable(move |tx| {
                let subject = subject.clone();
                Box::pin(async move {
                    let open = tx.query_opt(sql::SELECT_OPEN_CONVERSATION, &[&customer_id, &order_id]).await?;
                    let row = match open {
                        Some(row) => row,
                        None => {
                            let id = Uuid::new_v4();
                            tx.query_one(sql::INSERT_CONVERSATION, &[&id, &customer_id, &order_id, &subject]).await?
                        }
                    };
                    Ok::<_, TxError>(conversation_from_row(&row)?)
                })
            })
            .await
    }

    #[tracing::instrument(target = "foodfast::trace", name = "Support.conversation", skip_all, fields(otel.kind = "client", db.system = "postgresql"))]
    pub async fn conversation(&self, id: Uuid) -> Result<Option<Conversation>, StoreError> {
        let client = self.postgres.client().await?;
        let statement = client.prepare_cached(sql::SELECT_CONVERSATION).await.map_err(StoreError::postgres)?;
        let row = client.query_opt(&statement, &[&id]).await.map_err(StoreError::postgres)?;
        row.as_ref().map(conversation_from_row).transpose()
    }

    /// `caller` joins conversation `id` (which it may take part in, checked by
    /// `allowed`): a closed one opens again, an operator becomes its agent.
    /// `None` if it does not exist; else the conversation after joining and
    /// whether joining changed it.
    #[tracing::instrument(target = "foodfast::trace", name = "Support.join", skip_all, fields(otel.kind = "client", db.system = "postgresql"))]
    pub async fn join(&self, id: Uuid, caller: &Principal) -> Result<Option<(Conversation, bool)>, StoreError> {
        let caller = *caller;
        self.postgres
            .serializable(move |tx| {
                Box::pin(async move {
                    let Some(row) = tx.query_opt(sql::SELECT_CONVERSATION, &[&id]).await? else { return Ok(None) };
                    let conversation = conversation_from_row(&row)?;
                    let join = conversation.joined_by(&caller);
                    if !conversation.may_take_part(&caller) || !join.changes_anything() {
                        return Ok(Some((conversation, false)));
                    }
                    let row = tx.query_one(sql::JOIN_CONVERSATION, &[&id, &join.new_agent, &join.reopens]).await?;
                    Ok::<_, TxError>(Some((conversation_from_row(&row)?, true)))
                })
            })
            .await
    }

    /// Stores `text` as the next message of conversation `id`, once per
    /// (`sender`, `client_message_id`).
    #[tracing::instrument(target = "foodfast::trace", name = "Support.send", skip_all, fields(otel.kind = "client", db.system = "postgresql"))]
    pub async fn send(
        &self,
        id: Uuid,
        sender: &ChatSender,
        client_message_id: Uuid,
        text: &str,
    ) -> Result<Sent, StoreError> {
        self.postgres
            .serializable(move |tx| {
                let (sender, text) = (sender.clone(), text.to_owned());
                Box::pin(async move {
                    let sender = &sender;
                    let resent = tx
                        .query_opt(sql::SELECT_CHAT_MESSAGE_BY_CLIENT_ID, &[&id, &sender.id, &client_message_id])
                        .await?;
                    if let Some(row) = resent {
                        return Ok(Sent::Resent(message_from_row(&row)?));
                    }
                    let Some(seq) = tx.query_opt(sql::NEXT_CHAT_SEQ, &[&id]).await? else {
                        let exists = tx.query_opt(sql::SELECT_CONVERSATION, &[&id]).await?.is_some();
                        return Ok(if exists { Sent::Closed } else { Sent::NotFound });
                    };
                    let seq: i64 = seq.get(0);
                    let row = insert_message(tx, id, seq, sender, &text, Some(client_message_id)).await?;
                    Ok::<_, TxError>(Sent::New(message_from_row(&row)?))
                })
            })
            .await
    }

    /// Closes conversation `id`, with `note` (if not empty) as its last
    /// message. `None` if it was not open (closed already, or missing).
    #[tracing::instrument(target = "foodfast::trace", name = "Support.close", skip_all, fields(otel.kind = "client", db.system = "postgresql"))]
    pub async fn close(
        &self,
        id: Uuid,
        sender: &ChatSender,
        note: &str,
    ) -> Result<Option<(Conversation, Option<ChatMessage>)>, StoreError> {
        self.postgres
            .serializable(move |tx| {
                let (sender, note) = (sender.clone(), note.to_owned());
                Box::pin(async move {
                    let takes_seq = i64::from(!note.is_empty());
                    let Some(row) = tx.query_opt(sql::CLOSE_CONVERSATION, &[&id, &takes_seq]).await? else {
                        return Ok(None);
                    };
                    let conversation = conversation_from_row(&row)?;
                    let note = match takes_seq {
                        0 => None,
                        _ => Some(message_from_row(
                            &insert_message(tx, id, conversation.last_seq, &sender, &note, None).await?,
                        )?),
                    };
                    Ok::<_, TxError>(Some((conversation, note)))
                })
            })
            .await
    }

    /// Messages of conversation `id` with seq above `after`, oldest first, at most `limit`.
    #[tracing::instrument(target = "foodfast::trace", name = "Support.messages_after", skip_all, fields(otel.kind = "client", db.system = "postgresql"))]
    pub async fn messages_after(&self, id: Uuid, after: i64, limit: u32) -> Result<Vec<ChatMessage>, StoreError> {
        self.messages(sql::SELECT_CHAT_MESSAGES_AFTER, id, after, limit).await
    }

    /// Messages of conversation `id` with seq below `before`, newest first, at most `limit`.
    #[tracing::instrument(target = "foodfast::trace", name = "Support.messages_before", skip_all, fields(otel.kind = "client", db.system = "postgresql"))]
    pub async fn messages_before(&self, id: Uuid, before: i64, limit: u32) -> Result<Vec<ChatMessage>, StoreError> {
        self.messages(sql::SELECT_CHAT_MESSAGES_BEFORE, id, before, limit).await
    }

    async fn messages(&self, query: &str, id: Uuid, seq: i64, limit: u32) -> Result<Vec<ChatMessage>, StoreError> {
        let client = self.postgres.client().await?;
        let statement = client.prepare_cached(query).await.map_err(StoreError::postgres)?;
        let rows = client.query(&statement, &[&id, &seq, &i64::from(limit)]).await.map_err(StoreError::postgres)?;
        rows.iter().map(message_from_row).collect()
    }

    /// A page of conversations, most recently active first, after `after`
    /// (the last one of the previous page: its activity time and id).
    #[tracing::instrument(target = "foodfast::trace", name = "Support.list", skip_all, fields(otel.kind = "client", db.system = "postgresql"))]
    pub async fn list(
        &self,
        filter: &ConversationFilter,
        after: Option<(DateTime<Utc>, Uuid)>,
        limit: u32,
    ) -> Result<Vec<Conversation>, StoreError> {
        let client = self.postgres.client().await?;
        let status = filter.status.map(ConversationStatus::as_str);
        let (after_at, after_id) = (after.map(|(at, _)| at), after.map(|(_, id)| id));
        let limit = i64::from(limit);
        let rows = match &filter.customer_id {
            Some(customer_id) => {
                let params: [&(dyn tokio_postgres::types::ToSql + Sync); 6] =
                    [&status, &filter.order_id, &after_at, &after_id, &limit, customer_id];
                client.query(sql::SELECT_CUSTOMER_CONVERSATIONS, &params).await
            }
            None => {
                client
                    .query(sql::SELECT_CONVERSATIONS, &[&status, &filter.order_id, &after_at, &after_id, &limit])
                    .await
            }
        }
        .map_err(StoreError::postgres)?;
        rows.iter().map(conversation_from_row).collect()
    }

    /// Marks `account_id` as typing in conversation `id` for `ttl`, or no
    /// longer typing. Entries past their time are pruned on the way.
    #[tracing::instrument(target = "foodfast::trace", name = "Support.set_typing", skip_all, fields(otel.kind = "client", db.system = "redis"))]
    pub async fn set_typing(&self, id: Uuid, account_id: Uuid, typing: Option<Duration>) -> Result<(), StoreError> {
        let key = typing_key(id);
        let now = Utc::now().timestamp_millis();
        let mut pipe = ::redis::pipe();
        pipe.cmd("ZREMRANGEBYSCORE").arg(&key).arg("-inf").arg(now).ignore();
        match typing {
            Some(ttl) => {
                let ttl_ms = ttl.as_millis() as i64;
                pipe.cmd("ZADD").arg(&key).arg(now + ttl_ms).arg(account_id.to_string()).ignore();
                // The whole set goes once nobody has typed for a while.
                pipe.cmd("PEXPIRE").arg(&key).arg(ttl_ms * 2).ignore();
            }
            None => {
                pipe.cmd("ZREM").arg(&key).arg(account_id.to_string()).ignore();
            }
        }
        let mut connection = self.redis.connection();
        pipe.query_async::<()>(&mut connection).await.map_err(StoreError::redis)
    }

    /// Who is typing in conversation `id`, each with how much longer.
    #[tracing::instrument(target = "foodfast::trace", name = "Support.typing", skip_all, fields(otel.kind = "client", db.system = "redis"))]
    pub async fn typing(&self, id: Uuid) -> Result<Vec<(Uuid, Duration)>, StoreError> {
        let now = Utc::now().timestamp_millis();
        let mut connection = self.redis.connection();
        let entries: Vec<(String, i64)> = ::redis::cmd("ZRANGE")
            .arg(typing_key(id))
            .arg(format!("({now}"))
            .arg("+inf")
            .arg("BYSCORE")
            .arg("WITHSCORES")
            .query_async(&mut connection)
            .await
            .map_err(StoreError::redis)?;
        Ok(entries
            .into_iter()
            .filter_map(|(account, until)| {
                let account = account.parse().ok()?;
                Some((account, Duration::from_millis(until.saturating_sub(now).max(0) as u64)))
            })
            .collect())
    }
}

fn typing_key(id: Uuid) -> String {
    format!("ff:typing:{id}")
}

async fn insert_message(
    tx: &tokio_postgres::Transaction<'_>,
    id: Uuid,
    seq: i64,
    sender: &ChatSender,
    text: &str,
    client_message_id: Option<Uuid>,
) -> Result<Row, tokio_postgres::Error> {
    tx.query_one(
        sql::INSERT_CHAT_MESSAGE,
        &[&id, &seq, &Uuid::new_v4(), &sender.id, &sender.role.as_str(), &sender.name, &text, &client_message_id],
    )
    .await
}

fn conversation_from_row(row: &Row) -> Result<Conversation, StoreError> {
    let id: Uuid = row.get(0);
    let status: &str = row.get(4);
    Ok(Conversation {
        id,
        customer_id: row.get(1),
        order_id: row.get(2),
        subject: row.get(3),
        status: ConversationStatus::parse(status)
            .ok_or_else(|| StoreError::Corrupt(format!("conversation {id}: status {status:?}")))?,
        agent_id: row.get(5),
        last_seq: row.get(6),
        created_at: row.get(7),
        last_activity_at: row.get(8),
    })
}

fn message_from_row(row: &Row) -> Result<ChatMessage, StoreError> {
    let id: Uuid = row.get(2);
    let role: &str = row.get(4);
    Ok(ChatMessage {
        conversation_id: row.get(0),
        seq: row.get(1),
        id,
        sender_id: row.get(3),
        sender_role: Role::parse(role)
            .ok_or_else(|| StoreError::Corrupt(format!("chat message {id}: sender role {role:?}")))?,
        sender_name: row.get(5),
        text: row.get(6),
        client_message_id: row.get(7),
        sent_at: row.get(8),
    })
}
