"""A product's or a lot's provenance page from the event store: its events, each re-verified.

The page's data (in the shape of the API's `ProvenancePublic`) is assembled here, with the
checks behind each event's state: the stored JSON still hashes to the event's identity and
implies its index columns, the event's path leads to its batch root, and the chain does not
contradict the batch record.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from psycopg.rows import RowMaker

from epcis.capture import INDEX_COLUMNS, IndexColumns, stored_index_columns
from epcis.event_hash import digest_from_hash_id, event_hash_digest, hash_id_from_digest
from ledger.chain_confirmations import BatchConfirmations
from ledger.proofs import Bundle, build_bundles
from records.db import Conn

# The index columns a page shows (the identifier lists are for queries, not for people).
PUBLIC_COLUMNS = tuple(name for name in INDEX_COLUMNS if name not in ("epcs", "lots"))
# The index columns of `events`, in IndexColumns order (for `stored_columns`).
STORED_COLUMNS = ", ".join(INDEX_COLUMNS)


def stored_columns(values: Sequence[Any]) -> IndexColumns:
    """Index columns as stored (STORED_COLUMNS order; arrays come back as lists)."""
    converted: list[Any] = [tuple(v) if isinstance(v, list) else v for v in values]
    return IndexColumns(*converted)


@dataclass(frozen=True)
class _Row:
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
    + ", e.event->>'parentID', e.event->'sensorElementList', e.xmin::text,"
    " b.batch_id, b.block_number, b.tx_hash"
)
_N = len(INDEX_COLUMNS)
# Each event with the batch of the current deployment that anchors it, if any.
_FROM = """
FROM events e
LEFT JOIN log_entries l ON l.event_hash = e.event_hash
LEFT JOIN chain_deployments d ON d.current
LEFT JOIN anchor_batches b ON b.deployment_id = d.id
     AND l.log_index >= b.first_index AND l.log_index < b.first_index + b.count
"""


def _row_maker(_cursor: Any) -> RowMaker[_Row]:
    def make(values: Sequence[Any]) -> _Row:
        parent_id, sensors, version, batch_id, block_number, tx_hash = values[1 + _N :]
        return _Row(
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


def _rows(conn: Conn, where: str, params: dict[str, Any]) -> list[_Row]:
    with conn.cursor(row_factory=_row_maker) as cursor:
        return cursor.execute(
            f"SELECT {_SELECT} {_FROM} WHERE {where} ORDER BY e.event_time, e.ingest_seq",
            params,
        ).fetchall()


@dataclass(frozen=True)
class ProvenanceEvent:
    """One event as the public sees it: no prices, no device, no internal ids."""

    hash_id: str
    columns: IndexColumns
    sensor_readings: list[dict[str, Any]]
    verification: str  # "anchored", "pending" or "failed"
    batch_id: int | None
    block_number: int | None
    tx_hash: str | None


# Recomputing the canonical hash is the costliest part of a page. Its result depends only on
# the stored row, so it is remembered per (digest, row version): PostgreSQL gives every UPDATE
# a new row version (xmin), so an edited event is checked afresh and shows as failed.
_INTACT: dict[tuple[bytes, str], bool] = {}
_INTACT_MAX = 200_000


def _check_intact(conn: Conn, rows: list[_Row]) -> dict[bytes, bool]:
    """Whether each row's stored JSON still hashes to its identity and implies its columns."""
    verdicts: dict[bytes, bool] = {}
    unknown = []
    for row in rows:
        known = _INTACT.get((row.digest, row.version))
        if known is None:
            unknown.append(row.digest)
        else:
            verdicts[row.digest] = known
    if unknown:
        for digest, version, event, context, *columns in conn.execute(
            "SELECT event_hash, xmin::text, event::text, context::text,"  # noqa: S608
            f" {STORED_COLUMNS} FROM events WHERE event_hash = ANY(%s)",
            (unknown,),
        ).fetchall():
            digest = bytes(digest)
            intact = row_is_intact(digest, event, context, stored_columns(columns))
            if len(_INTACT) >= _INTACT_MAX:
                _INTACT.clear()
            _INTACT[(digest, version)] = intact
            verdicts[digest] = intact
    return verdicts


def row_is_intact(digest: bytes, event: str, context: str | None, columns: IndexColumns) -> bool:
    """The stored JSON hashes to `digest` and implies exactly the stored index columns."""
    try:
        stored = orjson.loads(event)
        if event_hash_digest(stored, orjson.loads(context) if context else None) != digest:
            return False
    except Exception:  # JSON edited into anything at all is simply not intact
        return False
    return stored_index_columns(stored) == columns


