"""The whole financing story over real MQTT, PostgreSQL and anvil, driven by simulated devices."""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest

from epcis.event_hash import event_hash_digest
from epcis.signatures import sign_digest
from epcis.telemetry import sign_telemetry
from finance import pledges, service
from finance.errors import FinanceError
from finance.pledges import PledgeRegistry
from finance.store import attribution, credit, goods
from finance.store.credit import Line
from ledger.chain import Chain, connect
from ledger.deployment import ensure_deployment
from records import registry_store
from records.db import Conn
from tests.support.processes import IngestProcess, WorkerProcess
from tests.support.world import JOURNAL
from tracefin.settings import DEVNET_PRIVATE_KEY
from tracefin.simulate import (
    WAREHOUSE_GLN,
    Publication,
    Publisher,
    SimDevice,
    gtin_for,
    lifecycle,
    register_sim_devices,
    sim_devices,
)

pytestmark = pytest.mark.integration
WAREHOUSE = f"https://id.gs1.org/414/{WAREHOUSE_GLN}"


def wait_until(check: Callable[[], object], what: str, timeout: float = 30) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def workers(
    fresh_database_url: str,
    mqtt_url: str,
    chain_rpc_url: str,
    tmp_path: Path,
    start_anchor: Callable[..., WorkerProcess],
) -> Iterator[dict[str, WorkerProcess]]:
    ingest = IngestProcess(fresh_database_url, mqtt_url, tmp_path)
    ingest.start()
    ingest.wait_until_subscribed()
    env = {"TRACEFIN_DATABASE_URL": fresh_database_url}
    finance = WorkerProcess(["finance"], env, tmp_path, "finance")
    finance.start()
    anchor = start_anchor(anchor_batch_max_wait_ms="50")
    yield {"ingest": ingest, "finance": finance, "anchor": anchor}
    ingest.stop()
    finance.stop()


@dataclass
class Onboarded:
    """acme's org and devices, two banks supervising its warehouse with their own prices and a
    line each, bank-a tolerating 2 s out of range; the chain; lot 0 and its story."""

    org: str
    devices: dict[str, SimDevice]
    chain: Chain
    line: Line
    lot: str
    publisher: Publisher
    story: list[tuple[str, dict[str, object]]]

    def publish(self, index: int) -> bytes:
        return self.publish_event(*self.story[index])

    def publish_event(self, device_id: str, event: dict[str, object]) -> bytes:
        device = self.devices[device_id]
        digest = event_hash_digest(event)
        self.publisher.publish(
            Publication(
                device.events_topic,
                orjson.dumps({"event": event, "sig": sign_digest(device.private_key, digest)}),
            )
        )
        return digest

    def telemetry(self, celsius: float, seconds_ago: Sequence[int]) -> None:
        """The warehouse sensor's signed readings, `seconds_ago` before now."""
        now = datetime.now(UTC)
        readings = [
            {"time": (now - timedelta(seconds=s)).isoformat(), "readings": {"temperature": celsius}}
            for s in seconds_ago
        ]
        signed = sign_telemetry(self.devices["wh-1"].private_key, readings)
        self.publisher.publish(
            Publication(self.devices["wh-1"].telemetry_topic, orjson.dumps(signed))
        )

    def stored(self, conn: Conn) -> None:
        """Produced, packed, inspected conformant, stored in the supervised warehouse."""
        for index in range(4):
            self.publish(index)
        wait_until(
            lambda: (
                (s := attribution.get_lot(conn, self.lot)) is not None
                and s.custody == "warehouse"
                and s.last_inspection_disposition == "conformant"
            ),
            "lot in warehouse",
        )


@pytest.fixture
def onboarded(conn: Conn, chain_rpc_url: str, mqtt_url: str) -> Iterator[Onboarded]:
    org = f"acme-{secrets.token_hex(3)}"
    register_sim_devices(conn, org, seed=org)
    devices = sim_devices(org, seed=org)
    deployment = ensure_deployment(conn, connect(chain_rpc_url), DEVNET_PRIVATE_KEY).deployment
    chain = Chain(
        connect(chain_rpc_url),
        deployment.anchor_address,
        deployment.pledge_address,
        DEVNET_PRIVATE_KEY,
    )
    for bank in ("bank-a", "bank-b"):
        registry_store.add_org(conn, bank, "financier")
    gtin = gtin_for(0)
    service.add_product(
        conn,
        JOURNAL,
        org,
        gtin,
        "Frozen dumplings",
        "frozen",
        "12.50",
        "CNY",
        min_temp_c="-25",
        max_temp_c="-15",
    )
    service.add_warehouse(conn, JOURNAL, org, WAREHOUSE, "Cold store 1")
    service.add_sensor(conn, org, "wh-1", WAREHOUSE)
    for bank in ("bank-a", "bank-b"):
        service.supervise(conn, JOURNAL, bank, WAREHOUSE)
        service.set_price(conn, JOURNAL, bank, gtin, "12.50", "CNY")
        service.open_line(conn, JOURNAL, bank, org, "1000.00", "CNY")
    service.set_policy(conn, JOURNAL, "bank-a", breach_tolerance_s=2)
    line = credit.get_line(conn, 1)
    assert line is not None
    publisher = Publisher(mqtt_url, f"story-{secrets.token_hex(3)}")
    story = lifecycle(0, datetime.now(UTC) - timedelta(minutes=5))
    lot = f"https://id.gs1.org/01/{gtin}/10/L0000000"
    try:
        yield Onboarded(org, devices, chain, line, lot, publisher, story)
    finally:
        publisher.close()


