"""The adversarial world's parts: GS1 keys of its orgs, EPCIS events about their goods, devices."""

from __future__ import annotations

import itertools
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import orjson

from epcis.event_hash import event_hash_digest
from epcis.identifiers import check_digit
from epcis.signatures import address_of, sign_digest
from epcis.telemetry import sign_telemetry
from tests.support.mqtt import RegisteredDevice
from tracefin.simulate import COMPANY_PREFIX, FACTORY_GLN, SHOP_GLN, Publication, gtin_for

ACME_PREFIX = COMPANY_PREFIX  # the borrower's GS1 Company Prefix (its goods, factory and shop)
STORE_PREFIX = "0777777"  # the warehouse operator's
EVIL_PREFIX = "0999999"  # the unrelated enterprise's


def gln(prefix: str, location: int) -> str:
    """A 13-digit GLN in `prefix` with its check digit."""
    body = f"{prefix}{location:0{12 - len(prefix)}d}"
    return body + check_digit(body)


def gtin(prefix: str, item: int) -> str:
    """A GTIN-14 (indicator 0) in `prefix` with its check digit."""
    body = f"0{prefix}{item:0{12 - len(prefix)}d}"
    return body + check_digit(body)


def sscc(prefix: str, serial: int) -> str:
    body = f"0{prefix}{serial:0{16 - len(prefix)}d}"
    return body + check_digit(body)


def wrong_check_digit(key: str) -> str:
    """`key` with its check digit replaced by a wrong one."""
    return key[:-1] + str((int(key[-1]) + 1) % 10)


FACTORY = FACTORY_GLN  # acme's
SHOP = SHOP_GLN  # acme's
WAREHOUSE = gln(STORE_PREFIX, 1)  # store-co's, supervised
EVIL_SHOP = gln(EVIL_PREFIX, 1)  # evil's own
GTIN = gtin_for(0)  # acme's product


def place(site: str) -> dict[str, str]:
    return {"id": f"https://id.gs1.org/414/{site}"}


def item(lot: str, number: int, product: str = GTIN) -> str:
    return f"https://id.gs1.org/01/{product}/21/{lot}{number:04d}"


def lot_of(lot: str, product: str = GTIN) -> str:
    return f"https://id.gs1.org/01/{product}/10/{lot}"


def pallet_of(serial: int) -> str:
    return f"https://id.gs1.org/00/{sscc(ACME_PREFIX, serial)}"


class Clock:
    """Event times one second apart (every event a hash of its own), starting in the past."""

    def __init__(self, start: datetime) -> None:
        self._ticks = itertools.count()
        self._start = start

    def next(self) -> str:
        return (self._start + timedelta(seconds=next(self._ticks))).isoformat(
            timespec="milliseconds"
        )


def event(
    clock: Clock, kind: str, step: str, disposition: str, site: str, **fields: object
) -> dict[str, object]:
    return {
        "type": kind,
        "eventTime": clock.next(),
        "eventTimeZoneOffset": "+08:00",
        "bizStep": step,
        "disposition": disposition,
        "readPoint": place(site),
        "bizLocation": place(site),
        **fields,
    }


def commissioning(clock: Clock, lot: str, items: list[str]) -> dict[str, object]:
    best_before = (datetime.now(UTC) + timedelta(days=365)).date().isoformat()
    return event(
        clock,
        "ObjectEvent",
        "commissioning",
        "active",
        FACTORY,
        action="ADD",
        epcList=items,
        ilmd={"cbvmda:lotNumber": lot, "cbvmda:bestBeforeDate": best_before},
    )


def packing(clock: Clock, pallet: str, items: list[str]) -> dict[str, object]:
    return event(
        clock,
        "AggregationEvent",
        "packing",
        "in_progress",
        FACTORY,
        action="ADD",
        parentID=pallet,
        childEPCs=items,
    )


def inspecting(clock: Clock, lot: str, count: int, site: str = FACTORY) -> dict[str, object]:
    return event(
        clock,
        "ObjectEvent",
        "inspecting",
        "conformant",
        site,
        action="OBSERVE",
        quantityList=[{"epcClass": lot_of(lot), "quantity": count, "uom": "EA"}],
    )


def storing(clock: Clock, pallet: str, lot: str, count: int) -> dict[str, object]:
    return event(
        clock,
        "ObjectEvent",
        "storing",
        "sellable_not_accessible",
        WAREHOUSE,
        action="OBSERVE",
        epcList=[pallet],
        quantityList=[{"epcClass": lot_of(lot), "quantity": count, "uom": "EA"}],
    )


def shipping(clock: Clock, pallet: str) -> dict[str, object]:
    return event(
        clock,
        "ObjectEvent",
        "shipping",
        "in_transit",
        WAREHOUSE,
        action="OBSERVE",
        epcList=[pallet],
    )


def selling(clock: Clock, items: list[str], site: str) -> dict[str, object]:
    return event(
        clock, "ObjectEvent", "retail_selling", "retail_sold", site, action="OBSERVE", epcList=items
    )


@dataclass(frozen=True)
class Device:
    """A registered device of the world, and what it sends."""

    org: str
    device_id: str
    private_key: bytes | None  # None: an --unsigned device

    @classmethod
    def new(cls, org: str, device_id: str, *, signed: bool = True) -> Device:
        return cls(org, device_id, secrets.token_bytes(32) if signed else None)

    @property
    def address(self) -> str | None:
        return address_of(self.private_key) if self.private_key is not None else None

    @property
    def mqtt(self) -> RegisteredDevice:
        return RegisteredDevice(self.org, self.device_id, self.private_key)

    def envelope(self, evt: dict[str, object]) -> bytes:
        """The event as this device sends it: signed when it has a key, bare otherwise."""
        if self.private_key is None:
            return orjson.dumps(evt)
        signature = sign_digest(self.private_key, event_hash_digest(evt))
        return orjson.dumps({"event": evt, "sig": signature})

    def events(self, evt: dict[str, object]) -> Publication:
        return Publication(self.mqtt.events_topic, self.envelope(evt))

    def telemetry(self, samples: list[dict[str, object]]) -> Publication:
        body: object = samples
        if self.private_key is not None:
            body = sign_telemetry(self.private_key, samples)
        return Publication(self.mqtt.telemetry_topic, orjson.dumps(body))


def too_warm(seconds: range, temperature: float = -5.0) -> list[dict[str, object]]:
    """Samples `seconds` ago, out of a frozen product's range."""
    now = datetime.now(UTC)
    return [
        {
            "time": (now - timedelta(seconds=s)).isoformat(),
            "readings": {"temperature": temperature},
        }
        for s in seconds
    ]
