-- The shared dispatcher: several replicas assign from these tables with row locks.
-- Capacity is enforced by the database itself (CHECK load <= capacity): whatever a replica does,
-- no person can be over capacity at any moment.
CREATE TABLE dispatch_agents (
    id              TEXT PRIMARY KEY,
    status          TEXT NOT NULL,
    overflow        BOOLEAN NOT NULL,
    routes_primary  TEXT[] NOT NULL,
    routes_any      TEXT[] NOT NULL,
    languages       TEXT[] NOT NULL,
    cap_chat        INTEGER NOT NULL,
    cap_call        INTEGER NOT NULL,
    cap_email       INTEGER NOT NULL,
    load_chat       INTEGER NOT NULL DEFAULT 0,
    load_call       INTEGER NOT NULL DEFAULT 0,
    load_email      INTEGER NOT NULL DEFAULT 0,
    last_offered_at TIMESTAMPTZ,
    wrap_up_until   TIMESTAMPTZ,
    data            JSONB NOT NULL,
    CONSTRAINT dispatch_agents_capacity CHECK (
        load_chat BETWEEN 0 AND cap_chat
        AND load_call BETWEEN 0 AND cap_call
        AND load_email BETWEEN 0 AND cap_email)
);
CREATE INDEX dispatch_agents_free ON dispatch_agents (last_offered_at NULLS FIRST, id)
    WHERE status = 'online';

CREATE TABLE dispatch_items (
    id               TEXT PRIMARY KEY,
    seq              BIGSERIAL NOT NULL,
    state            TEXT NOT NULL,
    class            SMALLINT NOT NULL,
    key              BIGINT NOT NULL,
    route            TEXT NOT NULL,
    language         TEXT NOT NULL,
    medium           TEXT NOT NULL,
    queued_since     TIMESTAMPTZ NOT NULL,
    agent            TEXT REFERENCES dispatch_agents (id),
    offer_expires_at TIMESTAMPTZ,
    -- Global order of offers, across replicas: what the VIP-first check reads.
    offer_seq        BIGINT,
    declined         TEXT[] NOT NULL DEFAULT '{}',
    -- The item's next SLA, workflow or starvation timer (`Policy::next_timer`).
    next_timer_at    TIMESTAMPTZ,
    data             JSONB NOT NULL
);
CREATE INDEX dispatch_items_timers ON dispatch_items (next_timer_at)
    WHERE next_timer_at IS NOT NULL;
CREATE INDEX dispatch_items_queue ON dispatch_items (class DESC, key DESC, seq)
    WHERE state = 'queued';
-- Finds quickly that no queued item matches a person's skills (else a scan of the whole queue).
CREATE INDEX dispatch_items_skill ON dispatch_items (route, language, medium)
    WHERE state = 'queued';
CREATE INDEX dispatch_items_offers ON dispatch_items (offer_expires_at) WHERE state = 'offered';
CREATE SEQUENCE dispatch_offer_seq;

CREATE TABLE dispatch_events (
    seq   BIGSERIAL PRIMARY KEY,
    at    TIMESTAMPTZ NOT NULL,
    kind  TEXT NOT NULL,
    item  TEXT,
    agent TEXT,
    data  JSONB NOT NULL
);
