"""A simulated factory: signed devices that publish every lifecycle stage of products over MQTT."""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import orjson
import paho.mqtt.client as mqtt

from epcis.event_hash import event_hash_digest
from epcis.identifiers import check_digit
from epcis.signatures import address_of, sign_digest
from epcis.telemetry import sign_telemetry
from ingest.mqtt_link import new_client
from ingest.topics import Kind, device_topic
from records import registry_store
from records.db import Conn

log = logging.getLogger(__name__)

COMPANY_PREFIX = "0614141"
# One device per stage of the lifecycle; each signs its own events.
DEVICES = ("line-1", "qc-1", "wh-1", "truck-1", "shop-1")
FACTORY_GLN = "0614141000005"
WAREHOUSE_GLN = "0614141000012"
SHOP_GLN = "0614141000029"


@dataclass(frozen=True)
class SimDevice:
    org: str
    device_id: str
    private_key: bytes

    @property
    def address(self) -> str:
        return address_of(self.private_key)

    @property
    def events_topic(self) -> str:
        return device_topic(self.org, self.device_id, Kind.EVENTS)

    @property
    def telemetry_topic(self) -> str:
        return device_topic(self.org, self.device_id, Kind.TELEMETRY)


# MQTT 5 PUBACK reason code: accepted, but no subscription matched, so the message is dropped.
NO_MATCHING_SUBSCRIBERS = 0x10


@dataclass(frozen=True)
class Publication:
    topic: str
    payload: bytes


def sim_devices(org: str, seed: str = "tracefin-demo") -> dict[str, SimDevice]:
    """Deterministic keys, so a restarted simulator signs as the devices registered before."""
    return {
        device_id: SimDevice(
            org, device_id, hashlib.sha256(f"{seed}/{org}/{device_id}".encode()).digest()
        )
        for device_id in DEVICES
    }


def gtin_for(product_no: int) -> str:
    body = f"0{COMPANY_PREFIX}{product_no % 100_000:05d}"
    return body + check_digit(body)


def sscc_for(serial: int) -> str:
    body = f"0{COMPANY_PREFIX}{serial % 10**9:09d}"
    return body + check_digit(body)


def _time(at: datetime) -> str:
    return at.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _base(
    event_type: str, at: datetime, biz_step: str, disposition: str, gln: str
) -> dict[str, object]:
    return {
        "type": event_type,
        "eventTime": _time(at),
        "eventTimeZoneOffset": "+00:00",
        "bizStep": biz_step,
        "disposition": disposition,
        "readPoint": {"id": f"https://id.gs1.org/414/{gln}"},
        "bizLocation": {"id": f"https://id.gs1.org/414/{gln}"},
    }


ITEMS_PER_LOT = 3  # the units a simulated lot is commissioned with, unless told otherwise


