-- Offers (issue 14): every approval, full or partial, is an offer; nothing is drawn until the
-- borrower accepts it, which creates the loan. An offer expires after the financier's policy's
-- validity; at acceptance the application is decided again on the goods and line as they are
-- then, and an offer they no longer support is withdrawn.
CREATE TABLE offers (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    application_id bigint NOT NULL UNIQUE REFERENCES applications (id),
    decision_id    bigint NOT NULL REFERENCES decisions (id),
    line_id        bigint NOT NULL REFERENCES credit_lines (id),
    lot_uri        text NOT NULL REFERENCES lots (lot_uri),
    amount_minor   bigint NOT NULL CHECK (amount_minor > 0),
    currency       text NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    state          text NOT NULL DEFAULT 'open'
                   CHECK (state IN ('open', 'accepted', 'expired', 'withdrawn')),
    made_at        timestamptz NOT NULL DEFAULT now(),
    expires_at     timestamptz NOT NULL,
    settled_at     timestamptz,
    loan_id        bigint REFERENCES loans (id)
);
CREATE INDEX offers_line_idx ON offers (line_id, id);

-- How long an offer stands (default one day).
ALTER TABLE policies ADD COLUMN offer_validity_s integer NOT NULL DEFAULT 86400
    CHECK (offer_validity_s > 0);
