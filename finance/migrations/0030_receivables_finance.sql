-- Receivables finance (issue 15): a receivable is created when the buyer's own device attests
-- accepting the goods with their purchase order. Its buyer (the attesting org) confirms it with
-- its own key; a financier with a line to the seller (the goods' owner) then advances against
-- it at its own policy, as a loan on that line; the buyer's payment repays that loan through
-- the waterfall, and what is left over is the seller's. `advance_minor` is indicative (the
-- default rate) until the receivable is financed, then what was advanced.
ALTER TABLE receivables
    ADD COLUMN seller_org_id bigint REFERENCES orgs (id),
    ADD COLUMN buyer_org_id bigint REFERENCES orgs (id),
    ADD COLUMN state text NOT NULL DEFAULT 'open'
        CHECK (state IN ('open', 'confirmed', 'financed', 'paid')),
    ADD COLUMN confirmed_at timestamptz,
    ADD COLUMN financier_org_id bigint REFERENCES orgs (id),
    ADD COLUMN loan_id bigint UNIQUE REFERENCES loans (id),
    ADD COLUMN financed_at timestamptz,
    ADD COLUMN paid_minor bigint NOT NULL DEFAULT 0 CHECK (paid_minor >= 0),
    ADD COLUMN paid_at timestamptz,
    ADD CONSTRAINT receivables_paid_check CHECK (paid_minor <= amount_minor),
    ADD CONSTRAINT receivables_financed_check CHECK (
        (state IN ('open', 'confirmed')) = (loan_id IS NULL));
CREATE INDEX receivables_seller_idx ON receivables (seller_org_id);
CREATE INDEX receivables_buyer_idx ON receivables (buyer_org_id);

ALTER TABLE loan_payments DROP CONSTRAINT loan_payments_source_check;
ALTER TABLE loan_payments ADD CONSTRAINT loan_payments_source_check
    CHECK (source IN ('borrower', 'proceeds', 'buyer'));
