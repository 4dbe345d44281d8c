-- Finance folds each lot's events in event time, whatever order they arrived in (two ingest
-- workers, or a device that was offline, commit a lot's events out of order).

-- The newest event (by event time, hash breaking ties) folded into each lot: an event that
-- sorts before it arrived late, and the lot is folded again from its evidence.
ALTER TABLE lots
    ADD COLUMN latest_event_time timestamptz,
    ADD COLUMN latest_event_hash bytea;

UPDATE lots SET (latest_event_time, latest_event_hash) = (
    SELECT e.event_time, e.event_hash
    FROM lot_evidence le JOIN events e ON e.event_hash = le.event_hash
    WHERE le.lot_uri = lots.lot_uri
    ORDER BY e.event_time DESC, e.event_hash DESC
    LIMIT 1
);

-- Identifiers (items, pallets) that applied events named before any lot claimed them. When a
-- late commissioning or packing makes one a member, those events are applied to its lot.
CREATE TABLE unattributed_epcs (
    epc       text NOT NULL,
    log_index bigint NOT NULL,
    PRIMARY KEY (epc, log_index)
);

-- Events the finance worker already applied whose identifiers no lot has claimed yet.
INSERT INTO unattributed_epcs (epc, log_index)
SELECT DISTINCT u.epc, l.log_index
FROM log_entries l
JOIN events e ON e.event_hash = l.event_hash
CROSS JOIN LATERAL unnest(e.epcs) AS u (epc)
WHERE l.log_index < COALESCE((SELECT next_index FROM log_cursors WHERE worker = 'finance'), 0)
  AND NOT EXISTS (SELECT 1 FROM lot_members m WHERE m.epc = u.epc)
ON CONFLICT DO NOTHING;
