-- Margin calls with a lifecycle (issue 14): at most one live call per line, its amount the
-- line's current shortfall (what it has drawn less what its pledged collateral secures),
-- recomputed as values and exposure change; due after the financier's cure period; open ->
-- cured (repayment, more collateral, a price recovery), or past due -> escalated (the line
-- frozen; an escalated call is still cured by the same means). Before, each bad-news lot opened
-- its own call holding the line's running shortfall, so their sum overstated what was owed.
ALTER TABLE margin_calls
    ADD COLUMN state text NOT NULL DEFAULT 'open'
        CHECK (state IN ('open', 'cured', 'escalated')),
    ADD COLUMN amount_minor bigint,
    ADD COLUMN currency text,
    ADD COLUMN due_at timestamptz,
    ADD COLUMN updated_at timestamptz NOT NULL DEFAULT now();
ALTER TABLE margin_calls ALTER COLUMN lot_uri DROP NOT NULL;
UPDATE margin_calls SET state = 'cured' WHERE settled_at IS NOT NULL;
-- Several open calls of one line: the newest stays live, the others are superseded (cured).
WITH ranked AS (
    SELECT id, row_number() OVER (PARTITION BY line_id ORDER BY raised_at DESC, id DESC) AS n
      FROM margin_calls WHERE state = 'open'
)
UPDATE margin_calls m SET state = 'cured', settled_at = now()
  FROM ranked r WHERE m.id = r.id AND r.n > 1;
-- A call carried over is due a cure period after this migration, not after it was raised: the
-- borrower learns of the deadline only now (escalating them all at the first check would freeze
-- lines in bulk for deadlines nobody was told).
UPDATE margin_calls m SET amount_minor = m.shortfall_minor, currency = l.currency,
       due_at = CASE WHEN m.state = 'open' THEN now() ELSE m.raised_at END + interval '3 days'
  FROM credit_lines l WHERE l.id = m.line_id;
ALTER TABLE margin_calls
    ALTER COLUMN amount_minor SET NOT NULL,
    ALTER COLUMN currency SET NOT NULL,
    ALTER COLUMN due_at SET NOT NULL,
    ADD CONSTRAINT margin_calls_amount_positive CHECK (amount_minor > 0);
DROP INDEX margin_calls_one_open;
CREATE UNIQUE INDEX margin_calls_one_live ON margin_calls (line_id)
    WHERE state IN ('open', 'escalated');

-- How long a borrower has to cure a margin call (default 3 days).
ALTER TABLE policies ADD COLUMN cure_period_s integer NOT NULL DEFAULT 259200
    CHECK (cure_period_s > 0);
