-- A provenance page shows who recorded and who attested each event and whether it counts as
-- evidence (issue 13). That depends on the attestations and on the registry the authority rules
-- read: an attestation that adds no event (a second party submitting a stored event), a prefix,
-- a site, a device's sites, an authorisation, an operator's rule extension or an org's role.
-- Each such change must reach the cached pages as the changes of migration 0006 do: advance
-- `page_generation` and notify `tracefin_pages`, and only when a statement changed rows (an
-- idempotent redelivery of an attestation inserts none and notifies nobody).
DO $$
DECLARE
    tbl text;
BEGIN
    FOREACH tbl IN ARRAY ARRAY['attestations', 'org_prefixes', 'sites', 'device_sites',
                               'authorisations', 'authority_rule_extensions', 'orgs']
    LOOP
        EXECUTE format('CREATE TRIGGER %1$I AFTER INSERT ON %2$I REFERENCING NEW TABLE AS changed'
                       ' FOR EACH STATEMENT EXECUTE FUNCTION tracefin_pages_changed_rows()',
                       tbl || '_pages_inserted', tbl);
        EXECUTE format('CREATE TRIGGER %1$I AFTER UPDATE ON %2$I REFERENCING NEW TABLE AS changed'
                       ' FOR EACH STATEMENT EXECUTE FUNCTION tracefin_pages_changed_rows()',
                       tbl || '_pages_updated', tbl);
        EXECUTE format('CREATE TRIGGER %1$I AFTER DELETE ON %2$I REFERENCING OLD TABLE AS changed'
                       ' FOR EACH STATEMENT EXECUTE FUNCTION tracefin_pages_changed_rows()',
                       tbl || '_pages_deleted', tbl);
        EXECUTE format('CREATE TRIGGER %1$I AFTER TRUNCATE ON %2$I'
                       ' FOR EACH STATEMENT EXECUTE FUNCTION tracefin_pages_changed()',
                       tbl || '_pages_truncated', tbl);
    END LOOP;
END;
$$;
