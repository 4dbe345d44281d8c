"""SQL of the provenance pages: events with the batch that anchors them, read by lot or item."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from psycopg.rows import RowMaker

from epcis.capture import INDEX_COLUMNS, IndexColumns
from records.db import Conn

# The index columns of `events`, in IndexColumns order (for `stored_columns`).
STORED_COLUMNS = ", ".join(INDEX_COLUMNS)


def stored_columns(values: Sequence[Any]) -> IndexColumns:
    """Index columns as stored (STORED_COLUMNS order; arrays come back as lists)."""
    converted: list[Any] = [tuple(v) if isinstance(v, list) else v for v in values]
    return IndexColumns(*converted)


@dataclass(frozen=True)
class HistoryRow:
    """What a page needs of each event, without its whole JSON: the hot path reads only this."""

    digest: bytes
    columns: IndexColumns
    parent_id: str | None
    sensors: Any  # the event's sensorElementList, as stored
    version: str  # the row version (xmin): a new one for every UPDATE
    batch_id: int | None
    block_number: int | None
    tx_hash: bytes | None


_SELECT = (
    "e.event_hash, "
    + ", ".join(f"e.{name}" for name in INDEX_COLUMNS)
    + ", e.event->>'parentID', e.event->'sensorElementList', e.row_version,"
    " b.batch_id, b.block_number, b.tx_hash"
)
_N = len(INDEX_COLUMNS)
# Each event with the batch of the current deployment that anchors it, if any.
_FROM = """
FROM e
LEFT JOIN log_entries l ON l.event_hash = e.event_hash
LEFT JOIN chain_deployments d ON d.current
LEFT JOIN anchor_batches b ON b.deployment_id = d.id
     AND l.log_index >= b.first_index AND l.log_index < b.first_index + b.count
"""


def _row_maker(_cursor: Any) -> RowMaker[HistoryRow]:
    def make(values: Sequence[Any]) -> HistoryRow:
        parent_id, sensors, version, batch_id, block_number, tx_hash = values[1 + _N :]
        return HistoryRow(
            digest=bytes(values[0]),
            columns=stored_columns(values[1 : 1 + _N]),
            parent_id=parent_id,
            sensors=sensors,
            version=version,
            batch_id=batch_id,
            block_number=block_number,
            tx_hash=bytes(tx_hash) if tx_hash is not None else None,
        )

    return make


def _history_rows(conn: Conn, where: str, params: dict[str, Any]) -> list[HistoryRow]:
    with conn.cursor(row_factory=_row_maker) as cursor:
        return cursor.execute(
            # The events asked for are few: found first (by the GIN indexes on epcs and lots),
            # then joined and ordered. Left to itself, the planner may walk the event_time
            # index whole, filtering every event, to have them in order.
            "WITH e AS MATERIALIZED"  # noqa: S608 - `where` is one of this module's clauses
            f" (SELECT e.*, e.xmin::text AS row_version FROM events e WHERE {where})"
            f" SELECT {_SELECT} {_FROM} ORDER BY e.event_time, e.ingest_seq",
            params,
        ).fetchall()


def mentioning_item(conn: Conn, item: str) -> list[HistoryRow]:
    return _history_rows(conn, "e.epcs @> ARRAY[%(item)s]::text[]", {"item": item})


def related_to_item(conn: Conn, item: str, parents: list[str], lots: list[str]) -> list[HistoryRow]:
    """Events about the item's pallets or lots that do not name the item itself."""
    return _history_rows(
        conn,
        "(e.epcs && %(parents)s::text[] OR e.lots && %(lots)s::text[])"
        " AND NOT e.epcs @> ARRAY[%(item)s]::text[]",
        {"parents": parents, "lots": lots, "item": item},
    )


def mentioning_lot(conn: Conn, lot: str) -> list[HistoryRow]:
    return _history_rows(conn, "e.lots @> ARRAY[%(lot)s]::text[]", {"lot": lot})


def aggregations_of(conn: Conn, items: list[str]) -> list[HistoryRow]:
    return _history_rows(
        conn,
        "e.event_type = 'AggregationEvent' AND e.epcs && %(items)s::text[]",
        {"items": items},
    )


def mentioning_any(conn: Conn, parents: list[str], items: list[str]) -> list[HistoryRow]:
    return _history_rows(
        conn,
        "(e.epcs && %(parents)s::text[] OR e.epcs && %(items)s::text[])",
        {"parents": parents, "items": items},
    )


@dataclass(frozen=True)
class StoredEventText:
    """An event as stored, as text, with its index columns: what an integrity check reads."""

    digest: bytes
    version: str
    event: str
    context: str | None
    columns: IndexColumns


def stored_event_texts(conn: Conn, digests: list[bytes]) -> list[StoredEventText]:
    return [
        StoredEventText(bytes(digest), version, event, context, stored_columns(columns))
        for digest, version, event, context, *columns in conn.execute(
            "SELECT event_hash, xmin::text, event::text, context::text,"  # noqa: S608
            f" {STORED_COLUMNS} FROM events WHERE event_hash = ANY(%s)",
            (digests,),
        ).fetchall()
    ]


def event_bodies(conn: Conn, digests: list[bytes]) -> dict[bytes, dict[str, Any]]:
    """The stored bodies of `digests` (none asked: no query)."""
    if not digests:
        return {}
    return {
        bytes(digest): event
        for digest, event in conn.execute(
            "SELECT event_hash, event FROM events WHERE event_hash = ANY(%s)", (digests,)
        ).fetchall()
    }
