-- The WebSocket streams open now, across every API process: an organisation's cap
-- (TRACEFIN_API_MAX_STREAMS_PER_ORG) counts these rows, not one process's memory, so N API
-- processes behind a balancer no longer allow N times the cap. A stream renews its lease while
-- it lives and deletes its row when it ends; the row of a process that died stops counting
-- once its lease lapses.
CREATE TABLE open_streams (
    id          bigserial PRIMARY KEY,
    org_id      bigint NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    opened_at   timestamptz NOT NULL DEFAULT now(),
    lease_until timestamptz NOT NULL
);
CREATE INDEX open_streams_org_idx ON open_streams (org_id, lease_until);
