-- Devices and attestations (issue 13): device addresses unique across orgs, revocation and key
-- rotation with the keys' history, the sites a device is bound to, and every submission of an
-- event recorded as an attestation (the event itself is stored once, by its hash).

ALTER TABLE devices ADD COLUMN revoked_at timestamptz;

-- Before addresses were unique, one org could register another's device address. The first
-- registration of an address keeps it; every later one is revoked (its org must rotate to a key
-- of its own).
UPDATE devices d SET revoked_at = now()
 WHERE d.address IS NOT NULL
   AND EXISTS (SELECT 1 FROM devices e
                WHERE e.address = d.address
                  AND (e.created_at, e.org_id, e.device_id) < (d.created_at, d.org_id, d.device_id));
-- One live device per address (the registry also refuses an address any device ever had).
CREATE UNIQUE INDEX devices_address_idx ON devices (address)
    WHERE address IS NOT NULL AND revoked_at IS NULL;

-- Every key a device signed with: rotation revokes the old key and keeps it here, so a signature
-- by it is refused `device_revoked` rather than `signature_mismatch`.
CREATE TABLE device_keys (
    org_id      bigint NOT NULL,
    device_id   text NOT NULL,
    address     text NOT NULL CHECK (address ~ '^0x[0-9a-f]{40}$'),
    valid_from  timestamptz NOT NULL,
    revoked_at  timestamptz,
    PRIMARY KEY (org_id, device_id, address),
    FOREIGN KEY (org_id, device_id) REFERENCES devices (org_id, device_id)
);
CREATE INDEX device_keys_address_idx ON device_keys (address);
INSERT INTO device_keys (org_id, device_id, address, valid_from, revoked_at)
SELECT org_id, device_id, address, created_at, revoked_at FROM devices WHERE address IS NOT NULL;

-- The sites (GLNs) a device measures or records at: a reading describes a site only from a
-- device bound to it (epcis.authority.reading_counts).
CREATE TABLE device_sites (
    org_id      bigint NOT NULL,
    device_id   text NOT NULL,
    gln         text NOT NULL REFERENCES sites (gln),
    PRIMARY KEY (org_id, device_id, gln),
    FOREIGN KEY (org_id, device_id) REFERENCES devices (org_id, device_id)
);

-- The ingest workers cache devices; any change to a device or its keys advances this version,
-- which they read once per batch, so a revocation holds from the next batch on.
CREATE TABLE device_registry_version (
    singleton   boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    version     bigint NOT NULL
);
INSERT INTO device_registry_version (version) VALUES (0);
CREATE FUNCTION tracefin_devices_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE device_registry_version SET version = version + 1;
    RETURN NULL;
END;
$$;
CREATE TRIGGER devices_changed AFTER INSERT OR UPDATE OR DELETE ON devices
    FOR EACH STATEMENT EXECUTE FUNCTION tracefin_devices_changed();
CREATE TRIGGER device_keys_changed AFTER INSERT OR UPDATE OR DELETE ON device_keys
    FOR EACH STATEMENT EXECUTE FUNCTION tracefin_devices_changed();

-- Who submitted each event, through what, signed or not, when. The first submission is also
-- the event row's org/device; every later one (a duplicate) is only here.
CREATE TABLE attestations (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_hash  bytea NOT NULL CHECK (length(event_hash) = 32),
    org_id      bigint NOT NULL REFERENCES orgs (id),
    device_id   text,            -- the device (MQTT); NULL over HTTP
    api_user    text,            -- the API key's prefix (HTTP); NULL over MQTT
    channel     text NOT NULL CHECK (channel IN ('mqtt', 'http')),
    signature   bytea,
    received_at timestamptz NOT NULL
);
-- A redelivered (or resent) submission by the same party is one attestation: the first.
CREATE UNIQUE INDEX attestations_once_idx
    ON attestations (event_hash, org_id, channel, coalesce(device_id, ''), (signature IS NOT NULL));

-- Each stored event was submitted once, by the party it is stored under.
INSERT INTO attestations (event_hash, org_id, device_id, api_user, channel, signature, received_at)
SELECT event_hash,
       org_id,
       CASE WHEN topic LIKE 'tf/%' THEN device_id END,
       NULL,
       CASE WHEN topic LIKE 'tf/%' THEN 'mqtt' ELSE 'http' END,
       signature,
       received_at
  FROM events
 ORDER BY ingest_seq
ON CONFLICT DO NOTHING;
