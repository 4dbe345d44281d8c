"""Evidence authority under attack, over real MQTT, PostgreSQL and anvil (issue 13's "Done when").

One world for the module: acme (the borrower: its GS1 Company Prefix, product, factory, shop,
signing devices), store-co (operates the supervised warehouse, its device bound there), a bank
(a line to acme, acme's lots pledged) and evil (an unrelated enterprise with its own prefix, shop,
API key, a signing and an unsigned device). Ingest, finance and anchor run as processes; the API
is served in process. Each attack of the issue is a test: none may change acme's lots, line,
flags, proceeds or page marks, and each leaves what the rules say (stored unattested with its
reason, refused with its code, or an alert). The legitimate flow closes the module: a release
first means no freeze; a shipment without one freezes the line within 2 s.
"""

from __future__ import annotations

import re
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import psycopg
import pytest

from epcis.event_hash import event_hash_digest, hash_id_from_digest
from finance import rules, service, valuation
from finance.errors import FinanceError
from finance.store import attribution, credit, goods
from finance.valuation import ALERT_ONLY_FLAGS
from ingest.mqtt_link import new_client
from ledger.chain import Chain, connect
from ledger.deployment import ensure_deployment
from records import registry_store
from records.db import Conn
from tests.support import adversary as adv
from tests.support.adversary import Clock, Device
from tests.support.api import Api, SeededWorld, serve
from tests.support.cli import run_audit_cli
from tests.support.mqtt import Listener
from tests.support.postgres import admin_url
from tests.support.processes import IngestProcess, WorkerProcess
from tests.support.world import JOURNAL
from tracefin.schema import scratch_database
from tracefin.settings import DEVNET_PRIVATE_KEY
from tracefin.simulate import Publication, Publisher

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ACME, STORE, BANK, EVIL = "acme", "store-co", "bank", "evil"
LOT_L, LOT_K, LOT_M, LOT_N = "LL", "KK", "MM", "NN"  # lot numbers of acme's product
L, K, M, N = (adv.lot_of(lot) for lot in (LOT_L, LOT_K, LOT_M, LOT_N))
PALLET_L, PALLET_K, PALLET_M = (adv.pallet_of(n) for n in (1, 2, 3))
WAREHOUSE_URI = f"https://id.gs1.org/414/{adv.WAREHOUSE}"
PRODUCT_NAME = "Frozen dumplings"
VALUE_L = 12_500  # 10 items x CNY 12.50, in minor units


def wait_until(check: Callable[[], Any], what: str, timeout: float = 30) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


