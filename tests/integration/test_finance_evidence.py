"""Finance believes only evidence, on a real database: claims nobody entitled made change nothing.

acme owns the goods' GS1 Company Prefix and operates the warehouse and the shop; evil, an
unrelated enterprise with its own prefix, devices and depot, sends claims about acme's pledged
lot. Each event goes through ingest's capture path (stored once, every copy an attestation).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import orjson
import pytest

from epcis.capture import DeviceKey
from epcis.event_hash import event_hash_digest, event_hash_id
from epcis.identifiers import check_digit
from epcis.telemetry import Reading
from finance import pledges, rules, service, valuation
from finance.store import attribution, credit
from finance.worker import FinanceConfig, FinanceWorker
from ingest.capture import CaptureBatch, Origin
from ingest.topics import Kind, device_topic
from ledger import log_store
from records import event_store, registry_store
from records.db import Conn
from records.event_store import ReadingToStore
from tests.support.adversary import sscc
from tests.support.world import JOURNAL
from tracefin.simulate import (
    COMPANY_PREFIX,
    FACTORY_GLN,
    SHOP_GLN,
    WAREHOUSE_GLN,
    gtin_for,
    lifecycle,
    register_sim_sites,
)

pytestmark = pytest.mark.integration
WAREHOUSE = f"https://id.gs1.org/414/{WAREHOUSE_GLN}"
ACME, EVIL, BANK, CARRIER = "acme", "evil", "bank", "haul-co"
EVIL_PREFIX = "0999999"
EVIL_GLN = f"{EVIL_PREFIX}00001" + check_digit(f"{EVIL_PREFIX}00001")
CARRIER_PREFIX = "0888888"
CARRIER_GLN = f"{CARRIER_PREFIX}00001" + check_digit(f"{CARRIER_PREFIX}00001")
LOT = f"https://id.gs1.org/01/{gtin_for(0)}/10/L0000000"
START = datetime.now(UTC) - timedelta(hours=1)
STORY = [
    event for _, event in lifecycle(0, START)
]  # commission pack inspect store ship accept sell


def send(conn: Conn, org: str, device: str, events: list[dict[str, object]]) -> None:
    """Submit events as `org`'s device over MQTT: stored once, each copy an attestation."""
    key = registry_store.find_devices(conn, [(org, device)])[(org, device)]
    send_as(conn, key, events)


def send_as(conn: Conn, key: DeviceKey, events: list[dict[str, object]]) -> None:
    batch = CaptureBatch()
    origin = Origin(
        device_topic(key.org_slug, key.device_id, Kind.EVENTS),
        datetime.now(UTC),
        orjson.dumps(events),
    )
    result = batch.capture(
        origin, key, max_payload_bytes=1 << 20, max_future_skew=timedelta(minutes=10)
    )
    assert not result.refused, result.refused
    with conn.transaction():
        new = batch.store(conn)
        log_store.assign_positions(conn, len(new))


def follow(conn: Conn) -> None:
    worker = FinanceWorker("unused", FinanceConfig(), JOURNAL)
    while worker.apply_next_chunk(conn):
        pass
    worker.apply_next_chunk(conn)  # lots whose events were attested again since


def at(event: dict[str, object], gln: str, **changes: object) -> dict[str, object]:
    """`event` happening at site `gln` (a new event: its hash changes with its place)."""
    place = {"id": f"https://id.gs1.org/414/{gln}"}
    return {**event, "readPoint": place, "bizLocation": place, **changes}


@pytest.fixture
def line(conn: Conn) -> int:
    """acme's lot 0 made, inspected, stored in the warehouse the bank supervises, pledged."""
    registry_store.add_org(conn, ACME, "manufacturer", [COMPANY_PREFIX])
    registry_store.add_device(conn, ACME, "plc-1", None)
    register_sim_sites(conn, ACME)  # the factory, the warehouse and the shop
    registry_store.add_org(conn, EVIL, "manufacturer", [EVIL_PREFIX])
    registry_store.add_device(conn, EVIL, "evil-1", None)
    registry_store.add_site(conn, EVIL, EVIL_GLN, "Evil depot")
    registry_store.add_org(conn, CARRIER, "logistics", [CARRIER_PREFIX])
    registry_store.add_device(conn, CARRIER, "truck-9", None)
    registry_store.add_org(conn, BANK, "financier")
    service.add_product(conn, JOURNAL, ACME, gtin_for(0), "Dumplings", "frozen", "12.50", "CNY")
    service.add_warehouse(conn, JOURNAL, ACME, WAREHOUSE, "Cold store")
    service.supervise(conn, JOURNAL, BANK, WAREHOUSE)
    service.set_price(conn, JOURNAL, BANK, gtin_for(0), "12.50", "CNY")
    opened = service.open_line(conn, JOURNAL, BANK, ACME, "1000.00", "CNY")
    send(conn, ACME, "plc-1", STORY[:4])
    follow(conn)
    stored = attribution.get_lot(conn, LOT)
    assert stored is not None
    credit.add_pledge(conn, LOT, opened.id, pledges.lot_key(LOT), WAREHOUSE, b"", stored.quantity)
    return opened.id


