-- Conversation state between turns (owner, slots, recent turns), so a restart or another
-- replica continues a conversation where it stopped.
CREATE TABLE conversations (
    id          TEXT PRIMARY KEY NOT NULL,
    customer_id TEXT NOT NULL,
    state       TEXT NOT NULL,
    updated_at  TEXT NOT NULL
) STRICT;
CREATE INDEX conversations_by_customer ON conversations (customer_id, updated_at);