def item_history(conn: Conn, item: str) -> list[ProvenanceEvent]:
    """Events about an item, its pallets (aggregations) and its lot."""
    direct = _rows(conn, "e.epcs @> ARRAY[%(item)s]::text[]", {"item": item})
    if not direct:
        return []
    parents = sorted(
        {
            row.parent_id
            for row in direct
            if row.columns.event_type == "AggregationEvent" and row.parent_id
        }
    )
    lots = sorted({lot for row in direct for lot in row.columns.lots})
    related = _rows(
        conn,
        "(e.epcs && %(parents)s::text[] OR e.lots && %(lots)s::text[])"
        " AND NOT e.epcs @> ARRAY[%(item)s]::text[]",
        {"parents": parents, "lots": lots, "item": item},
    )
    return _public(conn, _merge(direct, related))


def lot_history(conn: Conn, lot: str) -> list[ProvenanceEvent]:
    """Events about a lot, its items (from commissioning) and the pallets they were packed on."""
    return _public(conn, _raw_lot_history(conn, lot))


def _merge(*groups: list[_Row]) -> list[_Row]:
    seen: dict[bytes, _Row] = {}
    for group in groups:
        for row in group:
            seen.setdefault(row.digest, row)
    return sorted(seen.values(), key=lambda row: row.columns.event_time)


def _public(conn: Conn, rows: list[_Row]) -> list[ProvenanceEvent]:
    # Checked on every view: an edited row shows as failed, never as verified.
    intact = _check_intact(conn, rows)
    return [_public_event(row, intact.get(row.digest, False)) for row in rows]


def _public_event(row: _Row, intact: bool) -> ProvenanceEvent:
    if not intact:
        state = "failed"
    elif row.batch_id is not None:
        state = "anchored"
    else:
        state = "pending"
    return ProvenanceEvent(
        hash_id=hash_id_from_digest(row.digest),
        columns=row.columns,
        sensor_readings=_sensor_summary(row.sensors),
        verification=state,
        batch_id=row.batch_id if intact else None,
        block_number=row.block_number if intact else None,
        tx_hash="0x" + row.tx_hash.hex() if intact and row.tx_hash is not None else None,
    )


def _sensor_summary(elements: Any) -> list[dict[str, Any]]:
    readings = []
    for element in elements if isinstance(elements, list) else []:
        for report in (element or {}).get("sensorReport") or []:
            if isinstance(report, dict) and "value" in report:
                readings.append(
                    {
                        "type": report.get("type"),
                        "value": _displayable(report.get("value")),
                        "uom": report.get("uom"),
                    }
                )
    return readings


def _displayable(value: Any) -> Any:
    """jsonb gives 1e20 back as a 21-digit int; JSON encoders refuse ints beyond 64 bits."""
    if isinstance(value, int) and not isinstance(value, bool) and not -(2**63) <= value < 2**64:
        return float(value)
    return value


# --- the page ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Page:
    """A provenance page's data, in the shape of the API's `ProvenancePublic` (plain dicts:
    building fifty pydantic models per page cost more than the page's queries)."""

    data: dict[str, Any]
    # Every batch the page cites was checked against the chain (or there is no chain to ask):
    # the page may be kept until what it shows changes.
    complete: bool


def page(
    conn: Conn,
    confirmations: BatchConfirmations,
    uri: str,
    gtin14: str,
    *,
    lot: str | None,
    serial: str | None,
    product_name: Callable[[], str | None],
) -> Page | None:
    """The page of the item (`serial`) or lot `uri`, each event re-verified; None if no event
    is known for it. `product_name` looks the product's name up (read only for a known one)."""
    history = item_history(conn, uri) if serial is not None else lot_history(conn, uri)
    if not history:
        return None
    digests = {event.hash_id: digest_from_hash_id(event.hash_id) for event in history}
    # A failed event's bundle would prove a hash whose stored event no longer matches it.
    bundles = build_bundles(
        conn, [digests[event.hash_id] for event in history if event.verification != "failed"]
    )
    refuted = confirmations.refuted(bundles)
    states = {
        event.hash_id: checked_state(
            event.verification,
            bundles.get(digests[event.hash_id]),
            refuted.get(digests[event.hash_id]),
        )
        for event in history
    }
    events = [
        {
            "event_hash": event.hash_id,
            **{name: getattr(event.columns, name) for name in PUBLIC_COLUMNS},
            "sensor_readings": event.sensor_readings,
            "verification": _verification(
                states[event.hash_id], event, digests[event.hash_id], bundles
            ),
        }
        for event in history
    ]
    counts = list(states.values())
    unchecked = confirmations.asks_a_chain and None in refuted.values()
    data = {
        "product": {
            "gtin": gtin14,
            "name": product_name(),
            "lot": lot,
            "serial": serial,
            "digital_link": uri,
        },
        "events": events,
        "verified": counts.count("anchored"),
        "pending": counts.count("pending"),
        "failed": counts.count("failed"),
    }
    return Page(data, complete=not unchecked)


