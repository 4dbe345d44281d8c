"""The capture pipeline shared by MQTT and HTTP: splitting, validation, hashing, signatures."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta

import orjson
import pytest

from epcis.capture import WHOLE_PAYLOAD, CaptureResult, DeviceKey, capture
from epcis.event_hash import event_hash_digest
from epcis.signatures import address_of, sign_digest

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
KEY = secrets.token_bytes(32)
SIGNED = DeviceKey(1, "acme", "line-1", address_of(KEY))
UNSIGNED = DeviceKey(1, "acme", "plc-1", None)
LOT_URN = "urn:epc:class:lgtin:4012345.012345.LOT-7"


def event(serial: str = "1", **overrides: object) -> dict[str, object]:
    base: dict[str, object] = {
        "type": "ObjectEvent",
        "eventTime": "2026-11-26T11:00:00.000+08:00",
        "eventTimeZoneOffset": "+08:00",
        "action": "OBSERVE",
        "epcList": [f"urn:epc:id:sgtin:4012345.012345.{serial}"],
        "quantityList": [{"epcClass": LOT_URN, "quantity": 3}],
        "bizStep": "inspecting",
        "disposition": "conformant",
        "readPoint": {"id": "urn:epc:id:sgln:4012345.00001.0"},
        "bizLocation": {"id": "urn:epc:id:sgln:4012345.00002.0"},
    }
    base.update(overrides)
    return base


def signed(value: dict[str, object], key: bytes = KEY) -> dict[str, object]:
    return {"event": value, "sig": sign_digest(key, event_hash_digest(value))}


def run(payload: object, device: DeviceKey = SIGNED) -> CaptureResult:
    raw = payload if isinstance(payload, bytes) else orjson.dumps(payload)
    return capture(
        raw, device, now=NOW, max_payload_bytes=1024 * 16, max_future_skew=timedelta(minutes=10)
    )


def refusals(result: CaptureResult) -> list[tuple[int, str]]:
    return [(item.index, item.code.value) for item in result.refused]


def test_signed_envelope_is_accepted_with_normalised_columns() -> None:
    original = event()
    result = run(signed(original))
    assert refusals(result) == []
    (accepted,) = result.accepted
    assert accepted.digest == event_hash_digest(original)
    assert accepted.hash_id.startswith("ni:///sha-256;")
    assert accepted.signature is not None
    assert accepted.columns.epcs == ("https://id.gs1.org/01/04012345123456/21/1",)
    assert accepted.columns.lots == ("https://id.gs1.org/01/04012345123456/10/LOT-7",)
    assert accepted.columns.read_point == "https://id.gs1.org/414/4012345000016"
    assert accepted.columns.biz_location == "https://id.gs1.org/414/4012345000023"
    assert (accepted.columns.event_type, accepted.columns.action, accepted.columns.biz_step) == (
        "ObjectEvent",
        "OBSERVE",
        "inspecting",
    )
    assert (accepted.columns.disposition, accepted.columns.stage) == (
        "conformant",
        "quality_inspection",
    )
    assert accepted.columns.event_time == datetime(2026, 11, 26, 3, 0, tzinfo=UTC)
    stored = orjson.loads(accepted.stored_json)
    assert stored["epcList"] == list(accepted.columns.epcs)
    # Re-hashing what is stored gives the same identity: audits can recompute it.
    assert event_hash_digest(stored) == accepted.digest


def test_array_of_envelopes_refuses_only_the_bad_one() -> None:
    bad = signed(event("2"), key=secrets.token_bytes(32))
    result = run([signed(event("1")), bad, signed(event("3"))])
    assert [a.index for a in result.accepted] == [0, 2]
    assert refusals(result) == [(1, "signature_mismatch")]


def test_signing_device_must_sign_every_event() -> None:
    assert refusals(run(event())) == [(0, "signature_missing")]
    assert refusals(run({"event": event(), "sig": None})) == [(0, "signature_missing")]
    assert refusals(run({"event": event(), "sig": "0xzz"})) == [(0, "signature_malformed")]


def test_unsigned_device_may_send_bare_events_arrays_and_documents() -> None:
    assert len(run(event(), UNSIGNED).accepted) == 1
    assert len(run([event("1"), event("2")], UNSIGNED).accepted) == 2
    document = {
        "@context": [
            "https://ref.gs1.org/standards/epcis/epcis-context.jsonld",
            {"ex": "https://example.com/ns/"},
        ],
        "type": "EPCISDocument",
        "schemaVersion": "2.0",
        "creationDate": "2026-11-26T11:00:00Z",
        "epcisBody": {"eventList": [event("1", **{"ex:batchNote": "n1"}), event("2")]},
    }
    result = run(document, UNSIGNED)
    assert len(result.accepted) == 2
    assert result.accepted[0].context is not None
    # The extension's namespace comes from the document context and changes the hash.
    assert result.accepted[0].digest == event_hash_digest(
        document["epcisBody"]["eventList"][0],
        document["@context"],  # type: ignore[index]
    )


@pytest.mark.parametrize(
    ("payload", "code"),
    [
        (b"\x00not json", "not_json"),
        (b"[]", "not_an_event"),
        (b"3.5", "not_an_event"),
        (b"x" * (1024 * 16 + 1), "payload_too_large"),
    ],
)
def test_whole_payload_refusals(payload: bytes, code: str) -> None:
    result = run(payload)
    assert result.accepted == []
    assert refusals(result) == [(WHOLE_PAYLOAD, code)]


def test_malformed_epc_is_an_invalid_identifier() -> None:
    result = run(event(epcList=["urn:epc:id:sgtin:notanumber"]), UNSIGNED)
    assert refusals(result) == [(0, "invalid_identifier")]


def test_commissioning_names_the_lot_it_creates() -> None:
    commissioning = event(
        action="ADD",
        bizStep="commissioning",
        disposition="active",
        quantityList=[],
        ilmd={"cbvmda:lotNumber": "LOT-9"},
    )
    (accepted,) = run(commissioning, UNSIGNED).accepted
    assert accepted.columns.lots == ("https://id.gs1.org/01/04012345123456/10/LOT-9",)


def test_text_with_nul_is_refused_but_an_escaped_backslash_is_not() -> None:
    with_nul = orjson.dumps(event(**{"example:note": "a\x00b"}))
    assert refusals(run(with_nul, UNSIGNED)) == [(WHOLE_PAYLOAD, "invalid_text")]
    key_with_nul = orjson.dumps(event(**{"example:a\x00": "b"}))
    assert refusals(run(key_with_nul, UNSIGNED)) == [(WHOLE_PAYLOAD, "invalid_text")]
    # The six characters \u0000 as text (an escaped backslash) are ordinary text.
    literal = orjson.dumps(event(**{"example:note": "\\u0000"}))
    assert len(run(literal, UNSIGNED).accepted) == 1


def test_an_error_declaration_is_kept_apart_from_the_stored_event() -> None:
    declared = event(
        errorDeclaration={
            "declarationTime": "2026-11-26T19:00:00+08:00",
            "reason": "urn:epcglobal:cbv:er:did_not_occur",
            "correctiveEventIDs": ["urn:uuid:1"],
            "ex:ticket": 7,
        }
    )
    [accepted] = run(signed(declared)).accepted
    assert accepted.digest == event_hash_digest(event())  # the hash leaves it out
    assert "errorDeclaration" not in orjson.loads(accepted.stored_json)
    found = accepted.declaration
    assert found is not None
    assert found.declaration_time == datetime(2026, 11, 26, 11, 0, tzinfo=UTC)
    assert (found.reason, found.corrective_event_ids) == ("did_not_occur", ("urn:uuid:1",))
    assert orjson.loads(found.document) == declared["errorDeclaration"]  # as captured
    assert run(signed(event())).accepted[0].declaration is None
