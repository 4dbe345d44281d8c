"""A frozen lot with a realistic life (hours between steps), warehouse telemetry and an excursion.

Seeded on top of `seed_world`: maker's second product, with a temperature range, through ten
steps, the warehouse named as a shopper would know it and its sensor bound to it, then a
45-minute excursion to -5 degC while the lot was there, and two claims at a site nobody
registered (shown, and not counted).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import orjson

from epcis.event_hash import event_hash_digest
from epcis.identifiers import check_digit
from epcis.signatures import sign_digest
from epcis.telemetry import Reading
from finance import service
from ingest.capture import CaptureBatch, Origin
from ledger.anchoring import anchor_everything
from ledger.chain import Chain, connect
from ledger.deployment import ensure_deployment
from records import event_store, registry_store
from records.db import Conn
from tests.support.world import JOURNAL
from tracefin.settings import DEVNET_PRIVATE_KEY
from tracefin.simulate import WAREHOUSE_GLN, gtin_for, lifecycle, sim_devices

PRODUCT_NO = 2
GTIN = gtin_for(PRODUCT_NO)
LOT = f"/01/{GTIN}/10/L{PRODUCT_NO:07d}"
WAREHOUSE_NAME = "Ningbo bonded cold store 1"
WAREHOUSE_CITY = "Beilun, Ningbo"
# A shop nobody registered: what its devices say there is a claim, not evidence.
UNREGISTERED_GLN = "061414100003" + check_digit("061414100003")
LOW_C, HIGH_C = -25, -15
EXCURSION_C = -5.0
EXCURSION_MINUTES = 45
STEPS = 10


@dataclass(frozen=True)
class ColdLot:
    start: datetime  # the commissioning, on a 15-minute boundary
    digests: list[bytes]


# maker's name as people read it: the page shows it as the producer, not the slug.
PRODUCER_NAME = "Ningbo Haixian Foods Co."


def seed_cold_lot(conn: Conn, chain_rpc_url: str, *, shipped: bool = True) -> ColdLot:
    """The lot above, captured as maker's devices would send it, and anchored; without
    `shipped`, it is still in the warehouse (its last three steps never happened)."""
    now = datetime.now(UTC)
    start = (now - timedelta(hours=20)).replace(second=0, microsecond=0)
    start -= timedelta(minutes=start.minute % 15)
    service.add_product(
        conn,
        JOURNAL,
        "maker",
        GTIN,
        "Frozen dumplings",
        "frozen",
        "12.50",
        "CNY",
        str(LOW_C),
        str(HIGH_C),
    )
    registry_store.add_site(
        conn, "maker", WAREHOUSE_GLN, WAREHOUSE_NAME, grant=True, city=WAREHOUSE_CITY
    )
    registry_store.bind_device_sites(conn, "maker", "wh-1", [WAREHOUSE_GLN])
    registry_store.set_org_name(conn, "maker", PRODUCER_NAME)

    steps = dict(enumerate(lifecycle(PRODUCT_NO, start)))
    at = {0: 0, 1: 10, 2: 20, 3: 60, 4: 13 * 60, 5: 15 * 60, 6: 16 * 60}  # minutes
    events: list[tuple[str, dict[str, object]]] = []
    for index, (device_id, event) in steps.items():
        event = dict(event)
        event["eventTime"] = _time(start + timedelta(minutes=at[index]))
        event["eventTimeZoneOffset"] = "+08:00"
        if index >= 5:  # accepted and sold where nobody registered the site
            location = {"id": f"https://id.gs1.org/414/{UNREGISTERED_GLN}"}
            event["readPoint"] = event["bizLocation"] = location
        events.append((device_id, event))
    # Three stock checks in the warehouse by its own device, with the room's temperature.
    inspect = dict(steps[2][1])
    for hours in (3, 7, 11):
        check = dict(inspect)
        check["eventTime"] = _time(start + timedelta(hours=hours))
        check["eventTimeZoneOffset"] = "+08:00"
        check["readPoint"] = check["bizLocation"] = {
            "id": f"https://id.gs1.org/414/{WAREHOUSE_GLN}"
        }
        events.insert(len(events) - 3, ("wh-1", check))
    assert len(events) == STEPS
    if not shipped:
        events = events[:-3]

    devices = sim_devices("maker", "maker")  # tests.support.events registers them so
    known = registry_store.find_devices(conn, [("maker", name) for name in devices])
    batch = CaptureBatch()
    for device_id, event in events:
        device = devices[device_id]
        payload = orjson.dumps(
            {"event": event, "sig": sign_digest(device.private_key, event_hash_digest(event))}
        )
        result = batch.capture(
            Origin(device.events_topic, now, payload),
            known[("maker", device_id)],
            max_payload_bytes=256 * 1024,
            max_future_skew=timedelta(minutes=10),
        )
        assert not result.refused, result.refused
    with conn.transaction():
        batch.store(conn)

    org = registry_store.get_org(conn, "maker")
    assert org is not None
    readings = []
    for minute in range(60, 13 * 60, 5):  # every 5 min while the lot is in the warehouse
        value = EXCURSION_C if 5 * 60 <= minute < 5 * 60 + EXCURSION_MINUTES else -18.5
        readings.append(
            event_store.ReadingToStore(
                Reading(start + timedelta(minutes=minute), "temperature", value),
                org.id,
                "wh-1",
                now,
            )
        )
    with conn.transaction():
        event_store.insert_readings(conn, readings)

    deployment = ensure_deployment(conn, connect(chain_rpc_url), DEVNET_PRIVATE_KEY).deployment
    chain = Chain(connect(chain_rpc_url), deployment.anchor_address, None, DEVNET_PRIVATE_KEY)
    anchor_everything(conn, chain, deployment.id)
    return ColdLot(start, [row.accepted.digest for row in batch.events])


def _time(at: datetime) -> str:
    return at.isoformat(timespec="milliseconds").replace("+00:00", "Z")
