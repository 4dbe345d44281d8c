-- Pledged quantities (issue 14): a pledge covers the units the lot held when it was pledged,
-- less what the financier released since; a partial release lowers it, and only the units
-- still pledged and still in the lot are collateral. Items split off a lot (a partial
-- shipment, a sale of some units) are kept apart from it, so the rest stay where they are.
ALTER TABLE pledges ADD COLUMN quantity integer NOT NULL DEFAULT 0 CHECK (quantity >= 0);
UPDATE pledges p SET quantity = l.quantity FROM lots l WHERE l.lot_uri = p.lot_uri;
ALTER TABLE pledges ALTER COLUMN quantity DROP DEFAULT;
ALTER TABLE lots ADD COLUMN departed text[] NOT NULL DEFAULT '{}';
