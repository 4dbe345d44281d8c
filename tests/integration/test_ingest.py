"""End to end over real Mosquitto and PostgreSQL: a `tracefin ingest` process stores and answers."""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import orjson
import pytest

from epcis.event_hash import event_hash_digest, event_hash_id
from epcis.telemetry import sign_telemetry
from records import registry_store
from records.db import Conn
from tests.support.events import envelope, make_event
from tests.support.mqtt import Listener, RegisteredDevice
from tests.support.processes import IngestProcess
from tracefin.simulate import Publication, Publisher

pytestmark = pytest.mark.integration


@pytest.fixture
def ingest(start_ingest: Callable[..., IngestProcess]) -> IngestProcess:
    return start_ingest()


def stored(db: Conn, digest: bytes) -> list[tuple[object, ...]]:
    return db.execute(
        "SELECT e.device_id, o.slug, e.topic, e.event, e.signature, e.epcs, e.event_type,"
        " e.biz_step, e.received_at FROM events e JOIN orgs o ON o.id = e.org_id"
        " WHERE e.event_hash = %s",
        (digest,),
    ).fetchall()


def test_signed_events_are_stored_once_with_receipts(
    ingest: IngestProcess,
    publisher: Publisher,
    listener: Listener,
    make_device: Callable[..., RegisteredDevice],
    db: Conn,
) -> None:
    device = make_device()
    events = [make_event() for _ in range(20)]
    for event in events:
        publisher.publish(Publication(device.events_topic, envelope(device, event)))
    # The same event again, later: stored once, answered as a duplicate.
    publisher.publish(Publication(device.events_topic, envelope(device, events[0])))

    receipts = listener.wait_for(device.receipts, 21)
    expected = [event_hash_id(event) for event in events]
    assert [r["event_hash"] for r in receipts[:20]] == expected
    assert {r["status"] for r in receipts[:20]} == {"accepted"}
    assert receipts[20] == {"event_hash": expected[0], "status": "duplicate"}

    for event, hash_id in zip(events, expected, strict=True):
        rows = stored(db, event_hash_digest(event))
        assert len(rows) == 1, hash_id
        device_id, slug, topic, body, signature, epcs, event_type, biz_step, received_at = rows[0]
        assert (device_id, slug, topic) == (device.device_id, device.org, device.events_topic)
        assert (event_type, biz_step) == ("ObjectEvent", "commissioning")
        assert isinstance(signature, bytes)
        assert len(signature) == 65
        # Stored normalised: the EPC URN became its GS1 Digital Link.
        urn = event["epcList"][0]
        serial = urn.rsplit(".", 1)[1]
        assert epcs == [f"https://id.gs1.org/01/{gtin14('0614141', '012345')}/21/{serial}"]
        assert body["epcList"] == epcs
        assert received_at.tzinfo is not None
    assert listener.received(device.rejects) == []


def gtin14(company_prefix: str, item_reference: str) -> str:
    """The GTIN-14 an SGTIN URN with this company prefix and item reference denotes."""
    body = item_reference[0] + company_prefix + item_reference[1:]
    total = sum(int(d) * (3 if i % 2 == 0 else 1) for i, d in enumerate(reversed(body)))
    return body + str((10 - total % 10) % 10)


def test_unsigned_device_may_send_bare_events_arrays_and_documents(
    ingest: IngestProcess,
    publisher: Publisher,
    listener: Listener,
    make_device: Callable[..., RegisteredDevice],
    db: Conn,
) -> None:
    device = make_device(signed=False)
    bare, first, second, in_doc = (make_event() for _ in range(4))
    document = {
        "@context": ["https://ref.gs1.org/standards/epcis/epcis-context.jsonld"],
        "type": "EPCISDocument",
        "schemaVersion": "2.0",
        "creationDate": datetime.now(UTC).isoformat(),
        "epcisBody": {"eventList": [in_doc]},
    }
    for payload in (bare, [first, second], document):
        publisher.publish(Publication(device.events_topic, orjson.dumps(payload)))
    receipts = listener.wait_for(device.receipts, 4)
    assert {r["status"] for r in receipts} == {"accepted"}
    for event in (bare, first, second):
        assert len(stored(db, event_hash_digest(event))) == 1
    doc_context = document["@context"]
    assert len(stored(db, event_hash_digest(in_doc, doc_context))) == 1
    signatures = db.execute(
        "SELECT count(*) FROM events WHERE device_id = %s AND signature IS NULL",
        (device.device_id,),
    ).fetchone()
    assert signatures == (4,)


def test_telemetry_is_stored_as_a_time_series_idempotently(
    ingest: IngestProcess,
    publisher: Publisher,
    listener: Listener,
    make_device: Callable[..., RegisteredDevice],
    db: Conn,
) -> None:
    device = make_device()
    at = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=1)
    samples = [
        {"time": (at + timedelta(seconds=i)).isoformat(), "readings": {"temperature": -18.0 + i}}
        for i in range(5)
    ]
    assert device.private_key is not None  # a device with a key signs its telemetry
    key = device.private_key
    publisher.publish(Publication(device.telemetry_topic, telemetry_envelope(key, samples)))
    again = telemetry_envelope(key, samples[0])
    publisher.publish(Publication(device.telemetry_topic, again))
    bad = {"time": "yesterday", "readings": {"temperature": 1}}
    publisher.publish(Publication(device.telemetry_topic, telemetry_envelope(key, bad)))
    reject = listener.wait_for(device.rejects, 1)[0]
    assert reject["reason"] == "invalid_telemetry"
    rows = db.execute(
        "SELECT time, metric, value FROM telemetry WHERE device_id = %s ORDER BY time",
        (device.device_id,),
    ).fetchall()
    assert rows == [(at + timedelta(seconds=i), "temperature", -18.0 + i) for i in range(5)]


def telemetry_envelope(private_key: bytes, telemetry: object) -> bytes:
    return orjson.dumps(sign_telemetry(private_key, telemetry))


def test_device_registered_after_a_refusal_is_accepted_soon_after(
    ingest: IngestProcess,
    publisher: Publisher,
    listener: Listener,
    org: str,
    db: Conn,
) -> None:
    device_id = f"late-{secrets.token_hex(3)}"
    topic = f"tf/{org}/{device_id}/events"
    publisher.publish(Publication(topic, orjson.dumps(make_event())))
    assert listener.wait_for(f"tf/{org}/{device_id}/rejects", 1)[0]["reason"] == "unknown_device"
    registry_store.add_device(db, org, device_id, None)
    time.sleep(2.5)  # the worker remembers an unknown device for 2 s
    event = make_event()
    publisher.publish(Publication(topic, orjson.dumps(event)))
    receipt = listener.wait_for(f"tf/{org}/{device_id}/receipts", 1)[0]
    assert receipt == {"event_hash": event_hash_id(event), "status": "accepted"}
