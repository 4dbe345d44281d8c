-- Events stored before the log queue existed (0003) were never queued for a log position:
-- queue every stored event that is neither positioned nor queued, in ingest order.
INSERT INTO log_queue (ingest_seq, event_hash, event_time)
SELECT e.ingest_seq, e.event_hash, e.event_time
FROM events e
WHERE NOT EXISTS (SELECT 1 FROM log_entries l WHERE l.event_hash = e.event_hash)
  AND NOT EXISTS (SELECT 1 FROM log_queue q WHERE q.event_hash = e.event_hash)
ORDER BY e.ingest_seq
ON CONFLICT DO NOTHING;
