"""Devices over real Mosquitto and PostgreSQL: key rotation, revocation, every submission an
attestation, and signed telemetry."""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import orjson
import pytest

from epcis.authority import Parties, evaluate
from epcis.capture import stored_index_columns
from epcis.event_hash import event_hash_digest, event_hash_id
from epcis.signatures import address_of, sign_digest
from epcis.telemetry import sign_telemetry
from records import attestation_store, registry_store
from records.db import Conn
from tests.support.events import envelope, make_event
from tests.support.mqtt import Listener, RegisteredDevice
from tests.support.processes import IngestProcess
from tracefin.simulate import Publication, Publisher

pytestmark = pytest.mark.integration


@pytest.fixture
def ingest(start_ingest: Callable[..., IngestProcess]) -> IngestProcess:
    return start_ingest()


def signed_by(key: bytes, event: dict[str, object]) -> bytes:
    return orjson.dumps({"event": event, "sig": sign_digest(key, event_hash_digest(event))})


def readings(count: int = 3) -> list[dict[str, object]]:
    at = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=1)
    return [
        {"time": (at + timedelta(seconds=i)).isoformat(), "readings": {"temperature": -18.0 + i}}
        for i in range(count)
    ]


def stored_readings(db: Conn, device: RegisteredDevice) -> int:
    row = db.execute(
        "SELECT count(*) FROM telemetry t JOIN orgs o ON o.id = t.org_id"
        " WHERE o.slug = %s AND t.device_id = %s",
        (device.org, device.device_id),
    ).fetchone()
    assert row is not None
    return int(row[0])


def test_a_rotated_key_is_refused_device_revoked_and_the_new_one_accepted(
    ingest: IngestProcess,
    publisher: Publisher,
    listener: Listener,
    make_device: Callable[..., RegisteredDevice],
    db: Conn,
) -> None:
    device = make_device()
    assert device.private_key is not None
    old_key, new_key = device.private_key, secrets.token_bytes(32)
    before = make_event()
    publisher.publish(Publication(device.events_topic, signed_by(old_key, before)))
    assert listener.wait_for(device.receipts, 1)[0]["status"] == "accepted"

    # Rotation: the device registered again with a new address; the old key is revoked now.
    rotated = registry_store.add_device(db, device.org, device.device_id, address_of(new_key))
    assert rotated.address == address_of(new_key)
    keys = db.execute(
        "SELECT k.address, k.revoked_at IS NOT NULL FROM device_keys k JOIN orgs o"
        " ON o.id = k.org_id WHERE o.slug = %s AND k.device_id = %s ORDER BY k.valid_from",
        (device.org, device.device_id),
    ).fetchall()
    assert keys == [(address_of(old_key), True), (address_of(new_key), False)]

    late = make_event()
    publisher.publish(Publication(device.events_topic, signed_by(old_key, late)))
    reject = listener.wait_for(device.rejects, 1)[0]
    assert reject["reason"] == "device_revoked", reject
    fresh = make_event()
    publisher.publish(Publication(device.events_topic, signed_by(new_key, fresh)))
    receipts = listener.wait_for(device.receipts, 2)
    assert receipts[1] == {"event_hash": event_hash_id(fresh), "status": "accepted"}
    assert not db.execute(
        "SELECT 1 FROM events WHERE event_hash = %s", (event_hash_digest(late),)
    ).fetchone()
    # The old key's telemetry is refused the same way; the new key's is stored.
    samples = readings()
    publisher.publish(
        Publication(device.telemetry_topic, orjson.dumps(sign_telemetry(old_key, samples)))
    )
    assert listener.wait_for(device.rejects, 2)[1]["reason"] == "device_revoked"
    publisher.publish(
        Publication(device.telemetry_topic, orjson.dumps(sign_telemetry(new_key, samples)))
    )
    listener.wait_for(device.rejects, 2)
    _wait(lambda: stored_readings(db, device) == 3, "readings of the new key")


def test_a_revoked_device_is_refused_signed_or_unsigned(
    ingest: IngestProcess,
    publisher: Publisher,
    listener: Listener,
    make_device: Callable[..., RegisteredDevice],
    db: Conn,
) -> None:
    signed, unsigned = make_device(), make_device(signed=False)
    for device in (signed, unsigned):
        registry_store.revoke_device(db, device.org, device.device_id)
    publisher.publish(Publication(signed.events_topic, envelope(signed, make_event())))
    publisher.publish(Publication(unsigned.events_topic, orjson.dumps(make_event())))
    publisher.publish(Publication(unsigned.telemetry_topic, orjson.dumps(readings())))
    assert listener.wait_for(signed.rejects, 1)[0]["reason"] == "device_revoked"
    refusals = listener.wait_for(unsigned.rejects, 2)
    assert [r["reason"] for r in refusals] == ["device_revoked", "device_revoked"]
    assert listener.received(signed.receipts) == listener.received(unsigned.receipts) == []
    # A revoked device comes back only with a new key (rotation), and its old one stays revoked.
    new_key = secrets.token_bytes(32)
    registry_store.add_device(db, signed.org, signed.device_id, address_of(new_key))
    event = make_event()
    publisher.publish(Publication(signed.events_topic, signed_by(new_key, event)))
    assert listener.wait_for(signed.receipts, 1)[0]["status"] == "accepted"


