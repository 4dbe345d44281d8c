"""Monitoring reactions on a real database: failed inspection, recall, expiry, sale proceeds,
and flags that close on evidence."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import orjson
import pytest

from epcis.capture import capture
from epcis.telemetry import Reading
from finance import pledges, portfolio, repayments, service, valuation
from finance.errors import FinanceError, FinanceErrorCode
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


def commit(
    conn: Conn, events: list[dict[str, object]], org: str = ORG, device_id: str = "plc-1"
) -> None:
    """Capture, store and position events, as ingest and the anchor leader would."""
    device = registry_store.find_devices(conn, [(org, device_id)])[(org, device_id)]
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
        topic = device_topic(org, device_id, Kind.EVENTS)  # sent by the device, over MQTT
        event_store.insert_events(
            conn, [EventToStore(a, device.org_id, device_id, topic, now) for a in result.accepted]
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
    credit.add_pledge(conn, lot, line.id, pledges.lot_key(lot), WAREHOUSE, b"", lot_row.quantity)
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


def test_sale_proceeds_repay_the_loans_the_goods_secure_through_the_waterfall(
    conn: Conn, pledged_lot: tuple[str, int]
) -> None:
    lot, line_id = pledged_lot
    # The 20.00 drawn is a loan at 3.65 % a year with a 1 % fee, drawn 10 days ago.
    terms = replace(
        repayments.DEFAULT_TERMS, annual_rate=Decimal("0.0365"), fee_rate=Decimal("0.01")
    )
    loan = credit.add_loan(conn, line_id, lot, None, 2000, "CNY", terms)
    conn.execute("UPDATE loans SET drawn_on = drawn_on - 10 WHERE id = %s", (loan.id,))
    story = [event for _, event in lifecycle(0, datetime.now(UTC) - timedelta(hours=1))]
    commit(conn, [story[6]])  # one item sold at the shop: 12.50 due to the line
    follow(conn)
    # Fee ceil(2000 x 0.01) = 20, interest ceil(2000 x 0.0365 x 10 / 365) = 2, then principal.
    assert conn.execute(
        "SELECT source, amount_minor, fees_minor, penalty_minor, interest_minor, principal_minor"
        " FROM loan_payments WHERE loan_id = %s",
        (loan.id,),
    ).fetchall() == [("proceeds", 1250, 20, 0, 2, 1228)]
    assert credit.get_loan(conn, loan.id).outstanding_minor == 772  # type: ignore[union-attr]
    assert credit.get_line(conn, line_id).drawn_minor == 772  # type: ignore[union-attr]
    assert service.loan_statement(conn, None, loan.id).paid.principal_minor == 1228


def test_in_run_off_sale_proceeds_and_repayments_still_repay_and_the_line_closes_at_zero(
    conn: Conn, pledged_lot: tuple[str, int]
) -> None:
    lot, line_id = pledged_lot
    loan = credit.add_loan(conn, line_id, lot, None, 2000, "CNY", repayments.DEFAULT_TERMS)
    service.run_off(conn, JOURNAL, "regulator", None, "the sandbox closes")
    with pytest.raises(FinanceError) as refused:
        service.apply(conn, JOURNAL, ORG, "bank", lot, "1.00")
    assert refused.value.code == FinanceErrorCode.PROGRAMME_IN_RUN_OFF
    story = [event for _, event in lifecycle(0, datetime.now(UTC) - timedelta(hours=1))]
    commit(conn, [story[6]])  # one item sold at the shop: 12.50 of proceeds
    follow(conn)
    service.repay_loan(conn, JOURNAL, "bank", loan.id, "5.00")
    assert conn.execute(
        "SELECT source, principal_minor FROM loan_payments WHERE loan_id = %s ORDER BY id",
        (loan.id,),
    ).fetchall() == [("proceeds", 1250), ("borrower", 500)]
    [remaining] = portfolio.run_off(conn, None)
    assert (remaining.loan, remaining.owed_minor) == (loan.id, 250)
    with pytest.raises(FinanceError) as unsettled:
        service.close_line(conn, JOURNAL, "bank", line_id)
    assert unsettled.value.code == FinanceErrorCode.LINE_NOT_SETTLED
    service.repay_loan(conn, JOURNAL, "bank", loan.id, "2.50")
    assert portfolio.run_off(conn, None) == []
    credit.release_pledge(conn, lot, b"\x01" * 32)  # what service.release records, chain aside
    assert service.close_line(conn, JOURNAL, "bank", line_id).status == "closed"


# --- flags close on evidence -------------------------------------------------------------------


def inspection(lot: str, disposition: str, at: datetime) -> dict[str, object]:
    return {
        "type": "ObjectEvent",
        "action": "OBSERVE",
        "eventTime": at.isoformat(),
        "eventTimeZoneOffset": "+00:00",
        "bizStep": "inspecting",
        "disposition": disposition,
        "quantityList": [{"epcClass": lot, "quantity": 3, "uom": "EA"}],
        "bizLocation": {"id": WAREHOUSE},
    }


def cleared(conn: Conn, lot: str) -> list[tuple[object, ...]]:
    """(kind, reason, whether closing evidence is kept) of the lot's closed flags."""
    return conn.execute(
        "SELECT kind, cleared_reason, cleared_event_hash IS NOT NULL FROM risk_flags"
        " WHERE lot_uri = %s AND cleared_at IS NOT NULL ORDER BY id",
        (lot,),
    ).fetchall()


