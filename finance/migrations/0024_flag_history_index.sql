-- The cold-chain check asks, for every watched lot on every tick, when its breach flag last
-- closed (finance.store.credit.last_cleared): an index on closed flags by lot and kind.
CREATE INDEX risk_flags_cleared_idx ON risk_flags (lot_uri, kind, cleared_at)
    WHERE cleared_at IS NOT NULL;
