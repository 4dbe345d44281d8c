-- Where the goods are, as counting evidence says (issue 13; epcis.authority.Whereabouts): the
-- GLN of the site holding them; whether a counting movement has them in transit; the orgs
-- the shipment consigned them to. Another site's claim about goods held in a supervised site
-- counts only from that site's operator or their owner (`held_elsewhere`); goods in transit
-- arrive only where they were consigned, with their carrier, or by their owner's word
-- (`not_consignee`). A movement freezes a line only when the goods were at the pledged site
-- at that point of their history.
ALTER TABLE lots
    ADD COLUMN held_at text,
    ADD COLUMN in_transit boolean NOT NULL DEFAULT false,
    ADD COLUMN consignees text[] NOT NULL DEFAULT '{}';
-- Lots folded before these columns: held at the site of their last place, unless in transit
-- (to no named consignee: the next arrival counts from the site's operator, as it did).
UPDATE lots SET held_at = substring(location FROM '^https://id\.gs1\.org/41[47]/([0-9]{13})')
 WHERE custody IS DISTINCT FROM 'in_transit';
