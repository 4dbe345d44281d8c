-- A log position keeps the leaf it was given: when its event is re-identified under a new hash
-- rule (0039, ledger.rehash), `event_hash` follows the event and `leaf_hash` keeps the digest
-- the Merkle leaf was made from (NULL: the same as `event_hash`). Roots already on chain were
-- computed from it, so proofs and the audit read the leaf as coalesce(leaf_hash, event_hash).
ALTER TABLE log_entries
    ADD COLUMN leaf_hash bytea CHECK (leaf_hash IS NULL OR length(leaf_hash) = 32);