def live_calls(conn: Conn, line_id: int) -> list[tuple[object, ...]]:
    return conn.execute(
        "SELECT state, amount_minor FROM margin_calls WHERE line_id = %s ORDER BY id", (line_id,)
    ).fetchall()


def test_a_conformant_reinspection_closes_the_quality_flag_and_cures_the_call(
    conn: Conn, pledged_lot: tuple[str, int]
) -> None:
    lot, line_id = pledged_lot
    now = datetime.now(UTC)
    commit(conn, [inspection(lot, "non_conformant", now - timedelta(minutes=2))])
    follow(conn)
    assert "quality_flag" in credit.open_flags(conn, lot)
    assert live_calls(conn, line_id) == [("open", 2000)]
    # The borrower's own device saying its goods are fine again closes nothing.
    commit(conn, [inspection(lot, "conformant", now - timedelta(seconds=90))])
    follow(conn)
    assert "quality_flag" in credit.open_flags(conn, lot)
    # An inspector the owner authorised does.
    registry_store.add_org(conn, "lab", "inspector")
    registry_store.add_device(conn, "lab", "lab-1", None)
    registry_store.authorise(conn, ORG, "lab", [gtin_for(0)])
    commit(conn, [inspection(lot, "conformant", now - timedelta(minutes=1))], "lab", "lab-1")
    follow(conn)
    assert "quality_flag" not in credit.open_flags(conn, lot)
    assert cleared(conn, lot) == [("quality_flag", "conformant_reinspection", True)]
    assert live_calls(conn, line_id) == [("cured", 2000)]  # 3 x 12.50 x 0.70 covers 20.00
    assert service.lot_status(conn, lot, "bank").collateral_value_minor == 3750


def test_an_older_conformant_inspection_arriving_late_closes_nothing(
    conn: Conn, pledged_lot: tuple[str, int]
) -> None:
    lot, _ = pledged_lot
    now = datetime.now(UTC)
    commit(conn, [inspection(lot, "non_conformant", now - timedelta(minutes=1))])
    follow(conn)
    commit(conn, [inspection(lot, "conformant", now - timedelta(minutes=2))])  # happened before
    follow(conn)
    assert "quality_flag" in credit.open_flags(conn, lot)
    assert cleared(conn, lot) == []


