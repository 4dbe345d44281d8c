-- Supply-chain finance: products, lots, supervised warehouses, policies, credit lines, pledges,
-- applications and decisions, money movements, receivables, risk flags, margin calls, and the
-- append-only journal every state change is written to. Money is integer minor units.

ALTER TABLE orgs ADD COLUMN chain_address text CHECK (chain_address ~ '^0x[0-9a-f]{40}$');

CREATE TABLE products (
    gtin            text PRIMARY KEY CHECK (gtin ~ '^[0-9]{14}$'),
    owner_org_id    bigint NOT NULL REFERENCES orgs (id),
    name            text NOT NULL,
    category        text NOT NULL,
    unit_price_minor bigint NOT NULL CHECK (unit_price_minor >= 0),
    currency        text NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    min_temp_c      numeric,
    max_temp_c      numeric,
    shelf_life_days integer CHECK (shelf_life_days > 0)
);

CREATE TABLE warehouses (
    location        text PRIMARY KEY,          -- normalised GS1 Digital Link of the site (GLN)
    operator_org_id bigint NOT NULL REFERENCES orgs (id),
    name            text NOT NULL
);

-- Devices whose telemetry describes the conditions at a warehouse.
CREATE TABLE warehouse_sensors (
    org_id      bigint NOT NULL,
    device_id   text NOT NULL,
    location    text NOT NULL REFERENCES warehouses (location),
    PRIMARY KEY (org_id, device_id),
    FOREIGN KEY (org_id, device_id) REFERENCES devices (org_id, device_id)
);

CREATE TABLE supervised_warehouses (
    financier_org_id bigint NOT NULL REFERENCES orgs (id),
    location         text NOT NULL REFERENCES warehouses (location),
    PRIMARY KEY (financier_org_id, location)
);

CREATE TABLE policies (
    financier_org_id       bigint NOT NULL REFERENCES orgs (id),
    category               text NOT NULL,   -- '*' is the financier's default
    advance_rate           numeric NOT NULL CHECK (advance_rate BETWEEN 0 AND 1),
    haircut                numeric NOT NULL CHECK (haircut BETWEEN 0 AND 1),
    ltv_cap                numeric NOT NULL CHECK (ltv_cap BETWEEN 0 AND 1),
    breach_tolerance_s     integer NOT NULL CHECK (breach_tolerance_s >= 0),
    inspection_freshness_s integer NOT NULL CHECK (inspection_freshness_s > 0),
    receivable_advance_rate numeric NOT NULL CHECK (receivable_advance_rate BETWEEN 0 AND 1),
    PRIMARY KEY (financier_org_id, category)
);

CREATE TABLE lots (
    lot_uri          text PRIMARY KEY,        -- https://id.gs1.org/01/{gtin}/10/{lot}
    gtin             text NOT NULL,
    lot              text NOT NULL,
    quantity         integer NOT NULL DEFAULT 0 CHECK (quantity >= 0),
    location         text,
    custody          text,                    -- 'warehouse', 'in_transit', 'delivered', 'sold'
    best_before      date,
    recalled         boolean NOT NULL DEFAULT false,
    last_inspection_disposition text,
    last_inspection_time timestamptz,
    last_inspection_hash bytea,
    updated_log_index bigint
);

-- Which lot an instance identifier (item or pallet) belongs to.
CREATE TABLE lot_members (
    epc      text PRIMARY KEY,
    lot_uri  text NOT NULL REFERENCES lots (lot_uri)
);
CREATE INDEX lot_members_lot_idx ON lot_members (lot_uri);

-- Event hashes each lot's state rests on (evidence of decisions).
CREATE TABLE lot_evidence (
    lot_uri    text NOT NULL REFERENCES lots (lot_uri),
    log_index  bigint NOT NULL,
    event_hash bytea NOT NULL,
    biz_step   text,
    PRIMARY KEY (lot_uri, log_index)
);

CREATE TABLE credit_lines (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    financier_org_id bigint NOT NULL REFERENCES orgs (id),
    borrower_org_id  bigint NOT NULL REFERENCES orgs (id),
    currency         text NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    limit_minor      bigint NOT NULL CHECK (limit_minor >= 0),
    drawn_minor      bigint NOT NULL DEFAULT 0 CHECK (drawn_minor >= 0),
    status           text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'frozen', 'closed')),
    opened_at        timestamptz NOT NULL DEFAULT now(),
    UNIQUE (financier_org_id, borrower_org_id, currency)
);

