"""Finance state does not depend on the order events arrived in, only on what happened when.

Two ingest workers, or a device that was offline, give the log a lot's events out of event
order. Here the same events get log positions in several such orders, one finance worker (small
chunks, so late events land in later chunks) applies each, and every business fact must equal
the in-order run's.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator

import psycopg
import pytest
from psycopg import sql

from epcis.identifiers import lot_uri
from finance.store import attribution
from finance.worker import FinanceConfig, FinanceWorker
from records.db import Conn
from tests.support.chaos import business_state
from tests.support.events import store_events
from tests.support.finance import seed_finance, snapshot
from tests.support.world import JOURNAL
from tracefin.simulate import gtin_for

pytestmark = pytest.mark.integration
LOTS = 40
STEPS = 7  # events per lot's lifecycle, in event-time order
PLEDGED = range(0, LOTS, 5)


def seed_unpositioned(conn: Conn) -> None:
    """Whole lifecycles stored but not yet positioned; every fifth lot pledged."""
    store_events(conn, LOTS * STEPS, "order-co")
    conn.execute("DELETE FROM log_queue")
    seed_finance(conn, "order-co", LOTS, PLEDGED)


@pytest.fixture
def databases(fresh_database_url: str) -> Iterator[Callable[[], str]]:
    """The seeded database, and a maker of fresh copies of it as seeded."""
    with psycopg.connect(fresh_database_url, autocommit=True) as conn:
        seed_unpositioned(conn)
    name = str(psycopg.conninfo.conninfo_to_dict(fresh_database_url)["dbname"])
    admin = psycopg.conninfo.make_conninfo(fresh_database_url, dbname="postgres")
    made: list[str] = []

    def copy() -> str:
        twin = f"{name}_order{len(made)}"
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(
                sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                    sql.Identifier(twin), sql.Identifier(name)
                )
            )
        made.append(twin)
        return psycopg.conninfo.make_conninfo(fresh_database_url, dbname=twin)

    yield copy
    with psycopg.connect(admin, autocommit=True) as conn:
        for twin in made:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(twin)))


def finance_after(
    database_url: str, order: Callable[[list[bytes]], list[bytes]]
) -> dict[str, object]:
    """Position the stored events in `order` (of the in-order list) and apply them all."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        in_order = [
            bytes(row[0])
            for row in conn.execute("SELECT event_hash FROM events ORDER BY ingest_seq")
        ]
        positioned = order(in_order)
        assert sorted(positioned) == sorted(in_order)
        conn.execute(
            "INSERT INTO log_entries (log_index, event_hash, event_time)"
            " SELECT p.i - 1, e.event_hash, e.event_time"
            " FROM unnest(%s::bytea[]) WITH ORDINALITY AS p (event_hash, i)"
            " JOIN events e ON e.event_hash = p.event_hash",
            (positioned,),
        )
        worker = FinanceWorker(database_url, FinanceConfig(chunk_size=25), JOURNAL)
        while worker.apply_next_chunk(conn):
            pass
        assert attribution.cursor(conn, "finance") == LOTS * STEPS
        return snapshot(conn)


def lifecycles(in_order: list[bytes]) -> list[list[bytes]]:
    return [in_order[at : at + STEPS] for at in range(0, len(in_order), STEPS)]


def shuffled(in_order: list[bytes]) -> list[bytes]:
    out = list(in_order)
    random.Random(7).shuffle(out)
    return out


def each_lifecycle_reversed(in_order: list[bytes]) -> list[bytes]:
    return [digest for lifecycle in lifecycles(in_order) for digest in reversed(lifecycle)]


def two_workers_racing(in_order: list[bytes]) -> list[bytes]:
    """Alternate messages to two workers, one of which commits its share a few messages late."""
    fast, slow = in_order[0::2], in_order[1::2]
    lag = 5
    out = list(fast[:lag])
    for at, digest in enumerate(slow):
        out.append(digest)
        out.extend(fast[lag + at : lag + at + 1])
    return out


def commissioning_last(in_order: list[bytes]) -> list[bytes]:
    """A factory line offline until the end: every commissioning arrives after everything."""
    firsts = [lifecycle[0] for lifecycle in lifecycles(in_order)]
    rest = [digest for lifecycle in lifecycles(in_order) for digest in lifecycle[1:]]
    return rest + firsts


@pytest.mark.parametrize(
    "order", [shuffled, each_lifecycle_reversed, two_workers_racing, commissioning_last]
)
def test_finance_state_is_the_same_in_any_arrival_order(
    databases: Callable[[], str], order: Callable[[list[bytes]], list[bytes]]
) -> None:
    expected = finance_after(databases(), lambda digests: digests)
    # The story happened in order: every pledged lot shipped (line frozen, flagged), every lot
    # was delivered with a PO (a receivable of all three items) and one item of each was sold.
    flags = expected["flags"]
    assert isinstance(flags, list)
    assert sorted(row[0] for row in flags if row[2] == "unauthorized_movement") == sorted(
        lot_uri(gtin_for(number), f"L{number:07d}") for number in PLEDGED
    )
    assert [status for _, status, _ in expected["lines"]] == ["frozen"]  # type: ignore[attr-defined]
    receivables = expected["receivables"]
    assert isinstance(receivables, list)
    assert len(receivables) == LOTS
    assert {row[2] for row in receivables} == {600}  # 3 items at 2.00 CNY
    lots = expected["lots"]
    assert isinstance(lots, list)
    # One of three units sold at the shop: two left there, delivered (not the whole lot sold).
    assert {(row[1], row[3]) for row in lots} == {(2, "delivered")}
    got = business_state(finance_after(databases(), order))
    want = business_state(expected)
    assert [name for name in want if got[name] != want[name]] == []