def lot_row(conn: Conn) -> tuple[object, ...]:
    lot = attribution.get_lot(conn, LOT)
    assert lot is not None
    return (lot.quantity, lot.location, lot.custody, lot.last_inspection_disposition)


def status_of(conn: Conn, line_id: int) -> str:
    found = credit.get_line(conn, line_id)
    assert found is not None
    return found.status


def bank_flags(conn: Conn) -> set[str]:
    bank = registry_store.get_org(conn, BANK)
    assert bank is not None
    return {row.kind for row in credit.risk_flags_for_financier(conn, bank.id, None)}


def entry(conn: Conn, event: dict[str, object]) -> service.EvidenceStatus:
    """The lot status's evidence entry of `event`."""
    wanted = event_hash_id(event)
    found = [e for e in service.lot_status(conn, LOT, BANK).evidence if e.event_hash == wanted]
    assert len(found) == 1, found
    return found[0]


def test_the_legitimate_story_counts(conn: Conn, line: int) -> None:
    assert lot_row(conn) == (3, WAREHOUSE, "warehouse", "conformant")
    status = service.lot_status(conn, LOT, BANK)
    assert [e.evidence for e in status.evidence] == ["counts"] * 4
    first = status.evidence[0]
    assert first.recorded_by == service.Recorder(ACME, "plc-1")
    assert (first.signed, first.attested_by, first.reason) == (False, [], None)
    assert status.collateral_value_minor == 3750


def test_an_unattested_shipping_of_pledged_goods_is_disputed_not_a_freeze(
    conn: Conn, line: int
) -> None:
    before = lot_row(conn)
    ship = STORY[4]
    send(conn, EVIL, "evil-1", [ship])  # evil's device, acme's warehouse
    follow(conn)
    assert status_of(conn, line) == "active"
    assert "disputed_movement" in bank_flags(conn)
    assert "unauthorized_movement" not in bank_flags(conn)
    assert lot_row(conn) == before
    shown = entry(conn, ship)
    assert (shown.evidence, shown.reason) == ("unattested", "not_site_operator")
    assert shown.recorded_by == service.Recorder(EVIL, "evil-1")
    # An alert, not a fault of the goods: the lot is still worth what it was.
    assert service.lot_status(conn, LOT, BANK).collateral_value_minor == 3750


def test_an_attested_shipping_without_a_release_freezes_the_line(conn: Conn, line: int) -> None:
    send(conn, ACME, "plc-1", [STORY[4]])
    follow(conn)
    assert status_of(conn, line) == "frozen"
    assert "unauthorized_movement" in credit.open_flags(conn, LOT)
    assert lot_row(conn)[2] == "in_transit"


def test_a_shipping_after_a_release_does_not_freeze(conn: Conn, line: int) -> None:
    credit.release_pledge(conn, LOT, b"")
    send(conn, ACME, "plc-1", [STORY[4]])
    follow(conn)
    assert status_of(conn, line) == "active"
    assert lot_row(conn)[2] == "in_transit"


def receiving_at(gln: str, minutes: int) -> dict[str, object]:
    """acme's pallet received at site `gln`, `minutes` after the story began."""
    receive = at(
        STORY[3],
        gln,
        bizStep="receiving",
        disposition="in_progress",
        eventTime=(START + timedelta(minutes=minutes)).isoformat(),
    )
    receive["epcList"] = STORY[3]["epcList"]
    return receive


