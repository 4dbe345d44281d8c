-- The event store, telemetry time series and the dead-letter table.
CREATE TABLE events (
    ingest_seq             bigint GENERATED ALWAYS AS IDENTITY,
    -- 32-byte digest of the CBV 2.0 EPCIS Event Hash ID: the event's identity.
    event_hash             bytea NOT NULL CHECK (length(event_hash) = 32),
    event_time             timestamptz NOT NULL,
    event_time_zone_offset text NOT NULL,
    event_type             text NOT NULL,
    action                 text,
    biz_step               text,
    disposition            text,
    stage                  text,
    read_point             text,
    biz_location           text,
    -- Normalised (GS1 Digital Link) instance identifiers and lot URIs the event mentions.
    epcs                   text[] NOT NULL DEFAULT '{}',
    lots                   text[] NOT NULL DEFAULT '{}',
    org_id                 bigint NOT NULL REFERENCES orgs (id),
    device_id              text NOT NULL,
    topic                  text NOT NULL,
    received_at            timestamptz NOT NULL,
    signature              bytea,
    -- The enclosing document's @context: needed to recompute the hash of user extensions.
    context                jsonb,
    event                  jsonb NOT NULL,
    -- Hypertables require the partitioning column in every unique index; the hash covers
    -- eventTime, so (event_hash, event_time) is as unique as event_hash alone.
    PRIMARY KEY (event_hash, event_time)
);
CREATE INDEX events_ingest_seq_idx ON events (ingest_seq);
CREATE INDEX events_time_idx ON events (event_time DESC);
CREATE INDEX events_epcs_idx ON events USING gin (epcs);
CREATE INDEX events_lots_idx ON events USING gin (lots);
CREATE INDEX events_biz_step_time_idx ON events (biz_step, event_time DESC);
CREATE INDEX events_biz_location_idx ON events (biz_location, event_time DESC);
CREATE INDEX events_org_time_idx ON events (org_id, event_time DESC);

CREATE TABLE telemetry (
    time        timestamptz NOT NULL,
    org_id      bigint NOT NULL REFERENCES orgs (id),
    device_id   text NOT NULL,
    metric      text NOT NULL,
    value       double precision NOT NULL,
    received_at timestamptz NOT NULL,
    -- Redelivery after a crash writes the same reading again: the key makes it a no-op.
    UNIQUE (org_id, device_id, metric, time)
);
CREATE INDEX telemetry_time_idx ON telemetry (time DESC);

CREATE TABLE dead_letters (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    received_at     timestamptz NOT NULL,
    topic           text NOT NULL,
    payload         bytea NOT NULL,
    payload_sha256  bytea NOT NULL,
    -- Position of the refused event inside the payload; -1 when the whole payload was refused.
    item_index      integer NOT NULL,
    reason          text NOT NULL,
    detail          text NOT NULL,
    UNIQUE (topic, payload_sha256, item_index, reason)
);
CREATE INDEX dead_letters_received_idx ON dead_letters (received_at DESC);
