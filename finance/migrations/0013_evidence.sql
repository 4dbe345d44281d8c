-- Finance believes only evidence (issue 13): every event applied to a lot is judged by the
-- authority rules (epcis/authority.py); one that does not count changes nothing about the
-- collateral but stays in the lot's evidence, marked, with the reason.

-- Whether the event counts as evidence for the lot, why not, and how many attestations of it
-- there were when it was judged: a later one (the rightful party attesting an event someone
-- else captured first) makes the worker fold the lot again.
ALTER TABLE lot_evidence
    ADD COLUMN counts boolean NOT NULL DEFAULT true,
    ADD COLUMN reason text,
    ADD COLUMN attestations_seen integer NOT NULL DEFAULT 0;
-- The worker looks for new attestations of the (few) evidence rows that did not count.
CREATE INDEX lot_evidence_unattested_idx ON lot_evidence (event_hash) WHERE NOT counts;

-- The carrier holding the goods in transit (org slug): handed custody by a counting shipping
-- event that names it as possessing party; only its attestations make transit claims count.
ALTER TABLE lots ADD COLUMN custodian text;