def test_receiving_at_another_site_by_its_operator_is_disputed_while_the_goods_are_held(
    conn: Conn, line: int
) -> None:
    """evil operates its depot, but acme's pledged goods are in the supervised warehouse, which
    never let them go: evil's word that it received them is an alert, not a movement."""
    before = lot_row(conn)
    receive = receiving_at(EVIL_GLN, 60)
    send(conn, EVIL, "evil-1", [receive])
    follow(conn)
    shown = entry(conn, receive)
    assert (shown.evidence, shown.reason) == ("unattested", "held_elsewhere")
    assert status_of(conn, line) == "active"
    assert "disputed_movement" in bank_flags(conn)
    assert lot_row(conn) == before


def test_receiving_at_another_site_by_the_goods_owner_is_a_movement(conn: Conn, line: int) -> None:
    """acme's own word that its pledged goods are at its factory: a movement, the line freezes."""
    receive = receiving_at(FACTORY_GLN, 60)
    send(conn, ACME, "plc-1", [receive])
    follow(conn)
    assert entry(conn, receive).evidence == "counts"
    assert status_of(conn, line) == "frozen"
    assert lot_row(conn)[1] == f"https://id.gs1.org/414/{FACTORY_GLN}"


def test_goods_in_transit_arrive_only_where_they_were_sent(conn: Conn, line: int) -> None:
    """Released and shipped to evil's depot: evil's receiving there counts; the same shipment
    sent to acme's shop makes evil's word that it received the goods worth nothing."""
    credit.release_pledge(conn, LOT, b"")
    to_evil = {
        **STORY[4],
        "destinationList": [
            {"type": "owning_party", "destination": f"https://id.gs1.org/417/{EVIL_GLN}"}
        ],
    }
    send(conn, ACME, "plc-1", [to_evil])
    receive = receiving_at(EVIL_GLN, 0)
    shipped = datetime.fromisoformat(str(STORY[4]["eventTime"]))
    receive["eventTime"] = (shipped + timedelta(minutes=1)).isoformat()
    send(conn, EVIL, "evil-1", [receive])
    follow(conn)
    assert entry(conn, receive).evidence == "counts"
    assert lot_row(conn)[1] == f"https://id.gs1.org/414/{EVIL_GLN}"
    assert status_of(conn, line) == "active"


def test_goods_sent_elsewhere_are_not_received_by_a_stranger(conn: Conn, line: int) -> None:
    credit.release_pledge(conn, LOT, b"")
    send(conn, ACME, "plc-1", [STORY[4]])  # to acme's shop
    receive = receiving_at(EVIL_GLN, 0)
    shipped = datetime.fromisoformat(str(STORY[4]["eventTime"]))
    receive["eventTime"] = (shipped + timedelta(minutes=1)).isoformat()
    send(conn, EVIL, "evil-1", [receive])
    follow(conn)
    shown = entry(conn, receive)
    assert (shown.evidence, shown.reason) == ("unattested", "not_consignee")
    assert lot_row(conn)[1:3] == (WAREHOUSE, "in_transit")


def test_a_claim_about_the_time_before_the_goods_were_pledged_there_freezes_nothing(
    conn: Conn, line: int
) -> None:
    """evil reads the public page and backdates a receiving at its depot to before the goods
    reached the warehouse: a leg of their history, not a movement of pledged goods."""
    story_times = [datetime.fromisoformat(str(event["eventTime"])) for event in STORY[:4]]
    between = story_times[2] + (story_times[3] - story_times[2]) / 2
    receive = receiving_at(EVIL_GLN, 0)
    receive["eventTime"] = between.isoformat()
    send(conn, EVIL, "evil-1", [receive])
    follow(conn)
    assert status_of(conn, line) == "active"
    assert "unauthorized_movement" not in bank_flags(conn)
    assert lot_row(conn)[1] == WAREHOUSE  # the warehouse's storing came after


def test_a_custom_bizstep_at_another_site_is_a_movement_by_those_entitled(
    conn: Conn, line: int
) -> None:
    def relocated(org: str, device: str, gln: str) -> service.EvidenceStatus:
        """`org`'s own bizStep saying acme's goods are at site `gln`, after the storing."""
        event = at(
            STORY[3],
            gln,
            bizStep=f"https://{org}.example/steps/relocating",
            eventTime=(START + timedelta(minutes=1)).isoformat(),
        )
        send(conn, org, device, [event])
        follow(conn)
        return entry(conn, event)

    assert relocated(EVIL, "evil-1", EVIL_GLN).reason == "held_elsewhere"
    assert status_of(conn, line) == "active"
    assert relocated(ACME, "plc-1", FACTORY_GLN).evidence == "counts"
    assert status_of(conn, line) == "frozen"


