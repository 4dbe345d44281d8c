-- Applied after 0033 only where the timescaledb extension is available: the view becomes a
-- continuous aggregate. Real-time (materialized_only = false): minutes the refresh policy has
-- not materialised yet are computed from the raw readings when read, so the newest minutes
-- are never missing. The policy below is the default; `tracefin db migrate` sets its window to
-- the telemetry retention (TRACEFIN_TELEMETRY_RETENTION_DAYS).
DROP FUNCTION site_telemetry_minutes(text, text, timestamptz);
DROP VIEW telemetry_minutes;
CREATE MATERIALIZED VIEW telemetry_minutes
WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS
SELECT org_id,
       device_id,
       metric,
       time_bucket(interval '1 minute', time) AS bucket,
       min(value) AS min_value,
       max(value) AS max_value,
       avg(value) AS mean_value,
       min(time) AS first_time,
       count(*) AS readings
  FROM telemetry
 GROUP BY org_id, device_id, metric, time_bucket(interval '1 minute', time)
  WITH NO DATA;
SELECT add_continuous_aggregate_policy('telemetry_minutes',
                                       start_offset => interval '400 days',
                                       end_offset => interval '1 minute',
                                       schedule_interval => interval '1 minute');

-- The site's minutes from the aggregate: the minutes of the site's devices merged.
CREATE FUNCTION site_telemetry_minutes(site text, wanted_metric text, since timestamptz)
RETURNS TABLE (bucket timestamptz, min_value double precision, max_value double precision,
               mean_value double precision, first_time timestamptz, readings bigint)
LANGUAGE sql STABLE AS $$
    SELECT m.bucket, min(m.min_value), max(m.max_value),
           sum(m.mean_value * m.readings) / sum(m.readings), min(m.first_time),
           sum(m.readings)::bigint
      FROM telemetry_minutes m
      JOIN device_sites ds ON ds.org_id = m.org_id AND ds.device_id = m.device_id
     WHERE ds.gln = site AND m.metric = wanted_metric
       AND m.bucket >= time_bucket(interval '1 minute', since)
     GROUP BY m.bucket
$$;
