-- Four-eyes requests (issue 15 item 5): a gated operation one user of a financier asked for,
-- waiting for a checker of the same org who is someone else (finance/four_eyes.py).
CREATE TABLE four_eyes_requests (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    org_id          bigint NOT NULL REFERENCES orgs (id),
    kind            text NOT NULL,
    -- The operation's inputs, as the executor of `kind` reads them.
    params          jsonb NOT NULL,
    maker_user_id   bigint NOT NULL REFERENCES users (id),
    state           text NOT NULL DEFAULT 'pending'
                    CHECK (state IN ('pending', 'approved', 'rejected', 'failed')),
    checker_user_id bigint REFERENCES users (id),
    -- failed: the finance error code the operation was refused with when it was approved.
    error_code      text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    decided_at      timestamptz,
    CHECK ((state = 'pending') = (checker_user_id IS NULL)),
    CHECK ((state = 'pending') = (decided_at IS NULL)),
    CHECK ((state = 'failed') = (error_code IS NOT NULL)),
    -- Four eyes, in the schema too: nobody checks their own request.
    CHECK (checker_user_id IS DISTINCT FROM maker_user_id)
);
CREATE INDEX four_eyes_requests_org_idx ON four_eyes_requests (org_id, id);
