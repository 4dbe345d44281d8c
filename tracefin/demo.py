"""`tracefin up --demo`: a simulated factory, a bank, and what to look at once a lot is anchored."""

from __future__ import annotations

import json
import shlex
import threading
import time
from datetime import UTC, datetime, timedelta
from urllib.parse import quote

import psycopg

from epcis.identifiers import lot_uri
from finance import service
from finance.errors import FinanceError, FinanceErrorCode
from finance.store.journal import Journal
from ledger import provenance
from ledger.chain import Chain, connect
from ledger.deployment import current_chain
from records import registry_store
from records.db import Conn
from tracefin.settings import Settings
from tracefin.simulate import (
    WAREHOUSE_GLN,
    Publisher,
    gtin_for,
    register_sim_devices,
    register_sim_sites,
    signed_publications,
    sim_devices,
)
from tracefin.supervisor import Endpoints, Say, Supervisor, UpError, Worker

FACTORY, BANK, OWN_DEVICE = "demo-factory", "demo-bank", "my-device"
PRODUCTS = 10
FIRST_LOT = "L0000000"
WAREHOUSE = f"https://id.gs1.org/414/{WAREHOUSE_GLN}"
ANCHORED_WITHIN_S = 180.0
_THROUGH_STORING = 4  # commissioning, packing, inspecting, storing (simulate.lifecycle)


def start_demo(
    settings: Settings,
    endpoints: Endpoints,
    base_url: str,
    supervisor: Supervisor,
    stop: threading.Event,
    say: Say,
) -> None:
    """Register the demo's parties, start the simulator, and say where to look when anchored."""
    journal = Journal(settings.journal_seal_key())
    with psycopg.connect(endpoints.database_url, autocommit=True) as conn:
        api_key = _register(conn, journal)
    say(f"demo       {FACTORY} publishes {PRODUCTS} lots over MQTT; {BANK} finances them")
    _store_first_lot(endpoints.mqtt_url)
    supervisor.start(
        Worker(
            "simulate",
            [
                "simulate",
                "--org",
                FACTORY,
                "--first-product",
                "1",
                "--products",
                str(PRODUCTS - 1),
                "--rate",
                "40",
                "--no-register",
            ],
            restart=False,
        )
    )
    gtin = gtin_for(0)
    lot = lot_uri(gtin, FIRST_LOT)
    deadline = time.monotonic() + ANCHORED_WITHIN_S
    with psycopg.connect(endpoints.database_url, autocommit=True) as conn:
        chain = _chain(conn, settings, endpoints)
        pledged = False
        while not (pledged and _anchored(conn, lot)):
            if stop.is_set():
                return
            if time.monotonic() > deadline:
                raise UpError(
                    f"{lot} was not stored, pledged and anchored within"
                    f" {ANCHORED_WITHIN_S:.0f} s; see the worker logs in {settings.home}/logs"
                )
            supervisor.check()
            # The finance worker must first see the lot stored in the bank's warehouse.
            pledged = pledged or _pledge(conn, journal, chain, lot, say)
            stop.wait(0.5)
        hash_id = next(
            event.hash_id
            for event in provenance.lot_history(conn, lot)
            if event.verification == "anchored"
        )
    digest_hex = hash_id.split(";", 1)[1].split("?", 1)[0]
    page = f"{base_url}/01/{gtin}/10/{FIRST_LOT}"
    own_event = {
        "type": "ObjectEvent",
        "eventTime": datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
        "eventTimeZoneOffset": "+08:00",
        "action": "OBSERVE",
        "bizStep": "inspecting",
        "disposition": "conformant",
        "epcList": [f"https://id.gs1.org/01/{gtin}/21/0000000000"],
        "readPoint": {"id": WAREHOUSE},
    }
    mqtt = endpoints.mqtt_url.removeprefix("mqtt://")
    host, _, port = mqtt.rpartition("@")[2].partition(":")
    print(
        f"""
[tracefin] the first lot is anchored on the devnet.

Product page:      {page}
Financier API key: {api_key}   ({BANK}; shown once, stored hashed)

1. Goods status of the pledged lot, as the bank sees it:
   curl -s -H 'Authorization: Bearer {api_key}' {base_url}/v1/lots/{quote(lot, safe=":/")}
2. Verify an event with nothing but the chain (no tracefin database involved):
   curl -s {base_url}/v1/proofs/{digest_hex} > bundle.json
   curl -s {base_url}/v1/deployment > deployment.json
   .venv/bin/tracefin verify --bundle bundle.json --rpc {endpoints.chain_rpc_url} \\
     --deployment deployment.json
3. Publish your own event as device {OWN_DEVICE} (registered unsigned), then reload the page:
   mosquitto_pub -V mqttv5 -q 1 -h {host} -p {port or 1883} -t tf/{FACTORY}/{OWN_DEVICE}/events \\
     -m {shlex.quote(json.dumps(own_event))}
""",
        flush=True,
    )