def test_every_submission_is_an_attestation_and_the_rightful_one_counts(
    ingest: IngestProcess,
    publisher: Publisher,
    listener: Listener,
    make_device: Callable[..., RegisteredDevice],
    org: str,
    db: Conn,
) -> None:
    """evil captures acme's event first; acme's signed copy is a duplicate, yet on record."""
    acme = make_device()
    evil_org = f"evil-{secrets.token_hex(3)}"
    registry_store.add_org(db, evil_org, "manufacturer")
    registry_store.add_device(db, evil_org, "grabber", None)
    evil = RegisteredDevice(evil_org, "grabber", None)
    event = make_event()
    digest = event_hash_digest(event)

    publisher.publish(Publication(evil.events_topic, orjson.dumps(event)))
    assert listener.wait_for(evil.receipts, 1)[0]["status"] == "accepted"
    publisher.publish(Publication(acme.events_topic, envelope(acme, event)))
    assert listener.wait_for(acme.receipts, 1)[0] == {
        "event_hash": event_hash_id(event),
        "status": "duplicate",
    }
    # Sent again (a resend, or a redelivery): still one attestation per party.
    publisher.publish(Publication(acme.events_topic, envelope(acme, event)))
    listener.wait_for(acme.receipts, 2)

    attestations = attestation_store.attestations_for(db, [digest])[digest]
    assert [(a.org, a.device, a.user, a.channel, a.signed) for a in attestations] == [
        (evil_org, "grabber", None, "mqtt", False),
        (org, acme.device_id, None, "mqtt", True),
    ]
    assert attestations[0].received_at <= attestations[1].received_at
    # The event row still names its first writer; the evidence rule reads the attestations.
    row = db.execute(
        "SELECT o.slug, e.event FROM events e JOIN orgs o ON o.id = e.org_id"
        " WHERE e.event_hash = %s",
        (digest,),
    ).fetchone()
    assert row is not None
    assert row[0] == evil_org
    columns = stored_index_columns(row[1])
    assert columns is not None
    parties = Parties(prefixes={"0614141": org})  # acme holds the goods' GS1 Company Prefix
    evidence = evaluate(columns, attestations, parties)
    assert evidence.counts
    assert evidence.by is not None
    assert (evidence.by.org, evidence.by.signed) == (org, True)


def test_a_device_with_a_key_signs_its_telemetry(
    ingest: IngestProcess,
    publisher: Publisher,
    listener: Listener,
    make_device: Callable[..., RegisteredDevice],
    db: Conn,
) -> None:
    device = make_device()
    assert device.private_key is not None
    samples = readings(3)
    # Bare telemetry from a device registered with an address: refused.
    publisher.publish(Publication(device.telemetry_topic, orjson.dumps(samples)))
    # Signed by another key; and a signature over other readings than those sent.
    other = sign_telemetry(secrets.token_bytes(32), samples)
    publisher.publish(Publication(device.telemetry_topic, orjson.dumps(other)))
    forged = {**sign_telemetry(device.private_key, samples[:1]), "telemetry": samples}
    publisher.publish(Publication(device.telemetry_topic, orjson.dumps(forged)))
    malformed = {"telemetry": samples, "sig": "0x1234"}
    publisher.publish(Publication(device.telemetry_topic, orjson.dumps(malformed)))
    reasons = [r["reason"] for r in listener.wait_for(device.rejects, 4)]
    assert reasons == [
        "signature_missing",
        "signature_mismatch",
        "signature_mismatch",
        "signature_malformed",
    ]
    assert stored_readings(db, device) == 0
    # The list signed as a whole, and one sample signed alone: stored.
    signed = sign_telemetry(device.private_key, samples)
    publisher.publish(Publication(device.telemetry_topic, orjson.dumps(signed)))
    extra = readings(5)[4]
    alone = sign_telemetry(device.private_key, extra)
    publisher.publish(Publication(device.telemetry_topic, orjson.dumps(alone)))
    _wait(lambda: stored_readings(db, device) == 4, "signed readings stored")
    # The signature covers the JSON value, not its bytes: key order and spacing may differ.
    sample = readings(7)[6]
    sig = sign_telemetry(device.private_key, sample)["sig"]
    assert isinstance(sig, str)
    reordered = orjson.dumps(dict(reversed(list(sample.items())))).replace(b",", b", ")
    spaced = b'{"sig": "%s", "telemetry": %s}' % (sig.encode(), reordered)
    publisher.publish(Publication(device.telemetry_topic, spaced))
    _wait(lambda: stored_readings(db, device) == 5, "re-serialised signed sample stored")
    assert len(listener.received(device.rejects)) == 4


def test_an_unsigned_device_keeps_sending_bare_telemetry(
    ingest: IngestProcess,
    publisher: Publisher,
    listener: Listener,
    make_device: Callable[..., RegisteredDevice],
    db: Conn,
) -> None:
    device = make_device(signed=False)
    publisher.publish(Publication(device.telemetry_topic, orjson.dumps(readings(2))))
    _wait(lambda: stored_readings(db, device) == 2, "bare readings stored")
    assert listener.received(device.rejects) == []


def _wait(condition: Callable[[], bool], what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)
