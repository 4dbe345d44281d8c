-- Applied after 0002 only where the timescaledb extension is available.
SELECT create_hypertable('events', 'event_time', chunk_time_interval => interval '7 days',
                         migrate_data => true);
SELECT create_hypertable('telemetry', 'time', chunk_time_interval => interval '1 day',
                         migrate_data => true);
ALTER TABLE telemetry SET (timescaledb.compress, timescaledb.compress_segmentby = 'org_id, device_id, metric');
SELECT add_compression_policy('telemetry', interval '7 days');
SELECT add_retention_policy('telemetry', interval '400 days');
