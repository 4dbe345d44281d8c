-- Loans (issue 14): each drawdown is a loan tied to the pledged lot that secures it, so that
-- exposure is counted per lot across every line, repayments are allocated to loans (oldest
-- first unless instructed), and a lot that still secures money is not released.
CREATE TABLE loans (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    line_id         bigint NOT NULL REFERENCES credit_lines (id),
    lot_uri         text NOT NULL REFERENCES lots (lot_uri),
    decision_id     bigint UNIQUE REFERENCES decisions (id),
    principal_minor bigint NOT NULL CHECK (principal_minor > 0),
    outstanding_minor bigint NOT NULL CHECK (outstanding_minor BETWEEN 0 AND principal_minor),
    currency        text NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    drawn_at        timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX loans_outstanding_lot_idx ON loans (lot_uri) WHERE outstanding_minor > 0;
CREATE INDEX loans_line_idx ON loans (line_id, id);

-- How each repayment was allocated to loans.
CREATE TABLE loan_repayments (
    movement_id  bigint NOT NULL REFERENCES line_movements (id),
    loan_id      bigint NOT NULL REFERENCES loans (id),
    amount_minor bigint NOT NULL CHECK (amount_minor > 0),
    PRIMARY KEY (movement_id, loan_id)
);

-- Drawdowns made before loans: each becomes a loan; the line's repayments so far are allocated
-- to them oldest first (what was repaid beyond the loans before it).
INSERT INTO loans (line_id, lot_uri, decision_id, principal_minor, outstanding_minor, currency,
                   drawn_at)
SELECT d.line_id, d.lot_uri, d.decision_id, d.amount_minor,
       d.amount_minor - LEAST(d.amount_minor, GREATEST(0, d.repaid - d.before)),
       d.currency, d.at
  FROM (SELECT m.line_id, a.lot_uri, m.decision_id, m.amount_minor, l.currency, m.at,
               sum(m.amount_minor) OVER (PARTITION BY m.line_id ORDER BY m.id) - m.amount_minor
                 AS before,
               (SELECT coalesce(sum(r.amount_minor), 0) FROM line_movements r
                 WHERE r.line_id = m.line_id AND r.kind = 'repayment') AS repaid
          FROM line_movements m
          JOIN decisions dd ON dd.id = m.decision_id
          JOIN applications a ON a.id = dd.application_id
          JOIN credit_lines l ON l.id = m.line_id
         WHERE m.kind = 'drawdown') d
 ORDER BY d.line_id, d.at;
