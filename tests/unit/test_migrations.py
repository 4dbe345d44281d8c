"""The shipped migrations: numbered, in order, with TimescaleDB companions where they belong."""

from __future__ import annotations

from tracefin.schema import load_migrations


def test_migrations_are_numbered_without_gaps() -> None:
    versions = [migration.version for migration in load_migrations()]
    assert versions == list(range(1, len(versions) + 1))


def test_time_series_tables_become_hypertables_when_timescaledb_is_present() -> None:
    migrations = {migration.name: migration for migration in load_migrations()}
    companion = migrations["events"].timescale_sql
    assert companion is not None
    assert "create_hypertable('events', 'event_time'" in companion
    assert "create_hypertable('telemetry', 'time'" in companion
    assert "add_compression_policy('telemetry'" in companion
    assert migrations["registry"].timescale_sql is None


def test_unique_keys_of_hypertables_include_their_time_column() -> None:
    # TimescaleDB refuses unique indexes without the partitioning column.
    events_sql = {m.name: m.sql for m in load_migrations()}["events"]
    assert "PRIMARY KEY (event_hash, event_time)" in events_sql
    assert "UNIQUE (org_id, device_id, metric, time)" in events_sql
