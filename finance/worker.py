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

import orjson
from psycopg.types.json import set_json_loads

from finance import store, valuation
from finance.tracking import (
    FAILED_INSPECTION,
    LoggedEvent,
    LotChange,
    LotRecord,
    apply_change,
    changes,
)
from ledger.db import Conn, run_connected

log = logging.getLogger(__name__)

WORKER = "finance"
ACTOR = "finance-worker"


@dataclass(frozen=True)
class FinanceConfig:
    chunk_size: int = 2000
    idle_sleep: timedelta = timedelta(milliseconds=100)
    conditions_check_every: timedelta = timedelta(seconds=1)


class FinanceWorker:
    def __init__(self, database_url: str, config: FinanceConfig) -> None:
        self._database_url = database_url
        self._config = config
        self._stop = threading.Event()
        self.applied = 0

    def request_stop(self) -> None:
        self._stop.set()

    def run(self) -> None:
        run_connected(self._database_url, self._stop, self._start, "finance")

    def _start(self, conn: Conn) -> None:
        set_json_loads(orjson.loads, conn)  # event bodies: orjson is ~5x faster
        self._follow(conn)

    def _follow(self, conn: Conn) -> None:
        checked = 0.0
        while not self._stop.is_set():
            applied = self.apply_next_chunk(conn)
            self.applied += applied
            now = time.monotonic()
            if now - checked >= self._config.conditions_check_every.total_seconds():
                with conn.transaction():
                    valuation.check_cold_chain(conn, datetime.now(UTC))
                    valuation.check_expiry(conn, datetime.now(UTC))
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
            expected = start
            events: list[LoggedEvent] = []
            for item in store.read_log(conn, start, self._config.chunk_size):
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
                    events.append(item)
                expected += 1
            _Chunk(conn, events).apply()
            if expected != start:
                store.advance_cursor(conn, WORKER, expected)
            return expected - start


class _Chunk:
    """One transaction's worth of log positions, applied in order with batched reads/writes.

    Lots touched by the chunk live in memory and are written back once; only the rare events
    that need the database's view of other state (revaluing a pledged line) flush first.
    """

    def __init__(self, conn: Conn, events: list[LoggedEvent]) -> None:
        self._conn = conn
        members = store.members_of(conn, {epc for event in events for epc in event.epcs})
        self._planned: list[tuple[LoggedEvent, list[LotChange]]] = []
        self._new_members: list[tuple[str, str]] = []
        for event in events:
            lot_changes = changes(event, members)
            for change in lot_changes:
                for epc in change.new_members:
                    if epc not in members:
                        members[epc] = change.lot_uri
                        self._new_members.append((epc, change.lot_uri))
            self._planned.append((event, lot_changes))
        touched = {c.lot_uri for _, lot_changes in self._planned for c in lot_changes}
        gtins = {c.gtin for _, lot_changes in self._planned for c in lot_changes}
        self._lots = store.load_lots(conn, touched)
        # New lots get their row now, so flags and receivables can refer to them at once.
        fresh = [
            LotRecord(c.lot_uri, c.gtin, c.lot)
            for _, lot_changes in self._planned
            for c in lot_changes
            if c.lot_uri not in self._lots
        ]
        for record in fresh:
            self._lots.setdefault(record.lot_uri, record)
        store.save_lots(conn, list({r.lot_uri: r for r in fresh}.values()))
        self._pledges = store.live_pledges(conn, touched)
        self._products = store.products(conn, gtins)
        self._evidence: list[tuple[str, int, bytes, str | None]] = []
        self._receivables: list[tuple[str, str, int, str, int, bytes]] = []
        self._journal: list[tuple[str, str, str, dict[str, object], list[bytes], int | None]] = []
        self._dirty: set[str] = set()

    def apply(self) -> None:
        for event, lot_changes in self._planned:
            for change in lot_changes:
                record = self._lots[change.lot_uri]
                apply_change(record, change, event)
                self._dirty.add(change.lot_uri)
                self._evidence.append(
                    (change.lot_uri, event.log_index, event.event_hash, event.biz_step)
                )
                self._react(change, event, record)
        self._flush()

    def _flush(self) -> None:
        store.save_lots(self._conn, [self._lots[uri] for uri in sorted(self._dirty)])
        if self._new_members:
            store.add_members(self._conn, self._new_members)
            self._new_members = []
        store.add_evidence(self._conn, self._evidence)
        store.add_receivables(self._conn, self._receivables)
        store.add_journal(self._conn, self._journal)
        self._dirty.clear()
        self._evidence.clear()
        self._receivables.clear()
        self._journal.clear()

    def _react(self, change: LotChange, event: LoggedEvent, record: LotRecord) -> None:
        conn = self._conn
        pledge = self._pledges.get(change.lot_uri)
        product = self._products.get(change.gtin)
        evidence = [event.event_hash]
        if change.inspection in FAILED_INSPECTION:
            _flag(conn, "quality_flag", change, event, f"inspection {change.inspection}")
        if change.recalled:
            _flag(conn, "recalled", change, event, "disposition recalled")
        if change.purchase_order is not None and product is not None:
            # Delivered at the buyer with its PO: a receivable that can be financed.
            amount, advance = valuation.receivable_terms(record.quantity, product)
            self._receivables.append(
                (
                    change.lot_uri,
                    change.purchase_order,
                    amount.minor,
                    amount.currency,
                    advance.minor,
                    event.event_hash,
                )
            )
            self._journal.append(
                (
                    ACTOR,
                    "receivable",
                    change.lot_uri,
                    {
                        "purchase_order": change.purchase_order,
                        "amount_minor": amount.minor,
                        "advance_minor": advance.minor,
                    },
                    [event.event_hash],
                    event.log_index,
                )
            )
        if pledge is None:
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
            self._flush()  # revaluation reads every pledged lot of the line from the database
            valuation.revalue_line(
                conn,
                pledge.line_id,
                change.lot_uri,
                reason=change.inspection or "recalled",
                log_index=event.log_index,
            )
        if change.sold and product is not None:
            valuation.route_proceeds(conn, pledge, change.lot_uri, change.sold, event, product)


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
