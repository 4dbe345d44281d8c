-- Identifier ownership (issue 13): the GS1 Company Prefixes each org holds, the sites (GLNs) each
-- org operates, the authorisations an owner of goods gives to manufacturers and inspectors, and
-- the operator's extensions of the evidence-authority rules (epcis/authority.py).

ALTER TABLE orgs DROP CONSTRAINT orgs_role_check;
ALTER TABLE orgs ADD CONSTRAINT orgs_role_check
    CHECK (role IN ('manufacturer', 'warehouse', 'logistics', 'retailer', 'financier', 'regulator',
                    'inspector', 'guarantor'));

-- One prefix belongs to one org; the registry also refuses a prefix that extends another org's
-- (or that another org's extends), since ownership of a key follows from its longest prefix.
CREATE TABLE org_prefixes (
    prefix      text PRIMARY KEY CHECK (prefix ~ '^[0-9]{4,12}$'),
    org_id      bigint NOT NULL REFERENCES orgs (id),
    added_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX org_prefixes_org_idx ON org_prefixes (org_id);

CREATE TABLE sites (
    gln             text PRIMARY KEY CHECK (gln ~ '^[0-9]{13}$'),
    operator_org_id bigint NOT NULL REFERENCES orgs (id),
    name            text NOT NULL,
    supervised      boolean NOT NULL DEFAULT false,
    -- The operator's grant: the GLN is not in the operating org's own prefixes.
    granted         boolean NOT NULL DEFAULT false,
    created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX sites_operator_idx ON sites (operator_org_id);

-- gtin NULL: every GTIN of the owner's prefixes.
CREATE TABLE authorisations (
    owner_org_id bigint NOT NULL REFERENCES orgs (id),
    agent_org_id bigint NOT NULL REFERENCES orgs (id),
    kind         text NOT NULL CHECK (kind IN ('manufacture', 'inspect')),
    gtin         text CHECK (gtin IS NULL OR gtin ~ '^[0-9]{14}$'),
    created_at   timestamptz NOT NULL DEFAULT now(),
    UNIQUE NULLS NOT DISTINCT (owner_org_id, agent_org_id, kind, gtin)
);

CREATE TABLE authority_rule_extensions (
    biz_step    text PRIMARY KEY,
    fact        text NOT NULL CHECK (fact IN ('making', 'inspection', 'site_custody', 'transit',
                                              'acceptance', 'retail_sale')),
    added_at    timestamptz NOT NULL DEFAULT now()
);
