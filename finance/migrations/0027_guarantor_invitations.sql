-- A guarantee is given only by a guarantor the borrower invited for that application (issue 14
-- review): any other guarantor is told the application does not exist, so none can probe or
-- vouch for another enterprise's applications.
CREATE TABLE application_guarantors (
    application_id   bigint NOT NULL REFERENCES applications (id),
    guarantor_org_id bigint NOT NULL REFERENCES orgs (id),
    invited_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (application_id, guarantor_org_id)
);
-- Guarantees given before invitations existed stand as invitations.
INSERT INTO application_guarantors (application_id, guarantor_org_id, invited_at)
    SELECT application_id, guarantor_org_id, given_at FROM guarantees;