def test_pledge_finance_breach_unauthorized_shipment_repay_release(
    conn: Conn, onboarded: Onboarded, workers: dict[str, WorkerProcess]
) -> None:
    org, chain, line, lot = onboarded.org, onboarded.chain, onboarded.line, onboarded.lot
    publish = onboarded.publish
    onboarded.stored(conn)
    status = service.lot_status(conn, lot, "bank-a")
    assert (status.quantity, status.location) == (3, WAREHOUSE)

    pledged = service.pledge(conn, JOURNAL, chain, "bank-a", lot)
    assert PledgeRegistry(chain).pledgee(pledges.lot_key(lot)) is not None
    # A second bank cannot take the same goods: the contract refuses, reported double_pledge.
    with pytest.raises(FinanceError) as refused:
        service.pledge(conn, JOURNAL, chain, "bank-b", lot)
    assert refused.value.code == "double_pledge"
    assert "PledgeRegistry refused" in refused.value.detail
    assert "double_pledge" in credit.open_flags(conn, lot)
    assert pledged.line == line.id

    # Approved at the advance rate once the evidence is anchored: 3 x 12.50 x 70% = 26.25.
    wait_until(lambda: all(e.anchored for e in goods.lot_evidence(conn, lot)), "evidence anchored")
    decision = service.apply(conn, JOURNAL, org, "bank-a", lot, "26.25")
    assert (decision.decision, decision.approved_minor) == ("approve", 2625), decision
    assert decision.evidence
    assert decision.offer_id is not None
    service.accept_offer(conn, JOURNAL, org, decision.offer_id)

    # Cold-chain breach from telemetry: out of range longer than the 2 s tolerance.
    onboarded.telemetry(-5.0, (6, 4, 2, 0))
    wait_until(lambda: "cold_chain_breach" in credit.open_flags(conn, lot), "breach flag")
    calls = wait_until(
        lambda: conn.execute(
            "SELECT shortfall_minor FROM margin_calls WHERE line_id = %s AND settled_at IS NULL",
            (line.id,),
        ).fetchall(),
        "margin call",
    )
    assert calls == [(2625,)]

    # Unauthorized shipment of the pledged goods: the line freezes within 2 s of the commit.
    shipped = publish(4)
    frozen = wait_until(
        lambda: conn.execute(
            "SELECT j.at - e.received_at FROM finance_journal j, events e"
            " WHERE j.action = 'line_frozen' AND e.event_hash = %s",
            (shipped,),
        ).fetchone(),
        "line frozen",
    )
    assert frozen[0] <= timedelta(seconds=2), frozen
    assert credit.get_line(conn, line.id).status == "frozen"  # type: ignore[union-attr]
    assert "unauthorized_movement" in credit.open_flags(conn, lot)
    # Frozen: no new money, but repayments are taken (the exit path).
    assert service.apply(conn, JOURNAL, org, "bank-a", lot, "1.00").decision == "decline"
    service.repay(conn, JOURNAL, "bank-a", line.id, "10.00")
    after = service.repay(conn, JOURNAL, "bank-a", line.id, "16.25")
    assert after.drawn_minor == 0

    service.release(conn, JOURNAL, chain, "bank-a", lot)
    assert PledgeRegistry(chain).pledgee(pledges.lot_key(lot)) is None
    assert credit.live_pledge(conn, lot) is None
    actions = [
        row[0] for row in conn.execute("SELECT action FROM finance_journal ORDER BY id").fetchall()
    ]
    for expected in (
        "pledged",
        "double_pledge_refused",
        "decision_approve",
        "margin_call",
        "line_frozen",
        "repayment",
        "released",
    ):
        assert expected in actions, (expected, actions)
    assert workers["finance"].alive, workers["finance"].log_text()


