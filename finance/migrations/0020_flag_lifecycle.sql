-- Flags with a lifecycle (issue 14): a flag opens on evidence and closes on evidence (a
-- conformant re-inspection, temperature back in range for the policy's dwell time, the goods
-- attested back in the supervised site); the closing evidence and why are kept with it.
ALTER TABLE risk_flags
    ADD COLUMN cleared_reason text,
    ADD COLUMN cleared_event_hash bytea;
CREATE INDEX risk_flags_open_lot_idx ON risk_flags (lot_uri) WHERE cleared_at IS NULL;

-- Since when the goods are at the site holding them (the event time of the counting claim
-- that put them there): a cold-chain excursion counts for a lot only while it was there.
ALTER TABLE lots ADD COLUMN held_since timestamptz;
