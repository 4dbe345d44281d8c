-- The review queue and guarantees (issue 14). A referred application waits in its financier's
-- review queue until the financier decides it, with a reason; approving decides it again and
-- makes an offer. Above the LTV cap a guarantee is needed: given by an org with role
-- guarantor, with its own key, for a named amount of that application (never a flag the
-- borrower sets).
ALTER TABLE applications
    ADD COLUMN review_state text CHECK (review_state IN ('pending', 'approved', 'declined')),
    ADD COLUMN review_reason text,
    ADD COLUMN reviewed_at timestamptz;
UPDATE applications a SET review_state = 'pending'
  FROM decisions d WHERE d.application_id = a.id AND d.kind = 'refer';

-- One guarantee per application and guarantor, which it may change while the application waits:
-- another guarantor's small guarantee blocks nobody. The largest one is what counts.
CREATE TABLE guarantees (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    application_id   bigint NOT NULL REFERENCES applications (id),
    guarantor_org_id bigint NOT NULL REFERENCES orgs (id),
    amount_minor     bigint NOT NULL CHECK (amount_minor > 0),
    currency         text NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    given_at         timestamptz NOT NULL DEFAULT now(),
    UNIQUE (application_id, guarantor_org_id)
);
