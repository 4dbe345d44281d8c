"""Killing the finance worker mid-stream changes nothing: same end state as an uninterrupted run."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from epcis.identifiers import lot_uri
from finance import service, store
from ledger import log_store
from records import registry_store
from records.db import Conn
from tests.integration.conftest import WorkerProcess
from tests.support.events import store_events
from tracefin.simulate import WAREHOUSE_GLN, gtin_for

pytestmark = pytest.mark.integration
WAREHOUSE = f"https://id.gs1.org/414/{WAREHOUSE_GLN}"
LOTS = 300  # 7 events each: 2 100 log positions


def snapshot(conn: Conn) -> dict[str, object]:
    """Everything the worker decides, without ids and wall-clock times."""
    queries = {
        "cursor": "SELECT next_index FROM log_cursors",
        "lots": "SELECT lot_uri, quantity, location, custody, best_before, recalled,"
        " last_inspection_disposition, last_inspection_hash, updated_log_index FROM lots"
        " ORDER BY lot_uri",
        "members": "SELECT epc, lot_uri FROM lot_members ORDER BY epc",
        "evidence": "SELECT lot_uri, log_index, event_hash FROM lot_evidence ORDER BY 1, 2",
        "flags": "SELECT lot_uri, line_id, kind, detail FROM risk_flags ORDER BY 1, 3",
        "lines": "SELECT id, status, drawn_minor FROM credit_lines ORDER BY id",
        "movements": "SELECT line_id, kind, amount_minor FROM line_movements ORDER BY 1, 2, 3",
        "receivables": "SELECT lot_uri, purchase_order, amount_minor, advance_minor"
        " FROM receivables ORDER BY 1",
        "journal": "SELECT actor, action, subject, detail::text, log_index FROM finance_journal"
        " WHERE log_index IS NOT NULL ORDER BY log_index, action, subject",
    }
    return {name: conn.execute(query).fetchall() for name, query in queries.items()}  # type: ignore[arg-type]


@pytest.fixture
def twin_databases(fresh_database_url: str) -> Iterator[tuple[str, str]]:
    """The seeded database and an identical copy of it."""
    with psycopg.connect(fresh_database_url, autocommit=True) as conn:
        seed(conn)
    name = psycopg.conninfo.conninfo_to_dict(fresh_database_url)["dbname"]
    twin = f"{name}_twin"
    admin = psycopg.conninfo.make_conninfo(fresh_database_url, dbname="postgres")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(
            sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                sql.Identifier(twin), sql.Identifier(str(name))
            )
        )
    yield fresh_database_url, psycopg.conninfo.make_conninfo(fresh_database_url, dbname=twin)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (twin,)
        )
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(twin)))


def seed(conn: Conn) -> None:
    """A log of whole lifecycles; every tenth lot pledged, so shipments freeze its line."""
    org = "restart-co"
    store_events(conn, LOTS * 7, org)
    assert log_store.assign_positions(conn, LOTS * 7) == LOTS * 7
    seed_finance(conn, org, LOTS, pledged=range(0, LOTS, 10))


def seed_finance(conn: Conn, org: str, lots: int, pledged: range) -> None:
    """A bank supervising `org`'s warehouse, a product per lot, a line, and `pledged` lots
    pledged on it (in the database only)."""
    registry_store.add_org(conn, "bank", "financier")
    service.add_warehouse(conn, org, WAREHOUSE, "Cold store")
    service.supervise(conn, "bank", WAREHOUSE)
    for number in range(lots):
        service.add_product(conn, org, gtin_for(number), f"P{number}", "frozen", "2.00", "CNY")
    line = service.open_line(conn, "bank", org, "100.00", "CNY")
    for number in pledged:
        uri = lot_uri(gtin_for(number), f"L{number:07d}")
        conn.execute(
            "INSERT INTO lots (lot_uri, gtin, lot) VALUES (%s, %s, %s)",
            (uri, gtin_for(number), f"L{number:07d}"),
        )
        store.add_pledge(conn, uri, line.id, number.to_bytes(32, "big"), WAREHOUSE, b"")


def run_until_done(worker: WorkerProcess, conn: Conn, kills: tuple[int, ...]) -> int:
    worker.start()
    killed = 0
    for threshold in kills:
        while store.cursor(conn, "finance") < threshold:
            time.sleep(0.01)
        worker.kill()
        killed += 1
        worker.start()
    while store.cursor(conn, "finance") < LOTS * 7:
        assert worker.alive, worker.log_text()
        time.sleep(0.05)
    worker.terminate()
    return killed


def test_kill_and_restart_reaches_the_same_end_state(
    twin_databases: tuple[str, str], tmp_path: Path
) -> None:
    interrupted_url, clean_url = twin_databases
    with psycopg.connect(interrupted_url, autocommit=True) as conn:
        worker = WorkerProcess(
            ["finance"], {"TRACEFIN_DATABASE_URL": interrupted_url}, tmp_path, "finance-killed"
        )
        assert run_until_done(worker, conn, (400, 1100, 1700)) == 3
        interrupted = snapshot(conn)
    with psycopg.connect(clean_url, autocommit=True) as conn:
        worker = WorkerProcess(
            ["finance"], {"TRACEFIN_DATABASE_URL": clean_url}, tmp_path, "finance-clean"
        )
        assert run_until_done(worker, conn, ()) == 0
        clean = snapshot(conn)
    assert interrupted["cursor"] == [(LOTS * 7,)]
    # The story did happen: shipments of pledged goods froze the line, sales routed proceeds.
    assert tuple(status for _, status, _ in clean["lines"]) == ("frozen",)  # type: ignore[misc]
    assert any(kind == "unauthorized_movement" for _, _, kind, _ in clean["flags"])  # type: ignore[misc]
    assert clean["receivables"]
    for name in clean:
        assert interrupted[name] == clean[name], name
