"""How events move lots: which lots an event touches and what it changes. Pure, no I/O."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from ledger.identifiers import parse_lot, parse_sgtin
from ledger.lots import commissioned_lot, ilmd_value

# Custody follows the business step (CBV 2.0 bare words, as the event store keeps them).
_CUSTODY = {
    "commissioning": "production",
    "packing": "production",
    "inspecting": None,
    "receiving": "warehouse",
    "storing": "warehouse",
    "stocking": "warehouse",
    "holding": "warehouse",
    "loading": "in_transit",
    "shipping": "in_transit",
    "departing": "in_transit",
    "transporting": "in_transit",
    "arriving": "in_transit",
    "unloading": "in_transit",
    "accepting": "delivered",
    "retail_selling": "sold",
}
MOVEMENT_STEPS = frozenset({"loading", "shipping", "departing"})
DELIVERY_STEPS = frozenset({"accepting", "receiving"})
FAILED_INSPECTION = frozenset({"non_conformant", "damaged"})


@dataclass(frozen=True)
class LoggedEvent:
    """One position of the event log, with the columns the finance worker needs."""

    log_index: int
    event_hash: bytes
    event_time: datetime
    event_type: str
    action: str | None
    biz_step: str | None
    disposition: str | None
    biz_location: str | None
    epcs: Sequence[str]
    lots: Sequence[str]
    event: Mapping[str, Any]


@dataclass
class LotChange:
    """What one event does to one lot."""

    lot_uri: str
    gtin: str
    lot: str
    new_members: list[str] = field(default_factory=list)
    quantity_delta: int = 0
    location: str | None = None
    custody: str | None = None
    best_before: date | None = None
    inspection: str | None = None
    recalled: bool = False
    moved: bool = False
    sold: int = 0
    purchase_order: str | None = None


def changes(event: LoggedEvent, members: Mapping[str, str]) -> list[LotChange]:
    """The lots `event` touches and how; `members` maps known item/pallet EPCs to their lot."""
    touched: dict[str, LotChange] = {}

    def change(uri: str) -> LotChange:
        if uri not in touched:
            parsed = parse_lot(uri)
            assert parsed is not None, uri
            touched[uri] = LotChange(uri, parsed[0], parsed[1])
        return touched[uri]

    for uri in event.lots:
        change(uri)
    commissioned = commissioned_lot(event.biz_step, event.action, event.epcs, event.event)
    if commissioned is not None:
        created = change(commissioned)
        fresh = [epc for epc in event.epcs if epc not in members]
        created.new_members.extend(fresh)
        created.quantity_delta += len(fresh)
        created.best_before = _best_before(event.event)
    known = {epc: members[epc] for epc in event.epcs if epc in members}
    for uri in set(known.values()):
        change(uri)
    if event.event_type == "AggregationEvent" and event.action == "ADD":
        parent = event.event.get("parentID")
        if isinstance(parent, str):
            for uri in {known[c] for c in event.epcs if c in known and c != parent}:
                change(uri).new_members.append(parent)
    for uri, lot_change in touched.items():
        _apply_step(event, lot_change, [e for e, lot in known.items() if lot == uri])
    return list(touched.values())


def _apply_step(event: LoggedEvent, change: LotChange, items: list[str]) -> None:
    step = event.biz_step
    if event.biz_location is not None:
        change.location = event.biz_location
    custody = _CUSTODY.get(step or "")
    if custody is not None:
        change.custody = custody
    if step == "inspecting" and event.disposition is not None:
        change.inspection = event.disposition
    if event.disposition == "recalled":
        change.recalled = True
    if step in MOVEMENT_STEPS:
        change.moved = True
    if step == "retail_selling" or event.disposition == "retail_sold":
        sold = [epc for epc in items if parse_sgtin(epc) is not None]
        change.sold = len(sold)
        change.quantity_delta -= len(sold)
    if step in DELIVERY_STEPS:
        change.purchase_order = purchase_order(event.event)


def _best_before(event: Mapping[str, Any]) -> date | None:
    for name in ("bestBeforeDate", "itemExpirationDate", "sellByDate"):
        value = ilmd_value(event, name)
        if isinstance(value, str):
            try:
                return date.fromisoformat(value[:10])
            except ValueError:
                continue
    return None


def purchase_order(event: Mapping[str, Any]) -> str | None:
    """The purchase order named in bizTransactionList (type `po`), if any."""
    transactions = event.get("bizTransactionList")
    if not isinstance(transactions, list):
        return None
    for transaction in transactions:
        if not isinstance(transaction, Mapping):
            continue
        kind = str(transaction.get("type", ""))
        if kind == "po" or kind.endswith("BTT-po") or kind.endswith(":po"):
            value = transaction.get("bizTransaction")
            if isinstance(value, str):
                return value
    return None


@dataclass
class LotRecord:
    """A lot's row as the worker keeps it in memory while it applies a chunk of the log."""

    lot_uri: str
    gtin: str
    lot: str
    quantity: int = 0
    location: str | None = None
    custody: str | None = None
    best_before: date | None = None
    recalled: bool = False
    last_inspection_disposition: str | None = None
    last_inspection_time: datetime | None = None
    last_inspection_hash: bytes | None = None
    updated_log_index: int | None = None


def apply_change(record: LotRecord, change: LotChange, event: LoggedEvent) -> None:
    """Fold one event's change into a lot (the row the database will hold afterwards)."""
    record.quantity = max(record.quantity + change.quantity_delta, 0)
    if change.location is not None:
        record.location = change.location
    if change.custody is not None:
        record.custody = change.custody
    if change.best_before is not None:
        record.best_before = change.best_before
    record.recalled = record.recalled or change.recalled
    if change.inspection is not None:
        record.last_inspection_disposition = change.inspection
        record.last_inspection_time = event.event_time
        record.last_inspection_hash = event.event_hash
    record.updated_log_index = event.log_index
