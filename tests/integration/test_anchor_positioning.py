"""The anchor leader's positioning: drains a backlog per step, dense and in order, kill-safe."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from datetime import timedelta

import pytest

from ledger import log_store
from ledger.anchoring import AnchorConfig, _LeaderState
from records.db import Conn
from tracefin.settings import DEVNET_PRIVATE_KEY

pytestmark = pytest.mark.integration

NOWHERE = "http://127.0.0.1:9"  # positioning needs no chain: nothing may be sent to it


def queue_events(conn: Conn, count: int) -> None:
    """`count` queued events with ingest_seq 1..count and digest sha256(seq): cheap to check."""
    conn.execute(
        "INSERT INTO log_queue (ingest_seq, event_hash, event_time)"
        " SELECT g, sha256(g::text::bytea), now() FROM generate_series(1, %s) g",
        (count,),
    )


def assert_log_is_a_dense_prefix(conn: Conn, total: int) -> int:
    """Positions 0..n-1 hold ingest_seq 1..n in order; the rest is still queued, none twice."""
    row = conn.execute(
        "SELECT count(*), coalesce(max(log_index) + 1, 0),"
        " count(*) FILTER (WHERE event_hash <> sha256((log_index + 1)::text::bytea))"
        " FROM log_entries"
    ).fetchone()
    assert row is not None
    positioned, size, out_of_order = (int(value) for value in row)
    assert positioned == size, "a position was skipped"
    assert out_of_order == 0, "positions do not follow ingest order"
    row = conn.execute(
        "SELECT count(*), coalesce(min(ingest_seq), %s) FROM log_queue", (size + 1,)
    ).fetchone()
    assert row is not None
    assert (int(row[0]), int(row[1])) == (total - size, size + 1)
    return size


def leader(conn: Conn, chunk: int, budget: timedelta) -> _LeaderState:
    config = AnchorConfig(
        batch_size=10,
        batch_max_wait=timedelta(milliseconds=100),
        position_chunk=chunk,
        position_budget=budget,
    )
    return _LeaderState(conn, NOWHERE, DEVNET_PRIVATE_KEY, config)


def test_one_step_positions_a_backlog_of_many_chunks(conn: Conn) -> None:
    queue_events(conn, 250)
    state = leader(conn, chunk=40, budget=timedelta(hours=1))
    assert state.assign_positions() == 250
    assert assert_log_is_a_dense_prefix(conn, 250) == 250
    assert state.assign_positions() == 0


def test_a_spent_budget_still_positions_one_chunk_a_step(conn: Conn) -> None:
    queue_events(conn, 250)
    state = leader(conn, chunk=40, budget=timedelta(0))
    moved = [state.assign_positions() for _ in range(7)]
    assert moved == [40, 40, 40, 40, 40, 40, 10]
    assert assert_log_is_a_dense_prefix(conn, 250) == 250


def test_a_leader_killed_while_positioning_neither_skips_nor_doubles(
    conn: Conn, fresh_database_url: str
) -> None:
    total = 200_000
    queue_events(conn, total)
    script = textwrap.dedent(
        f"""
        from datetime import timedelta
        import psycopg
        from ledger.anchoring import AnchorConfig, _LeaderState
        config = AnchorConfig(
            batch_size=10,
            batch_max_wait=timedelta(milliseconds=100),
            position_chunk=100,
            position_budget=timedelta(hours=1),
        )
        with psycopg.connect({fresh_database_url!r}, autocommit=True) as conn:
            _LeaderState(conn, {NOWHERE!r}, {DEVNET_PRIVATE_KEY!r}, config).assign_positions()
        """
    )
    process = subprocess.Popen([sys.executable, "-c", script])
    try:
        deadline = time.monotonic() + 60
        while log_store.log_size(conn) == 0:
            assert process.poll() is None, "the positioning process died by itself"
            assert time.monotonic() < deadline, "nothing was positioned"
            time.sleep(0.01)
        os.kill(process.pid, signal.SIGKILL)
    finally:
        process.kill()
        process.wait()
    # The server may still run the statement the client was killed in: wait until it is done.
    while conn.execute(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
        " AND pid <> pg_backend_pid() AND state = 'active'"
    ).fetchone() != (0,):
        time.sleep(0.05)
    at_kill = assert_log_is_a_dense_prefix(conn, total)
    assert 0 < at_kill < total, "killed before it started or after it finished"

    # The next leader carries on from where the killed one stopped.
    while log_store.assign_positions(conn, 20_000):
        pass
    assert assert_log_is_a_dense_prefix(conn, total) == total
