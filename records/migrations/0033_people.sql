-- People and four eyes (issue 15 item 5): the named users of each org, each with API keys of
-- its own, and the org's four-eyes switch. Every org gets a user `admin` with every role, and
-- its existing keys become admin's: a key keeps the rights it had.
CREATE TABLE users (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    org_id      bigint NOT NULL REFERENCES orgs (id),
    name        text NOT NULL CHECK (name ~ '^[a-z][a-z0-9-]{0,31}$'),
    -- maker: makes writes (and four-eyes requests); checker: approves or rejects another user's
    -- request; viewer: reads. A user has at least one.
    roles       text[] NOT NULL CHECK (
                    cardinality(roles) > 0
                    AND roles <@ ARRAY['maker', 'checker', 'viewer']::text[]),
    created_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (org_id, name),
    -- The target of api_keys' (org_id, user_id): a key's user belongs to the key's org.
    UNIQUE (org_id, id)
);

INSERT INTO users (org_id, name, roles)
SELECT id, 'admin', ARRAY['maker', 'checker', 'viewer']::text[] FROM orgs;

ALTER TABLE api_keys ADD COLUMN user_id bigint;
UPDATE api_keys k SET user_id = u.id FROM users u WHERE u.org_id = k.org_id AND u.name = 'admin';
ALTER TABLE api_keys ALTER COLUMN user_id SET NOT NULL;
ALTER TABLE api_keys ADD CONSTRAINT api_keys_user_fkey
    FOREIGN KEY (org_id, user_id) REFERENCES users (org_id, id);

-- On: the org's gated finance operations wait for a second person (finance/four_eyes.py).
ALTER TABLE orgs ADD COLUMN four_eyes boolean NOT NULL DEFAULT false;
