-- Organisations, their API keys (stored hashed) and their devices.
CREATE TABLE orgs (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    slug        text NOT NULL UNIQUE CHECK (slug ~ '^[a-z0-9-]+$' AND length(slug) <= 64),
    role        text NOT NULL CHECK (role IN ('manufacturer', 'warehouse', 'logistics', 'retailer',
                                              'financier', 'regulator')),
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE api_keys (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    org_id      bigint NOT NULL REFERENCES orgs (id),
    key_prefix  text NOT NULL,
    key_hash    bytea NOT NULL UNIQUE CHECK (length(key_hash) = 32),
    created_at  timestamptz NOT NULL DEFAULT now(),
    revoked_at  timestamptz
);
CREATE INDEX api_keys_org_idx ON api_keys (org_id);

CREATE TABLE devices (
    org_id      bigint NOT NULL REFERENCES orgs (id),
    device_id   text NOT NULL CHECK (device_id ~ '^[a-z0-9-]+$' AND length(device_id) <= 64),
    -- Lower-case 0x-prefixed address of the device's secp256k1 key; NULL for --unsigned devices.
    address     text CHECK (address ~ '^0x[0-9a-f]{40}$'),
    unsigned    boolean NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (org_id, device_id),
    CHECK (unsigned = (address IS NULL))
);
