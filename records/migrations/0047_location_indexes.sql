-- EQ_bizLocation and EQ_readPoint pages are read in record order (ingest_seq), the binding's
-- default. Without an index led by the location in that order, a regulator's page (no org
-- filter) for a rarely used location walked events_ingest_seq_idx and filtered: at 1 000 000
-- events a site holding 0.1 % of them read ~100 000 rows per page (bench/query.py: p99 60 ms,
-- max 183 ms). With these the page is one index range. orderBy=eventTime sorts the location's
-- rows instead, which the old (biz_location, event_time DESC) index served; the default order
-- is the one every page and subscription uses, so it has the index.
--
-- Migrations run in a transaction, where CREATE INDEX locks writes to events while it builds.
-- On a large live table, build both beforehand with CREATE INDEX CONCURRENTLY, with the names
-- and columns below (docs/operations.md): this then finds them. An index of one of these names
-- that is not valid (a concurrent build failed, or is still running) or not this definition
-- would be kept by IF NOT EXISTS: refused here instead.
DO $$
DECLARE
    refused text;
BEGIN
    SELECT string_agg(format('%s: %s', c.relname, pg_get_indexdef(c.oid)), '; ') INTO refused
    FROM pg_class c
    JOIN pg_index i ON i.indexrelid = c.oid
    JOIN (VALUES ('events_biz_location_seq_idx', ' USING btree (biz_location, ingest_seq)'),
                 ('events_read_point_seq_idx', ' USING btree (read_point, ingest_seq)'))
        AS wanted (name, definition) ON wanted.name = c.relname
    WHERE c.relnamespace = (SELECT relnamespace FROM pg_class WHERE oid = 'events'::regclass)
      AND NOT (i.indisvalid AND i.indrelid = 'events'::regclass AND NOT i.indisunique
               AND i.indpred IS NULL
               AND substring(pg_get_indexdef(c.oid) FROM ' USING .*$') = wanted.definition);
    IF refused IS NOT NULL THEN
        RAISE EXCEPTION 'not valid (a concurrent build failed or is still running) or not the index this migration builds: %; let a running build finish, else DROP INDEX CONCURRENTLY it and build it again', refused;
    END IF;
END $$;
DROP INDEX IF EXISTS events_biz_location_idx;
CREATE INDEX IF NOT EXISTS events_biz_location_seq_idx ON events (biz_location, ingest_seq);
CREATE INDEX IF NOT EXISTS events_read_point_seq_idx ON events (read_point, ingest_seq);
