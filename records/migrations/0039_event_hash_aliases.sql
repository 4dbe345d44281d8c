-- The event hash rule changed (issue 16 item 5, docs/epcis-hash.md): events stored under an
-- earlier rule are re-identified by the migration runner's data step (tracefin.schema.migrate,
-- ledger.rehash). Each earlier id is kept here and still resolves: proofs, GET
-- /epcis/events/{id}, and the records that keep the ids they were written with (the sealed
-- finance journal, decision evidence).
CREATE TABLE event_hash_aliases (
    alias       bytea PRIMARY KEY CHECK (length(alias) = 32),
    event_hash  bytea NOT NULL CHECK (length(event_hash) = 32),
    -- The rule the alias was computed by (1: tracefin before issue 16).
    rule        smallint NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    CHECK (alias <> event_hash)
);
CREATE INDEX event_hash_aliases_event_idx ON event_hash_aliases (event_hash);

-- The rule the stored identities follow (one row). A database that holds events starts at
-- rule 1 and is re-identified by the data step; an empty one is at rule 2 already.
CREATE TABLE event_hash_rule (
    only_row  boolean PRIMARY KEY DEFAULT true CHECK (only_row),
    rule      smallint NOT NULL
);
INSERT INTO event_hash_rule (rule)
SELECT CASE WHEN EXISTS (SELECT 1 FROM events) THEN 1 ELSE 2 END;
