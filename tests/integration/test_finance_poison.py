"""One event finance cannot apply never stops monitoring for everyone else (issue 14, robustness).

A product row priced beyond what the bounds at the edge now allow (written before them, or by
hand) makes a delivery's receivable overflow storage. The finance worker sets that one log
position aside (a finance dead letter, journaled `event_not_applied`) and carries on: another
lot's unauthorized shipment still freezes its line. Real PostgreSQL, the worker in process.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

import psycopg
import pytest

from epcis.identifiers import lot_uri
from finance.store import attribution, credit, goods
from finance.worker import FinanceConfig, FinanceWorker
from ledger import log_store
from records.db import Conn
from tests.support.events import store_events
from tests.support.finance import seed_finance
from tests.support.world import JOURNAL
from tracefin.simulate import gtin_for

pytestmark = pytest.mark.integration
STEPS = 7  # events per lot's lifecycle: commission pack inspect store ship accept sell
POISONED, PLEDGED = 0, 1


@pytest.fixture
def conn(fresh_database_url: str) -> Iterator[Conn]:
    with psycopg.connect(fresh_database_url, autocommit=True) as connection:
        yield connection


def test_an_event_finance_cannot_apply_is_set_aside_and_monitoring_goes_on(conn: Conn) -> None:
    digests = store_events(conn, 2 * STEPS, "poison-co")
    seed_finance(conn, "poison-co", 2, range(PLEDGED, PLEDGED + 1))
    product = goods.get_product(conn, gtin_for(POISONED))
    assert product is not None
    goods.add_product(conn, replace(product, unit_price_minor=9 * 10**18))  # 3 items overflow
    with conn.transaction():
        log_store.assign_positions(conn, len(digests))

    worker = FinanceWorker("unused", FinanceConfig(chunk_size=5), JOURNAL)
    while worker.apply_next_chunk(conn):
        pass

    accepting = digests[POISONED * STEPS + 5]  # the delivery with a purchase order
    set_aside = attribution.dead_letters(conn)
    assert [(digest, "NumericValueOutOfRange" in error) for _, digest, error in set_aside] == [
        (accepting, True)
    ]
    assert worker.dead_lettered == 1
    assert attribution.cursor(conn, "finance") == len(digests)  # nothing else was skipped
    journaled = conn.execute(
        "SELECT subject, evidence FROM finance_journal WHERE action = 'event_not_applied'"
    ).fetchall()
    assert [(subject, [bytes(e) for e in evidence]) for subject, evidence in journaled] == [
        (f"log:{set_aside[0][0]}", [accepting])
    ]
    # Everything else was applied: the pledged lot's shipping froze its line, its delivery
    # became a receivable; the poisoned lot's other events moved it on.
    pledged = lot_uri(gtin_for(PLEDGED), f"L{PLEDGED:07d}")
    assert "unauthorized_movement" in credit.open_flags(conn, pledged)
    assert {row[0] for row in conn.execute("SELECT status FROM credit_lines")} == {"frozen"}
    receivables = conn.execute("SELECT lot_uri FROM receivables").fetchall()
    assert receivables == [(pledged,)]
    poisoned = attribution.get_lot(conn, lot_uri(gtin_for(POISONED), f"L{POISONED:07d}"))
    assert poisoned is not None
    assert (poisoned.quantity, poisoned.custody) == (2, "sold")


def test_a_lost_connection_is_not_the_events_fault(conn: Conn, fresh_database_url: str) -> None:
    """A chunk that fails because the connection died is not set aside: the worker's loop
    reconnects and applies it again."""
    digests = store_events(conn, STEPS, "conn-co")
    seed_finance(conn, "conn-co", 1, range(0))
    with conn.transaction():
        log_store.assign_positions(conn, len(digests))
    worker = FinanceWorker(fresh_database_url, FinanceConfig(), JOURNAL)
    with psycopg.connect(fresh_database_url, autocommit=True) as doomed:
        pid = doomed.info.backend_pid
        conn.execute("SELECT pg_terminate_backend(%s)", (pid,))
        with pytest.raises(psycopg.OperationalError):
            worker.apply_next_chunk(doomed)
    assert attribution.dead_letters(conn) == []
    assert worker.apply_next_chunk(conn) == len(digests)
