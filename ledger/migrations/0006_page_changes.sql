-- Provenance pages are cached by the API; every change to what a page shows must reach the
-- caches. Each statement that changes an event, a log position, a batch, a deployment or a
-- product (not one that changes nothing: the anchor worker polls log_entries) advances `page_generation` (a sequence: no row lock, so concurrent ingest workers do
-- not queue on it) and notifies `tracefin_pages` on commit. A cache keeps a page only while
-- the generation it was built at is still current, and clears itself on every notification,
-- which also covers a page built in the instant between a change and its commit.
CREATE SEQUENCE page_generation;

CREATE FUNCTION tracefin_pages_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM nextval('page_generation');
    PERFORM pg_notify('tracefin_pages', TG_TABLE_NAME);
    RETURN NULL;
END;
$$;

-- For statements with a transition table named `changed`: only when it holds rows.
CREATE FUNCTION tracefin_pages_changed_rows() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM changed) THEN
        PERFORM nextval('page_generation');
        PERFORM pg_notify('tracefin_pages', TG_TABLE_NAME);
    END IF;
    RETURN NULL;
END;
$$;

-- events may be a TimescaleDB hypertable, which allows no transition tables; every statement
-- that writes events carries events anyway.
CREATE TRIGGER events_pages_changed
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON events
    FOR EACH STATEMENT EXECUTE FUNCTION tracefin_pages_changed();

-- The other tables allow transition tables: one trigger per kind of statement, so a statement
-- that changed no row (the anchor worker polls log_entries) notifies nobody.
DO $$
DECLARE
    tbl text;
BEGIN
    FOREACH tbl IN ARRAY ARRAY['log_entries', 'anchor_batches', 'chain_deployments', 'products']
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
