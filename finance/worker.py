"""The finance monitoring worker: follows the event log and keeps lots, lines and flags current.

Each chunk of log positions is applied and the durable cursor advanced in one transaction, so a
kill at any moment neither skips an event nor applies one twice.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import psycopg

from finance import store, valuation
from finance.tracking import FAILED_INSPECTION, LoggedEvent, LotChange, changes
from ledger.db import Conn

log = logging.getLogger(__name__)

WORKER = "finance"
ACTOR = "finance-worker"


@dataclass(frozen=True)
class FinanceConfig:
    chunk_size: int = 500
    idle_sleep: timedelta = timedelta(milliseconds=100)
    telemetry_check_every: timedelta = timedelta(seconds=1)


class FinanceWorker:
    def __init__(self, database_url: str, config: FinanceConfig) -> None:
        self._database_url = database_url
        self._config = config
        self._stop = threading.Event()
        self.applied = 0

    def request_stop(self) -> None:
        self._stop.set()

    def run(self) -> None:
        delay = 1.0
        while not self._stop.is_set():
            try:
                with psycopg.connect(self._database_url, autocommit=True) as conn:
                    delay = 1.0
                    self._follow(conn)
            except psycopg.OperationalError as exc:
                log.warning("finance: database unavailable (%s); retrying in %.0fs", exc, delay)
                self._stop.wait(delay)
                delay = min(delay * 2, 10.0)

    def _follow(self, conn: Conn) -> None:
        checked = 0.0
        while not self._stop.is_set():
            applied = self.apply_next_chunk(conn)
            self.applied += applied
            now = time.monotonic()
            if now - checked >= self._config.telemetry_check_every.total_seconds():
                with conn.transaction():
                    valuation.check_cold_chain(conn, datetime.now(UTC))
                checked = now
            if not applied:
                self._stop.wait(self._config.idle_sleep.total_seconds())

    def apply_next_chunk(self, conn: Conn) -> int:
        """Apply the next positions of the log; returns how many (0: caught up)."""
        with conn.transaction():
            conn.execute(
                "INSERT INTO log_cursors (worker, next_index) VALUES (%s, 0)"
                " ON CONFLICT DO NOTHING",
                (WORKER,),
            )
            # The row lock serialises workers: a second one waits instead of applying twice.
            row = conn.execute(
                "SELECT next_index FROM log_cursors WHERE worker = %s FOR UPDATE", (WORKER,)
            ).fetchone()
            assert row is not None
            start = int(row[0])
            chunk = store.read_log(conn, start, self._config.chunk_size)
            expected = start
            for item in chunk:
                index = item if isinstance(item, int) else item.log_index
                if index != expected:
                    break  # a hole cannot happen in a healthy log; never skip past it
                if isinstance(item, int):
                    store.journal(
                        conn,
                        ACTOR,
                        "event_missing",
                        f"log:{item}",
                        {"log_index": item},
                        log_index=item,
                    )
                else:
                    apply_event(conn, item)
                expected += 1
            if expected != start:
                store.advance_cursor(conn, WORKER, expected)
            return expected - start


def apply_event(conn: Conn, event: LoggedEvent) -> None:
    """Everything one logged event changes in the finance domain."""
    members = store.members_of(conn, event.epcs)
    for change in changes(event, members):
        store.apply_lot_change(conn, change, event)
        _react(conn, change, event)


def _react(conn: Conn, change: LotChange, event: LoggedEvent) -> None:
    pledge = store.live_pledge(conn, change.lot_uri)
    evidence = [event.event_hash]
    if change.inspection in FAILED_INSPECTION:
        _flag(conn, "quality_flag", change, event, f"inspection {change.inspection}")
    if change.recalled:
        _flag(conn, "recalled", change, event, "disposition recalled")
    if pledge is None:
        if change.purchase_order is not None:
            valuation.create_receivable(conn, change.lot_uri, change.purchase_order, event)
        return
    if change.moved:
        # Pledged goods leaving without a release: stop new money at once.
        if store.set_line_status(conn, pledge.line_id, "frozen"):
            store.journal(
                conn,
                ACTOR,
                "line_frozen",
                f"line:{pledge.line_id}",
                {"reason": "unauthorized_movement", "lot": change.lot_uri},
                evidence,
                event.log_index,
            )
        _flag(
            conn,
            "unauthorized_movement",
            change,
            event,
            f"{event.biz_step} of pledged goods without a release",
            line_id=pledge.line_id,
        )
    if change.inspection in FAILED_INSPECTION or change.recalled:
        valuation.revalue_line(
            conn,
            pledge.line_id,
            change.lot_uri,
            reason=change.inspection or "recalled",
            log_index=event.log_index,
        )
    if change.sold:
        valuation.route_proceeds(conn, pledge, change.lot_uri, change.sold, event)
    if change.purchase_order is not None:
        valuation.create_receivable(conn, change.lot_uri, change.purchase_order, event)


def _flag(
    conn: Conn,
    kind: str,
    change: LotChange,
    event: LoggedEvent,
    detail: str,
    line_id: int | None = None,
) -> None:
    if store.raise_flag(
        conn, kind, detail, lot_uri=change.lot_uri, line_id=line_id, event_hash=event.event_hash
    ):
        store.journal(
            conn,
            ACTOR,
            f"flag_{kind}",
            change.lot_uri,
            {"detail": detail},
            [event.event_hash],
            event.log_index,
        )
