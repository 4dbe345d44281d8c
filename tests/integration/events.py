"""Builders for realistic test events and signed envelopes."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta

import orjson

from ledger.event_hash import event_hash_digest
from ledger.signatures import sign_digest
from tests.integration.conftest import RegisteredDevice


def make_event(**overrides: object) -> dict[str, object]:
    serial = secrets.token_hex(6)
    event: dict[str, object] = {
        "type": "ObjectEvent",
        "eventTime": (datetime.now(UTC) - timedelta(minutes=5)).isoformat(timespec="milliseconds"),
        "eventTimeZoneOffset": "+08:00",
        "epcList": [f"urn:epc:id:sgtin:0614141.012345.{serial}"],
        "action": "ADD",
        "bizStep": "commissioning",
        "disposition": "active",
        "readPoint": {"id": "urn:epc:id:sgln:0614141.00001.0"},
    }
    event.update(overrides)
    return {key: value for key, value in event.items() if value is not None}


def envelope(device: RegisteredDevice, event: dict[str, object]) -> bytes:
    assert device.private_key is not None
    return orjson.dumps(
        {"event": event, "sig": sign_digest(device.private_key, event_hash_digest(event))}
    )