def test_commissioning_into_someone_elses_lot_changes_no_quantity(conn: Conn, line: int) -> None:
    extra = [f"https://id.gs1.org/01/{gtin_for(0)}/21/EVIL{n:04d}" for n in range(4000)]
    commission = {
        **STORY[0],
        "epcList": extra,
        "eventTime": (START + timedelta(seconds=5)).isoformat(),
    }
    send(conn, EVIL, "evil-1", [commission])
    follow(conn)
    assert lot_row(conn)[0] == 3
    assert service.lot_status(conn, LOT, BANK).collateral_value_minor == 3750
    assert entry(conn, commission).reason == "not_goods_owner"


def test_retail_selling_by_someone_else_routes_no_proceeds(conn: Conn, line: int) -> None:
    send(conn, EVIL, "evil-1", [STORY[6]])  # at acme's shop
    follow(conn)
    movements = conn.execute(
        "SELECT kind FROM line_movements WHERE line_id = %s AND kind = 'proceeds_due'", (line,)
    ).fetchall()
    assert movements == []
    assert lot_row(conn)[0] == 3
    assert status_of(conn, line) == "active"


def test_an_inspection_by_someone_else_does_not_count(conn: Conn, line: int) -> None:
    """Lot 1 was never inspected by acme: evil's conformant inspection leaves no_inspection."""
    story = [event for _, event in lifecycle(1, START)]
    service.add_product(conn, JOURNAL, ACME, gtin_for(1), "Buns", "frozen", "1.00", "CNY")
    send(conn, ACME, "plc-1", [story[0], story[1], story[3]])
    send(conn, EVIL, "evil-1", [story[2]])
    follow(conn)
    lot = f"https://id.gs1.org/01/{gtin_for(1)}/10/L0000001"
    bank = registry_store.get_org(conn, BANK)
    assert bank is not None
    state = valuation.lot_state(conn, lot, bank.id)
    assert state is not None
    assert state.last_inspection is None
    judged = rules.eligibility(state, rules.Policy(), datetime.now(UTC), str(bank.id))
    assert rules.Reason.NO_INSPECTION in judged.failures


def test_a_later_rightful_attestation_counts_as_if_first(conn: Conn, line: int) -> None:
    ship = STORY[4]
    send(conn, EVIL, "evil-1", [ship])  # evil captures acme's shipping first
    follow(conn)
    assert status_of(conn, line) == "active"
    send(conn, ACME, "plc-1", [ship])  # a duplicate of the stored event: an attestation only
    follow(conn)
    assert status_of(conn, line) == "frozen"
    assert lot_row(conn)[2] == "in_transit"
    shown = entry(conn, ship)
    assert shown.evidence == "counts"
    assert shown.recorded_by == service.Recorder(EVIL, "evil-1")
    assert shown.attested_by == [service.Attester(ACME, "plc-1", False)]


def test_custody_in_transit_belongs_to_the_carrier_named(conn: Conn, line: int) -> None:
    credit.release_pledge(conn, LOT, b"")
    ship = {
        **STORY[4],
        "destinationList": [
            {
                "type": "possessing_party",
                "destination": f"https://id.gs1.org/417/{CARRIER_GLN}",
            }
        ],
    }
    send(conn, ACME, "plc-1", [ship])
    transport = {
        **STORY[4],
        "bizStep": "transporting",
        "eventTime": (START + timedelta(minutes=5)).isoformat(),
    }
    by_evil = {**transport, "eventTime": (START + timedelta(minutes=6)).isoformat()}
    send(conn, CARRIER, "truck-9", [transport])
    send(conn, EVIL, "evil-1", [by_evil])
    follow(conn)
    assert attribution.get_lot(conn, LOT).custodian == CARRIER  # type: ignore[union-attr]
    assert entry(conn, transport).evidence == "counts"
    assert (entry(conn, by_evil).evidence, entry(conn, by_evil).reason) == (
        "unattested",
        "not_custodian",
    )


