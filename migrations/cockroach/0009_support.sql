-- Support chat. A conversation numbers its messages from 1 (last_seq is
-- taken in the same transaction as the insert), so readers resume after the
-- last seq they saw and replay nothing twice.
CREATE TABLE IF NOT EXISTS conversations (
    id UUID PRIMARY KEY,
    customer_id UUID NOT NULL REFERENCES users (id),
    order_id UUID REFERENCES orders (id),
    subject TEXT NOT NULL,
    -- open, closed
    status TEXT NOT NULL,
    -- The support agent who last joined.
    agent_id UUID REFERENCES users (id),
    last_seq INT8 NOT NULL DEFAULT 0,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    last_activity_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE INDEX IF NOT EXISTS conversations_activity_idx ON conversations (last_activity_at DESC, id DESC);
CREATE INDEX IF NOT EXISTS conversations_customer_idx ON conversations (customer_id, last_activity_at DESC, id DESC);

CREATE TABLE IF NOT EXISTS chat_messages (
    conversation_id UUID NOT NULL REFERENCES conversations (id),
    seq INT8 NOT NULL,
    id UUID NOT NULL UNIQUE,
    sender_id UUID NOT NULL REFERENCES users (id),
    sender_role TEXT NOT NULL,
    sender_name TEXT NOT NULL,
    body TEXT NOT NULL,
    -- The sender's own id for it: a resend is stored once. NULL for a closing note.
    client_message_id UUID,
    sent_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (conversation_id, seq),
    UNIQUE (conversation_id, sender_id, client_message_id)
);
