"""Monitoring reactions on a real database: failed inspection, recall, expiry, sale proceeds."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import orjson
import pytest

from epcis.capture import capture
from finance import pledges, service, valuation
from finance.store import attribution, credit
from finance.worker import FinanceConfig, FinanceWorker
from ingest.topics import Kind, device_topic
from ledger import log_store
from records import event_store, registry_store
from records.db import Conn
from records.event_store import EventToStore
from tests.support.world import JOURNAL
from tracefin.simulate import (
    COMPANY_PREFIX,
    WAREHOUSE_GLN,
    gtin_for,
    lifecycle,
    register_sim_sites,
)

pytestmark = pytest.mark.integration
WAREHOUSE = f"https://id.gs1.org/414/{WAREHOUSE_GLN}"
ORG = "mon-co"


def commit(conn: Conn, events: list[dict[str, object]]) -> None:
    """Capture, store and position events, as ingest and the anchor leader would."""
    device = registry_store.find_devices(conn, [(ORG, "plc-1")])[(ORG, "plc-1")]
    now = datetime.now(UTC)
    result = capture(
        orjson.dumps(events),
        device,
        now=now,
        max_payload_bytes=1 << 20,
        max_future_skew=timedelta(minutes=10),
    )
    assert not result.refused, result.refused
    with conn.transaction():
        topic = device_topic(ORG, "plc-1", Kind.EVENTS)  # sent by the device, over MQTT
        event_store.insert_events(
            conn, [EventToStore(a, device.org_id, "plc-1", topic, now) for a in result.accepted]
        )
        log_store.assign_positions(conn, len(result.accepted))


@pytest.fixture
def pledged_lot(conn: Conn) -> tuple[str, int]:
    """Lot 0 produced, inspected conformant, stored, pledged to `bank` and drawn 20.00."""
    registry_store.add_org(conn, ORG, "manufacturer", [COMPANY_PREFIX])
    registry_store.add_device(conn, ORG, "plc-1", None)
    register_sim_sites(conn, ORG)  # its device records at the simulated warehouse and shop
    registry_store.add_org(conn, "bank", "financier")
    service.add_product(conn, JOURNAL, ORG, gtin_for(0), "Dumplings", "frozen", "12.50", "CNY")
    service.add_warehouse(conn, JOURNAL, ORG, WAREHOUSE, "Cold store")
    service.supervise(conn, JOURNAL, "bank", WAREHOUSE)
    service.set_price(conn, JOURNAL, "bank", gtin_for(0), "12.50", "CNY")
    line = service.open_line(conn, JOURNAL, "bank", ORG, "1000.00", "CNY")
    story = [event for _, event in lifecycle(0, datetime.now(UTC) - timedelta(hours=1))]
    commit(conn, story[:4])
    FinanceWorker("unused", FinanceConfig(), JOURNAL).apply_next_chunk(conn)
    lot = f"https://id.gs1.org/01/{gtin_for(0)}/10/L0000000"
    lot_row = attribution.get_lot(conn, lot)
    assert lot_row is not None
    credit.add_pledge(conn, lot, line.id, pledges.lot_key(lot), WAREHOUSE, b"")
    credit.move_money(conn, line.id, "drawdown", 2000)
    return lot, line.id


def follow(conn: Conn) -> None:
    FinanceWorker("unused", FinanceConfig(), JOURNAL).apply_next_chunk(conn)


def margin_calls(conn: Conn, line_id: int) -> list[tuple[object, ...]]:
    return conn.execute(
        "SELECT shortfall_minor, reason FROM margin_calls WHERE line_id = %s", (line_id,)
    ).fetchall()


@pytest.mark.parametrize(
    ("disposition", "flag"),
    [("non_conformant", "quality_flag"), ("damaged", "quality_flag"), ("recalled", "recalled")],
)
def test_bad_news_revalues_the_lot_and_calls_margin(
    conn: Conn, pledged_lot: tuple[str, int], disposition: str, flag: str
) -> None:
    lot, line_id = pledged_lot
    bad = {
        "type": "ObjectEvent",
        "action": "OBSERVE",
        "eventTime": datetime.now(UTC).isoformat(),
        "eventTimeZoneOffset": "+00:00",
        "bizStep": "inspecting" if disposition != "recalled" else "holding",
        "disposition": disposition,
        "quantityList": [{"epcClass": lot, "quantity": 3, "uom": "EA"}],
        "bizLocation": {"id": WAREHOUSE},
    }
    commit(conn, [bad])
    follow(conn)
    assert flag in credit.open_flags(conn, lot)
    # The lot is worth nothing as collateral now: the whole 20.00 drawn is called.
    assert margin_calls(conn, line_id) == [(2000, disposition)]
    assert service.lot_status(conn, lot, "bank").collateral_value_minor == 0


def test_expiry_of_pledged_goods_is_flagged_once_and_calls_margin(
    conn: Conn, pledged_lot: tuple[str, int]
) -> None:
    lot, line_id = pledged_lot
    conn.execute(
        "UPDATE lots SET best_before = %s WHERE lot_uri = %s",
        (datetime.now(UTC).date() - timedelta(days=1), lot),
    )
    assert valuation.check_expiry(conn, JOURNAL, datetime.now(UTC)) == 1
    assert valuation.check_expiry(conn, JOURNAL, datetime.now(UTC)) == 0
    assert "expired" in credit.open_flags(conn, lot)
    assert margin_calls(conn, line_id) == [(2000, "expired")]


def test_sale_of_pledged_goods_routes_proceeds_to_the_pledgee(
    conn: Conn, pledged_lot: tuple[str, int]
) -> None:
    lot, line_id = pledged_lot
    story = [event for _, event in lifecycle(0, datetime.now(UTC) - timedelta(hours=1))]
    commit(conn, [story[6]])  # one item sold at the shop
    follow(conn)
    proceeds = conn.execute(
        "SELECT amount_minor FROM line_movements WHERE line_id = %s AND kind = 'proceeds_due'",
        (line_id,),
    ).fetchall()
    assert proceeds == [(1250,)]
    assert attribution.get_lot(conn, lot).quantity == 2  # type: ignore[union-attr]
