-- Page tokens an organisation invalidated (EPCIS REST binding: DELETE /nextPageToken/{token}).
-- A token is a position, so it would work forever; once its holder deletes it, the queries and
-- lists refuse it for that organisation (another organisation's identical token is its own).
CREATE TABLE page_token_revocations (
    org_id      bigint NOT NULL REFERENCES orgs (id),
    token       text NOT NULL CHECK (length(token) BETWEEN 1 AND 512),
    revoked_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (org_id, token)
);
