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

CREATE TRIGGER log_entries_pages_inserted AFTER INSERT ON log_entries
    REFERENCING NEW TABLE AS changed
    FOR EACH STATEMENT EXECUTE FUNCTION tracefin_pages_changed_rows();
CREATE TRIGGER log_entries_pages_updated AFTER UPDATE ON log_entries
    REFERENCING NEW TABLE AS changed
    FOR EACH STATEMENT EXECUTE FUNCTION tracefin_pages_changed_rows();
CREATE TRIGGER log_entries_pages_deleted AFTER DELETE ON log_entries
    REFERENCING OLD TABLE AS changed
    FOR EACH STATEMENT EXECUTE FUNCTION tracefin_pages_changed_rows();
CREATE TRIGGER log_entries_pages_truncated AFTER TRUNCATE ON log_entries
    FOR EACH STATEMENT EXECUTE FUNCTION tracefin_pages_changed();

CREATE TRIGGER anchor_batches_pages_inserted AFTER INSERT ON anchor_batches
    REFERENCING NEW TABLE AS changed
    FOR EACH STATEMENT EXECUTE FUNCTION tracefin_pages_changed_rows();
CREATE TRIGGER anchor_batches_pages_updated AFTER UPDATE ON anchor_batches
    REFERENCING NEW TABLE AS changed
    FOR EACH STATEMENT EXECUTE FUNCTION tracefin_pages_changed_rows();
CREATE TRIGGER anchor_batches_pages_deleted AFTER DELETE ON anchor_batches
    REFERENCING OLD TABLE AS changed
    FOR EACH STATEMENT EXECUTE FUNCTION tracefin_pages_changed_rows();
CREATE TRIGGER anchor_batches_pages_truncated AFTER TRUNCATE ON anchor_batches
    FOR EACH STATEMENT EXECUTE FUNCTION tracefin_pages_changed();

CREATE TRIGGER chain_deployments_pages_inserted AFTER INSERT ON chain_deployments
    REFERENCING NEW TABLE AS changed
    FOR EACH STATEMENT EXECUTE FUNCTION tracefin_pages_changed_rows();
CREATE TRIGGER chain_deployments_pages_updated AFTER UPDATE ON chain_deployments
    REFERENCING NEW TABLE AS changed
    FOR EACH STATEMENT EXECUTE FUNCTION tracefin_pages_changed_rows();
CREATE TRIGGER chain_deployments_pages_deleted AFTER DELETE ON chain_deployments
    REFERENCING OLD TABLE AS changed
    FOR EACH STATEMENT EXECUTE FUNCTION tracefin_pages_changed_rows();
CREATE TRIGGER chain_deployments_pages_truncated AFTER TRUNCATE ON chain_deployments
    FOR EACH STATEMENT EXECUTE FUNCTION tracefin_pages_changed();

CREATE TRIGGER products_pages_inserted AFTER INSERT ON products
    REFERENCING NEW TABLE AS changed
    FOR EACH STATEMENT EXECUTE FUNCTION tracefin_pages_changed_rows();
CREATE TRIGGER products_pages_updated AFTER UPDATE ON products
    REFERENCING NEW TABLE AS changed
    FOR EACH STATEMENT EXECUTE FUNCTION tracefin_pages_changed_rows();
CREATE TRIGGER products_pages_deleted AFTER DELETE ON products
    REFERENCING OLD TABLE AS changed
    FOR EACH STATEMENT EXECUTE FUNCTION tracefin_pages_changed_rows();
CREATE TRIGGER products_pages_truncated AFTER TRUNCATE ON products
    FOR EACH STATEMENT EXECUTE FUNCTION tracefin_pages_changed();