def test_cold_chain_readings_count_only_from_devices_bound_to_the_site(
    conn: Conn, line: int
) -> None:
    """evil's device reports the warehouse far too warm; only acme's bound sensor counts."""
    service.add_product(
        conn, JOURNAL, ACME, gtin_for(0), "Dumplings", "frozen", "12.50", "CNY", "-25", "-15"
    )
    registry_store.add_device(conn, ACME, "probe-1", None)
    service.add_sensor(conn, ACME, "probe-1", WAREHOUSE)
    now = datetime.now(UTC)

    def too_warm(org: str, device: str) -> None:
        """Four hours of 30 °C readings from `org`'s `device`."""
        key = registry_store.find_devices(conn, [(org, device)])[(org, device)]
        rows = [
            ReadingToStore(
                Reading(now - timedelta(minutes=m), "temperature", 30.0), key.org_id, device, now
            )
            for m in range(0, 240, 10)
        ]
        with conn.transaction():
            event_store.insert_readings(conn, rows)

    too_warm(EVIL, "evil-1")  # a device bound to no site of acme's
    assert valuation.check_cold_chain(conn, JOURNAL, now) == 0
    assert "cold_chain_breach" not in credit.open_flags(conn, LOT)
    too_warm(ACME, "probe-1")  # the same readings from the bound sensor are a breach
    assert valuation.check_cold_chain(conn, JOURNAL, now) == 1
    assert "cold_chain_breach" in credit.open_flags(conn, LOT)


def test_a_site_registered_later_makes_its_operators_claims_count(conn: Conn, line: int) -> None:
    """A sale at acme's second shop, before the operator registered that site, counts once it
    is registered: the worker notices the registry changed and judges the claim again."""
    second_shop = f"{COMPANY_PREFIX}00003" + check_digit(f"{COMPANY_PREFIX}00003")
    sell = at(STORY[6], second_shop)
    send(conn, ACME, "plc-1", [sell])
    worker = FinanceWorker("unused", FinanceConfig(), JOURNAL)
    worker.notice_registry(conn)
    follow(conn)
    assert (entry(conn, sell).evidence, entry(conn, sell).reason) == ("unattested", "unknown_site")
    assert lot_row(conn)[0] == 3
    assert status_of(conn, line) == "active"
    assert not worker.notice_registry(conn)  # nothing changed

    registry_store.add_site(conn, ACME, second_shop, "Second shop")
    assert worker.notice_registry(conn)
    follow(conn)
    assert entry(conn, sell).evidence == "counts"
    assert lot_row(conn)[0] == 2
    proceeds = conn.execute(
        "SELECT amount_minor FROM line_movements WHERE line_id = %s AND kind = 'proceeds_due'",
        (line,),
    ).fetchall()
    assert proceeds == [(1250,)]
    assert status_of(conn, line) == "frozen"  # sold away from the supervised warehouse


def test_a_strangers_pallet_over_pledged_items_claims_nothing(conn: Conn, line: int) -> None:
    """evil 'loads' acme's pledged items under a pallet of its own at its depot (an aggregation
    under a site step: not a packing), then says it received that pallet: neither makes the
    pallet a member of acme's lot, nor moves it, nor freezes the line."""
    before = lot_row(conn)
    items = STORY[0]["epcList"]
    pallet = f"https://id.gs1.org/00/{sscc(EVIL_PREFIX, 7)}"
    loading = at(
        {**STORY[1], "bizStep": "loading", "parentID": pallet, "childEPCs": items},
        EVIL_GLN,
        eventTime=(START + timedelta(minutes=1)).isoformat(),
    )
    receive = receiving_at(EVIL_GLN, 2)
    receive["epcList"] = [pallet]
    send(conn, EVIL, "evil-1", [loading, receive])
    follow(conn)
    assert attribution.members_of(conn, [pallet]) == {}
    assert lot_row(conn) == before
    assert status_of(conn, line) == "active"


def test_a_repackaging_elsewhere_does_not_take_pledged_goods_off_their_site(
    conn: Conn, line: int
) -> None:
    """acme authorises a contract packer; its repackaging at its own site counts (it may say
    what the goods are), but moves nothing: the goods stay in the supervised warehouse, and its
    later word that it received them there is disputed, not a way round the freeze."""
    registry_store.add_org(conn, "packer", "manufacturer", [CARRIER_PREFIX[:-1] + "7"])
    registry_store.add_device(conn, "packer", "pk-1", None)
    packer_gln = f"{CARRIER_PREFIX[:-1]}700001" + check_digit(f"{CARRIER_PREFIX[:-1]}700001")
    registry_store.add_site(conn, "packer", packer_gln, "Packer")
    registry_store.authorise(conn, ACME, "packer", [gtin_for(0)])
    before = lot_row(conn)
    repack = at(
        {**STORY[1], "bizStep": "repackaging"},
        packer_gln,
        eventTime=(START + timedelta(minutes=1)).isoformat(),
    )
    send(conn, "packer", "pk-1", [repack])
    received = receiving_at(packer_gln, 2)
    send(conn, "packer", "pk-1", [received])
    follow(conn)
    assert entry(conn, repack).evidence == "counts"
    assert entry(conn, received).reason == "held_elsewhere"
    assert lot_row(conn)[1] == before[1] == WAREHOUSE
    assert status_of(conn, line) == "active"


