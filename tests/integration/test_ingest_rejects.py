"""Every kind of bad input is refused with its own reason code, dead-lettered, and harms nothing."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import orjson
import pytest

from epcis.event_hash import event_hash_digest, event_hash_id
from epcis.signatures import sign_digest
from records.db import Conn
from tests.support.events import envelope, make_event
from tests.support.mqtt import Listener, RegisteredDevice
from tests.support.processes import IngestProcess
from tracefin.simulate import Publication, Publisher

pytestmark = pytest.mark.integration


def _future() -> str:
    return (datetime.now(UTC) + timedelta(minutes=30)).isoformat()


def _signed_by_other_key(device: RegisteredDevice) -> bytes:
    event = make_event()
    return orjson.dumps(
        {"event": event, "sig": sign_digest(secrets.token_bytes(32), event_hash_digest(event))}
    )


BAD_PAYLOADS: dict[str, tuple[Callable[[RegisteredDevice], bytes], str]] = {
    "not_json": (lambda d: b"{not json", "not_json"),
    "json_not_an_event": (lambda d: orjson.dumps({"hello": "world"}), "not_an_event"),
    "json_scalar": (lambda d: b"42", "not_an_event"),
    "missing_event_time": (lambda d: envelope(d, make_event(eventTime=None)), "missing_field"),
    "missing_action": (lambda d: envelope(d, make_event(action=None)), "missing_field"),
    "epc_list_not_a_list": (
        lambda d: envelope(d, make_event(epcList="urn:epc:id:sgtin:0614141.012345.1")),
        "wrong_type",
    ),
    "event_time_a_number": (lambda d: envelope(d, make_event(eventTime=1700000000)), "wrong_type"),
    "unknown_event_type": (
        lambda d: envelope(d, make_event(type="FooEvent")),
        "unknown_event_type",
    ),
    "bare_non_cbv_biz_step": (
        lambda d: envelope(d, make_event(bizStep="teleporting")),
        "invalid_vocabulary",
    ),
    "bare_non_cbv_disposition": (
        lambda d: envelope(d, make_event(disposition="sparkly")),
        "invalid_vocabulary",
    ),
    "event_time_without_zone": (
        lambda d: envelope(d, make_event(eventTime="2024-05-01T10:00:00")),
        "naive_event_time",
    ),
    "event_time_in_future": (
        lambda d: envelope(d, make_event(eventTime=_future())),
        "event_time_in_future",
    ),
    "payload_over_256_kib": (
        lambda d: envelope(d, make_event(**{"example:blob": "x" * (256 * 1024)})),
        "payload_too_large",
    ),
    # A GS1 key with a wrong check digit (the right ones end in 9 and 2) names nothing real.
    "gtin_with_a_wrong_check_digit": (
        lambda d: envelope(d, make_event(epcList=["https://id.gs1.org/01/00614141000028/21/1"])),
        "invalid_identifier",
    ),
    "gln_with_a_wrong_check_digit": (
        lambda d: envelope(d, make_event(readPoint={"id": "https://id.gs1.org/414/0614141000013"})),
        "invalid_identifier",
    ),
    "signature_missing": (lambda d: orjson.dumps(make_event()), "signature_missing"),
    "signature_malformed": (
        lambda d: orjson.dumps({"event": make_event(), "sig": "0x1234"}),
        "signature_malformed",
    ),
    "signature_from_another_key": (_signed_by_other_key, "signature_mismatch"),
    # PostgreSQL cannot store U+0000 in text or jsonb: refused up front, not a poison message.
    "text_with_nul": (
        lambda d: envelope(d, make_event(**{"example:note": "a\x00b"})),
        "invalid_text",
    ),
}


@pytest.fixture(scope="module")
def shared_ingest(
    database_url: str, mqtt_url: str, tmp_path_factory: pytest.TempPathFactory
) -> object:
    worker = IngestProcess(database_url, mqtt_url, tmp_path_factory.mktemp("ingest"))
    worker.start()
    worker.wait_until_subscribed()
    yield worker
    worker.stop()


def _assert_dead_lettered(db: Conn, topic: str, payload: bytes, reason: str, index: int) -> None:
    rows = db.execute(
        "SELECT payload, reason, item_index, detail FROM dead_letters WHERE topic = %s", (topic,)
    ).fetchall()
    assert [(bytes(r[0]), r[1], r[2]) for r in rows] == [(payload, reason, index)]
    assert rows[0][3]  # a human-readable detail accompanies the code


@pytest.mark.parametrize("case", sorted(BAD_PAYLOADS))
def test_bad_payload_is_refused_with_its_code(
    case: str,
    shared_ingest: IngestProcess,
    publisher: Publisher,
    listener: Listener,
    make_device: Callable[..., RegisteredDevice],
    db: Conn,
) -> None:
    build, code = BAD_PAYLOADS[case]
    device = make_device()
    payload = build(device)
    good = make_event()
    publisher.publish(Publication(device.events_topic, payload))
    # A good event after the bad one proves the worker is alive and unaffected.
    publisher.publish(Publication(device.events_topic, envelope(device, good)))

    reject = listener.wait_for(device.rejects, 1)[0]
    assert reject["reason"] == code, reject
    assert isinstance(reject["detail"], str)
    assert reject["detail"]
    receipts = listener.wait_for(device.receipts, 1)
    assert receipts == [{"event_hash": event_hash_id(good), "status": "accepted"}]
    index = reject.get("index", -1)
    _assert_dead_lettered(db, device.events_topic, payload, code, index)
    count = db.execute(
        "SELECT count(*) FROM events WHERE device_id = %s", (device.device_id,)
    ).fetchone()
    assert count == (1,)


@pytest.mark.parametrize("who", ["unknown_org", "unknown_device"])
def test_unregistered_sender_is_refused(
    who: str,
    shared_ingest: IngestProcess,
    publisher: Publisher,
    listener: Listener,
    org: str,
    db: Conn,
) -> None:
    slug = f"ghost-{secrets.token_hex(3)}" if who == "unknown_org" else org
    topic = f"tf/{slug}/nobody-{secrets.token_hex(3)}/events"
    payload = orjson.dumps(make_event())
    publisher.publish(Publication(topic, payload))
    reject = listener.wait_for(topic.replace("/events", "/rejects"), 1)[0]
    assert reject["reason"] == who
    _assert_dead_lettered(db, topic, payload, who, -1)
    assert db.execute("SELECT count(*) FROM events WHERE topic = %s", (topic,)).fetchone() == (0,)


def test_invalid_topic_is_refused(
    shared_ingest: IngestProcess,
    publisher: Publisher,
    listener: Listener,
    org: str,
    db: Conn,
) -> None:
    topic = f"tf/{org}/Bad_Device/events"  # upper case and '_' are not allowed in ids
    payload = orjson.dumps(make_event())
    publisher.publish(Publication(topic, payload))
    reject = listener.wait_for(f"tf/{org}/Bad_Device/rejects", 1)[0]
    assert reject["reason"] == "invalid_topic"
    _assert_dead_lettered(db, topic, payload, "invalid_topic", -1)


def test_one_bad_event_in_a_batch_refuses_only_that_event(
    shared_ingest: IngestProcess,
    publisher: Publisher,
    listener: Listener,
    make_device: Callable[..., RegisteredDevice],
    db: Conn,
) -> None:
    device = make_device()
    good_a, good_b = make_event(), make_event()
    bad = make_event(bizStep="teleporting")
    items = [orjson.loads(envelope(device, event)) for event in (good_a, bad, good_b)]
    payload = orjson.dumps(items)
    publisher.publish(Publication(device.events_topic, payload))

    receipts = listener.wait_for(device.receipts, 2)
    assert [r["status"] for r in receipts] == ["accepted", "accepted"]
    reject = listener.wait_for(device.rejects, 1)[0]
    assert (reject["reason"], reject["index"]) == ("invalid_vocabulary", 1)
    for event in (good_a, good_b):
        assert db.execute(
            "SELECT count(*) FROM events WHERE event_hash = %s", (event_hash_digest(event),)
        ).fetchone() == (1,)
    assert db.execute(
        "SELECT count(*) FROM events WHERE event_hash = %s", (event_hash_digest(bad),)
    ).fetchone() == (0,)
    _assert_dead_lettered(db, device.events_topic, payload, "invalid_vocabulary", 1)
