-- Who recalled a lot (the org whose counting event said `recalled`): only that org's later word
-- that the goods are in good standing withdraws the recall and closes its flag (issue 14).
ALTER TABLE lots ADD COLUMN recalled_by text;

-- When a price's coming into force was revalued: at once for a price that holds already, by
-- the finance worker's periodic check for one set to hold from a later time (issue 14).
ALTER TABLE financier_prices ADD COLUMN revalued_at timestamptz;
UPDATE financier_prices SET revalued_at = set_at WHERE valid_from <= set_at;
CREATE INDEX financier_prices_due_idx ON financier_prices (valid_from) WHERE revalued_at IS NULL;
