-- Marketing preferences per customer (newsletter opt-in/out), one JSON document each. A customer
-- without a row never chose: nothing is sent until they opt in.
CREATE TABLE customer_preferences (
    customer_id TEXT NOT NULL PRIMARY KEY REFERENCES customers (id),
    preferences TEXT NOT NULL,
    updated_at  TEXT NOT NULL
) STRICT;
