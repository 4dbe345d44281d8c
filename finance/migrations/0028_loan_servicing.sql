-- Loan economics (issue 15): a financier's policy says what its loans cost and when they are
-- due; each loan keeps a copy of those terms from its drawdown (a later policy change does not
-- reprice money already lent); every payment a loan receives is kept with its date and source,
-- and with the split the waterfall gave it (finance/servicing.py computes statements from the
-- payments alone; the split is kept for reports and checked against the recomputation).
-- The defaults are a policy without economics: 0 % a year, no fee, no penalty, bullet at one
-- year, default after 90 days overdue - what the loans drawn before this migration were.

ALTER TABLE policies
    ADD COLUMN annual_rate numeric NOT NULL DEFAULT 0 CHECK (annual_rate BETWEEN 0 AND 1),
    ADD COLUMN day_count text NOT NULL DEFAULT 'ACT/365F'
        CHECK (day_count IN ('ACT/365F', 'ACT/360')),
    ADD COLUMN schedule_kind text NOT NULL DEFAULT 'bullet'
        CHECK (schedule_kind IN ('bullet', 'instalments')),
    ADD COLUMN instalment_count integer NOT NULL DEFAULT 1,
    ADD COLUMN fee_rate numeric NOT NULL DEFAULT 0 CHECK (fee_rate BETWEEN 0 AND 1),
    ADD COLUMN tenor_days integer NOT NULL DEFAULT 365 CHECK (tenor_days BETWEEN 1 AND 3650),
    ADD COLUMN grace_days integer NOT NULL DEFAULT 0 CHECK (grace_days BETWEEN 0 AND 365),
    ADD COLUMN penalty_rate numeric NOT NULL DEFAULT 0 CHECK (penalty_rate BETWEEN 0 AND 1),
    ADD COLUMN default_after_days integer NOT NULL DEFAULT 90
        CHECK (default_after_days BETWEEN 1 AND 3650),
    ADD CONSTRAINT policies_instalments_check CHECK (
        instalment_count BETWEEN 1 AND tenor_days
        AND (schedule_kind = 'instalments' OR instalment_count = 1));

ALTER TABLE loans
    ADD COLUMN drawn_on date,
    ADD COLUMN annual_rate numeric NOT NULL DEFAULT 0 CHECK (annual_rate BETWEEN 0 AND 1),
    ADD COLUMN day_count text NOT NULL DEFAULT 'ACT/365F'
        CHECK (day_count IN ('ACT/365F', 'ACT/360')),
    ADD COLUMN schedule_kind text NOT NULL DEFAULT 'bullet'
        CHECK (schedule_kind IN ('bullet', 'instalments')),
    ADD COLUMN instalment_count integer NOT NULL DEFAULT 1,
    ADD COLUMN fee_rate numeric NOT NULL DEFAULT 0 CHECK (fee_rate BETWEEN 0 AND 1),
    ADD COLUMN tenor_days integer NOT NULL DEFAULT 365 CHECK (tenor_days BETWEEN 1 AND 3650),
    ADD COLUMN grace_days integer NOT NULL DEFAULT 0 CHECK (grace_days BETWEEN 0 AND 365),
    ADD COLUMN penalty_rate numeric NOT NULL DEFAULT 0 CHECK (penalty_rate BETWEEN 0 AND 1),
    ADD COLUMN default_after_days integer NOT NULL DEFAULT 90
        CHECK (default_after_days BETWEEN 1 AND 3650),
    ADD CONSTRAINT loans_instalments_check CHECK (
        instalment_count BETWEEN 1 AND tenor_days
        AND (schedule_kind = 'instalments' OR instalment_count = 1));
-- Days are UTC days: a loan drawn at 23:30 in Shanghai on the 2nd was drawn on the 2nd (UTC).
UPDATE loans SET drawn_on = (drawn_at AT TIME ZONE 'UTC')::date;
ALTER TABLE loans ALTER COLUMN drawn_on SET NOT NULL;

-- Every payment applied to a loan. `movement_id` is the cash movement on the line it came in
-- with (a repayment, or the proceeds of a sale of the goods the loan is secured by).
CREATE TABLE loan_payments (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    loan_id         bigint NOT NULL REFERENCES loans (id),
    movement_id     bigint NOT NULL REFERENCES line_movements (id),
    paid_on         date NOT NULL,
    source          text NOT NULL CHECK (source IN ('borrower', 'proceeds')),
    amount_minor    bigint NOT NULL CHECK (amount_minor BETWEEN 1 AND 1000000000000000),
    fees_minor      bigint NOT NULL CHECK (fees_minor >= 0),
    penalty_minor   bigint NOT NULL CHECK (penalty_minor >= 0),
    interest_minor  bigint NOT NULL CHECK (interest_minor >= 0),
    principal_minor bigint NOT NULL CHECK (principal_minor >= 0),
    recorded_at     timestamptz NOT NULL DEFAULT now(),
    CHECK (fees_minor + penalty_minor + interest_minor + principal_minor <= amount_minor),
    UNIQUE (movement_id, loan_id)
);
CREATE INDEX loan_payments_loan_idx ON loan_payments (loan_id, paid_on, id);

-- The allocations made before: on the economics above every unit went to principal.
INSERT INTO loan_payments (loan_id, movement_id, paid_on, source, amount_minor, fees_minor,
                           penalty_minor, interest_minor, principal_minor, recorded_at)
SELECT r.loan_id, r.movement_id, (m.at AT TIME ZONE 'UTC')::date, 'borrower', r.amount_minor,
       0, 0, 0, r.amount_minor, m.at
  FROM loan_repayments r
  JOIN line_movements m ON m.id = r.movement_id
 ORDER BY m.id, r.loan_id;
DROP TABLE loan_repayments;
