"""How events move lots (pure): membership, custody, inspections, sales, deliveries."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import pytest

from finance.tracking import (
    LoggedEvent,
    LotRecord,
    apply_change,
    changes,
    purchase_order,
)
from ledger.identifiers import lot_uri

GTIN = "00614141000012"
LOT = lot_uri(GTIN, "L1")
ITEMS = [f"https://id.gs1.org/01/{GTIN}/21/{n}" for n in (1, 2, 3)]
PALLET = "https://id.gs1.org/00/006141410000000017"
WAREHOUSE = "https://id.gs1.org/414/0614141000012"
T0 = datetime(2026, 11, 26, 8, tzinfo=UTC)


def logged(
    index: int,
    biz_step: str,
    *,
    epcs: list[str] | None = None,
    lots: list[str] | None = None,
    disposition: str | None = None,
    event_type: str = "ObjectEvent",
    action: str = "OBSERVE",
    location: str | None = WAREHOUSE,
    **body: Any,
) -> LoggedEvent:
    return LoggedEvent(
        log_index=index,
        event_hash=bytes([index]) * 32,
        event_time=T0,
        event_type=event_type,
        action=action,
        biz_step=biz_step,
        disposition=disposition,
        biz_location=location,
        epcs=epcs or [],
        lots=lots or [],
        event=body,
    )


def test_commissioning_creates_the_lot_with_its_items_and_best_before() -> None:
    event = logged(
        0,
        "commissioning",
        epcs=ITEMS,
        action="ADD",
        disposition="active",
        ilmd={"cbvmda:lotNumber": "L1", "cbvmda:bestBeforeDate": "2027-03-01"},
    )
    (change,) = changes(event, {})
    assert (change.lot_uri, change.quantity_delta, change.new_members) == (LOT, 3, ITEMS)
    assert (change.best_before, change.custody) == (date(2027, 3, 1), "production")


def test_recommissioning_known_items_does_not_count_them_twice() -> None:
    event = logged(0, "commissioning", epcs=ITEMS, action="ADD", ilmd={"cbvmda:lotNumber": "L1"})
    (change,) = changes(event, dict.fromkeys(ITEMS, LOT))
    assert (change.quantity_delta, change.new_members) == (0, [])


def test_packing_makes_the_pallet_a_member_of_its_items_lot() -> None:
    event = logged(
        1,
        "packing",
        epcs=[PALLET, *ITEMS],
        event_type="AggregationEvent",
        action="ADD",
        parentID=PALLET,
    )
    (change,) = changes(event, dict.fromkeys(ITEMS, LOT))
    assert change.new_members == [PALLET]


@pytest.mark.parametrize(
    ("step", "disposition", "custody", "moved"),
    [
        ("storing", "sellable_not_accessible", "warehouse", False),
        ("receiving", "in_progress", "warehouse", False),
        ("shipping", "in_transit", "in_transit", True),
        ("departing", "in_transit", "in_transit", True),
        ("loading", "in_transit", "in_transit", True),
        ("accepting", "in_progress", "delivered", False),
    ],
)
def test_pallet_events_move_the_lot(step: str, disposition: str, custody: str, moved: bool) -> None:
    (change,) = changes(logged(2, step, epcs=[PALLET], disposition=disposition), {PALLET: LOT})
    assert (change.custody, change.moved, change.location) == (custody, moved, WAREHOUSE)


@pytest.mark.parametrize("disposition", ["conformant", "non_conformant", "damaged"])
def test_inspection_of_the_lot_class_is_recorded(disposition: str) -> None:
    (change,) = changes(logged(3, "inspecting", lots=[LOT], disposition=disposition), {})
    assert change.inspection == disposition
    record = LotRecord(LOT, GTIN, "L1", quantity=3)
    apply_change(record, change, logged(3, "inspecting"))
    assert (record.last_inspection_disposition, record.last_inspection_hash) == (
        disposition,
        bytes([3]) * 32,
    )


def test_recall_and_sale() -> None:
    (recall,) = changes(logged(4, "holding", lots=[LOT], disposition="recalled"), {})
    assert recall.recalled
    (sale,) = changes(
        logged(5, "retail_selling", epcs=ITEMS[:2], disposition="retail_sold"),
        dict.fromkeys(ITEMS, LOT),
    )
    assert (sale.sold, sale.quantity_delta, sale.custody) == (2, -2, "sold")
    record = LotRecord(LOT, GTIN, "L1", quantity=3)
    apply_change(record, sale, logged(5, "retail_selling"))
    assert record.quantity == 1


def test_delivery_carries_its_purchase_order() -> None:
    po = "urn:epcglobal:cbv:bt:0614141000029:PO7"
    event = logged(
        6, "accepting", epcs=[PALLET], bizTransactionList=[{"type": "po", "bizTransaction": po}]
    )
    (change,) = changes(event, {PALLET: LOT})
    assert change.purchase_order == po
    assert (
        purchase_order(
            {
                "bizTransactionList": [
                    {"type": "https://ref.gs1.org/cbv/BTT-po", "bizTransaction": po}
                ]
            }
        )
        == po
    )
    assert purchase_order({"bizTransactionList": [{"type": "inv", "bizTransaction": po}]}) is None


def test_events_about_unknown_things_touch_no_lot() -> None:
    assert (
        changes(logged(7, "shipping", epcs=["https://id.gs1.org/00/106141410000000010"]), {}) == []
    )


def test_quantity_never_goes_negative() -> None:
    (sale,) = changes(logged(8, "retail_selling", epcs=ITEMS), dict.fromkeys(ITEMS, LOT))
    record = LotRecord(LOT, GTIN, "L1", quantity=1)
    apply_change(record, sale, logged(8, "retail_selling"))
    assert record.quantity == 0