# --- some of a pledged lot's units going their own way (issue 14: quantities) ----------------

ITEMS = STORY[0]["epcList"]
SHOP = f"https://id.gs1.org/414/{SHOP_GLN}"


def units_leave(items: list[str], minutes: int, step: str = "shipping") -> dict[str, object]:
    """acme's warehouse sending (or selling) some units of lot 0 one by one."""
    leave = at(
        STORY[4],
        WAREHOUSE_GLN,
        bizStep=step,
        disposition="retail_sold" if step == "retail_selling" else "in_transit",
        eventTime=(START + timedelta(minutes=minutes)).isoformat(),
    )
    leave["epcList"] = items
    return leave


def journaled(conn: Conn, action: str) -> list[dict[str, object]]:
    rows = conn.execute(
        "SELECT detail FROM finance_journal WHERE action = %s ORDER BY id", (action,)
    ).fetchall()
    return [row[0] for row in rows]


def test_units_the_bank_released_leave_and_the_rest_stay_pledged_where_they_are(
    conn: Conn, line: int
) -> None:
    """Of three pledged units the bank releases one; that unit shipping freezes nothing, and
    the other two are still in the supervised warehouse, worth two units. A second unit leaving
    is pledged goods leaving: frozen, flagged, revalued. The first unit's sale at the shop
    changes nothing about the lot, which stays flagged while pledged units are missing."""
    assert service.lot_status(conn, LOT, BANK).collateral_value_minor == 3750
    credit.reduce_pledge(conn, LOT, 1)  # what service.release(..., quantity=1) records
    send(conn, ACME, "plc-1", [units_leave(ITEMS[:1], 1)])
    follow(conn)
    assert status_of(conn, line) == "active"
    assert lot_row(conn) == (2, WAREHOUSE, "warehouse", "conformant")
    status = service.lot_status(conn, LOT, BANK)
    assert (status.collateral_value_minor, status.pledge.quantity) == (2500, 2)  # type: ignore[union-attr]
    assert journaled(conn, "released_units_left") == [{"line": line, "units": 1}]
    assert "unauthorized_movement" not in credit.open_flags(conn, LOT)

    send(conn, ACME, "plc-1", [units_leave(ITEMS[1:2], 2)])
    follow(conn)
    assert status_of(conn, line) == "frozen"
    assert "unauthorized_movement" in credit.open_flags(conn, LOT)
    assert lot_row(conn) == (1, WAREHOUSE, "warehouse", "conformant")
    assert service.lot_status(conn, LOT, BANK).collateral_value_minor == 1250

    sold_at_shop = at(
        STORY[6], SHOP_GLN, eventTime=(START + timedelta(minutes=3)).isoformat()
    )  # the released unit (ITEMS[0]) sold at the shop
    send(conn, ACME, "plc-1", [sold_at_shop])
    follow(conn)
    assert lot_row(conn) == (1, WAREHOUSE, "warehouse", "conformant")
    assert "unauthorized_movement" in credit.open_flags(conn, LOT)
    assert journaled(conn, "proceeds_due") == []  # released: its proceeds are not the bank's


def test_a_sale_of_some_pledged_units_lowers_the_lot_not_the_whole_of_it(
    conn: Conn, line: int
) -> None:
    """One of three pledged units sold from the warehouse without a release: the two others
    stay eligible collateral where they are, the sale is a movement of pledged goods (frozen),
    and its proceeds are due to the bank's line at the bank's price."""
    send(conn, ACME, "plc-1", [units_leave(ITEMS[:1], 1, step="retail_selling")])
    follow(conn)
    assert lot_row(conn) == (2, WAREHOUSE, "warehouse", "conformant")
    assert status_of(conn, line) == "frozen"
    # No loan is drawn on this line: nothing for the proceeds to repay.
    assert journaled(conn, "proceeds_due") == [
        {"lot": LOT, "items": 1, "amount_minor": 1250, "applied": [], "unapplied_minor": 1250}
    ]
    state = valuation.lot_state(conn, LOT, registry_store.get_org(conn, BANK).id, "CNY")  # type: ignore[union-attr]
    assert state is not None
    assert (state.quantity, state.sold, state.in_supervised_warehouse) == (2, False, True)


