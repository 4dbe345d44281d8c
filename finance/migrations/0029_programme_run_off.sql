-- Sandbox exit (issue 15): a programme - every line of one financier, or every line of every
-- financier (financier_org_id NULL) - put into run-off takes no new loans, offers or limit
-- increases; what is outstanding keeps being serviced. A run-off is not undone: leaving it is
-- a new programme decision outside this pilot (docs/finance.md, "Exit").
CREATE TABLE programme_run_offs (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    financier_org_id bigint REFERENCES orgs (id),
    started_at       timestamptz NOT NULL DEFAULT now(),
    started_by       text NOT NULL CHECK (length(started_by) BETWEEN 1 AND 200),
    reason           text NOT NULL CHECK (length(reason) BETWEEN 1 AND 2000),
    UNIQUE NULLS NOT DISTINCT (financier_org_id)
);

-- When a line was closed (status 'closed' exists since 0004; nothing set it until now).
ALTER TABLE credit_lines ADD COLUMN closed_at timestamptz;
