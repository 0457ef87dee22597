-- Conversation state between turns (owner, slots, recent turns), so a restart or another
-- replica continues a conversation where it stopped.
CREATE TABLE conversations (
    id          TEXT COLLATE "C" PRIMARY KEY,
    customer_id TEXT COLLATE "C" NOT NULL,
    state       JSONB NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL
);
CREATE INDEX conversations_by_customer ON conversations (customer_id, updated_at);
