-- Tickets as routed work: an owner, the conversation the customer hears back in, the SLA sweep's
-- marks (each reminder and breach is sent once), richer history entries (assignments, transfers,
-- SLA events), and the customer-notification outbox written in the same transaction as the change.
ALTER TABLE tickets
    ADD COLUMN assignee        TEXT,
    ADD COLUMN conversation_id TEXT,
    ADD COLUMN sla_reminded_at TIMESTAMPTZ,
    ADD COLUMN sla_breached_at TIMESTAMPTZ;

-- Department queues, and the SLA sweep's candidates.
CREATE INDEX tickets_by_department ON tickets (department, status, id);
CREATE INDEX tickets_sla_pending ON tickets (sla_due_at)
    WHERE sla_breached_at IS NULL AND status NOT IN ('resolved', 'closed');

ALTER TABLE ticket_events
    ADD COLUMN kind TEXT NOT NULL DEFAULT 'status'
        CHECK (kind IN ('created', 'status', 'assigned', 'transferred', 'sla_reminder', 'sla_breach')),
    ADD COLUMN from_department TEXT,
    ADD COLUMN to_department   TEXT,
    ADD COLUMN assignee        TEXT;
UPDATE ticket_events SET kind = 'created' WHERE from_status IS NULL;

-- History is append-only.
CREATE FUNCTION ticket_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'ticket_events is append-only';
END
$$;
CREATE TRIGGER ticket_events_append_only BEFORE UPDATE ON ticket_events
    FOR EACH ROW EXECUTE FUNCTION ticket_events_append_only();

CREATE TABLE ticket_notifications (
    id              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    ticket_id       BIGINT NOT NULL REFERENCES tickets (id) ON DELETE CASCADE,
    customer_id     TEXT COLLATE "C" NOT NULL,
    conversation_id TEXT COLLATE "C" NOT NULL,
    kind            TEXT NOT NULL CHECK (kind IN ('status', 'transferred')),
    status          TEXT NOT NULL,
    department      TEXT NOT NULL,
    created_at      TIMESTAMPTZ NOT NULL,
    -- A deliverer's claim: nobody else takes the row before this time.
    claimed_until   TIMESTAMPTZ,
    attempts        INTEGER NOT NULL DEFAULT 0,
    delivered_at    TIMESTAMPTZ
);

CREATE INDEX ticket_notifications_pending ON ticket_notifications (id) WHERE delivered_at IS NULL;
