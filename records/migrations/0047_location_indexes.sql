-- EQ_bizLocation and EQ_readPoint pages are read in record order (ingest_seq), the binding's
-- default. Without an index led by the location in that order, a regulator's page (no org
-- filter) for a rarely used location walked events_ingest_seq_idx and filtered: at 1 000 000
-- events a site holding 0.1 % of them read ~100 000 rows per page (bench/query.py: p99 60 ms,
-- max 183 ms). With these the page is one index range. orderBy=eventTime sorts the location's
-- rows instead, which the old (biz_location, event_time DESC) index served; the default order
-- is the one every page and subscription uses, so it has the index.
--
-- Migrations run in a transaction, where CREATE INDEX locks writes to events while it builds.
-- On a large live table, build both beforehand with CREATE INDEX CONCURRENTLY and the names
-- and columns below (docs/operations.md): this then finds them. A concurrent build that failed
-- leaves an invalid index of that name, which IF NOT EXISTS would keep: refused here.
DO $$
DECLARE
    invalid text;
BEGIN
    SELECT string_agg(c.relname, ', ') INTO invalid
    FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
    WHERE c.relname IN ('events_biz_location_seq_idx', 'events_read_point_seq_idx')
      AND c.relnamespace = current_schema()::regnamespace
      AND NOT i.indisvalid;
    IF invalid IS NOT NULL THEN
        RAISE EXCEPTION 'index % is invalid (a concurrent build failed): DROP INDEX it and build it again', invalid;
    END IF;
END $$;
DROP INDEX IF EXISTS events_biz_location_idx;
CREATE INDEX IF NOT EXISTS events_biz_location_seq_idx ON events (biz_location, ingest_seq);
CREATE INDEX IF NOT EXISTS events_read_point_seq_idx ON events (read_point, ingest_seq);
