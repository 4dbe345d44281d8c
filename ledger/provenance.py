"""A product's or a lot's history from the event store, each event with its verification state."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import astuple, dataclass
from datetime import datetime
from typing import Any

import orjson

from epcis.capture import stored_index_columns
from epcis.event_hash import event_hash_digest, hash_id_from_digest
from records.db import Conn

# What a page needs of each event, without its whole JSON: the hot path reads only this.
_COLUMNS = (
    "e.event_hash, e.event_time, e.event_time_zone_offset, e.event_type, e.action, e.biz_step,"
    " e.disposition, e.stage, e.read_point, e.biz_location, e.epcs, e.lots,"
    " e.event->>'parentID', e.event->'sensorElementList', e.xmin::text,"
    " b.batch_id, b.block_number, b.tx_hash"
)
_PARENT, _SENSORS, _VERSION, _BATCH, _BLOCK, _TX = 12, 13, 14, 15, 16, 17
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
    return conn.execute(
        f"SELECT {_COLUMNS} {_FROM} WHERE {where} ORDER BY e.event_time, e.ingest_seq",
        params,
    ).fetchall()


# Recomputing the canonical hash is the costliest part of a page. Its result depends only on
# the stored row, so it is remembered per (digest, row version): PostgreSQL gives every UPDATE
# a new row version (xmin), so an edited event is checked afresh and shows as failed.
_INTACT: dict[tuple[bytes, str], bool] = {}
_INTACT_MAX = 200_000
STORED_COLUMNS = (
    "event_time, event_time_zone_offset, event_type, action, biz_step, disposition, stage,"
    " read_point, biz_location, epcs, lots"
)


def _check_intact(conn: Conn, rows: list[tuple[Any, ...]]) -> dict[bytes, bool]:
    """Whether each row's stored JSON still hashes to its identity and implies its columns."""
    verdicts: dict[bytes, bool] = {}
    unknown = []
    for row in rows:
        digest = bytes(row[0])
        known = _INTACT.get((digest, row[_VERSION]))
        if known is None:
            unknown.append(digest)
        else:
            verdicts[digest] = known
    if unknown:
        for digest, version, event, context, *columns in conn.execute(
            "SELECT event_hash, xmin::text, event::text, context::text,"  # noqa: S608
            f" {STORED_COLUMNS} FROM events WHERE event_hash = ANY(%s)",
            (unknown,),
        ).fetchall():
            digest = bytes(digest)
            intact = row_is_intact(digest, event, context, columns)
            if len(_INTACT) >= _INTACT_MAX:
                _INTACT.clear()
            _INTACT[(digest, version)] = intact
            verdicts[digest] = intact
    return verdicts


def row_is_intact(digest: bytes, event: str, context: str | None, columns: list[Any]) -> bool:
    """The stored JSON hashes to `digest` and implies exactly the stored index columns."""
    try:
        stored = orjson.loads(event)
        if event_hash_digest(stored, orjson.loads(context) if context else None) != digest:
            return False
    except Exception:  # JSON edited into anything at all is simply not intact
        return False
    expected = stored_index_columns(stored)
    return expected is not None and astuple(expected) == column_values(columns)


def column_values(columns: Sequence[Any]) -> tuple[Any, ...]:
    """Stored index columns (in STORED_COLUMNS order) comparable with astuple(IndexColumns)."""
    return (*columns[:-2], tuple(columns[-2]), tuple(columns[-1]))


def item_history(conn: Conn, item: str) -> list[ProvenanceEvent]:
    """Events about an item, its pallets (aggregations) and its lot."""
    direct = _rows(conn, "e.epcs @> ARRAY[%(item)s]::text[]", {"item": item})
    if not direct:
        return []
    parents = sorted(
        {row[_PARENT] for row in direct if row[3] == "AggregationEvent" and row[_PARENT]}
    )
    lots = sorted({lot for row in direct for lot in row[11]})
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


def _merge(*groups: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    seen: dict[bytes, tuple[Any, ...]] = {}
    for group in groups:
        for row in group:
            seen.setdefault(bytes(row[0]), row)
    return sorted(seen.values(), key=lambda row: row[1])


def _public(conn: Conn, rows: list[tuple[Any, ...]]) -> list[ProvenanceEvent]:
    # Checked on every view: an edited row shows as failed, never as verified.
    intact = _check_intact(conn, rows)
    return [_public_event(row, intact.get(bytes(row[0]), False)) for row in rows]


def _public_event(row: tuple[Any, ...], intact: bool) -> ProvenanceEvent:
    digest = bytes(row[0])
    if not intact:
        state = "failed"
    elif row[_BATCH] is not None:
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
        sensor_readings=_sensor_summary(row[_SENSORS]),
        verification=state,
        batch_id=row[_BATCH] if intact else None,
        block_number=row[_BLOCK] if intact else None,
        tx_hash="0x" + bytes(row[_TX]).hex() if intact and row[_TX] is not None else None,
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
            ([bytes(row[0]) for row in history],),
        ).fetchall()
    }
    steps = []
    for row in history:
        event = bodies.get(bytes(row[0])) or {}
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
    parents = sorted({row[_PARENT] for row in aggregations if row[_PARENT]})
    related = _rows(
        conn,
        "(e.epcs && %(parents)s::text[] OR e.epcs && %(items)s::text[])",
        {"parents": parents, "items": items},
    )
    seen: dict[bytes, tuple[Any, ...]] = {}
    for row in [*direct, *related]:
        seen.setdefault(bytes(row[0]), row)
    return sorted(seen.values(), key=lambda row: row[1])
