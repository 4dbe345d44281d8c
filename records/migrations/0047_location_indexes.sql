-- EQ_bizLocation and EQ_readPoint pages are read in record order (ingest_seq), the binding's
-- default. Without an index led by the location in that order, a regulator's page (no org
-- filter) for a rarely used location walked events_ingest_seq_idx and filtered: at 1 000 000
-- events a site holding 0.1 % of them read ~100 000 rows per page (bench/query.py: p99 60 ms,
-- max 183 ms). With these the page is one index range. orderBy=eventTime sorts the location's
-- rows instead, which the old (biz_location, event_time DESC) index served; the default order
-- is the one every page and subscription uses, so it has the index.
DROP INDEX events_biz_location_idx;
CREATE INDEX events_biz_location_seq_idx ON events (biz_location, ingest_seq);
CREATE INDEX events_read_point_seq_idx ON events (read_point, ingest_seq);
