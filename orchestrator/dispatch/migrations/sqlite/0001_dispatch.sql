-- The embedded dispatcher's state: people and live work as JSON documents (the state machine
-- lives in memory; this is its write-ahead copy), plus the event log.
CREATE TABLE dispatch_agents (
    id   TEXT PRIMARY KEY NOT NULL,
    data TEXT NOT NULL
);

CREATE TABLE dispatch_items (
    id    TEXT PRIMARY KEY NOT NULL,
    state TEXT NOT NULL,
    data  TEXT NOT NULL
);
CREATE INDEX dispatch_items_state ON dispatch_items (state);

CREATE TABLE dispatch_events (
    seq  INTEGER PRIMARY KEY AUTOINCREMENT,
    at   TEXT NOT NULL,
    kind TEXT NOT NULL,
    data TEXT NOT NULL
);