def test_a_refold_reaches_the_same_split(conn: Conn, line: int) -> None:
    """A late event sorting before the split folds the lot again from nothing: the same two
    units at hand, the same unit apart, and no second freeze for the split seen before."""
    credit.reduce_pledge(conn, LOT, 1)
    send(conn, ACME, "plc-1", [units_leave(ITEMS[:1], 2)])
    follow(conn)
    before = attribution.get_lot(conn, LOT)
    late = at(STORY[3], WAREHOUSE_GLN, eventTime=(START + timedelta(minutes=1)).isoformat())
    send(conn, ACME, "plc-1", [late])  # a re-scan in the warehouse, arriving late
    follow(conn)
    after = attribution.get_lot(conn, LOT)
    assert before is not None
    assert after is not None
    assert (after.quantity, after.departed, after.held_at) == (2, ITEMS[:1], WAREHOUSE_GLN)
    assert (before.quantity, before.departed) == (after.quantity, after.departed)
    assert status_of(conn, line) == "active"
    assert len(journaled(conn, "released_units_left")) == 1


# --- a recall closes only when the org that recalled the goods withdraws it ------------------


def inspected(disposition: str, minutes: int) -> dict[str, object]:
    """An inspection of lot 0 at the warehouse, `minutes` after the story began."""
    return at(
        STORY[2],
        WAREHOUSE_GLN,
        disposition=disposition,
        eventTime=(START + timedelta(minutes=minutes)).isoformat(),
    )


def test_a_recall_is_withdrawn_only_by_the_org_that_recalled_the_goods(
    conn: Conn, line: int
) -> None:
    """The inspector acme authorised recalls lot 0: flagged, worth nothing. acme's own word
    that the goods are fine (a conformant inspection) withdraws nothing; the inspector's does:
    the flag closes with the withdrawing event as its evidence, and the lot is worth its
    three units again."""
    registry_store.add_org(conn, "lab", "inspector")
    registry_store.add_device(conn, "lab", "lab-1", None)
    registry_store.authorise(conn, ACME, "lab", [gtin_for(0)])
    recall = inspected("recalled", 1)
    send(conn, "lab", "lab-1", [recall])
    follow(conn)
    assert "recalled" in credit.open_flags(conn, LOT)
    assert service.lot_status(conn, LOT, BANK).collateral_value_minor == 0
    assert attribution.get_lot(conn, LOT).recalled_by == "lab"  # type: ignore[union-attr]

    send(conn, ACME, "plc-1", [inspected("conformant", 2)])
    follow(conn)
    assert "recalled" in credit.open_flags(conn, LOT)  # the borrower's word withdraws nothing

    withdrawal = inspected("conformant", 3)
    send(conn, "lab", "lab-1", [withdrawal])
    follow(conn)
    assert "recalled" not in credit.open_flags(conn, LOT)
    cleared = conn.execute(
        "SELECT cleared_reason, cleared_event_hash FROM risk_flags"
        " WHERE lot_uri = %s AND kind = 'recalled'",
        (LOT,),
    ).fetchall()
    assert [(reason, bytes(digest)) for reason, digest in cleared] == [
        ("recall_withdrawn", event_hash_digest(withdrawal))
    ]
    assert service.lot_status(conn, LOT, BANK).collateral_value_minor == 3750


def test_proceeds_are_due_at_the_banks_price_never_the_borrowers(conn: Conn, line: int) -> None:
    """The bank has no price for the goods: a sale of a pledged unit books no proceeds at the
    borrower's own reference price; it is journaled for the bank to settle."""
    conn.execute("DELETE FROM financier_prices")
    send(conn, ACME, "plc-1", [units_leave(ITEMS[:1], 1, step="retail_selling")])
    follow(conn)
    assert journaled(conn, "proceeds_due") == []
    assert journaled(conn, "proceeds_unpriced") == [{"lot": LOT, "items": 1}]
    movements = conn.execute(
        "SELECT count(*) FROM line_movements WHERE kind = 'proceeds_due'"
    ).fetchone()
    assert movements == (0,)
