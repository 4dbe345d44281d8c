"""Killing the finance worker mid-stream changes nothing: same end state as an uninterrupted run."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from finance.store import attribution
from ledger import log_store
from records.db import Conn
from tests.support.events import store_events
from tests.support.finance import seed_finance, snapshot
from tests.support.processes import WorkerProcess

pytestmark = pytest.mark.integration
LOTS = 300  # 7 events each: 2 100 log positions


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


def run_until_done(worker: WorkerProcess, conn: Conn, kills: tuple[int, ...]) -> int:
    worker.start()
    killed = 0
    for threshold in kills:
        while attribution.cursor(conn, "finance") < threshold:
            time.sleep(0.01)
        worker.kill()
        killed += 1
        worker.start()
    while attribution.cursor(conn, "finance") < LOTS * 7:
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