@dataclass
class World:
    conn: Conn
    api: Api
    chain: Chain
    database_url: str
    chain_rpc_url: str
    mqtt_url: str
    publisher: Publisher
    listener: Listener
    devices: dict[str, Device]
    line_id: int
    clock: Clock
    workers: dict[str, WorkerProcess]
    evil_events: dict[str, bytes] = field(default_factory=dict)  # what evil claimed, by attack

    def publish(self, device: str, evt: dict[str, object]) -> bytes:
        """`device` sends `evt` over MQTT; its digest."""
        self.publisher.publish(self.devices[device].events(evt))
        return event_hash_digest(evt)

    def stored(self, digest: bytes) -> None:
        wait_until(
            lambda: self.conn.execute(
                "SELECT 1 FROM events WHERE event_hash = %s", (digest,)
            ).fetchone(),
            f"event {digest.hex()[:12]} stored",
        )

    def applied(self, digest: bytes) -> None:
        """Until the finance worker has applied the event at its log position."""
        self.stored(digest)
        wait_until(
            lambda: self.conn.execute(
                "SELECT 1 FROM log_entries e JOIN log_cursors c ON c.worker = 'finance'"
                " WHERE e.event_hash = %s AND c.next_index > e.log_index",
                (digest,),
            ).fetchone(),
            f"event {digest.hex()[:12]} applied by finance",
        )

    def evidence(self, lot: str, digest: bytes) -> tuple[bool, str | None]:
        rows = [r for r in goods.lot_evidence(self.conn, lot) if r.event_hash == digest]
        assert len(rows) == 1, (lot, digest.hex(), rows)
        return rows[0].counts, rows[0].reason

    def rejected(self, device: str, count: int) -> list[dict[str, object]]:
        return self.listener.wait_for(self.devices[device].mqtt.rejects, count)

    def flags(self, lot: str) -> set[str]:
        return credit.open_flags(self.conn, lot)

    def line(self) -> tuple[str, int]:
        line = credit.get_line(self.conn, self.line_id)
        assert line is not None
        return line.status, line.drawn_minor

    def page(self, lot: str = LOT_L) -> dict[str, Any]:
        response = self.api.get(f"/01/{adv.GTIN}/10/{lot}", headers={"Accept": "application/json"})
        assert response.status_code == 200, response.text
        page: dict[str, Any] = response.json()
        return page

    def acme(self) -> dict[str, object]:
        """What no attack may change: acme's pledged lots, its line, product and page marks."""
        lots = {}
        for uri in (L, K):
            lot = attribution.get_lot(self.conn, uri)
            assert lot is not None
            status = service.lot_status(self.conn, uri, BANK)
            lots[uri] = (
                lot.quantity,
                lot.location,
                lot.custody,
                lot.last_inspection_disposition,
                lot.recalled,
                lot.custodian,
                status.collateral_value_minor,
                sorted(self.flags(uri) - ALERT_ONLY_FLAGS),
            )
        movements = self.conn.execute(
            "SELECT kind, amount_minor FROM line_movements WHERE line_id = %s ORDER BY id",
            (self.line_id,),
        ).fetchall()
        product = goods.get_product(self.conn, adv.GTIN)
        page = self.page()
        return {
            "lots": lots,
            "line": self.line(),
            "movements": movements,
            "product": product,
            "page_name": page["product"]["name"],
            "page_counts": sorted(
                e["event_hash"] for e in page["events"] if e["evidence"] == "counts"
            ),
        }


def _listener(mqtt_url: str) -> tuple[Listener, Callable[[], None]]:
    client, address = new_client(mqtt_url, f"test-listener-{secrets.token_hex(4)}")
    state = Listener(client)
    client.on_message = state.on_message
    subscribed = threading.Event()
    client.on_subscribe = lambda *args: subscribed.set()
    client.connect(address.host, address.port)
    client.subscribe([("tf/+/+/receipts", 1), ("tf/+/+/rejects", 1)])
    client.loop_start()
    assert subscribed.wait(10), "listener could not subscribe"

    def close() -> None:
        client.disconnect()
        client.loop_stop()

    return state, close


def _register(conn: Conn, devices: dict[str, Device]) -> dict[str, str]:
    """The registry and finance set-up; the API keys by org."""
    keys = {
        ACME: registry_store.add_org(conn, ACME, "manufacturer", [adv.ACME_PREFIX])[1],
        STORE: registry_store.add_org(conn, STORE, "warehouse", [adv.STORE_PREFIX])[1],
        BANK: registry_store.add_org(conn, BANK, "financier")[1],
        EVIL: registry_store.add_org(conn, EVIL, "manufacturer", [adv.EVIL_PREFIX])[1],
    }
    registry_store.add_site(conn, ACME, adv.FACTORY, "Factory")
    registry_store.add_site(conn, ACME, adv.SHOP, "Factory shop")
    service.add_site(conn, JOURNAL, STORE, adv.WAREHOUSE, "Bonded cold store", supervised=True)
    registry_store.add_site(conn, EVIL, adv.EVIL_SHOP, "Evil shop")
    sites = {"line-1": [adv.FACTORY], "wh-1": [adv.WAREHOUSE]}
    for name, device in devices.items():
        registry_store.add_device(
            conn, device.org, device.device_id, device.address, sites.get(name, [])
        )
    service.add_product(
        conn, JOURNAL, ACME, adv.GTIN, PRODUCT_NAME, "frozen", "12.50", "CNY", "-25", "-15"
    )
    service.supervise(conn, JOURNAL, BANK, adv.WAREHOUSE)
    service.set_price(conn, JOURNAL, BANK, adv.GTIN, "12.50", "CNY")
    service.set_policy(conn, JOURNAL, BANK, breach_tolerance_s=2)
    return keys


