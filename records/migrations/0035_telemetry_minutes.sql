-- Telemetry by device, metric and minute: the lowest and highest reading, the mean, the first
-- reading's time and how many. The cold-chain rule and a lot's sensor history read these
-- minutes, not the raw readings (a site's minutes are those of the devices bound to it, joined
-- when read: bindings change). Plain PostgreSQL computes the view when read; with TimescaleDB
-- the companion migration makes it a continuous aggregate of the same name, columns and
-- minutes (counted from 2000-01-03, as time_bucket counts them), so both give the same rows.
CREATE VIEW telemetry_minutes AS
SELECT org_id,
       device_id,
       metric,
       date_bin(interval '1 minute', time, timestamptz '2000-01-03 00:00:00+00') AS bucket,
       min(value) AS min_value,
       max(value) AS max_value,
       avg(value) AS mean_value,
       min(time) AS first_time,
       count(*) AS readings
  FROM telemetry
 GROUP BY org_id, device_id, metric, bucket;

-- A site's minutes of one metric, from the minute holding `since` on: the minutes of every
-- device bound to the site taken together. What the cold-chain rule reads. Here from the raw
-- readings, filtered before they are grouped so the (org_id, device_id, metric, time) key
-- serves it; the TimescaleDB companion reads the continuous aggregate instead, to the same
-- result (the mean may differ in its last digits: it is merged from the devices' means there).
CREATE FUNCTION site_telemetry_minutes(site text, wanted_metric text, since timestamptz)
RETURNS TABLE (bucket timestamptz, min_value double precision, max_value double precision,
               mean_value double precision, first_time timestamptz, readings bigint)
LANGUAGE sql STABLE AS $$
    SELECT date_bin(interval '1 minute', t.time, timestamptz '2000-01-03 00:00:00+00'),
           min(t.value), max(t.value), avg(t.value), min(t.time), count(*)
      FROM telemetry t
      JOIN device_sites ds ON ds.org_id = t.org_id AND ds.device_id = t.device_id
     WHERE ds.gln = site AND t.metric = wanted_metric
       AND t.time >= date_bin(interval '1 minute', since, timestamptz '2000-01-03 00:00:00+00')
     GROUP BY 1
$$;