def lifecycle(
    product_no: int, start: datetime, items: int = ITEMS_PER_LOT
) -> list[tuple[str, dict[str, object]]]:
    """(device id, EPCIS event) for one lot through all five stages, in time order."""
    gtin = gtin_for(product_no)
    lot = f"L{product_no:07d}"
    sgtins = [f"https://id.gs1.org/01/{gtin}/21/{product_no:07d}{i:03d}" for i in range(items)]
    lot_class = f"https://id.gs1.org/01/{gtin}/10/{lot}"
    pallet = f"https://id.gs1.org/00/{sscc_for(product_no)}"
    step = timedelta(milliseconds=1)
    at = iter(start + step * i for i in range(100))
    commission = _base("ObjectEvent", next(at), "commissioning", "active", FACTORY_GLN)
    commission |= {
        "action": "ADD",
        "epcList": sgtins,
        "ilmd": {"cbvmda:lotNumber": lot, "cbvmda:bestBeforeDate": "2027-12-31"},
    }
    pack = _base("AggregationEvent", next(at), "packing", "in_progress", FACTORY_GLN)
    pack |= {"action": "ADD", "parentID": pallet, "childEPCs": sgtins}
    inspect = _base("ObjectEvent", next(at), "inspecting", "conformant", FACTORY_GLN)
    inspect |= {
        "action": "OBSERVE",
        "quantityList": [{"epcClass": lot_class, "quantity": items, "uom": "EA"}],
        "sensorElementList": [
            {
                "sensorReport": [
                    {"type": "Temperature", "value": -18.5, "uom": "CEL"},
                ]
            }
        ],
    }
    store = _base("ObjectEvent", next(at), "storing", "sellable_not_accessible", WAREHOUSE_GLN)
    store |= {"action": "OBSERVE", "epcList": [pallet], "quantityList": inspect["quantityList"]}
    ship = _base("ObjectEvent", next(at), "shipping", "in_transit", WAREHOUSE_GLN)
    ship |= {
        "action": "OBSERVE",
        "epcList": [pallet],
        "bizTransactionList": [
            {"type": "po", "bizTransaction": f"urn:epcglobal:cbv:bt:{SHOP_GLN}:PO{product_no}"}
        ],
        "sourceList": [{"type": "owning_party", "source": f"https://id.gs1.org/417/{FACTORY_GLN}"}],
        "destinationList": [
            {"type": "owning_party", "destination": f"https://id.gs1.org/417/{SHOP_GLN}"}
        ],
    }
    accept = _base("ObjectEvent", next(at), "accepting", "in_progress", SHOP_GLN)
    accept |= {
        "action": "OBSERVE",
        "epcList": [pallet],
        "bizTransactionList": ship["bizTransactionList"],
    }
    sell = _base("ObjectEvent", next(at), "retail_selling", "retail_sold", SHOP_GLN)
    sell |= {"action": "OBSERVE", "epcList": sgtins[:1]}
    return [
        ("line-1", commission),
        ("line-1", pack),
        ("qc-1", inspect),
        ("wh-1", store),
        ("truck-1", ship),
        ("shop-1", accept),
        ("shop-1", sell),
    ]


def signed_publications(
    devices: dict[str, SimDevice], products: range, start: datetime
) -> Iterator[Publication]:
    """One signed single-event envelope per message, product after product."""
    for product_no in products:
        product_start = start + timedelta(milliseconds=10 * product_no)
        for device_id, event in lifecycle(product_no, product_start):
            device = devices[device_id]
            signature = sign_digest(device.private_key, event_hash_digest(event))
            yield Publication(device.events_topic, orjson.dumps({"event": event, "sig": signature}))


def telemetry_publication(device: SimDevice, at: datetime, temperature: float) -> Publication:
    """A signed sample: the simulated devices have keys, so they sign their telemetry too."""
    sample = {"time": _time(at), "readings": {"temperature": temperature, "humidity": 61.0}}
    return Publication(
        device.telemetry_topic, orjson.dumps(sign_telemetry(device.private_key, sample))
    )