def test_the_financiers_day(
    conn: Conn, onboarded: Onboarded, workers: dict[str, WorkerProcess]
) -> None:
    """Issue 14's day, over real MQTT, PostgreSQL and anvil: price list, attested storage,
    pledge, application -> offer -> accept -> loan; a cold-chain breach opens one flag and one
    margin call for the shortfall; the temperature recovers, the flag closes and the call is
    cured; a release is refused while the lot secures the loan and done after repayment. On
    the way the bank releases one of the three pledged units, which is sold from the warehouse:
    the lot and its pledge are two units, still in the warehouse, and nothing freezes."""
    org, chain, line, lot = onboarded.org, onboarded.chain, onboarded.line, onboarded.lot
    service.set_price(conn, JOURNAL, "bank-a", gtin_for(0), "12.00", "CNY")  # its price list
    onboarded.stored(conn)
    service.pledge(conn, JOURNAL, chain, "bank-a", lot)
    wait_until(lambda: all(e.anchored for e in goods.lot_evidence(conn, lot)), "anchored")
    decision = service.apply(conn, JOURNAL, org, "bank-a", lot, "15.00")
    assert (decision.decision, decision.approved_minor) == ("approve", 1500), decision
    assert decision.offer_id is not None
    assert credit.get_line(conn, line.id).drawn_minor == 0  # type: ignore[union-attr]
    loan = service.accept_offer(conn, JOURNAL, org, decision.offer_id)
    assert (loan.amount_minor, loan.lot) == (1500, lot)

    # A partial sale: one unit released (two still lend 2 x 12.00 x 70% = 16.80, enough; one
    # would not be), then sold from the warehouse.
    with pytest.raises(FinanceError) as too_much:
        service.release(conn, JOURNAL, chain, "bank-a", lot, quantity=2)
    assert too_much.value.code == "lot_secures_loans"
    partly = service.release(conn, JOURNAL, chain, "bank-a", lot, quantity=1)
    assert (partly.still_pledged, partly.tx) == (2, "")
    assert PledgeRegistry(chain).pledgee(pledges.lot_key(lot)) is not None  # still pledged
    _, stored = onboarded.story[3]
    sale = {
        **stored,
        "eventTime": datetime.now(UTC).isoformat(),
        "bizStep": "retail_selling",
        "disposition": "retail_sold",
        "epcList": onboarded.story[0][1]["epcList"][:1],  # type: ignore[index]
    }
    sale.pop("quantityList", None)
    onboarded.publish_event("wh-1", sale)
    wait_until(lambda: service.lot_status(conn, lot, "bank-a").quantity == 2, "partial sale")
    status = service.lot_status(conn, lot, "bank-a")
    assert (status.location, status.custody, status.pledge.quantity) == (WAREHOUSE, "warehouse", 2)  # type: ignore[union-attr]
    assert status.collateral_value_minor == 2400
    assert credit.get_line(conn, line.id).status == "active"  # type: ignore[union-attr]

    onboarded.telemetry(-5.0, (6, 4, 2, 0))  # out of range longer than the 2 s tolerance
    wait_until(lambda: "cold_chain_breach" in credit.open_flags(conn, lot), "breach flag")

    def calls() -> list[tuple[object, ...]]:
        return conn.execute(
            "SELECT state, amount_minor FROM margin_calls WHERE line_id = %s ORDER BY id",
            (line.id,),
        ).fetchall()

    assert wait_until(calls, "margin call") == [("open", 1500)]  # worth nothing: all of it
    flags = conn.execute(
        "SELECT count(*) FROM risk_flags WHERE lot_uri = %s AND kind = 'cold_chain_breach'",
        (lot,),
    ).fetchone()
    assert flags == (1,)

    time.sleep(1)  # the recovery's readings come after the excursion's
    onboarded.telemetry(-20.0, (3, 2, 1, 0))  # back in range for the 2 s dwell
    wait_until(lambda: "cold_chain_breach" not in credit.open_flags(conn, lot), "flag closed")
    assert wait_until(lambda: calls() == [("cured", 1500)], "call cured")

    with pytest.raises(FinanceError) as refused:
        service.release(conn, JOURNAL, chain, "bank-a", lot)
    assert refused.value.code == "lot_secures_loans"
    service.repay(conn, JOURNAL, "bank-a", line.id, "15.00")
    service.release(conn, JOURNAL, chain, "bank-a", lot)
    assert PledgeRegistry(chain).pledgee(pledges.lot_key(lot)) is None
    assert workers["finance"].alive, workers["finance"].log_text()