@pytest.fixture(scope="module")
def world(
    mqtt_url: str, chain_rpc_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[World]:
    logs = tmp_path_factory.mktemp("authority")
    devices = {
        "line-1": Device.new(ACME, "line-1"),
        "qc-1": Device.new(ACME, "qc-1"),
        "wh-1": Device.new(STORE, "wh-1"),
        "evil-signed": Device.new(EVIL, "evil-signed"),
        "evil-plain": Device.new(EVIL, "evil-plain", signed=False),
    }
    with ExitStack() as stack:
        url = stack.enter_context(scratch_database(admin_url(), "tracefin_test"))
        conn = stack.enter_context(psycopg.connect(url, autocommit=True))
        keys = _register(conn, devices)
        deployment = ensure_deployment(conn, connect(chain_rpc_url), DEVNET_PRIVATE_KEY).deployment
        chain = Chain(
            connect(chain_rpc_url),
            deployment.anchor_address,
            deployment.pledge_address,
            DEVNET_PRIVATE_KEY,
        )
        line = service.open_line(conn, JOURNAL, BANK, ACME, "100000.00", "CNY")
        ingest = IngestProcess(url, mqtt_url, logs)
        stack.callback(ingest.stop)
        ingest.start()
        ingest.wait_until_subscribed()
        finance = WorkerProcess(["finance"], {"TRACEFIN_DATABASE_URL": url}, logs, "finance")
        stack.callback(finance.stop)
        finance.start()
        anchor = WorkerProcess(
            ["anchor"],
            {
                "TRACEFIN_DATABASE_URL": url,
                "TRACEFIN_CHAIN_RPC_URL": chain_rpc_url,
                "TRACEFIN_ANCHOR_BATCH_SIZE": "1000",
                "TRACEFIN_ANCHOR_BATCH_MAX_WAIT_MS": "50",
            },
            logs,
            "anchor",
        )
        stack.callback(anchor.stop)
        anchor.start()
        listener, close_listener = _listener(mqtt_url)
        stack.callback(close_listener)
        publisher = Publisher(mqtt_url, f"authority-{secrets.token_hex(3)}")
        stack.callback(publisher.close)
        api = stack.enter_context(
            serve(SeededWorld(url, chain_rpc_url, keys, []), public_rate_per_minute=1_000_000)
        )
        w = World(
            conn=conn,
            api=api,
            chain=chain,
            database_url=url,
            chain_rpc_url=chain_rpc_url,
            mqtt_url=mqtt_url,
            publisher=publisher,
            listener=listener,
            devices=devices,
            line_id=line.id,
            clock=Clock(datetime.now(UTC) - timedelta(hours=1)),
            workers={"ingest": ingest, "finance": finance, "anchor": anchor},
        )
        _make_and_pledge(w)
        yield w
        for name, worker in w.workers.items():
            assert worker.alive, f"{name} died:\n{worker.log_text()}"


def _make_and_pledge(w: World) -> None:
    """The legitimate flow: acme makes, packs and inspects lots L (10 items) and K (4); the
    warehouse's bound device stores them; the bank pledges both."""
    last = b""
    for lot, pallet, count in ((LOT_L, PALLET_L, 10), (LOT_K, PALLET_K, 4)):
        items = [adv.item(lot, n) for n in range(count)]
        w.publish("line-1", adv.commissioning(w.clock, lot, items))
        w.publish("line-1", adv.packing(w.clock, pallet, items))
        w.publish("qc-1", adv.inspecting(w.clock, lot, count))
        last = w.publish("wh-1", adv.storing(w.clock, pallet, lot, count))
    w.applied(last)
    for uri in (L, K):
        service.pledge(w.conn, JOURNAL, w.chain, BANK, uri)


def test_the_owner_commissions_packs_inspects_the_warehouse_stores_the_bank_pledges(
    world: World,
) -> None:
    status = service.lot_status(world.conn, L, BANK)
    assert (status.quantity, status.location, status.custody) == (10, WAREHOUSE_URI, "warehouse")
    assert status.last_inspection.disposition == "conformant"
    assert status.pledge is not None
    assert status.pledge.line == world.line_id
    assert status.collateral_value_minor == VALUE_L
    assert [e.evidence for e in status.evidence] == ["counts"] * 4
    assert [e.recorded_by for e in status.evidence] == [
        service.Recorder(org, device)
        for org, device in ((ACME, "line-1"), (ACME, "line-1"), (ACME, "qc-1"), (STORE, "wh-1"))
    ]
    assert all(e.signed for e in status.evidence)
    assert world.line() == ("active", 0)
    page = world.page()
    assert page["product"]["name"] == PRODUCT_NAME
    assert [e["evidence"] for e in page["events"]] == ["counts"] * 4


def test_1_evils_signed_shipping_of_pledged_goods_is_disputed_not_a_freeze(world: World) -> None:
    before = world.acme()
    digest = world.publish("evil-signed", adv.shipping(world.clock, PALLET_L))
    unsigned = world.publish("evil-plain", adv.shipping(world.clock, PALLET_L))
    world.evil_events["shipping"] = digest
    world.evil_events["shipping-unsigned"] = unsigned
    world.applied(digest)
    world.applied(unsigned)
    assert world.evidence(L, digest) == (False, "not_site_operator")
    assert world.evidence(L, unsigned) == (False, "not_site_operator")
    assert world.line()[0] == "active"
    assert "unauthorized_movement" not in world.flags(L)
    flags = world.api.get("/v1/risk-flags", BANK).json()
    assert {(f["kind"], f["lot"]) for f in flags} >= {("disputed_movement", L)}
    shown = [
        e
        for e in world.api.get(f"/v1/lots/{L}", BANK).json()["evidence"]
        if e["event_hash"] == hash_id_from_digest(digest)
    ]
    assert len(shown) == 1
    assert shown[0]["recorded_by"] == {"org": EVIL, "device": "evil-signed"}
    assert (shown[0]["signed"], shown[0]["evidence"], shown[0]["reason"]) == (
        True,
        "unattested",
        "not_site_operator",
    )
    assert world.acme() == before, "acme's lots, line, product or page changed"


def test_2_evils_commissioning_of_4000_items_into_acmes_lot_adds_nothing(world: World) -> None:
    before = world.acme()
    items = [adv.item("E", n) for n in range(4000)]
    commission = adv.commissioning(world.clock, LOT_L, items)
    answer = world.api.call("POST", "/v1/capture", EVIL, json=commission)
    assert answer.status_code == 201, answer.text
    assert answer.json()["accepted"][0]["status"] == "accepted"
    digest = event_hash_digest(commission)
    world.evil_events["commissioning"] = digest
    world.applied(digest)
    assert world.evidence(L, digest) == (False, "not_goods_owner")
    status = service.lot_status(world.conn, L, BANK)
    assert (status.quantity, status.collateral_value_minor) == (10, VALUE_L)
    assert world.acme() == before, "acme's lots, line, product or page changed"


def test_2b_an_application_is_decided_on_the_unchanged_value(world: World) -> None:
    wait_until(
        lambda: all(e.anchored for e in goods.lot_evidence(world.conn, L)), "L's events anchored"
    )
    decision = world.api.call(
        "POST",
        "/v1/applications",
        ACME,
        json={"financier": BANK, "lot": L, "amount": "35000.00"},
    )
    assert decision.status_code == 200, decision.text
    body = decision.json()
    # 70 % of CNY 125.00 at most: what 10 items are worth, not 4 010.
    # Against CNY 125.00, 35 000 is a loan-to-value of 280: referred for a guarantee, nothing
    # offered (against the 50 125 evil's items would have made it, 70 %: approved).
    assert body["collateral_value"] == "CNY 125.00", body
    assert (body["decision"], body["reasons"], body["ltv"]) == (
        "refer",
        ["guarantor_required"],
        "280.000000",
    ), body
    assert body["offer_id"] is None
    assert world.line() == ("active", 0)


def test_3_evils_retail_selling_of_pledged_items_routes_no_proceeds(world: World) -> None:
    before = world.acme()
    sold = [adv.item(LOT_L, n) for n in range(5)]
    at_acme = world.publish("evil-signed", adv.selling(world.clock, sold, adv.SHOP))
    over_http = adv.selling(world.clock, sold, adv.WAREHOUSE)
    assert world.api.call("POST", "/v1/capture", EVIL, json=over_http).status_code == 201
    world.evil_events["selling"] = at_acme
    world.evil_events["selling-http"] = event_hash_digest(over_http)
    for digest in (at_acme, event_hash_digest(over_http)):
        world.applied(digest)
        assert world.evidence(L, digest) == (False, "not_site_operator")
    proceeds = world.conn.execute(
        "SELECT count(*) FROM line_movements WHERE kind = 'proceeds_due'"
    ).fetchone()
    assert proceeds == (0,)
    assert world.acme() == before, "acme's lots, line, product or page changed"


def test_4_evils_inspection_does_not_count_nor_acmes_own_word_on_the_warehouse(
    world: World,
) -> None:
    """Lot M: acme makes and packs it, never inspects it, and no device of the warehouse
    stores it. evil's conformant inspection and acme's storing typed in over the API leave it
    uninspected and outside the supervised warehouse: the bank cannot pledge it."""
    before = world.acme()
    items = [adv.item(LOT_M, n) for n in range(6)]
    world.publish("line-1", adv.commissioning(world.clock, LOT_M, items))
    world.publish("line-1", adv.packing(world.clock, PALLET_M, items))
    inspection = adv.inspecting(world.clock, LOT_M, 6)
    by_evil = world.publish("evil-signed", inspection)
    world.evil_events["inspection"] = by_evil
    stored = adv.storing(world.clock, PALLET_M, LOT_M, 6)
    answer = world.api.call("POST", "/v1/capture", ACME, json=stored)
    assert answer.status_code == 201, answer.text
    world.applied(by_evil)
    world.applied(event_hash_digest(stored))
    assert world.evidence(M, by_evil) == (False, "not_owner_device_or_inspector")
    assert world.evidence(M, event_hash_digest(stored)) == (False, "not_site_operator")
    lot = attribution.get_lot(world.conn, M)
    assert lot is not None
    assert (lot.quantity, lot.last_inspection_disposition) == (6, None)
    assert (lot.location, lot.custody) != (WAREHOUSE_URI, "warehouse")
    bank = registry_store.get_org(world.conn, BANK)
    assert bank is not None
    state = valuation.lot_state(world.conn, M, bank.id)
    assert state is not None
    assert state.last_inspection is None
    judged = rules.eligibility(state, rules.Policy(), datetime.now(UTC), str(bank.id))
    assert {rules.Reason.NO_INSPECTION, rules.Reason.NOT_IN_SUPERVISED_WAREHOUSE} <= set(
        judged.failures
    )
    with pytest.raises(FinanceError) as refused:
        service.pledge(world.conn, JOURNAL, world.chain, BANK, M)
    assert refused.value.code == "not_in_supervised_warehouse"
    assert world.acme() == before, "acme's lots, line, product or page changed"


def test_5_evil_cannot_register_products_in_acmes_prefix_nor_wrong_check_digits(
    world: World,
) -> None:
    before = world.acme()

    def product(gtin: str) -> dict[str, str]:
        return {"gtin": gtin, "name": "Evil dumplings", "category": "frozen", "unit_price": "9999"}

    unregistered = adv.gtin(adv.ACME_PREFIX, 2)  # in acme's prefix, no product yet
    assert _code(world, "POST", "/v1/products", EVIL, product(unregistered)) == (
        403,
        "not_your_prefix",
    )
    # acme's own product: refused too (not_your_product: it belongs to acme).
    assert _code(world, "POST", "/v1/products", EVIL, product(adv.GTIN))[0] == 403
    bad = adv.wrong_check_digit(adv.gtin(adv.EVIL_PREFIX, 1))
    assert _code(world, "POST", "/v1/products", EVIL, product(bad)) == (422, "invalid_identifier")
    # An event naming the GTIN with the wrong check digit: refused over HTTP and over MQTT.
    named = adv.commissioning(world.clock, "B1", [f"https://id.gs1.org/01/{bad}/21/1"])
    refused = world.api.call("POST", "/v1/capture", EVIL, json=named)
    assert refused.status_code == 422, refused.text
    assert [r["reason"] for r in refused.json()["rejected"]] == ["invalid_identifier"]
    rejects = len(world.listener.received(world.devices["evil-signed"].mqtt.rejects))
    world.publish("evil-signed", named)
    assert world.rejected("evil-signed", rejects + 1)[-1]["reason"] == "invalid_identifier"
    assert goods.get_product(world.conn, unregistered) is None
    assert goods.get_product(world.conn, bad) is None
    # acme keeps its product and its page; evil cannot read acme's lot status.
    assert world.page()["product"]["name"] == PRODUCT_NAME
    assert world.api.get(f"/v1/lots/{L}", EVIL).status_code == 404
    assert world.api.get(f"/v1/lots/{L}", ACME).status_code == 200
    assert world.acme() == before, "acme's lots, line, product or page changed"


def _code(world: World, method: str, path: str, who: str, body: dict[str, str]) -> tuple[int, str]:
    """The status and problem code (RFC 9457 `code`) of a call."""
    answer = world.api.call(method, path, who, json={"currency": "CNY", **body})
    return answer.status_code, str(answer.json().get("code"))


def test_6_evil_cannot_borrow_acmes_device_key_and_acmes_late_copy_counts(world: World) -> None:
    before = world.acme()
    acme_address = world.devices["line-1"].address
    assert acme_address is not None
    taken = world.api.call(
        "POST", "/v1/devices", EVIL, json={"device_id": "evil-clone", "address": acme_address}
    )
    assert (taken.status_code, taken.json()["code"]) == (409, "address_in_use"), taken.text
    # acme's signed envelope of lot N's commissioning, replayed on evil's topics first.
    items = [adv.item(LOT_N, n) for n in range(5)]
    commission = adv.commissioning(world.clock, LOT_N, items)
    envelope = world.devices["line-1"].envelope(commission)
    digest = event_hash_digest(commission)
    world.evil_events["replayed"] = digest
    signed, plain = world.devices["evil-signed"].mqtt, world.devices["evil-plain"].mqtt
    rejects = len(world.listener.received(signed.rejects))
    world.publisher.publish(Publication(signed.events_topic, envelope))
    assert world.rejected("evil-signed", rejects + 1)[-1]["reason"] == "signature_mismatch"
    world.publisher.publish(Publication(plain.events_topic, envelope))
    world.applied(digest)
    assert world.evidence(N, digest) == (False, "not_goods_owner")
    lot = attribution.get_lot(world.conn, N)
    assert lot is None or lot.quantity == 0
    first = world.conn.execute(
        "SELECT o.slug, a.device_id, a.signature IS NOT NULL FROM attestations a"
        " JOIN orgs o ON o.id = a.org_id WHERE a.event_hash = %s",
        (digest,),
    ).fetchall()
    assert first == [(EVIL, "evil-plain", False)]  # not stored as a signed event of evil's
    # acme's own signed copy: attested, and it counts as if it came first.
    receipts = len(world.listener.received(world.devices["line-1"].mqtt.receipts))
    world.publisher.publish(Publication(world.devices["line-1"].mqtt.events_topic, envelope))
    receipt = world.listener.wait_for(world.devices["line-1"].mqtt.receipts, receipts + 1)[-1]
    assert receipt["event_hash"] == hash_id_from_digest(digest), receipt
    print(f"acme's late copy answered: {receipt}")
    wait_until(lambda: world.evidence(N, digest)[0], "acme's attestation counting")
    lot = attribution.get_lot(world.conn, N)
    assert lot is not None
    assert lot.quantity == 5
    page = world.page(LOT_N)
    [shown] = [e for e in page["events"] if e["event_hash"] == hash_id_from_digest(digest)]
    assert shown["evidence"] == "counts"
    assert {"org": ACME, "device": "line-1", "signed": True} in shown["attested_by"]
    assert world.acme() == before, "acme's lots, line, product or page changed"


def test_7_telemetry_from_no_bound_device_is_refused_or_not_counted(world: World) -> None:
    before = world.acme()
    anonymous = Publisher(world.mqtt_url, f"anonymous-{secrets.token_hex(3)}")
    try:
        warehouse = world.devices["wh-1"].mqtt
        rejects = len(world.listener.received(warehouse.rejects))
        # As the warehouse's signing device, unsigned: refused.
        anonymous.publish(
            Publication(warehouse.telemetry_topic, orjson.dumps(adv.too_warm(range(6, -1, -2))))
        )
        assert world.rejected("wh-1", rejects + 1)[-1]["reason"] == "signature_missing"
        # Signed by a key that is not the device's: refused.
        stranger = Device.new(STORE, "wh-1")
        anonymous.publish(stranger.telemetry(adv.too_warm(range(7, 0, -2))))
        assert world.rejected("wh-1", rejects + 2)[-1]["reason"] == "signature_mismatch"
    finally:
        anonymous.close()
    # evil's own devices, signed and unsigned: stored, but bound to no site of the warehouse's.
    bind = world.api.call(
        "POST",
        "/v1/devices",
        EVIL,
        json={"device_id": "evil-probe", "unsigned": True, "sites": [adv.WAREHOUSE]},
    )
    assert (bind.status_code, bind.json()["code"]) == (403, "not_site_operator"), bind.text
    for device in ("evil-signed", "evil-plain"):
        world.publisher.publish(world.devices[device].telemetry(adv.too_warm(range(8, -1, -2))))
    wait_until(
        lambda: (
            world.conn.execute(
                "SELECT count(DISTINCT device_id) FROM telemetry t JOIN orgs o ON o.id = t.org_id"
                " WHERE o.slug = %s",
                (EVIL,),
            ).fetchone()
            == (2,)
        ),
        "evil's readings stored",
    )
    time.sleep(4)  # past the 2 s tolerance, several condition checks of the finance worker
    assert "cold_chain_breach" not in world.flags(L)
    assert service.lot_status(world.conn, L, BANK).collateral_value_minor == VALUE_L
    assert world.acme() == before, "acme's lots, line, product or page changed"


def test_8_pages_show_every_evil_claim_as_unattested_and_audit_stays_clean(
    world: World,
) -> None:
    assert {"shipping", "commissioning", "selling", "replayed"} <= set(world.evil_events)
    wait_until(
        lambda: all(e.anchored for e in goods.lot_evidence(world.conn, L)), "L's events anchored"
    )
    audit = run_audit_cli(world.database_url, world.chain_rpc_url)
    assert audit.returncode == 0, audit.stdout + audit.stderr
    page = world.page()
    by_hash = {e["event_hash"]: e for e in page["events"]}
    evil_on_page = [
        by_hash[hash_id_from_digest(d)]
        for name, d in world.evil_events.items()
        if name != "replayed" and hash_id_from_digest(d) in by_hash
    ]
    assert len(evil_on_page) >= 3, [e["biz_step"] for e in page["events"]]
    for shown in evil_on_page:
        assert shown["evidence"] == "unattested", shown
        assert shown["recorded_by"]["org"] == EVIL, shown
        assert shown["reason"], shown
    html = world.api.get(
        f"/01/{adv.GTIN}/10/{LOT_L}", headers={"Accept": "text/html", "Accept-Language": "en"}
    ).text
    for shown in evil_on_page:
        card = _card(html, shown["event_hash"])
        assert "Attested by the responsible party" not in card, card
        assert "Claim by evil, not attested" in card, card
    acme_cards = [e for e in page["events"] if e["recorded_by"]["org"] != EVIL]
    assert all(e["evidence"] == "counts" for e in acme_cards)
    for shown in acme_cards:
        assert "Attested by the responsible party" in _card(html, shown["event_hash"])


def _card(html: str, hash_id: str) -> str:
    """The page's list item of one event."""
    match = re.search(
        r'<li class="event[^"]*" data-event-hash="' + re.escape(hash_id) + r'">(.*?)</li>',
        html,
        re.S,
    )
    assert match is not None, hash_id
    return match.group(1)


def test_the_bank_releases_first_then_the_warehouse_ships_no_freeze(world: World) -> None:
    service.release(world.conn, JOURNAL, world.chain, BANK, K)
    shipped = world.publish("wh-1", adv.shipping(world.clock, PALLET_K))
    world.applied(shipped)
    assert world.evidence(K, shipped) == (True, None)
    assert world.line()[0] == "active"
    assert "unauthorized_movement" not in world.flags(K)
    lot = attribution.get_lot(world.conn, K)
    assert lot is not None
    assert lot.custody == "in_transit"


def test_the_warehouse_ships_without_a_release_the_line_freezes_within_2_s(world: World) -> None:
    time.sleep(2)  # the workers idle, nothing else in flight
    evt = adv.shipping(world.clock, PALLET_L)
    began = time.monotonic()
    digest = world.publish("wh-1", evt)
    wait_until(lambda: world.line()[0] == "frozen", "line frozen", timeout=10)
    took = time.monotonic() - began
    print(f"publish -> frozen: {took:.3f} s")
    assert took < 2, f"froze {took:.2f} s after the publish"
    assert world.evidence(L, digest) == (True, None)
    assert "unauthorized_movement" in world.flags(L)


def test_the_warehouses_bound_device_does_report_a_breach(world: World) -> None:
    """The control of attack 7: the same readings from the device bound to the warehouse,
    signed, are a cold-chain breach (so evil's were refused or ignored, not lost)."""
    world.publisher.publish(world.devices["wh-1"].telemetry(adv.too_warm(range(8, -1, -2))))
    wait_until(lambda: "cold_chain_breach" in world.flags(L), "cold_chain_breach", timeout=15)


# Attacks beyond the list, found by an attacker's pass and closed since: memberships of
# a lot come only from commissioning and packing that count (no items slipped in, no serials
# squatted), and goods are received, sold or shipped only where they are held or were sent
# (`held_elsewhere`, `not_consignee`). They run last: should a hole reopen, they change acme's
# lot, and the attacks above must not see that. L has been shipped (to no one named) by now.


def test_evils_items_slipped_into_acmes_lot_cannot_be_sold_out_of_it(world: World) -> None:
    before = world.acme()
    sold = [adv.item("E", n) for n in range(5)]
    digest = world.publish("evil-signed", adv.selling(world.clock, sold, adv.EVIL_SHOP))
    world.applied(digest)
    assert world.acme() == before, "acme's lots, line, product or page changed"


def test_evil_selling_acmes_pledged_items_at_its_own_shop_changes_nothing(world: World) -> None:
    before = world.acme()
    sold = [adv.item(LOT_L, n) for n in range(5, 10)]
    digest = world.publish("evil-signed", adv.selling(world.clock, sold, adv.EVIL_SHOP))
    world.applied(digest)
    assert world.evidence(L, digest) == (False, "not_consignee")
    assert world.acme() == before, "acme's lots, line, product or page changed"


def test_evil_squatting_acmes_serials_leaves_acmes_lot_its_quantity(world: World) -> None:
    items = [adv.item("SQ", n) for n in range(3)]
    squat = world.publish("evil-plain", adv.commissioning(world.clock, "ZZ", items))
    world.applied(squat)
    assert world.evidence(adv.lot_of("ZZ"), squat) == (False, "not_goods_owner")
    made = world.publish("line-1", adv.commissioning(world.clock, "YY", items))
    world.applied(made)
    assert world.evidence(adv.lot_of("YY"), made) == (True, None)
    lot = attribution.get_lot(world.conn, adv.lot_of("YY"))
    assert lot is not None
    assert lot.quantity == 3