def test_goods_attested_back_in_the_supervised_site_close_the_movement_flag(
    conn: Conn, pledged_lot: tuple[str, int]
) -> None:
    lot, line_id = pledged_lot
    story = [event for _, event in lifecycle(0, datetime.now(UTC) - timedelta(hours=1))]
    commit(conn, [story[4]])  # shipped without a release
    follow(conn)
    assert "unauthorized_movement" in credit.open_flags(conn, lot)
    back = {**story[3], "eventTime": (datetime.now(UTC) - timedelta(minutes=1)).isoformat()}
    commit(conn, [back])  # stored again in the supervised warehouse
    follow(conn)
    assert "unauthorized_movement" not in credit.open_flags(conn, lot)
    assert cleared(conn, lot) == [("unauthorized_movement", "back_in_supervised_site", True)]
    line = credit.get_line(conn, line_id)
    assert line is not None
    assert line.status == "frozen"  # unfreezing is the bank's decision
    service.set_line_status(conn, JOURNAL, "bank", line_id, "active")
    # A late event older than the shipping makes finance fold the lot again: the shipping it
    # already reacted to does not freeze the line the bank reopened.
    earlier = datetime.fromisoformat(str(story[0]["eventTime"])) - timedelta(seconds=1)
    commit(conn, [inspection(lot, "conformant", earlier)])
    follow(conn)
    reopened = credit.get_line(conn, line_id)
    assert reopened is not None
    assert reopened.status == "active"
    assert "unauthorized_movement" not in credit.open_flags(conn, lot)


def readings(conn: Conn, minutes: range, celsius: float) -> None:
    """Readings of the warehouse's bound probe, `minutes` ago, at `celsius`."""
    key = registry_store.find_devices(conn, [(ORG, "probe-1")])[(ORG, "probe-1")]
    now = datetime.now(UTC)
    rows = [
        event_store.ReadingToStore(
            Reading(now - timedelta(minutes=m), "temperature", celsius), key.org_id, "probe-1", now
        )
        for m in minutes
    ]
    with conn.transaction():
        event_store.insert_readings(conn, rows)


@pytest.fixture
def watched(conn: Conn, pledged_lot: tuple[str, int]) -> tuple[str, int]:
    """The pledged lot's product kept at -25..-15 °C, the warehouse's probe bound to it, and
    the bank tolerating a minute out of range."""
    service.add_product(
        conn, JOURNAL, ORG, gtin_for(0), "Dumplings", "frozen", "12.50", "CNY", "-25", "-15"
    )
    registry_store.add_device(conn, ORG, "probe-1", None)
    service.add_sensor(conn, ORG, "probe-1", WAREHOUSE)
    service.set_policy(conn, JOURNAL, "bank", breach_tolerance_s=60)
    return pledged_lot


def test_a_cold_chain_breach_closes_when_the_temperature_is_back_long_enough(
    conn: Conn, watched: tuple[str, int]
) -> None:
    lot, line_id = watched
    readings(conn, range(50, 19, -5), -5.0)  # 50..20 minutes ago: too warm
    assert valuation.check_cold_chain(conn, JOURNAL, datetime.now(UTC)) == 1
    assert "cold_chain_breach" in credit.open_flags(conn, lot)
    assert [state for state, _ in live_calls(conn, line_id)] == ["open"]
    readings(conn, range(0, 1), -20.0)  # back in range just now: not yet for the dwell time
    assert valuation.check_cold_chain(conn, JOURNAL, datetime.now(UTC)) == 0
    assert "cold_chain_breach" in credit.open_flags(conn, lot)
    readings(conn, range(10, 0, -2), -20.0)  # in range for the last ten minutes
    assert valuation.check_cold_chain(conn, JOURNAL, datetime.now(UTC)) == 0
    assert "cold_chain_breach" not in credit.open_flags(conn, lot)
    assert cleared(conn, lot) == [("cold_chain_breach", "temperature_back_in_range", False)]
    assert [state for state, _ in live_calls(conn, line_id)] == ["cured"]
    # The excursion that was closed is not raised again.
    assert valuation.check_cold_chain(conn, JOURNAL, datetime.now(UTC)) == 0
    assert "cold_chain_breach" not in credit.open_flags(conn, lot)


def test_an_excursion_before_the_goods_arrived_is_not_theirs(
    conn: Conn, watched: tuple[str, int]
) -> None:
    lot, _ = watched
    readings(conn, range(240, 90, -10), -5.0)  # 4 h to 1.5 h ago; the lot arrived 1 h ago
    readings(conn, range(50, 0, -10), -20.0)
    assert valuation.check_cold_chain(conn, JOURNAL, datetime.now(UTC)) == 0
    assert "cold_chain_breach" not in credit.open_flags(conn, lot)
