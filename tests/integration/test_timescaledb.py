"""The TimescaleDB path run for real, on PGlite-TimescaleDB: migrations, keys, policies, queries."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from psycopg.types.json import Jsonb

from records.db import Conn
from tests.support.pglite import start_pglite_timescaledb
from tracefin.embedded import ServiceUnavailable
from tracefin.schema import load_migrations, migrate

pytestmark = pytest.mark.integration

T0 = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)


@pytest.fixture
def timescale_url() -> Iterator[str]:
    """An empty PGlite-TimescaleDB server of this test's own (it serves one database)."""
    try:
        server = start_pglite_timescaledb()
    except ServiceUnavailable as exc:
        pytest.skip(f"no PGlite-TimescaleDB: {exc}")
    yield server.url
    server.stop()


def hypertables(conn: Conn) -> set[str]:
    rows = conn.execute("SELECT hypertable_name FROM timescaledb_information.hypertables")
    return {str(name) for (name,) in rows}


def applied(conn: Conn) -> list[tuple[int, bool]]:
    rows = conn.execute("SELECT version, timescale FROM schema_migrations ORDER BY version")
    return [(int(version), bool(timescale)) for version, timescale in rows]


def seed(conn: Conn) -> int:
    """An org, an event and a day of readings: what a database holds before later migrations."""
    row = conn.execute(
        "INSERT INTO orgs (slug, role) VALUES ('acme', 'manufacturer') RETURNING id"
    ).fetchone()
    assert row is not None
    org_id = int(row[0])
    conn.execute(
        "INSERT INTO events (event_hash, event_time, event_time_zone_offset, event_type,"
        " epcs, lots, org_id, device_id, topic, received_at, event)"
        " VALUES (%s, %s, '+00:00', 'ObjectEvent', %s, %s, %s, 'gw-1', 't', %s, %s)",
        (
            hashlib.sha256(b"event").digest(),
            T0,
            ["https://id.gs1.org/01/09506000134352/21/1"],
            ["https://id.gs1.org/01/09506000134352/10/L1"],
            org_id,
            T0,
            Jsonb({"type": "ObjectEvent"}),
        ),
    )
    for minute in range(0, 24 * 60, 30):
        conn.execute(
            "INSERT INTO telemetry (time, org_id, device_id, metric, value, received_at)"
            " VALUES (%s, %s, 'probe-1', 'temperature', %s, %s)",
            (T0 + timedelta(minutes=minute), org_id, -20.0 + minute % 7, T0),
        )
    return org_id


def test_every_migration_applies_in_its_timescaledb_variant_to_an_empty_database(
    timescale_url: str,
) -> None:
    names = migrate(timescale_url)
    assert names == [f"{m.version:04d}_{m.name}" for m in load_migrations()]
    with psycopg.connect(timescale_url, autocommit=True) as conn:
        assert applied(conn) == [(m.version, True) for m in load_migrations()]
        assert {"events", "telemetry"} <= hypertables(conn)
    assert migrate(timescale_url) == []  # idempotent: nothing pending the second time


def test_migrations_apply_in_their_timescaledb_variant_to_a_database_with_data(
    timescale_url: str,
) -> None:
    """Up to the event store, data in it, then every later migration over that data."""
    migrate(timescale_url, until=2)
    with psycopg.connect(timescale_url, autocommit=True) as conn:
        seed(conn)
    later = migrate(timescale_url)
    assert later == [f"{m.version:04d}_{m.name}" for m in load_migrations() if m.version > 2]
    with psycopg.connect(timescale_url, autocommit=True) as conn:
        assert all(timescale for _, timescale in applied(conn))
        assert conn.execute("SELECT count(*) FROM events").fetchone() == (1,)
        assert conn.execute("SELECT count(*) FROM telemetry").fetchone() == (48,)
        # A day of readings from 08:00 in a hypertable of one-day chunks: two chunks.
        chunks = conn.execute(
            "SELECT count(*) FROM timescaledb_information.chunks"
            " WHERE hypertable_name = 'telemetry'"
        ).fetchone()
        assert chunks == (2,)


def test_the_hypertables_keep_their_unique_keys(timescale_url: str) -> None:
    """Redelivered readings and events are no-ops on a hypertable as on a plain table: the
    unique keys include the time column, as TimescaleDB requires."""
    migrate(timescale_url)
    with psycopg.connect(timescale_url, autocommit=True) as conn:
        seed(conn)
        again = conn.execute(
            "INSERT INTO telemetry (time, org_id, device_id, metric, value, received_at)"
            " SELECT time, org_id, device_id, metric, value, received_at FROM telemetry"
            " ON CONFLICT (org_id, device_id, metric, time) DO NOTHING"
        )
        assert again.rowcount == 0
        with pytest.raises(psycopg.errors.UniqueViolation):
            conn.execute(
                "INSERT INTO events OVERRIDING SYSTEM VALUE SELECT * FROM events"  # same hash, time
            )
        keys = conn.execute(
            "SELECT c.relname, i.indisunique FROM pg_index i"
            " JOIN pg_class c ON c.oid = i.indexrelid"
            " WHERE i.indrelid = ANY (ARRAY['events'::regclass, 'telemetry'::regclass])"
            " ORDER BY 1"
        ).fetchall()
        assert ("events_pkey", True) in keys
        assert ("telemetry_org_id_device_id_metric_time_key", True) in keys


def test_the_telemetry_policies_are_scheduled(timescale_url: str) -> None:
    migrate(timescale_url)
    with psycopg.connect(timescale_url, autocommit=True) as conn:
        jobs = conn.execute(
            "SELECT proc_name, hypertable_name FROM timescaledb_information.jobs"
            " WHERE hypertable_name IS NOT NULL ORDER BY 1"
        ).fetchall()
    assert ("policy_compression", "telemetry") in jobs
    assert ("policy_retention", "telemetry") in jobs
