-- The global append-only log of event positions, its anchored batches, and chain deployments.

-- Outbox filled by ingest in the transaction that stores a new event; the anchor leader moves
-- rows from here to log_entries in ingest order. Kept small: rows leave once positioned.
CREATE TABLE log_queue (
    ingest_seq  bigint PRIMARY KEY,
    event_hash  bytea NOT NULL UNIQUE CHECK (length(event_hash) = 32),
    event_time  timestamptz NOT NULL
);

CREATE TABLE log_entries (
    log_index   bigint PRIMARY KEY CHECK (log_index >= 0),
    event_hash  bytea NOT NULL UNIQUE CHECK (length(event_hash) = 32),
    event_time  timestamptz NOT NULL,
    assigned_at timestamptz NOT NULL DEFAULT now()
);

-- A contract deployment this database anchors to. A reset devnet is a new deployment: the
-- batches of the old one stay for the record but prove nothing any more.
CREATE TABLE chain_deployments (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    chain_id        bigint NOT NULL,
    genesis_hash    bytea NOT NULL,
    anchor_address  text NOT NULL CHECK (anchor_address ~ '^0x[0-9a-fA-F]{40}$'),
    pledge_address  text NOT NULL CHECK (pledge_address ~ '^0x[0-9a-fA-F]{40}$'),
    anchor_code_hash bytea NOT NULL,
    pledge_code_hash bytea NOT NULL,
    deployed_block  bigint NOT NULL,
    deployed_at     timestamptz NOT NULL DEFAULT now(),
    current         boolean NOT NULL DEFAULT true
);
CREATE UNIQUE INDEX chain_deployments_one_current ON chain_deployments (current) WHERE current;

CREATE TABLE anchor_batches (
    deployment_id bigint NOT NULL REFERENCES chain_deployments (id),
    batch_id      bigint NOT NULL CHECK (batch_id >= 0),
    first_index   bigint NOT NULL CHECK (first_index >= 0),
    count         integer NOT NULL CHECK (count > 0),
    root          bytea NOT NULL CHECK (length(root) = 32),
    tx_hash       bytea NOT NULL CHECK (length(tx_hash) = 32),
    block_number  bigint NOT NULL,
    anchored_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (deployment_id, batch_id),
    UNIQUE (deployment_id, first_index)
);

-- Latest state each worker reports (for /readyz, metrics and operators).
CREATE TABLE worker_status (
    worker      text PRIMARY KEY,
    state       text NOT NULL,
    detail      text NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now()
);