CREATE TABLE pledges (
    lot_uri      text NOT NULL REFERENCES lots (lot_uri),
    line_id      bigint NOT NULL REFERENCES credit_lines (id),
    lot_key      bytea NOT NULL CHECK (length(lot_key) = 32),
    location     text NOT NULL,               -- the supervised warehouse it is pledged in
    pledged_at   timestamptz NOT NULL DEFAULT now(),
    chain_tx     bytea,
    released_at  timestamptz,
    release_tx   bytea
);
-- One live pledge per lot, whatever the bank: the database agrees with PledgeRegistry.
CREATE UNIQUE INDEX pledges_one_live ON pledges (lot_uri) WHERE released_at IS NULL;

CREATE TABLE applications (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    line_id         bigint NOT NULL REFERENCES credit_lines (id),
    lot_uri         text NOT NULL REFERENCES lots (lot_uri),
    requested_minor bigint NOT NULL CHECK (requested_minor > 0),
    guarantor       boolean NOT NULL DEFAULT false,
    created_at      timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE decisions (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    application_id  bigint NOT NULL REFERENCES applications (id),
    kind            text NOT NULL CHECK (kind IN ('approve', 'partial', 'decline', 'refer')),
    approved_minor  bigint NOT NULL CHECK (approved_minor >= 0),
    reasons         text[] NOT NULL,
    evidence        bytea[] NOT NULL,
    collateral_minor bigint NOT NULL,
    decided_at      timestamptz NOT NULL DEFAULT now()
);

-- Drawdowns (+) and repayments (-) of a line, and proceeds routed to it.
CREATE TABLE line_movements (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    line_id     bigint NOT NULL REFERENCES credit_lines (id),
    kind        text NOT NULL CHECK (kind IN ('drawdown', 'repayment', 'proceeds_due')),
    amount_minor bigint NOT NULL CHECK (amount_minor > 0),
    decision_id bigint REFERENCES decisions (id),
    at          timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE receivables (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    lot_uri      text NOT NULL REFERENCES lots (lot_uri),
    purchase_order text NOT NULL,
    amount_minor bigint NOT NULL CHECK (amount_minor >= 0),
    currency     text NOT NULL,
    advance_minor bigint NOT NULL CHECK (advance_minor >= 0),
    event_hash   bytea NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    UNIQUE (lot_uri, purchase_order)
);

CREATE TABLE risk_flags (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    lot_uri     text REFERENCES lots (lot_uri),
    line_id     bigint REFERENCES credit_lines (id),
    kind        text NOT NULL,
    detail      text NOT NULL,
    event_hash  bytea,
    raised_at   timestamptz NOT NULL DEFAULT now(),
    cleared_at  timestamptz
);
-- A condition is flagged once while it is open (replays and restarts add nothing).
CREATE UNIQUE INDEX risk_flags_one_open ON risk_flags (coalesce(lot_uri, ''), coalesce(line_id, 0), kind)
    WHERE cleared_at IS NULL;
CREATE INDEX risk_flags_raised_idx ON risk_flags (raised_at);

CREATE TABLE margin_calls (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    line_id       bigint NOT NULL REFERENCES credit_lines (id),
    lot_uri       text NOT NULL REFERENCES lots (lot_uri),
    shortfall_minor bigint NOT NULL CHECK (shortfall_minor > 0),
    reason        text NOT NULL,
    raised_at     timestamptz NOT NULL DEFAULT now(),
    settled_at    timestamptz
);
CREATE UNIQUE INDEX margin_calls_one_open ON margin_calls (line_id, lot_uri) WHERE settled_at IS NULL;

-- Append-only: who did what, when, why, on what evidence.
CREATE TABLE finance_journal (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at          timestamptz NOT NULL DEFAULT now(),
    actor       text NOT NULL,               -- an org slug or 'finance-worker'
    action      text NOT NULL,
    subject     text NOT NULL,
    detail      jsonb NOT NULL,
    evidence    bytea[] NOT NULL DEFAULT '{}',
    log_index   bigint                       -- the log position that caused it, if any
);
CREATE UNIQUE INDEX finance_journal_once_per_event
    ON finance_journal (log_index, action, subject) WHERE log_index IS NOT NULL;

-- Durable cursors of the workers that follow the event log.
CREATE TABLE log_cursors (
    worker     text PRIMARY KEY,
    next_index bigint NOT NULL CHECK (next_index >= 0),
    updated_at timestamptz NOT NULL DEFAULT now()
);
