"""A product's or a lot's history from the event store, each event with its verification state."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

from ledger.db import Conn
from ledger.event_hash import event_hash_digest, hash_id_from_digest

_COLUMNS = (
    "e.event_hash, e.event_time, e.event_time_zone_offset, e.event_type, e.action, e.biz_step,"
    " e.disposition, e.stage, e.read_point, e.biz_location, e.epcs, e.lots, e.event::text,"
    " e.context::text,"
    " b.batch_id, b.block_number, b.tx_hash"
)
# Each event with the batch of the current deployment that anchors it, if any.
_FROM = """
FROM events e
LEFT JOIN log_entries l ON l.event_hash = e.event_hash
LEFT JOIN chain_deployments d ON d.current
LEFT JOIN anchor_batches b ON b.deployment_id = d.id
     AND l.log_index >= b.first_index AND l.log_index < b.first_index + b.count
"""


@dataclass(frozen=True)
class ProvenanceEvent:
    """One event as the public sees it: no prices, no device, no internal ids."""

    hash_id: str
    event_time: datetime
    event_time_zone_offset: str
    event_type: str
    action: str | None
    biz_step: str | None
    disposition: str | None
    stage: str | None
    read_point: str | None
    biz_location: str | None
    epcs: list[str]
    sensor_readings: list[dict[str, Any]]
    verification: str  # "anchored", "pending" or "failed"
    batch_id: int | None
    block_number: int | None
    tx_hash: str | None


def _rows(conn: Conn, where: str, params: dict[str, Any]) -> list[tuple[Any, ...]]:
    """Rows with the event decoded (index 12) and the raw JSON texts kept for the hash check."""
    rows = conn.execute(
        f"SELECT {_COLUMNS} {_FROM} WHERE {where} ORDER BY e.event_time, e.ingest_seq",
        params,
    ).fetchall()
    return [(*row[:12], orjson.loads(row[12]), row[13], *row[14:], row[12]) for row in rows]


# Recomputing the canonical hash is the costliest part of a page; the result depends only on the
# stored bytes, so it is remembered per (digest, exact stored JSON). Any edit to a row changes
# the key, so a tampered event is still checked afresh and shows as failed.
_INTACT: dict[tuple[bytes, bytes], bool] = {}
_INTACT_MAX = 200_000


def _intact(
    digest: bytes, event_text: str, context_text: str | None, event: dict[str, Any]
) -> bool:
    key = (digest, hashlib.sha256(f"{event_text}\x1f{context_text}".encode()).digest())
    known = _INTACT.get(key)
    if known is None:
        try:
            context = orjson.loads(context_text) if context_text is not None else None
            known = event_hash_digest(event, context) == digest
        except ValueError:
            known = False
        if len(_INTACT) >= _INTACT_MAX:
            _INTACT.clear()
        _INTACT[key] = known
    return known


def item_history(conn: Conn, item: str) -> list[ProvenanceEvent]:
    """Events about an item, its pallets (aggregations) and its lot."""
    direct = _rows(conn, "e.epcs @> ARRAY[%(item)s]::text[]", {"item": item})
    if not direct:
        return []
    parents = sorted(
        {
            row[12].get("parentID")
            for row in direct
            if row[3] == "AggregationEvent" and isinstance(row[12].get("parentID"), str)
        }
    )
    lots = sorted({lot for row in direct for lot in row[11]})
    related = _rows(
        conn,
        "(e.epcs && %(parents)s::text[] OR e.lots && %(lots)s::text[])"
        " AND NOT e.epcs @> ARRAY[%(item)s]::text[]",
        {"parents": parents, "lots": lots, "item": item},
    )
    return _merge(direct, related)


def lot_history(conn: Conn, lot: str) -> list[ProvenanceEvent]:
    """Events about a lot, its items (from commissioning) and the pallets they were packed on."""
    return [_public(row) for row in _raw_lot_history(conn, lot)]


def _merge(*groups: list[tuple[Any, ...]]) -> list[ProvenanceEvent]:
    seen: dict[bytes, tuple[Any, ...]] = {}
    for group in groups:
        for row in group:
            seen.setdefault(bytes(row[0]), row)
    ordered = sorted(seen.values(), key=lambda row: row[1])
    return [_public(row) for row in ordered]


def _public(row: tuple[Any, ...]) -> ProvenanceEvent:
    digest = bytes(row[0])
    event = row[12]
    # Checked on every view (from the stored bytes): an edited row shows as failed.
    intact = _intact(digest, row[-1], row[13], event)
    if not intact:
        state = "failed"
    elif row[14] is not None:
        state = "anchored"
    else:
        state = "pending"
    return ProvenanceEvent(
        hash_id=hash_id_from_digest(digest),
        event_time=row[1],
        event_time_zone_offset=row[2],
        event_type=row[3],
        action=row[4],
        biz_step=row[5],
        disposition=row[6],
        stage=row[7],
        read_point=row[8],
        biz_location=row[9],
        epcs=list(row[10]),
        sensor_readings=_sensor_summary(event),
        verification=state,
        batch_id=row[14] if intact else None,
        block_number=row[15] if intact else None,
        tx_hash="0x" + bytes(row[16]).hex() if intact and row[16] is not None else None,
    )


def _sensor_summary(event: dict[str, Any]) -> list[dict[str, Any]]:
    readings = []
    for element in event.get("sensorElementList") or []:
        for report in (element or {}).get("sensorReport") or []:
            if isinstance(report, dict) and "value" in report:
                readings.append(
                    {
                        "type": report.get("type"),
                        "value": report.get("value"),
                        "uom": report.get("uom"),
                    }
                )
    return readings


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
    steps = []
    for row in history:
        event = row[12]
        if direction == "forward":
            if row[5] not in _FORWARD_STEPS:
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
            if row[3] != "TransformationEvent" and row[5] not in ("commissioning", "packing"):
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
                hash_id_from_digest(bytes(row[0])),
                row[1],
                row[5],
                row[9],
                [str(p) for p in parties],
                list(row[10]),
            )
        )
    return steps


def _raw_lot_history(conn: Conn, lot: str) -> list[tuple[Any, ...]]:
    direct = _rows(conn, "e.lots @> ARRAY[%(lot)s]::text[]", {"lot": lot})
    items = sorted({epc for row in direct if row[5] == "commissioning" for epc in row[10]})
    aggregations = _rows(
        conn,
        "e.event_type = 'AggregationEvent' AND e.epcs && %(items)s::text[]",
        {"items": items},
    )
    parents = sorted(
        {
            row[12].get("parentID")
            for row in aggregations
            if isinstance(row[12].get("parentID"), str)
        }
    )
    related = _rows(
        conn,
        "(e.epcs && %(parents)s::text[] OR e.epcs && %(items)s::text[])",
        {"parents": parents, "items": items},
    )
    seen: dict[bytes, tuple[Any, ...]] = {}
    for row in [*direct, *related]:
        seen.setdefault(bytes(row[0]), row)
    return sorted(seen.values(), key=lambda row: row[1])