class Publisher:
    """A QoS 1 paho publisher that can wait until the broker has acknowledged everything."""

    MAX_OUTSTANDING = 20_000
    RETRY_AFTER_S = 0.5

    def __init__(self, mqtt_url: str, client_id: str) -> None:
        # paho is fastest with a modest window (measured: 100 beats 1000 by ~40%).
        self._client, address = new_client(mqtt_url, client_id, max_inflight=100)
        self._acked = 0
        self._published = 0
        self._lock = threading.Lock()
        # In flight by message id, to publish again what no subscriber took (PUBACK 0x10).
        self._in_flight: dict[int, Publication] = {}
        self._unmatched: set[int] = set()  # answered before publish() stored its id
        self._retry: list[tuple[float, Publication]] = []
        self._client.on_publish = self._on_publish
        self._client.connect(address.host, address.port, keepalive=30)
        self._client.loop_start()

    @property
    def acked(self) -> int:
        return self._acked

    def publish(self, publication: Publication) -> None:
        # paho numbers queued messages with 16-bit ids: more than ~65 000 unacknowledged
        # at once collide, so wait for the broker to catch up first.
        while self._published - self._acked >= self.MAX_OUTSTANDING:
            time.sleep(0.001)
        self._published += 1
        self._send(publication)
        self._resend_due()

    def _send(self, publication: Publication) -> None:
        info = self._client.publish(publication.topic, publication.payload, qos=1)
        if info.rc != mqtt.MQTT_ERR_SUCCESS and info.rc != mqtt.MQTT_ERR_NO_CONN:
            raise RuntimeError(f"publish failed: {mqtt.error_string(info.rc)}")
        with self._lock:
            if info.mid in self._unmatched:
                self._unmatched.discard(info.mid)
                self._retry.append((time.monotonic() + self.RETRY_AFTER_S, publication))
            else:
                self._in_flight[info.mid] = publication

    def _resend_due(self) -> None:
        now = time.monotonic()
        with self._lock:
            due = [publication for at, publication in self._retry if at <= now]
            self._retry = [(at, publication) for at, publication in self._retry if at > now]
        for publication in due:
            self._send(publication)

    def wait_acked(self, count: int, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while self._acked < count:
            if time.monotonic() > deadline:
                return False
            self._resend_due()
            time.sleep(0.01)
        return True

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()

    def _on_publish(
        self, client: mqtt.Client, userdata: object, mid: int, reason: object, properties: object
    ) -> None:
        with self._lock:
            publication = self._in_flight.pop(mid, None)
            if getattr(reason, "value", 0) == NO_MATCHING_SUBSCRIBERS:
                # The broker took it but nobody will get it (a restarted Mosquitto restores
                # shared subscriptions only when the workers come back): send it again later.
                if publication is None:
                    self._unmatched.add(mid)
                else:
                    self._retry.append((time.monotonic() + self.RETRY_AFTER_S, publication))
                return
            self._acked += 1


def register_sim_devices(conn: Conn, org: str, seed: str = "tracefin-demo") -> None:
    """Register the simulated org (as a manufacturer) and its signing devices, if not there.

    The org also gets the simulated goods' GS1 Company Prefix, unless another org holds it
    (several simulated orgs share one database in tests: the first gets the prefix).
    """
    if registry_store.get_org(conn, org) is None:
        registry_store.add_org(conn, org, "manufacturer")
    try:
        registry_store.add_prefix(conn, org, COMPANY_PREFIX)
    except registry_store.RegistryError as exc:
        log.info("%s does not get the simulated GS1 Company Prefix: %s", org, exc)
    existing = registry_store.find_devices(conn, [(org, device_id) for device_id in DEVICES])
    for device in sim_devices(org, seed).values():
        if (org, device.device_id) not in existing:
            registry_store.add_device(conn, org, device.device_id, device.address)


def register_sim_sites(conn: Conn, org: str) -> None:
    """The simulated org operates the factory, the warehouse and the shop its devices record
    at (as the evidence-authority rules ask), where no other org operates them."""
    taken = registry_store.authority_parties(conn).site_operators
    for gln, name in (
        (FACTORY_GLN, "Factory"),
        (WAREHOUSE_GLN, "Cold store"),
        (SHOP_GLN, "Shop"),
    ):
        if taken.get(gln, org) == org:
            registry_store.add_site(conn, org, gln, name, grant=True)


def run_simulation(
    mqtt_url: str,
    org: str,
    *,
    products: int,
    rate: float,
    seed: str = "tracefin-demo",
    first_product: int = 0,
) -> int:
    """Publish `products` products' lifecycles at about `rate` messages/s; returns the count."""
    devices = sim_devices(org, seed)
    publisher = Publisher(mqtt_url, f"tracefin-sim-{org}")
    start = datetime.now(UTC) - timedelta(days=1)
    sent = 0
    began = time.monotonic()
    try:
        for publication in signed_publications(
            devices, range(first_product, first_product + products), start
        ):
            publisher.publish(publication)
            sent += 1
            if sent % 7 == 0:
                warehouse = devices["wh-1"]
                publisher.publish(
                    telemetry_publication(warehouse, datetime.now(UTC), -18.0 + (sent % 5) / 10)
                )
                sent += 1
            if rate > 0:
                ahead = sent / rate - (time.monotonic() - began)
                if ahead > 0:
                    time.sleep(ahead)
        publisher.wait_acked(sent, timeout=60)
    finally:
        publisher.close()
    return sent
