"""Builders for realistic test events, signed envelopes and a pre-filled event log."""

from __future__ import annotations

import secrets
import time
from datetime import UTC, datetime, timedelta

import orjson

from epcis.event_hash import event_hash_digest
from epcis.signatures import sign_digest
from ingest.capture import CaptureBatch, Origin
from ledger import log_store
from records import registry_store
from records.db import Conn
from tests.support.mqtt import RegisteredDevice
from tracefin.simulate import DEVICES, register_sim_devices, signed_publications, sim_devices


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


def store_events(conn: Conn, count: int, org: str | None = None) -> list[bytes]:
    """Store `count` signed lifecycle events straight through capture and the event store.

    The anchoring tests need events in the log, not MQTT: this is ingest's path minus the broker
    (ingest.capture's batch: events and their attestations).
    """
    org = org or f"seed-{secrets.token_hex(3)}"
    register_sim_devices(conn, org, seed=org)
    devices = registry_store.find_devices(conn, [(org, device) for device in DEVICES])
    now = datetime.now(UTC)
    start = now - timedelta(hours=1)
    publications = list(signed_publications(sim_devices(org, org), range(count // 7 + 1), start))
    batch = CaptureBatch()
    for publication in publications[:count]:
        device = devices[(org, publication.topic.split("/")[2])]
        result = batch.capture(
            Origin(publication.topic, now, publication.payload),
            device,
            max_payload_bytes=256 * 1024,
            max_future_skew=timedelta(minutes=10),
        )
        assert not result.refused, result.refused
    with conn.transaction():
        stored = batch.store(conn)
    assert len(stored) == count
    return [row.accepted.digest for row in batch.events]


def wait_anchored(conn: Conn, deployment_id: int, count: int, timeout: float = 60) -> float:
    """Seconds until positions [0, count) are covered by recorded batches."""
    began = time.monotonic()
    while log_store.anchored_end(conn, deployment_id) < count:
        if time.monotonic() - began > timeout:
            raise AssertionError(
                f"anchored {log_store.anchored_end(conn, deployment_id)} of {count}"
            )
        time.sleep(0.05)
    return time.monotonic() - began
