-- Every warehouse sensor finance knows becomes a device bound to its warehouse's site (records'
-- `device_sites`, migration 0010; the sites come from the warehouses in 0011). A sensor at a
-- location that is not a plain GLN has no site, so no binding.
INSERT INTO device_sites (org_id, device_id, gln)
SELECT s.org_id, s.device_id, t.gln
  FROM warehouse_sensors s
  JOIN sites t ON s.location = 'https://id.gs1.org/414/' || t.gln
ON CONFLICT DO NOTHING;
