-- The financier's own prices (issue 14): each financier keeps a price list per GTIN, and only
-- its price values a lot as its collateral; the borrower's product registration keeps a
-- reference price for display and receivables, never for lending. A price holds from
-- `valid_from` until the next one.
CREATE TABLE financier_prices (
    financier_org_id bigint NOT NULL REFERENCES orgs (id),
    gtin             text NOT NULL CHECK (gtin ~ '^[0-9]{14}$'),
    valid_from       timestamptz NOT NULL,
    unit_price_minor bigint NOT NULL CHECK (unit_price_minor BETWEEN 0 AND 1000000000),
    currency         text NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    set_at           timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (financier_org_id, gtin, valid_from)
);
