-- EPCIS error declarations (issue 16 item 4): an event captured again with an errorDeclaration,
-- by a party entitled to declare it erroneous (epcis.authority.declaration_refusal), is recorded
-- here, apart from the event (whose stored JSON and hash never change). One declaration per
-- event: the first recorded stands.
CREATE TABLE error_declarations (
    id                   bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_hash           bytea NOT NULL UNIQUE CHECK (length(event_hash) = 32),
    org_id               bigint NOT NULL REFERENCES orgs (id),
    device_id            text,            -- the declaring device (MQTT); NULL over HTTP
    api_user             text,            -- the API key's prefix (HTTP); NULL over MQTT
    channel              text NOT NULL CHECK (channel IN ('mqtt', 'http')),
    received_at          timestamptz NOT NULL,
    declaration_time     timestamptz NOT NULL,
    reason               text,            -- CBV word (did_not_occur, incorrect_data) or a URI
    corrective_event_ids text[] NOT NULL DEFAULT '{}',
    declaration          jsonb NOT NULL,  -- the errorDeclaration object as captured
    -- SHA-256 of the JCS form of the record (epcis.declarations.DeclarationRecord.digest): the
    -- finance journal seals it, the audit recomputes it.
    digest               bytea NOT NULL UNIQUE CHECK (length(digest) = 32)
);
CREATE INDEX error_declarations_time_idx ON error_declarations (declaration_time);
CREATE INDEX error_declarations_reason_idx ON error_declarations (reason);
CREATE INDEX error_declarations_corrective_idx ON error_declarations USING gin (corrective_event_ids);

-- A declaration changes what an event's page shows (void evidence, its reason): it reaches the
-- cached pages as attestations do (migration 0014).
CREATE TRIGGER error_declarations_pages_inserted AFTER INSERT ON error_declarations
    REFERENCING NEW TABLE AS changed
    FOR EACH STATEMENT EXECUTE FUNCTION tracefin_pages_changed_rows();
CREATE TRIGGER error_declarations_pages_updated AFTER UPDATE ON error_declarations
    REFERENCING NEW TABLE AS changed
    FOR EACH STATEMENT EXECUTE FUNCTION tracefin_pages_changed_rows();
CREATE TRIGGER error_declarations_pages_deleted AFTER DELETE ON error_declarations
    REFERENCING OLD TABLE AS changed
    FOR EACH STATEMENT EXECUTE FUNCTION tracefin_pages_changed_rows();
