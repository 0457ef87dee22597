-- fenliu shop schema, SQLite flavour (see migrations/postgres for the PostgreSQL twin).
--
-- Timestamps are TEXT in one fixed-width UTC format, `YYYY-MM-DDTHH:MM:SS.ffffffZ` (microseconds),
-- so that they sort as text and round-trip exactly; dates are `YYYY-MM-DD`.
-- Nested values (addresses, payment methods, variants, order lines, shipments, payments) are JSON
-- text; everything that is filtered or sorted on is a real column.

CREATE TABLE customers (
    id              TEXT NOT NULL PRIMARY KEY,
    first_name      TEXT NOT NULL,
    last_name       TEXT NOT NULL,
    email           TEXT NOT NULL,
    tier            TEXT NOT NULL,
    language        TEXT NOT NULL,
    address         TEXT NOT NULL,
    payment_methods TEXT NOT NULL
) STRICT;

CREATE TABLE products (
    id              TEXT NOT NULL PRIMARY KEY,
    name            TEXT NOT NULL,
    category        TEXT NOT NULL,
    description     TEXT NOT NULL,
    warranty_months INTEGER NOT NULL CHECK (warranty_months >= 0),
    variants        TEXT NOT NULL
) STRICT;

CREATE TABLE orders (
    id                 TEXT NOT NULL PRIMARY KEY,
    customer_id        TEXT NOT NULL,
    status             TEXT NOT NULL CHECK (status IN ('pending', 'processed', 'shipped', 'delivered',
                                                       'cancelled', 'return_requested',
                                                       'exchange_requested')),
    placed_at          TEXT NOT NULL,
    estimated_delivery TEXT,
    delivered_at       TEXT,
    address            TEXT NOT NULL,
    items              TEXT NOT NULL,
    fulfillments       TEXT NOT NULL,
    payments           TEXT NOT NULL
) STRICT;

CREATE INDEX orders_by_customer ON orders (customer_id, placed_at DESC, id);

CREATE TABLE tickets (
    -- AUTOINCREMENT: ids are never reused, even after the newest ticket is deleted.
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    customer_id TEXT NOT NULL,
    order_id    TEXT,
    kind        TEXT NOT NULL,
    department  TEXT NOT NULL,
    priority    TEXT NOT NULL,
    status      TEXT NOT NULL CHECK (status IN ('open', 'assigned', 'in_progress',
                                                'waiting_for_customer', 'resolved', 'closed')),
    subject     TEXT NOT NULL,
    description TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL,
    sla_due_at  TEXT NOT NULL
) STRICT;

CREATE INDEX tickets_by_customer ON tickets (customer_id, id DESC);

CREATE TABLE ticket_events (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    ticket_id   INTEGER NOT NULL REFERENCES tickets (id) ON DELETE CASCADE,
    occurred_at TEXT NOT NULL,
    actor       TEXT NOT NULL,
    from_status TEXT,
    to_status   TEXT NOT NULL,
    note        TEXT NOT NULL
) STRICT;

CREATE INDEX ticket_events_by_ticket ON ticket_events (ticket_id, id);
