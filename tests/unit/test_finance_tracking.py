"""How events move lots (pure): membership, custody, inspections, sales, deliveries."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from epcis.authority import Fact
from epcis.identifiers import lot_uri
from finance.tracking import (
    LoggedEvent,
    LotChange,
    LotRecord,
    Split,
    apply_change,
    apply_split,
    attribute,
    follow_recall,
    lot_change,
    purchase_order,
    split_of,
)

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


PACKING = logged(
    1,
    "packing",
    epcs=[PALLET, *ITEMS],
    event_type="AggregationEvent",
    action="ADD",
    parentID=PALLET,
)


def changes(event: LoggedEvent, members: dict[str, str]) -> list[LotChange]:
    """What `event` does to each lot it touches when it arrives after everything in `members`."""
    attribution = attribute(event, members, True)
    after = members | dict(attribution.joined)
    return [
        lot_change(event, uri, after, {epc for epc, lot in members.items() if lot == uri})
        for uri in sorted(attribution.lots)
    ]


def test_commissioning_creates_the_lot_with_its_items_and_best_before() -> None:
    event = logged(
        0,
        "commissioning",
        epcs=ITEMS,
        action="ADD",
        disposition="active",
        ilmd={"cbvmda:lotNumber": "L1", "cbvmda:bestBeforeDate": "2027-03-01"},
    )
    assert attribute(event, {}, True).joined == tuple((item, LOT) for item in ITEMS)
    (change,) = changes(event, {})
    assert (change.lot_uri, change.quantity_delta) == (LOT, 3)
    assert (change.best_before, change.custody) == (date(2027, 3, 1), "production")


def test_recommissioning_known_items_does_not_count_them_twice() -> None:
    event = logged(0, "commissioning", epcs=ITEMS, action="ADD", ilmd={"cbvmda:lotNumber": "L1"})
    assert attribute(event, dict.fromkeys(ITEMS, LOT), True).joined == ()
    (change,) = changes(event, dict.fromkeys(ITEMS, LOT))
    assert change.quantity_delta == 0


def test_packing_makes_the_pallet_a_member_of_its_items_lot() -> None:
    assert attribute(PACKING, dict.fromkeys(ITEMS, LOT), True).joined == ((PALLET, LOT),)


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


def test_identifiers_of_no_known_lot_are_named_for_later() -> None:
    """Packing that arrives before its items' commissioning claims nothing yet, and says which
    identifiers to look at again once a lot claims them."""
    early = attribute(PACKING, {}, True)
    assert (early.lots, early.joined, set(early.unknown)) == (frozenset(), (), {PALLET, *ITEMS})
    late = attribute(PACKING, dict.fromkeys(ITEMS, LOT), True)
    assert (late.lots, late.joined, late.unknown) == (frozenset({LOT}), ((PALLET, LOT),), ())


def test_commissioned_items_count_once_per_fold() -> None:
    """Folding a lot again from nothing counts its items again; folding on does not."""
    event = logged(0, "commissioning", epcs=ITEMS, action="ADD", ilmd={"cbvmda:lotNumber": "L1"})
    members = dict.fromkeys(ITEMS, LOT)
    counted: set[str] = set()
    assert lot_change(event, LOT, members, counted).quantity_delta == 3
    assert lot_change(event, LOT, members, counted).quantity_delta == 0
    assert counted == set(ITEMS)


def test_a_lot_knows_which_events_sort_after_what_it_holds() -> None:
    record = LotRecord(LOT, GTIN, "L1")
    first = logged(9, "storing", epcs=[PALLET])
    assert record.folds_after(first)
    apply_change(record, lot_change(first, LOT, {PALLET: LOT}, set()), first)
    assert (record.latest_event_time, record.latest_event_hash) == (T0, first.event_hash)
    earlier = replace(first, log_index=10, event_time=T0 - timedelta(seconds=1))
    same_time_lower_hash = replace(first, log_index=11, event_hash=bytes(32))
    later = replace(first, log_index=12, event_time=T0 + timedelta(seconds=1))
    assert not record.folds_after(earlier)
    assert not record.folds_after(same_time_lower_hash)
    assert record.folds_after(later)
    apply_change(record, lot_change(earlier, LOT, {PALLET: LOT}, set()), earlier)
    assert (record.latest_event_time, record.updated_log_index) == (T0, 10)


# --- splits: some of a lot's items go their own way ------------------------------------------

SHOP = "https://id.gs1.org/414/0614141000029"
HELD = "0614141000012"  # the warehouse's GLN


def held_lot(departed: list[str] | None = None) -> LotRecord:
    """Three items held at the warehouse (some of them maybe split off already)."""
    return LotRecord(
        LOT, GTIN, "L1", quantity=3 - len(departed or []), held_at=HELD, departed=departed or []
    )


def split(event: LoggedEvent, fact: Fact, record: LotRecord) -> Split | None:
    return split_of(event, fact, LOT, dict.fromkeys([PALLET, *ITEMS], LOT), record)


@pytest.mark.parametrize(
    ("event", "fact", "sold"),
    [
        (
            logged(10, "shipping", epcs=ITEMS[:1], disposition="in_transit"),
            Fact.SITE_CUSTODY,
            False,
        ),
        (
            logged(10, "retail_selling", epcs=ITEMS[:1], disposition="retail_sold"),
            Fact.RETAIL_SALE,
            True,
        ),
        (logged(10, "receiving", epcs=ITEMS[:1], location=SHOP), Fact.SITE_CUSTODY, False),
    ],
)
def test_some_items_leaving_split_off_and_the_rest_stay(
    event: LoggedEvent, fact: Fact, sold: bool
) -> None:
    record = held_lot()
    found = split(event, fact, record)
    assert found == Split((ITEMS[0],), leaving=True, sold=sold)
    apply_split(record, found, event)
    assert (record.quantity, record.departed, record.held_at) == (2, [ITEMS[0]], HELD)


@pytest.mark.parametrize(
    ("event", "fact"),
    [
        (logged(11, "shipping", epcs=ITEMS, disposition="in_transit"), Fact.SITE_CUSTODY),  # all
        (logged(11, "shipping", epcs=[PALLET]), Fact.SITE_CUSTODY),  # a container stands for all
        (logged(11, "storing", epcs=ITEMS[:1]), Fact.SITE_CUSTODY),  # where the lot is: no split
        (logged(11, "inspecting", epcs=ITEMS[:1], disposition="damaged"), Fact.INSPECTION),
        (logged(11, "shipping", lots=[LOT]), Fact.SITE_CUSTODY),  # the class: the lot as a whole
    ],
)
def test_what_does_not_split_a_lot(event: LoggedEvent, fact: Fact) -> None:
    assert split(event, fact, held_lot()) is None


def test_a_lot_not_held_anywhere_moves_as_one() -> None:
    record = replace(held_lot(), held_at=None)
    assert (
        split(logged(12, "receiving", epcs=ITEMS[:1], location=SHOP), Fact.SITE_CUSTODY, record)
        is None
    )


def test_items_apart_change_nothing_and_come_back_to_where_the_lot_is() -> None:
    record = held_lot(departed=[ITEMS[0]])
    at_shop = logged(13, "retail_selling", epcs=ITEMS[:1], location=SHOP, disposition="retail_sold")
    assert split(at_shop, Fact.RETAIL_SALE, record) == Split((), leaving=True, sold=False)
    back = logged(14, "receiving", epcs=ITEMS[:1])
    returned = split(back, Fact.SITE_CUSTODY, record)
    assert returned == Split((ITEMS[0],), leaving=False, sold=False)
    apply_split(record, returned, back)
    assert (record.quantity, record.departed) == (3, [])


def test_the_last_items_at_hand_leave_as_the_lot() -> None:
    """Two split off; the third leaving is the whole lot (at hand) moving."""
    record = held_lot(departed=ITEMS[:2])
    last = logged(15, "shipping", epcs=ITEMS[2:], disposition="in_transit")
    assert split(last, Fact.SITE_CUSTODY, record) is None


def test_only_the_org_that_recalled_a_lot_withdraws_the_recall() -> None:
    record = LotRecord(LOT, GTIN, "L1", quantity=3)
    recall = logged(20, "holding", lots=[LOT], disposition="recalled")
    change = lot_change(recall, LOT, {}, set())
    apply_change(record, change, recall)
    assert not follow_recall(record, change, recall, "lab")
    assert (record.recalled, record.recalled_by) == (True, "lab")
    fine = logged(21, "inspecting", lots=[LOT], disposition="conformant")
    unchanged = lot_change(fine, LOT, {}, set())
    assert not follow_recall(record, unchanged, fine, "acme")  # not the recaller
    assert not follow_recall(record, unchanged, logged(22, "holding", lots=[LOT]), "lab")
    assert record.recalled
    assert follow_recall(record, unchanged, fine, "lab")
    assert (record.recalled, record.recalled_by) == (False, None)
