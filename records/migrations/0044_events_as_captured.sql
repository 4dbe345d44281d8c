-- Fidelity (issue 16 item 3): each event as it was captured (its JSON values as the document
-- had them; for an XML document, as the XML binding reads it into the JSON binding), for the
-- REST binding's answers. `event` keeps the normalised form the system itself reads (pages,
-- finance, lots, proofs); `as_captured` is NULL where the two are the same, so only events
-- that normalisation rewrote (EPC URNs, Digital Links on other hosts) take more room. Events
-- stored before this migration have no captured form and are answered normalised.
ALTER TABLE events ADD COLUMN as_captured jsonb;
