-- Indexes for the event query (GET /epcis/events, /v1/events), which answers in ingest order
-- (ingest_seq, for stable keyset pages). Without them, a query the other indexes cannot
-- order walks events_ingest_seq_idx from the start, filtering as it goes: measured with
-- bench/query.py on 1 000 000 events, "what was recorded since my last poll"
-- (GE_recordTime, a partner's sync) removed 995 300 rows to find a page, 464 ms, and a
-- small organisation's first page walked 100 rows of others' for each of its own. The
-- received_at index carries ingest_seq, so the query's lower bound for GE_recordTime (the first
-- position recorded since; records/event_query.py) is read from the index alone.
-- Building them locks writes to events while it runs (seconds per million events).
CREATE INDEX events_received_at_idx ON events (received_at, ingest_seq);
CREATE INDEX events_org_seq_idx ON events (org_id, ingest_seq);
-- An enterprise's queries by business step (the most common filter) walk its own events of
-- that step in order, not every event of its own.
CREATE INDEX events_org_step_seq_idx ON events (org_id, biz_step, ingest_seq);
