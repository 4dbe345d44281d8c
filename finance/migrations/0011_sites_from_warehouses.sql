-- Every warehouse finance knows becomes a site (records' `sites`, migration 0009) operated by the
-- same org. Warehouses were registered by the operator before prefixes existed, so each is an
-- operator's grant; a warehouse some financier supervises is a supervised site. Warehouses whose
-- location is not a plain GLN (an extension, or not a GS1 location) have no site.
INSERT INTO sites (gln, operator_org_id, name, supervised, granted)
SELECT substring(w.location FROM '^https://id\.gs1\.org/414/([0-9]{13})$'),
       w.operator_org_id,
       w.name,
       EXISTS (SELECT 1 FROM supervised_warehouses s WHERE s.location = w.location),
       true
  FROM warehouses w
 WHERE w.location ~ '^https://id\.gs1\.org/414/[0-9]{13}$'
ON CONFLICT (gln) DO NOTHING;