def _register(conn: Conn, journal: Journal) -> str:
    """The demo's orgs, devices, products, warehouse and line; a fresh key for the bank."""
    register_sim_devices(conn, FACTORY)  # with the GS1 Company Prefix of the demo's goods
    register_sim_sites(conn, FACTORY)
    if not registry_store.find_devices(conn, [(FACTORY, OWN_DEVICE)]):
        registry_store.add_device(conn, FACTORY, OWN_DEVICE, None)
    for number in range(PRODUCTS):
        service.add_product(
            conn,
            journal,
            FACTORY,
            gtin_for(number),
            f"Frozen dumplings #{number}",
            "frozen",
            "12.50",
            "CNY",
            "-25",
            "-15",
        )
    service.add_warehouse(conn, journal, FACTORY, WAREHOUSE, "Demo cold store")
    # The warehouse device's readings describe the warehouse (cold chain) only once bound to it.
    service.add_sensor(conn, FACTORY, "wh-1", WAREHOUSE)
    bank = registry_store.get_org(conn, BANK)
    if bank is None:
        bank, api_key = registry_store.add_org(conn, BANK, "financier")
    else:
        registry_store.revoke_keys(conn, BANK)  # keys are shown once: this run's is the one
        api_key = registry_store.issue_api_key(conn, bank.id)
    service.supervise(conn, journal, BANK, WAREHOUSE)
    # The bank's own prices: its lending rests on them, not on what the factory registered.
    for number in range(PRODUCTS):
        service.set_price(conn, journal, BANK, gtin_for(number), "12.50", "CNY")
    service.open_line(conn, journal, BANK, FACTORY, "5000.00", "CNY")
    return api_key


def _anchored(conn: Conn, lot: str) -> bool:
    return any(event.verification == "anchored" for event in provenance.lot_history(conn, lot))


def _store_first_lot(mqtt_url: str) -> None:
    """Lot 0 from commissioning to storage only: it stays in the bank's warehouse, pledgeable."""
    devices = sim_devices(FACTORY)
    stored = list(signed_publications(devices, range(1), datetime.now(UTC) - timedelta(hours=2)))
    publisher = Publisher(mqtt_url, f"tracefin-demo-{FACTORY}")
    try:
        for publication in stored[:_THROUGH_STORING]:
            publisher.publish(publication)
        publisher.wait_acked(_THROUGH_STORING, timeout=30)
    finally:
        publisher.close()


def _chain(conn: Conn, settings: Settings, endpoints: Endpoints) -> Chain:
    chain = current_chain(conn, connect(endpoints.chain_rpc_url), settings.chain_key())
    assert chain is not None
    return chain


def _pledge(conn: Conn, journal: Journal, chain: Chain, lot: str, say: Say) -> bool:
    """Pledge the lot to the bank on chain; True once it is pledged (now or by an earlier run)."""
    try:
        service.pledge(conn, journal, chain, BANK, lot)
    except FinanceError as exc:
        if exc.code == FinanceErrorCode.ALREADY_PLEDGED:
            return True
        if exc.code in (FinanceErrorCode.UNKNOWN_LOT, FinanceErrorCode.NOT_IN_SUPERVISED_WAREHOUSE):
            return False  # the finance worker has not seen it stored yet
        raise UpError(f"the demo could not pledge {lot}: {exc.detail}") from None
    say(f"demo       {lot} pledged to {BANK} on chain")
    return True