def checked_state(state: str, bundle: Bundle | None, refuted: bool | None) -> str:
    """`anchored` only while the event's path leads to the recorded root of its batch and the
    chain does not contradict the batch record (`refuted`; None: the chain was not asked).

    The tree is rebuilt from the log for the proof anyway; an edited batch row or log position
    then shows the event as failed, as an edited event does.
    """
    if state != "anchored" or bundle is None or bundle.inclusion is None:
        return state
    if refuted:
        return "failed"
    return state if bundle.leads_to_root() else "failed"


def _verification(
    state: str, event: ProvenanceEvent, digest: bytes, bundles: dict[bytes, Bundle]
) -> dict[str, Any]:
    failed = state == "failed"
    bundle = bundles.get(digest)
    return {
        "state": state,
        "batch_id": None if failed else event.batch_id,
        "block_number": None if failed else event.block_number,
        "tx_hash": None if failed else event.tx_hash,
        "proof_url": f"/v1/proofs/{digest.hex()}",
        "proof": None if failed or bundle is None else bundle.to_json(),
    }


# --- trace -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TraceStep:
    hash_id: str
    event_time: datetime
    biz_step: str | None
    biz_location: str | None
    parties: list[str]
    items: list[str]


_FORWARD_STEPS = frozenset(
    {
        "shipping",
        "departing",
        "loading",
        "transporting",
        "arriving",
        "unloading",
        "accepting",
        "receiving",
        "retail_selling",
    }
)


def trace(conn: Conn, lot: str, direction: str) -> list[TraceStep]:
    """Forward: where the lot went and to whom. Backward: what it was made of and where."""
    history = _raw_lot_history(conn, lot)
    bodies: dict[bytes, dict[str, Any]] = {
        bytes(digest): event
        for digest, event in conn.execute(
            "SELECT event_hash, event FROM events WHERE event_hash = ANY(%s)",
            ([row.digest for row in history],),
        ).fetchall()
    }
    steps = []
    for row in history:
        event = bodies.get(row.digest) or {}
        columns = row.columns
        if direction == "forward":
            if columns.biz_step not in _FORWARD_STEPS:
                continue
            parties = [
                d.get("destination")
                for d in event.get("destinationList") or []
                if isinstance(d, dict) and d.get("destination")
            ]
            parties += [
                t.get("bizTransaction")
                for t in event.get("bizTransactionList") or []
                if isinstance(t, dict) and t.get("bizTransaction")
            ]
        else:
            if columns.event_type != "TransformationEvent" and columns.biz_step not in (
                "commissioning",
                "packing",
            ):
                continue
            parties = [
                s.get("source")
                for s in event.get("sourceList") or []
                if isinstance(s, dict) and s.get("source")
            ]
            parties += [i for i in event.get("inputEPCList") or [] if isinstance(i, str)]
            parties += [
                q.get("epcClass")
                for q in event.get("inputQuantityList") or []
                if isinstance(q, dict) and q.get("epcClass")
            ]
        steps.append(
            TraceStep(
                hash_id_from_digest(row.digest),
                columns.event_time,
                columns.biz_step,
                columns.biz_location,
                [str(p) for p in parties],
                list(columns.epcs),
            )
        )
    return steps


def _raw_lot_history(conn: Conn, lot: str) -> list[_Row]:
    direct = _rows(conn, "e.lots @> ARRAY[%(lot)s]::text[]", {"lot": lot})
    items = sorted(
        {
            epc
            for row in direct
            if row.columns.biz_step == "commissioning"
            for epc in row.columns.epcs
        }
    )
    aggregations = _rows(
        conn,
        "e.event_type = 'AggregationEvent' AND e.epcs && %(items)s::text[]",
        {"items": items},
    )
    parents = sorted({row.parent_id for row in aggregations if row.parent_id})
    related = _rows(
        conn,
        "(e.epcs && %(parents)s::text[] OR e.epcs && %(items)s::text[])",
        {"parents": parents, "items": items},
    )
    return _merge(direct, related)
