"""The TimescaleDB path run for real, on PGlite-TimescaleDB: migrations, keys, policies, queries."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import orjson
import psycopg
import pytest
from fastapi.testclient import TestClient
from psycopg.types.json import Jsonb
from psycopg_pool import ConnectionPool

from epcis.capture import capture
from epcis.query import parse_event_query
from finance import valuation
from finance.store import goods
from ledger import provenance_store
from records import event_store, registry_store
from records.db import Conn
from records.event_query import query_events
from records.event_store import EventToStore
from tests.support.events import make_event
from tests.support.explain import ExplainingCursor
from tests.support.pglite import NO_COPY, start_pglite_timescaledb
from tests.support.world import JOURNAL
from tracefin.embedded import ServiceUnavailable
from tracefin.processes.api import build_app
from tracefin.schema import load_migrations, migrate, set_policies
from tracefin.settings import Settings

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
        assert hypertables(conn) == {"events", "telemetry"}
        # In `public`, as on PostgreSQL (PGlite's own session starts on pg_catalog).
        schemas = conn.execute(
            "SELECT DISTINCT schemaname FROM pg_tables WHERE tablename IN ('events', 'orgs')"
        ).fetchall()
        assert schemas == [("public",)]
        aggregates = conn.execute(
            "SELECT view_name, materialized_only FROM timescaledb_information.continuous_aggregates"
        ).fetchall()
        assert aggregates == [("telemetry_minutes", False)]
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


def policies(conn: Conn) -> dict[str, dict[str, object]]:
    rows = conn.execute(
        "SELECT proc_name, config FROM timescaledb_information.jobs"
        " WHERE proc_name LIKE 'policy_%%'"
    ).fetchall()
    return {str(name): dict(config) for name, config in rows}


def test_the_telemetry_policies_come_from_the_settings(timescale_url: str) -> None:
    migrate(timescale_url)
    with psycopg.connect(timescale_url, autocommit=True) as conn:
        defaults = policies(conn)  # what the migrations schedule
    assert defaults["policy_compression"]["compress_after"] == "7 days"
    assert defaults["policy_retention"]["drop_after"] == "400 days"
    assert defaults["policy_refresh_continuous_aggregate"]["start_offset"] == "400 days"
    settings = Settings(telemetry_compress_after_days=3, telemetry_retention_days=90)
    assert set_policies(timescale_url, settings) is True
    with psycopg.connect(timescale_url, autocommit=True) as conn:
        scheduled = policies(conn)
    assert scheduled["policy_compression"]["compress_after"] == "3 days"
    assert scheduled["policy_retention"]["drop_after"] == "90 days"
    assert scheduled["policy_refresh_continuous_aggregate"]["start_offset"] == "90 days"
    assert set_policies(timescale_url, Settings(telemetry_retention_days=0)) is True
    with psycopg.connect(timescale_url, autocommit=True) as conn:
        kept = policies(conn)
    assert "policy_retention" not in kept  # 0: telemetry kept for ever
    assert kept["policy_refresh_continuous_aggregate"]["start_offset"] is None


def test_the_policies_are_nothing_to_set_on_postgresql(fresh_database_url: str) -> None:
    assert set_policies(fresh_database_url, Settings()) is False


# ---------------------------------------------------------------------------------------------
# The cold-chain rule on both backends
# ---------------------------------------------------------------------------------------------

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
GTIN = "09506000134352"
COLD, MILD = "9506000134352", "9506000134369"  # two sites' GLNs
# Site COLD's probe reads -5 °C for 31 minutes from 90 minutes 15 seconds before NOW: longer
# than the 30-minute default tolerance, starting and ending inside minutes. Site MILD's probe
# reads -5 °C for 29 minutes: inside the tolerance. A device not bound to COLD reports it warm
# throughout: it does not count.
EXCURSION_START = NOW - timedelta(minutes=90, seconds=15)


def readings_of(out_from: datetime, out_for: timedelta) -> list[tuple[datetime, float]]:
    """Two hours of readings every 20 s, out of range (-5 °C) from `out_from` for `out_for`."""
    times = [NOW - timedelta(hours=2) + timedelta(seconds=20 * i) for i in range(360)]
    times.append(out_from)  # the excursion starts at a reading of its own, mid-minute
    return [
        (time, -5.0 if out_from <= time < out_from + out_for else -20.0) for time in sorted(times)
    ]


def seed_cold_chain(conn: Conn) -> None:
    row = conn.execute(
        "INSERT INTO orgs (slug, role) VALUES ('acme', 'manufacturer') RETURNING id"
    ).fetchone()
    assert row is not None
    acme = int(row[0])
    conn.execute(
        "INSERT INTO products (gtin, owner_org_id, name, category, unit_price_minor, currency,"
        " min_temp_c, max_temp_c) VALUES (%s, %s, 'Dumplings', 'frozen', 1250, 'CNY', -25, -15)",
        (GTIN, acme),
    )
    for gln, probe, out_for in (
        (COLD, "probe-cold", timedelta(minutes=31)),
        (MILD, "probe-mild", timedelta(minutes=29)),
    ):
        conn.execute(
            "INSERT INTO sites (gln, operator_org_id, name) VALUES (%s, %s, %s)",
            (gln, acme, gln),
        )
        conn.execute(
            "INSERT INTO lots (lot_uri, gtin, lot, quantity, location) VALUES (%s, %s, %s, 10, %s)",
            (lot_of(gln), GTIN, gln, f"https://id.gs1.org/414/{gln}"),
        )
        for device in (probe, f"{probe}-unbound"):
            conn.execute(
                "INSERT INTO devices (org_id, device_id, unsigned) VALUES (%s, %s, true)",
                (acme, device),
            )
        conn.execute(
            "INSERT INTO device_sites (org_id, device_id, gln) VALUES (%s, %s, %s)",
            (acme, probe, gln),
        )
        rows = [(time, probe, value) for time, value in readings_of(EXCURSION_START, out_for)]
        rows += [(time, f"{probe}-unbound", 30.0) for time, _ in readings_of(NOW, timedelta())]
        # One statement: executemany's pipeline mode is not carried by pglite-socket.
        conn.execute(
            "INSERT INTO telemetry (time, org_id, device_id, metric, value, received_at)"
            " SELECT time, %s, device_id, 'temperature', value, time"
            " FROM unnest(%s::timestamptz[], %s::text[], %s::float8[])"
            " AS r (time, device_id, value)",
            (
                acme,
                [time for time, _, _ in rows],
                [device for _, device, _ in rows],
                [value for _, _, value in rows],
            ),
        )


def lot_of(gln: str) -> str:
    return f"https://id.gs1.org/01/{GTIN}/10/{gln}"


def cold_chain_flags(
    url: str, *, materialise: bool = False, compress: bool = False
) -> tuple[int, list[tuple[str, str, str]]]:
    with psycopg.connect(url, autocommit=True) as conn:
        seed_cold_chain(conn)
        if materialise:  # the refresh policy's work, done now: the minutes read are stored
            conn.execute("CALL refresh_continuous_aggregate('telemetry_minutes', NULL, NULL)")
        if compress:  # the compression policy's work, done now on every chunk
            compressed = conn.execute(
                "SELECT count(compress_chunk(c)) FROM show_chunks('telemetry') AS c"
            ).fetchone()
            assert compressed is not None
            assert compressed[0] >= 1
        raised = valuation.check_cold_chain(conn, JOURNAL, NOW)
        flags = conn.execute(
            "SELECT lot_uri, kind, detail FROM risk_flags WHERE cleared_at IS NULL ORDER BY 1"
        ).fetchall()
        # What the sensor-history route reads, from the same minutes.
        minutes = goods.site_minutes(
            conn, COLD, "temperature", NOW - timedelta(hours=2), NOW, 10_000
        )
    assert [(m.bucket, m.min_value, m.max_value, m.readings) for m in minutes] == cold_minutes()
    return raised, [(str(lot), str(kind), str(detail)) for lot, kind, detail in flags]


def cold_minutes() -> list[tuple[datetime, float, float, int]]:
    """Site COLD's bound probe's readings by the minute, computed here."""
    by_minute: dict[datetime, list[float]] = {}
    for time, value in readings_of(EXCURSION_START, timedelta(minutes=31)):
        by_minute.setdefault(time.replace(second=0, microsecond=0), []).append(value)
    return [(start, min(v), max(v), len(v)) for start, v in sorted(by_minute.items())]


EXPECTED_FLAGS = (
    1,
    [
        (
            lot_of(COLD),
            "cold_chain_breach",
            f"temperature outside -25..-15 °C since {EXCURSION_START.isoformat()}",
        )
    ],
)


def test_the_cold_chain_rule_flags_the_seeded_excursion_on_postgresql(
    fresh_database_url: str,
) -> None:
    assert cold_chain_flags(fresh_database_url) == EXPECTED_FLAGS


@pytest.mark.parametrize(
    ("materialise", "compress"),
    [(False, False), (True, False), (True, True)],
    ids=["real-time", "materialised", "materialised-compressed"],
)
def test_the_cold_chain_rule_flags_the_seeded_excursion_on_timescaledb(
    timescale_url: str, materialise: bool, compress: bool
) -> None:
    """The same readings, the same flag, whether the minutes come from the aggregate's
    materialised rows or are computed from the raw readings when read, and with the readings
    in compressed chunks (the minutes with an excursion's edges are read reading by reading)."""
    migrate(timescale_url)
    flags = cold_chain_flags(timescale_url, materialise=materialise, compress=compress)
    assert flags == EXPECTED_FLAGS


# ---------------------------------------------------------------------------------------------
# Event lookups: index-served on both backends
# ---------------------------------------------------------------------------------------------

ITEM = "https://id.gs1.org/01/09506000134352/21/"
LOT = "https://id.gs1.org/01/09506000134352/10/L"
# Twelve weeks of events, one every 6 minutes: twelve 7-day chunks on TimescaleDB.
SEED_EVENTS = """
INSERT INTO events (event_hash, event_time, event_time_zone_offset, event_type, epcs, lots,
                    org_id, device_id, topic, received_at, event)
SELECT decode(md5(i::text) || md5((i + 1)::text), 'hex'),
       timestamptz '2026-01-01 00:00+00' + i * interval '6 minutes', '+00:00', 'ObjectEvent',
       ARRAY[%(item)s || i], ARRAY[%(lot)s || (i / 200)], %(org)s, 'gw-1', 't', now(),
       jsonb_build_object(
           'epcList', jsonb_build_array(%(item)s || i),
           'quantityList',
           jsonb_build_array(jsonb_build_object('epcClass', %(lot)s || (i / 200), 'quantity', 1)))
  FROM generate_series(1, 20000) AS i
"""
_SCAN = re.compile(r"(Seq Scan|Index Scan|Index Only Scan|Bitmap Heap Scan)\b.* on (\S+)")


def unserved_scans(plan: str) -> list[str]:
    """The scans of `events` (or of its chunks) in a text plan that no index condition serves:
    a sequential scan, or an index walked whole with a filter."""
    lines = plan.splitlines()
    unserved = []
    for number, line in enumerate(lines):
        scan = _SCAN.search(line)
        if scan is None or not re.match(r"events$|_hyper_\d+_\d+_chunk$", scan.group(2)):
            continue
        depth = len(line) - len(line.lstrip(" ->"))
        details = []
        for detail in lines[number + 1 :]:
            if "->" in detail or len(detail) - len(detail.lstrip()) <= depth:
                break
            details.append(detail)
        if scan.group(1) == "Seq Scan" or not any("Cond:" in detail for detail in details):
            unserved.append(line.strip())
    return unserved


@pytest.mark.parametrize("backend", ["postgresql", "timescaledb"])
def test_event_lookups_by_hash_epc_lot_and_position_are_index_served(
    request: pytest.FixtureRequest, backend: str
) -> None:
    """What the API, the pages and the audit look events up by: hash, item, lot, position in
    ingest order. The tables are small here, so sequential scans are turned off: the plans then
    show whether an index can serve each lookup (docs/timescaledb.md shows them)."""
    url = request.getfixturevalue(
        "timescale_url" if backend == "timescaledb" else "fresh_database_url"
    )
    if backend == "timescaledb":
        migrate(url)
    with psycopg.connect(url, autocommit=True) as setup:
        row = setup.execute(
            "INSERT INTO orgs (slug, role) VALUES ('acme', 'manufacturer') RETURNING id"
        ).fetchone()
        assert row is not None
        setup.execute(SEED_EVENTS, {"item": ITEM, "lot": LOT, "org": row[0]})
        setup.execute("ANALYZE events")
    digest = bytes.fromhex(hashlib.md5(b"7").hexdigest() + hashlib.md5(b"8").hexdigest())
    with psycopg.connect(url, autocommit=True, cursor_factory=ExplainingCursor) as conn:
        psycopg.Cursor(conn).execute("SET enable_seqscan = off")
        assert event_store.event_exists(conn, digest)
        assert provenance_store.event_bodies(conn, [digest]) != {}
        by_item = parse_event_query([("MATCH_epc", f"{ITEM}7")])
        by_lot = parse_event_query([("MATCH_epcClass", f"{LOT}3")])
        assert len(query_events(conn, by_item, None).events) == 1
        assert len(query_events(conn, by_lot, None).events) == 100  # a page
        after = parse_event_query([("nextPageToken", "19900")])
        assert len(query_events(conn, after, None).events) == 100
        assert len(provenance_store.mentioning_item(conn, f"{ITEM}7")) == 1
        assert len(provenance_store.mentioning_lot(conn, f"{LOT}3")) == 200
        plans: list[str] = conn.plans  # type: ignore[attr-defined]
    assert len(plans) == 7
    assert [unserved_scans(plan) for plan in plans] == [[]] * 7
    # The item and lot lookups are served by the GIN indexes (on each chunk).
    for plan in (plans[2], plans[3], plans[5], plans[6]):
        assert re.search(r"Bitmap Index Scan on \S*events_(epcs|lots)_idx", plan), plan


# ---------------------------------------------------------------------------------------------
# What PGlite-TimescaleDB cannot run (docs/timescaledb.md#what-does-not-run-there)
# ---------------------------------------------------------------------------------------------


@pytest.mark.skip(reason=NO_COPY)
def test_events_are_stored_by_the_copy_write_path_on_timescaledb(timescale_url: str) -> None:
    migrate(timescale_url)
    with psycopg.connect(timescale_url, autocommit=True) as conn:
        registry_store.add_org(conn, "acme", "manufacturer", ["0614141"])
        registry_store.add_device(conn, "acme", "plc-1", None)
        device = registry_store.find_devices(conn, [("acme", "plc-1")])[("acme", "plc-1")]
        now = datetime.now(UTC)
        result = capture(
            orjson.dumps([make_event()]),
            device,
            now=now,
            max_payload_bytes=1 << 20,
            max_future_skew=timedelta(minutes=10),
        )
        with conn.transaction():
            stored = event_store.insert_events(
                conn, [EventToStore(a, device.org_id, "plc-1", "t", now) for a in result.accepted]
            )
    assert len(stored) == 1


def test_the_api_serves_events_lots_and_sensor_history_from_timescaledb(
    timescale_url: str,
) -> None:
    """The API app over PGlite-TimescaleDB (a pool of its one connection): a regulator's event
    query by EPC, a lot's status, and its sensor history from the continuous aggregate."""
    migrate(timescale_url)
    with psycopg.connect(timescale_url, autocommit=True) as conn:
        seed_cold_chain(conn)
        _, key = registry_store.add_org(conn, "watchdog", "regulator")
        org = conn.execute("SELECT id FROM orgs WHERE slug = 'acme'").fetchone()
        assert org is not None
        conn.execute(SEED_EVENTS, {"item": ITEM, "lot": LOT, "org": org[0]})
    settings = Settings(_env_file=None, database_url=timescale_url)  # type: ignore[call-arg]
    auth = {"Authorization": f"Bearer {key}"}
    with (
        ConnectionPool(timescale_url, min_size=1, max_size=1, kwargs={"autocommit": True}) as pool,
        TestClient(build_app(settings, pool), raise_server_exceptions=False) as client,
    ):
        events = client.get("/v1/events", params={"MATCH_epc": f"{ITEM}7"}, headers=auth)
        assert events.status_code == 200, events.text
        assert len(events.json()["events"]) == 1
        lot = lot_of(COLD).removeprefix("https://id.gs1.org")
        status = client.get(f"/v1/lots{lot}", headers=auth)
        assert status.status_code == 200, status.text
        assert status.json()["location"] == f"https://id.gs1.org/414/{COLD}"
        window = {
            "since": (NOW - timedelta(hours=2)).isoformat(),
            "until": NOW.isoformat(),
            "limit": 10_000,
        }
        history = client.get(f"/v1/sensor-history{lot}", params=window, headers=auth)
        assert history.status_code == 200, history.text
        minutes = [
            (datetime.fromisoformat(m["start"]), m["lowest"], m["highest"], m["readings"])
            for m in history.json()["minutes"]
        ]
        assert minutes == cold_minutes()
