-- Named queries and their webhook subscriptions (EPCIS 2.0 REST binding, issue 16): a named
-- query keeps a SimpleEventQuery's parameters, checked when it was created, under its owner;
-- a subscription follows the event log by position (log_entries.log_index, given by the anchor
-- worker in one serial order, so nothing committed late is passed over) and keeps how far it
-- was delivered in its row, advanced only once the receiver answered 2xx.
CREATE TABLE named_queries (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    org_id      bigint NOT NULL REFERENCES orgs (id),
    name        text NOT NULL,
    -- The query as its owner gave it (its JSON), answered back by GET /queries/{name}.
    query       jsonb NOT NULL,
    -- The same as the (name, value) pairs epcis/query.py parses: [[name, value], ...].
    params      jsonb NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (org_id, name)
);

CREATE TABLE query_subscriptions (
    id                  bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    subscription_id     uuid NOT NULL UNIQUE DEFAULT gen_random_uuid(),
    query_id            bigint NOT NULL REFERENCES named_queries (id) ON DELETE CASCADE,
    dest                text NOT NULL,
    -- The subscriber's secret: every delivery is signed with it (GS1-Signature), never shown.
    signature_token     text,
    report_if_empty     boolean NOT NULL DEFAULT false,
    -- A QuerySchedule ({"hour": "1", "minute": "5"}): delivered at its times; NULL: a stream,
    -- delivered as soon as the log has new positions.
    schedule            jsonb,
    initial_record_time timestamptz,
    created_at          timestamptz NOT NULL DEFAULT now(),
    -- The last log position delivered (or passed over as not matching); -1: none yet.
    position            bigint NOT NULL,
    last_notified_at    timestamptz,
    -- Delivery state: failures in a row, when to try next, since when it fails, and a lease a
    -- worker holds while it sends (a worker killed mid-send leaves it to expire: at least once).
    attempts            integer NOT NULL DEFAULT 0,
    next_attempt_at     timestamptz NOT NULL DEFAULT now(),
    claimed_until       timestamptz,
    failing_since       timestamptz,
    last_error          text,
    -- Given up after failing too long: no more attempts until the subscriber subscribes anew.
    suspended           boolean NOT NULL DEFAULT false
);
CREATE INDEX query_subscriptions_due ON query_subscriptions (next_attempt_at) WHERE NOT suspended;
CREATE INDEX query_subscriptions_by_query ON query_subscriptions (query_id, id);
